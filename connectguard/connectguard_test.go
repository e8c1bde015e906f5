package connectguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenguard/tokenguard/connectguard"
	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/dpoptest"
	"github.com/tokenguard/tokenguard/internal/testkit"
	"github.com/tokenguard/tokenguard/middleware"
)

// The test service's procedures: Who and Other are unary (Who also
// answers GET), Count streams from the server.
const (
	procWho   = "/test.v1.Echo/Who"
	procOther = "/test.v1.Echo/Other"
	procCount = "/test.v1.Echo/Count"
)

// public is the guard's Config.PublicURL: DPoP proofs name it followed by
// the procedure.
const public = "https://connect.example.com"

// whoRequest and whoResponse are the test service's messages, plain Go
// structs sent as JSON (jsonCodec): no code generation needed.
type whoRequest struct {
	N int `json:"n"`
}

type whoResponse struct {
	Subject string   `json:"subject"`
	Scopes  []string `json:"scopes"`
}

// jsonCodec is a connect.Codec for plain structs, named "json" so it
// replaces connect's protobuf JSON codec. It is stable (encoding/json
// writes struct fields in order), so Connect GET requests can use it.
type jsonCodec struct{}

func (jsonCodec) Name() string                        { return "json" }
func (jsonCodec) Marshal(v any) ([]byte, error)       { return json.Marshal(v) }
func (jsonCodec) MarshalStable(v any) ([]byte, error) { return json.Marshal(v) }
func (jsonCodec) Unmarshal(b []byte, v any) error     { return json.Unmarshal(b, v) }
func (jsonCodec) IsBinary() bool                      { return false }

// service records every call that reaches a handler, and answers with
// the Principal it found in its context.
type service struct {
	mu    sync.Mutex // guards calls
	calls map[string]int
}

func (s *service) record(ctx context.Context, proc string) *whoResponse {
	s.mu.Lock()
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[proc]++
	s.mu.Unlock()
	p, ok := middleware.PrincipalFrom(ctx)
	if !ok {
		return &whoResponse{}
	}
	return &whoResponse{Subject: p.Subject, Scopes: p.Scopes}
}

func (s *service) reached(proc string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[proc]
}

// fixture is a guarded Connect server on 127.0.0.1 (TLS with HTTP/2, so
// the gRPC protocol works too) and the issuer whose tokens it takes.
type fixture struct {
	is    *devissuer.Issuer
	guard *middleware.Guard
	svc   *service
	srv   *httptest.Server
}

func newGuard(t testing.TB, is *devissuer.Issuer, edit func(*middleware.Config)) *middleware.Guard {
	t.Helper()
	cfg := middleware.Config{
		Audience:  testkit.Audience,
		Issuers:   []middleware.Issuer{{Issuer: is.URL(), JWKSURI: is.URL() + "/jwks"}},
		PublicURL: public,
		DPoP:      middleware.DPoPConfig{Mode: middleware.DPoPAllowed},
	}
	if edit != nil {
		edit(&cfg)
	}
	g, err := middleware.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// serve mounts the test service behind the interceptor and starts it.
func serve(t testing.TB, guard *middleware.Guard, rules connectguard.Rules, svc *service) *httptest.Server {
	t.Helper()
	opts := connect.WithHandlerOptions(
		connect.WithCodec(jsonCodec{}),
		connect.WithInterceptors(connectguard.NewInterceptor(guard, rules)),
	)
	who := func(proc string) func(context.Context, *connect.Request[whoRequest]) (*connect.Response[whoResponse], error) {
		return func(ctx context.Context, _ *connect.Request[whoRequest]) (*connect.Response[whoResponse], error) {
			return connect.NewResponse(svc.record(ctx, proc)), nil
		}
	}
	mux := http.NewServeMux()
	mux.Handle(procWho, connect.NewUnaryHandler(procWho, who(procWho), opts,
		connect.WithIdempotency(connect.IdempotencyNoSideEffects)))
	mux.Handle(procOther, connect.NewUnaryHandler(procOther, who(procOther), opts))
	mux.Handle(procCount, connect.NewServerStreamHandler(procCount,
		func(ctx context.Context, req *connect.Request[whoRequest], stream *connect.ServerStream[whoResponse]) error {
			resp := svc.record(ctx, procCount)
			for range req.Msg.N {
				if err := stream.Send(resp); err != nil {
					return err
				}
			}
			return nil
		}, opts))
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func start(t testing.TB, rules connectguard.Rules, edit func(*middleware.Config)) *fixture {
	t.Helper()
	is := testkit.StartIssuer(t)
	f := &fixture{is: is, guard: newGuard(t, is, edit), svc: &service{}}
	f.srv = serve(t, f.guard, rules, f.svc)
	return f
}

var defaultRules = connectguard.Rules{
	procWho:   {"echo:read"},
	procCount: {"echo:stream"},
}

func mint(t testing.TB, is *devissuer.Issuer, scope string, extra map[string]any) string {
	t.Helper()
	tok, err := is.Mint(scope, time.Hour, extra)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// The protocols a client can speak; each test runs with all three.
var protocols = []struct {
	name string
	opts []connect.ClientOption
}{
	{"connect", nil},
	{"grpc", []connect.ClientOption{connect.WithGRPC()}},
	{"grpcweb", []connect.ClientOption{connect.WithGRPCWeb()}},
}

// client returns a client for proc speaking the protocol opts select. The
// client has the interceptor too: on a client it must do nothing.
func client(f *fixture, proc string, opts ...connect.ClientOption) *connect.Client[whoRequest, whoResponse] {
	opts = append([]connect.ClientOption{
		connect.WithCodec(jsonCodec{}),
		connect.WithInterceptors(connectguard.NewInterceptor(f.guard, connectguard.Rules{"*": {"unused"}})),
	}, opts...)
	return connect.NewClient[whoRequest, whoResponse](f.srv.Client(), f.srv.URL+proc, opts...)
}

// answer is what a client saw.
type answer struct {
	code connect.Code // 0 for none
	msg  string
	meta http.Header // the error's metadata
	resp *whoResponse
}

func result(resp *whoResponse, err error) answer {
	if err == nil {
		return answer{resp: resp}
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return answer{code: connect.CodeUnknown, msg: err.Error()}
	}
	return answer{code: ce.Code(), msg: ce.Message(), meta: ce.Meta()}
}

// call makes a unary call to proc with headers hdr ("Name", "value"
// pairs).
func call(t testing.TB, f *fixture, proc string, opts []connect.ClientOption, hdr ...string) answer {
	t.Helper()
	req := connect.NewRequest(&whoRequest{N: 1})
	for i := 0; i < len(hdr); i += 2 {
		req.Header().Add(hdr[i], hdr[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
	defer cancel()
	resp, err := client(f, proc, opts...).CallUnary(ctx, req)
	if err != nil {
		return result(nil, err)
	}
	return result(resp.Msg, nil)
}

// stream opens a server stream to procCount asking for n messages, and
// reads them all.
func stream(t testing.TB, f *fixture, opts []connect.ClientOption, n int, hdr ...string) answer {
	t.Helper()
	req := connect.NewRequest(&whoRequest{N: n})
	for i := 0; i < len(hdr); i += 2 {
		req.Header().Add(hdr[i], hdr[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
	defer cancel()
	s, err := client(f, procCount, opts...).CallServerStream(ctx, req)
	if err != nil {
		return result(nil, err)
	}
	defer s.Close()
	var last *whoResponse
	got := 0
	for s.Receive() {
		last = s.Msg()
		got++
	}
	if err := s.Err(); err != nil {
		return result(nil, err)
	}
	if got != n {
		t.Errorf("the stream sent %d messages, want %d", got, n)
	}
	return answer{resp: last}
}

// wantChallenge requires a WWW-Authenticate value of a's metadata to
// start with scheme and contain every one of parts.
func wantChallenge(t *testing.T, a answer, scheme string, parts ...string) {
	t.Helper()
	got := a.meta.Values("WWW-Authenticate")
	for i, c := range got {
		if slices.Contains(got[i+1:], c) {
			t.Errorf("WWW-Authenticate %q is sent twice", c)
		}
	}
	for _, c := range a.meta.Values("WWW-Authenticate") {
		if !strings.HasPrefix(c, scheme+" ") {
			continue
		}
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(c, p)
		}
		if ok {
			return
		}
	}
	t.Errorf("WWW-Authenticate = %q; want a %s challenge with %q", a.meta.Values("WWW-Authenticate"), scheme, parts)
}

// TestUnary runs each kind of call through the interceptor to a unary
// handler, in each protocol: the code, the message, the challenge in the
// error's metadata, and whether the handler ran with the Principal. Each
// case fails if the check it names is removed.
func TestUnary(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := start(t, defaultRules, func(c *middleware.Config) { c.Registerer = reg })
	alice := dpoptest.NewClient(t)
	mallory := dpoptest.NewClient(t)
	good := mint(t, f.is, "echo:read", nil)
	other := mint(t, f.is, "orders:read", nil)
	expired := mint(t, f.is, "echo:read", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})
	bound := mint(t, f.is, "echo:read", map[string]any{"cnf": map[string]any{"jkt": alice.JKT}})

	tests := []struct {
		name     string
		hdr      func(t *testing.T) []string
		wantCode connect.Code // 0: allowed
		wantMsg  string
		scheme   string
		parts    []string
		reason   string // the tokenguard_requests_total reason the call adds one to; "" unchecked
	}{
		{name: "bearer allowed", hdr: func(*testing.T) []string { return []string{"Authorization", "Bearer " + good} }},
		{
			name: "no token", hdr: func(*testing.T) []string { return nil },
			wantCode: connect.CodeUnauthenticated, wantMsg: "missing_token", scheme: "Bearer", parts: []string{"realm="},
		},
		{
			name: "scope missing", hdr: func(*testing.T) []string { return []string{"Authorization", "Bearer " + other} },
			wantCode: connect.CodePermissionDenied, wantMsg: "insufficient_scope",
			scheme: "Bearer", parts: []string{`error="insufficient_scope"`, `scope="echo:read"`},
		},
		{
			name: "expired", hdr: func(*testing.T) []string { return []string{"Authorization", "Bearer " + expired} },
			wantCode: connect.CodeUnauthenticated, wantMsg: "invalid_token: token expired",
			scheme: "Bearer", parts: []string{`error="invalid_token"`},
		},
		{
			name: "malformed authorization", hdr: func(*testing.T) []string { return []string{"Authorization", "Bearer"} },
			wantCode: connect.CodeInvalidArgument, wantMsg: "invalid_request",
			scheme: "Bearer", parts: []string{`error="invalid_request"`}, reason: "malformed_request",
		},
		{
			// Decided by the guard as Require decides two Authorization
			// headers: the same status, challenge and metric.
			name: "two authorization headers",
			hdr: func(*testing.T) []string {
				return []string{"Authorization", "Bearer " + good, "Authorization", "Bearer " + good}
			},
			wantCode: connect.CodeInvalidArgument, wantMsg: "invalid_request: more than one Authorization header",
			scheme: "Bearer", parts: []string{`error="invalid_request"`}, reason: "malformed_request",
		},
		{
			name: "DPoP-bound token as Bearer", hdr: func(*testing.T) []string { return []string{"Authorization", "Bearer " + bound} },
			wantCode: connect.CodeUnauthenticated, wantMsg: "invalid_token", scheme: "Bearer", parts: []string{`error="invalid_token"`},
		},
		{
			name: "DPoP proof for POST and public URL + procedure",
			hdr: func(t *testing.T) []string {
				return []string{"Authorization", "DPoP " + bound, "DPoP", alice.Proof(t, "POST", public+procWho, bound, "")}
			},
		},
		{
			name: "DPoP proof for another procedure",
			hdr: func(t *testing.T) []string {
				return []string{"Authorization", "DPoP " + bound, "DPoP", alice.Proof(t, "POST", public+procOther, bound, "")}
			},
			wantCode: connect.CodeUnauthenticated, wantMsg: "invalid_dpop_proof", scheme: "DPoP", parts: []string{`error="invalid_dpop_proof"`},
		},
		{
			name: "DPoP proof for GET",
			hdr: func(t *testing.T) []string {
				return []string{"Authorization", "DPoP " + bound, "DPoP", alice.Proof(t, "GET", public+procWho, bound, "")}
			},
			wantCode: connect.CodeUnauthenticated, wantMsg: "invalid_dpop_proof", scheme: "DPoP",
		},
		{
			name: "DPoP proof by another key",
			hdr: func(t *testing.T) []string {
				return []string{"Authorization", "DPoP " + bound, "DPoP", mallory.Proof(t, "POST", public+procWho, bound, "")}
			},
			wantCode: connect.CodeUnauthenticated, wantMsg: "invalid_token", scheme: "DPoP",
		},
		{
			// As Require decides two DPoP headers on a DPoP request.
			name: "two DPoP headers",
			hdr: func(t *testing.T) []string {
				p := alice.Proof(t, "POST", public+procWho, bound, "")
				return []string{"Authorization", "DPoP " + bound, "DPoP", p, "DPoP", p}
			},
			wantCode: connect.CodeUnauthenticated, wantMsg: "invalid_dpop_proof: more than one DPoP header",
			scheme: "DPoP", parts: []string{`error="invalid_dpop_proof"`}, reason: "invalid_dpop_proof",
		},
		{
			// As over HTTP, a Bearer request's DPoP headers are not read.
			name: "two DPoP headers beside a Bearer token",
			hdr: func(t *testing.T) []string {
				p := alice.Proof(t, "POST", public+procWho, bound, "")
				return []string{"Authorization", "Bearer " + good, "DPoP", p, "DPoP", p}
			},
		},
	}
	for _, proto := range protocols {
		for _, tc := range tests {
			t.Run(proto.name+"/"+tc.name, func(t *testing.T) {
				hdr := tc.hdr(t)
				before := f.svc.reached(procWho)
				counted := requests(t, reg)[tc.reason]
				a := call(t, f, procWho, proto.opts, hdr...)
				after := f.svc.reached(procWho)
				if a.code != tc.wantCode {
					t.Fatalf("code = %v (%q), want %v", a.code, a.msg, tc.wantCode)
				}
				if n := requests(t, reg)[tc.reason] - counted; tc.reason != "" && n != 1 {
					t.Errorf("tokenguard_requests_total{reason=%q} grew by %v, want 1", tc.reason, n)
				}
				if tc.wantCode == 0 {
					if after != before+1 || a.resp.Subject != "demo-user" || !slices.Contains(a.resp.Scopes, "echo:read") {
						t.Fatalf("handler ran %d times and saw %+v, want once with demo-user and echo:read", after-before, a.resp)
					}
					return
				}
				if after != before {
					t.Errorf("the handler ran on a refused call")
				}
				if !strings.HasPrefix(a.msg, tc.wantMsg) {
					t.Errorf("message = %q, want it to start %q", a.msg, tc.wantMsg)
				}
				if tc.scheme != "" {
					wantChallenge(t, a, tc.scheme, tc.parts...)
				}
				for i := 1; i < len(hdr); i += 2 {
					secret := hdr[i][strings.IndexByte(hdr[i], ' ')+1:]
					if len(secret) < 20 {
						continue
					}
					if strings.Contains(a.msg, secret) || strings.Contains(strings.Join(a.meta.Values("WWW-Authenticate"), " "), secret) {
						t.Errorf("the answer carries the request's %s", hdr[i-1])
					}
				}
			})
		}
	}
}

// TestHTTPStatus: over the Connect protocol the denial is an HTTP 401
// with WWW-Authenticate in the response headers, as a plain HTTP client
// (or a browser's fetch) sees it.
func TestHTTPStatus(t *testing.T) {
	f := start(t, defaultRules, nil)
	req, err := http.NewRequest("POST", f.srv.URL+procWho, strings.NewReader(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := resp.Header.Values("WWW-Authenticate")
	if resp.StatusCode != http.StatusUnauthorized || len(got) != 2 || !strings.HasPrefix(got[0], "Bearer ") || !strings.HasPrefix(got[1], "DPoP ") {
		t.Errorf("status %d, WWW-Authenticate %q; want 401 with a Bearer and a DPoP challenge", resp.StatusCode, got)
	}
}

// TestConnectGET: a Connect GET request's proof names GET, the method the
// client used.
func TestConnectGET(t *testing.T) {
	f := start(t, defaultRules, nil)
	alice := dpoptest.NewClient(t)
	bound := mint(t, f.is, "echo:read", map[string]any{"cnf": map[string]any{"jkt": alice.JKT}})
	get := []connect.ClientOption{connect.WithHTTPGet(), connect.WithIdempotency(connect.IdempotencyNoSideEffects)}
	if a := call(t, f, procWho, get, "Authorization", "DPoP "+bound, "DPoP", alice.Proof(t, "GET", public+procWho, bound, "")); a.code != 0 {
		t.Errorf("GET with a proof for GET: %v (%q), want allowed", a.code, a.msg)
	}
	if a := call(t, f, procWho, get, "Authorization", "DPoP "+bound, "DPoP", alice.Proof(t, "POST", public+procWho, bound, "")); a.code != connect.CodeUnauthenticated {
		t.Errorf("GET with a proof for POST: %v, want Unauthenticated", a.code)
	}
}

// TestUnlisted: a procedure Rules does not list is refused before its
// handler runs, whatever the token.
func TestUnlisted(t *testing.T) {
	f := start(t, defaultRules, nil)
	tok := mint(t, f.is, "echo:read echo:stream", nil)
	for _, proto := range protocols {
		for _, hdr := range [][]string{nil, {"Authorization", "Bearer " + tok}} {
			if a := call(t, f, procOther, proto.opts, hdr...); a.code != connect.CodePermissionDenied {
				t.Errorf("%s: Other with %d headers: %v (%q), want PermissionDenied", proto.name, len(hdr)/2, a.code, a.msg)
			}
		}
	}
	if n := f.svc.reached(procOther); n != 0 {
		t.Errorf("Other's handler ran %d times", n)
	}
	g := start(t, connectguard.Rules{procWho: nil}, nil)
	if a := stream(t, g, nil, 1, "Authorization", "Bearer "+tok); a.code != connect.CodePermissionDenied {
		t.Errorf("unlisted stream: %v, want PermissionDenied", a.code)
	}
	if n := g.svc.reached(procCount); n != 0 {
		t.Errorf("the unlisted stream's handler ran %d times", n)
	}
}

// TestAnyProcedure: "*" applies to every procedure not listed; a listed
// one keeps its own scopes.
func TestAnyProcedure(t *testing.T) {
	f := start(t, connectguard.Rules{"*": {"echo:any"}, procWho: {"echo:read"}}, nil)
	anyTok := mint(t, f.is, "echo:any", nil)
	read := mint(t, f.is, "echo:read", nil)
	if a := call(t, f, procOther, nil, "Authorization", "Bearer "+anyTok); a.code != 0 || a.resp.Subject != "demo-user" {
		t.Errorf("Other with echo:any: %v (%q) %+v, want allowed", a.code, a.msg, a.resp)
	}
	if a := call(t, f, procOther, nil, "Authorization", "Bearer "+read); a.code != connect.CodePermissionDenied {
		t.Errorf("Other with echo:read: %v, want PermissionDenied", a.code)
	}
	if a := call(t, f, procWho, nil, "Authorization", "Bearer "+anyTok); a.code != connect.CodePermissionDenied {
		t.Errorf("Who with echo:any: %v, want PermissionDenied (its own rule)", a.code)
	}
	if a := stream(t, f, nil, 2, "Authorization", "Bearer "+anyTok); a.code != 0 {
		t.Errorf("Count with echo:any: %v (%q), want allowed", a.code, a.msg)
	}
	alice := dpoptest.NewClient(t)
	bound := mint(t, f.is, "echo:any", map[string]any{"cnf": map[string]any{"jkt": alice.JKT}})
	if a := call(t, f, procOther, nil, "Authorization", "DPoP "+bound, "DPoP", alice.Proof(t, "POST", public+procOther, bound, "")); a.code != 0 {
		t.Errorf("Other with DPoP: %v (%q), want allowed", a.code, a.msg)
	}
	if a := call(t, f, procOther, nil, "Authorization", "DPoP "+bound, "DPoP", alice.Proof(t, "POST", public+procWho, bound, "")); a.code != connect.CodeUnauthenticated {
		t.Errorf("Other with a proof for Who: %v, want Unauthenticated", a.code)
	}
}

// TestStream: the interceptor decides when a stream opens; the handler's
// context carries the Principal.
func TestStream(t *testing.T) {
	f := start(t, defaultRules, nil)
	alice := dpoptest.NewClient(t)
	streamTok := mint(t, f.is, "echo:stream", nil)
	read := mint(t, f.is, "echo:read", nil)
	bound := mint(t, f.is, "echo:stream", map[string]any{"cnf": map[string]any{"jkt": alice.JKT}})
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			before := f.svc.reached(procCount)
			a := stream(t, f, proto.opts, 3, "Authorization", "Bearer "+streamTok)
			if a.code != 0 || a.resp == nil || !slices.Contains(a.resp.Scopes, "echo:stream") {
				t.Fatalf("allowed stream: %v (%q) %+v", a.code, a.msg, a.resp)
			}
			a = stream(t, f, proto.opts, 1)
			if a.code != connect.CodeUnauthenticated {
				t.Errorf("no token: %v, want Unauthenticated", a.code)
			}
			wantChallenge(t, a, "Bearer", "realm=")
			a = stream(t, f, proto.opts, 1, "Authorization", "Bearer "+read)
			if a.code != connect.CodePermissionDenied {
				t.Errorf("echo:read: %v, want PermissionDenied", a.code)
			}
			wantChallenge(t, a, "Bearer", `error="insufficient_scope"`, `scope="echo:stream"`)
			a = stream(t, f, proto.opts, 1, "Authorization", "Bearer "+streamTok, "Authorization", "Bearer "+streamTok)
			if a.code != connect.CodeInvalidArgument {
				t.Errorf("two Authorization headers: %v (%q), want InvalidArgument", a.code, a.msg)
			}
			wantChallenge(t, a, "Bearer", `error="invalid_request"`)
			if a := stream(t, f, proto.opts, 1, "Authorization", "DPoP "+bound, "DPoP", alice.Proof(t, "POST", public+procCount, bound, "")); a.code != 0 {
				t.Errorf("DPoP: %v (%q), want allowed", a.code, a.msg)
			}
			if a := stream(t, f, proto.opts, 1, "Authorization", "DPoP "+bound, "DPoP", alice.Proof(t, "POST", public+procWho, bound, "")); a.code != connect.CodeUnauthenticated {
				t.Errorf("DPoP with a proof for Who: %v, want Unauthenticated", a.code)
			}
			if n := f.svc.reached(procCount) - before; n != 2 {
				t.Errorf("the handler ran %d times, want 2", n)
			}
		})
	}
}

// TestDPoPReplay: a proof is taken once.
func TestDPoPReplay(t *testing.T) {
	f := start(t, defaultRules, nil)
	alice := dpoptest.NewClient(t)
	bound := mint(t, f.is, "echo:read", map[string]any{"cnf": map[string]any{"jkt": alice.JKT}})
	proof := alice.Proof(t, "POST", public+procWho, bound, "")
	if a := call(t, f, procWho, nil, "Authorization", "DPoP "+bound, "DPoP", proof); a.code != 0 {
		t.Fatalf("first use: %v (%q)", a.code, a.msg)
	}
	a := call(t, f, procWho, nil, "Authorization", "DPoP "+bound, "DPoP", proof)
	if a.code != connect.CodeUnauthenticated {
		t.Fatalf("replayed: %v (%q), want Unauthenticated", a.code, a.msg)
	}
	wantChallenge(t, a, "DPoP", `error="invalid_dpop_proof"`)
	if n := f.svc.reached(procWho); n != 1 {
		t.Errorf("the handler ran %d times, want once", n)
	}
}

// TestDPoPNonce: use_dpop_nonce comes with a DPoP-Nonce in the error's
// metadata, and a proof carrying it is taken.
func TestDPoPNonce(t *testing.T) {
	f := start(t, defaultRules, func(c *middleware.Config) { c.DPoP.Nonce = true })
	alice := dpoptest.NewClient(t)
	bound := mint(t, f.is, "echo:read", map[string]any{"cnf": map[string]any{"jkt": alice.JKT}})
	for _, proto := range protocols {
		a := call(t, f, procWho, proto.opts, "Authorization", "DPoP "+bound, "DPoP", alice.Proof(t, "POST", public+procWho, bound, ""))
		if a.code != connect.CodeUnauthenticated || a.msg != "use_dpop_nonce: DPoP nonce required" {
			t.Fatalf("%s: no nonce: %v (%q), want Unauthenticated use_dpop_nonce", proto.name, a.code, a.msg)
		}
		wantChallenge(t, a, "DPoP", `error="use_dpop_nonce"`)
		nonce := a.meta.Get("DPoP-Nonce")
		if nonce == "" {
			t.Fatalf("%s: no DPoP-Nonce in %v", proto.name, a.meta)
		}
		if a := call(t, f, procWho, proto.opts, "Authorization", "DPoP "+bound, "DPoP", alice.Proof(t, "POST", public+procWho, bound, nonce)); a.code != 0 {
			t.Errorf("%s: with the nonce: %v (%q), want allowed", proto.name, a.code, a.msg)
		}
	}
}

// TestDPoPKeyQuota: a key over its replay quota gets
// CodeResourceExhausted (HTTP's 429).
func TestDPoPKeyQuota(t *testing.T) {
	f := start(t, defaultRules, func(c *middleware.Config) { c.DPoP.ReplayKeyQuota = 1 })
	alice := dpoptest.NewClient(t)
	bound := mint(t, f.is, "echo:read", map[string]any{"cnf": map[string]any{"jkt": alice.JKT}})
	if a := call(t, f, procWho, nil, "Authorization", "DPoP "+bound, "DPoP", alice.Proof(t, "POST", public+procWho, bound, "")); a.code != 0 {
		t.Fatalf("first proof: %v (%q)", a.code, a.msg)
	}
	if a := call(t, f, procWho, nil, "Authorization", "DPoP "+bound, "DPoP", alice.Proof(t, "POST", public+procWho, bound, "")); a.code != connect.CodeResourceExhausted {
		t.Errorf("second proof: %v (%q), want ResourceExhausted", a.code, a.msg)
	}
}

// TestKeysUnavailable: when the issuer's keys never loaded the answer is
// CodeUnavailable without a challenge, and the handler does not run.
func TestKeysUnavailable(t *testing.T) {
	is := testkit.StartIssuer(t)
	is.FailJWKS(http.StatusInternalServerError)
	guard := newGuard(t, is, func(c *middleware.Config) { c.StartupWait = 50 * time.Millisecond })
	f := &fixture{is: is, guard: guard, svc: &service{}}
	f.srv = serve(t, guard, defaultRules, f.svc)
	tok := mint(t, is, "echo:read echo:stream", nil)
	for _, proto := range protocols {
		for name, a := range map[string]answer{
			"unary":  call(t, f, procWho, proto.opts, "Authorization", "Bearer "+tok),
			"stream": stream(t, f, proto.opts, 1, "Authorization", "Bearer "+tok),
		} {
			if a.code != connect.CodeUnavailable || a.msg != "keys_unavailable: signing keys unavailable" {
				t.Errorf("%s %s: %v (%q), want Unavailable keys_unavailable", proto.name, name, a.code, a.msg)
			}
			if c := a.meta.Values("WWW-Authenticate"); len(c) != 0 {
				t.Errorf("%s %s: WWW-Authenticate = %q, want none", proto.name, name, c)
			}
		}
	}
	if n := f.svc.reached(procWho) + f.svc.reached(procCount); n != 0 {
		t.Errorf("the handlers ran %d times", n)
	}
}

// TestWithoutPublicURL: DPoP calls are refused, Bearer calls are not
// affected.
func TestWithoutPublicURL(t *testing.T) {
	f := start(t, defaultRules, func(c *middleware.Config) { c.PublicURL = "" })
	alice := dpoptest.NewClient(t)
	bound := mint(t, f.is, "echo:read", map[string]any{"cnf": map[string]any{"jkt": alice.JKT}})
	for _, htu := range []string{public + procWho, f.srv.URL + procWho} {
		if a := call(t, f, procWho, nil, "Authorization", "DPoP "+bound, "DPoP", alice.Proof(t, "POST", htu, bound, "")); a.code != connect.CodeUnauthenticated {
			t.Errorf("proof for %s: %v, want Unauthenticated", htu, a.code)
		}
	}
	if a := call(t, f, procWho, nil, "Authorization", "Bearer "+mint(t, f.is, "echo:read", nil)); a.code != 0 {
		t.Errorf("Bearer: %v (%q), want allowed", a.code, a.msg)
	}
}

// TestMetrics: calls are counted in tokenguard_requests_total as
// Require's are.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := start(t, defaultRules, func(c *middleware.Config) { c.Registerer = reg })
	call(t, f, procWho, nil, "Authorization", "Bearer "+mint(t, f.is, "echo:read", nil))
	call(t, f, procWho, nil)
	stream(t, f, nil, 1)
	got := requests(t, reg)
	if got["ok"] != 1 || got["missing_token"] != 2 {
		t.Errorf("tokenguard_requests_total by reason = %v, want ok 1 and missing_token 2", got)
	}
}

// requests returns tokenguard_requests_total from reg, by reason (the
// reasons counted so far).
func requests(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "tokenguard_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && m.GetCounter().GetValue() > 0 {
					got[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return got
}

// TestScopesSupported: each rule's scopes join scopes_supported.
func TestScopesSupported(t *testing.T) {
	f := start(t, connectguard.Rules{procWho: {"echo:read"}, "*": {"echo:any"}}, nil)
	md, ok := f.guard.ResourceMetadata()
	if !ok {
		t.Fatal("no resource metadata")
	}
	for _, s := range []string{"echo:read", "echo:any"} {
		if !slices.Contains(md.ScopesSupported, s) {
			t.Errorf("scopes_supported = %q, want %q in it", md.ScopesSupported, s)
		}
	}
}

// TestBadRules: a rule the guard cannot enforce panics when the
// interceptor is made, naming the rule.
func TestBadRules(t *testing.T) {
	guard := newGuard(t, testkit.StartIssuer(t), nil)
	tests := []struct {
		name  string
		guard *middleware.Guard
		rules connectguard.Rules
		want  string
	}{
		{"nil guard", nil, connectguard.Rules{"*": nil}, "nil *middleware.Guard"},
		{"no rules", guard, nil, "Rules is empty"},
		{"a path", guard, connectguard.Rules{"test.v1.Echo/Who": nil}, `"test.v1.Echo/Who"`},
		{"a wildcard", guard, connectguard.Rules{"/test.v1.Echo/*": nil}, `"/test.v1.Echo/*"`},
		{"a bad scope", guard, connectguard.Rules{procWho: {"a b"}}, procWho},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				msg, _ := recover().(string)
				if !strings.HasPrefix(msg, "connectguard: ") || !strings.Contains(msg, tc.want) {
					t.Errorf("panic = %q, want a connectguard panic naming %s", msg, tc.want)
				}
			}()
			connectguard.NewInterceptor(tc.guard, tc.rules)
		})
	}
}
