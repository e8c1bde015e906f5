package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tokenguard/tokenguard/examples/go/internal/apitest"
	"github.com/tokenguard/tokenguard/middleware"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

// TestAPI runs the API on 127.0.0.1 behind a guard that trusts a test
// issuer, and calls it as a client would: denials come in the API's own
// error format, with the guard's challenge.
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
		{name: "write", method: "POST", path: "/orders", token: writer, body: `{"item":"tea"}`,
			wantStatus: 201, wantBody: `{"created_by":"bob","item":"tea"}`},
		{name: "missing token", method: "GET", path: "/orders",
			wantStatus: 401, wantBody: `{"error":{"code":"missing_token","message":"Unauthorized"}}`,
			wantChallenge: realm},
		{name: "expired token", method: "GET", path: "/orders", token: expired,
			wantStatus: 401, wantBody: `{"error":{"code":"invalid_token","message":"token expired"}}`,
			wantChallenge: realm + `, error="invalid_token", error_description="token expired"`},
		{name: "wrong scope", method: "POST", path: "/orders", token: reader, body: `{"item":"tea"}`,
			wantStatus: 403, wantBody: `{"error":{"code":"insufficient_scope","message":"token lacks a required scope"}}`,
			wantChallenge: realm + `, error="insufficient_scope", error_description="token lacks a required scope", scope="orders:write"`},
		// A handler's own error comes in the same shape as a denial.
		{name: "bad body", method: "POST", path: "/orders", token: writer, body: `{"item":""}`,
			wantStatus: 400, wantBody: `{"error":{"code":"invalid_body","message":"body must be JSON with an \"item\""}}`},
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
			if got := resp.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
				t.Errorf("Content-Type = %q, want gin's JSON", got)
			}
			if tt.wantStatus >= 400 && tt.wantChallenge != "" && resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q, want the guard's no-store", resp.Header.Get("Cache-Control"))
			}
		})
	}
}

// TestListOrders tests the handler alone: ContextWithPrincipal stands in
// for the guard, so no issuer or token is needed.
func TestListOrders(t *testing.T) {
	rec := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(rec)
	req := httptest.NewRequest("GET", "/orders", nil)
	c.Request = req.WithContext(middleware.ContextWithPrincipal(req.Context(), &middleware.Principal{
		Subject: "carol",
		Scopes:  []string{"orders:read"},
	}))
	listOrders(c)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"subject":"carol"`) {
		t.Errorf("got %d %s, want 200 with carol's orders", rec.Code, rec.Body)
	}

	// Mounted without the guard by mistake, it answers nothing and
	// records the mistake for renderErrors.
	rec = httptest.NewRecorder()
	c, _ = gin.CreateTestContext(rec)
	c.Request = httptest.NewRequest("GET", "/orders", nil)
	listOrders(c)
	if c.Errors.Last() == nil || c.Writer.Written() {
		t.Errorf("without a Principal: errors %v, written %v; want an error and no answer", c.Errors, c.Writer.Written())
	}
}

// TestNewGuard checks that the program names a missing variable.
func TestNewGuard(t *testing.T) {
	_, err := newGuard(t.Context(), func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "ISSUER") {
		t.Errorf("newGuard without ISSUER: %v", err)
	}
}
