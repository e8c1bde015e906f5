package middleware_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
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

// Check makes Require's decision for a transport that is not net/http:
// here, messages from a queue that carry the sender's Authorization in
// their headers.
func ExampleGuard_Check() {
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

	type message struct {
		Headers map[string]string
		Body    string
	}
	// process is the application's handler: it finds the sender as an
	// HTTP handler behind Require would.
	process := func(ctx context.Context, m message) {
		p, _ := middleware.PrincipalFrom(ctx)
		fmt.Printf("accepted %q from %s\n", m.Body, p.Subject)
	}
	consume := func(ctx context.Context, m message) {
		p, err := guard.Check(ctx, middleware.Request{Authorization: m.Headers["authorization"]}, "orders:write")
		var d *middleware.Denial
		switch {
		case errors.As(err, &d):
			fmt.Printf("refused %q: %d %s; %s\n", m.Body, d.Status, d.Code, strings.Join(d.Challenges, ", "))
			return
		case err != nil:
			panic(err) // a programming error, such as a scope with a space
		}
		process(middleware.ContextWithPrincipal(ctx, p), m)
	}

	writer, _ := iss.Mint("orders:write", time.Hour, map[string]any{"sub": "alice"})
	reader, _ := iss.Mint("orders:read", time.Hour, nil)
	for _, m := range []message{
		{Headers: map[string]string{"authorization": "Bearer " + writer}, Body: "order 1"},
		{Headers: map[string]string{"authorization": "Bearer " + reader}, Body: "order 2"},
		{Body: "order 3"},
	} {
		consume(context.Background(), m)
	}
	// Output:
	// accepted "order 1" from alice
	// refused "order 2": 403 insufficient_scope; Bearer realm="https://api.example.com", error="insufficient_scope", error_description="token lacks a required scope", scope="orders:write"
	// refused "order 3": 401 missing_token; Bearer realm="https://api.example.com"
}

// OnDenial renders denials in the application's own error format, here
// RFC 9457 problem details; the guard has already set WWW-Authenticate.
func ExampleConfig_onDenial() {
	iss, srv := startIssuer()
	defer srv.Close()
	guard, err := middleware.New(context.Background(), middleware.Config{
		Audience: "https://api.example.com",
		Issuers:  []middleware.Issuer{{Issuer: iss.URL(), JWKSURI: srv.URL + "/jwks"}},
		OnDenial: func(w http.ResponseWriter, r *http.Request, d *middleware.Denial) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(d.Status)
			_ = json.NewEncoder(w).Encode(map[string]any{
				"type":   "https://api.example.com/problems/" + d.Code,
				"title":  http.StatusText(d.Status),
				"status": d.Status,
				"detail": d.Description,
			})
		},
	})
	if err != nil {
		panic(err)
	}
	defer guard.Close()

	h := guard.Require("orders:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "the orders")
	}))
	expired, _ := iss.Mint("orders:read", -time.Hour, nil)
	req := httptest.NewRequest("GET", "http://api.example.com/orders/", nil)
	req.Header.Set("Authorization", "Bearer "+expired)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	fmt.Println(rec.Header().Get("WWW-Authenticate"))
	fmt.Print(rec.Body.String())
	// Output:
	// 401 application/problem+json
	// Bearer realm="https://api.example.com", error="invalid_token", error_description="token expired"
	// {"detail":"token expired","status":401,"title":"Unauthorized","type":"https://api.example.com/problems/invalid_token"}
}

// ContextWithPrincipal puts a Principal where PrincipalFrom finds it, so a
// protected handler can be unit-tested without an issuer or a token.
func ExampleContextWithPrincipal() {
	orders := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := middleware.PrincipalFrom(r.Context())
		if !ok || !p.HasScope("orders:read") {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "the orders of %s", p.Subject)
	})

	req := httptest.NewRequest("GET", "/orders/", nil)
	req = req.WithContext(middleware.ContextWithPrincipal(req.Context(), &middleware.Principal{
		Subject: "alice",
		Scopes:  []string{"orders:read"},
	}))
	rec := httptest.NewRecorder()
	orders.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Body.String())
	// Output: 200 the orders of alice
}
