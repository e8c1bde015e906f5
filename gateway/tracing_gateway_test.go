package gateway

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
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
			// Key fetches are traced (no request parent).
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
