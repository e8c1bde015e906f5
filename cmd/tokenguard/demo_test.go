package main

import (
	"context"
	"crypto"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/demo"
	"github.com/tokenguard/tokenguard/internal/keyfile"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

// runDemo runs "tokenguard demo" (with flags) on ephemeral ports and
// returns it with its printed output. It stops the demo at cleanup.
func runDemo(t *testing.T, flags ...string) (*demo.Demo, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr lockedBuffer
	started := make(chan *demo.Demo, 1)
	done := make(chan int, 1)
	c := &cli{stdout: &stdout, stderr: &stderr, onDemo: func(d *demo.Demo) { started <- d }}
	go func() {
		done <- c.run(ctx, append([]string{"demo",
			"-issuer", "127.0.0.1:0", "-upstream", "127.0.0.1:0",
			"-listen", "127.0.0.1:0", "-metrics-listen", "127.0.0.1:0"}, flags...))
	}()
	var d *demo.Demo
	select {
	case d = <-started:
	case code := <-done:
		cancel()
		t.Fatalf("demo exited with %d:\n%s", code, stderr.String())
	case <-time.After(wait):
		cancel()
		t.Fatalf("demo did not start within %v:\n%s", wait, stderr.String())
	}
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != exitOK {
				t.Errorf("demo exit code %d", code)
			}
		case <-time.After(wait):
			t.Errorf("demo did not stop within %v", wait)
		}
		if t.Failed() {
			t.Logf("demo log:\n%s", stderr.String())
		}
	})
	return d, stdout.String()
}

func TestDemo(t *testing.T) {
	// The printed commands run in an empty directory standing in for the
	// source tree, and must leave nothing in it: the DPoP key goes to
	// -dpop-key, in a directory the commands create.
	cwd := t.TempDir()
	t.Chdir(cwd)
	keyFile := filepath.Join(t.TempDir(), "config dir", "tokenguard", "demo-dpop.pem")
	d, out := runDemo(t, "-dpop-key", keyFile)
	for _, want := range []string{
		"DEVELOPMENT ONLY",
		"TOKEN=$(curl -s '" + d.IssuerURL + "/token?scope=orders:read')",
		`curl -i -H "Authorization: Bearer $TOKEN" ` + d.GatewayURL + "/orders/",
		"curl -i " + d.GatewayURL + "/orders/",
		`curl -i -X POST -H "Authorization: Bearer $TOKEN" ` + d.GatewayURL + "/orders/",
		d.MetricsURL + "/metrics",
		"listen: " + strings.TrimPrefix(d.GatewayURL, "http://"),
		"public_url: " + d.GatewayURL,
		"mode: allowed",
		// DPoP
		"mkdir -p -m 700 '" + filepath.Dir(keyFile) + "'\n",
		"KEY='" + keyFile + "'\n",
		`go run ./cmd/tokenguard keygen -out "$KEY"`,
		`-H "DPoP: $(go run ./cmd/tokenguard proof -method POST -url ` + d.IssuerURL + `/token -key "$KEY")" '` + d.IssuerURL + "/token?scope=orders:read'",
		`curl -i -H "Authorization: DPoP $TOKEN" -H "DPoP: $(go run ./cmd/tokenguard proof -method GET -url ` + d.GatewayURL + `/orders/ -key "$KEY" -token $TOKEN)" ` + d.GatewayURL + "/orders/",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out)
		}
	}

	// Run every printed command, as a shell would, and check the status
	// its comment promises.
	sh := interpret(t, out)
	steps := sh.steps
	var statuses []int
	for _, s := range steps {
		statuses = append(statuses, s.wantStatus)
	}
	if diff := cmp.Diff([]int{200, 401, 403, 200, 401}, statuses); diff != "" {
		t.Fatalf("commands with a promised status (-want +got):\n%s", diff)
	}
	for _, s := range steps {
		if s.gotStatus != s.wantStatus {
			t.Errorf("%s\n  got %d, want %d; body %q", s.cmd, s.gotStatus, s.wantStatus, s.body)
		}
	}

	// Each 200 is the example upstream saying who called it: with a
	// Bearer token, then with a DPoP-bound one.
	want := map[string]string{
		"X-Tokenguard-Subject":   "demo-user",
		"X-Tokenguard-Client-Id": "demo-client",
		"X-Tokenguard-Scope":     "orders:read",
	}
	for _, i := range []int{0, 3} {
		var echo struct {
			Method, Path string
			Headers      map[string]string
		}
		if err := json.Unmarshal([]byte(steps[i].body), &echo); err != nil {
			t.Fatalf("200 body: %v: %q", err, steps[i].body)
		}
		if echo.Method != "GET" || echo.Path != "/orders/" || !cmp.Equal(want, echo.Headers) {
			t.Errorf("upstream echo = %+v", echo)
		}
	}
	if !strings.Contains(steps[1].wwwAuthenticate, "Bearer realm=") || !strings.Contains(steps[1].wwwAuthenticate, "DPoP ") {
		t.Errorf("401 WWW-Authenticate = %q, want Bearer and DPoP challenges", steps[1].wwwAuthenticate)
	}
	// The challenge's resource_metadata is where the demo serves the
	// document, about the resource the gateway is (RFC 9728 §3.3).
	m := regexp.MustCompile(`resource_metadata="([^"]+)"`).FindStringSubmatch(steps[1].wwwAuthenticate)
	if m == nil || !strings.HasPrefix(m[1], d.GatewayURL+"/") {
		t.Errorf("401 advertises resource_metadata %v, want a URL on the gateway %s", m, d.GatewayURL)
	} else {
		resp, err := http.Get(m[1])
		if err != nil {
			t.Fatal(err)
		}
		var doc struct{ Resource string }
		err = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil || doc.Resource != d.GatewayURL {
			t.Errorf("GET %s: %d, resource %q (%v), want 200 and %s", m[1], resp.StatusCode, doc.Resource, err, d.GatewayURL)
		}
	}
	if !strings.Contains(steps[2].wwwAuthenticate, `error="insufficient_scope"`) {
		t.Errorf("403 WWW-Authenticate = %q", steps[2].wwwAuthenticate)
	}
	if !strings.Contains(steps[4].wwwAuthenticate, `error="invalid_token"`) {
		t.Errorf("DPoP-bound token as Bearer: WWW-Authenticate = %q", steps[4].wwwAuthenticate)
	}

	// The last token is bound to the key keygen wrote (cnf.jkt).
	key, err := keyfile.ReadPrivateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	jkt, _ := dpop.Thumbprint(key.Public())
	if got := testkit.TokenJKT(t, sh.vars["TOKEN"]); got != jkt {
		t.Errorf("the DPoP token's cnf.jkt = %q, want the thumbprint of %s %q", got, keyFile, jkt)
	}
	if fi, err := os.Stat(filepath.Dir(keyFile)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the key's directory: %v, %v; want mode 0700", fi, err)
	}

	// As the text says, a second run of the keygen command keeps the key.
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "go run ./cmd/tokenguard keygen ") {
			args := sh.words(strings.TrimSpace(line))[3:]
			code, _, stderr := runCLI(t, args...)
			if code != exitOK || printedJKT(t, stderr) != jkt {
				t.Errorf("second %s: exit %d, %s", strings.TrimSpace(line), code, stderr)
			}
		}
	}
	if b, _ := os.ReadFile(keyFile); !strings.Contains(string(b), "PRIVATE KEY") {
		t.Errorf("the key file after a second keygen: %q", b)
	} else if k2, _ := keyfile.ReadPrivateKey(keyFile); !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k2.Public()) {
		t.Error("a second keygen replaced the demo's key")
	}

	// The printed configuration is one "tokenguard -config" accepts, as
	// printed (plain text, nothing HTML-escaped).
	_, printed, ok := strings.Cut(out, "run tokenguard -config FILE):\n\n")
	if !ok {
		t.Fatalf("no configuration printed:\n%s", out)
	}
	var cfg strings.Builder
	for line := range strings.Lines(printed) {
		cfg.WriteString(strings.TrimPrefix(line, "  "))
	}
	cfgFile := filepath.Join(t.TempDir(), "demo.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCheck(t, nil, "-config", cfgFile); code != exitOK {
		t.Errorf("check rejects the printed configuration: %s\n%s", stderr, cfg.String())
	}

	// Nothing was written where the commands ran.
	if entries, _ := os.ReadDir(cwd); len(entries) != 0 {
		t.Errorf("the demo's commands wrote %v into the directory they ran in", entries)
	}
}

// By default the demo's DPoP key is in the user's configuration directory,
// never in the source tree the printed commands are run from; printing
// the commands creates nothing.
func TestDemoDefaultKeyOutsideSourceTree(t *testing.T) {
	cfgHome := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfgHome) // os.UserConfigDir on Linux and BSDs
	t.Setenv("HOME", t.TempDir())        // and the base of the macOS one
	cfgDir, err := os.UserConfigDir()
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(cfgDir, "tokenguard", "demo-dpop.pem")
	if got := demo.DefaultOptions().DPoPKey; got != want || got != demo.DefaultDPoPKey() {
		t.Errorf("default DPoP key %q, want %q", got, want)
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if rel, err := filepath.Rel(root, want); err == nil && !strings.HasPrefix(rel, "..") {
		t.Errorf("the default DPoP key %s is inside the source tree %s", want, root)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out strings.Builder
	opts := demo.Options{Issuer: "127.0.0.1:0", Upstream: "127.0.0.1:0", Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0"}
	d, err := demo.Start(ctx, opts, &out, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := d.Run(ctx); err != nil {
		t.Error(err)
	}
	if !strings.Contains(out.String(), "KEY='"+want+"'\n") {
		t.Errorf("with no DPoPKey, the commands do not use %s:\n%s", want, out.String())
	}
	if entries, _ := os.ReadDir(cfgHome); len(entries) != 0 {
		t.Errorf("starting the demo created %v; only the printed commands may", entries)
	}
}

// "tokenguard demo --bff" prints the one URL to open, and it serves the
// app's page (internal/demo's tests run the login flow behind it).
func TestDemoBFF(t *testing.T) {
	d, out := runDemo(t, "--bff")
	urls := regexp.MustCompile(`https?://\S+`).FindAllString(out, -1)
	if len(urls) != 1 || urls[0] != d.AppURL || d.AppURL != d.GatewayURL+"/" {
		t.Fatalf("printed URLs %q, want only the app's page %q:\n%s", urls, d.AppURL, out)
	}
	if strings.Contains(out, "curl") || strings.Contains(out, "client_secret") {
		t.Errorf("the browser mode prints commands or its configuration:\n%s", out)
	}
	resp, err := client.Get(d.AppURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `<script src="/app.js"`) ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Errorf("GET %s: %d %v\n%s", d.AppURL, resp.StatusCode, resp.Header, body)
	}
	b := testkit.NewBrowser(t)
	if landed := b.Login(d.GatewayURL, "?return_to=/"); landed != "/" {
		t.Errorf("the login landed at %q, want /", landed)
	}
	if resp, body := b.Do("GET", d.GatewayURL+"/bff/user", "X-CSRF: 1"); resp.StatusCode != 200 || !strings.Contains(body, `"sub":"demo-user"`) {
		t.Errorf("GET /bff/user: %d %s", resp.StatusCode, body)
	}
}

// step is one printed curl command that promised a status.
type step struct {
	cmd             string
	wantStatus      int
	gotStatus       int
	body            string
	wwwAuthenticate string
}

// shell interprets the demo's printed commands.
type shell struct {
	t     *testing.T
	vars  map[string]string
	steps []step
}

// interpret runs the shell lines of the demo's instructions: NAME=$(...)
// assignments; curl [-i] [-s] [-X METHOD] [-H "NAME: VALUE"] URL [| grep
// ...] commands; and "go run ./cmd/tokenguard ..." commands, run in this
// process. $NAME and $(...) are expanded outside single quotes. A "# NNN:
// ..." comment sets the status the following curl commands must get.
func interpret(t *testing.T, out string) *shell {
	t.Helper()
	sh := &shell{t: t, vars: map[string]string{}}
	want := 0
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "# "):
			want = 0
			if code, _, ok := strings.Cut(strings.TrimPrefix(line, "# "), ":"); ok {
				want, _ = strconv.Atoi(code)
			}
		case assignment.MatchString(line):
			m := assignment.FindStringSubmatch(line)
			sh.vars[m[1]] = sh.output(m[2])
		case literalAssignment.MatchString(line):
			m := literalAssignment.FindStringSubmatch(line)
			sh.vars[m[1]] = sh.words(m[2])[0]
		case strings.HasPrefix(line, "mkdir -p -m 700 "):
			args := sh.words(line)
			if len(args) != 5 {
				t.Fatalf("%s: want one directory", line)
			}
			if err := os.MkdirAll(args[4], 0o700); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(line, "go run ./cmd/tokenguard "):
			sh.tokenguard(sh.words(line))
		case strings.HasPrefix(line, "curl "):
			cmd, pipe, _ := strings.Cut(line, "| grep")
			status, body, h := curl(t, sh.words(cmd))
			if pipe != "" && !strings.Contains(body, "tokenguard_requests_total") {
				t.Errorf("%s: output has no tokenguard_requests_total", line)
			}
			if want != 0 {
				sh.steps = append(sh.steps, step{line, want, status, body, h.Get("WWW-Authenticate")})
			}
		}
	}
	return sh
}

var (
	assignment        = regexp.MustCompile(`^([A-Z_]+)=\$\((.*)\)$`)
	literalAssignment = regexp.MustCompile(`^([A-Z_]+)=('[^']*')$`)
)

// output runs a command substitution and returns its output without
// trailing newlines, as $(...) does.
func (sh *shell) output(cmd string) string {
	sh.t.Helper()
	args := sh.words(cmd)
	if len(args) > 0 && args[0] == "curl" {
		status, body, _ := curl(sh.t, args)
		if status != http.StatusOK {
			sh.t.Fatalf("$(%s): status %d: %s", cmd, status, body)
		}
		return strings.TrimRight(body, "\n")
	}
	return strings.TrimRight(sh.tokenguard(args), "\n")
}

// tokenguard runs "go run ./cmd/tokenguard ARGS" or "tokenguard ARGS" in
// this process and returns its standard output.
func (sh *shell) tokenguard(args []string) string {
	sh.t.Helper()
	switch {
	case len(args) >= 3 && args[0] == "go" && args[1] == "run" && args[2] == "./cmd/tokenguard":
		args = args[3:]
	case len(args) >= 1 && args[0] == "tokenguard":
		args = args[1:]
	default:
		sh.t.Fatalf("not a tokenguard command: %q", args)
	}
	code, stdout, stderr := runCLI(sh.t, args...)
	if code != exitOK {
		sh.t.Fatalf("tokenguard %q: exit %d: %s", args, code, stderr)
	}
	return stdout
}

// words splits s into words, honouring single and double quotes and
// expanding $NAME and $(...) outside single quotes.
func (sh *shell) words(s string) []string {
	t := sh.t
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord := false
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote == '\'' && ch == '\'', quote == '"' && ch == '"':
			quote = 0
		case quote == 0 && (ch == '\'' || ch == '"'):
			quote, inWord = ch, true
		case quote == 0 && ch == ' ':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case quote != '\'' && ch == '$' && i+1 < len(s) && s[i+1] == '(':
			end := closingParen(s, i+2)
			if end < 0 {
				t.Fatalf("unterminated $( in %s", s)
			}
			cur.WriteString(sh.output(s[i+2 : end]))
			inWord = true
			i = end
		case quote != '\'' && ch == '$':
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z') {
				j++
			}
			v, ok := sh.vars[s[i+1:j]]
			if !ok {
				t.Fatalf("%s: $%s is not set", s, s[i+1:j])
			}
			cur.WriteString(v)
			inWord = true
			i = j - 1
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("unterminated quote in %s", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// closingParen returns the index of the ")" that closes a "$(" whose
// contents start at s[from], or -1.
func closingParen(s string, from int) int {
	depth, quote := 1, byte(0)
	for i := from; i < len(s); i++ {
		switch ch := s[i]; {
		case quote != 0:
			if ch == quote {
				quote = 0
			}
		case ch == '\'' || ch == '"':
			quote = ch
		case ch == '(':
			depth++
		case ch == ')':
			if depth--; depth == 0 {
				return i
			}
		}
	}
	return -1
}

// curl performs the request a curl command line describes.
func curl(t *testing.T, args []string) (int, string, http.Header) {
	t.Helper()
	if len(args) == 0 || args[0] != "curl" {
		t.Fatalf("not a curl command: %q", args)
	}
	method, url := "GET", ""
	header := http.Header{}
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-i" || a == "-s":
		case a == "-X" && i+1 < len(args):
			i++
			method = args[i]
		case a == "-H" && i+1 < len(args):
			i++
			name, value, ok := strings.Cut(args[i], ": ")
			if !ok {
				t.Fatalf("bad header %q", args[i])
			}
			header.Add(name, value)
		case !strings.HasPrefix(a, "-") && url == "":
			url = a
		default:
			t.Fatalf("curl option %q not understood in %q", a, args)
		}
	}
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body), resp.Header
}
