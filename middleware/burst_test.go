package middleware

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestUnknownKidBurst: 1,000 simultaneous requests with tokens whose kid is
// not in the JWKS cause one fetch, and a later spray of random kids within
// the rate limit causes none.
func TestUnknownKidBurst(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, JWKSRefreshRateLimit: time.Hour})
	h := g.Require()(okHandler)
	before := is.JWKSHits()

	stranger := mustKey(t, "ES256", "not-published")
	tok, err := stranger.Sign(map[string]any{"typ": "at+jwt"}, is.Claims("", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	codes := make([]int, 1000)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = do(h, "Bearer "+tok).Code
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != 401 {
			t.Fatalf("request %d: status %d, want 401", i, c)
		}
	}
	if d := is.JWKSHits() - before; d != 1 {
		t.Errorf("1,000 unknown-kid requests caused %d fetches, want 1", d)
	}

	// The kid in the header is all the guard looks at before the key
	// lookup, so one signer serves the whole spray.
	sprayer := mustKey(t, "ES256", "")
	for i := range 200 {
		tok, _ := sprayer.Sign(map[string]any{"typ": "at+jwt", "kid": fmt.Sprintf("spray-%d", i)}, is.Claims("", time.Hour))
		if c := do(h, "Bearer "+tok).Code; c != 401 {
			t.Fatalf("spray %d: %d", i, c)
		}
	}
	if d := is.JWKSHits() - before; d != 1 {
		t.Errorf("kid spray within the rate limit caused %d fetches in all, want 1", d)
	}
}

// TestCloseStopsGoroutines: everything New starts, Close stops.
func TestCloseStopsGoroutines(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	other := newTestIssuer(t, "RS256", "r1")
	runtime.GC()
	before := runtime.NumGoroutine()
	for range 3 {
		g, err := New(context.Background(), Config{Audience: testAudience, Issuers: []Issuer{is.config(), other.config()}})
		if err != nil {
			t.Fatal(err)
		}
		do(g.Require()(okHandler), "Bearer "+is.mint(t, "", nil))
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	n := runtime.NumGoroutine()
	for n > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	if n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before, %d after Close:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
