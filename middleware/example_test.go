package middleware_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/middleware"
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

func get(h http.Handler, token string) (int, string) {
	req := httptest.NewRequest("GET", "http://api.example.com/orders/", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Body)
	return rec.Code, strings.TrimSpace(string(body))
}

func ExampleNew() {
	iss, srv := startIssuer()
	defer srv.Close()

	guard, err := middleware.New(context.Background(), middleware.Config{
		Audience: "https://api.example.com",
		Issuers: []middleware.Issuer{{
			Issuer:  iss.URL(),
			JWKSURI: srv.URL + "/jwks",
		}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer guard.Close()
	fmt.Println("ready:", guard.Ready())
	// Output: ready: true
}

func ExampleGuard_Require() {
	iss, srv := startIssuer()
	defer srv.Close()
	guard, err := middleware.New(context.Background(), middleware.Config{
		Audience: "https://api.example.com",
		Issuers:  []middleware.Issuer{{Issuer: iss.URL(), JWKSURI: srv.URL + "/jwks"}},
	})
	if err != nil {
		panic(err)
	}
	defer guard.Close()

	orders := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "the orders")
	})
	mux := http.NewServeMux()
	mux.Handle("GET /orders/", guard.Require("orders:read")(orders)) // the one line

	reader, _ := iss.Mint("orders:read", time.Hour, nil)
	writer, _ := iss.Mint("orders:write", time.Hour, nil)
	for _, tok := range []string{reader, writer, ""} {
		fmt.Println(get(mux, tok))
	}
	// Output:
	// 200 the orders
	// 403 {"error":"insufficient_scope","error_description":"token lacks a required scope"}
	// 401 {"error":"missing_token"}
}

func ExamplePrincipalFrom() {
	iss, srv := startIssuer()
	defer srv.Close()
	guard, err := middleware.New(context.Background(), middleware.Config{
		Audience: "https://api.example.com",
		Issuers:  []middleware.Issuer{{Issuer: iss.URL(), JWKSURI: srv.URL + "/jwks"}},
	})
	if err != nil {
		panic(err)
	}
	defer guard.Close()

	whoami := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := middleware.PrincipalFrom(r.Context())
		if !ok {
			http.Error(w, "unreachable behind the guard", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "sub=%s client=%s scopes=%v", p.Subject, p.ClientID, p.Scopes)
	})
	tok, _ := iss.Mint("profile orders:read", time.Hour, map[string]any{"sub": "alice", "client_id": "mobile-app"})
	fmt.Println(get(guard.Require()(whoami), tok))
	// Output: 200 sub=alice client=mobile-app scopes=[profile orders:read]
}

func ExampleGuard_Hygiene() {
	iss, srv := startIssuer()
	defer srv.Close()
	guard, err := middleware.New(context.Background(), middleware.Config{
		Audience: "https://api.example.com",
		Issuers:  []middleware.Issuer{{Issuer: iss.URL(), JWKSURI: srv.URL + "/jwks"}},
	})
	if err != nil {
		panic(err)
	}
	defer guard.Close()

	mux := http.NewServeMux()
	mux.Handle("GET /orders/", guard.Require("orders:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "the orders")
	})))
	api := httptest.NewServer(guard.Hygiene(middleware.Hygiene{})(mux)) // around the router
	defer api.Close()

	// A client that sends its path as written, as an attacker's does.
	tok, _ := iss.Mint("orders:read", time.Hour, nil)
	for _, target := range []string{"/orders/42", "/orders/..%2fadmin", "/orders/%2e%2e/admin"} {
		c, _ := net.Dial("tcp", api.Listener.Addr().String())
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", target, tok)
		resp, _ := http.ReadResponse(bufio.NewReader(c), nil)
		body, _ := io.ReadAll(resp.Body)
		c.Close()
		fmt.Println(target, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	// Output:
	// /orders/42 200 the orders
	// /orders/..%2fadmin 400 {"error":"invalid_path"}
	// /orders/%2e%2e/admin 400 {"error":"invalid_path"}
}
