// Nethttp is an orders API on net/http whose routes tokenguard protects
// with OAuth 2.0 access tokens: GET /orders needs the scope orders:read,
// POST /orders needs orders:write, GET /healthz is public. Denials are the
// guard's own: 401 or 403 with a WWW-Authenticate challenge and a small
// JSON body.
//
// It reads ISSUER (the authorization server's issuer identifier),
// AUDIENCE (this API's identifier, the tokens' "aud"), JWKS_URI (where
// the issuer's keys are; empty means discovered from ISSUER) and ADDR
// (where to listen; default 127.0.0.1:8080):
//
//	ISSUER=https://as.example.com AUDIENCE=https://orders.example.com go run ./nethttp
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tokenguard/tokenguard/middleware"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv); err != nil {
		slog.Error("orders API stopped", "err", err)
		os.Exit(1)
	}
}

// run serves the API until ctx is done.
func run(ctx context.Context, getenv func(string) string) error {
	guard, err := newGuard(ctx, getenv)
	if err != nil {
		return err
	}
	defer guard.Close()

	srv := &http.Server{
		Addr:              cmp.Or(getenv("ADDR"), "127.0.0.1:8080"),
		Handler:           routes(guard),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	slog.Info("orders API listening", "addr", srv.Addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newGuard configures the guard from the environment.
func newGuard(ctx context.Context, getenv func(string) string) (*middleware.Guard, error) {
	for _, name := range []string{"ISSUER", "AUDIENCE"} {
		if getenv(name) == "" {
			return nil, fmt.Errorf("%s is not set", name)
		}
	}
	return middleware.New(ctx, middleware.Config{
		Audience: getenv("AUDIENCE"),
		Issuers:  []middleware.Issuer{{Issuer: getenv("ISSUER"), JWKSURI: getenv("JWKS_URI")}},
		Logger:   slog.Default(),
	})
}

// routes is the API: each protected route names the scopes it needs.
func routes(guard *middleware.Guard) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", health)
	mux.Handle("GET /orders", guard.Require("orders:read")(http.HandlerFunc(listOrders)))
	mux.Handle("POST /orders", guard.Require("orders:write")(http.HandlerFunc(createOrder)))
	return mux
}

func health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type order struct {
	ID   string `json:"id,omitempty"`
	Item string `json:"item"`
}

// listOrders answers with the caller's orders. The guard has verified the
// token; the Principal says whose it is.
func listOrders(w http.ResponseWriter, r *http.Request) {
	p, ok := middleware.PrincipalFrom(r.Context())
	if !ok { // only when the route is mounted without the guard
		http.Error(w, "no principal", http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"subject": p.Subject,
		"orders":  []order{{ID: "1", Item: "coffee beans"}},
	})
}

// createOrder takes {"item": "..."} and answers 201 with who placed it.
func createOrder(w http.ResponseWriter, r *http.Request) {
	p, ok := middleware.PrincipalFrom(r.Context())
	if !ok {
		http.Error(w, "no principal", http.StatusInternalServerError)
		return
	}
	var in order
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil || in.Item == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": `body must be JSON with an "item"`})
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"item": in.Item, "created_by": p.Subject})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
