package gateway

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tokenguard/tokenguard/internal/devissuer"
)

// TestGatewayTracing: the gateway as deployed, tracing to a real OTLP
// receiver (HTTP and gRPC): a server span per request with the decision,
// child spans for introspection, the replay store and the upstream call,
// the upstream given our traceparent, key fetches traced, and no token,
// proof or subject in anything exported.
func TestGatewayTracing(t *testing.T) {
	for _, protocol := range []string{"http/protobuf", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			rcv := newOTLPReceiver(t, protocol)
			otelEnv(t, "OTEL_EXPORTER_OTLP_ENDPOINT", rcv.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL", protocol,
				"OTEL_EXPORTER_OTLP_INSECURE", "true", "OTEL_BSP_SCHEDULE_DELAY", "50")
			is := startIssuer(t)
			up := startUpstream(t)
			as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if r.PostFormValue("token") != "opaque-SECRET-1" {
					_, _ = w.Write([]byte(`{"active":false}`))
					return
				}
				fmt.Fprintf(w, `{"active":true,"scope":"orders:read","client_id":"app","sub":"alice-SUBJECT","exp":%d}`, time.Now().Add(time.Hour).Unix())
			}))
			t.Cleanup(as.Close)
			y := strings.Replace(dpopGatewayYAML(is, up, publicURL, "allowed", "  replay_store: memory\n"),
				"/jwks\n", "/jwks\n    introspection_endpoint: "+as.URL+"\n    client_id: rs\n    client_secret: s3cret\n", 1)
			g := runGateway(t, y)
			if g.gw.tracer == nil {
				t.Fatal("tracing is off with OTEL_EXPORTER_OTLP_ENDPOINT set")
			}

			// 1. An opaque token (introspected), from a client that sends
			// its own trace context.
			const clientTrace = "0af7651916cd43dd8448eb211c80319c"
			h := http.Header{"Traceparent": {"00-" + clientTrace + "-b7ad6b7169203331-01"}}
			if resp, body := do(t, "GET", g.proxy+"/orders/1?code=SECRET-QUERY", "opaque-SECRET-1", h); resp.StatusCode != 200 {
				t.Fatalf("introspected request: %d %s", resp.StatusCode, body)
			}
			upTP := up.last(t).Header.Get("Traceparent")
			// 2. A DPoP request (the replay store).
			key := newDPoPKey(t)
			tok := key.mintBound(t, is, "orders:read")
			if resp, body := doDPoP(t, "GET", g.proxy+"/orders/", tok, key.proof(t, "GET", publicURL+"/orders/", tok, "")); resp.StatusCode != 200 {
				t.Fatalf("DPoP request: %d %s", resp.StatusCode, body)
			}
			// 3. A denial.
			if resp, _ := do(t, "GET", g.proxy+"/orders/1", "opaque-SECRET-2", nil); resp.StatusCode != 401 {
				t.Fatalf("inactive token: %d", resp.StatusCode)
			}

			byName := func(spans []*tracepb.Span) map[string][]*tracepb.Span {
				m := map[string][]*tracepb.Span{}
				for _, s := range spans {
					m[s.GetName()] = append(m[s.GetName()], s)
				}
				return m
			}
			var m map[string][]*tracepb.Span
			deadline := time.Now().Add(wait)
			for {
				m = byName(rcv.received())
				if len(m["GET /orders/"]) == 3 && len(m["GET upstream"]) == 2 && len(m["POST introspection"]) == 2 &&
					len(m["dpop replay_store"]) == 1 && len(m["GET jwks"]) >= 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("spans received: %v", keys(m))
				}
				time.Sleep(20 * time.Millisecond)
			}

			// The introspected request: its server span continues the
			// client's trace; introspection and upstream are its children.
			var srv *tracepb.Span
			for _, s := range m["GET /orders/"] {
				if hex.EncodeToString(s.GetTraceId()) == clientTrace {
					srv = s
				}
			}
			if srv == nil {
				t.Fatal("no server span continues the client's trace")
			}
			if srv.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
				t.Errorf("server span kind %v", srv.GetKind())
			}
			for k, want := range map[string]string{"tokenguard.decision": "allow", "tokenguard.reason": "ok", "http.response.status_code": "200", "http.route": "/orders/", "url.path": "/orders/1"} {
				if got, _ := spanAttr(srv, k); got != want {
					t.Errorf("server span %s = %q, want %q", k, got, want)
				}
			}
			child := func(name string) *tracepb.Span {
				for _, s := range m[name] {
					if string(s.GetParentSpanId()) == string(srv.GetSpanId()) {
						return s
					}
				}
				t.Fatalf("no %q span under the server span", name)
				return nil
			}
			upSpan := child("GET upstream")
			child("POST introspection")
			if want := "00-" + clientTrace + "-" + hex.EncodeToString(upSpan.GetSpanId()) + "-01"; upTP != want {
				t.Errorf("upstream got traceparent %q, want ours %q (never the client's)", upTP, want)
			}
			// The DPoP request's replay-store span, under its server span.
			rs := m["dpop replay_store"][0]
			if got, _ := spanAttr(rs, "tokenguard.replay_store.result"); got != "ok" {
				t.Errorf("replay store result %q", got)
			}
			var denied bool
			for _, s := range m["GET /orders/"] {
				if string(s.GetSpanId()) == string(rs.GetParentSpanId()) {
					if got, _ := spanAttr(s, "tokenguard.decision"); got != "allow" {
						t.Errorf("DPoP server span decision %q", got)
					}
				}
				if d, _ := spanAttr(s, "tokenguard.decision"); d == "deny" {
					denied = true
					if r, _ := spanAttr(s, "tokenguard.reason"); r == "" {
						t.Error("a denial without its reason")
					}
				}
			}
			if !denied {
				t.Error("no server span says deny")
			}
			// Key fetches are traced (the fetch at startup has no request
			// parent; TestGatewayTracingJWKSRefresh follows one a request
			// triggers).
			if js := m["GET jwks"][0]; js.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
				t.Errorf("jwks span kind %v", js.GetKind())
			}
			for _, secret := range []string{"SECRET", "SUBJECT", "alice", tok, "s3cret", "DPoP "} {
				if containsBytes(rcv.rawRequests(), secret) {
					t.Errorf("%q was exported", secret)
				}
			}
		})
	}
}

// TestGatewayTracingJWKSRefresh: a token signed with a key the gateway has
// not seen yet makes it refresh the JWKS, and that fetch's "GET jwks" span
// is the child of the server span of the request that triggered it (the
// guard's JWKSRefreshContext hands the refresh that span's context). The
// triggering client gives up while the fetch is held, and the refresh
// still completes for a request that joined it: one forced fetch, no
// cancellation, and the request that joined has no jwks span of its own.
func TestGatewayTracingJWKSRefresh(t *testing.T) {
	rcv := newOTLPReceiver(t, protocolHTTP)
	otelEnv(t, "OTEL_EXPORTER_OTLP_ENDPOINT", rcv.endpoint, "OTEL_BSP_SCHEDULE_DELAY", "50")
	is := startIssuer(t)
	up := startUpstream(t)

	// The JWKS, served through a gate that can hold a fetch.
	var hold atomic.Bool
	var fetches, forced atomic.Int64 // forced: unknown-kid refreshes (Cache-Control: no-cache)
	entered := make(chan struct{}, 4)
	gate := make(chan struct{})
	var openGate sync.Once
	t.Cleanup(func() { openGate.Do(func() { close(gate) }) })
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if r.Header.Get("Cache-Control") == "no-cache" {
			forced.Add(1)
		}
		if hold.Load() {
			entered <- struct{}{}
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		is.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(jwksSrv.Close)

	g := runGateway(t, gatewayYAML(is.URL(), jwksSrv.URL+"/jwks", up.URL, ""))
	if g.gw.tracer == nil {
		t.Fatal("tracing is off with OTEL_EXPORTER_OTLP_ENDPOINT set")
	}
	if resp, body := do(t, "GET", g.proxy+"/orders/1", mint(t, is, "orders:read"), nil); resp.StatusCode != 200 {
		t.Fatalf("before the rotation: %d %s", resp.StatusCode, body)
	}

	// Rotate: publish k2, sign with it. The gateway has not fetched it.
	k2, err := devissuer.GenerateKey("ES256", "k2")
	if err != nil {
		t.Fatal(err)
	}
	is.Publish(is.SigningKey(), k2)
	is.SetSigningKey(k2)
	tok := mint(t, is, "orders:read")
	hold.Store(true)

	// A: its token triggers the refresh; it gives up while the fetch is held.
	const traceA, traceB = "4bf92f3577b34da6a3ce929d0e0e4736", "5bf92f3577b34da6a3ce929d0e0e4737"
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	doneA := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctxA, "GET", g.proxy+"/orders/a", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Traceparent", "00-"+traceA+"-b7ad6b7169203331-01")
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		doneA <- err
	}()
	select {
	case <-entered:
	case <-time.After(wait):
		t.Fatal("the unknown kid did not make the gateway fetch the JWKS")
	}
	cancelA()
	select {
	case err := <-doneA:
		if err == nil {
			t.Fatal("request A was answered while its JWKS fetch was held")
		}
	case <-time.After(wait):
		t.Fatal("cancelling request A did not end it")
	}

	// B: the same new kid, while the refresh A started is still held.
	type result struct {
		status int
		body   string
	}
	doneB := make(chan result, 1)
	sentB := make(chan struct{})
	go func() {
		ct := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(sentB) }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), ct), "GET", g.proxy+"/orders/b", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Traceparent", "00-"+traceB+"-c7ad6b7169203332-01")
		resp, err := client.Do(req)
		if err != nil {
			doneB <- result{0, err.Error()}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		doneB <- result{resp.StatusCode, string(body)}
	}()
	select {
	case <-sentB:
	case r := <-doneB:
		t.Fatalf("request B failed before it was sent: %d %s", r.status, r.body)
	case <-time.After(wait):
		t.Fatal("request B was never sent")
	}
	// While the gate is closed B can only wait on the refresh in flight:
	// an answer now would mean it did not. (The guard waits up to 2 s.)
	select {
	case r := <-doneB:
		t.Fatalf("request B was answered while the refresh was held: %d %s", r.status, r.body)
	case <-entered:
		t.Fatal("request B started a JWKS fetch of its own")
	case <-time.After(500 * time.Millisecond):
	}
	openGate.Do(func() { close(gate) })
	select {
	case r := <-doneB:
		if r.status != 200 {
			t.Fatalf("request B, after A gave up: %d %s", r.status, r.body)
		}
	case <-time.After(wait):
		t.Fatal("request B never returned")
	}
	if got := forced.Load(); got != 1 {
		t.Errorf("forced JWKS fetches = %d, want 1 (A's, which B joined)", got)
	}
	if got := fetches.Load(); got != 2 {
		t.Errorf("JWKS fetches = %d, want 2 (startup + one refresh)", got)
	}

	// The refresh's span: under A's server span, in A's trace, and it
	// completed (200) although A had gone.
	var srvA, jwksA *tracepb.Span
	deadline := time.Now().Add(wait)
	for srvA == nil || jwksA == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no server span and jwks span in trace A; spans: %v", spanSummary(rcv.received()))
		}
		time.Sleep(20 * time.Millisecond)
		for _, s := range rcv.received() {
			if hex.EncodeToString(s.GetTraceId()) != traceA {
				continue
			}
			switch {
			case s.GetKind() == tracepb.Span_SPAN_KIND_SERVER:
				srvA = s
			case s.GetName() == "GET jwks":
				jwksA = s
			}
		}
	}
	for _, s := range rcv.received() {
		if hex.EncodeToString(s.GetTraceId()) == traceB && s.GetName() == "GET jwks" {
			t.Errorf("request B, which joined A's refresh, has a GET jwks span")
		}
	}
	if !bytes.Equal(jwksA.GetParentSpanId(), srvA.GetSpanId()) {
		t.Errorf("GET jwks span's parent %x, want request A's server span %x", jwksA.GetParentSpanId(), srvA.GetSpanId())
	}
	if got, _ := spanAttr(jwksA, "http.response.status_code"); got != "200" {
		t.Errorf("the refresh's span says status %q, want 200: the fetch must outlive the request that started it", got)
	}
	if got, _ := spanAttr(jwksA, "tokenguard.purpose"); got != "jwks" {
		t.Errorf("tokenguard.purpose = %q", got)
	}
}

// spanSummary names spans with their trace ids, for failure messages.
func spanSummary(spans []*tracepb.Span) []string {
	out := make([]string, 0, len(spans))
	for _, s := range spans {
		out = append(out, s.GetName()+"@"+hex.EncodeToString(s.GetTraceId()))
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestGatewayTracingOff: without OTEL_* variables the gateway builds no
// tracer, wraps nothing, and leaves the client's trace context to the
// upstream as it was (no span of ours to continue it).
func TestGatewayTracingOff(t *testing.T) {
	otelEnv(t)
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, ""))
	if g.gw.tracer != nil {
		t.Fatal("tracing on without any OTEL_* variable")
	}
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	if resp, _ := do(t, "GET", g.proxy+"/orders/1", mint(t, is, "orders:read"), http.Header{"Traceparent": {tp}}); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := up.last(t).Header.Get("Traceparent"); got != tp {
		t.Errorf("upstream traceparent %q, want the client's %q", got, tp)
	}
}
