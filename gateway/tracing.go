package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokenguard/tokenguard/dpop"
)

// Tracing (OpenTelemetry) is configured by the standard OTEL_* environment
// variables only; the gateway's config file has no key for it. It is off
// unless OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// or OTEL_TRACES_EXPORTER is set, and OTEL_SDK_DISABLED=true turns it off
// whatever else is set.
//
// When it is on, the gateway records:
//
//   - a SERVER span per request, named "METHOD" or "METHOD /route" (the
//     pattern of the route that served it, without method and host), with
//     http.request.method, url.scheme, url.path (never the query),
//     http.route, http.response.status_code, network.protocol.version and
//     the access log's outcome: tokenguard.decision, tokenguard.reason,
//     tokenguard.request_id, and, when set, tokenguard.auth ("session"),
//     tokenguard.upstream_error and tokenguard.client_error. Status Error
//     for a 5xx or an aborted response. A W3C traceparent (and tracestate)
//     from the client is the parent, as with any OpenTelemetry server.
//   - a CLIENT span per outgoing HTTP request, named "METHOD purpose"
//     ("GET jwks", "GET discovery", "POST introspection", "GET upstream"),
//     with http.request.method, server.address, server.port, url.full
//     (scheme, host and path: never the query, user info or fragment),
//     http.response.status_code, tokenguard.purpose and, on failure,
//     error.type. It lasts until the response body has been read to its
//     end or closed. The request carries this span's traceparent: any
//     traceparent or tracestate the client sent is replaced, so the
//     upstream always sees the gateway's span as its parent. The "GET
//     jwks" span of a refresh a token's unknown kid triggers is a child of
//     that request's SERVER span (it carries that span's context and no
//     other value of the request's); scheduled refreshes start traces of
//     their own.
//   - an INTERNAL span "dpop replay_store" around each DPoP replay store
//     call, with tokenguard.replay_store.result.
//
// No span holds a token, a DPoP proof, a query string, a header value
// (beyond the request id the access log also records, which is checked
// to be 1 to 128 characters of [A-Za-z0-9._:-]) or a token's subject.
//
// Spans are exported over OTLP: http/protobuf (the default) or grpc, as
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL says.
// The exporters read their own variables (endpoint, headers, timeout,
// insecure, certificates, compression), the batch span processor its
// OTEL_BSP_* ones, the SDK OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
// (default parentbased_always_on), and the resource OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES (service.name defaults to "tokenguard").
//
// The gateway is an importable package: it never sets OpenTelemetry's
// global tracer provider or propagator. Its provider belongs to a tracer,
// which shutdown flushes and stops.

// The environment variables newTracer itself reads.
const (
	envSDKDisabled    = "OTEL_SDK_DISABLED"
	envTracesExporter = "OTEL_TRACES_EXPORTER"
	envEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	envSampler        = "OTEL_TRACES_SAMPLER"
	envSamplerArg     = "OTEL_TRACES_SAMPLER_ARG"
)

// The OTLP protocols the gateway exports with.
const (
	protocolHTTP = "http/protobuf"
	protocolGRPC = "grpc"
)

// tracerName is the instrumentation scope of the gateway's spans.
const tracerName = "github.com/tokenguard/tokenguard/gateway"

// defaultServiceName is service.name unless OTEL_SERVICE_NAME or
// OTEL_RESOURCE_ATTRIBUTES names another.
const defaultServiceName = "tokenguard"

// Attributes of the gateway's own.
const (
	attrDecision      = attribute.Key("tokenguard.decision")
	attrReason        = attribute.Key("tokenguard.reason")
	attrRequestID     = attribute.Key("tokenguard.request_id")
	attrAuth          = attribute.Key("tokenguard.auth")
	attrUpstreamError = attribute.Key("tokenguard.upstream_error")
	attrClientError   = attribute.Key("tokenguard.client_error")
	attrPurpose       = attribute.Key("tokenguard.purpose")
	attrReplayResult  = attribute.Key("tokenguard.replay_store.result")
)

// tracer makes the gateway's spans. A nil *tracer is tracing turned off:
// every method is then a no-op that returns its input unchanged, so the
// request path costs nothing. Its methods are safe for concurrent use.
type tracer struct {
	// Written once by newTracer, then only read.
	provider *sdktrace.TracerProvider // owns the batch span processor and the exporter
	tracer   trace.Tracer
	prop     propagation.TraceContext // W3C traceparent and tracestate
}

// newTracer returns the tracer the OTEL_* environment asks for, or nil,
// nil when tracing is off (see the comment at the top of this file).
//
// getenv (nil: os.Getenv) answers only the questions newTracer decides
// itself: on or off, OTEL_TRACES_EXPORTER, the protocol, and the sampler's
// validity. The OTLP exporters, the batch span processor, the sampler and
// the resource read the process environment themselves.
//
// A value newTracer cannot honour is an error naming the variable and,
// for an enumeration, the values supported; the OpenTelemetry SDK would
// otherwise only log it and carry on with a default.
func newTracer(getenv func(string) string) (*tracer, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	protocol, err := tracingProtocol(getenv)
	if err != nil || protocol == "" {
		return nil, err
	}
	ctx := context.Background()
	// Resource first: it can fail, and owns nothing to close.
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(defaultServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // last: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil {
		return nil, fmt.Errorf("tokenguard: OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	var exp sdktrace.SpanExporter
	switch protocol {
	case protocolGRPC:
		exp, err = otlptracegrpc.New(ctx)
	default:
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("tokenguard: OTEL_EXPORTER_OTLP_*: starting the OTLP %s exporter: %w", protocol, err)
	}
	// No WithSampler: the SDK then takes OTEL_TRACES_SAMPLER and
	// OTEL_TRACES_SAMPLER_ARG, checked above, and defaults to
	// parentbased_always_on.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &tracer{provider: tp, tracer: tp.Tracer(tracerName)}, nil
}

// tracingProtocol decides from the environment whether tracing is on, and
// returns the OTLP protocol to export with, or "" when tracing is off.
func tracingProtocol(getenv func(string) string) (string, error) {
	if strings.EqualFold(strings.TrimSpace(getenv(envSDKDisabled)), "true") {
		return "", nil
	}
	switch exporter := strings.ToLower(strings.TrimSpace(getenv(envTracesExporter))); exporter {
	case "none":
		return "", nil
	case "otlp":
	case "":
		if strings.TrimSpace(getenv(envEndpoint)) == "" && strings.TrimSpace(getenv(envTracesEndpoint)) == "" {
			return "", nil
		}
	default:
		return "", fmt.Errorf("tokenguard: %s: unsupported value %q (supported: otlp, none)", envTracesExporter, exporter)
	}
	name, protocol := envTracesProtocol, strings.TrimSpace(getenv(envTracesProtocol))
	if protocol == "" {
		name, protocol = envProtocol, strings.TrimSpace(getenv(envProtocol))
	}
	switch protocol {
	case "":
		protocol = protocolHTTP
	case protocolHTTP, protocolGRPC:
	default:
		return "", fmt.Errorf("tokenguard: %s: unsupported value %q (supported: %s, %s)", name, protocol, protocolHTTP, protocolGRPC)
	}
	if err := checkSampler(getenv); err != nil {
		return "", err
	}
	return protocol, nil
}

// checkSampler accepts what the SDK's sampler configuration accepts.
func checkSampler(getenv func(string) string) error {
	switch s := strings.ToLower(strings.TrimSpace(getenv(envSampler))); s {
	case "", "always_on", "always_off", "parentbased_always_on", "parentbased_always_off":
	case "traceidratio", "parentbased_traceidratio":
		if arg := strings.TrimSpace(getenv(envSamplerArg)); arg != "" {
			// Not (r < 0 || r > 1): that would let NaN through.
			if r, err := strconv.ParseFloat(arg, 64); err != nil || !(r >= 0 && r <= 1) {
				return fmt.Errorf("tokenguard: %s: %q is not a ratio from 0 to 1", envSamplerArg, arg)
			}
		}
	default:
		return fmt.Errorf("tokenguard: %s: unsupported value %q (supported: always_on, always_off, traceidratio, "+
			"parentbased_always_on, parentbased_always_off, parentbased_traceidratio)", envSampler, s)
	}
	return nil
}

// shutdown exports the spans still buffered and stops the exporter,
// within ctx. Spans started afterwards are dropped.
func (t *tracer) shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("tokenguard: tracing: %w", err)
	}
	return nil
}

// serverSpan records a SERVER span for each request next serves, as the
// comment at the top of this file describes, and puts it in the request's
// context, the parent of the spans made while serving it.
//
// Mount it inside accessLog: it reads the request's accessRecord, and the
// status from accessLog's recordingWriter (reached through Unwrap); without
// them the span has no outcome or status. http.route is the Pattern that
// http.ServeMux records on the request it is handed, so it is only seen
// when the handlers between here and the mux pass the request on as they
// got it (the gateway's do); it is left out for a 404 of no route.
//
// It passes w on as it is, so every optional interface of w survives.
func (t *tracer) serverSpan(next http.Handler) http.Handler {
	if t == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		method, attrMethod := spanMethod(r.Method)
		ctx, span := t.tracer.Start(ctx, method, trace.WithSpanKind(trace.SpanKindServer))
		r = r.WithContext(ctx)
		rw := findRecordingWriter(w)
		defer func() {
			// ReverseProxy aborts a response whose body copy failed by
			// panicking with http.ErrAbortHandler: end the span, then let
			// the panic go on to accessLog and the server.
			v := recover()
			if span.IsRecording() {
				t.endServerSpan(span, r, method, attrMethod, rw, v != nil)
			}
			span.End()
			if v != nil {
				panic(v)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// endServerSpan sets the attributes of the server span of r, which rw (nil
// if not found) recorded.
func (t *tracer) endServerSpan(span trace.Span, r *http.Request, method string, attrMethod attribute.KeyValue, rw *recordingWriter, aborted bool) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	attrs := make([]attribute.KeyValue, 0, 12)
	attrs = append(attrs,
		attrMethod,
		semconv.URLScheme(scheme),
		semconv.URLPath(r.URL.EscapedPath()),
		semconv.NetworkProtocolVersion(protocolVersion(r.ProtoMajor, r.ProtoMinor)),
	)
	rec, status := recordFrom(r.Context()), 0
	if rw != nil {
		rec = rw.rec
		status = rec.loggedStatus(rw.status, aborted)
		attrs = append(attrs, semconv.HTTPResponseStatusCode(status))
	}
	decision := ""
	if rec != nil {
		var reason string
		decision, reason = rec.outcome(status)
		attrs = append(attrs, attrDecision.String(decision), attrRequestID.String(rec.id))
		if reason != "" {
			attrs = append(attrs, attrReason.String(reason))
		}
		if rec.session {
			attrs = append(attrs, attrAuth.String("session")) // never the session id
		}
		if rec.upstreamError != "" {
			attrs = append(attrs, attrUpstreamError.String(rec.upstreamError))
		}
		if rec.clientError != "" {
			attrs = append(attrs, attrClientError.String(rec.clientError))
		}
	}
	if route := routeOf(r.Pattern); route != "" && decision != "not_found" {
		attrs = append(attrs, semconv.HTTPRoute(route))
		span.SetName(method + " " + route)
	}
	switch {
	case aborted:
		span.SetStatus(codes.Error, "response aborted")
	case status >= 500:
		attrs = append(attrs, semconv.ErrorTypeKey.String(strconv.Itoa(status)))
		span.SetStatus(codes.Error, "")
	}
	span.SetAttributes(attrs...)
}

// findRecordingWriter returns accessLog's writer under w, or nil.
func findRecordingWriter(w http.ResponseWriter) *recordingWriter {
	for range 8 { // bounded: an Unwrap chain is short, and must not loop
		switch x := w.(type) {
		case *recordingWriter:
			return x
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return nil
		}
	}
	return nil
}

// spanMethod returns the span name for an HTTP method and its
// http.request.method attribute: a method the semantic conventions do not
// know is "HTTP" and "_OTHER", so a client cannot fill the span names with
// values of its own.
func spanMethod(m string) (string, attribute.KeyValue) {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m, semconv.HTTPRequestMethodKey.String(m)
	}
	return "HTTP", semconv.HTTPRequestMethodOther
}

// protocolVersion is network.protocol.version: "1.1", "2", "3".
func protocolVersion(major, minor int) string {
	if major >= 2 {
		return strconv.Itoa(major)
	}
	return strconv.Itoa(major) + "." + strconv.Itoa(minor)
}

// routeOf is http.route for an http.ServeMux pattern "[METHOD ][HOST]/PATH":
// its path.
func routeOf(pattern string) string {
	if i := strings.IndexAny(pattern, " \t"); i >= 0 {
		pattern = strings.TrimLeft(pattern[i:], " \t")
	}
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		return pattern[i:]
	}
	return ""
}

// transport returns rt wrapped so that each request it sends gets a CLIENT
// span named "METHOD purpose" (see the comment at the top of this file),
// the child of the span in the request's context, and carries that span's
// W3C traceparent (and tracestate, if any) in place of any the request
// had. The request is copied, never modified. rt must not be nil.
//
// The span ends when the response body has been read to its end, has
// failed, or is closed; when the round trip fails; or at once for a
// response without a body and for 101 Switching Protocols, whose body is
// left as it is (ReverseProxy needs it to be an io.ReadWriteCloser).
func (t *tracer) transport(purpose string, rt http.RoundTripper) http.RoundTripper {
	if t == nil {
		return rt
	}
	return &tracedTransport{t: t, purpose: purpose, next: rt}
}

// jwksRefreshContext is the guard's JWKSRefreshContext when tracing is on:
// a JWKS refresh a token's unknown kid triggers carries the span context
// of the request that started it, so its "GET jwks" span is that
// request's child, and nothing else of that request (the refresh is
// shared by every request waiting on it, and may outlive them).
func jwksRefreshContext(caller context.Context) context.Context {
	return trace.ContextWithSpanContext(context.Background(), trace.SpanContextFromContext(caller))
}

// tracedTransport is tracer.transport's RoundTripper.
type tracedTransport struct {
	t       *tracer
	purpose string
	next    http.RoundTripper
}

func (tt *tracedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	method, attrMethod := spanMethod(req.Method)
	ctx, span := tt.t.tracer.Start(req.Context(), method+" "+tt.purpose, trace.WithSpanKind(trace.SpanKindClient))
	recording := span.IsRecording()
	if recording {
		span.SetAttributes(append(urlAttrs(req.URL), attrMethod, attrPurpose.String(tt.purpose))...)
	}
	// Inject even when not recording: the upstream must learn the
	// sampling decision, and never see the client's traceparent.
	out := req.WithContext(ctx)
	out.Header = req.Header.Clone()
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	out.Header.Del("Traceparent")
	out.Header.Del("Tracestate")
	tt.t.prop.Inject(ctx, propagation.HeaderCarrier(out.Header))

	res, err := tt.next.RoundTrip(out)
	if err != nil {
		if recording {
			span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
			span.SetStatus(codes.Error, "request failed") // never err's text: it holds the URL, query and all
		}
		span.End()
		return res, err
	}
	if recording {
		span.SetAttributes(semconv.HTTPResponseStatusCode(res.StatusCode))
		if res.StatusCode >= 400 {
			span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(res.StatusCode)))
			span.SetStatus(codes.Error, "")
		}
	}
	if !recording || res.StatusCode == http.StatusSwitchingProtocols || res.Body == nil || res.Body == http.NoBody {
		span.End()
		return res, nil
	}
	res.Body = &spanBody{ReadCloser: res.Body, span: span}
	return res, nil
}

// urlAttrs are the attributes of a request to u: server.address,
// server.port and url.full without query, user info or fragment.
func urlAttrs(u *url.URL) []attribute.KeyValue {
	port, _ := strconv.Atoi(u.Port())
	if port == 0 {
		switch u.Scheme {
		case "https":
			port = 443
		case "http":
			port = 80
		}
	}
	full := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	attrs := make([]attribute.KeyValue, 0, 6)
	attrs = append(attrs, semconv.ServerAddress(u.Hostname()), semconv.URLFull(full.String()))
	if port != 0 {
		attrs = append(attrs, semconv.ServerPort(port))
	}
	return attrs
}

// errorType is error.type for a failed round trip: a fixed word, never the
// error's text.
func errorType(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return semconv.ErrorTypeOther.Value.AsString()
}

// spanBody ends a client span when the response body ends: Read returns
// io.EOF or an error, or it is closed, whichever comes first (Close may
// come from another goroutine).
type spanBody struct {
	io.ReadCloser
	span trace.Span
	done atomic.Bool
}

func (b *spanBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.end(err)
	}
	return n, err
}

func (b *spanBody) Close() error {
	err := b.ReadCloser.Close()
	b.end(nil)
	return err
}

func (b *spanBody) end(err error) {
	if !b.done.CompareAndSwap(false, true) {
		return
	}
	if err != nil && err != io.EOF {
		b.span.SetStatus(codes.Error, "reading the response body failed")
	}
	b.span.End()
}

// Values of tokenguard.replay_store.result.
const (
	replayOK    = "ok"     // the proof was new, and is now recorded
	replaySeen  = "replay" // dpop.ErrReplay
	replayFull  = "full"   // dpop.ErrStoreFull
	replayQuota = "quota"  // dpop.ErrKeyQuota
	replayError = "error"  // anything else, dpop.ErrStoreUnavailable included
)

// replayStore returns s wrapped so that each Use gets an INTERNAL span
// "dpop replay_store", the child of the request's span, with the result as
// tokenguard.replay_store.result; "full" and "error" set status Error.
// The span holds neither the proof's identifiers nor its key. A nil s
// stays nil (the guard's in-memory default); the wrapper has only Use.
func (t *tracer) replayStore(s dpop.ReplayStore) dpop.ReplayStore {
	if t == nil || s == nil {
		return s
	}
	return &tracedReplayStore{t: t, next: s}
}

// tracedReplayStore is tracer.replayStore's store.
type tracedReplayStore struct {
	t    *tracer
	next dpop.ReplayStore
}

func (s *tracedReplayStore) Use(ctx context.Context, r dpop.Replay) error {
	ctx, span := s.t.tracer.Start(ctx, "dpop replay_store", trace.WithSpanKind(trace.SpanKindInternal))
	err := s.next.Use(ctx, r)
	if span.IsRecording() {
		result := replayResult(err)
		span.SetAttributes(attrReplayResult.String(result))
		if result == replayFull || result == replayError {
			span.SetStatus(codes.Error, "replay store could not decide")
		}
	}
	span.End()
	return err
}

// replayResult classifies a ReplayStore.Use error.
func replayResult(err error) string {
	switch {
	case err == nil:
		return replayOK
	case errors.Is(err, dpop.ErrReplay):
		return replaySeen
	case errors.Is(err, dpop.ErrStoreFull):
		return replayFull
	case errors.Is(err, dpop.ErrKeyQuota):
		return replayQuota
	}
	return replayError
}
