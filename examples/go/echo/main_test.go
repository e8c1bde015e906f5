package main

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tokenguard/tokenguard/examples/go/internal/apitest"
	"github.com/tokenguard/tokenguard/middleware"
)

// TestAPI runs the API on 127.0.0.1 behind a guard that trusts a test
// issuer, and calls it as a client would: denials come in Echo's error
// format, with the guard's challenge, through Echo's HTTPErrorHandler.
func TestAPI(t *testing.T) {
	is := apitest.NewIssuer(t)
	guard, err := newGuard(t.Context(), is.Env())
	if err != nil {
		t.Fatal(err)
	}
	defer guard.Close()
	e := routes(guard)
	// Record what reaches the error handler, as a custom one would see it.
	var (
		mu      sync.Mutex
		handled error
	)
	render := e.HTTPErrorHandler
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		mu.Lock()
		handled = err
		mu.Unlock()
		render(err, c)
	}
	api := httptest.NewServer(e)
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
		wantChallenge       string            // WWW-Authenticate; "" for none
		wantReason          middleware.Reason // of the *Denial the error handler got; "" for none
	}{
		{name: "public health", method: "GET", path: "/healthz",
			wantStatus: 200, wantBody: `{"status":"ok"}`},
		{name: "read", method: "GET", path: "/orders", token: reader,
			wantStatus: 200, wantBody: `{"orders":[{"id":"1","item":"coffee beans"}],"subject":"alice"}`},
		{name: "write", method: "POST", path: "/orders", token: writer, body: `{"item":"tea"}`,
			wantStatus: 201, wantBody: `{"created_by":"bob","item":"tea"}`},
		{name: "missing token", method: "GET", path: "/orders",
			wantStatus: 401, wantBody: `{"message":"Unauthorized"}`,
			wantChallenge: realm, wantReason: middleware.ReasonMissingToken},
		{name: "expired token", method: "GET", path: "/orders", token: expired,
			wantStatus: 401, wantBody: `{"message":"token expired"}`,
			wantChallenge: realm + `, error="invalid_token", error_description="token expired"`,
			wantReason:    middleware.ReasonExpired},
		{name: "wrong scope", method: "POST", path: "/orders", token: reader, body: `{"item":"tea"}`,
			wantStatus: 403, wantBody: `{"message":"token lacks a required scope"}`,
			wantChallenge: realm + `, error="insufficient_scope", error_description="token lacks a required scope", scope="orders:write"`,
			wantReason:    middleware.ReasonInsufficientScope},
		// A handler's own error comes in the same shape as a denial.
		{name: "bad body", method: "POST", path: "/orders", token: writer, body: `{"item":""}`,
			wantStatus: 400, wantBody: `{"message":"body must be JSON with an \"item\""}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			handled = nil
			mu.Unlock()
			resp := apitest.Call(t, tt.method, api.URL+tt.path, tt.token, tt.body)
			if resp.Status != tt.wantStatus || resp.Body != tt.wantBody {
				t.Errorf("got %d %s, want %d %s", resp.Status, resp.Body, tt.wantStatus, tt.wantBody)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.wantChallenge)
			}
			if got := resp.Header.Get("Content-Type"); got != echo.MIMEApplicationJSON {
				t.Errorf("Content-Type = %q, want Echo's JSON", got)
			}
			if tt.wantReason == "" {
				return
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q, want the guard's no-store", resp.Header.Get("Cache-Control"))
			}
			mu.Lock()
			err := handled
			mu.Unlock()
			var he *echo.HTTPError
			d, ok := errors.AsType[*middleware.Denial](err)
			if !errors.As(err, &he) || !ok || d.Reason != tt.wantReason || he.Code != d.Status {
				t.Errorf("error handler got %v; want an *echo.HTTPError holding a %s denial", err, tt.wantReason)
			}
		})
	}
}

// TestListOrders tests the handler alone: ContextWithPrincipal stands in
// for the guard, so no issuer or token is needed.
func TestListOrders(t *testing.T) {
	e := echo.New()
	req := httptest.NewRequest("GET", "/orders", nil)
	req = req.WithContext(middleware.ContextWithPrincipal(req.Context(), &middleware.Principal{
		Subject: "carol",
		Scopes:  []string{"orders:read"},
	}))
	rec := httptest.NewRecorder()
	if err := listOrders(e.NewContext(req, rec)); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"subject":"carol"`) {
		t.Errorf("got %d %s, want 200 with carol's orders", rec.Code, rec.Body)
	}

	// Mounted without the guard by mistake, it refuses to answer.
	rec = httptest.NewRecorder()
	err := listOrders(e.NewContext(httptest.NewRequest("GET", "/orders", nil), rec))
	if !errors.Is(err, errNoPrincipal) {
		t.Errorf("without a Principal: got %v, want errNoPrincipal", err)
	}
}

// TestNewGuard checks that the program names a missing variable.
func TestNewGuard(t *testing.T) {
	_, err := newGuard(t.Context(), func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "ISSUER") {
		t.Errorf("newGuard without ISSUER: %v", err)
	}
}
