package grpcguard_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/tokenguard/tokenguard/grpcguard"
	"github.com/tokenguard/tokenguard/internal/dpoptest"
	"github.com/tokenguard/tokenguard/internal/testkit"
	"github.com/tokenguard/tokenguard/middleware"
)

// benchHealth is a health service that does nothing but answer.
type benchHealth struct {
	healthpb.UnimplementedHealthServer
}

var serving = &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}

func (benchHealth) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	return serving, nil
}

// benchClient serves the health service over loopback TCP, with opts, and
// returns a client connected to it.
func benchClient(b *testing.B, opts ...grpc.ServerOption) healthpb.HealthClient {
	b.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, benchHealth{})
	go srv.Serve(lis)
	b.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// benchSetup is what the benchmarks share: a guard for a local issuer's
// tokens, a Bearer token and a DPoP-bound one with its key.
type benchSetup struct {
	guard *middleware.Guard
	rules grpcguard.Rules
	tok   string // ES256 Bearer token with health:read
	bound string // the same, bound to alice's key
	alice *dpoptest.Client
}

func newBenchSetup(b *testing.B) *benchSetup {
	is := testkit.StartIssuer(b)
	alice := dpoptest.NewClient(b)
	return &benchSetup{
		guard: newGuard(b, is, nil),
		rules: grpcguard.Rules{methodCheck: {"health:read"}},
		tok:   mint(b, is, "health:read", nil),
		bound: mint(b, is, "health:read", map[string]any{"cnf": map[string]any{"jkt": alice.JKT}}),
		alice: alice,
	}
}

func (s *benchSetup) guarded(b *testing.B) healthpb.HealthClient {
	return benchClient(b, grpc.UnaryInterceptor(grpcguard.UnaryServerInterceptor(s.guard, s.rules)))
}

// bearer is a call context with the Bearer token.
func (s *benchSetup) bearer() context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+s.tok)
}

// dpop returns n call contexts with the bound token, each with a fresh
// proof for Health/Check.
func (s *benchSetup) dpop(b *testing.B, n int) []context.Context {
	ctxs := make([]context.Context, n)
	for i := range ctxs {
		ctxs[i] = metadata.AppendToOutgoingContext(context.Background(),
			"authorization", "DPoP "+s.bound, "dpop", s.alice.Proof(b, "POST", public+methodCheck, s.bound, ""))
	}
	return ctxs
}

func benchCall(b *testing.B, c healthpb.HealthClient, ctx context.Context) {
	if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkUnaryCall is one unary gRPC call (Health/Check) from a client
// to a server over a loopback TCP connection: "bare" without an
// interceptor, "grpcguard" through UnaryServerInterceptor with the same
// ES256 Bearer token every time (verified once, then from the guard's
// token cache), "grpcguard-dpop" with a cached DPoP-bound token and a
// fresh proof per call (made before the timer starts). Each call to the
// bare server carries the same authorization metadata, so the difference
// is the interceptor's work. BenchmarkUnaryCallRatio compares them.
func BenchmarkUnaryCall(b *testing.B) {
	s := newBenchSetup(b)
	b.Run("bare", func(b *testing.B) {
		c, ctx := benchClient(b), s.bearer()
		benchCall(b, c, ctx) // connect before the timer
		b.ReportAllocs()
		for b.Loop() {
			benchCall(b, c, ctx)
		}
	})
	b.Run("grpcguard", func(b *testing.B) {
		c, ctx := s.guarded(b), s.bearer()
		benchCall(b, c, ctx)
		b.ReportAllocs()
		for b.Loop() {
			benchCall(b, c, ctx)
		}
	})
	b.Run("grpcguard-dpop", func(b *testing.B) {
		c := s.guarded(b)
		ctxs := s.dpop(b, b.N+1)
		benchCall(b, c, ctxs[b.N])
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			benchCall(b, c, ctxs[i])
		}
	})
}

// BenchmarkUnaryCallRatio makes the calls of BenchmarkUnaryCall in pairs,
// one to the bare server and one through the interceptor (alternating
// which goes first), and reports the mean time of each and their ratio:
// on a shared machine the speed drifts within seconds, and a pair sees
// the same drift. ns/op is the pair's.
func BenchmarkUnaryCallRatio(b *testing.B) {
	s := newBenchSetup(b)
	bare, guarded := benchClient(b), s.guarded(b)
	pairs := func(b *testing.B, bareCtx, guardedCtx func(i int) context.Context) {
		benchCall(b, bare, bareCtx(b.N))
		benchCall(b, guarded, guardedCtx(b.N))
		var tb, tg time.Duration
		b.ResetTimer()
		for i := range b.N {
			t0 := time.Now()
			if i%2 == 0 {
				benchCall(b, bare, bareCtx(i))
				t1 := time.Now()
				benchCall(b, guarded, guardedCtx(i))
				tb, tg = tb+t1.Sub(t0), tg+time.Since(t1)
			} else {
				benchCall(b, guarded, guardedCtx(i))
				t1 := time.Now()
				benchCall(b, bare, bareCtx(i))
				tg, tb = tg+t1.Sub(t0), tb+time.Since(t1)
			}
		}
		b.ReportMetric(float64(tb.Nanoseconds())/float64(b.N), "bare-ns/call")
		b.ReportMetric(float64(tg.Nanoseconds())/float64(b.N), "guarded-ns/call")
		b.ReportMetric(float64(tg)/float64(tb), "ratio")
	}
	b.Run("bearer", func(b *testing.B) {
		ctx := s.bearer()
		same := func(int) context.Context { return ctx }
		pairs(b, same, same)
	})
	b.Run("dpop", func(b *testing.B) {
		ctx := s.bearer()
		ctxs := s.dpop(b, b.N+1)
		pairs(b, func(int) context.Context { return ctx }, func(i int) context.Context { return ctxs[i] })
	})
}
