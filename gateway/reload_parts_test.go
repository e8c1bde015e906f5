package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"
)

// These tests take the parts a reload replaces one at a time, so that a
// reload that forgot one of them fails here: the concurrency limit
// (shared by every generation, set by install) and the issuers (built
// into the new generation's guard). Routes and scopes are
// TestGatewayReload's; listeners, TestGatewayReloadKeepsListeners'.

// TestGatewayReloadConcurrencyLimit: max_concurrent_requests changes with
// a reload, counting the requests already in flight on the old
// configuration: 100 -> 1 with one request held at the upstream answers
// the next with 503, and back to 100 lets it through again.
func TestGatewayReloadConcurrencyLimit(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	y := gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "")
	limit := func(n string) string { return y + "max_concurrent_requests: " + n + "\n" }
	g := runGateway(t, limit("100"))
	tok := mint(t, is, "orders:read")

	slow := holdSlow(t, g, up, tok)

	for _, step := range []struct {
		limit      string
		wantStatus int
	}{
		{"", 200},    // as started: 100, one in flight
		{"1", 503},   // the held request fills it
		{"100", 200}, // back
		{"-1", 200},  // no limit
		{"1", 503},   // a limit again: in-flight requests were counted meanwhile
	} {
		if step.limit != "" {
			if err := g.reload(t, limit(step.limit)); err != nil {
				t.Fatalf("reload to max_concurrent_requests %s: %v", step.limit, err)
			}
		}
		resp, body := do(t, "GET", g.proxy+"/orders/1", tok, nil)
		if resp.StatusCode != step.wantStatus {
			t.Fatalf("max_concurrent_requests %q, one request held: GET /orders/1 = %d %s, want %d",
				step.limit, resp.StatusCode, body, step.wantStatus)
		}
		if step.wantStatus == 503 && resp.Header.Get("Retry-After") != "1" {
			t.Errorf("503 without Retry-After: 1 (%q)", resp.Header.Get("Retry-After"))
		}
	}

	if err := g.reload(t, limit("100")); err != nil {
		t.Fatal(err)
	}
	up.releaseAll()
	select {
	case code := <-slow:
		if code != 200 {
			t.Errorf("the held request got %d, want 200", code)
		}
	case <-time.After(wait):
		t.Fatal("the held request did not finish")
	}
	if got := status(t, "GET", g.proxy+"/orders/1", tok); got != 200 {
		t.Errorf("after the held request finished: %d", got)
	}
}

// TestGatewayReloadIssuers: a reload that adds an issuer accepts its
// tokens from the next request on, and one that removes an issuer refuses
// its tokens (401, reason unknown_issuer), while the issuer that stays
// keeps working throughout.
func TestGatewayReloadIssuers(t *testing.T) {
	isA, isB := startIssuer(t), startIssuer(t)
	up := startUpstream(t)
	only := func(iss string) string {
		return gatewayYAML(iss, iss+"/jwks", up.URL, "")
	}
	both := strings.Replace(only(isA.URL()), "issuers:\n",
		"issuers:\n  - issuer: "+isB.URL()+"\n    jwks_uri: "+isB.URL()+"/jwks\n", 1)
	g := runGateway(t, only(isA.URL()))
	tokA, tokB := mint(t, isA, "orders:read"), mint(t, isB, "orders:read")

	unknownIssuer := func() float64 {
		return scrapeMetrics(t, g)[`tokenguard_requests_total{reason="unknown_issuer",result="denied"}`]
	}
	for _, step := range []struct {
		name       string
		yaml       string // "" keeps the running configuration
		wantA      int
		wantB      int
		wantDenied float64 // unknown_issuer denials so far
	}{
		{"A only", "", 200, 401, 1},
		{"B added", both, 200, 200, 1},
		{"A removed", only(isB.URL()), 401, 200, 2},
		{"A back, B removed", only(isA.URL()), 200, 401, 3},
	} {
		if step.yaml != "" {
			if err := g.reload(t, step.yaml); err != nil {
				t.Fatalf("%s: reload: %v", step.name, err)
			}
		}
		for _, c := range []struct {
			who  string
			tok  string
			want int
		}{{"A", tokA, step.wantA}, {"B", tokB, step.wantB}} {
			resp, body := do(t, "GET", g.proxy+"/orders/1", c.tok, nil)
			if resp.StatusCode != c.want {
				t.Errorf("%s: issuer %s's token: %d %s, want %d", step.name, c.who, resp.StatusCode, body, c.want)
			}
			if c.want == 401 && !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("%s: issuer %s's token: WWW-Authenticate %q", step.name, c.who, resp.Header.Get("WWW-Authenticate"))
			}
		}
		if got := unknownIssuer(); got != step.wantDenied {
			t.Errorf("%s: unknown_issuer denials = %v, want %v", step.name, got, step.wantDenied)
		}
	}
}

// TestGatewayReloadKeepsListeners: a reload that leaves listen and
// metrics_listen alone keeps their sockets: the addresses stay, and a
// keep-alive connection opened before the reload carries the next request
// after it, on the proxy and on the metrics listener.
func TestGatewayReloadKeepsListeners(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	y := gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "")
	g := runGateway(t, y)
	tok := mint(t, is, "orders:read")
	addr, metricsAddr := g.gw.Addr(), g.gw.MetricsAddr()

	// One client, one connection per listener, kept alive.
	tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}
	t.Cleanup(tr.CloseIdleConnections)
	keepAlive := &http.Client{Transport: tr, Timeout: wait}
	type conn struct {
		reused bool
		local  string
	}
	get := func(url, token string) (int, conn) {
		t.Helper()
		var c conn
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
			c = conn{reused: info.Reused, local: info.Conn.LocalAddr().String()}
		}}
		ctx, cancel := context.WithTimeout(httptrace.WithClientTrace(context.Background(), trace), wait)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := keepAlive.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil { // read to the end, or the connection is not reused
			t.Fatal(err)
		}
		return resp.StatusCode, c
	}

	code, proxyBefore := get(g.proxy+"/orders/1", tok)
	if code != 200 {
		t.Fatalf("before: %d", code)
	}
	code, metricsBefore := get(g.metric+"/metrics", "")
	if code != 200 {
		t.Fatalf("before: /metrics %d", code)
	}

	// A reload that changes what the proxy does (GET /orders/ now needs
	// orders:admin), so the new configuration is in use for sure.
	y2 := strings.Replace(y, "scopes: [orders:read]\n  - pattern: \"POST", "scopes: [orders:admin]\n  - pattern: \"POST", 1)
	if y2 == y {
		t.Fatal("the edit did not apply")
	}
	if err := g.reload(t, y2); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if s, _ := reloads(t, g); s != 1 {
		t.Fatalf("reloads success = %v, want 1", s)
	}

	code, proxyAfter := get(g.proxy+"/orders/1", tok)
	if code != 403 {
		t.Errorf("after: GET /orders/1 with orders:read = %d, want 403 (the reloaded route needs orders:admin)", code)
	}
	if !proxyAfter.reused || proxyAfter.local != proxyBefore.local {
		t.Errorf("proxy connection after the reload: %+v, want the one from before (%s) reused", proxyAfter, proxyBefore.local)
	}
	code, metricsAfter := get(g.metric+"/metrics", "")
	if code != 200 {
		t.Errorf("after: /metrics %d", code)
	}
	if !metricsAfter.reused || metricsAfter.local != metricsBefore.local {
		t.Errorf("metrics connection after the reload: %+v, want the one from before (%s) reused", metricsAfter, metricsBefore.local)
	}
	if got := g.gw.Addr(); got != addr {
		t.Errorf("Addr() after the reload = %s, was %s", got, addr)
	}
	if got := g.gw.MetricsAddr(); got != metricsAddr {
		t.Errorf("MetricsAddr() after the reload = %s, was %s", got, metricsAddr)
	}
}
