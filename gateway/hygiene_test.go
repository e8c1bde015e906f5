package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/testkit"
	"github.com/tokenguard/tokenguard/middleware"
)

// frameworkPath is the path as a lenient framework routes on it: decoded
// once, '\' read as '/', ";params" stripped from each segment, trailing
// dots and spaces dropped (Windows), dot segments resolved and slashes
// merged. Spring, Tomcat, IIS and many Node and Python stacks do some
// combination of these; this upstream does all of them.
func frameworkPath(escaped string) string {
	d, err := url.PathUnescape(escaped)
	if err != nil {
		d = escaped
	}
	d = strings.ReplaceAll(d, "\\", "/")
	var segs []string
	for s := range strings.SplitSeq(d, "/") {
		s, _, _ = strings.Cut(s, ";")
		if strings.Trim(s, ".") != "" { // "." and ".." are resolved below
			s = strings.TrimRight(s, ". ")
		}
		segs = append(segs, s)
	}
	p := path.Clean("/" + strings.Join(segs, "/"))
	if strings.HasSuffix(d, "/") && p != "/" {
		p += "/"
	}
	return p
}

// hygieneYAML has three routes: orders (orders:read), an admin area
// (admin) and, as many APIs do, everything else for any valid token.
func hygieneYAML(is *devissuer.Issuer, upstreamURL, extra string) string {
	return fmt.Sprintf(`listen: 127.0.0.1:0
metrics_listen: 127.0.0.1:0
upstream: %s
audience: %s
issuers:
  - issuer: %s
    jwks_uri: %s/jwks
routes:
  - pattern: "GET /orders/"
    scopes: [orders:read]
  - pattern: "GET /admin/"
    scopes: [admin]
  - pattern: "GET /"
startup_wait: 5s
log_format: json
%s`, upstreamURL, testAudience, is.URL(), is.URL(), extra)
}

// rawRequest sends req as written to addr and reads one response.
func rawRequest(t testing.TB, addr, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestGatewayPathHygiene sends an orders:read token down every path that
// ServeMux keeps inside /orders/ (or the catch-all) while a decoding
// upstream routes it to /admin/. With path_normalization: reject, each is
// a 400 that never reaches the upstream. With forward_unchanged, the same
// requests do reach the admin area: the upstream is realistic and the
// check is what stops them.
func TestGatewayPathHygiene(t *testing.T) {
	is := startIssuer(t)
	var reached atomic.Int32
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		if strings.HasPrefix(frameworkPath(r.URL.EscapedPath()), "/admin/") {
			io.WriteString(w, "admin area")
			return
		}
		io.WriteString(w, "elsewhere")
	})
	strict := runGateway(t, hygieneYAML(is, up.URL, ""))
	lax := runGateway(t, hygieneYAML(is, up.URL, "path_normalization: forward_unchanged\n"))
	tok := mint(t, is, "orders:read")

	tests := []struct {
		target string
		bypass bool // forward_unchanged lets an orders:read token into the admin area
	}{
		{"/orders/..%2fadmin/users", true},
		{"/orders/..%2Fadmin/users", true},
		{"/orders/%2e%2e/admin/users", true},
		{"/orders/%2E%2E/admin/users", true},
		{"/orders/.%2e/admin/users", true},
		{"/orders/..%5cadmin/users", true},
		{"/orders/..\\admin/users", true},
		{"/orders/..;/admin/users", true},
		{"/admin;x/users", true},
		{"/admin./users", true},
		{"/admin%20/users", true},
		{"/orders/%252e%252e/admin/users", false}, // decoded twice by some stacks
		{"/orders/%c0%ae%c0%ae/admin/users", false},
		{"/orders/%EF%BC%8E%EF%BC%8E/admin/users", false},
		{"/orders/../admin/users", false}, // ServeMux itself redirects plain dot segments
		{"//admin/users", false},
		{"/orders/x%00.json", false},
		{"http://api.example.com/admin/users", false},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer %s\r\n\r\n", tt.target, tok)
			before := reached.Load()
			resp, body := rawRequest(t, strict.gw.Addr(), req)
			if resp.StatusCode != 400 || body != `{"error":"invalid_path"}`+"\n" {
				t.Errorf("reject: %d %q, want 400 invalid_path", resp.StatusCode, body)
			}
			if reached.Load() != before {
				t.Errorf("reject: the request reached the upstream")
			}
			resp, body = rawRequest(t, lax.gw.Addr(), req)
			if got := resp.StatusCode == 200 && body == "admin area"; got != tt.bypass {
				t.Errorf("forward_unchanged: %d %q; bypass = %v, want %v", resp.StatusCode, body, got, tt.bypass)
			}
		})
	}
	// Ordinary paths still work, and the token's scope still matters.
	for target, want := range map[string]int{"/orders/42": 200, "/orders/caf%C3%A9": 200, "/admin/users": 403, "/other": 200} {
		resp, body := rawRequest(t, strict.gw.Addr(), fmt.Sprintf("GET %s HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer %s\r\n\r\n", target, tok))
		if resp.StatusCode != want {
			t.Errorf("%s: %d %q, want %d", target, resp.StatusCode, body, want)
		}
	}
	// Every refusal is counted with its own reason, and logged as such.
	_, metrics := do(t, "GET", strict.metric+"/metrics", "", nil)
	want := fmt.Sprintf(`tokenguard_requests_total{reason="invalid_path",result="denied"} %d`, len(tests))
	if !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %s:\n%s", want, grepLines(metrics, "invalid_path"))
	}
	if !strings.Contains(strict.stderr.String(), `"decision":"deny","reason":"invalid_path"`) {
		t.Errorf("the access log does not show the refusal:\n%s", strict.stderr)
	}
}

// TestGatewayForwardsWhatItMatched: the path the upstream receives is the
// upstream's base path followed by the client's path, byte for byte,
// whatever escapes it holds; the route was matched on that same path.
func TestGatewayForwardsWhatItMatched(t *testing.T) {
	is := startIssuer(t)
	seen := make(chan string, 1)
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.RequestURI
		io.WriteString(w, r.Pattern)
	})
	g := runGateway(t, hygieneYAML(is, up.URL+"/api", ""))
	tok := mint(t, is, "orders:read")
	for _, target := range []string{
		"/orders/1",
		"/orders/%41b",
		"/orders/%7e",
		"/orders/caf%C3%A9",
		"/orders/caf%c3%a9",
		"/orders/a%20b",
		"/orders/a:b@c!$&'()*+,=",
		"/orders/x?y=%2e%2e&z=..%2f",
		"/orders/",
		"/",
	} {
		resp, body := rawRequest(t, g.gw.Addr(), fmt.Sprintf("GET %s HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer %s\r\n\r\n", target, tok))
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d %q", target, resp.StatusCode, body)
			continue
		}
		if got := <-seen; got != "/api"+target {
			t.Errorf("%s: the upstream got %q, want %q", target, got, "/api"+target)
		}
	}
}

// TestGatewayHeaderFolding runs a real CGI program (/bin/sh under
// net/http/cgi) as the upstream: CGI turns every request header into
// HTTP_<NAME> with '-' as '_' and letters upper-cased, as WSGI, PHP and
// Rack do, so X_Tokenguard_Subject lands where X-Tokenguard-Subject does.
// No spelling a client sends may reach it.
func TestGatewayHeaderFolding(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh to run a CGI program with")
	}
	script := filepath.Join(t.TempDir(), "env.sh")
	if err := os.WriteFile(script, []byte("printf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv | grep '^HTTP_' | sort\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cgiVar := func(name string) string {
		return "HTTP_" + strings.Map(func(r rune) rune {
			if r == '-' {
				return '_'
			}
			return r
		}, strings.ToUpper(name))
	}
	var mu sync.Mutex
	var folded map[string]int // how many header names folded to each CGI variable, last request
	is := startIssuer(t)
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		m := map[string]int{}
		for k := range r.Header {
			m[cgiVar(k)]++
		}
		mu.Lock()
		folded = m
		mu.Unlock()
		(&cgi.Handler{Path: "/bin/sh", Args: []string{script}}).ServeHTTP(w, r)
	})
	tok := mint(t, is, "orders:read")
	claims := testkit.DecodeClaims(t, tok)
	spoof := "X_Tokenguard_Subject: admin\r\nX-Tokenguard_Scope: admin\r\nx_tokenguard_client_id: evil\r\n" +
		"X-TOKENGUARD-SUBJECT: admin\r\nX_Forwarded_For: 6.6.6.6\r\nX_Real_IP: 6.6.6.6\r\nMy_Header: kept\r\n"

	for _, tt := range []struct {
		extra      string
		wantMyHead bool
	}{
		{"", false},
		{"allow_underscore_headers: true\n", true},
	} {
		t.Run(strings.TrimSpace(cmpOr(tt.extra, "default")), func(t *testing.T) {
			g := runGateway(t, hygieneYAML(is, up.URL, tt.extra))
			resp, body := rawRequest(t, g.gw.Addr(), "GET /orders/1 HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer "+tok+"\r\n"+spoof+"\r\n")
			if resp.StatusCode != 200 {
				t.Fatalf("%d %q", resp.StatusCode, body)
			}
			env := map[string]string{}
			for line := range strings.Lines(body) {
				k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
				env[k] = v
			}
			want := map[string]string{
				"HTTP_X_TOKENGUARD_SUBJECT":   claims["sub"].(string),
				"HTTP_X_TOKENGUARD_CLIENT_ID": claims["client_id"].(string),
				"HTTP_X_TOKENGUARD_SCOPE":     "orders:read",
				"HTTP_X_FORWARDED_FOR":        "127.0.0.1",
			}
			for k, v := range want {
				if env[k] != v {
					t.Errorf("CGI sees %s=%q, want %q", k, env[k], v)
				}
			}
			if _, ok := env["HTTP_X_REAL_IP"]; ok {
				t.Errorf("CGI sees HTTP_X_REAL_IP=%q", env["HTTP_X_REAL_IP"])
			}
			if got := env["HTTP_MY_HEADER"] == "kept"; got != tt.wantMyHead {
				t.Errorf("My_Header forwarded = %v, want %v", got, tt.wantMyHead)
			}
			mu.Lock()
			defer mu.Unlock()
			for k := range want {
				if folded[k] != 1 {
					t.Errorf("%d header names fold to %s, want exactly the gateway's one", folded[k], k)
				}
			}
		})
	}
}

// h2cUpstream answers an "Upgrade: h2c" request with 101, as Go's h2c
// handler, Jetty and nghttpx do, and counts the upgrades it was asked for.
// Other requests get 200.
type h2cUpstream struct {
	ln       net.Listener
	upgrades atomic.Int32
	requests atomic.Int32
}

func startH2CUpstream(t testing.TB) *h2cUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &h2cUpstream{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go u.serve(c)
		}
	}()
	return u
}

func (u *h2cUpstream) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		u.requests.Add(1)
		if req.Header.Get("Upgrade") != "" {
			u.upgrades.Add(1)
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
			io.Copy(io.Discard, br) // whatever HTTP/2 the client sends next is never checked by anyone
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	}
}

func TestGatewayRefusesProtocolSwitches(t *testing.T) {
	is := startIssuer(t)
	up := startH2CUpstream(t)
	tok := mint(t, is, "orders:read")
	upURL := "http://" + up.ln.Addr().String()
	def := runGateway(t, hygieneYAML(is, upURL, ""))
	none := runGateway(t, hygieneYAML(is, upURL, "upgrades: []\n"))
	lax := runGateway(t, hygieneYAML(is, upURL, "path_normalization: forward_unchanged\n"))

	h2c := "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
	ws := "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	tests := []struct {
		name    string
		g       *running
		headers string
	}{
		{"h2c", def, h2c},
		{"h2c with forward_unchanged", lax, h2c},
		{"h2c without Connection", def, "Upgrade: h2c\r\n"},
		{"websocket, h2c", def, "Connection: Upgrade\r\nUpgrade: websocket, h2c\r\n"},
		{"h2c in a second Upgrade header", def, "Connection: Upgrade\r\nUpgrade: websocket\r\nUpgrade: h2c\r\n"},
		{"TLS upgrade", def, "Connection: Upgrade\r\nUpgrade: TLS/1.2\r\n"},
		{"websocket with upgrades: []", none, ws},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.requests.Load()
			resp, body := rawRequest(t, tt.g.gw.Addr(), "GET /orders/1 HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer "+tok+"\r\n"+tt.headers+"\r\n")
			if resp.StatusCode != 400 || body != `{"error":"invalid_request"}`+"\n" {
				t.Errorf("%d %q, want 400 invalid_request", resp.StatusCode, body)
			}
			if !resp.Close {
				t.Error("the connection stays open after a refused upgrade")
			}
			if up.requests.Load() != before {
				t.Error("the request reached the upstream")
			}
		})
	}
	if n := up.upgrades.Load(); n != 0 {
		t.Errorf("the upstream was asked to switch protocols %d times", n)
	}
	// The same request without the upgrade goes through.
	if resp, body := rawRequest(t, def.gw.Addr(), "GET /orders/1 HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer "+tok+"\r\n\r\n"); resp.StatusCode != 200 {
		t.Errorf("plain request: %d %q", resp.StatusCode, body)
	}
	_, metrics := do(t, "GET", def.metric+"/metrics", "", nil)
	if want := fmt.Sprintf(`tokenguard_requests_total{reason="upgrade_refused",result="denied"} %d`, 5); !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %s:\n%s", want, grepLines(metrics, "upgrade_refused"))
	}
}

func TestGatewayAllowedHosts(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, hygieneYAML(is, up.URL, "allowed_hosts: [api.example.com, \"127.0.0.1:8443\"]\n"))
	tok := mint(t, is, "orders:read")
	for _, tt := range []struct {
		host string
		want int
	}{
		{"api.example.com", 200},
		{"API.Example.COM:443", 200},
		{"127.0.0.1:8443", 200},
		{"127.0.0.1:8080", 421},
		{"evil.example.com", 421},
		{"api.example.com.evil.example.com", 421},
	} {
		before := up.count()
		resp, body := rawRequest(t, g.gw.Addr(), "GET /orders/1 HTTP/1.1\r\nHost: "+tt.host+"\r\nAuthorization: Bearer "+tok+"\r\n\r\n")
		if resp.StatusCode != tt.want {
			t.Errorf("Host %s: %d %q, want %d", tt.host, resp.StatusCode, body, tt.want)
		}
		if tt.want == 421 {
			if body != `{"error":"misdirected_request"}`+"\n" {
				t.Errorf("Host %s: body %q", tt.host, body)
			}
			if up.count() != before {
				t.Errorf("Host %s: forwarded", tt.host)
			}
		}
	}
	_, metrics := do(t, "GET", g.metric+"/metrics", "", nil)
	if want := `tokenguard_requests_total{reason="misdirected_request",result="denied"} 3`; !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %s:\n%s", want, grepLines(metrics, "misdirected"))
	}
}

func TestGatewayWarnsWhenHTUComesFromHost(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	for _, tt := range []struct {
		extra, want string
	}{
		{"dpop:\n  mode: allowed\n", "so any Host is believed"},
		{"dpop:\n  mode: allowed\nallowed_hosts: [api.example.com]\n", "(one of allowed_hosts)"},
		{"dpop:\n  mode: allowed\npublic_url: https://api.example.com\n", ""},
		{"", ""},
	} {
		g := runGateway(t, hygieneYAML(is, up.URL, tt.extra))
		log := g.stderr.String()
		warned := strings.Contains(log, "public_url is unset")
		if warned != (tt.want != "") || tt.want != "" && !strings.Contains(log, tt.want) {
			t.Errorf("%q: warned = %v, want %q:\n%s", tt.extra, warned, tt.want, log)
		}
	}
}

func TestParseConfigHygiene(t *testing.T) {
	base := gatewayYAML("https://as.example.com", "https://as.example.com/jwks", "http://127.0.0.1:9000", "")
	tests := []struct {
		extra   string
		wantErr string
		check   func(*config) bool
	}{
		{"", "", func(c *config) bool {
			return c.PathNormalization == pathReject && c.AllowWebSocket && c.AllowedHosts == nil && !c.AllowUnderscoreHeaders
		}},
		{"path_normalization: forward_unchanged\n", "", func(c *config) bool { return c.PathNormalization == pathForwardUnchanged }},
		{"upgrades: []\n", "", func(c *config) bool { return !c.AllowWebSocket }},
		{"upgrades: [websocket]\n", "", func(c *config) bool { return c.AllowWebSocket }},
		{"allowed_hosts: [API.example.com, \"[::1]:8080\", 127.0.0.1, \"::1\"]\n", "", func(c *config) bool {
			return slices.Equal(c.AllowedHosts, []string{"api.example.com", "[::1]:8080", "127.0.0.1", "::1"})
		}},
		{"allow_underscore_headers: true\n", "", func(c *config) bool { return c.AllowUnderscoreHeaders }},

		{"path_normalization: normalize\n", `path_normalization: "normalize" is not one of reject, forward_unchanged`, nil},
		{"upgrades: [h2c]\n", `upgrades[0]: "h2c" cannot be passed`, nil},
		{"upgrades: [websocket, WebSocket]\n", `upgrades[1]: "WebSocket" cannot be passed`, nil},
		{"allowed_hosts: []\n", "allowed_hosts: an empty list would refuse every request", nil},
		{"allowed_hosts: [\"https://api.example.com\"]\n", "allowed_hosts[0]: \"https://api.example.com\" is not a host or host:port", nil},
		{"allowed_hosts: [\"api.example.com/x\"]\n", "is not a host or host:port", nil},
		{"allowed_hosts: [\"api.example.com:99999\"]\n", "port must be a number", nil},
		{"allowed_hosts: [\"caf\u00e9.example\"]\n", "xn--", nil},
		{"allowed_hosts: [\"\"]\n", "allowed_hosts[0]: empty", nil},
	}
	for _, tt := range tests {
		c, err := parseConfig("t.yaml", []byte(base+tt.extra))
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err = %v, want %q", tt.extra, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("%q: %v", tt.extra, err)
		case !tt.check(c):
			t.Errorf("%q: unexpected config %+v", tt.extra, c)
		}
	}
}

// inProcessGateway builds the gateway's handler from yamlText with its
// upstream transport replaced by rt: the real routing, hygiene, guard and
// Rewrite, without sockets.
func inProcessGateway(t testing.TB, yamlText string, rt http.RoundTripper) http.Handler {
	t.Helper()
	cfg, err := parseConfig("fuzz.yaml", []byte(yamlText))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	guard, err := middleware.New(ctx, cfg.guardConfig(log, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { guard.Close() })
	proxy := newProxy(cfg, log)
	proxy.Transport = rt
	h, err := newProxyHandler(cfg, guard, nil, proxy, log)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// forwardRecorder is an upstream transport that records what would be
// sent: the request-target on the wire and the route the gateway matched.
type forwardRecorder struct {
	target, pattern string
}

func (f *forwardRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	f.target, f.pattern = r.URL.RequestURI(), r.Pattern
	return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
}

// FuzzGatewayTarget: whatever request-target the gateway forwards, it
// forwards byte for byte, and the upstream's decoded, dot-resolved path
// (read as a decoding framework, a double-decoding one and a lenient one
// read it) matches the same route as the gateway matched.
func FuzzGatewayTarget(f *testing.F) {
	is := startIssuer(f)
	tok := mint(f, is, "orders:read admin")
	rec := &forwardRecorder{}
	routes := []string{"GET /orders/", "GET /orders/{id}/items", "GET /admin/", "GET /"}
	yamlText := hygieneYAML(is, "http://127.0.0.1:1", "") +
		"" // hygieneYAML's routes are a subset; the fuzz adds one below
	yamlText = strings.Replace(yamlText, "  - pattern: \"GET /admin/\"", "  - pattern: \"GET /orders/{id}/items\"\n  - pattern: \"GET /admin/\"", 1)
	h := inProcessGateway(f, yamlText, rec)
	upstreamMux := http.NewServeMux()
	for _, p := range routes {
		upstreamMux.Handle(p, http.NotFoundHandler())
	}
	routeOf := func(p string) string {
		_, pat := upstreamMux.Handler(&http.Request{Method: "GET", Host: "api.example.com", URL: &url.URL{Path: p}})
		return pat
	}
	readings := map[string]func(string) string{
		"decoded": func(p string) string {
			d, _ := url.PathUnescape(p)
			return d
		},
		"decoded twice": func(p string) string {
			d, _ := url.PathUnescape(p)
			d, _ = url.PathUnescape(d)
			return d
		},
		"lenient": frameworkPath,
	}

	for _, seed := range []string{
		"/orders/1",                        // plain
		"/orders/1/items",                  // a wildcard route
		"/orders/..%2fadmin/",              // encoded slash next to dots
		"/orders/%2e%2e/admin/",            // encoded dot segment
		"/orders/..;/admin/",               // path parameter
		"/orders/..\\admin/",               // backslash
		"/orders/%252e%252e/admin/",        // double encoding
		"/admin./",                         // Windows trailing dot
		"/orders/%EF%BC%8E%EF%BC%8E/admin", // fullwidth dots
		"/orders/%41%42",                   // encoded unreserved
		"/orders/a%2Fb/items",              // encoded slash inside a wildcard segment
		"/orders/caf%C3%A9/items",          // UTF-8
		"http://h/admin/",                  // absolute-form
		"/orders?x=../admin",               // dots in the query only
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, target string) {
		raw := "GET " + target + " HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer " + tok + "\r\n\r\n"
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return // Go's server answers 400 itself
		}
		req.RemoteAddr = "127.0.0.1:1"
		*rec = forwardRecorder{}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if rec.target == "" {
			return // not forwarded
		}
		wantPath, _, _ := strings.Cut(target, "?")
		gotPath, _, _ := strings.Cut(rec.target, "?")
		if gotPath != wantPath {
			t.Fatalf("target %q forwarded as %q", target, rec.target)
		}
		for name, read := range readings {
			if got := routeOf(read(gotPath)); got != rec.pattern {
				t.Fatalf("target %q: the gateway matched %q, a %s reading of the forwarded path (%q) matches %q",
					target, rec.pattern, name, read(gotPath), got)
			}
		}
	})
}
