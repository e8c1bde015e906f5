// Package deploy_test checks the packaging in this directory and the
// repository's Dockerfile: the gateway configurations inside the
// Kubernetes manifests (and examples/) pass the gateway's own validation,
// the manifests are consistent with those configurations (ports, probes,
// secrets, drain time), the systemd unit passes systemd-analyze, and the
// Dockerfile builds (with Docker) or at least lints and its build context
// compiles.
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenguard/tokenguard/gateway"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

const root = ".." // the repository, from deploy/

// secretEnv supplies a dummy value for every secret the configurations
// may name; any other ${NAME} is unset, and so an error.
var secretEnv = map[string]string{
	"INTROSPECTION_CLIENT_SECRET":   "dummy-introspection-secret",
	"BFF_CLIENT_SECRET":             "dummy-bff-secret",
	"BFF_SESSION_KEY":               base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)),
	"REDIS_PASSWORD":                "dummy-redis-password",
	"TOKENGUARD_DPOP_NONCE_SECRETS": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32)),
}

// getenv is the environment of a gateway: the nonce secrets only with
// dpop.nonce, as the gateway refuses them without it.
func getenv(nonce bool) func(string) string {
	return func(name string) string {
		if name == "TOKENGUARD_DPOP_NONCE_SECRETS" && !nonce {
			return ""
		}
		return secretEnv[name]
	}
}

// envRef matches ${NAME}, not $${NAME} (a literal).
var envRef = regexp.MustCompile(`(^|[^$])\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// effective is the part of a configuration the manifests must agree
// with.
type effective struct {
	Listen          string `yaml:"listen"`
	MetricsListen   string `yaml:"metrics_listen"`
	DrainDelay      string `yaml:"drain_delay"`
	ShutdownTimeout string `yaml:"shutdown_timeout"`
	DPoP            struct {
		Nonce bool `yaml:"nonce"`
	} `yaml:"dpop"`
}

// validate runs the gateway's own loading and offline checks on a
// configuration, as `tokenguard check` does, and returns the settings the
// manifests must agree with and the environment variables it names.
func validate(t *testing.T, name string, data []byte) (eff effective, env []string) {
	t.Helper()
	// The file as written, with the defaults of docs/config.md. (Not
	// cfg.EffectiveYAML: it cannot yet show a configuration whose bff
	// secrets come from the environment.)
	eff.DrainDelay, eff.ShutdownTimeout = "0s", "30s"
	if err := yaml.Unmarshal(data, &eff); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	cfg, err := gateway.ParseConfig(name, data, getenv(eff.DPoP.Nonce))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := cfg.Check(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, m := range envRef.FindAllStringSubmatch(string(data), -1) {
		if !slices.Contains(env, m[2]) {
			env = append(env, m[2])
		}
	}
	if eff.DPoP.Nonce {
		env = append(env, "TOKENGUARD_DPOP_NONCE_SECRETS")
	}
	return eff, env
}

func TestExampleConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root, "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// Their TLS files are under ${TLS_DIR}: point it at a fresh pair.
		if bytes.Contains(data, []byte("${TLS_DIR}/")) {
			dir := t.TempDir()
			testkit.NewCert(t, 1).Write(t, filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem"))
			data = bytes.ReplaceAll(data, []byte("${TLS_DIR}/"), []byte(dir+"/"))
		}
		validate(t, f, data)
	}
}

// decodeAll decodes every document of a multi-document YAML file.
func decodeAll(t *testing.T, file string) []map[string]any {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", file, len(docs)+1, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// get walks a decoded YAML tree: keys for mappings, ints for sequences.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...any) []any {
	s, _ := get(v, path...).([]any)
	return s
}

func port(t *testing.T, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func duration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestKubernetesManifests(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("kubernetes", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sidecar.yaml", "standalone.yaml"} {
		if !slices.Contains(files, filepath.Join("kubernetes", want)) {
			t.Errorf("kubernetes/%s is missing", want)
		}
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { checkManifest(t, file) })
	}
}

func checkManifest(t *testing.T, file string) {
	docs := decodeAll(t, file)
	type cfgInfo struct {
		eff effective
		env []string
	}
	configMaps := map[string]cfgInfo{}
	var deployments []map[string]any
	for i, doc := range docs {
		kind, api, name := str(doc, "kind"), str(doc, "apiVersion"), str(doc, "metadata", "name")
		if kind == "" || api == "" || name == "" {
			t.Errorf("document %d: kind %q, apiVersion %q, metadata.name %q: all are required", i+1, kind, api, name)
		}
		switch kind {
		case "ConfigMap":
			data, ok := get(doc, "data", "tokenguard.yaml").(string)
			if !ok {
				t.Errorf("ConfigMap %s has no data.tokenguard.yaml", name)
				continue
			}
			eff, env := validate(t, file+": ConfigMap "+name, []byte(data))
			configMaps[name] = cfgInfo{eff, env}
		case "Deployment":
			deployments = append(deployments, doc)
		}
	}
	if len(configMaps) == 0 || len(deployments) == 0 {
		t.Fatalf("want a ConfigMap with tokenguard.yaml and a Deployment; have %d and %d", len(configMaps), len(deployments))
	}

	for _, d := range deployments {
		name := str(d, "metadata", "name")
		spec := get(d, "spec", "template", "spec")
		if get(spec, "securityContext", "runAsNonRoot") != true || str(spec, "securityContext", "seccompProfile", "type") != "RuntimeDefault" {
			t.Errorf("Deployment %s: the pod needs runAsNonRoot: true and seccompProfile RuntimeDefault", name)
		}
		var tg map[string]any
		for _, c := range list(spec, "containers") {
			if str(c, "name") == "tokenguard" {
				tg, _ = c.(map[string]any)
			}
		}
		if tg == nil {
			t.Errorf("Deployment %s has no container named tokenguard", name)
			continue
		}

		// The configuration it mounts.
		var info cfgInfo
		var mountPath string
		for _, v := range list(spec, "volumes") {
			cm := str(v, "configMap", "name")
			if cm == "" {
				continue
			}
			var ok bool
			if info, ok = configMaps[cm]; !ok {
				t.Fatalf("Deployment %s mounts ConfigMap %s, not in this file", name, cm)
			}
			for _, m := range list(tg, "volumeMounts") {
				if str(m, "name") == str(v, "name") {
					mountPath = str(m, "mountPath")
				}
			}
		}
		if mountPath == "" {
			t.Fatalf("Deployment %s: tokenguard mounts no ConfigMap", name)
		}
		args := fmt.Sprint(get(tg, "args"))
		if want := fmt.Sprintf("[-config %s]", path.Join(mountPath, "tokenguard.yaml")); args != want {
			t.Errorf("Deployment %s: tokenguard args %s, want %s", name, args, want)
		}

		// Ports agree with listen and metrics_listen.
		ports := map[string]int{}
		for _, p := range list(tg, "ports") {
			n, _ := get(p, "containerPort").(int)
			ports[str(p, "name")] = n
		}
		if got, want := ports["http"], port(t, info.eff.Listen); got != want {
			t.Errorf("Deployment %s: port http is %d, listen is %s", name, got, info.eff.Listen)
		}
		if got, want := ports["metrics"], port(t, info.eff.MetricsListen); got != want {
			t.Errorf("Deployment %s: port metrics is %d, metrics_listen is %s", name, got, info.eff.MetricsListen)
		}
		if host, _, _ := net.SplitHostPort(info.eff.MetricsListen); host == "127.0.0.1" || host == "localhost" {
			t.Errorf("Deployment %s: metrics_listen %s is unreachable by the kubelet's probes", name, info.eff.MetricsListen)
		}

		// Probes on the metrics listener.
		for probe, want := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
			p := fmt.Sprint(get(tg, probe, "httpGet", "port"))
			if got := str(tg, probe, "httpGet", "path"); got != want || (p != "metrics" && p != strconv.Itoa(ports["metrics"])) {
				t.Errorf("Deployment %s: %s is GET %s on port %s, want GET %s on the metrics port", name, probe, got, p, want)
			}
		}

		// Every secret the configuration names comes from a Secret.
		envs := map[string]bool{}
		for _, e := range list(tg, "env") {
			envs[str(e, "name")] = str(e, "valueFrom", "secretKeyRef", "name") != ""
		}
		for _, e := range info.env {
			if !envs[e] {
				t.Errorf("Deployment %s: the configuration uses %s, which the tokenguard container does not get from a Secret", name, e)
			}
		}

		// Hardening.
		sc := get(tg, "securityContext")
		if get(sc, "allowPrivilegeEscalation") != false || get(sc, "readOnlyRootFilesystem") != true ||
			fmt.Sprint(get(sc, "capabilities", "drop")) != "[ALL]" {
			t.Errorf("Deployment %s: tokenguard securityContext %v: want allowPrivilegeEscalation false, readOnlyRootFilesystem true, capabilities.drop [ALL]", name, sc)
		}
		if get(tg, "resources", "requests") == nil || get(tg, "resources", "limits", "memory") == nil {
			t.Errorf("Deployment %s: tokenguard needs resource requests and a memory limit", name)
		}

		// A drain is never cut short by the kill.
		grace, _ := get(spec, "terminationGracePeriodSeconds").(int)
		drain := duration(t, info.eff.DrainDelay) + duration(t, info.eff.ShutdownTimeout)
		if time.Duration(grace)*time.Second <= drain {
			t.Errorf("Deployment %s: terminationGracePeriodSeconds %d is not above drain_delay + shutdown_timeout (%v)", name, grace, drain)
		}
	}
}

// buildDir holds binary's build context and output, removed by TestMain.
var buildDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binary builds the gateway once, as the Dockerfile does, from a copy of
// the Docker build context (the repository minus .dockerignore), so that
// the test also proves .dockerignore leaves out nothing the build needs.
var binary = sync.OnceValues(func() (string, error) {
	ignore, err := readDockerignore(filepath.Join(root, ".dockerignore"))
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "tokenguard-deploy-test-")
	if err != nil {
		return "", err
	}
	buildDir = dir
	ctx := filepath.Join(dir, "context")
	if err := os.Mkdir(ctx, 0o755); err != nil {
		return "", err
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		if ignored(ignore, filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		dst := filepath.Join(ctx, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "tokenguard")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/tokenguard")
	cmd.Dir = ctx
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build in the Docker build context: %v\n%s", err, out)
	}
	return bin, nil
})

// readDockerignore returns the patterns of a .dockerignore file.
func readDockerignore(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var patterns []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		patterns = append(patterns, line)
	}
	return patterns, s.Err()
}

// ignored reports whether Docker leaves rel (slash-separated, relative to
// the context) out of the build context: the last matching pattern wins,
// "!" re-includes, "**/" matches any number of directories, and a
// pattern matching a directory matches everything below it.
func ignored(patterns []string, rel string) bool {
	out := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = path.Clean(strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/"))
		for prefix := rel; ; {
			if matchIgnore(p, prefix) {
				out = !neg
				break
			}
			i := strings.LastIndex(prefix, "/")
			if i < 0 {
				break
			}
			prefix = prefix[:i]
		}
	}
	return out
}

func matchIgnore(pattern, name string) bool {
	if rest, ok := strings.CutPrefix(pattern, "**/"); ok {
		for {
			if matchIgnore(rest, name) {
				return true
			}
			i := strings.Index(name, "/")
			if i < 0 {
				return false
			}
			name = name[i+1:]
		}
	}
	ok, _ := path.Match(pattern, name)
	return ok
}

func TestDockerignore(t *testing.T) {
	patterns, err := readDockerignore(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".git/HEAD", "bench/results/x.txt", "interop/node_modules/a/b.js",
		"testdata/x", "gateway/testdata/x.yaml", "tokenguard", "bff.test", "gateway/config_test.go"} {
		if !ignored(patterns, p) {
			t.Errorf("%s is in the Docker build context", p)
		}
	}
	for _, p := range []string{"go.mod", "go.sum", "cmd/tokenguard/main.go", "gateway/config.go", "internal/demo/app/index.html"} {
		if ignored(patterns, p) {
			t.Errorf("%s is left out of the Docker build context", p)
		}
	}
}

// dockerfile is a parsed Dockerfile: one instruction a line, continuation
// lines joined.
type instruction struct{ cmd, args string }

func parseDockerfile(t *testing.T) []instruction {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		trim := strings.TrimSpace(line)
		if strings.HasPrefix(trim, "#") || (trim == "" && cur.Len() == 0) {
			continue
		}
		if cont, ok := strings.CutSuffix(trim, "\\"); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(trim)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")})
		cur.Reset()
	}
	return out
}

func goDirective(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t)
	var stages [][]instruction
	for _, in := range ins {
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage Dockerfile, have %d stages", len(stages))
	}

	// Build stage: the Go minor version of go.mod, a static, trimmed build.
	build := stages[0]
	m := regexp.MustCompile(`golang:(\d+\.\d+)`).FindStringSubmatch(build[0].args)
	if want := goDirective(t); m == nil || m[1] != want {
		t.Errorf("build stage %q: want golang:%s (go.mod's go directive)", build[0].args, want)
	}
	var buildRun string
	for _, in := range build {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			buildRun = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-ldflags='-s -w'", "./cmd/tokenguard"} {
		if !strings.Contains(buildRun, want) {
			t.Errorf("the go build step %q lacks %s", buildRun, want)
		}
	}

	// Runtime stage: minimal, non-root, the binary as entrypoint.
	final := stages[len(stages)-1]
	got := map[string]string{}
	for _, in := range final {
		got[in.cmd] = in.args
	}
	if !strings.Contains(got["FROM"], "distroless/static") && !strings.HasPrefix(got["FROM"], "scratch") {
		t.Errorf("runtime image %q: want distroless/static or scratch", got["FROM"])
	}
	if u := got["USER"]; u == "" || strings.HasPrefix(u, "root") || strings.HasPrefix(u, "0") {
		if !strings.HasSuffix(got["FROM"], ":nonroot") {
			t.Errorf("runtime stage runs as %q on %q: want a non-root user", u, got["FROM"])
		}
	}
	if got["ENTRYPOINT"] != `["/tokenguard"]` {
		t.Errorf("ENTRYPOINT %s, want [\"/tokenguard\"]", got["ENTRYPOINT"])
	}
	// The file serve reads, from TOKENGUARD_CONFIG, so that the health
	// check, which reads it too, follows it when it is moved.
	env := runtimeEnv(final)
	if env["TOKENGUARD_CONFIG"] != imageConfig {
		t.Errorf("ENV TOKENGUARD_CONFIG=%q, want %s (the path deploy/README.md mounts)", env["TOKENGUARD_CONFIG"], imageConfig)
	}
	if got["CMD"] != `["serve"]` {
		t.Errorf("CMD %s, want [\"serve\"] (the file from TOKENGUARD_CONFIG)", got["CMD"])
	}
	checkHealthcheck(t, final, got)
	if got["EXPOSE"] != "8080 9090" {
		t.Errorf("EXPOSE %s, want 8080 9090 (the manifests' listen and metrics_listen)", got["EXPOSE"])
	}

	if hadolint, err := exec.LookPath("hadolint"); err == nil {
		out, err := exec.Command(hadolint, filepath.Join(root, "Dockerfile")).CombinedOutput()
		if err != nil {
			t.Errorf("hadolint: %v\n%s", err, out)
		}
	} else {
		t.Log("hadolint not installed: lint skipped")
	}
}

// imageConfig is where the image expects the configuration.
const imageConfig = "/etc/tokenguard/tokenguard.yaml"

// runtimeEnv returns the variables the ENV instructions of a stage set
// (KEY=value form, unquoted).
func runtimeEnv(stage []instruction) map[string]string {
	env := map[string]string{}
	for _, in := range stage {
		if in.cmd == "ENV" {
			for _, kv := range strings.Fields(in.args) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		}
	}
	return env
}

// healthcheckSpec is a HEALTHCHECK instruction: its options (interval,
// timeout, ...) and its command in exec form.
type healthcheckSpec struct {
	opts map[string]string
	argv []string
}

// parseHealthcheck parses the one HEALTHCHECK of the runtime stage.
func parseHealthcheck(t *testing.T, stage []instruction) healthcheckSpec {
	t.Helper()
	var found []string
	for _, in := range stage {
		if in.cmd == "HEALTHCHECK" {
			found = append(found, in.args)
		}
	}
	if len(found) != 1 {
		t.Fatalf("the runtime stage has %d HEALTHCHECK instructions, want 1", len(found))
	}
	opts, cmd, ok := strings.Cut(found[0], "CMD ")
	if !ok {
		t.Fatalf("HEALTHCHECK %s: want HEALTHCHECK [OPTIONS] CMD [...]", found[0])
	}
	h := healthcheckSpec{opts: map[string]string{}}
	for _, o := range strings.Fields(opts) {
		k, v, ok := strings.Cut(strings.TrimPrefix(o, "--"), "=")
		if !ok || !strings.HasPrefix(o, "--") {
			t.Fatalf("HEALTHCHECK option %q: want --name=value", o)
		}
		h.opts[k] = v
	}
	if err := json.Unmarshal([]byte(cmd), &h.argv); err != nil || len(h.argv) < 2 {
		t.Fatalf("HEALTHCHECK CMD %s: want the exec form, a JSON array naming the binary and a subcommand (the image has no shell): %v", cmd, err)
	}
	return h
}

// checkHealthcheck checks the runtime stage's HEALTHCHECK: the
// entrypoint's binary in exec form, running a subcommand the command has,
// on the file serve reads, with a timeout the command stays within.
func checkHealthcheck(t *testing.T, stage []instruction, got map[string]string) {
	t.Helper()
	h := parseHealthcheck(t, stage)
	var entry []string
	if err := json.Unmarshal([]byte(got["ENTRYPOINT"]), &entry); err != nil || len(entry) == 0 {
		t.Fatalf("ENTRYPOINT %s: want the exec form", got["ENTRYPOINT"])
	}
	if h.argv[0] != entry[0] {
		t.Errorf("HEALTHCHECK runs %s, want the entrypoint's %s", h.argv[0], entry[0])
	}
	main, err := os.ReadFile(filepath.Join(root, "cmd", "tokenguard", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(main, []byte(fmt.Sprintf("case %q:", h.argv[1]))) {
		t.Errorf("HEALTHCHECK runs tokenguard %s, a subcommand cmd/tokenguard does not dispatch", h.argv[1])
	}
	if slices.Contains(h.argv, "-config") || slices.Contains(h.argv, "-url") {
		t.Errorf("HEALTHCHECK %q: want the file from TOKENGUARD_CONFIG, as serve reads it", h.argv)
	}
	for _, o := range []string{"interval", "timeout", "start-period"} {
		if _, err := time.ParseDuration(h.opts[o]); err != nil {
			t.Errorf("HEALTHCHECK --%s=%q: want a duration", o, h.opts[o])
		}
	}
	// tokenguard healthcheck gives up after 2 s on its own and says why;
	// Docker's timeout must not cut it short.
	if d, err := time.ParseDuration(h.opts["timeout"]); err == nil && d <= 2*time.Second {
		t.Errorf("HEALTHCHECK --timeout=%s: want more than the command's own 2s", h.opts["timeout"])
	}
}

// TestDockerHealthcheck runs the Dockerfile's HEALTHCHECK command, as
// Docker would, with the binary built from the Docker build context and
// the image's environment (TOKENGUARD_CONFIG pointed at a copy of the
// standalone manifest's configuration, whose secrets are not set): 0
// while /readyz on its metrics_listen answers 200, 1 with the reason
// while it answers 503, 1 when nothing listens.
func TestDockerHealthcheck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gateway")
	}
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	var final []instruction
	for _, in := range parseDockerfile(t) {
		if in.cmd == "FROM" {
			final = nil
		}
		final = append(final, in)
	}
	h := parseHealthcheck(t, final)

	var ready atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
		} else if !ready.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	_, srvPort, _ := net.SplitHostPort(srv.Listener.Addr().String())

	var cfg string
	for _, doc := range decodeAll(t, filepath.Join("kubernetes", "standalone.yaml")) {
		if s, ok := get(doc, "data", "tokenguard.yaml").(string); ok {
			cfg = s
		}
	}
	const metrics = "metrics_listen: 0.0.0.0:9090\n"
	if !strings.Contains(cfg, metrics) {
		t.Fatalf("standalone.yaml's configuration lacks %q", metrics)
	}
	cfgFile := filepath.Join(t.TempDir(), "tokenguard.yaml")
	if err := os.WriteFile(cfgFile, []byte(strings.Replace(cfg, metrics, "metrics_listen: 0.0.0.0:"+srvPort+"\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + os.Getenv("PATH")} // and none of the configuration's secrets
	for k, v := range runtimeEnv(final) {
		if k == "TOKENGUARD_CONFIG" {
			v = cfgFile
		}
		env = append(env, k+"="+v)
	}

	run := func() (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, h.argv[1:]...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, stderr.String()
		case errors.As(err, &ee):
			return ee.ExitCode(), stderr.String()
		}
		t.Fatalf("%s %q: %v", bin, h.argv[1:], err)
		return -1, ""
	}
	for _, step := range []struct {
		name       string
		setup      func()
		wantCode   int
		wantStderr string
	}{
		{"starting", func() {}, 1, "503 Service Unavailable: starting"},
		{"ready", func() { ready.Store(true) }, 0, ""},
		{"nothing listens", srv.Close, 1, "connection refused"},
	} {
		step.setup()
		code, stderr := run()
		if code != step.wantCode || !strings.Contains(stderr, step.wantStderr) {
			t.Errorf("%s: HEALTHCHECK %q exited %d, stderr %q; want %d and %q", step.name, h.argv, code, stderr, step.wantCode, step.wantStderr)
		}
	}
}

// TestDockerBuildContext builds the binary the way the Dockerfile does,
// from the files .dockerignore leaves in, and checks that it is static
// (the distroless/static image has no C library).
func TestDockerBuildContext(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gateway")
	}
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked (has PT_INTERP)")
		}
	}
	if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "tokenguard ") {
		t.Errorf("tokenguard version: %v: %s", err, out)
	}
}

// TestDockerBuild builds the image when a Docker daemon answers.
func TestDockerBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an image")
	}
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("docker not installed")
	}
	if err := exec.Command(docker, "info").Run(); err != nil {
		t.Skip("no Docker daemon")
	}
	tag := "tokenguard:deploy-test"
	if out, err := exec.Command(docker, "build", "-t", tag, root).CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	defer exec.Command(docker, "rmi", tag).Run()
	out, err := exec.Command(docker, "run", "--rm", tag, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "tokenguard ") {
		t.Errorf("docker run %s version: %v: %s", tag, err, out)
	}
	out, err = exec.Command(docker, "image", "inspect", "-f", "{{.Config.User}}", tag).Output()
	if u := strings.TrimSpace(string(out)); err != nil || u == "" || u == "root" || u == "0" {
		t.Errorf("image user %q (%v): want non-root", u, err)
	}
	out, err = exec.Command(docker, "image", "inspect", "-f", "{{json .Config.Healthcheck.Test}}", tag).Output()
	if hc := strings.TrimSpace(string(out)); err != nil || hc != `["CMD","/tokenguard","healthcheck"]` {
		t.Errorf("image health check %s (%v): want [\"CMD\",\"/tokenguard\",\"healthcheck\"]", hc, err)
	}
}

func TestSystemdUnit(t *testing.T) {
	unit := filepath.Join("systemd", "tokenguard.service")
	data, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	directives := map[string][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			directives[k] = append(directives[k], v)
		}
	}
	for k, want := range map[string]string{
		"DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"PrivateDevices": "yes", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "MemoryDenyWriteExecute": "yes",
		"LockPersonality": "yes", "RestrictNamespaces": "yes", "ProtectKernelTunables": "yes",
		"ProtectKernelModules": "yes", "ProtectControlGroups": "yes", "UMask": "0077",
		"EnvironmentFile": "-/etc/tokenguard/env", "ExecReload": "/bin/kill -HUP $MAINPID",
		"KillSignal": "SIGTERM", "Restart": "on-failure", "ReadOnlyPaths": "/etc/tokenguard",
		"ExecStart": "/usr/local/bin/tokenguard serve -config /etc/tokenguard/tokenguard.yaml",
	} {
		if !slices.Contains(directives[k], want) {
			t.Errorf("%s=%s is missing (have %q)", k, want, directives[k])
		}
	}
	if !slices.Contains(directives["SystemCallFilter"], "@system-service") {
		t.Error("SystemCallFilter=@system-service is missing")
	}
	// Above the default drain (drain_delay 0s + shutdown_timeout 30s).
	if len(directives["TimeoutStopSec"]) != 1 || duration(t, directives["TimeoutStopSec"][0]) <= 30*time.Second {
		t.Errorf("TimeoutStopSec %q: want one, above 30s", directives["TimeoutStopSec"])
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: verify skipped")
	}
	if testing.Short() {
		t.Skip("verify needs the gateway binary")
	}
	// verify checks that ExecStart's binary exists: point a copy of the
	// unit at one just built.
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	copyUnit := filepath.Join(t.TempDir(), "tokenguard.service")
	data = bytes.ReplaceAll(data, []byte("/usr/local/bin/tokenguard"), []byte(bin))
	if err := os.WriteFile(copyUnit, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// It warns about unknown keys and bad values but still exits 0:
	// any output at all is a failure.
	out, err := exec.Command(analyze, "verify", copyUnit).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The exposure level (0 best, 10 worst; --threshold is in tenths) was
	// 1.4 when written: fail if a change makes it worse than 2.0.
	out, err = exec.Command(analyze, "security", "--offline=yes", "--threshold=20", copyUnit).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security --offline=yes --threshold=20: %v\n%s", err, out)
	}
}
