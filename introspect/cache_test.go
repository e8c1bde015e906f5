package introspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"crypto/sha256"

	"github.com/tokenguard/tokenguard/internal/tokencache"
)

func TestCacheHit(t *testing.T) {
	s := newServer(t, respondJSON(t, activeClaims()))
	var rec recorder
	cfg := baseConfig(s, newClock())
	cfg.OnRequest = rec.record
	c := mustNew(t, cfg)
	ctx := bounded(t, 10*time.Second)
	first, err := c.Introspect(ctx, testToken)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		r, err := c.Introspect(ctx, testToken)
		if err != nil || r != first {
			t.Fatalf("cached Introspect = %p, %v; want %p", r, err, first)
		}
	}
	if n := s.hits.Load(); n != 1 {
		t.Errorf("hits = %d, want 1", n)
	}
	if _, err := c.Introspect(ctx, testToken+"x"); err != nil {
		t.Fatal(err)
	}
	if n := s.hits.Load(); n != 2 {
		t.Errorf("hits = %d after a second token, want 2", n)
	}
	if got := rec.results(); len(got) != 2 {
		t.Errorf("OnRequest called %d times, want 2 (cache hits are not reported)", len(got))
	}
}

// TestCacheExpiry: an active answer lives until min(exp, now+MaxCacheAge),
// an inactive one for NegativeCacheAge.
func TestCacheExpiry(t *testing.T) {
	tests := []struct {
		name     string
		resp     map[string]any
		cfg      func(*Config)
		lastHit  time.Duration // still cached at t0+lastHit
		firstMis time.Duration // asked again at t0+firstMis
		wantErr  error
	}{
		{"MaxCacheAge before exp", activeClaims(), nil, 59 * time.Second, 60 * time.Second, nil},
		{"custom MaxCacheAge", activeClaims(), func(c *Config) { c.MaxCacheAge = 10 * time.Minute }, 10*time.Minute - time.Millisecond, 10 * time.Minute, nil},
		{"exp before MaxCacheAge", with(activeClaims(), "exp", t0.Add(20*time.Second).Unix()), nil, 20*time.Second - time.Millisecond, 20 * time.Second, nil},
		{"no exp", with(activeClaims(), "exp", nil), nil, 59 * time.Second, 60 * time.Second, nil},
		{"negative default", map[string]any{"active": false}, nil, 5*time.Second - time.Millisecond, 5 * time.Second, ErrInactive},
		{"negative custom", map[string]any{"active": false}, func(c *Config) { c.NegativeCacheAge = time.Minute }, time.Minute - time.Millisecond, time.Minute, ErrInactive},
		{"failed check cached as negative", with(activeClaims(), "aud", "someone-else"), nil, 5*time.Second - time.Millisecond, 5 * time.Second, ErrInactive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, respondJSON(t, tt.resp))
			clk := newClock()
			cfg := baseConfig(s, clk)
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			c := mustNew(t, cfg)
			ctx := bounded(t, 10*time.Second)
			call := func(wantHits int64) {
				t.Helper()
				if _, err := c.Introspect(ctx, testToken); !errors.Is(err, tt.wantErr) {
					t.Fatalf("at t0+%v: error %v, want %v", clk.Now().Sub(t0), err, tt.wantErr)
				}
				if n := s.hits.Load(); n != wantHits {
					t.Fatalf("at t0+%v: hits = %d, want %d", clk.Now().Sub(t0), n, wantHits)
				}
			}
			call(1)
			clk.Advance(tt.lastHit)
			call(1)
			clk.Advance(tt.firstMis - tt.lastHit)
			call(2)
		})
	}
}

// TestFailuresCachedBriefly: after a failure, calls with the same token
// get ErrUnavailable without a request for FailureCacheAge, then ask
// again.
func TestFailuresCachedBriefly(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantErr error
	}{
		{"500", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, ErrUnavailable},
		{"invalid body", respond(`{"active":"yes"}`), ErrInvalidResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.handler)
			clk := newClock()
			cfg := baseConfig(s, clk)
			cfg.FailureCacheAge = 2 * time.Second
			c := mustNew(t, cfg)
			ctx := bounded(t, 10*time.Second)
			if _, err := c.Introspect(ctx, testToken); !errors.Is(err, tt.wantErr) {
				t.Fatalf("first call: error %v, want %v", err, tt.wantErr)
			}
			for i := range 5 {
				if _, err := c.Introspect(ctx, testToken); !errors.Is(err, ErrUnavailable) {
					t.Fatalf("call %d within FailureCacheAge: error %v, want ErrUnavailable", i, err)
				}
			}
			if n := s.hits.Load(); n != 1 {
				t.Fatalf("hits = %d within FailureCacheAge, want 1", n)
			}
			// Another token is asked about.
			if _, err := c.Introspect(ctx, testToken+"x"); !errors.Is(err, tt.wantErr) {
				t.Fatalf("another token: %v", err)
			}
			s.setHandler(respondJSON(t, activeClaims()))
			clk.Advance(2*time.Second + time.Millisecond)
			if _, err := c.Introspect(ctx, testToken); err != nil {
				t.Fatalf("after recovery: %v", err)
			}
			if n := s.hits.Load(); n != 3 {
				t.Errorf("hits = %d, want 3", n)
			}
		})
	}
}

// TestRateLimit: past RateLimit requests a second, introspection fails at
// once with ErrUnavailable and no request, reported as throttled; the
// bucket refills with time.
func TestRateLimit(t *testing.T) {
	s := newServer(t, respond(`{"active":false}`))
	clk := newClock()
	cfg := baseConfig(s, clk)
	cfg.RateLimit = 5
	var throttled atomic.Int32
	cfg.OnRequest = func(r string) {
		if r == ResultThrottled {
			throttled.Add(1)
		}
	}
	c := mustNew(t, cfg)
	ctx := bounded(t, 10*time.Second)
	for i := range 20 {
		_, err := c.Introspect(ctx, fmt.Sprintf("random-token-%d", i))
		if i < 5 && !errors.Is(err, ErrInactive) || i >= 5 && !errors.Is(err, ErrUnavailable) {
			t.Fatalf("token %d: %v", i, err)
		}
	}
	if n := s.hits.Load(); n != 5 {
		t.Errorf("hits = %d, want 5", n)
	}
	if n := throttled.Load(); n != 15 {
		t.Errorf("throttled = %d, want 15", n)
	}
	clk.Advance(time.Second)
	if _, err := c.Introspect(ctx, "random-token-next"); !errors.Is(err, ErrInactive) {
		t.Errorf("after a second: %v", err)
	}
	for _, bad := range []float64{-1, math.NaN(), math.Inf(1)} {
		cfg.RateLimit = bad
		if _, err := New(cfg); err == nil {
			t.Errorf("RateLimit %v accepted", bad)
		}
	}
}

// TestSprayDoesNotEvictActive: inactive answers for a flood of random
// tokens are cached apart, so the active answer for a token in use stays
// cached.
func TestSprayDoesNotEvictActive(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("token") == testToken {
			respondJSON(t, activeClaims())(w, r)
			return
		}
		io.WriteString(w, `{"active":false}`)
	})
	cfg := baseConfig(s, newClock())
	cfg.CacheSize = 100
	cfg.RateLimit = 1e6
	c := mustNew(t, cfg)
	ctx := bounded(t, 10*time.Second)
	if _, err := c.Introspect(ctx, testToken); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		c.Introspect(ctx, fmt.Sprintf("spray-%d", i))
	}
	before := s.hits.Load()
	if _, err := c.Introspect(ctx, testToken); err != nil {
		t.Fatal(err)
	}
	if s.hits.Load() != before {
		t.Error("the active answer was evicted by the spray")
	}
}

// TestSingleflight: 1000 concurrent calls for one uncached token make
// exactly one request. The server holds its answer until every caller is
// waiting on the shared call.
func TestSingleflight(t *testing.T) {
	const callers = 1000
	release := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(20 * time.Second):
			t.Error("server never released")
		}
		respondJSON(t, activeClaims())(w, r)
	})
	cfg := baseConfig(s, newClock())
	cfg.Timeout = 30 * time.Second
	c := mustNew(t, cfg)
	ctx := bounded(t, 30*time.Second)

	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			r, err := c.Introspect(ctx, testToken)
			if err == nil && (r == nil || r.Subject != "user-1") {
				err = errors.New("wrong result")
			}
			errs <- err
		})
	}
	key := tokencache.Key(sha256.Sum256([]byte(testToken)))
	waitFor(t, func() bool {
		c.flight.mu.Lock()
		defer c.flight.mu.Unlock()
		f := c.flight.m[key]
		return f != nil && f.waiters == callers
	})
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("caller: %v", err)
		}
	}
	if n := s.hits.Load(); n != 1 {
		t.Errorf("hits = %d, want 1", n)
	}
}

// TestSingleflightWaiterLeaves: one waiter giving up does not cancel the
// call for the others.
func TestSingleflightWaiterLeaves(t *testing.T) {
	release := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		respondJSON(t, activeClaims())(w, r)
	})
	c := mustNew(t, baseConfig(s, newClock()))
	key := tokencache.Key(sha256.Sum256([]byte(testToken)))
	waiters := func(n int) func() bool {
		return func() bool {
			c.flight.mu.Lock()
			defer c.flight.mu.Unlock()
			f := c.flight.m[key]
			return f != nil && f.waiters == n
		}
	}
	impatient, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := c.Introspect(impatient, testToken); first <- err }()
	waitFor(t, waiters(1))
	second := make(chan error, 1)
	go func() { _, err := c.Introspect(bounded(t, 10*time.Second), testToken); second <- err }()
	waitFor(t, waiters(2))
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("impatient caller: %v", err)
	}
	close(release)
	if err := <-second; err != nil {
		t.Errorf("patient caller: %v", err)
	}
	if n := s.hits.Load(); n != 1 {
		t.Errorf("hits = %d, want 1", n)
	}
}
