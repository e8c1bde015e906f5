package middleware

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/devissuer"
)

const testAudience = "https://api.example.com"

// testIssuer is a development issuer served by httptest on 127.0.0.1.
type testIssuer struct {
	*devissuer.Issuer
	srv *httptest.Server
}

// newTestIssuer starts an issuer signing with a fresh key of alg and kid.
func newTestIssuer(t testing.TB, alg, kid string) *testIssuer {
	t.Helper()
	k := mustKey(t, alg, kid)
	ti := &testIssuer{}
	ti.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ti.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(ti.srv.Close)
	ti.Issuer = devissuer.New(ti.srv.URL, testAudience, k)
	return ti
}

func (ti *testIssuer) jwksURI() string { return ti.srv.URL + "/jwks" }

func (ti *testIssuer) config() Issuer {
	return Issuer{Issuer: ti.URL(), JWKSURI: ti.jwksURI()}
}

func mustKey(t testing.TB, alg, kid string) *devissuer.Key {
	t.Helper()
	k, err := devissuer.GenerateKey(alg, kid)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// mint signs an RFC 9068 token with the issuer's signing key; extra
// overrides (or, with nil, removes) default claims.
func (ti *testIssuer) mint(t testing.TB, scope string, extra map[string]any) string {
	t.Helper()
	tok, err := ti.Mint(scope, time.Hour, extra)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// fakeClock is a settable clock for Config.now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newGuard builds a guard and closes it when the test ends.
func newGuard(t testing.TB, cfg Config) *Guard {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// okHandler answers 200 with the principal's subject.
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	p, ok := PrincipalFrom(r.Context())
	if !ok {
		http.Error(w, "no principal", http.StatusInternalServerError)
		return
	}
	_, _ = w.Write([]byte(p.Subject))
})

// do sends a request with the given Authorization header values through h.
func do(h http.Handler, auth ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "http://api.example.com/orders/1", nil)
	for _, a := range auth {
		req.Header.Add("Authorization", a)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}
