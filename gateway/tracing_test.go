package gateway

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/middleware"
)

// TestNewTracerEnv: which OTEL_* settings turn tracing on, with which
// protocol, and which are startup errors.
func TestNewTracerEnv(t *testing.T) {
	otelEnv(t) // the exporters a case starts read the process environment: keep it empty
	const endpoint = "http://127.0.0.1:4318"
	tests := []struct {
		name    string
		env     map[string]string
		want    string // protocol; "" off
		wantErr string // substring of the error; "" none
	}{
		{"nothing set", nil, "", ""},
		{"unrelated variables", map[string]string{"OTEL_SERVICE_NAME": "x", "OTEL_EXPORTER_OTLP_HEADERS": "a=b"}, "", ""},
		{"endpoint", map[string]string{envEndpoint: endpoint}, protocolHTTP, ""},
		{"traces endpoint", map[string]string{envTracesEndpoint: endpoint + "/v1/traces"}, protocolHTTP, ""},
		{"blank endpoint", map[string]string{envEndpoint: "  "}, "", ""},
		{"exporter otlp, no endpoint", map[string]string{envTracesExporter: "otlp"}, protocolHTTP, ""},
		{"exporter OTLP, any case", map[string]string{envTracesExporter: " OTLP "}, protocolHTTP, ""},
		{"exporter none beats an endpoint", map[string]string{envTracesExporter: "none", envEndpoint: endpoint}, "", ""},
		{"disabled beats an endpoint", map[string]string{envSDKDisabled: "true", envEndpoint: endpoint}, "", ""},
		{"disabled beats otlp", map[string]string{envSDKDisabled: "TRUE", envTracesExporter: "otlp"}, "", ""},
		{"disabled beats bad values", map[string]string{envSDKDisabled: "true", envTracesExporter: "zipkin", envProtocol: "http/json"}, "", ""},
		{"disabled=false", map[string]string{envSDKDisabled: "false", envEndpoint: endpoint}, protocolHTTP, ""},
		{"unsupported exporter", map[string]string{envTracesExporter: "zipkin"}, "", `tokenguard: OTEL_TRACES_EXPORTER: unsupported value "zipkin" (supported: otlp, none)`},
		{"exporter list", map[string]string{envTracesExporter: "otlp,console", envEndpoint: endpoint}, "", "OTEL_TRACES_EXPORTER: unsupported"},
		{"grpc", map[string]string{envEndpoint: endpoint, envProtocol: "grpc"}, protocolGRPC, ""},
		{"traces grpc", map[string]string{envEndpoint: endpoint, envTracesProtocol: "grpc"}, protocolGRPC, ""},
		{"http/protobuf", map[string]string{envEndpoint: endpoint, envProtocol: "http/protobuf"}, protocolHTTP, ""},
		{"traces protocol wins", map[string]string{envEndpoint: endpoint, envTracesProtocol: "grpc", envProtocol: "http/json"}, protocolGRPC, ""},
		{"http/json", map[string]string{envEndpoint: endpoint, envProtocol: "http/json"}, "", `tokenguard: OTEL_EXPORTER_OTLP_PROTOCOL: unsupported value "http/json" (supported: http/protobuf, grpc)`},
		{"traces http/json", map[string]string{envEndpoint: endpoint, envTracesProtocol: "http/json", envProtocol: "grpc"}, "", "tokenguard: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: unsupported"},
		{"bad protocol while off", map[string]string{envProtocol: "http/json"}, "", ""},
		{"sampler", map[string]string{envEndpoint: endpoint, envSampler: "parentbased_traceidratio", envSamplerArg: "0.25"}, protocolHTTP, ""},
		{"unsupported sampler", map[string]string{envEndpoint: endpoint, envSampler: "jaeger_remote"}, "", "tokenguard: OTEL_TRACES_SAMPLER: unsupported value \"jaeger_remote\" (supported: always_on"},
		{"ratio above 1", map[string]string{envEndpoint: endpoint, envSampler: "traceidratio", envSamplerArg: "2"}, "", "tokenguard: OTEL_TRACES_SAMPLER_ARG:"},
		{"ratio NaN", map[string]string{envEndpoint: endpoint, envSampler: "traceidratio", envSamplerArg: "NaN"}, "", "tokenguard: OTEL_TRACES_SAMPLER_ARG:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := envOf(tt.env)
			got, err := tracingProtocol(getenv)
			if got != tt.want {
				t.Errorf("protocol %q, want %q", got, tt.want)
			}
			tr, err2 := newTracer(getenv)
			if tr != nil {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				if err := tr.shutdown(ctx); err != nil {
					t.Errorf("shutdown: %v", err)
				}
			}
			if (tr != nil) != (tt.want != "") {
				t.Errorf("newTracer on = %v, want %v", tr != nil, tt.want != "")
			}
			for _, err := range []error{err, err2} {
				switch {
				case tt.wantErr == "" && err != nil:
					t.Errorf("error: %v", err)
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "tokenguard: OTEL_")):
					t.Errorf("error %v, want one containing %q", err, tt.wantErr)
				}
			}
		})
	}
}

// TestNewTracerBadResource: a malformed OTEL_RESOURCE_ATTRIBUTES is a
// startup error, not a silent default.
func TestNewTracerBadResource(t *testing.T) {
	otelEnv(t, envEndpoint, "http://127.0.0.1:4318", "OTEL_RESOURCE_ATTRIBUTES", "no-equals-sign")
	tr, err := newTracer(nil)
	if err == nil || tr != nil || !strings.HasPrefix(err.Error(), "tokenguard: OTEL_RESOURCE_ATTRIBUTES:") {
		t.Fatalf("newTracer = %v, %v; want an OTEL_RESOURCE_ATTRIBUTES error", tr, err)
	}
}

// TestTracingOffIsFree: with tracing off every wrapper returns what it was
// given, so the request path is exactly what it is without tracing.
func TestTracingOffIsFree(t *testing.T) {
	otelEnv(t)
	tr, err := newTracer(nil)
	if tr != nil || err != nil {
		t.Fatalf("newTracer with no OTEL_* = %v, %v; want nil, nil", tr, err)
	}
	h := http.NotFoundHandler().(http.HandlerFunc)
	var hp http.Handler = &struct{ http.HandlerFunc }{h}
	if got := tr.serverSpan(hp); got != hp {
		t.Errorf("serverSpan returned %T %p, want its input", got, got)
	}
	rt := &http.Transport{}
	if got := tr.transport("upstream", rt); got != http.RoundTripper(rt) {
		t.Errorf("transport returned %T, want its input", got)
	}
	store, err := dpop.NewMemoryReplayStore(16)
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.replayStore(store); got != dpop.ReplayStore(store) {
		t.Errorf("replayStore returned %T, want its input", got)
	}
	if err := tr.shutdown(context.Background()); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	// On, a nil store stays nil: the guard then uses its in-memory one.
	otelEnv(t, envEndpoint, "http://127.0.0.1:4318")
	on, err := newTracer(nil)
	if err != nil || on == nil {
		t.Fatalf("newTracer = %v, %v", on, err)
	}
	defer on.shutdown(context.Background())
	if got := on.replayStore(nil); got != nil {
		t.Errorf("replayStore(nil) = %T, want nil", got)
	}
}

// The secrets a traced request carries; none may reach an exported span.
const (
	secretToken = "SECRET-TOKEN-VALUE"
	secretQuery = "SECRET-QUERY"
	secretProof = "SECRET-PROOF"
)

// tracedChain is the gateway's handler chain in miniature, traced:
// accessLog → serverSpan → a mux whose routes stand in for the guard
// (onDecision), use a DPoP replay store and proxy to an upstream through
// tracer.transport.
type tracedChain struct {
	srv      *httptest.Server // the chain
	upstream *httptest.Server

	mu      sync.Mutex // guards seen
	seen    []http.Header
	recvErr error
}

func newTracedChain(t *testing.T, tr *tracer) *tracedChain {
	t.Helper()
	c := &tracedChain{}
	c.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.seen = append(c.seen, r.Header.Clone())
		c.mu.Unlock()
		_, _ = io.WriteString(w, "hello from upstream")
	}))
	t.Cleanup(c.upstream.Close)
	client := &http.Client{Transport: tr.transport("upstream", http.DefaultTransport.(*http.Transport).Clone())}
	store, err := dpop.NewMemoryReplayStore(1024)
	if err != nil {
		t.Fatal(err)
	}
	replay := tr.replayStore(store)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/{id}", func(w http.ResponseWriter, r *http.Request) {
		onDecision(r, middleware.ReasonOK)
		if err := replay.Use(r.Context(), dpop.NewReplay("thumbprint", r.Header.Get("DPoP"), time.Now().Add(time.Minute))); err != nil {
			http.Error(w, "replayed", http.StatusUnauthorized)
			return
		}
		// Forward as a proxy would: headers, path and query as they came.
		out, err := http.NewRequestWithContext(r.Context(), r.Method, c.upstream.URL+"/backend"+r.URL.Path+"?"+r.URL.RawQuery, nil)
		if err != nil {
			t.Error(err)
			return
		}
		out.Header = r.Header.Clone()
		res, err := client.Do(out)
		if err != nil {
			http.Error(w, "unreachable", http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		_, _ = io.Copy(w, res.Body)
	})
	mux.HandleFunc("GET /deny", func(w http.ResponseWriter, r *http.Request) {
		onDecision(r, middleware.ReasonInvalidSignature)
		http.Error(w, "no", http.StatusUnauthorized)
	})
	mux.HandleFunc("GET /broken", func(w http.ResponseWriter, r *http.Request) {
		onDecision(r, middleware.ReasonOK)
		http.Error(w, "upstream down", http.StatusBadGateway)
	})
	log := slog.New(slog.DiscardHandler)
	c.srv = httptest.NewServer(accessLog(tr.serverSpan(mux), log, &inflight{}, 0))
	t.Cleanup(c.srv.Close)
	return c
}

// do sends GET path with a token, a DPoP proof and the given extra
// headers, and returns the response's status and X-Request-Id.
func (c *tracedChain) do(t *testing.T, path string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secretToken)
	req.Header.Set("DPoP", secretProof+"-"+path)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode, res.Header.Get(headerRequestID)
}

func (c *tracedChain) upstreamSaw() []http.Header {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]http.Header(nil), c.seen...)
}

// TestTracing sends requests through a traced chain and checks the spans
// exported over OTLP/HTTP and OTLP/gRPC: their tree, names and
// attributes, the traceparent the upstream gets, and that no secret is
// ever exported.
func TestTracing(t *testing.T) {
	for _, protocol := range []string{protocolHTTP, protocolGRPC} {
		t.Run(protocol, func(t *testing.T) {
			recv := newOTLPReceiver(t, protocol)
			otelEnv(t,
				envEndpoint, recv.endpoint,
				envProtocol, protocol,
				"OTEL_EXPORTER_OTLP_INSECURE", "true",
				"OTEL_BSP_SCHEDULE_DELAY", "50",
				"OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test",
			)
			tr, err := newTracer(nil)
			if err != nil || tr == nil {
				t.Fatalf("newTracer = %v, %v", tr, err)
			}
			t.Cleanup(func() { _ = tr.shutdown(context.Background()) })
			c := newTracedChain(t, tr)

			// 1. A client that sends its own traceparent: our server
			// span is its child, and the upstream sees ours.
			const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
			clientParent := "00-" + clientTrace + "-" + clientSpan + "-01"
			status, reqID := c.do(t, "/api/7?access_token="+secretQuery, map[string]string{
				"Traceparent": clientParent, "Tracestate": "vendor=value",
				headerRequestID: "client-chosen-id.1",
			})
			if status != http.StatusOK || reqID != "client-chosen-id.1" {
				t.Fatalf("request: %d, request id %q", status, reqID)
			}
			spans := waitForSpans(t, recv.received, 3, wait) // before any shutdown: the batcher exports by itself
			server := onlySpan(t, spans, tracepb.Span_SPAN_KIND_SERVER)
			client := onlySpan(t, spans, tracepb.Span_SPAN_KIND_CLIENT)
			replay := onlySpan(t, spans, tracepb.Span_SPAN_KIND_INTERNAL)

			if got := hex.EncodeToString(server.GetTraceId()); got != clientTrace {
				t.Errorf("server span trace id %s, want the client's %s", got, clientTrace)
			}
			if got := hex.EncodeToString(server.GetParentSpanId()); got != clientSpan {
				t.Errorf("server span parent %s, want the client's span %s", got, clientSpan)
			}
			if server.GetTraceState() != "vendor=value" {
				t.Errorf("server span tracestate %q, want the client's", server.GetTraceState())
			}
			for _, s := range []*tracepb.Span{client, replay} {
				if string(s.GetTraceId()) != string(server.GetTraceId()) || string(s.GetParentSpanId()) != string(server.GetSpanId()) {
					t.Errorf("span %q is not a child of the server span", s.GetName())
				}
			}
			checkSpan(t, server, "GET /api/{id}", map[string]string{
				"http.request.method":       "GET",
				"url.scheme":                "http",
				"url.path":                  "/api/7",
				"http.route":                "/api/{id}",
				"http.response.status_code": "200",
				"network.protocol.version":  "1.1",
				"tokenguard.decision":       "allow",
				"tokenguard.reason":         "ok",
				"tokenguard.request_id":     "client-chosen-id.1",
			}, tracepb.Status_STATUS_CODE_UNSET)
			up, _ := url.Parse(c.upstream.URL)
			checkSpan(t, client, "GET upstream", map[string]string{
				"http.request.method":       "GET",
				"server.address":            up.Hostname(),
				"server.port":               up.Port(),
				"url.full":                  c.upstream.URL + "/backend/api/7",
				"http.response.status_code": "200",
				"tokenguard.purpose":        "upstream",
			}, tracepb.Status_STATUS_CODE_UNSET)
			checkSpan(t, replay, "dpop replay_store", map[string]string{
				"tokenguard.replay_store.result": "ok",
			}, tracepb.Status_STATUS_CODE_UNSET)

			saw := c.upstreamSaw()
			if len(saw) != 1 {
				t.Fatalf("upstream got %d requests, want 1", len(saw))
			}
			want := "00-" + hex.EncodeToString(client.GetTraceId()) + "-" + hex.EncodeToString(client.GetSpanId()) + "-01"
			if got := saw[0].Values("Traceparent"); len(got) != 1 || got[0] != want {
				t.Errorf("upstream saw traceparent %q, want the client span's %q (not the client's %q)", got, want, clientParent)
			}
			if got := saw[0].Get("Tracestate"); got != "vendor=value" {
				t.Errorf("upstream saw tracestate %q, want the trace's", got)
			}

			// 2. No traceparent, then a malformed one with a
			// tracestate: the server span is a root, and the upstream
			// gets our traceparent and no stray tracestate.
			for i, h := range []map[string]string{
				nil,
				{"Traceparent": "00-" + strings.Repeat("0", 32) + "-" + clientSpan + "-01", "Tracestate": "stray=1"},
			} {
				n := len(recv.received())
				c.do(t, fmt.Sprintf("/api/%d", 8+i), h)
				spans := waitForSpans(t, recv.received, n+3, wait)[n:]
				server := onlySpan(t, spans, tracepb.Span_SPAN_KIND_SERVER)
				client := onlySpan(t, spans, tracepb.Span_SPAN_KIND_CLIENT)
				if len(server.GetParentSpanId()) != 0 {
					t.Errorf("case %d: server span has parent %x, want a root", i, server.GetParentSpanId())
				}
				saw := c.upstreamSaw()
				last := saw[len(saw)-1]
				want := "00-" + hex.EncodeToString(client.GetTraceId()) + "-" + hex.EncodeToString(client.GetSpanId()) + "-01"
				if got := last.Get("Traceparent"); got != want {
					t.Errorf("case %d: upstream saw traceparent %q, want %q", i, got, want)
				}
				if got := last.Values("Tracestate"); len(got) != 0 {
					t.Errorf("case %d: upstream saw tracestate %q, want none", i, got)
				}
			}

			// 3. Outcomes other than allow, one span each.
			for _, tt := range []struct {
				path, name string
				attrs      map[string]string
				status     tracepb.Status_StatusCode
			}{
				{"/deny", "GET /deny", map[string]string{"tokenguard.decision": "deny", "tokenguard.reason": "invalid_signature", "http.response.status_code": "401", "http.route": "/deny"}, tracepb.Status_STATUS_CODE_UNSET},
				{"/broken", "GET /broken", map[string]string{"tokenguard.decision": "allow", "http.response.status_code": "502", "error.type": "502"}, tracepb.Status_STATUS_CODE_ERROR},
				{"/nowhere", "GET", map[string]string{"tokenguard.decision": "not_found", "http.response.status_code": "404", "url.path": "/nowhere"}, tracepb.Status_STATUS_CODE_UNSET},
			} {
				n := len(recv.received())
				_, id := c.do(t, tt.path, nil)
				spans := waitForSpans(t, recv.received, n+1, wait)[n:]
				s := onlySpan(t, spans, tracepb.Span_SPAN_KIND_SERVER)
				tt.attrs["tokenguard.request_id"] = id
				checkSpan(t, s, tt.name, tt.attrs, tt.status)
				if tt.path == "/nowhere" {
					if _, ok := spanAttr(s, "http.route"); ok {
						t.Errorf("%s: http.route set for a 404 of no route", tt.path)
					}
					if _, ok := spanAttr(s, "tokenguard.reason"); ok {
						t.Errorf("%s: tokenguard.reason set with no decision", tt.path)
					}
				}
			}

			// 4. A replayed proof (step 2 sent /api/9's): the store's
			// span says so.
			n := len(recv.received())
			if status, _ := c.do(t, "/api/9", nil); status != http.StatusUnauthorized {
				t.Fatalf("replayed proof: %d", status)
			}
			spans = waitForSpans(t, recv.received, n+2, wait)[n:]
			checkSpan(t, onlySpan(t, spans, tracepb.Span_SPAN_KIND_INTERNAL), "dpop replay_store",
				map[string]string{"tokenguard.replay_store.result": "replay"}, tracepb.Status_STATUS_CODE_UNSET)

			// Nothing secret was exported: not the token, the proof,
			// the query, nor any header value but the request id.
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := tr.shutdown(ctx); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			raw := recv.rawRequests()
			for _, secret := range []string{"SECRET", "access_token", "Bearer"} {
				if containsBytes(raw, secret) {
					t.Errorf("an exported span holds %q", secret)
				}
			}
			if got, _ := recv.resourceAttr("service.name"); got != defaultServiceName {
				t.Errorf("service.name = %q, want %q", got, defaultServiceName)
			}
			if got, _ := recv.resourceAttr("deployment.environment.name"); got != "test" {
				t.Errorf("OTEL_RESOURCE_ATTRIBUTES not in the resource: deployment.environment.name = %q", got)
			}
		})
	}
}

// onlySpan returns the one span of kind in spans.
func onlySpan(t *testing.T, spans []*tracepb.Span, kind tracepb.Span_SpanKind) *tracepb.Span {
	t.Helper()
	var found []*tracepb.Span
	for _, s := range spans {
		if s.GetKind() == kind {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		var names []string
		for _, s := range spans {
			names = append(names, s.GetKind().String()+" "+s.GetName())
		}
		t.Fatalf("%d spans of kind %s among %q, want 1", len(found), kind, names)
	}
	return found[0]
}

// checkSpan checks a span's name, the attributes in want, and its status.
func checkSpan(t *testing.T, s *tracepb.Span, name string, want map[string]string, status tracepb.Status_StatusCode) {
	t.Helper()
	if s.GetName() != name {
		t.Errorf("span name %q, want %q", s.GetName(), name)
	}
	for k, v := range want {
		if got, ok := spanAttr(s, k); !ok || got != v {
			t.Errorf("span %q: %s = %q (present: %v), want %q", s.GetName(), k, got, ok, v)
		}
	}
	if got := s.GetStatus().GetCode(); got != status {
		t.Errorf("span %q: status %v, want %v", s.GetName(), got, status)
	}
}

// TestTracingResourceEnv: service.name is "tokenguard" unless
// OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES names another.
func TestTracingResourceEnv(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  []string
		want string
	}{
		{"default", nil, "tokenguard"},
		{"OTEL_SERVICE_NAME", []string{"OTEL_SERVICE_NAME", "edge-gw"}, "edge-gw"},
		{"OTEL_RESOURCE_ATTRIBUTES", []string{"OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"}, "from-attrs"},
		{"OTEL_SERVICE_NAME wins", []string{"OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs", "OTEL_SERVICE_NAME", "edge-gw"}, "edge-gw"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			recv := newOTLPReceiver(t, protocolHTTP)
			otelEnv(t, append([]string{envEndpoint, recv.endpoint}, tt.env...)...)
			tr, err := newTracer(nil)
			if err != nil || tr == nil {
				t.Fatalf("newTracer = %v, %v", tr, err)
			}
			_, span := tr.tracer.Start(context.Background(), "probe")
			span.End()
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := tr.shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			if got, _ := recv.resourceAttr("service.name"); got != tt.want {
				t.Errorf("service.name = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTracingSampler: the SDK takes OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG (newTracer sets no sampler of its own), by
// default parentbased_always_on; the upstream learns the decision either
// way.
func TestTracingSampler(t *testing.T) {
	const sampledParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	const unsampledParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	for _, tt := range []struct {
		name, sampler, arg, parent string
		want                       bool
	}{
		{"default, root", "", "", "", true},
		{"default, unsampled parent", "", "", unsampledParent, false},
		{"always_off", "always_off", "", sampledParent, false},
		{"always_on, unsampled parent", "always_on", "", unsampledParent, true},
		{"parentbased_always_off, sampled parent", "parentbased_always_off", "", sampledParent, true},
		{"parentbased_always_off, root", "parentbased_always_off", "", "", false},
		{"traceidratio 0", "traceidratio", "0", "", false},
		{"traceidratio 1", "traceidratio", "1", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			recv := newOTLPReceiver(t, protocolHTTP)
			otelEnv(t, envEndpoint, recv.endpoint, envSampler, tt.sampler, envSamplerArg, tt.arg)
			tr, err := newTracer(nil)
			if err != nil || tr == nil {
				t.Fatalf("newTracer = %v, %v", tr, err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				if err := tr.shutdown(ctx); err != nil {
					t.Error(err)
				}
				if n := len(recv.received()); (n > 0) != tt.want {
					t.Errorf("%d spans exported, want them only when sampled", n)
				}
			}()
			var sampled bool
			var sent string
			upstream := tr.transport("upstream", roundTripper(func(r *http.Request) (*http.Response, error) {
				sent = r.Header.Get("Traceparent")
				return &http.Response{StatusCode: 204, Body: http.NoBody, Request: r}, nil
			}))
			h := tr.serverSpan(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sampled = trace.SpanContextFromContext(r.Context()).IsSampled()
				out, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://upstream.test/", nil)
				if res, err := upstream.RoundTrip(out); err == nil {
					res.Body.Close()
				}
			}))
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.parent != "" {
				req.Header.Set("Traceparent", tt.parent)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			if sampled != tt.want {
				t.Errorf("sampled = %v, want %v", sampled, tt.want)
			}
			flags := "-00"
			if tt.want {
				flags = "-01"
			}
			if !strings.HasSuffix(sent, flags) || sent == tt.parent {
				t.Errorf("upstream got traceparent %q, want one of ours ending %s", sent, flags)
			}
		})
	}
}

// roundTripper is a RoundTripper from a function.
type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestTracedTransport: the client span's attributes never hold the query
// or user info, it ends when the body is done (not before), failures are
// classified without their text, and the request handed in is never
// modified.
func TestTracedTransport(t *testing.T) {
	recv := newOTLPReceiver(t, protocolHTTP)
	otelEnv(t, envEndpoint, recv.endpoint)
	tr, err := newTracer(nil)
	if err != nil || tr == nil {
		t.Fatalf("newTracer = %v, %v", tr, err)
	}
	body := "0123456789"
	errDial := errors.New("dial tcp: SECRET-HOST refused")
	var bodyRead bool
	var sent string // the traceparent /jwks was sent with
	rt := tr.transport("jwks", roundTripper(func(r *http.Request) (*http.Response, error) {
		switch r.URL.Path {
		case "/jwks":
			sent = r.Header.Get("Traceparent")
		case "/fail":
			return nil, &url.Error{Op: "Get", URL: r.URL.String(), Err: errDial}
		case "/timeout":
			return nil, context.DeadlineExceeded
		case "/switch":
			return &http.Response{StatusCode: http.StatusSwitchingProtocols, Body: nopRWC{}, Request: r}, nil
		}
		return &http.Response{StatusCode: 503, Body: io.NopCloser(&trackingReader{r: strings.NewReader(body), read: &bodyRead}), Request: r}, nil
	}))
	mk := func(path string) *http.Request {
		req, err := http.NewRequest(http.MethodGet, "https://user:SECRET-PASSWORD@keys.example.com"+path+"?key=SECRET-Q#frag", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		return req
	}

	req := mk("/jwks")
	before := req.Header.Clone()
	res, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.Header; len(got) != len(before) || got.Get("Traceparent") != before.Get("Traceparent") {
		t.Errorf("RoundTrip modified the request's headers: %v", got)
	}
	if _, err := io.ReadAll(res.Body); err != nil {
		t.Fatal(err)
	}
	if !bodyRead {
		t.Fatal("body not read through")
	}
	_ = res.Body.Close()
	_ = res.Body.Close() // twice: one span still

	if _, err := rt.RoundTrip(mk("/fail")); !errors.Is(err, errDial) {
		t.Fatalf("error %v, want the transport's, unwrapped", err)
	}
	if _, err := rt.RoundTrip(mk("/timeout")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v", err)
	}
	res, err = rt.RoundTrip(mk("/switch"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Body.(io.ReadWriteCloser); !ok {
		t.Error("a 101's body is no longer an io.ReadWriteCloser")
	}

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := tr.shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	byPath := map[string]*tracepb.Span{}
	for _, s := range recv.received() {
		full, _ := spanAttr(s, "url.full")
		byPath[strings.TrimPrefix(full, "https://keys.example.com")] = s
	}
	for _, tt := range []struct {
		path   string
		attrs  map[string]string
		status tracepb.Status_StatusCode
	}{
		{"/jwks", map[string]string{"http.response.status_code": "503", "error.type": "503", "server.address": "keys.example.com", "server.port": "443", "tokenguard.purpose": "jwks"}, tracepb.Status_STATUS_CODE_ERROR},
		{"/fail", map[string]string{"error.type": "_OTHER"}, tracepb.Status_STATUS_CODE_ERROR},
		{"/timeout", map[string]string{"error.type": "timeout"}, tracepb.Status_STATUS_CODE_ERROR},
		{"/switch", map[string]string{"http.response.status_code": "101"}, tracepb.Status_STATUS_CODE_UNSET},
	} {
		s := byPath[tt.path]
		if s == nil {
			t.Errorf("no span for %s among %d", tt.path, len(recv.received()))
			continue
		}
		checkSpan(t, s, "GET jwks", tt.attrs, tt.status)
		if want := "00-" + hex.EncodeToString(s.GetTraceId()) + "-" + hex.EncodeToString(s.GetSpanId()) + "-01"; tt.path == "/jwks" && sent != want {
			t.Errorf("sent traceparent %q, want the span's %q", sent, want)
		}
		if s.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("%s: kind %v", tt.path, s.GetKind())
		}
	}
	if n := len(recv.received()); n != 4 {
		t.Errorf("%d spans, want 4 (one per round trip)", n)
	}
	if raw := recv.rawRequests(); containsBytes(raw, "SECRET") || containsBytes(raw, "frag") {
		t.Error("an exported span holds the query, user info, fragment or error text")
	}
}

type trackingReader struct {
	r    io.Reader
	read *bool
}

func (r *trackingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err == io.EOF {
		*r.read = true
	}
	return n, err
}

type nopRWC struct{}

func (nopRWC) Read([]byte) (int, error)    { return 0, io.EOF }
func (nopRWC) Write(p []byte) (int, error) { return len(p), nil }
func (nopRWC) Close() error                { return nil }

// TestTracedReplayStore: each result of ReplayStore.Use is named on its
// span, and the error is passed on as it is.
func TestTracedReplayStore(t *testing.T) {
	recv := newOTLPReceiver(t, protocolHTTP)
	otelEnv(t, envEndpoint, recv.endpoint)
	tr, err := newTracer(nil)
	if err != nil || tr == nil {
		t.Fatalf("newTracer = %v, %v", tr, err)
	}
	tests := []struct {
		err    error
		want   string
		status tracepb.Status_StatusCode
	}{
		{nil, "ok", tracepb.Status_STATUS_CODE_UNSET},
		{fmt.Errorf("redisstore: %w", dpop.ErrReplay), "replay", tracepb.Status_STATUS_CODE_UNSET},
		{dpop.ErrStoreFull, "full", tracepb.Status_STATUS_CODE_ERROR},
		{dpop.ErrKeyQuota, "quota", tracepb.Status_STATUS_CODE_UNSET},
		{fmt.Errorf("redisstore: SECRET-ADDR: %w", dpop.ErrStoreUnavailable), "error", tracepb.Status_STATUS_CODE_ERROR},
		{errors.New("something else"), "error", tracepb.Status_STATUS_CODE_ERROR},
	}
	for _, tt := range tests {
		s := tr.replayStore(fakeReplayStore{err: tt.err})
		if err := s.Use(context.Background(), dpop.NewReplay("jkt-SECRET", "jti-SECRET", time.Now())); err != tt.err {
			t.Errorf("Use returned %v, want %v", err, tt.err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := tr.shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	spans := recv.received()
	if len(spans) != len(tests) {
		t.Fatalf("%d spans, want %d", len(spans), len(tests))
	}
	for i, tt := range tests {
		// One batch, in the order the spans ended.
		checkSpan(t, spans[i], "dpop replay_store", map[string]string{"tokenguard.replay_store.result": tt.want}, tt.status)
		if spans[i].GetKind() != tracepb.Span_SPAN_KIND_INTERNAL {
			t.Errorf("kind %v", spans[i].GetKind())
		}
	}
	if containsBytes(recv.rawRequests(), "SECRET") {
		t.Error("an exported span holds the store's error text or the proof's identifiers")
	}
}

type fakeReplayStore struct{ err error }

func (s fakeReplayStore) Use(context.Context, dpop.Replay) error { return s.err }

// TestServerSpanAborted: a response ReverseProxy aborts (panic
// http.ErrAbortHandler) ends its span with status Error, and the panic
// goes on.
func TestServerSpanAborted(t *testing.T) {
	recv := newOTLPReceiver(t, protocolHTTP)
	otelEnv(t, envEndpoint, recv.endpoint)
	tr, err := newTracer(nil)
	if err != nil || tr == nil {
		t.Fatalf("newTracer = %v, %v", tr, err)
	}
	h := accessLog(tr.serverSpan(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		onDecision(r, middleware.ReasonOK)
		w.WriteHeader(http.StatusOK)
		panic(http.ErrAbortHandler)
	})), slog.New(slog.DiscardHandler), &inflight{}, 0)
	func() {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler", v)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := tr.shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	spans := recv.received()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	checkSpan(t, spans[0], "GET", map[string]string{"tokenguard.decision": "allow", "http.response.status_code": "200"}, tracepb.Status_STATUS_CODE_ERROR)
}

// TestRouteOf: http.route is the path of a ServeMux pattern.
func TestRouteOf(t *testing.T) {
	for in, want := range map[string]string{
		"":                           "",
		"/":                          "/",
		"/api/":                      "/api/",
		"GET /api/{id}":              "/api/{id}",
		"POST\t/x":                   "/x",
		"api.example.com/v1/":        "/v1/",
		"GET api.example.com/v1/{$}": "/v1/{$}",
	} {
		if got := routeOf(in); got != want {
			t.Errorf("routeOf(%q) = %q, want %q", in, got, want)
		}
	}
}
