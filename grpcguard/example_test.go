package grpcguard_test

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenguard/tokenguard/grpcguard"
	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/middleware"
)

// exampleIssuer runs a development authorization server on 127.0.0.1,
// standing in for a real one, and a guard that takes its tokens.
func exampleIssuer() (*devissuer.Issuer, *middleware.Guard, func()) {
	srv := httptest.NewUnstartedServer(nil)
	key, err := devissuer.GenerateKey("ES256", "key-1")
	if err != nil {
		panic(err)
	}
	iss := devissuer.New("http://"+srv.Listener.Addr().String(), "https://api.example.com", key)
	srv.Config.Handler = iss.Handler()
	srv.Start()
	guard, err := middleware.New(context.Background(), middleware.Config{
		Audience:  "https://api.example.com",
		Issuers:   []middleware.Issuer{{Issuer: iss.URL(), JWKSURI: iss.URL() + "/jwks"}},
		PublicURL: "https://api.example.com", // DPoP proofs name it + the full method
	})
	if err != nil {
		panic(err)
	}
	return iss, guard, func() { guard.Close(); srv.Close() }
}

// whoAmI is a health service whose Check and Watch print who called.
type whoAmI struct {
	healthpb.UnimplementedHealthServer
}

func (whoAmI) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	p, _ := middleware.PrincipalFrom(ctx)
	fmt.Println("Check by", p.Subject, p.Scopes)
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (whoAmI) Watch(_ *healthpb.HealthCheckRequest, s grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	p, _ := middleware.PrincipalFrom(s.Context())
	fmt.Println("Watch by", p.Subject, p.Scopes)
	return s.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING})
}

func ExampleUnaryServerInterceptor() {
	iss, guard, stop := exampleIssuer()
	defer stop()

	// Check needs health:read; every method not listed is refused.
	rules := grpcguard.Rules{"/grpc.health.v1.Health/Check": {"health:read"}}
	srv := grpc.NewServer(grpc.UnaryInterceptor(grpcguard.UnaryServerInterceptor(guard, rules)))
	healthpb.RegisterHealthServer(srv, whoAmI{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(lis)
	defer srv.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	call := func(token string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		var hdr metadata.MD
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&hdr))
		st := status.Convert(err)
		fmt.Printf("%v %q challenged=%v\n", st.Code(), st.Message(), len(hdr.Get("www-authenticate")) > 0)
	}

	call("")
	tok, _ := iss.Mint("orders:read", time.Hour, nil)
	call(tok)
	tok, _ = iss.Mint("health:read", time.Hour, nil)
	call(tok)
	// Output:
	// Unauthenticated "missing_token" challenged=true
	// PermissionDenied "insufficient_scope: token lacks a required scope" challenged=true
	// Check by demo-user [health:read]
	// OK "" challenged=false
}

func ExampleStreamServerInterceptor() {
	iss, guard, stop := exampleIssuer()
	defer stop()

	// One Rules for both interceptors: Watch (streaming) needs
	// health:watch, any other method any valid token.
	rules := grpcguard.Rules{
		"/grpc.health.v1.Health/Watch": {"health:watch"},
		"*":                            nil,
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(grpcguard.UnaryServerInterceptor(guard, rules)),
		grpc.ChainStreamInterceptor(grpcguard.StreamServerInterceptor(guard, rules)),
	)
	healthpb.RegisterHealthServer(srv, whoAmI{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(lis)
	defer srv.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	watch := func(scope string) {
		tok, _ := iss.Mint(scope, time.Hour, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
		stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = stream.Recv()
		}
		fmt.Println(status.Code(err))
	}

	watch("health:read")
	watch("health:watch")
	// Output:
	// PermissionDenied
	// Watch by demo-user [health:watch]
	// OK
}
