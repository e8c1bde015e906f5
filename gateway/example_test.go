package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard/gateway"
	"github.com/tokenguard/tokenguard/internal/devissuer"
)

// startIssuer runs a development authorization server on 127.0.0.1 that
// publishes its JWKS and mints tokens, standing in for a real one.
func startIssuer() (*devissuer.Issuer, *httptest.Server) {
	var iss *devissuer.Issuer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		iss.Handler().ServeHTTP(w, r)
	}))
	key, err := devissuer.GenerateKey("ES256", "key-1")
	if err != nil {
		panic(err)
	}
	iss = devissuer.New(srv.URL, "https://api.example.com", key)
	return iss, srv
}

// exampleConfig is a gateway in front of upstream, trusting iss, with one
// route.
func exampleConfig(iss *devissuer.Issuer, upstream string) *gateway.Config {
	cfg, err := gateway.ParseConfig("example.yaml", fmt.Appendf(nil, `
listen: 127.0.0.1:0
metrics_listen: 127.0.0.1:0
upstream: %s
audience: https://api.example.com
issuers:
  - issuer: %s
    jwks_uri: %s/jwks
routes:
  - pattern: "GET /orders/"
    scopes: [orders:read]
`, upstream, iss.URL(), iss.URL()), nil)
	if err != nil {
		panic(err) // a *gateway.ConfigError naming each bad line
	}
	return cfg
}

func get(url, token string) string {
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
}

// The gateway's handler in a server of your own.
func ExampleGateway_Handler() {
	iss, issSrv := startIssuer()
	defer issSrv.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "orders for %s", r.Header.Get(gateway.HeaderSubject))
	}))
	defer api.Close()

	gw, err := gateway.New(exampleConfig(iss, api.URL), gateway.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer gw.Shutdown(context.Background())
	srv := httptest.NewServer(gw.Handler())
	defer srv.Close()
	for deadline := time.Now().Add(10 * time.Second); !gw.Ready() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // the issuer's keys load in the background
	}

	tok, _ := iss.Mint("orders:read", time.Hour, nil)
	fmt.Println(get(srv.URL+"/orders/", tok))
	fmt.Println(get(srv.URL+"/orders/", ""))
	fmt.Println(get(srv.URL+"/admin/", tok))
	metrics := httptest.NewServer(gw.MetricsHandler()) // keep it off the proxy's address
	defer metrics.Close()
	fmt.Println(get(metrics.URL+"/readyz", ""))
	// Output:
	// 200 orders for demo-user
	// 401 {"error":"missing_token"}
	// 404 {"error":"not_found"}
	// 200 ready
}

// Run serves listen and metrics_listen until its context ends, then
// drains and stops.
func ExampleGateway_Run() {
	iss, issSrv := startIssuer()
	defer issSrv.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "the orders")
	}))
	defer api.Close()

	gw, err := gateway.New(exampleConfig(iss, api.URL), gateway.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	if err := gw.Start(ctx); err != nil { // optional: Run starts it otherwise
		panic(err)
	}
	done := make(chan error)
	go func() { done <- gw.Run(ctx) }()

	tok, _ := iss.Mint("orders:read", time.Hour, nil)
	fmt.Println(get("http://"+gw.Addr()+"/orders/", tok))
	fmt.Println(get("http://"+gw.MetricsAddr()+"/readyz", ""))
	stop() // SIGTERM, in the command
	fmt.Println("stopped:", <-done)
	// Output:
	// 200 the orders
	// 200 ready
	// stopped: <nil>
}
