// Repository-wide checks: package documentation and dependency discipline.
package tokenguard_test

import (
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// packageDirs lists the module's package directories (not bench/, which is
// its own module, nor testdata).
func packageDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		base := d.Name()
		if path != "." && (base == "testdata" || base == "bench" || strings.HasPrefix(base, ".")) {
			return filepath.SkipDir
		}
		matches, _ := filepath.Glob(filepath.Join(path, "*.go"))
		for _, m := range matches {
			if !strings.HasSuffix(m, "_test.go") {
				dirs = append(dirs, path)
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// TestPackageDocs requires a package comment on every package and a doc
// comment on every exported name of the public packages, the way
// tailscale's pkgdoc_test does.
func TestPackageDocs(t *testing.T) {
	for _, dir := range packageDirs(t) {
		fset := token.NewFileSet()
		pkgs, err := parser.ParseDir(fset, dir, func(fi fs.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for name, pkg := range pkgs {
			var files []*ast.File
			for _, f := range pkg.Files {
				files = append(files, f)
			}
			p, err := doc.NewFromFiles(fset, files, "example.com/"+dir)
			if err != nil {
				t.Fatal(err)
			}
			want := "Package " + name + " "
			if name == "main" {
				want = "" // a command's doc starts with its name
			}
			if strings.TrimSpace(p.Doc) == "" || !strings.HasPrefix(p.Doc, want) {
				t.Errorf("%s: package %s has no proper package comment (want it to start %q)", dir, name, want)
			}
			if name == "main" || strings.HasPrefix(dir, "internal") {
				continue
			}
			check := func(kind, n, d string) {
				if strings.TrimSpace(d) == "" {
					t.Errorf("%s: exported %s %s has no doc comment", dir, kind, n)
				}
			}
			for _, f := range p.Funcs {
				check("func", f.Name, f.Doc)
			}
			for _, ty := range p.Types {
				check("type", ty.Name, ty.Doc)
				for _, f := range ty.Funcs {
					check("func", f.Name, f.Doc)
				}
				for _, m := range ty.Methods {
					check("method", ty.Name+"."+m.Name, m.Doc)
				}
			}
		}
	}
}

// TestDependencies keeps heavy or optional modules out of the library
// packages: a middleware user must not link the gateway's YAML parser or
// Redis, and no package may pull in an unlisted JWT library.
func TestDependencies(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not in PATH")
	}
	forbidden := []struct{ prefix, why string }{
		{"github.com/redis/", "Redis is optional: it lives in its own package"},
		{"go.yaml.in/yaml/v3", "the YAML parser is the gateway's, not the library's"},
		{"gopkg.in/yaml", "the YAML parser is the gateway's, not the library's"},
		{"github.com/golang-jwt/", "peers belong in bench/'s own module"},
		{"github.com/MicahParks/", "peers belong in bench/'s own module"},
		{"github.com/lestrrat-go/jwx/v2", "v2 is unmaintained (DESIGN.md)"},
		{"github.com/tokenguard/tokenguard/internal/devissuer", "the development issuer must never ship in the library"},
		{"go.opentelemetry.io/", "tracing is the gateway's only (DESIGN.md); the library offers Config.WrapTransport instead"},
		{"google.golang.org/grpc", "the OTLP/gRPC exporter is the gateway's only"},
		{"connectrpc.com/", "Connect is connectguard's, in its own module"},
	}
	for _, pkg := range []string{"./middleware", "./jwks", "./internal/jose", "./bff"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f.prefix) {
					t.Errorf("%s depends on %s: %s", pkg, dep, f.why)
				}
			}
		}
	}
	// The module's direct requirements are the ones DESIGN.md names.
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	allowed := []string{
		"github.com/lestrrat-go/jwx/v3", "github.com/lestrrat-go/httprc/v3",
		"github.com/prometheus/client_golang", "github.com/google/go-cmp",
		"github.com/redis/go-redis/v9", "go.yaml.in/yaml/v3",
		"golang.org/x/oauth2",          // the token handler's code exchange, refresh and PKCE
		"github.com/chromedp/chromedp", // browser tests only
		"github.com/chromedp/cdproto",  // chromedp's protocol types, browser tests only
		// Tracing, in the gateway only, and its OTLP exporters.
		"go.opentelemetry.io/otel", "go.opentelemetry.io/otel/sdk", "go.opentelemetry.io/otel/trace",
		"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp",
		"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc",
		// The exporters' own dependencies, imported directly by the gateway's
		// tests only: their OTLP/HTTP and OTLP/gRPC receivers.
		"go.opentelemetry.io/proto/otlp", "google.golang.org/grpc", "google.golang.org/protobuf",
	}
	for _, line := range strings.Split(string(mod), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasSuffix(line, "// indirect") || strings.HasPrefix(line, "module ") ||
			strings.HasPrefix(line, "go ") || strings.HasPrefix(line, "require") || line == ")" || strings.HasPrefix(line, "toolchain") {
			continue
		}
		name := strings.Fields(line)[0]
		ok := false
		for _, a := range allowed {
			ok = ok || name == a
		}
		if !ok {
			t.Errorf("go.mod requires %s directly; DESIGN.md does not list it", name)
		}
	}
}

// TestNestedModules keeps the gRPC and Connect interceptors (and the
// benchmarks' peers) in modules of their own, so that a net/http user of
// the library never downloads gRPC or Connect: without its go.mod, a
// directory's imports would become the root module's requirements.
func TestNestedModules(t *testing.T) {
	for _, dir := range []string{"bench", "grpcguard", "connectguard"} {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err != nil {
			t.Errorf("%s must be its own module: %v", dir, err)
			continue
		}
		want := "module github.com/tokenguard/tokenguard/" + dir + "\n"
		if !strings.HasPrefix(string(mod), want) {
			t.Errorf("%s/go.mod does not start %q", dir, want)
		}
	}
}
