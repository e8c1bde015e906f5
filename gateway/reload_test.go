package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokenguard/tokenguard/internal/testkit"
)

// scrapeMetrics reads every sample of the gateway's /metrics, by series
// (name and labels as printed).
func scrapeMetrics(t testing.TB, g *running) map[string]float64 {
	t.Helper()
	_, body := do(t, "GET", g.metric+"/metrics", "", nil)
	got := map[string]float64{}
	for line := range strings.Lines(body) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("/metrics: %q: %v", line, err)
		}
		got[name] = v
	}
	return got
}

// reloads returns tokenguard_config_reloads_total by result.
func reloads(t testing.TB, g *running) (success, failed float64) {
	t.Helper()
	m := scrapeMetrics(t, g)
	s, ok1 := m[`tokenguard_config_reloads_total{result="success"}`]
	e, ok2 := m[`tokenguard_config_reloads_total{result="error"}`]
	if !ok1 || !ok2 {
		t.Fatal("/metrics lacks tokenguard_config_reloads_total{result=success|error}")
	}
	return s, e
}

// rewrite replaces the gateway's configuration file.
func (r *running) rewrite(t testing.TB, yamlText string) {
	t.Helper()
	if err := os.WriteFile(r.path, []byte(yamlText), 0o600); err != nil {
		t.Fatal(err)
	}
}

// reload rewrites the file and reloads it as SIGHUP does.
func (r *running) reload(t testing.TB, yamlText string) error {
	t.Helper()
	r.rewrite(t, yamlText)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return r.gw.ReloadConfig(ctx)
}

func status(t testing.TB, method, url, token string) int {
	t.Helper()
	resp, _ := do(t, method, url, token, nil)
	return resp.StatusCode
}

// TestGatewayReload: a valid file replaces routes, scopes, the upstream
// and limits for the next request; the reload is logged and counted.
func TestGatewayReload(t *testing.T) {
	is := startIssuer(t)
	up, up2 := startUpstream(t), startUpstream(t)
	y := gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "")
	g := runGateway(t, y)
	read := mint(t, is, "orders:read")
	if got := status(t, "GET", g.proxy+"/orders/1", read); got != 200 {
		t.Fatalf("before: GET /orders/1 = %d", got)
	}
	if got := status(t, "GET", g.proxy+"/reports/", read); got != 404 {
		t.Fatalf("before: GET /reports/ = %d", got)
	}

	// Another upstream, GET /orders/ now needs orders:admin, and a new
	// route.
	y2 := strings.Replace(gatewayYAML(is.URL(), is.URL()+"/jwks", up2.URL, ""),
		"routes:\n  - pattern: \"GET /orders/\"\n    scopes: [orders:read]\n",
		"routes:\n  - pattern: \"GET /orders/\"\n    scopes: [orders:admin]\n  - pattern: \"GET /reports/\"\n    scopes: [orders:read]\n", 1)
	if err := g.reload(t, y2); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if got := status(t, "GET", g.proxy+"/orders/1", read); got != 403 {
		t.Errorf("after: GET /orders/1 with orders:read = %d, want 403 (the route now needs orders:admin)", got)
	}
	if got := status(t, "GET", g.proxy+"/orders/1", mint(t, is, "orders:admin")); got != 200 {
		t.Errorf("after: GET /orders/1 with orders:admin = %d", got)
	}
	before := up.count()
	if resp, body := do(t, "GET", g.proxy+"/reports/", read, nil); resp.StatusCode != 200 {
		t.Errorf("after: GET /reports/ = %d %s", resp.StatusCode, body)
	}
	if up.count() != before || up2.count() != 2 {
		t.Errorf("after the reload requests go to the new upstream: old saw %d more, new saw %d", up.count()-before, up2.count())
	}
	if s, e := reloads(t, g); s != 1 || e != 0 {
		t.Errorf("reloads: success %v, error %v", s, e)
	}
	if log := g.stderr.String(); !strings.Contains(log, "configuration reloaded") {
		t.Errorf("no reload line in the log:\n%s", log)
	}
	// The guard's counters went on from where they were.
	if n := scrapeMetrics(t, g)[`tokenguard_requests_total{reason="ok",result="allowed"}`]; n != 3 {
		t.Errorf("allowed requests across the reload = %v, want 3", n)
	}
}

// TestGatewayReloadRefused: a file that does not load, or that changes
// what cannot change while running, keeps the running configuration;
// the error names the line and key, and is logged and counted.
func TestGatewayReloadRefused(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	y := gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "")
	g := runGateway(t, y)
	tok := mint(t, is, "orders:read")

	certFile, keyFile := t.TempDir()+"/cert.pem", t.TempDir()+"/key.pem"
	testkit.NewCert(t, 1).Write(t, certFile, keyFile)
	end := fmt.Sprintf("line %d", strings.Count(y, "\n")+1) // a key added at the end
	tests := []struct {
		name string
		yaml string
		want []string // in the error
	}{
		{"syntax", y + "routes: [\n", []string{"line"}},
		{"unknown key", y + "listen_addr: 127.0.0.1:1\n", []string{end, "listen_addr"}},
		{"bad value", strings.Replace(y, "startup_wait: 5s", "startup_wait: soon", 1), []string{"startup_wait"}},
		{"listen", strings.Replace(y, "listen: 127.0.0.1:0", "listen: 127.0.0.1:1", 1), []string{"line 1", "listen", "restart"}},
		{"metrics_listen", strings.Replace(y, "metrics_listen: 127.0.0.1:0", "metrics_listen: 127.0.0.1:1", 1), []string{"line 2", "metrics_listen", "restart"}},
		{"tls added", y + "tls:\n  cert_file: " + certFile + "\n  key_file: " + keyFile + "\n", []string{"tls", "restart"}},
		{"header limit", y + "max_token_size: 65536\n", []string{end, "max_token_size", "header limit", "restart"}},
		{"client key file", strings.Replace(y, "    jwks_uri:", "    client_key_file: /nonexistent/key.pem\n    introspection_endpoint: "+is.URL()+"/introspect\n    client_id: gw\n    client_auth_method: private_key_jwt\n    jwks_uri:", 1), []string{"client_key_file"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := g.reload(t, tc.yaml)
			if err == nil {
				t.Fatal("reload accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if got := status(t, "GET", g.proxy+"/orders/1", tok); got != 200 {
				t.Errorf("the running configuration stopped serving: %d", got)
			}
			if s, e := reloads(t, g); s != 0 || e != float64(i+1) {
				t.Errorf("reloads: success %v, error %v, want 0, %d", s, e, i+1)
			}
		})
	}
	if log := g.stderr.String(); !strings.Contains(log, "configuration reload failed; keeping the running configuration") {
		t.Errorf("no failure line in the log")
	}
	// Lowering max_token_size needs no larger limit: fine.
	if err := g.reload(t, y+"max_token_size: 4096\n"); err != nil {
		t.Errorf("lowering max_token_size: %v", err)
	}
}

// TestGatewayReloadKeysMustLoad: a configuration whose issuer keys do not
// load within startup_wait is not swapped in while the running one's are
// loaded, and is swapped in when the running one's are not (the fix).
func TestGatewayReloadKeysMustLoad(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, ""))
	tok := mint(t, is, "orders:read")
	dead := "http://" + testkit.ClosedAddr(t) + "/jwks"
	broken := strings.Replace(gatewayYAML(is.URL(), dead, up.URL, ""), "startup_wait: 5s", "startup_wait: 300ms", 1)
	err := g.reload(t, broken)
	if err == nil || !strings.Contains(err.Error(), "did not load within startup_wait") {
		t.Fatalf("reload to unreachable keys: %v", err)
	}
	if got := status(t, "GET", g.proxy+"/orders/1", tok); got != 200 {
		t.Errorf("after the refused reload: %d", got)
	}
}

// TestGatewayReloadInFlight: requests running when the configuration
// changes finish on the one they started with, against its upstream;
// the old configuration is closed once they are done.
func TestGatewayReloadInFlight(t *testing.T) {
	is := startIssuer(t)
	up, up2 := startUpstream(t), startUpstream(t)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, ""))
	tok := mint(t, is, "orders:read")
	old := g.gw.gen.Load()

	slow := holdSlow(t, g, up, tok)
	// The new configuration has no /slow route and another upstream.
	y2 := strings.Replace(gatewayYAML(is.URL(), is.URL()+"/jwks", up2.URL, ""), "  - pattern: \"GET /slow\"\n    scopes: [orders:read]\n", "", 1)
	if err := g.reload(t, y2); err != nil {
		t.Fatal(err)
	}
	if got := status(t, "GET", g.proxy+"/slow", tok); got != 404 {
		t.Errorf("a new /slow request = %d, want 404 (no such route now)", got)
	}
	if old.refs.Load() == 0 || old.closed.Load() {
		t.Fatal("the old configuration closed while a request ran on it")
	}
	up.releaseAll()
	select {
	case code := <-slow:
		if code != 200 {
			t.Errorf("the in-flight request got %d, want 200 from the old upstream", code)
		}
	case <-time.After(wait):
		t.Fatal("the in-flight request did not finish")
	}
	waitFor(t, func() bool { return old.refs.Load() == 0 && old.closed.Load() }, "the old configuration to close")
	if status(t, "GET", g.proxy+"/orders/1", tok) != 200 || up2.count() != 1 {
		t.Errorf("new requests go to the new upstream: it saw %d", up2.count())
	}
}

// holdSlow sends GET /slow with tok and returns once the upstream holds
// it; the channel gets its status when it ends (-1: no response).
func holdSlow(t *testing.T, g *running, up *upstream, tok string) <-chan int {
	t.Helper()
	slow := make(chan int, 1)
	go func() {
		resp, err := client.Do(mustRequest(t, "GET", g.proxy+"/slow", tok))
		if err != nil {
			slow <- -1
			return
		}
		resp.Body.Close()
		slow <- resp.StatusCode
	}()
	select {
	case <-up.entered:
	case <-time.After(wait):
		t.Fatal("the slow request never reached the upstream")
	}
	return slow
}

func mustRequest(t testing.TB, method, url, token string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

// TestGatewayReloadUnderLoad: clients keep sending while the
// configuration is reloaded again and again; not one request fails.
func TestGatewayReloadUnderLoad(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	y := gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "")
	g := runGateway(t, y)
	tok := mint(t, is, "orders:read")
	ycfgs := []string{y, strings.Replace(y, "log_level: debug", "log_level: info", 1), y + "max_concurrent_requests: 2048\n"}

	ctx, cancel := context.WithCancel(context.Background())
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req := mustRequest(t, "GET", g.proxy+"/orders/1", tok)
				resp, err := client.Do(req)
				sent.Add(1)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d", resp.StatusCode))
				}
			}
		}()
	}
	const n = 12
	for i := range n {
		time.Sleep(50 * time.Millisecond)
		if err := g.reload(t, ycfgs[(i+1)%len(ycfgs)]); err != nil {
			t.Errorf("reload %d: %v", i, err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	wg.Wait()
	t.Logf("%d requests through %d reloads", sent.Load(), n)
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed across reloads; first: %v", failed.Load(), sent.Load(), firstErr.Load())
	}
	if sent.Load() < 100 {
		t.Errorf("only %d requests were sent: the test proves little", sent.Load())
	}
	if s, _ := reloads(t, g); s != n {
		t.Errorf("reloads success = %v, want %d", s, n)
	}
	// Every replaced configuration was closed: only the current one is
	// left once their requests are done.
	waitFor(t, func() bool {
		g.gw.reloadMu.Lock()
		defer g.gw.reloadMu.Unlock()
		open := 0
		for _, gen := range g.gw.generations {
			if gen.refs.Load() > 0 {
				open++
			}
		}
		return open == 1
	}, "replaced configurations to close")
}

// TestGatewayReloadDPoPReplay: a proof used before a reload is a replay
// after it, with the store kept (memory) and with the store changed
// (memory to Redis: the old store is still asked).
func TestGatewayReloadDPoPReplay(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	y := dpopGatewayYAML(is, up, publicURL, "allowed", "  replay_store: memory\n")
	g := runGateway(t, y)
	key := newDPoPKey(t)
	tok := key.mintBound(t, is, "orders:read")
	use := func(proof string) int {
		resp, _ := doDPoP(t, "GET", g.proxy+"/orders/", tok, proof)
		return resp.StatusCode
	}
	p1 := key.proof(t, "GET", publicURL+"/orders/", tok, "")
	if got := use(p1); got != 200 {
		t.Fatalf("first use: %d", got)
	}
	if err := g.reload(t, strings.Replace(y, "log_level: debug", "log_level: info", 1)); err != nil {
		t.Fatal(err)
	}
	if got := use(p1); got != 401 {
		t.Errorf("replay after a reload that kept the memory store: %d, want 401", got)
	}

	redisURL := startRedis(t) // skips without redis-server
	p2 := key.proof(t, "GET", publicURL+"/orders/", tok, "")
	if got := use(p2); got != 200 {
		t.Fatalf("first use of p2: %d", got)
	}
	if err := g.reload(t, strings.Replace(y, "replay_store: memory", "replay_store: "+redisURL, 1)); err != nil {
		t.Fatal(err)
	}
	if got := use(p2); got != 401 {
		t.Errorf("replay after moving the replay store to Redis: %d, want 401 (the old store is still asked)", got)
	}
	p3 := key.proof(t, "GET", publicURL+"/orders/", tok, "")
	if got := use(p3); got != 200 {
		t.Errorf("a fresh proof on the Redis store: %d", got)
	}
	if got := use(p3); got != 401 {
		t.Errorf("its replay: %d", got)
	}
}

// TestGatewayReloadInterval: with config_reload_interval the file is
// watched; a change is applied, a broken file is reported once.
func TestGatewayReloadInterval(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	y := gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "config_reload_interval: 1s\n")
	g := runGateway(t, y)
	tok := mint(t, is, "orders:read")
	g.rewrite(t, strings.Replace(y, "- pattern: \"GET /orders/\"", "- pattern: \"GET /orders/{id}/items\"", 1))
	waitFor(t, func() bool { s, _ := reloads(t, g); return s == 1 }, "the changed file to be reloaded")
	if got := status(t, "GET", g.proxy+"/orders/1", tok); got != 404 {
		t.Errorf("GET /orders/1 after the watched reload = %d, want 404", got)
	}
	g.rewrite(t, y+"bogus: 1\n")
	waitFor(t, func() bool { _, e := reloads(t, g); return e == 1 }, "the broken file to be reported")
	time.Sleep(2500 * time.Millisecond) // two more polls of the same broken file
	if _, e := reloads(t, g); e != 1 {
		t.Errorf("a broken file was reported %v times, want once", e)
	}
	if got := status(t, "GET", g.proxy+"/orders/1/items", tok); got != 200 {
		t.Errorf("the running configuration stopped serving: %d", got)
	}
}

// TestGatewayReloadLogging: log_format and log_level change with a
// reload when the gateway makes its own logger (as the command does).
func TestGatewayReloadLogging(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	y := gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "")
	path := t.TempDir() + "/tokenguard.yaml"
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	gw, err := New(cfg, Options{LogOutput: out})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer gw.Shutdown(canceled)
	tok := mint(t, is, "orders:read")
	get := func() { status(t, "GET", "http://"+gw.Addr()+"/orders/1", tok) }
	get()
	if !strings.Contains(out.String(), "msg=access") {
		t.Fatalf("no text access line:\n%s", out)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(y, "log_level: debug", "log_level: info\nlog_format: json", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := gw.ReloadConfig(ctx); err != nil {
		t.Fatal(err)
	}
	get()
	if !strings.Contains(out.String(), `"msg":"access"`) {
		t.Errorf("no JSON access line after the reload:\n%s", out)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(y, "log_level: debug", "log_level: warn", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := gw.ReloadConfig(ctx); err != nil {
		t.Fatal(err)
	}
	n := strings.Count(out.String(), "access")
	get()
	if m := strings.Count(out.String(), "access"); m != n {
		t.Errorf("log_level warn still logs access lines")
	}
}

// TestGatewayReloadNotFromFile: a gateway built from ParseConfig has no
// file to read again; Reload with a Config works, and after Shutdown
// nothing reloads.
func TestGatewayReloadNotFromFile(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	y := gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "")
	cfg, err := ParseConfig("inline", []byte(y), nil)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := gw.ReloadConfig(ctx); !errors.Is(err, ErrNotFromFile) {
		t.Errorf("ReloadConfig = %v, want ErrNotFromFile", err)
	}
	if err := gw.Reload(ctx, cfg); err != nil {
		t.Errorf("Reload before Start: %v", err)
	}
	if err := gw.Shutdown(canceled); err != nil {
		t.Fatal(err)
	}
	if err := gw.Reload(ctx, cfg); err == nil {
		t.Error("Reload after Shutdown succeeded")
	}
}

// TestGatewayReloadKeepsNonces: without TOKENGUARD_DPOP_NONCE_SECRETS
// nonces come from a per-process key; a reload keeps it, so a nonce issued
// before the reload is accepted after it.
func TestGatewayReloadKeepsNonces(t *testing.T) {
	t.Setenv(NonceSecretsEnv, "")
	is := startIssuer(t)
	up := startUpstream(t)
	y := dpopGatewayYAML(is, up, publicURL, "allowed", "  nonce: true\n")
	g := runGateway(t, y)
	key := newDPoPKey(t)
	tok := key.mintBound(t, is, "orders:read")
	resp, _ := doDPoP(t, "GET", g.proxy+"/orders/", tok, key.proof(t, "GET", publicURL+"/orders/", tok, ""))
	nonce := resp.Header.Get("DPoP-Nonce")
	if resp.StatusCode != http.StatusUnauthorized || nonce == "" {
		t.Fatalf("no nonce issued: %d", resp.StatusCode)
	}
	if err := g.reload(t, strings.Replace(y, "log_level: debug", "log_level: info", 1)); err != nil {
		t.Fatal(err)
	}
	if resp, body := doDPoP(t, "GET", g.proxy+"/orders/", tok, key.proof(t, "GET", publicURL+"/orders/", tok, nonce)); resp.StatusCode != http.StatusOK {
		t.Errorf("a nonce issued before the reload, used after it: %d %s", resp.StatusCode, body)
	}
}

// TestGatewayReloadRefusedChangesNothing: a reload refused after its
// configuration was built (its keys do not load) leaves the limit and the
// replay store's quota as they were.
func TestGatewayReloadRefusedChangesNothing(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	y := dpopGatewayYAML(is, up, publicURL, "allowed", "  replay_key_quota: 10\n") + "max_concurrent_requests: 100\n"
	g := runGateway(t, y)
	bad := strings.Replace(strings.Replace(strings.Replace(y, is.URL()+"/jwks", "http://"+testkit.ClosedAddr(t)+"/jwks", 1),
		"replay_key_quota: 10", "replay_key_quota: 3", 1), "max_concurrent_requests: 100", "max_concurrent_requests: 5", 1)
	bad = strings.Replace(bad, "startup_wait: 5s", "startup_wait: 300ms", 1)
	if err := g.reload(t, bad); err == nil {
		t.Fatal("reload to unreachable keys accepted")
	}
	if n := g.gw.limiter.limit.Load(); n != 100 {
		t.Errorf("max_concurrent_requests after a refused reload = %d, want 100", n)
	}
	key := newDPoPKey(t)
	tok := key.mintBound(t, is, "orders:read")
	for i := range 5 { // more than the refused quota of 3
		if resp, body := doDPoP(t, "GET", g.proxy+"/orders/", tok, key.proof(t, "GET", publicURL+"/orders/", tok, "")); resp.StatusCode != 200 {
			t.Fatalf("proof %d after a refused reload: %d %s (the refused quota applied?)", i, resp.StatusCode, body)
		}
	}
}

// TestGatewayReloadReplayHandoverChain: the replaced replay store is
// still asked after further reloads, not only by the next configuration.
func TestGatewayReloadReplayHandoverChain(t *testing.T) {
	r1, r2 := startRedis(t), startRedis(t)
	is := startIssuer(t)
	up := startUpstream(t)
	y := dpopGatewayYAML(is, up, publicURL, "allowed", "  replay_store: memory\n")
	g := runGateway(t, y)
	key := newDPoPKey(t)
	tok := key.mintBound(t, is, "orders:read")
	use := func(proof string) int {
		resp, _ := doDPoP(t, "GET", g.proxy+"/orders/", tok, proof)
		return resp.StatusCode
	}
	inMemory := key.proof(t, "GET", publicURL+"/orders/", tok, "")
	if use(inMemory) != 200 {
		t.Fatal("first use in memory")
	}
	onR1 := key.proof(t, "GET", publicURL+"/orders/", tok, "")
	for i, step := range []string{
		strings.Replace(y, "replay_store: memory", "replay_store: "+r1, 1),
		"use onR1",
		strings.Replace(y, "replay_store: memory", "replay_store: "+r2, 1),
		strings.Replace(strings.Replace(y, "replay_store: memory", "replay_store: "+r2, 1), "log_level: debug", "log_level: info", 1),
	} {
		if step == "use onR1" {
			if use(onR1) != 200 {
				t.Fatal("first use on Redis 1")
			}
			continue
		}
		if err := g.reload(t, step); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	// Three configurations later, on Redis 2.
	if got := use(inMemory); got != 401 {
		t.Errorf("replay of a proof used in memory, two store changes ago: %d, want 401", got)
	}
	if got := use(onR1); got != 401 {
		t.Errorf("replay of a proof used on Redis 1, after Redis 2 and another reload: %d, want 401", got)
	}
}

// TestGatewayShutdownDuringReload: a reload waiting for keys does not hold
// up Shutdown beyond its context.
func TestGatewayShutdownDuringReload(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	y := gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "")
	g := runGateway(t, y)
	bad := strings.Replace(strings.Replace(y, is.URL()+"/jwks", "http://"+testkit.ClosedAddr(t)+"/jwks", 1), "startup_wait: 5s", "startup_wait: 20s", 1)
	g.rewrite(t, bad)
	done := make(chan error, 1)
	go func() { done <- g.gw.ReloadConfig(context.Background()) }()
	time.Sleep(200 * time.Millisecond) // the reload is waiting for keys
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_ = g.gw.Shutdown(ctx)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Shutdown took %v with a reload waiting for keys", d)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("the interrupted reload succeeded")
		}
	case <-time.After(wait):
		t.Fatal("the reload did not end")
	}
	if e := testutil.ToFloat64(g.gw.reloads.WithLabelValues("error")); e != 0 {
		t.Errorf("an interrupted reload was counted as an error (%v)", e) // the metrics listener is closed: read the counter
	}
}

// TestGatewayReloadIntervalRetries: a reload that failed for a reason
// outside the file (the new issuer's keys not answering yet) is tried
// again at the next interval, not parked until the file changes.
func TestGatewayReloadIntervalRetries(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	y := gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "config_reload_interval: 1s\n")
	g := runGateway(t, y)
	later := testkit.ClosedAddr(t) // where the keys will be served
	g.rewrite(t, strings.Replace(strings.Replace(y, is.URL()+"/jwks", "http://"+later+"/jwks", 1), "startup_wait: 5s", "startup_wait: 300ms", 1))
	waitFor(t, func() bool { _, e := reloads(t, g); return e >= 1 }, "the first, failed attempt")
	ln, err := net.Listen("tcp", later)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	target, _ := url.Parse(is.URL())
	srv := &http.Server{Handler: httputil.NewSingleHostReverseProxy(target)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	waitFor(t, func() bool { s, _ := reloads(t, g); return s == 1 }, "a later attempt to succeed without the file changing")
}

// TestGatewayReloadWithoutStart: with Handler mounted in a server of the
// program's own (no Start), Reload waits for the new keys too.
func TestGatewayReloadWithoutStart(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	cfg, err := ParseConfig("inline", []byte(gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "")), nil)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Shutdown(canceled)
	if err := gw.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if !gw.Ready() {
		t.Error("not ready right after Reload: it swapped in a guard whose keys had not loaded")
	}
}
