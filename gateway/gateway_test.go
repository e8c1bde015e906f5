package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tokenguard/tokenguard/internal/hygiene"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

// upstream is an example API that records what reached it.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex // guards reqs
	reqs []*http.Request

	entered     chan struct{} // receives when a request to /slow arrives
	release     chan struct{} // closed to let /slow requests finish
	releaseOnce sync.Once
}

func startUpstream(t testing.TB) *upstream {
	t.Helper()
	u := &upstream{entered: make(chan struct{}, 1), release: make(chan struct{})}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.reqs = append(u.reqs, r.Clone(context.Background()))
		u.mu.Unlock()
		if r.URL.Path == "/slow" {
			u.entered <- struct{}{}
			select {
			case <-u.release:
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprintf(w, "upstream saw %s %s", r.Method, r.URL.Path)
	}))
	t.Cleanup(func() {
		u.releaseAll()
		u.Close()
	})
	return u
}

func (u *upstream) releaseAll() { u.releaseOnce.Do(func() { close(u.release) }) }

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

func (u *upstream) last(t testing.TB) *http.Request {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("upstream saw no request")
	}
	return u.reqs[len(u.reqs)-1]
}

// running is a gateway started from a configuration file, as the binary
// starts it.
type running struct {
	gw     *Gateway
	stderr *lockedBuffer
	stop   context.CancelFunc
	done   chan error // what Run returned, once it has
	proxy  string     // http://host:port
	metric string     // http://host:port
	path   string     // the configuration file
}

// runGateway writes yamlText to a file and runs the gateway from it, with
// the same calls as the binary: LoadConfig, Start, Run. It stops the
// gateway at cleanup.
func runGateway(t testing.TB, yamlText string) *running {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokenguard.yaml")
	if err := os.WriteFile(path, []byte(yamlText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &running{stderr: &lockedBuffer{}, done: make(chan error, 1), path: path}
	if r.gw, err = New(cfg, Options{Logger: cfg.NewLogger(r.stderr)}); err != nil {
		t.Fatalf("gateway: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	startCtx, cancelStart := context.WithTimeout(ctx, wait)
	defer cancelStart()
	if err := r.gw.Start(startCtx); err != nil {
		cancel()
		t.Fatalf("gateway did not start: %v\n%s", err, r.stderr)
	}
	go func() { r.done <- r.gw.Run(ctx) }()
	r.proxy = "http://" + r.gw.Addr()
	r.metric = "http://" + r.gw.MetricsAddr()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(wait):
			t.Errorf("gateway did not stop within %v", wait)
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", r.stderr)
		}
	})
	return r
}

var client = &http.Client{Timeout: wait}

// do sends a request and returns the response with its body read.
func do(t testing.TB, method, url, token string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v // as given: tests send non-canonical names on purpose
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// tokenguardHeaders returns the X-Tokenguard-* headers of h, in any case.
func tokenguardHeaders(h http.Header) map[string][]string {
	out := map[string][]string{}
	for k, v := range h {
		if hygiene.FoldedHasPrefix(k, "x-tokenguard-") {
			out[k] = v
		}
	}
	return out
}

func TestGatewayEndToEnd(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "realm: orders-api\n"))
	read := mint(t, is, "orders:read profile")

	wantIdentity := map[string][]string{
		"X-Tokenguard-Subject":   {"demo-user"},
		"X-Tokenguard-Client-Id": {"demo-client"},
		"X-Tokenguard-Scope":     {"orders:read profile"},
	}
	t.Run("valid token reaches upstream with identity headers", func(t *testing.T) {
		resp, body := do(t, "GET", g.proxy+"/orders/42?x=1", read, nil)
		if resp.StatusCode != http.StatusOK || body != "upstream saw GET /orders/42" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		r := up.last(t)
		if diff := cmp.Diff(wantIdentity, tokenguardHeaders(r.Header)); diff != "" {
			t.Errorf("upstream headers (-want +got):\n%s", diff)
		}
		if r.URL.RawQuery != "x=1" {
			t.Errorf("query = %q", r.URL.RawQuery)
		}
		if got := r.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
			t.Errorf("X-Forwarded-For = %q", got)
		}
	})

	t.Run("client-sent identity headers are replaced", func(t *testing.T) {
		spoof := http.Header{
			"X-Tokenguard-Subject":   {"admin"},
			"x-tokenguard-scope":     {"orders:write admin"}, // odd case, sent as is
			"X-TOKENGUARD-CLIENT-ID": {"evil"},
			"X-Tokenguard-Admin":     {"true"}, // not one of ours: removed all the same
			"X-Forwarded-For":        {"203.0.113.9"},
		}
		resp, _ := do(t, "GET", g.proxy+"/orders/", read, spoof)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		r := up.last(t)
		if diff := cmp.Diff(wantIdentity, tokenguardHeaders(r.Header)); diff != "" {
			t.Errorf("upstream headers (-want +got):\n%s", diff)
		}
		if got := r.Header.Values("X-Forwarded-For"); !cmp.Equal(got, []string{"127.0.0.1"}) {
			t.Errorf("X-Forwarded-For = %q, want only the gateway's", got)
		}
	})

	t.Run("no token is 401 with a Bearer challenge", func(t *testing.T) {
		before := up.count()
		resp, _ := do(t, "GET", g.proxy+"/orders/", "", nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Bearer realm="orders-api"`) {
			t.Errorf("WWW-Authenticate = %q", got)
		}
		if up.count() != before {
			t.Error("the request reached the upstream")
		}
	})

	t.Run("missing scope is 403 insufficient_scope", func(t *testing.T) {
		before := up.count()
		resp, body := do(t, "POST", g.proxy+"/orders/", read, nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d", resp.StatusCode)
		}
		ch := resp.Header.Get("WWW-Authenticate")
		if !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="orders:write"`) {
			t.Errorf("WWW-Authenticate = %q", ch)
		}
		if strings.Contains(body, read) || strings.Contains(ch, read) {
			t.Error("response echoes the token")
		}
		if up.count() != before {
			t.Error("the request reached the upstream")
		}
	})

	t.Run("write scope may POST", func(t *testing.T) {
		resp, body := do(t, "POST", g.proxy+"/orders/", mint(t, is, "orders:write"), nil)
		if resp.StatusCode != http.StatusOK || body != "upstream saw POST /orders/" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	})

	for _, tc := range []struct{ name, method, path string }{
		{"unknown route is 404", "GET", "/customers/"},
		{"method mismatch is 404, not 405", "DELETE", "/orders/1"},
		{"metrics are not served on listen", "GET", "/metrics"},
		{"healthz is not served on listen", "GET", "/healthz"},
		{"readyz is not served on listen", "GET", "/readyz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := up.count()
			resp, body := do(t, tc.method, g.proxy+tc.path, read, nil)
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("status %d %q", resp.StatusCode, body)
			}
			if up.count() != before {
				t.Error("the request reached the upstream")
			}
		})
	}

	t.Run("metrics, health and readiness on metrics_listen", func(t *testing.T) {
		resp, body := do(t, "GET", g.metric+"/metrics", "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/metrics: %d", resp.StatusCode)
		}
		for _, want := range []string{
			`tokenguard_requests_total{reason="ok",result="allowed"}`,
			`tokenguard_requests_total{reason="missing_token",result="denied"}`,
			`tokenguard_verify_duration_seconds_bucket`,
			`tokenguard_jwks_refresh_total`,
			`go_goroutines`,
			`process_start_time_seconds`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		if strings.Contains(body, read) || strings.Contains(body, "demo-user") {
			t.Error("/metrics carries token material or a subject")
		}
		for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/orders/": 404} {
			if resp, _ := do(t, "GET", g.metric+path, "", nil); resp.StatusCode != want {
				t.Errorf("metrics_listen %s: %d, want %d", path, resp.StatusCode, want)
			}
		}
	})

	if strings.Contains(g.stderr.String(), read) {
		t.Error("the log contains a token")
	}
}

// A route for "/" covers everything, so the catch-all is not registered;
// the reserved paths are still never proxied.
func TestGatewayRootRoute(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	y := strings.Replace(gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, ""), `routes:
  - pattern: "GET /orders/"
    scopes: [orders:read]
  - pattern: "POST /orders/"
    scopes: [orders:write]
  - pattern: "GET /slow"
    scopes: [orders:read]`, `routes:
  - pattern: "/"`, 1)
	g := runGateway(t, y)
	tok := mint(t, is, "")
	if resp, body := do(t, "DELETE", g.proxy+"/anything", tok, nil); resp.StatusCode != 200 || body != "upstream saw DELETE /anything" {
		t.Errorf("DELETE /anything: %d %q", resp.StatusCode, body)
	}
	if resp, _ := do(t, "DELETE", g.proxy+"/anything", "", nil); resp.StatusCode != 401 {
		t.Errorf("without a token: %d", resp.StatusCode)
	}
	for path := range reservedPaths {
		before := up.count()
		if resp, _ := do(t, "GET", g.proxy+path, tok, nil); resp.StatusCode != 404 || up.count() != before {
			t.Errorf("GET %s on listen: %d, proxied: %v", path, resp.StatusCode, up.count() != before)
		}
	}
}

func TestGatewayNotReadyWithoutKeys(t *testing.T) {
	is := startIssuer(t) // mints tokens, but the gateway looks for its keys elsewhere
	up := startUpstream(t)
	y := gatewayYAML(is.URL(), "http://"+testkit.ClosedAddr(t)+"/jwks", up.URL, "")
	g := runGateway(t, strings.Replace(y, "startup_wait: 5s", "startup_wait: 0s", 1))

	if resp, _ := do(t, "GET", g.metric+"/readyz", "", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz: %d, want 503", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", g.metric+"/healthz", "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %d, want 200", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", g.proxy+"/orders/", mint(t, is, "orders:read"), nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("request: %d, want 503 (fail closed)", resp.StatusCode)
	}
	if up.count() != 0 {
		t.Error("a request reached the upstream")
	}
}

func TestGatewayUpstreamDown(t *testing.T) {
	is := startIssuer(t)
	down := testkit.ClosedAddr(t)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", "http://"+down, ""))
	resp, body := do(t, "GET", g.proxy+"/orders/", mint(t, is, "orders:read"), nil)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	_, port, _ := net.SplitHostPort(down)
	if strings.Contains(body, port) || strings.Contains(body, "connect") {
		t.Errorf("502 body leaks upstream details: %q", body)
	}
}

func TestGatewayGracefulShutdown(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, ""))
	tok := mint(t, is, "orders:read")

	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", g.proxy+"/slow", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{resp.StatusCode, string(b), err}
	}()
	select {
	case <-up.entered:
	case <-time.After(wait):
		t.Fatal("the slow request did not reach the upstream")
	}

	g.stop() // what SIGTERM does

	// New connections are refused while the slow request drains, and
	// /readyz says so.
	deadline := time.Now().Add(wait)
	for {
		c, err := net.DialTimeout("tcp", g.gw.Addr(), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the proxy still accepts connections after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if resp, _ := do(t, "GET", g.metric+"/readyz", "", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %d, want 503", resp.StatusCode)
	}
	select {
	case err := <-g.done:
		t.Fatalf("gateway stopped (%v) before the in-flight request finished", err)
	default:
	}

	up.releaseAll()
	select {
	case r := <-res:
		if r.err != nil || r.status != http.StatusOK || r.body != "upstream saw GET /slow" {
			t.Errorf("in-flight request: %d %q %v", r.status, r.body, r.err)
		}
	case <-time.After(wait):
		t.Fatal("the in-flight request did not finish")
	}
	select {
	case err := <-g.done:
		g.done <- err // for cleanup
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("the gateway did not exit after draining")
	}
}

func TestGatewayShutdownTimeout(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "shutdown_timeout: 100ms\n"))
	tok := mint(t, is, "orders:read")
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("GET", g.proxy+"/slow", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		errc <- err
	}()
	select {
	case <-up.entered:
	case <-time.After(wait):
		t.Fatal("the slow request did not reach the upstream")
	}
	start := time.Now()
	g.stop()
	select {
	case err := <-g.done:
		g.done <- err
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Errorf("shutdown took %v with a 100ms timeout", elapsed)
		}
		// A cut drain is an error that says how much was cut, so the
		// command exits non-zero and an orchestrator can tell.
		var de *DrainError
		if !errors.As(err, &de) || de.Cut != 1 {
			t.Errorf("Run = %v, want a DrainError with 1 request cut", err)
		}
	case <-time.After(wait):
		t.Fatal("the gateway did not exit after its shutdown timeout")
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Error("the stuck request completed; want it cut off")
		}
	case <-time.After(wait):
		t.Fatal("the stuck request was not cut off")
	}
	if !strings.Contains(g.stderr.String(), "cut=1") {
		t.Errorf("the log does not say how many requests were cut:\n%s", g.stderr)
	}
}

// TestGatewayShutdownWaitsForUpgrades: an upgraded (WebSocket) connection
// is drained like a request: shutdown waits for it up to the timeout, then
// closes it and counts it as cut.
func TestGatewayShutdownWaitsForUpgrades(t *testing.T) {
	is := startIssuer(t)
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		brw.Flush()
		io.Copy(io.Discard, conn) // until the gateway closes it
	})
	g := runGateway(t, rootYAML(is, up.URL, "shutdown_timeout: 300ms\n"))
	c, br := dial(t, g.gw.Addr())
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", mint(t, is, ""))
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	start := time.Now()
	g.stop()
	var de *DrainError
	select {
	case err := <-g.done:
		g.done <- err
		if !errors.As(err, &de) || de.Cut != 1 {
			t.Errorf("Run = %v, want a DrainError with the upgraded connection cut", err)
		}
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Errorf("shutdown did not wait for the upgraded connection (%v)", d)
		}
	case <-time.After(wait):
		t.Fatal("the gateway did not stop")
	}
	if !closedWithin(c, br, 2*time.Second) {
		t.Error("the upgraded connection is still open")
	}
}

func TestScrubHeaders(t *testing.T) {
	in := http.Header{
		// Identity headers in every spelling an upstream folds together.
		"X-Tokenguard-Subject":   {"a"},
		"x-tokenguard-scope":     {"b"},
		"X-TOKENGUARD-Foo":       {"c"},
		"X_Tokenguard_Subject":   {"u1"},
		"X-Tokenguard_Scope":     {"u2"},
		"x_tokenguard-client_id": {"u3"},
		" X-Tokenguard-Subject":  {"s1"},
		"X-Tokenguard":           {"d"}, // no dash: not ours, and no underscore
		// Forwarding and override headers, folded too.
		"X-Forwarded-For":        {"6.6.6.6"},
		"X_Forwarded_Host":       {"evil"},
		"Forwarded":              {"for=6.6.6.6"},
		"X-Real-Ip":              {"6.6.6.6"},
		"X_Real_IP":              {"6.6.6.6"},
		"x-http-method-override": {"DELETE"},
		// Ordinary headers with underscores.
		"Accept":    {"e"},
		"My_Header": {"f"},
	}
	tests := []struct {
		name            string
		allowUnderscore bool
		want            http.Header
	}{
		{"underscores dropped (default)", false, http.Header{"X-Tokenguard": {"d"}, "Accept": {"e"}}},
		{"underscores allowed", true, http.Header{"X-Tokenguard": {"d"}, "Accept": {"e"}, "My_Header": {"f"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := in.Clone()
			scrubHeaders(h, tt.allowUnderscore)
			if diff := cmp.Diff(tt.want, h); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMaxHeaderBytesAboveTokenLimit(t *testing.T) {
	for _, size := range []int{0, 1, 8 << 10, 1 << 20} {
		limit := size
		if limit == 0 {
			limit = 8 << 10
		}
		if got := maxHeaderBytes(size); got <= limit+len("Authorization: Bearer ") {
			t.Errorf("maxHeaderBytes(%d) = %d, not above the token limit", size, got)
		}
	}
}

// TestGatewayLifecycle covers the package API around a running gateway:
// nothing is served before Start, /healthz answers while Start still waits
// for keys, Start runs once, and Shutdown works on a gateway that never
// started.
func TestGatewayLifecycle(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	cfg, err := ParseConfig("t.yaml", []byte(gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "")), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	quiet := Options{Logger: slog.New(slog.DiscardHandler)}

	t.Run("never started", func(t *testing.T) {
		g, err := New(cfg, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if g.Addr() != "" || g.MetricsAddr() != "" {
			t.Errorf("addresses before Start: %q %q", g.Addr(), g.MetricsAddr())
		}
		if err := g.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := g.Start(context.Background()); err == nil {
			t.Error("Start after Shutdown succeeded")
		}
	})

	t.Run("start once", func(t *testing.T) {
		g, err := New(cfg, quiet)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Shutdown(context.Background())
		if err := g.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := g.Start(context.Background()); err == nil {
			t.Error("a second Start succeeded")
		}
		if !g.Ready() {
			t.Error("not ready after Start with the issuer up")
		}
	})

	t.Run("health while waiting for keys", func(t *testing.T) {
		down := testkit.ClosedAddr(t)
		y := strings.Replace(gatewayYAML(is.URL(), "http://"+down+"/jwks", up.URL, ""), "startup_wait: 5s", "startup_wait: 3s", 1)
		cfg, err := ParseConfig("t.yaml", []byte(y), noEnv)
		if err != nil {
			t.Fatal(err)
		}
		metricsLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		g, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler), MetricsListener: metricsLn})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Shutdown(context.Background())
		started := make(chan error, 1)
		go func() { started <- g.Start(context.Background()) }()
		base := "http://" + metricsLn.Addr().String()
		waitFor(t, func() bool {
			resp, err := client.Get(base + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		}, "/healthz during the startup wait")
		if resp, body := do(t, "GET", base+"/readyz", "", nil); resp.StatusCode != 503 || body != "starting\n" {
			t.Errorf("/readyz during the startup wait: %d %q", resp.StatusCode, body)
		}
		select {
		case err := <-started:
			t.Fatalf("Start returned (%v) before startup_wait with no keys", err)
		default:
		}
		if err := <-started; err != nil {
			t.Fatal(err)
		}
		if resp, body := do(t, "GET", base+"/readyz", "", nil); resp.StatusCode != 503 || body != "issuer keys not loaded\n" {
			t.Errorf("/readyz without keys after Start: %d %q", resp.StatusCode, body)
		}
	})
}
