package introspect

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestIntrospectActive(t *testing.T) {
	s := newServer(t, respondJSON(t, with(activeClaims(),
		"cnf", map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", "x5t#S256": "abc"},
		"token_type", "DPoP", "username", "alice", "ext", map[string]any{"tenant": "t1"})))
	c := mustNew(t, baseConfig(s, newClock()))
	got, err := c.Introspect(bounded(t, 10*time.Second), testToken)
	if err != nil {
		t.Fatalf("Introspect: %v", err)
	}
	want := &Result{
		Active:    true,
		Issuer:    testIssuer,
		Subject:   "user-1",
		ClientID:  "app-1",
		Scope:     "orders:read orders:write",
		Username:  "alice",
		TokenType: "DPoP",
		Audience:  []string{"other", testAudience},
		ExpiresAt: t0.Add(time.Hour),
		IssuedAt:  t0.Add(-time.Minute),
		NotBefore: t0.Add(-time.Minute),
		JKT:       "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
		Bound:     true,
	}
	if diff := cmp.Diff(want, got, cmp.FilterPath(func(p cmp.Path) bool {
		return p.String() == "Raw" || p.String() == "hasIssuer" || p.String() == "fetched"
	}, cmp.Ignore())); diff != "" {
		t.Errorf("Result mismatch (-want +got):\n%s", diff)
	}
	var extra struct {
		Ext struct{ Tenant string } `json:"ext"`
	}
	if err := got.Claims(&extra); err != nil || extra.Ext.Tenant != "t1" {
		t.Errorf("Claims: %v, tenant %q", err, extra.Ext.Tenant)
	}
}

func TestIntrospectRejections(t *testing.T) {
	big := `{"active":true,"pad":"` + strings.Repeat("x", 70<<10) + `"}`
	tests := []struct {
		name       string
		handler    func(t *testing.T) http.HandlerFunc
		cfg        func(*Config)
		wantErr    error
		wantResult string // OnRequest label
	}{
		{"active false", fixed(`{"active":false}`), nil, ErrInactive, ResultInactive},
		{"active false with claims", fixed(`{"active":false,"sub":"x","scope":"a"}`), nil, ErrInactive, ResultInactive},
		{"active string true", fixed(`{"active":"true"}`), nil, ErrInvalidResponse, ResultInvalid},
		{"active number", fixed(`{"active":1}`), nil, ErrInvalidResponse, ResultInvalid},
		{"active null", fixed(`{"active":null}`), nil, ErrInvalidResponse, ResultInvalid},
		{"active missing", fixed(`{"sub":"x","scope":"a"}`), nil, ErrInvalidResponse, ResultInvalid},
		{"active duplicated", fixed(`{"active":false,"active":true}`), nil, ErrInvalidResponse, ResultInvalid},
		{"iss mismatch", claims(with(activeClaims(), "iss", "https://evil.example.com")), nil, ErrInactive, ResultInactive},
		{"iss empty", claims(with(activeClaims(), "iss", "")), nil, ErrInactive, ResultInactive},
		{"iss prefix", claims(with(activeClaims(), "iss", testIssuer+"/")), nil, ErrInactive, ResultInactive},
		{"aud mismatch", claims(with(activeClaims(), "aud", "https://other.example.com")), nil, ErrInactive, ResultInactive},
		{"aud empty array", claims(with(activeClaims(), "aud", []string{})), nil, ErrInactive, ResultInactive},
		{"expired beyond leeway", claims(with(activeClaims(), "exp", t0.Add(-31*time.Second).Unix())), nil, ErrInactive, ResultInactive},
		{"expired at leeway", claims(with(activeClaims(), "exp", t0.Add(-30*time.Second).Unix())), nil, ErrInactive, ResultInactive},
		{"nbf in future beyond leeway", claims(with(activeClaims(), "nbf", t0.Add(31*time.Second).Unix())), nil, ErrInactive, ResultInactive},
		{"malformed JSON", fixed(`{"active":true,`), nil, ErrInvalidResponse, ResultInvalid},
		{"not an object", fixed(`[{"active":true}]`), nil, ErrInvalidResponse, ResultInvalid},
		{"trailing data", fixed(`{"active":true}{"active":false}`), nil, ErrInvalidResponse, ResultInvalid},
		{"empty body", fixed(``), nil, ErrInvalidResponse, ResultInvalid},
		{"scope number", claims(with(activeClaims(), "scope", 5)), nil, ErrInvalidResponse, ResultInvalid},
		{"exp string", claims(with(activeClaims(), "exp", "2030")), nil, ErrInvalidResponse, ResultInvalid},
		{"cnf.jkt number", claims(with(activeClaims(), "cnf", map[string]any{"jkt": 1})), nil, ErrInvalidResponse, ResultInvalid},
		{"oversize body", fixed(big), nil, ErrUnavailable, ResultInvalid},
		{"oversize with small limit", claims(activeClaims()), func(c *Config) { c.MaxResponseSize = 64 }, ErrUnavailable, ResultInvalid},
		{"500", status(http.StatusInternalServerError, `{"active":true}`), nil, ErrUnavailable, ResultHTTPError},
		{"400 unsupported_token_type", status(http.StatusBadRequest, `{"error":"unsupported_token_type"}`), nil, ErrUnavailable, ResultHTTPError},
		{"401 client auth failed", status(http.StatusUnauthorized, `{"error":"invalid_client"}`), nil, ErrUnavailable, ResultHTTPError},
		{"204", status(http.StatusNoContent, ``), nil, ErrUnavailable, ResultHTTPError},
		{"redirect refused", func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/introspect" {
					http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
					return
				}
				t.Errorf("redirect followed to %s", r.URL.Path)
				respondJSON(t, activeClaims())(w, r)
			}
		}, nil, ErrUnavailable, ResultHTTPError},
		{"timeout", func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				awaitCancel(t, r, "the timeout")
			}
		}, func(c *Config) { c.Timeout = 100 * time.Millisecond }, ErrUnavailable, ResultError},
		{"slow body", func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte(`{"active":`))
				w.(http.Flusher).Flush()
				awaitCancel(t, r, "the timeout")
			}
		}, func(c *Config) { c.Timeout = 100 * time.Millisecond }, ErrUnavailable, ResultError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.handler(t))
			var rec recorder
			cfg := baseConfig(s, newClock())
			cfg.OnRequest = rec.record
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			c := mustNew(t, cfg)
			r, err := c.Introspect(bounded(t, 10*time.Second), testToken)
			if r != nil {
				t.Errorf("Result %+v returned with error %v", r, err)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			for _, other := range []error{ErrInactive, ErrUnavailable, ErrInvalidResponse} {
				if other != tt.wantErr && errors.Is(err, other) {
					t.Errorf("error %v also matches %v", err, other)
				}
			}
			if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q leaks the token or the secret", err)
			}
			if diff := cmp.Diff([]string{tt.wantResult}, rec.results()); diff != "" {
				t.Errorf("OnRequest results (-want +got):\n%s", diff)
			}
		})
	}
}

func fixed(body string) func(*testing.T) http.HandlerFunc {
	return func(*testing.T) http.HandlerFunc { return respond(body) }
}

func claims(m map[string]any) func(*testing.T) http.HandlerFunc {
	return func(t *testing.T) http.HandlerFunc { return respondJSON(t, m) }
}

func status(code int, body string) func(*testing.T) http.HandlerFunc {
	return func(*testing.T) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_, _ = w.Write([]byte(body))
		}
	}
}

// TestIntrospectAccepts: boundary cases that must pass.
func TestIntrospectAccepts(t *testing.T) {
	tests := []struct {
		name string
		resp map[string]any
	}{
		{"no iss, aud, exp, nbf", map[string]any{"active": true}},
		{"aud string", with(activeClaims(), "aud", testAudience)},
		{"expired within leeway", with(activeClaims(), "exp", t0.Add(-29*time.Second).Unix())},
		{"nbf within leeway", with(activeClaims(), "nbf", t0.Add(30*time.Second).Unix())},
		{"fractional exp", with(activeClaims(), "exp", float64(t0.Unix())+3600.5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, respondJSON(t, tt.resp))
			c := mustNew(t, baseConfig(s, newClock()))
			r, err := c.Introspect(bounded(t, 10*time.Second), testToken)
			if err != nil || r == nil || !r.Active {
				t.Fatalf("Introspect = %+v, %v; want active", r, err)
			}
		})
	}
}

func TestEmptyTokenNotSent(t *testing.T) {
	s := newServer(t, respondJSON(t, activeClaims()))
	c := mustNew(t, baseConfig(s, newClock()))
	if _, err := c.Introspect(bounded(t, 10*time.Second), ""); !errors.Is(err, ErrInactive) {
		t.Errorf("error %v, want ErrInactive", err)
	}
	if n := s.hits.Load(); n != 0 {
		t.Errorf("server hit %d times for an empty token", n)
	}
}

func TestCallerContext(t *testing.T) {
	release := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		respondJSON(t, activeClaims())(w, r)
	})
	c := mustNew(t, baseConfig(s, newClock()))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Introspect(ctx, testToken)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want ErrUnavailable wrapping context.DeadlineExceeded", err)
	}
	close(release)
}

// TestAbandonedFlightCancelled: when every waiter gives up, the shared
// request is cancelled, and a later call starts a new one.
func TestAbandonedFlightCancelled(t *testing.T) {
	cancelled := make(chan struct{}, 1)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if awaitCancel(t, r, "") {
			cancelled <- struct{}{}
		}
	})
	c := mustNew(t, baseConfig(s, newClock()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.Introspect(ctx, testToken); done <- err }()
	waitFor(t, func() bool { return s.hits.Load() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("abandoned request not cancelled")
	}
	s.setHandler(respondJSON(t, activeClaims()))
	if _, err := c.Introspect(bounded(t, 10*time.Second), testToken); err != nil {
		t.Errorf("Introspect after an abandoned flight: %v", err)
	}
	if n := s.hits.Load(); n != 2 {
		t.Errorf("hits = %d, want 2", n)
	}
}

func TestClose(t *testing.T) {
	started := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		awaitCancel(t, r, "Close")
	})
	c, err := New(baseConfig(s, newClock()))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := c.Introspect(bounded(t, 10*time.Second), testToken); done <- err }()
	<-started
	c.Close()
	if err := <-done; !errors.Is(err, ErrUnavailable) {
		t.Errorf("in-flight call: error %v, want ErrUnavailable", err)
	}
	if _, err := c.Introspect(bounded(t, 10*time.Second), "another-token"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("call after Close: error %v, want ErrUnavailable", err)
	}
	c.Close() // idempotent
}

// waitFor polls cond for at most 10 s.
func waitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not met within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// awaitCancel waits at most 10 s for the client to abandon r and reports
// whether it did; by names what should have cancelled it ("" for no error
// on a timeout). The body is read first: the server notices a closed
// connection only once the request body is consumed.
func awaitCancel(t *testing.T, r *http.Request, by string) bool {
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
		return true
	case <-time.After(10 * time.Second):
		if by != "" {
			t.Errorf("request not cancelled by %s", by)
		}
		return false
	}
}
