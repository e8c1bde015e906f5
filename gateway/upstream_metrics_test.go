package gateway

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/testkit"
)

// upstreamSeries are the upstream metrics' series a test reads.
var upstreamSeries = []string{
	`tokenguard_upstream_requests_total{code_class="2xx"}`,
	`tokenguard_upstream_requests_total{code_class="3xx"}`,
	`tokenguard_upstream_requests_total{code_class="4xx"}`,
	`tokenguard_upstream_requests_total{code_class="5xx"}`,
	`tokenguard_upstream_requests_total{code_class="error"}`,
	`tokenguard_upstream_duration_seconds_count`,
	`tokenguard_upstream_duration_seconds_sum`,
	`tokenguard_upstream_duration_seconds_bucket{le="0.05"}`,
	`tokenguard_upstream_duration_seconds_bucket{le="+Inf"}`,
}

// scrapeUpstream reads the upstream series from the gateway's /metrics;
// each must be there (the counters from the start, at 0).
func scrapeUpstream(t *testing.T, g *running) map[string]float64 {
	t.Helper()
	got := scrapeMetrics(t, g)
	out := map[string]float64{}
	for _, s := range upstreamSeries {
		v, ok := got[s]
		if !ok {
			t.Fatalf("/metrics lacks %s", s)
		}
		out[s] = v
	}
	return out
}

// waitUpstream scrapes until the histogram has counted n requests: the
// gateway observes a response when it reads the end of its body, which can
// come just after the client has the last byte.
func waitUpstream(t *testing.T, g *running, n float64) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		m := scrapeUpstream(t, g)
		if m[`tokenguard_upstream_duration_seconds_count`] >= n || time.Now().After(deadline) {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func wantUpstream(t *testing.T, got map[string]float64, classes map[string]float64) {
	t.Helper()
	total := 0.0
	for _, c := range []string{"2xx", "3xx", "4xx", "5xx", "error"} {
		s := `tokenguard_upstream_requests_total{code_class="` + c + `"}`
		if got[s] != classes[c] {
			t.Errorf("%s = %v, want %v", s, got[s], classes[c])
		}
		total += classes[c]
	}
	for _, s := range []string{`tokenguard_upstream_duration_seconds_count`, `tokenguard_upstream_duration_seconds_bucket{le="+Inf"}`} {
		if got[s] != total {
			t.Errorf("%s = %v, want %v (one per counted request)", s, got[s], total)
		}
	}
}

// noRedirects leaves a 302 for the test to see.
var noRedirects = &http.Client{Timeout: wait, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func TestUpstreamMetricsByClass(t *testing.T) {
	is := startIssuer(t)
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/found":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "/missing":
			http.Error(w, "no", http.StatusNotFound)
		case "/down":
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case "/head":
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusNoContent)
		default:
			io.WriteString(w, "ok")
		}
	})
	g := runGateway(t, rootYAML(is, up.URL, ""))
	wantUpstream(t, scrapeUpstream(t, g), nil) // every class at 0 before any request

	tok := mint(t, is, "")
	for path, want := range map[string]int{"/ok": 200, "/head": 204, "/found": 302, "/missing": 404, "/down": 503} {
		req, _ := http.NewRequest("GET", g.proxy+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	// Answered by the gateway itself: none of these reaches the upstream.
	for _, c := range []struct{ path, token string }{
		{"/ok", ""},               // 401 missing_token
		{"/ok", "not.a.token"},    // 401 invalid_token
		{"/metrics", tok},         // reserved path: 404
		{"/ok?x=1", tok + "garb"}, // 401
	} {
		if resp, _ := do(t, "GET", g.proxy+c.path, c.token, nil); resp.StatusCode < 400 {
			t.Fatalf("%s: %d, want the gateway's own refusal", c.path, resp.StatusCode)
		}
	}
	wantUpstream(t, waitUpstream(t, g, 5), map[string]float64{"2xx": 2, "3xx": 1, "4xx": 1, "5xx": 1})
}

// TestUpstreamMetricsDuration: the histogram times the whole response,
// headers and body: an upstream that waits 100 ms before its headers, and
// one that sends its headers at once and its body 100 ms later, both land
// above 0.05 s.
func TestUpstreamMetricsDuration(t *testing.T) {
	is := startIssuer(t)
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/late-body" {
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
		}
		time.Sleep(100 * time.Millisecond)
		io.WriteString(w, "done")
	})
	g := runGateway(t, rootYAML(is, up.URL, ""))
	tok := mint(t, is, "")
	for _, path := range []string{"/late-headers", "/late-body"} {
		if resp, body := do(t, "GET", g.proxy+path, tok, nil); resp.StatusCode != 200 || body != "done" {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
	m := waitUpstream(t, g, 2)
	wantUpstream(t, m, map[string]float64{"2xx": 2})
	if b := m[`tokenguard_upstream_duration_seconds_bucket{le="0.05"}`]; b != 0 {
		t.Errorf("%v requests in the 0.05 s bucket, want 0: the upstream took 100 ms over each", b)
	}
	if sum := m[`tokenguard_upstream_duration_seconds_sum`]; sum < 0.2 || sum > 10 {
		t.Errorf("duration sum %v s, want 0.2 s or a little more", sum)
	}
}

func TestUpstreamMetricsUnreachable(t *testing.T) {
	is := startIssuer(t)
	g := runGateway(t, rootYAML(is, "http://"+testkit.ClosedAddr(t), ""))
	if resp, _ := do(t, "GET", g.proxy+"/x", mint(t, is, ""), nil); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	wantUpstream(t, waitUpstream(t, g, 1), map[string]float64{"error": 1})
}

func TestUpstreamMetricsTimeout(t *testing.T) {
	is := startIssuer(t)
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(wait):
		}
	})
	g := runGateway(t, rootYAML(is, up.URL, "upstream_timeout: 100ms\n"))
	if resp, _ := do(t, "GET", g.proxy+"/x", mint(t, is, ""), nil); resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
	m := waitUpstream(t, g, 1)
	wantUpstream(t, m, map[string]float64{"error": 1})
	if sum := m[`tokenguard_upstream_duration_seconds_sum`]; sum < 0.1 {
		t.Errorf("duration %v s, want at least upstream_timeout", sum)
	}
}

// The client-gone case is TestGatewayClientGoneIsQuiet (proxy_test.go).

// TestUpstreamMetricsUpgrade: a 101 switches to another protocol and is
// not counted (there is no class for it, and the upgraded connection's
// lifetime is no latency); a refused upgrade is an ordinary answer.
func TestUpstreamMetricsUpgrade(t *testing.T) {
	is := startIssuer(t)
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		brw.Flush()
		io.Copy(io.Discard, conn)
	})
	g := runGateway(t, rootYAML(is, up.URL, ""))
	tok := mint(t, is, "")
	for _, path := range []string{"/ws", "/refused"} {
		c, br := dial(t, g.gw.Addr())
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", path, tok)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		resp.Body.Close()
		if want := map[string]int{"/ws": 101, "/refused": 403}[path]; resp.StatusCode != want {
			t.Fatalf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	wantUpstream(t, waitUpstream(t, g, 1), map[string]float64{"4xx": 1})
}
