package connectguard_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenguard/tokenguard/connectguard"
	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/middleware"
)

func ExampleNewInterceptor() {
	// A development authorization server on 127.0.0.1, standing in for a
	// real one.
	issuerSrv := httptest.NewUnstartedServer(nil)
	key, err := devissuer.GenerateKey("ES256", "key-1")
	if err != nil {
		panic(err)
	}
	iss := devissuer.New("http://"+issuerSrv.Listener.Addr().String(), "https://api.example.com", key)
	issuerSrv.Config.Handler = iss.Handler()
	issuerSrv.Start()
	defer issuerSrv.Close()

	guard, err := middleware.New(context.Background(), middleware.Config{
		Audience:  "https://api.example.com",
		Issuers:   []middleware.Issuer{{Issuer: iss.URL(), JWKSURI: iss.URL() + "/jwks"}},
		PublicURL: "https://api.example.com", // DPoP proofs name it + the procedure
	})
	if err != nil {
		panic(err)
	}
	defer guard.Close()

	// Who needs echo:read; every procedure not listed is refused.
	const who = "/test.v1.Echo/Who"
	interceptor := connectguard.NewInterceptor(guard, connectguard.Rules{who: {"echo:read"}})
	mux := http.NewServeMux()
	mux.Handle(who, connect.NewUnaryHandler(who,
		func(ctx context.Context, _ *connect.Request[whoRequest]) (*connect.Response[whoResponse], error) {
			p, _ := middleware.PrincipalFrom(ctx)
			return connect.NewResponse(&whoResponse{Subject: p.Subject, Scopes: p.Scopes}), nil
		},
		connect.WithCodec(jsonCodec{}), // generated handlers use protobuf instead
		connect.WithInterceptors(interceptor),
	))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	client := connect.NewClient[whoRequest, whoResponse](srv.Client(), srv.URL+who, connect.WithCodec(jsonCodec{}))
	call := func(scope string) {
		req := connect.NewRequest(&whoRequest{})
		if scope != "" {
			tok, _ := iss.Mint(scope, time.Hour, nil)
			req.Header().Set("Authorization", "Bearer "+tok)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := client.CallUnary(ctx, req)
		var ce *connect.Error
		if errors.As(err, &ce) {
			fmt.Printf("%v %q challenged=%v\n", ce.Code(), ce.Message(), len(ce.Meta().Values("WWW-Authenticate")) > 0)
			return
		}
		fmt.Println("ok:", resp.Msg.Subject, resp.Msg.Scopes)
	}

	call("")
	call("orders:read")
	call("echo:read")
	// Output:
	// unauthenticated "missing_token" challenged=true
	// permission_denied "insufficient_scope: token lacks a required scope" challenged=true
	// ok: demo-user [echo:read]
}
