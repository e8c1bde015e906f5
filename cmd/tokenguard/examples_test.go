package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tokenguard/tokenguard/internal/testkit"
)

// TestExamplesDocumentedCheck runs, for every examples/*.yaml, the
// commands its header comment documents, exactly as written and from the
// repository's root as on a fresh clone: "export NAME=$(mktemp -d)",
// "openssl req ..." (the self-signed TLS pair; made with testkit.NewCert
// at the same paths when openssl is not installed) and "[NAME=...]
// tokenguard check -config examples/FILE". A "..." value is a secret
// the reader supplies; the test supplies checkSecrets'. check sees only
// the variables those commands set, so a variable the header does not
// name, or a file its commands do not make, fails the test. The header
// must also name, under "Needs", every ${NAME} the file uses, every file
// it reads (each *_file value) and TOKENGUARD_DPOP_NONCE_SECRETS when the
// file turns DPoP nonces on.
func TestExamplesDocumentedCheck(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	t.Chdir(root) // the documented commands name examples/FILE
	for _, file := range files {
		name := "examples/" + filepath.Base(file)
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			header, body := splitHeader(string(data))
			_, needs, ok := strings.Cut(header, "\nNeeds")
			if !ok {
				t.Fatalf("%s: the header has no \"Needs\" part naming the variables and files the file needs", name)
			}
			needs, _, _ = strings.Cut(needs, "\n\n")
			for _, v := range needed(body) {
				if !strings.Contains(needs, v) {
					t.Errorf("%s uses %s; its header's \"Needs\" part does not name it", name, v)
				}
			}

			sh := &shell{t: t, vars: map[string]string{}}
			checked := 0
			for _, cmd := range headerCommands(header) {
				if v, ok := strings.CutPrefix(cmd, "export "); ok {
					v, ok = strings.CutSuffix(v, "=$(mktemp -d)")
					if !ok {
						t.Fatalf("%s: only export NAME=$(mktemp -d) is understood: %s", name, cmd)
					}
					sh.vars[v] = t.TempDir()
					continue
				}
				words := sh.words(cmd)
				if len(words) > 2 && words[0] == "openssl" && words[1] == "req" {
					makeTLSPair(t, words)
					continue
				}
				env, args := assignments(t, words)
				args = tokenguardArgs(args)
				if len(args) == 0 || args[0] != "check" {
					continue // "tokenguard -config ..." runs it; "openssl rand" prints a secret
				}
				if !slices.Contains(args, name) {
					t.Errorf("%s documents a check of another file: %s", name, cmd)
				}
				for k, v := range sh.vars {
					env[k] = v
				}
				code, stdout, stderr := runCheck(t, env, args[1:]...)
				if code != exitOK || stderr != "" || !strings.HasPrefix(stdout, "# tokenguard check: "+name+" is valid") {
					t.Errorf("%s\n  exit %d, stderr:\n%s", cmd, code, stderr)
				}
				assertNoSecrets(t, stdout+stderr)
				checked++
			}
			if checked == 0 {
				t.Errorf("%s: the header documents no \"tokenguard check -config %s\" command", name, name)
			}
		})
	}
}

// splitHeader splits an examples/ file into its leading comment, with
// the "#" and one space taken off each line and a newline in front (so
// that "\nNeeds" finds a line starting with it), and the rest.
func splitHeader(s string) (header, body string) {
	h := strings.Builder{}
	h.WriteString("\n")
	n := 0
	for line := range strings.Lines(s) {
		if !strings.HasPrefix(line, "#") {
			break
		}
		n += len(line)
		h.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "#"), " "))
	}
	return h.String(), s[n:]
}

var (
	// envRef matches ${NAME}, not $${NAME} (a literal).
	envRef = regexp.MustCompile(`(^|[^$])\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
	// fileKey matches a key naming a file the gateway reads, and its value.
	fileKey = regexp.MustCompile(`(?m)^\s*-?\s*[a-z_]+_file:\s*(\S+)`)
	// nonceOn matches dpop.nonce turned on.
	nonceOn = regexp.MustCompile(`(?m)^\s+nonce:\s*true\b`)
)

// needed lists what a file's header must name: the variables it
// references, the files it reads and the nonce secrets when it uses
// nonces. Comments are left out.
func needed(body string) []string {
	var code strings.Builder
	for line := range strings.Lines(body) {
		line, _, _ = strings.Cut(line, " #")
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			code.WriteString(strings.TrimRight(line, " \n") + "\n")
		}
	}
	var out []string
	for _, m := range envRef.FindAllStringSubmatch(code.String(), -1) {
		out = append(out, m[2])
	}
	for _, m := range fileKey.FindAllStringSubmatch(code.String(), -1) {
		out = append(out, strings.Trim(m[1], `"'`))
	}
	if nonceOn.MatchString(code.String()) {
		out = append(out, "TOKENGUARD_DPOP_NONCE_SECRETS")
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// command matches the start of a command the examples document.
var command = regexp.MustCompile(`^(export |openssl |tokenguard |go run |[A-Z][A-Z0-9_]*=)`)

// headerCommands returns the shell commands in a header: lines indented
// by two spaces (three in the file, after "#") that start like a
// command, with a trailing "\" joining the next line.
func headerCommands(header string) []string {
	var cmds []string
	cont := false
	for line := range strings.Lines(header) {
		line = strings.TrimRight(line, "\n")
		switch {
		case cont:
			cmds[len(cmds)-1] += " " + strings.TrimSpace(line)
		case strings.HasPrefix(line, "  ") && command.MatchString(line[2:]):
			cmds = append(cmds, line[2:])
		default:
			continue
		}
		last := &cmds[len(cmds)-1]
		cont = strings.HasSuffix(*last, `\`)
		*last = strings.TrimSpace(strings.TrimSuffix(*last, `\`))
	}
	return cmds
}

// assignments splits the leading NAME=VALUE words off a command. A value
// of "..." is a secret the reader fills in; the test's own comes from
// checkSecrets.
func assignments(t *testing.T, words []string) (env map[string]string, rest []string) {
	t.Helper()
	env = map[string]string{}
	for len(words) > 0 {
		k, v, ok := strings.Cut(words[0], "=")
		if !ok || k == "" || strings.ToUpper(k) != k || strings.HasPrefix(k, "-") {
			break
		}
		if v == "..." {
			if v, ok = checkSecrets[k]; !ok {
				t.Fatalf("no test value for %s (add one to checkSecrets)", k)
			}
		}
		env[k] = v
		words = words[1:]
	}
	return env, words
}

// tokenguardArgs returns the arguments of "tokenguard ARGS" or "go run
// ./cmd/tokenguard ARGS", or nil for any other command.
func tokenguardArgs(words []string) []string {
	switch {
	case len(words) >= 1 && words[0] == "tokenguard":
		return words[1:]
	case len(words) >= 3 && words[0] == "go" && words[1] == "run" && words[2] == "./cmd/tokenguard":
		return words[3:]
	}
	return nil
}

// makeTLSPair runs a documented "openssl req -x509 ... -keyout KEY -out
// CERT" command. Without openssl it writes a testkit certificate and key
// to the same paths instead, so the rest of the instructions still run.
func makeTLSPair(t *testing.T, words []string) {
	t.Helper()
	i, j := slices.Index(words, "-keyout"), slices.Index(words, "-out")
	if !slices.Contains(words, "-x509") || i < 0 || j < 0 || i+1 >= len(words) || j+1 >= len(words) {
		t.Fatalf("openssl req without -x509, -keyout or -out: %q", words)
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Logf("openssl is not installed; writing a test certificate instead of: %q", words)
		testkit.NewCert(t, 1).Write(t, words[j+1], words[i+1])
		return
	}
	if out, err := exec.Command(words[0], words[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%q: %v\n%s", words, err, out)
	}
}
