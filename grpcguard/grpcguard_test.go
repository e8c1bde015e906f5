package grpcguard_test

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenguard/tokenguard/grpcguard"
	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/dpoptest"
	"github.com/tokenguard/tokenguard/internal/testkit"
	"github.com/tokenguard/tokenguard/middleware"
)

// The health service's methods: Check and List are unary, Watch streams.
const (
	methodCheck = "/grpc.health.v1.Health/Check"
	methodList  = "/grpc.health.v1.Health/List"
	methodWatch = "/grpc.health.v1.Health/Watch"
)

// public is the guard's Config.PublicURL: DPoP proofs name it followed by
// the full method.
const public = "https://grpc.example.com"

// healthServer is the service behind the guard. It records every call
// that reaches it and the Principal in its context.
type healthServer struct {
	healthpb.UnimplementedHealthServer

	mu    sync.Mutex // guards calls and seen
	calls map[string]int
	seen  *middleware.Principal // the last call's; nil when it had none
}

func (h *healthServer) record(ctx context.Context, method string) {
	p, _ := middleware.PrincipalFrom(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.calls == nil {
		h.calls = map[string]int{}
	}
	h.calls[method]++
	h.seen = p
}

// reached returns how often method's handler ran, and the last Principal.
func (h *healthServer) reached(method string) (int, *middleware.Principal) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[method], h.seen
}

func (h *healthServer) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.record(ctx, methodCheck)
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (h *healthServer) List(ctx context.Context, _ *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	h.record(ctx, methodList)
	return &healthpb.HealthListResponse{}, nil
}

func (h *healthServer) Watch(_ *healthpb.HealthCheckRequest, s grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	h.record(s.Context(), methodWatch)
	return s.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING})
}

// fixture is a guarded gRPC server on 127.0.0.1, a client connected to it,
// and the issuer whose tokens the guard takes.
type fixture struct {
	is     *devissuer.Issuer
	guard  *middleware.Guard
	health *healthServer
	client healthpb.HealthClient
}

// newGuard makes a guard for is's tokens with PublicURL public; edit
// changes its Config first.
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

// serve runs a gRPC server with the health service behind guard's
// interceptors and returns a client connected to it over loopback.
func serve(t testing.TB, guard *middleware.Guard, rules grpcguard.Rules, h *healthServer) healthpb.HealthClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(grpcguard.UnaryServerInterceptor(guard, rules)),
		grpc.StreamInterceptor(grpcguard.StreamServerInterceptor(guard, rules)),
	)
	healthpb.RegisterHealthServer(srv, h)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

func start(t testing.TB, rules grpcguard.Rules, edit func(*middleware.Config)) *fixture {
	t.Helper()
	is := testkit.StartIssuer(t)
	f := &fixture{is: is, guard: newGuard(t, is, edit), health: &healthServer{}}
	f.client = serve(t, f.guard, rules, f.health)
	return f
}

// defaultRules protects the health service's Check and Watch; List is
// not listed.
var defaultRules = grpcguard.Rules{
	methodCheck: {"health:read"},
	methodWatch: {"health:watch"},
}

// mint returns a token for scope from is, with extra claims.
func mint(t testing.TB, is *devissuer.Issuer, scope string, extra map[string]any) string {
	t.Helper()
	tok, err := is.Mint(scope, time.Hour, extra)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// answer is what a client saw: the status and the response header
// metadata.
type answer struct {
	code codes.Code
	msg  string
	hdr  metadata.MD
}

func ctxWith(t testing.TB, md []string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
	if len(md) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs(md...))
	}
	return ctx, cancel
}

// check calls Health/Check with metadata md (key, value pairs).
func (f *fixture) check(t testing.TB, md ...string) answer {
	t.Helper()
	ctx, cancel := ctxWith(t, md)
	defer cancel()
	var hdr metadata.MD
	_, err := f.client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&hdr))
	st := status.Convert(err)
	return answer{code: st.Code(), msg: st.Message(), hdr: hdr}
}

// list calls Health/List with metadata md.
func (f *fixture) list(t testing.TB, md ...string) answer {
	t.Helper()
	ctx, cancel := ctxWith(t, md)
	defer cancel()
	var hdr metadata.MD
	_, err := f.client.List(ctx, &healthpb.HealthListRequest{}, grpc.Header(&hdr))
	st := status.Convert(err)
	return answer{code: st.Code(), msg: st.Message(), hdr: hdr}
}

// watch opens Health/Watch with metadata md and reads its first message.
func (f *fixture) watch(t testing.TB, md ...string) answer {
	t.Helper()
	ctx, cancel := ctxWith(t, md)
	defer cancel()
	s, err := f.client.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		var m *healthpb.HealthCheckResponse
		if m, err = s.Recv(); err == nil && m.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("Watch sent %v", m.Status)
		}
	}
	hdr, herr := s.Header()
	if herr != nil && err == nil {
		err = herr
	}
	st := status.Convert(err)
	return answer{code: st.Code(), msg: st.Message(), hdr: hdr}
}

// wantChallenge requires one www-authenticate value of a's header
// metadata to start with scheme and contain every one of parts.
func wantChallenge(t *testing.T, a answer, scheme string, parts ...string) {
	t.Helper()
	for _, c := range a.hdr.Get("www-authenticate") {
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
	t.Errorf("www-authenticate = %q; want a %s challenge with %q", a.hdr.Get("www-authenticate"), scheme, parts)
}

// TestUnary runs each kind of call through the unary interceptor to the
// health service's Check, over a real connection: the status, the
// message, the challenge in the header metadata, and whether the handler
// ran with the token's Principal. Each case fails if the check it names
// is removed.
func TestUnary(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := start(t, defaultRules, func(c *middleware.Config) { c.Registerer = reg })
	alice := dpoptest.NewClient(t)
	good := mint(t, f.is, "health:read", nil)
	other := mint(t, f.is, "orders:read", nil)
	expired := mint(t, f.is, "health:read", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})
	foreign := mint(t, f.is, "health:read", map[string]any{"aud": "https://elsewhere.example.com"})
	bound := mint(t, f.is, "health:read", map[string]any{"cnf": map[string]any{"jkt": alice.JKT}})
	boundOther := mint(t, f.is, "orders:read", map[string]any{"cnf": map[string]any{"jkt": alice.JKT}})
	mallory := dpoptest.NewClient(t)

	tests := []struct {
		name     string
		md       func(t *testing.T) []string
		wantCode codes.Code
		wantMsg  string
		scheme   string   // the challenge's scheme; "" for none expected
		parts    []string // in that challenge
		nonce    bool     // a dpop-nonce header expected
		reason   string   // the tokenguard_requests_total reason the call adds one to; "" unchecked
	}{
		{
			name:     "bearer allowed",
			md:       func(*testing.T) []string { return []string{"authorization", "Bearer " + good} },
			wantCode: codes.OK,
		},
		{
			name:     "scheme is case-insensitive",
			md:       func(*testing.T) []string { return []string{"authorization", "bearer " + good} },
			wantCode: codes.OK,
		},
		{
			name:     "no token",
			md:       func(*testing.T) []string { return nil },
			wantCode: codes.Unauthenticated, wantMsg: "missing_token",
			scheme: "Bearer", parts: []string{`realm=`},
		},
		{
			name:     "scope missing",
			md:       func(*testing.T) []string { return []string{"authorization", "Bearer " + other} },
			wantCode: codes.PermissionDenied, wantMsg: "insufficient_scope",
			scheme: "Bearer", parts: []string{`error="insufficient_scope"`, `scope="health:read"`},
		},
		{
			name:     "expired",
			md:       func(*testing.T) []string { return []string{"authorization", "Bearer " + expired} },
			wantCode: codes.Unauthenticated, wantMsg: "invalid_token: token expired",
			scheme: "Bearer", parts: []string{`error="invalid_token"`},
		},
		{
			name:     "another audience",
			md:       func(*testing.T) []string { return []string{"authorization", "Bearer " + foreign} },
			wantCode: codes.Unauthenticated, wantMsg: "invalid_token",
			scheme: "Bearer", parts: []string{`error="invalid_token"`},
		},
		{
			name:     "bad signature",
			md:       func(*testing.T) []string { return []string{"authorization", "Bearer " + good[:len(good)-4] + "AAAA"} },
			wantCode: codes.Unauthenticated, wantMsg: "invalid_token: invalid signature",
			scheme: "Bearer", parts: []string{`error="invalid_token"`},
		},
		{
			name:     "unsupported scheme",
			md:       func(*testing.T) []string { return []string{"authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"} },
			wantCode: codes.Unauthenticated,
			scheme:   "Bearer",
		},
		{
			// Decided by the guard as Require decides two Authorization
			// headers: the same status, challenge and metric.
			name: "two authorization values",
			md: func(*testing.T) []string {
				return []string{"authorization", "Bearer " + good, "authorization", "Bearer " + good}
			},
			wantCode: codes.InvalidArgument, wantMsg: "invalid_request: more than one Authorization header",
			scheme: "Bearer", parts: []string{`error="invalid_request"`}, reason: "malformed_request",
		},
		{
			name: "two DPoP authorization values",
			md: func(t *testing.T) []string {
				return []string{"authorization", "DPoP " + bound, "authorization", "DPoP " + bound, "dpop", alice.Proof(t, "POST", public+methodCheck, bound, "")}
			},
			wantCode: codes.InvalidArgument, wantMsg: "invalid_request: more than one Authorization header",
			// Which scheme is unknown: the error is in the Bearer
			// challenge, as Require puts it.
			scheme: "Bearer", parts: []string{`error="invalid_request"`}, reason: "malformed_request",
		},
		{
			name:     "malformed authorization",
			md:       func(*testing.T) []string { return []string{"authorization", "Bearer"} },
			wantCode: codes.InvalidArgument, wantMsg: "invalid_request: malformed Authorization header",
			scheme: "Bearer", parts: []string{`error="invalid_request"`}, reason: "malformed_request",
		},
		{
			name:     "DPoP-bound token as Bearer",
			md:       func(*testing.T) []string { return []string{"authorization", "Bearer " + bound} },
			wantCode: codes.Unauthenticated, wantMsg: "invalid_token",
			scheme: "Bearer", parts: []string{`error="invalid_token"`},
		},
		{
			name: "DPoP proof for POST and public URL + full method",
			md: func(t *testing.T) []string {
				return []string{"authorization", "DPoP " + bound, "dpop", alice.Proof(t, "POST", public+methodCheck, bound, "")}
			},
			wantCode: codes.OK,
		},
		{
			name: "DPoP proof for another method",
			md: func(t *testing.T) []string {
				return []string{"authorization", "DPoP " + bound, "dpop", alice.Proof(t, "POST", public+methodList, bound, "")}
			},
			wantCode: codes.Unauthenticated, wantMsg: "invalid_dpop_proof",
			scheme: "DPoP", parts: []string{`error="invalid_dpop_proof"`},
		},
		{
			name: "DPoP proof for another host",
			md: func(t *testing.T) []string {
				return []string{"authorization", "DPoP " + bound, "dpop", alice.Proof(t, "POST", "https://other.example.com"+methodCheck, bound, "")}
			},
			wantCode: codes.Unauthenticated, wantMsg: "invalid_dpop_proof",
			scheme: "DPoP", parts: []string{`error="invalid_dpop_proof"`},
		},
		{
			name: "DPoP proof for GET",
			md: func(t *testing.T) []string {
				return []string{"authorization", "DPoP " + bound, "dpop", alice.Proof(t, "GET", public+methodCheck, bound, "")}
			},
			wantCode: codes.Unauthenticated, wantMsg: "invalid_dpop_proof",
			scheme: "DPoP", parts: []string{`error="invalid_dpop_proof"`},
		},
		{
			name: "DPoP proof by another key",
			md: func(t *testing.T) []string {
				return []string{"authorization", "DPoP " + bound, "dpop", mallory.Proof(t, "POST", public+methodCheck, bound, "")}
			},
			wantCode: codes.Unauthenticated, wantMsg: "invalid_token",
			scheme: "DPoP", parts: []string{`error="invalid_token"`},
		},
		{
			name:     "DPoP without a proof",
			md:       func(*testing.T) []string { return []string{"authorization", "DPoP " + bound} },
			wantCode: codes.Unauthenticated, wantMsg: "invalid_dpop_proof",
			scheme: "DPoP", parts: []string{`error="invalid_dpop_proof"`},
		},
		{
			// As Require decides two DPoP headers on a DPoP request.
			name: "two dpop values",
			md: func(t *testing.T) []string {
				p := alice.Proof(t, "POST", public+methodCheck, bound, "")
				return []string{"authorization", "DPoP " + bound, "dpop", p, "dpop", p}
			},
			wantCode: codes.Unauthenticated, wantMsg: "invalid_dpop_proof: more than one DPoP header",
			scheme: "DPoP", parts: []string{`error="invalid_dpop_proof"`}, reason: "invalid_dpop_proof",
		},
		{
			// As over HTTP, a Bearer request's DPoP values are not read.
			name: "two dpop values beside a Bearer token",
			md: func(t *testing.T) []string {
				p := alice.Proof(t, "POST", public+methodCheck, bound, "")
				return []string{"authorization", "Bearer " + good, "dpop", p, "dpop", p}
			},
			wantCode: codes.OK,
		},
		{
			name: "DPoP, valid proof, scope missing",
			md: func(t *testing.T) []string {
				return []string{"authorization", "DPoP " + boundOther, "dpop", alice.Proof(t, "POST", public+methodCheck, boundOther, "")}
			},
			wantCode: codes.PermissionDenied, wantMsg: "insufficient_scope",
			scheme: "DPoP", parts: []string{`error="insufficient_scope"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			md := tc.md(t)
			before, _ := f.health.reached(methodCheck)
			counted := requests(t, reg)[tc.reason]
			a := f.check(t, md...)
			after, p := f.health.reached(methodCheck)
			if a.code != tc.wantCode {
				t.Fatalf("code = %v (%q), want %v", a.code, a.msg, tc.wantCode)
			}
			if n := requests(t, reg)[tc.reason] - counted; tc.reason != "" && n != 1 {
				t.Errorf("tokenguard_requests_total{reason=%q} grew by %v, want 1", tc.reason, n)
			}
			if tc.wantCode == codes.OK {
				if after != before+1 {
					t.Fatalf("the handler ran %d times, want once", after-before)
				}
				if p == nil || p.Subject != "demo-user" || !p.HasScope("health:read") {
					t.Fatalf("the handler's Principal = %+v, want demo-user with health:read", p)
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
			if got := a.hdr.Get("dpop-nonce"); (len(got) > 0) != tc.nonce {
				t.Errorf("dpop-nonce = %q", got)
			}
			// Nothing from the request's credentials reaches the client.
			for i := 1; i < len(md); i += 2 {
				secret := md[i][strings.IndexByte(md[i], ' ')+1:]
				if len(secret) < 20 {
					continue // "Bearer" alone: a word the challenge has too
				}
				if strings.Contains(a.msg, secret) || strings.Contains(strings.Join(a.hdr.Get("www-authenticate"), " "), secret) {
					t.Errorf("the answer carries the request's %s", md[i-1])
				}
			}
		})
	}
}

// TestUnlistedMethod: a method Rules does not list is refused before its
// handler runs, whatever the token.
func TestUnlistedMethod(t *testing.T) {
	f := start(t, defaultRules, nil)
	tok := mint(t, f.is, "health:read health:watch", nil)
	for _, md := range [][]string{nil, {"authorization", "Bearer " + tok}} {
		a := f.list(t, md...)
		if a.code != codes.PermissionDenied {
			t.Errorf("List with %d metadata: code = %v (%q), want PermissionDenied", len(md), a.code, a.msg)
		}
	}
	if n, _ := f.health.reached(methodList); n != 0 {
		t.Errorf("List's handler ran %d times", n)
	}
}

// TestAnyMethod: "*" applies its scopes to every method not listed; a
// listed method keeps its own.
func TestAnyMethod(t *testing.T) {
	f := start(t, grpcguard.Rules{"*": {"health:read"}, methodCheck: {"health:admin"}}, nil)
	read := mint(t, f.is, "health:read", nil)
	admin := mint(t, f.is, "health:admin", nil)
	if a := f.list(t, "authorization", "Bearer "+read); a.code != codes.OK {
		t.Errorf("List with health:read: %v (%q), want OK", a.code, a.msg)
	}
	if a := f.list(t, "authorization", "Bearer "+admin); a.code != codes.PermissionDenied {
		t.Errorf("List with health:admin: %v, want PermissionDenied", a.code)
	}
	if a := f.list(t); a.code != codes.Unauthenticated {
		t.Errorf("List without a token: %v, want Unauthenticated", a.code)
	}
	if a := f.check(t, "authorization", "Bearer "+read); a.code != codes.PermissionDenied {
		t.Errorf("Check with health:read: %v, want PermissionDenied (its own rule)", a.code)
	}
	if a := f.check(t, "authorization", "Bearer "+admin); a.code != codes.OK {
		t.Errorf("Check with health:admin: %v (%q), want OK", a.code, a.msg)
	}
	if a := f.watch(t, "authorization", "Bearer "+read); a.code != codes.OK {
		t.Errorf("Watch with health:read: %v (%q), want OK", a.code, a.msg)
	}

	// DPoP under "*": the proof names the method called.
	alice := dpoptest.NewClient(t)
	bound := mint(t, f.is, "health:read", map[string]any{"cnf": map[string]any{"jkt": alice.JKT}})
	if a := f.list(t, "authorization", "DPoP "+bound, "dpop", alice.Proof(t, "POST", public+methodList, bound, "")); a.code != codes.OK {
		t.Errorf("List with DPoP: %v (%q), want OK", a.code, a.msg)
	}
	if a := f.list(t, "authorization", "DPoP "+bound, "dpop", alice.Proof(t, "POST", public+methodCheck, bound, "")); a.code != codes.Unauthenticated {
		t.Errorf("List with a proof for Check: %v, want Unauthenticated", a.code)
	}

	// "*" with no scopes: any valid token.
	g := start(t, grpcguard.Rules{"*": nil}, nil)
	if a := g.list(t, "authorization", "Bearer "+mint(t, g.is, "", nil)); a.code != codes.OK {
		t.Errorf(`{"*": nil}: List with a token: %v (%q), want OK`, a.code, a.msg)
	}
	if a := g.list(t); a.code != codes.Unauthenticated {
		t.Errorf(`{"*": nil}: List without a token: %v, want Unauthenticated`, a.code)
	}
}

// TestStream: the stream interceptor decides when the stream opens, and
// the handler's stream context carries the Principal.
func TestStream(t *testing.T) {
	f := start(t, defaultRules, nil)
	alice := dpoptest.NewClient(t)
	watch := mint(t, f.is, "health:watch", nil)
	read := mint(t, f.is, "health:read", nil)
	bound := mint(t, f.is, "health:watch", map[string]any{"cnf": map[string]any{"jkt": alice.JKT}})

	a := f.watch(t, "authorization", "Bearer "+watch)
	n, p := f.health.reached(methodWatch)
	if a.code != codes.OK || n != 1 || p == nil || !p.HasScope("health:watch") {
		t.Fatalf("allowed Watch: %v (%q), handler ran %d times with %+v", a.code, a.msg, n, p)
	}

	a = f.watch(t)
	if a.code != codes.Unauthenticated {
		t.Errorf("Watch without a token: %v, want Unauthenticated", a.code)
	}
	wantChallenge(t, a, "Bearer", "realm=")

	a = f.watch(t, "authorization", "Bearer "+watch, "authorization", "Bearer "+watch)
	if a.code != codes.InvalidArgument {
		t.Errorf("Watch with two authorization values: %v (%q), want InvalidArgument", a.code, a.msg)
	}
	wantChallenge(t, a, "Bearer", `error="invalid_request"`)

	a = f.watch(t, "authorization", "Bearer "+read)
	if a.code != codes.PermissionDenied {
		t.Errorf("Watch with health:read: %v, want PermissionDenied", a.code)
	}
	wantChallenge(t, a, "Bearer", `error="insufficient_scope"`, `scope="health:watch"`)

	a = f.watch(t, "authorization", "DPoP "+bound, "dpop", alice.Proof(t, "POST", public+methodWatch, bound, ""))
	if a.code != codes.OK {
		t.Errorf("Watch with DPoP: %v (%q), want OK", a.code, a.msg)
	}
	a = f.watch(t, "authorization", "DPoP "+bound, "dpop", alice.Proof(t, "POST", public+methodCheck, bound, ""))
	if a.code != codes.Unauthenticated {
		t.Errorf("Watch with a proof for Check: %v, want Unauthenticated", a.code)
	}
	if n, _ := f.health.reached(methodWatch); n != 2 {
		t.Errorf("Watch's handler ran %d times, want 2", n)
	}

	// A streaming method Rules does not list.
	g := start(t, grpcguard.Rules{methodCheck: nil}, nil)
	if a := g.watch(t, "authorization", "Bearer "+mint(t, g.is, "health:watch", nil)); a.code != codes.PermissionDenied {
		t.Errorf("unlisted Watch: %v, want PermissionDenied", a.code)
	}
	if n, _ := g.health.reached(methodWatch); n != 0 {
		t.Errorf("unlisted Watch's handler ran %d times", n)
	}
}

// TestDPoPReplay: a proof is taken once.
func TestDPoPReplay(t *testing.T) {
	f := start(t, defaultRules, nil)
	alice := dpoptest.NewClient(t)
	bound := mint(t, f.is, "health:read", map[string]any{"cnf": map[string]any{"jkt": alice.JKT}})
	proof := alice.Proof(t, "POST", public+methodCheck, bound, "")
	if a := f.check(t, "authorization", "DPoP "+bound, "dpop", proof); a.code != codes.OK {
		t.Fatalf("first use: %v (%q)", a.code, a.msg)
	}
	a := f.check(t, "authorization", "DPoP "+bound, "dpop", proof)
	if a.code != codes.Unauthenticated {
		t.Fatalf("replayed proof: %v (%q), want Unauthenticated", a.code, a.msg)
	}
	wantChallenge(t, a, "DPoP", `error="invalid_dpop_proof"`)
	if n, _ := f.health.reached(methodCheck); n != 1 {
		t.Errorf("the handler ran %d times, want once", n)
	}
}

// TestDPoPKeyQuota: a DPoP key over its replay quota gets
// ResourceExhausted (HTTP's 429), without a challenge.
func TestDPoPKeyQuota(t *testing.T) {
	f := start(t, defaultRules, func(c *middleware.Config) { c.DPoP.ReplayKeyQuota = 1 })
	alice := dpoptest.NewClient(t)
	bound := mint(t, f.is, "health:read", map[string]any{"cnf": map[string]any{"jkt": alice.JKT}})
	if a := f.check(t, "authorization", "DPoP "+bound, "dpop", alice.Proof(t, "POST", public+methodCheck, bound, "")); a.code != codes.OK {
		t.Fatalf("first proof: %v (%q)", a.code, a.msg)
	}
	a := f.check(t, "authorization", "DPoP "+bound, "dpop", alice.Proof(t, "POST", public+methodCheck, bound, ""))
	if a.code != codes.ResourceExhausted {
		t.Fatalf("second proof: %v (%q), want ResourceExhausted", a.code, a.msg)
	}
	if c := a.hdr.Get("www-authenticate"); len(c) != 0 {
		t.Errorf("www-authenticate = %q, want none", c)
	}
}

// TestDPoPNonce: a guard that wants server nonces answers a proof without
// one with use_dpop_nonce and a nonce in the dpop-nonce header metadata;
// a proof carrying it is taken.
func TestDPoPNonce(t *testing.T) {
	f := start(t, defaultRules, func(c *middleware.Config) { c.DPoP.Nonce = true })
	alice := dpoptest.NewClient(t)
	bound := mint(t, f.is, "health:read", map[string]any{"cnf": map[string]any{"jkt": alice.JKT}})
	a := f.check(t, "authorization", "DPoP "+bound, "dpop", alice.Proof(t, "POST", public+methodCheck, bound, ""))
	if a.code != codes.Unauthenticated || a.msg != "use_dpop_nonce: DPoP nonce required" {
		t.Fatalf("no nonce: %v (%q), want Unauthenticated use_dpop_nonce", a.code, a.msg)
	}
	wantChallenge(t, a, "DPoP", `error="use_dpop_nonce"`)
	nonce := a.hdr.Get("dpop-nonce")
	if len(nonce) != 1 || nonce[0] == "" {
		t.Fatalf("dpop-nonce = %q, want one nonce", nonce)
	}
	if a := f.check(t, "authorization", "DPoP "+bound, "dpop", alice.Proof(t, "POST", public+methodCheck, bound, nonce[0])); a.code != codes.OK {
		t.Fatalf("with the nonce: %v (%q), want OK", a.code, a.msg)
	}
}

// TestWithoutPublicURL: with no PublicURL there is no URL a proof can
// name, so DPoP calls are refused; Bearer calls are not affected.
func TestWithoutPublicURL(t *testing.T) {
	f := start(t, defaultRules, func(c *middleware.Config) { c.PublicURL = "" })
	alice := dpoptest.NewClient(t)
	bound := mint(t, f.is, "health:read", map[string]any{"cnf": map[string]any{"jkt": alice.JKT}})
	for _, htu := range []string{public + methodCheck, "http://127.0.0.1" + methodCheck} {
		if a := f.check(t, "authorization", "DPoP "+bound, "dpop", alice.Proof(t, "POST", htu, bound, "")); a.code != codes.Unauthenticated {
			t.Errorf("proof for %s: %v, want Unauthenticated", htu, a.code)
		}
	}
	if a := f.check(t, "authorization", "Bearer "+mint(t, f.is, "health:read", nil)); a.code != codes.OK {
		t.Errorf("Bearer: %v (%q), want OK", a.code, a.msg)
	}
}

// TestKeysUnavailable: when the issuer's keys never loaded the guard
// cannot decide: Unavailable, no challenge, and the handler does not run.
func TestKeysUnavailable(t *testing.T) {
	is := testkit.StartIssuer(t)
	is.FailJWKS(http.StatusInternalServerError)
	guard := newGuard(t, is, func(c *middleware.Config) { c.StartupWait = 50 * time.Millisecond })
	h := &healthServer{}
	f := &fixture{is: is, guard: guard, health: h, client: serve(t, guard, defaultRules, h)}
	tok := mint(t, is, "health:read health:watch", nil)
	for name, call := range map[string]func(testing.TB, ...string) answer{"Check": f.check, "Watch": f.watch} {
		a := call(t, "authorization", "Bearer "+tok)
		if a.code != codes.Unavailable || a.msg != "keys_unavailable: signing keys unavailable" {
			t.Errorf("%s: %v (%q), want Unavailable keys_unavailable", name, a.code, a.msg)
		}
		if len(a.hdr.Get("www-authenticate")) != 0 {
			t.Errorf("%s: www-authenticate = %q, want none", name, a.hdr.Get("www-authenticate"))
		}
	}
	if n, _ := h.reached(methodCheck); n != 0 {
		t.Errorf("the handler ran %d times", n)
	}
}

// TestMetrics: calls through the interceptors are counted in the guard's
// tokenguard_requests_total like Require's.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := start(t, defaultRules, func(c *middleware.Config) { c.Registerer = reg })
	f.check(t, "authorization", "Bearer "+mint(t, f.is, "health:read", nil))
	f.check(t)
	f.watch(t)
	want := map[string]float64{"ok": 1, "missing_token": 2}
	got := requests(t, reg)
	for reason, n := range want {
		if got[reason] != n {
			t.Errorf("tokenguard_requests_total{reason=%q} = %v, want %v (all: %v)", reason, got[reason], n, got)
		}
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

// TestScopesSupported: each rule's scopes join the guard's protected
// resource metadata.
func TestScopesSupported(t *testing.T) {
	f := start(t, grpcguard.Rules{methodCheck: {"health:read"}, "*": {"health:any"}}, nil)
	md, ok := f.guard.ResourceMetadata()
	if !ok {
		t.Fatal("no resource metadata")
	}
	for _, s := range []string{"health:read", "health:any"} {
		if !slices.Contains(md.ScopesSupported, s) {
			t.Errorf("scopes_supported = %q, want %q in it", md.ScopesSupported, s)
		}
	}
}

// TestBadRules: a rule the guard cannot enforce panics when the
// interceptor is made, naming the rule.
func TestBadRules(t *testing.T) {
	is := testkit.StartIssuer(t)
	guard := newGuard(t, is, nil)
	tests := []struct {
		name  string
		guard *middleware.Guard
		rules grpcguard.Rules
		want  string
	}{
		{"nil guard", nil, grpcguard.Rules{"*": nil}, "nil *middleware.Guard"},
		{"no rules", guard, nil, "Rules is empty"},
		{"empty rules", guard, grpcguard.Rules{}, "Rules is empty"},
		{"no leading slash", guard, grpcguard.Rules{"pkg.Svc/M": nil}, `"pkg.Svc/M"`},
		{"no method", guard, grpcguard.Rules{"/pkg.Svc/": nil}, `"/pkg.Svc/"`},
		{"no service", guard, grpcguard.Rules{"//M": nil}, `"//M"`},
		{"too many parts", guard, grpcguard.Rules{"/pkg.Svc/M/x": nil}, `"/pkg.Svc/M/x"`},
		{"a wildcard method", guard, grpcguard.Rules{"/pkg.Svc/*": nil}, `"/pkg.Svc/*"`},
		{"a space", guard, grpcguard.Rules{"/pkg.Svc/M ": nil}, `"/pkg.Svc/M "`},
		{"scope with a space", guard, grpcguard.Rules{methodCheck: {"a b"}}, methodCheck},
		{"empty scope", guard, grpcguard.Rules{"*": {""}}, `Rules["*"]`},
	}
	for _, tc := range tests {
		for kind, mk := range map[string]func(){
			"unary":  func() { grpcguard.UnaryServerInterceptor(tc.guard, tc.rules) },
			"stream": func() { grpcguard.StreamServerInterceptor(tc.guard, tc.rules) },
		} {
			t.Run(tc.name+"/"+kind, func(t *testing.T) {
				defer func() {
					r := recover()
					msg, _ := r.(string)
					if r == nil || !strings.HasPrefix(msg, "grpcguard: ") || !strings.Contains(msg, tc.want) {
						t.Errorf("panic = %v, want a grpcguard panic naming %s", r, tc.want)
					}
				}()
				mk()
			})
		}
	}
}
