package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	collectortracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP trace receiver for tests: OTLP/HTTP (protobuf)
// or OTLP/gRPC on 127.0.0.1, keeping every span it is sent.
type otlpReceiver struct {
	endpoint string // for OTEL_EXPORTER_OTLP_ENDPOINT

	mu        sync.Mutex // guards the fields below
	spans     []*tracepb.Span
	resources []*tracepb.ResourceSpans // as received, spans included
	raw       [][]byte                 // each export request, marshalled
	errs      []string                 // what the receiver could not take
}

// startOTLPReceiver starts an OTLP trace receiver for protocol
// ("http/protobuf" or "grpc") on 127.0.0.1, stopped when the test ends.
// It returns the endpoint to put in OTEL_EXPORTER_OTLP_ENDPOINT (a
// "http://127.0.0.1:port" URL; for grpc also set
// OTEL_EXPORTER_OTLP_INSECURE=true and the protocol) and a function that
// returns a copy of the spans received so far.
func startOTLPReceiver(t testing.TB, protocol string) (endpoint string, spans func() []*tracepb.Span) {
	t.Helper()
	r := newOTLPReceiver(t, protocol)
	return r.endpoint, r.received
}

// newOTLPReceiver is startOTLPReceiver, returning the receiver itself.
func newOTLPReceiver(t testing.TB, protocol string) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	switch protocol {
	case protocolHTTP:
		srv := httptest.NewServer(http.HandlerFunc(r.serveHTTP)) // 127.0.0.1
		t.Cleanup(srv.Close)
		r.endpoint = srv.URL
	case protocolGRPC:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer()
		collectortracepb.RegisterTraceServiceServer(s, grpcTraceService{r: r})
		go func() { _ = s.Serve(ln) }()
		t.Cleanup(s.Stop)
		r.endpoint = "http://" + ln.Addr().String()
	default:
		t.Fatalf("startOTLPReceiver: unknown protocol %q", protocol)
	}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, e := range r.errs {
			t.Errorf("OTLP receiver: %s", e)
		}
	})
	return r
}

// serveHTTP is OTLP/HTTP's POST /v1/traces, binary protobuf only.
func (r *otlpReceiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		r.fail("unexpected " + req.Method + " " + req.URL.Path)
		http.NotFound(w, req)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		r.fail("unexpected Content-Type " + ct)
		http.Error(w, "unsupported media type", http.StatusUnsupportedMediaType)
		return
	}
	var body io.Reader = http.MaxBytesReader(w, req.Body, 16<<20)
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			r.fail("gzip: " + err.Error())
			http.Error(w, "bad gzip", http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		r.fail("reading the body: " + err.Error())
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	var msg collectortracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &msg); err != nil {
		r.fail("unmarshalling: " + err.Error())
		http.Error(w, "bad protobuf", http.StatusBadRequest)
		return
	}
	r.add(&msg)
	out, _ := proto.Marshal(&collectortracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// grpcTraceService is OTLP/gRPC's TraceService.
type grpcTraceService struct {
	collectortracepb.UnimplementedTraceServiceServer
	r *otlpReceiver
}

func (s grpcTraceService) Export(_ context.Context, msg *collectortracepb.ExportTraceServiceRequest) (*collectortracepb.ExportTraceServiceResponse, error) {
	s.r.add(msg)
	return &collectortracepb.ExportTraceServiceResponse{}, nil
}

func (r *otlpReceiver) add(msg *collectortracepb.ExportTraceServiceRequest) {
	b, _ := proto.Marshal(msg)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.raw = append(r.raw, b)
	for _, rs := range msg.GetResourceSpans() {
		r.resources = append(r.resources, rs)
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
}

func (r *otlpReceiver) fail(msg string) {
	r.mu.Lock()
	r.errs = append(r.errs, msg)
	r.mu.Unlock()
}

// received returns the spans received so far.
func (r *otlpReceiver) received() []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.spans...)
}

// rawRequests returns every export request received, marshalled: what a
// test searches for text that must never be exported.
func (r *otlpReceiver) rawRequests() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.raw...)
}

// resourceAttr returns the string value of resource attribute key in the
// first export received, and whether there was one.
func (r *otlpReceiver) resourceAttr(key string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range r.resources {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == key {
				return kv.GetValue().GetStringValue(), true
			}
		}
	}
	return "", false
}

// waitForSpans polls spans until it returns at least n, for at most
// timeout, and returns what it last got.
func waitForSpans(t testing.TB, spans func() []*tracepb.Span, n int, timeout time.Duration) []*tracepb.Span {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := spans()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d spans in %v, want %d", len(got), timeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// otelEnv clears every OTEL_* variable of the process for the test and
// sets kv (name, value, name, value…): the exporters and the SDK read the
// process environment. It uses t.Setenv, so the test cannot be parallel.
func otelEnv(t testing.TB, kv ...string) {
	t.Helper()
	if len(kv)%2 != 0 {
		t.Fatal("otelEnv: odd number of arguments")
	}
	for _, e := range os.Environ() {
		if name, _, _ := strings.Cut(e, "="); strings.HasPrefix(name, "OTEL_") {
			t.Setenv(name, "")
		}
	}
	for i := 0; i < len(kv); i += 2 {
		t.Setenv(kv[i], kv[i+1])
	}
}

// spanAttr returns the value of span attribute key as a string (ints in
// decimal, bools as true/false), and whether it is there.
func spanAttr(s *tracepb.Span, key string) (string, bool) {
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() != key {
			continue
		}
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_IntValue:
			return strconv.FormatInt(v.IntValue, 10), true
		case *commonpb.AnyValue_BoolValue:
			return strconv.FormatBool(v.BoolValue), true
		}
		return kv.GetValue().GetStringValue(), true
	}
	return "", false
}

// containsBytes reports whether any of raw holds s.
func containsBytes(raw [][]byte, s string) bool {
	for _, b := range raw {
		if bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}
