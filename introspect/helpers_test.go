package introspect

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// t0 is the fake clock's start.
var t0 = time.Unix(1_800_000_000, 0)

const (
	testIssuer   = "https://as.example.com"
	testAudience = "https://api.example.com"
	testToken    = "opaque-token-Zm9vYmFy-0123456789"
)

// clock is a settable fake time source for Config.Now.
type clock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func newClock() *clock { return &clock{now: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// server is a fake introspection endpoint on 127.0.0.1 that counts hits
// and answers with a replaceable handler.
type server struct {
	*httptest.Server
	hits    atomic.Int64
	mu      sync.Mutex // guards handler
	handler http.HandlerFunc
}

func newServer(tb testing.TB, h http.HandlerFunc) *server {
	tb.Helper()
	s := &server{handler: h}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		h := s.handler
		s.mu.Unlock()
		h(w, r)
	}))
	tb.Cleanup(s.Close)
	return s
}

func (s *server) setHandler(h http.HandlerFunc) {
	s.mu.Lock()
	s.handler = h
	s.mu.Unlock()
}

// endpoint is the introspection URL of s.
func (s *server) endpoint() string { return s.URL + "/introspect" }

// respond returns a handler answering 200 with body as JSON.
func respond(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}
}

// respondJSON returns a handler answering 200 with v marshalled.
func respondJSON(tb testing.TB, v any) http.HandlerFunc {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return respond(string(b))
}

// activeClaims is a valid active response at the clock's start; exp is an
// hour after t0.
func activeClaims() map[string]any {
	return map[string]any{
		"active":    true,
		"iss":       testIssuer,
		"aud":       []string{"other", testAudience},
		"sub":       "user-1",
		"client_id": "app-1",
		"scope":     "orders:read orders:write",
		"exp":       t0.Add(time.Hour).Unix(),
		"iat":       t0.Add(-time.Minute).Unix(),
		"nbf":       t0.Add(-time.Minute).Unix(),
	}
}

// with returns a copy of m with members set, or removed for a nil value.
func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// baseConfig is a valid client_secret_basic config for s with clk.
func baseConfig(s *server, clk *clock) Config {
	return Config{
		Endpoint:     s.endpoint(),
		Issuer:       testIssuer,
		Audience:     testAudience,
		ClientID:     "rs",
		ClientSecret: "s3cret",
		Now:          clk.Now,
	}
}

func mustNew(tb testing.TB, cfg Config) *Client {
	tb.Helper()
	c, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

// bounded returns a context that ends after d, so no test waits forever.
func bounded(tb testing.TB, d time.Duration) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// recorder collects OnRequest results.
type recorder struct {
	mu  sync.Mutex // guards got
	got []string
}

func (r *recorder) record(s string) {
	r.mu.Lock()
	r.got = append(r.got, s)
	r.mu.Unlock()
}

func (r *recorder) results() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}
