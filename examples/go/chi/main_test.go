package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/tokenguard/tokenguard/examples/go/internal/apitest"
	"github.com/tokenguard/tokenguard/middleware"
)

// TestAPI runs the API on 127.0.0.1 behind a guard that trusts a test
// issuer, and calls it as a client would.
func TestAPI(t *testing.T) {
	is := apitest.NewIssuer(t)
	guard, err := newGuard(t.Context(), is.Env())
	if err != nil {
		t.Fatal(err)
	}
	defer guard.Close()
	api := httptest.NewServer(routes(guard))
	defer api.Close()

	reader := is.Token(t, "alice", "orders:read", nil)
	writer := is.Token(t, "bob", "orders:read orders:write", nil)
	expired := is.Token(t, "alice", "orders:read", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})
	const realm = `Bearer realm="` + apitest.Audience + `"`

	tests := []struct {
		name                string
		method, path, token string
		body                string
		wantStatus          int
		wantBody            string
		wantChallenge       string // WWW-Authenticate; "" for none
	}{
		{name: "public health", method: "GET", path: "/healthz",
			wantStatus: 200, wantBody: `{"status":"ok"}`},
		{name: "read", method: "GET", path: "/orders", token: reader,
			wantStatus: 200, wantBody: `{"orders":[{"id":"1","item":"coffee beans"}],"subject":"alice"}`},
		{name: "read one", method: "GET", path: "/orders/1", token: reader,
			wantStatus: 200, wantBody: `{"order":{"id":"1","item":"coffee beans"},"subject":"alice"}`},
		{name: "write", method: "POST", path: "/orders", token: writer, body: `{"item":"tea"}`,
			wantStatus: 201, wantBody: `{"created_by":"bob","item":"tea"}`},
		{name: "missing token", method: "GET", path: "/orders",
			wantStatus: 401, wantBody: `{"error":"missing_token"}`, wantChallenge: realm},
		{name: "missing token, group route", method: "GET", path: "/orders/1",
			wantStatus: 401, wantBody: `{"error":"missing_token"}`, wantChallenge: realm},
		{name: "expired token", method: "GET", path: "/orders", token: expired,
			wantStatus: 401, wantBody: `{"error":"invalid_token","error_description":"token expired"}`,
			wantChallenge: realm + `, error="invalid_token", error_description="token expired"`},
		{name: "wrong scope", method: "POST", path: "/orders", token: reader, body: `{"item":"tea"}`,
			wantStatus: 403, wantBody: `{"error":"insufficient_scope","error_description":"token lacks a required scope"}`,
			wantChallenge: realm + `, error="insufficient_scope", error_description="token lacks a required scope", scope="orders:write"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := apitest.Call(t, tt.method, api.URL+tt.path, tt.token, tt.body)
			if resp.Status != tt.wantStatus || resp.Body != tt.wantBody {
				t.Errorf("got %d %s, want %d %s", resp.Status, resp.Body, tt.wantStatus, tt.wantBody)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.wantChallenge)
			}
		})
	}
}

// TestGetOrder tests the handler alone: ContextWithPrincipal stands in for
// the guard and chi's RouteContext for the router, so no issuer, token or
// server is needed.
func TestGetOrder(t *testing.T) {
	get := func(id string, p *middleware.Principal) *httptest.ResponseRecorder {
		rctx := chi.NewRouteContext()
		rctx.URLParams.Add("id", id)
		ctx := context.WithValue(context.Background(), chi.RouteCtxKey, rctx)
		if p != nil {
			ctx = middleware.ContextWithPrincipal(ctx, p)
		}
		rec := httptest.NewRecorder()
		getOrder(rec, httptest.NewRequestWithContext(ctx, "GET", "/orders/"+id, nil))
		return rec
	}
	carol := &middleware.Principal{Subject: "carol", Scopes: []string{"orders:read"}}

	if rec := get("1", carol); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"subject":"carol"`) {
		t.Errorf("order 1: got %d %s, want 200 for carol", rec.Code, rec.Body)
	}
	if rec := get("2", carol); rec.Code != http.StatusNotFound {
		t.Errorf("order 2: got %d %s, want 404", rec.Code, rec.Body)
	}
	// Mounted without the guard by mistake, it refuses to answer.
	if rec := get("1", nil); rec.Code != http.StatusInternalServerError {
		t.Errorf("without a Principal: got %d, want 500", rec.Code)
	}
}

// TestNewGuard checks that the program names a missing variable.
func TestNewGuard(t *testing.T) {
	_, err := newGuard(t.Context(), func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "ISSUER") {
		t.Errorf("newGuard without ISSUER: %v", err)
	}
}
