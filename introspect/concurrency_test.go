package introspect

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// TestMaxConcurrent: past MaxConcurrent distinct requests in flight, a
// new token fails at once with ErrUnavailable instead of adding load on
// the authorization server; a slot frees when a request ends.
func TestMaxConcurrent(t *testing.T) {
	release := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write([]byte(`{"active":false}`))
	})
	cfg := baseConfig(s, newClock())
	cfg.MaxConcurrent = 1
	c := mustNew(t, cfg)
	first := make(chan error, 1)
	go func() {
		_, err := c.Introspect(bounded(t, 10*time.Second), "token-a")
		first <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for s.hits.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("first request never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if _, err := c.Introspect(bounded(t, 10*time.Second), "token-b"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("second token while one is in flight: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusal took %v; it should not wait", d)
	}
	close(release)
	if err := <-first; !errors.Is(err, ErrInactive) {
		t.Fatalf("first request: %v, want ErrInactive", err)
	}
	if _, err := c.Introspect(bounded(t, 10*time.Second), "token-b"); !errors.Is(err, ErrInactive) {
		t.Fatalf("after the slot freed: %v, want ErrInactive", err)
	}
	if _, err := New(Config{Endpoint: s.endpoint(), Issuer: testIssuer, Audience: testAudience, ClientID: "rs", ClientSecret: "x", MaxConcurrent: -1}); err == nil {
		t.Error("negative MaxConcurrent accepted")
	}
}

// TestIntrospectWithin: a cached active answer older than maxAge is not
// reused; a younger one is; plain Introspect reuses it up to MaxCacheAge.
func TestIntrospectWithin(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"active":true}`))
	})
	clk := newClock()
	c := mustNew(t, baseConfig(s, clk))
	ctx := bounded(t, 10*time.Second)
	if _, err := c.Introspect(ctx, "tok"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Second)
	for _, tt := range []struct {
		name     string
		maxAge   time.Duration
		wantHits int64
	}{
		{"plain, within MaxCacheAge", 0, 1},
		{"answer younger than maxAge", 10 * time.Second, 1},
		{"answer older than maxAge", 2 * time.Second, 2},
		{"the refreshed answer is young again", 2 * time.Second, 2},
	} {
		if _, err := c.IntrospectWithin(ctx, "tok", tt.maxAge); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := s.hits.Load(); got != tt.wantHits {
			t.Errorf("%s: %d server hits, want %d", tt.name, got, tt.wantHits)
		}
	}
}
