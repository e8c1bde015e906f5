package middleware

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestOnDecision checks that the hook sees each guarded request's reason
// exactly once, before the response is written, with the request as
// received (no Principal yet) and never the token.
func TestOnDecision(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	type call struct {
		reason       Reason
		hadPrincipal bool
		calls        int
	}
	var mu sync.Mutex
	var got call
	var seenText strings.Builder
	cfg := Config{Audience: testAudience, Issuers: []Issuer{is.config()}}
	cfg.OnDecision = func(r *http.Request, reason Reason) {
		mu.Lock()
		defer mu.Unlock()
		_, p := PrincipalFrom(r.Context())
		got = call{reason: reason, hadPrincipal: p, calls: got.calls + 1}
		seenText.WriteString(string(reason))
	}
	g := newGuard(t, cfg)
	var handlerSaw call
	h := g.Require("orders:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		handlerSaw = got // the hook has run before the protected handler
		mu.Unlock()
		okHandler(w, r)
	}))

	good := is.mint(t, "orders:read", nil)
	tests := []struct {
		name   string
		auth   []string
		status int
		want   Reason
	}{
		{"allowed", []string{"Bearer " + good}, 200, ReasonOK},
		{"no token", nil, 401, ReasonMissingToken},
		{"missing scope", []string{"Bearer " + is.mint(t, "orders:write", nil)}, 403, ReasonInsufficientScope},
		{"bad signature", []string{"Bearer " + good[:len(good)-4] + "AAAA"}, 401, ReasonInvalidSignature},
		{"two headers", []string{"Bearer a", "Bearer b"}, 400, ReasonMalformedRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			got = call{}
			mu.Unlock()
			rec := do(h, tt.auth...)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d", rec.Code, tt.status)
			}
			mu.Lock()
			defer mu.Unlock()
			if got.calls != 1 || got.reason != tt.want || got.hadPrincipal {
				t.Errorf("hook saw %+v, want one call with %q and no principal", got, tt.want)
			}
		})
	}
	if handlerSaw.reason != ReasonOK || handlerSaw.calls != 1 {
		t.Errorf("before the handler ran the hook had seen %+v, want one ReasonOK", handlerSaw)
	}
	if strings.Contains(seenText.String(), good[:20]) {
		t.Error("token material reached the hook")
	}
}

// TestOnDecisionAllocs pins the hook's cost: nothing when unset, nothing
// for a hook that itself does not allocate.
func TestOnDecisionAllocs(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	tok := is.mint(t, "", nil)
	req, _ := http.NewRequest(http.MethodGet, "http://api.example.com/orders/1", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	var n int
	allocs := func(cfg Config) float64 {
		g := newGuard(t, cfg)
		h := g.Require()(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		w := discardWriter{h: http.Header{}}
		h.ServeHTTP(w, req) // warm the token cache
		return testing.AllocsPerRun(200, func() { h.ServeHTTP(w, req) })
	}
	base := allocs(Config{Audience: testAudience, Issuers: []Issuer{is.config()}})
	withHook := allocs(Config{Audience: testAudience, Issuers: []Issuer{is.config()}, OnDecision: func(*http.Request, Reason) { n++ }})
	if withHook > base {
		t.Errorf("a non-allocating hook costs %v allocs/request over %v", withHook-base, base)
	}
	if n == 0 {
		t.Fatal("hook never called")
	}
}

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d discardWriter) WriteHeader(int)             {}
