package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tokenguard/tokenguard/internal/testkit"
)

// The forward-auth mode end to end, behind the ingresses teams run: real
// nginx (auth_request) and Caddy (forward_auth), configured with the
// blocks README.md's "Behind your ingress" shows (read from the README, so
// the documentation cannot drift from what is tested), each in front of a
// recording upstream. nginx and Caddy are Debian packages that .ci/run
// installs; a test is skipped only when its binary is not installed.

// readmeIngressBlock returns the first fenced block of lang in README.md's
// "### Behind your ingress" section.
func readmeIngressBlock(t testing.TB, lang string) string {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n### Behind your ingress\n")
	if !ok {
		t.Fatal(`README.md has no "### Behind your ingress" section`)
	}
	if end := strings.Index(section, "\n### "); end >= 0 {
		section = section[:end]
	}
	_, block, ok := strings.Cut(section, "\n```"+lang+"\n")
	if !ok {
		t.Fatalf(`README.md's "Behind your ingress" has no %s block`, lang)
	}
	block, _, ok = strings.Cut(block, "\n```\n")
	if !ok {
		t.Fatalf("README.md: the %s block does not end", lang)
	}
	return block + "\n"
}

// The addresses the README's blocks use for the gateway and the API.
const (
	readmeGateway  = "127.0.0.1:8080"
	readmeUpstream = "127.0.0.1:9000"
)

// ingressBlock is the README's block for lang, pointed at gateway and
// upstream (host:port).
func ingressBlock(t testing.TB, lang, gateway, upstream string) string {
	t.Helper()
	b := readmeIngressBlock(t, lang)
	for _, a := range []string{readmeGateway, readmeUpstream} {
		if !strings.Contains(b, a) {
			t.Fatalf("README.md's %s block does not mention %s", lang, a)
		}
	}
	return strings.NewReplacer(readmeGateway, gateway, readmeUpstream, upstream).Replace(b)
}

// lookIngress finds an ingress binary on PATH or where Debian installs it
// (/usr/sbin is not on every user's PATH), and skips the test without it.
func lookIngress(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Skipf("%s is not installed (.ci/run installs it)", name)
	return ""
}

// runIngress starts cmd, which must serve every address in addrs, and
// stops it (SIGTERM, so a master process stops its workers) when the test
// ends. Its output is shown if the test fails.
func runIngress(t testing.TB, cmd *exec.Cmd, addrs ...string) {
	t.Helper()
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(wait):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), out)
		}
	})
	for _, a := range addrs {
		deadline := time.Now().Add(wait)
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				t.Fatalf("%s exited before serving %s:\n%s", filepath.Base(cmd.Path), a, out)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not serve %s:\n%s", filepath.Base(cmd.Path), a, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// startNginx runs nginx as the current user, on 127.0.0.1, with one
// server per entry of sites (listen address → the server's body), and
// its own prefix, temporary directories and pid file in a fresh
// directory.
func startNginx(t testing.TB, sites map[string]string) {
	t.Helper()
	bin := lookIngress(t, "nginx")
	dir := t.TempDir()
	var conf strings.Builder
	fmt.Fprintf(&conf, "worker_processes 1;\nevents { worker_connections 64; }\nhttp {\n    access_log off;\n")
	for _, p := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&conf, "    %s_temp_path %s;\n", p, filepath.Join(dir, p))
	}
	var addrs []string
	for addr, body := range sites {
		addrs = append(addrs, addr)
		fmt.Fprintf(&conf, "    server {\n        listen %s;\n%s    }\n", addr, body)
	}
	conf.WriteString("}\n")
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	runIngress(t, exec.Command(bin, "-e", "stderr", "-p", dir, "-c", path,
		"-g", "daemon off; pid "+filepath.Join(dir, "nginx.pid")+"; error_log stderr;"), addrs...)
}

// startCaddy runs Caddy with the Caddyfile sites, its admin endpoint off
// and HOME and its data and configuration directories in a fresh
// directory.
func startCaddy(t testing.TB, sites string, addrs ...string) {
	t.Helper()
	bin := lookIngress(t, "caddy")
	dir := t.TempDir()
	caddyfile := "{\n\tadmin off\n\tauto_https off\n}\n\n" + sites
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "data"))
	runIngress(t, cmd, addrs...)
}

// ingressUnderTest is an ingress in front of the recording upstream, with
// the gateway (which trusts it) and, at untrusted, one that does not.
type ingressUnderTest struct {
	addr, untrusted string // host:port
	// status is what the ingress makes of the gateway's status: nginx
	// passes only 401 and 403.
	status func(int) int
	// bodies: the client gets the gateway's denial bodies.
	bodies bool
}

func TestIngressNginx(t *testing.T) {
	lookIngress(t, "nginx")
	testIngress(t, func(t *testing.T, gw, untrusted, upstream string) ingressUnderTest {
		in := ingressUnderTest{addr: testkit.ClosedAddr(t), untrusted: testkit.ClosedAddr(t), status: func(s int) int {
			if s == http.StatusUnauthorized || s == http.StatusForbidden || s < 300 {
				return s
			}
			return http.StatusInternalServerError
		}}
		startNginx(t, map[string]string{
			in.addr:      ingressBlock(t, "nginx", gw, upstream),
			in.untrusted: ingressBlock(t, "nginx", untrusted, upstream),
		})
		return in
	})
}

func TestIngressCaddy(t *testing.T) {
	lookIngress(t, "caddy")
	testIngress(t, func(t *testing.T, gw, untrusted, upstream string) ingressUnderTest {
		in := ingressUnderTest{addr: testkit.ClosedAddr(t), untrusted: testkit.ClosedAddr(t), status: func(s int) int { return s }, bodies: true}
		site := func(addr, gw string) string {
			b := ingressBlock(t, "caddyfile", gw, upstream)
			if !strings.HasPrefix(b, "api.example.com {") {
				t.Fatalf("README.md's Caddy block does not start with its site address api.example.com: %q", b)
			}
			return "http://" + addr + strings.TrimPrefix(b, "api.example.com")
		}
		startCaddy(t, site(in.addr, gw)+"\n"+site(in.untrusted, untrusted), in.addr, in.untrusted)
		return in
	})
}

// testIngress runs the forward-auth scenario behind the ingress start
// makes, given the addresses of a gateway that trusts 127.0.0.1, one that
// does not, and the upstream.
func testIngress(t *testing.T, start func(t *testing.T, gw, untrusted, upstream string) ingressUnderTest) {
	is := startIssuer(t)
	down := startIssuer(t) // an issuer whose keys never load: 503
	down.FailJWKS(http.StatusServiceUnavailable)
	up := startUpstream(t)
	yml := forwardAuthYAML(is, "", "127.0.0.1", "")
	yml = strings.Replace(yml, "dpop:\n  mode: allowed\n",
		fmt.Sprintf("  - issuer: %s\n    jwks_uri: %s/jwks\ndpop:\n  mode: allowed\n  nonce: true\n", down.URL(), down.URL()), 1)
	yml = strings.Replace(yml, "startup_wait: 5s\n", "startup_wait: 0s\n", 1)
	g := runGateway(t, yml)
	gu := runGateway(t, forwardAuthYAML(is, "", "10.0.0.0/8", ""))
	in := start(t, g.gw.Addr(), gu.gw.Addr(), strings.TrimPrefix(up.URL, "http://"))
	base := "http://" + in.addr

	read := mint(t, is, "orders:read profile")
	// The working issuer's keys, before the first request through the
	// ingress (startup_wait is 0s: the other issuer's never load).
	waitFor(t, func() bool {
		resp, _ := askNginx(t, g, "GET", "/orders/1", http.Header{"Authorization": {"Bearer " + read}})
		return resp.StatusCode == http.StatusOK
	}, "the issuer's keys")

	notForwarded := func(t *testing.T, before int) {
		t.Helper()
		if n := up.count(); n != before {
			t.Errorf("the upstream saw it: %s %s", up.last(t).Method, up.last(t).RequestURI)
		}
	}
	wantDenial := func(t *testing.T, resp *http.Response, body string, status int, challenge, code string) {
		t.Helper()
		if want := in.status(status); resp.StatusCode != want {
			t.Errorf("status %d, want %d (the gateway's %d)", resp.StatusCode, want, status)
		}
		if challenge != "" {
			if got := strings.Join(resp.Header.Values("WWW-Authenticate"), ", "); !strings.Contains(got, challenge) {
				t.Errorf("WWW-Authenticate %q, want it to contain %q", got, challenge)
			}
		}
		if !in.bodies {
			return
		}
		var b struct{ Error string }
		if err := json.Unmarshal([]byte(body), &b); err != nil || b.Error == "" || code != "" && b.Error != code {
			t.Errorf("body %q, want the gateway's JSON %s", body, cmpOr(code, "error"))
		}
	}

	t.Run("allowed: the upstream gets the identity, never the client's", func(t *testing.T) {
		before := up.count()
		resp, body := do(t, "GET", base+"/orders/42?page=2", read, http.Header{
			"X-Tokenguard-Subject":   {"admin"},
			"x-tokenguard-client-id": {"evil"},
			"X-Tokenguard-Scope":     {"admin"},
		})
		if resp.StatusCode != http.StatusOK || body != "upstream saw GET /orders/42" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		if up.count() != before+1 {
			t.Fatalf("upstream requests %d, want %d", up.count(), before+1)
		}
		r := up.last(t)
		want := map[string][]string{
			"X-Tokenguard-Subject":   {"demo-user"},
			"X-Tokenguard-Client-Id": {"demo-client"},
			"X-Tokenguard-Scope":     {"orders:read profile"},
		}
		if diff := cmp.Diff(want, tokenguardHeaders(r.Header)); diff != "" {
			t.Errorf("upstream's identity headers (-want +got):\n%s", diff)
		}
		if r.RequestURI != "/orders/42?page=2" {
			t.Errorf("upstream's request-target %q", r.RequestURI)
		}
	})

	t.Run("public route: allowed, no identity", func(t *testing.T) {
		resp, body := do(t, "GET", base+"/status", "", http.Header{"X-Tokenguard-Subject": {"admin"}})
		if resp.StatusCode != http.StatusOK || body != "upstream saw GET /status" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		// An empty header is no identity (Caddy passes the answer's empty
		// values on; nginx sends none).
		for k, vs := range tokenguardHeaders(up.last(t).Header) {
			if len(vs) != 1 || vs[0] != "" {
				t.Errorf("%s: %q reached the upstream", k, vs)
			}
		}
	})

	t.Run("no token: 401 with the challenge", func(t *testing.T) {
		before := up.count()
		resp, body := do(t, "GET", base+"/orders/1", "", nil)
		wantDenial(t, resp, body, http.StatusUnauthorized, `Bearer realm="https://api.example.com"`, "")
		if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, "DPoP ") || !strings.Contains(ch, "resource_metadata=") {
			t.Errorf("WWW-Authenticate %q lacks the DPoP challenge or resource_metadata", ch)
		}
		notForwarded(t, before)
	})

	t.Run("bad token: 401 invalid_token", func(t *testing.T) {
		before := up.count()
		resp, body := do(t, "GET", base+"/orders/1", "not.a.jwt", nil)
		wantDenial(t, resp, body, http.StatusUnauthorized, `error="invalid_token"`, "")
		notForwarded(t, before)
	})

	t.Run("missing scope: 403 insufficient_scope", func(t *testing.T) {
		before := up.count()
		resp, body := do(t, "POST", base+"/orders/1", read, nil)
		wantDenial(t, resp, body, http.StatusForbidden, `error="insufficient_scope"`, "")
		notForwarded(t, before)
	})

	t.Run("DPoP: the nonce reaches the client, and the retry the upstream", func(t *testing.T) {
		key := newDPoPKey(t)
		bound := key.mintBound(t, is, "orders:read")
		htu := base + "/orders/5" // the forwarded scheme and host: no public_url here
		h := http.Header{"Authorization": {"DPoP " + bound}}
		h.Set("DPoP", key.proof(t, "GET", htu, bound, ""))
		before := up.count()
		resp, body := do(t, "GET", base+"/orders/5", "", h)
		wantDenial(t, resp, body, http.StatusUnauthorized, `error="use_dpop_nonce"`, "")
		nonce := resp.Header.Get("DPoP-Nonce")
		if nonce == "" {
			t.Fatal("no DPoP-Nonce reached the client")
		}
		notForwarded(t, before)
		h.Set("DPoP", key.proof(t, "GET", htu, bound, nonce))
		resp, body = do(t, "GET", base+"/orders/5", "", h)
		if resp.StatusCode != http.StatusOK || body != "upstream saw GET /orders/5" {
			t.Fatalf("with the nonce: %d %q", resp.StatusCode, body)
		}
		if s := up.last(t).Header.Get(HeaderSubject); s != "demo-user" {
			t.Errorf("upstream's subject %q", s)
		}
	})

	t.Run("keys unavailable: refused, never forwarded", func(t *testing.T) {
		before := up.count()
		resp, body := do(t, "GET", base+"/orders/1", mint(t, down, "orders:read"), nil)
		wantDenial(t, resp, body, http.StatusServiceUnavailable, "", "")
		notForwarded(t, before)
	})

	t.Run("no route: refused, never forwarded", func(t *testing.T) {
		before := up.count()
		resp, body := do(t, "GET", base+"/admin", read, nil)
		wantDenial(t, resp, body, http.StatusNotFound, "", "not_found")
		notForwarded(t, before)
	})

	t.Run("bypass paths are never forwarded", func(t *testing.T) {
		for _, p := range []string{
			"/orders/..%2Fadmin", "/orders/..%2fadmin", "/orders/%2e%2e/admin", "/orders/%2E%2E%2Fadmin",
			"/orders/.%2e/admin", "/orders/../admin", "/orders//admin", "/orders/;/../admin", "/orders/..;/admin",
			"/orders/%252e%252e%252fadmin", "/orders/%c0%ae%c0%ae/admin", `/orders\..\admin`,
		} {
			before := up.count()
			resp, body := rawRequest(t, in.addr, "GET "+p+" HTTP/1.1\r\nHost: "+in.addr+"\r\nAuthorization: Bearer "+read+"\r\nConnection: close\r\n\r\n")
			if resp.StatusCode < 400 {
				t.Errorf("%s: %d %q", p, resp.StatusCode, body)
			}
			if in.bodies && (resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "invalid_path")) {
				t.Errorf("%s: %d %q, want the gateway's 400 invalid_path", p, resp.StatusCode, body)
			}
			if up.count() != before {
				t.Errorf("%s reached the upstream as %s", p, up.last(t).RequestURI)
			}
		}
	})

	t.Run("an untrusted peer is refused", func(t *testing.T) {
		before := up.count()
		resp, body := do(t, "GET", "http://"+in.untrusted+"/orders/1", read, nil)
		wantDenial(t, resp, body, http.StatusForbidden, "", "untrusted_proxy")
		notForwarded(t, before)
	})

	t.Run("the metadata document is the gateway's", func(t *testing.T) {
		resp, body := do(t, "GET", base+"/.well-known/oauth-protected-resource", "", nil)
		var doc struct{ Resource string }
		if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &doc) != nil || doc.Resource != testAudience {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	})

	if t.Failed() {
		// Which decisions the gateway took, for the reader of a failure.
		var b bytes.Buffer
		for _, l := range accessLines(t, g.stderr.String()) {
			fmt.Fprintf(&b, "%v %v %v -> %v %v\n", l["forwarded_method"], l["forwarded_path"], l["path"], l["status"], l["reason"])
		}
		t.Logf("gateway decisions:\n%s", b.String())
	}
}
