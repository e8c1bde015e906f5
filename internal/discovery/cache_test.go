package discovery

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for Cache.now.
type fakeClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTestCache returns a Cache for as with a fake clock, closed at the
// end of the test.
func newTestCache(tb testing.TB, as *testAS, refresh time.Duration) (*Cache, *fakeClock) {
	tb.Helper()
	c, err := NewCache(Config{Issuer: as.URL(), Timeout: 5 * time.Second}, refresh)
	if err != nil {
		tb.Fatal(err)
	}
	clk := newFakeClock()
	c.now = clk.Now
	tb.Cleanup(func() { c.Close() })
	return c, clk
}

// waitIdle waits for the fetch in flight, if any.
func waitIdle(c *Cache) {
	c.mu.Lock()
	call := c.inflight
	c.mu.Unlock()
	if call != nil {
		<-call.done
	}
}

// switchable serves a good document until fail is set, then 503.
type switchable struct {
	mu   sync.Mutex // guards doc and fail
	doc  []byte
	fail bool
}

func (s *switchable) set(doc []byte, fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.doc, s.fail = doc, fail
}

func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	doc, fail := s.doc, s.fail
	s.mu.Unlock()
	if fail {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	w.Write(doc)
}

func TestCacheConcurrentFirstGet(t *testing.T) {
	as := newTestAS(t)
	gate := make(chan struct{})
	doc := goodDoc(t, as.URL())
	as.handle(pathOAuth, func(w http.ResponseWriter, r *http.Request) {
		<-gate // hold the first fetch until every caller is waiting
		w.Write(doc)
	})
	c, _ := newTestCache(t, as, 0)

	const n = 100
	var wg sync.WaitGroup
	var started sync.WaitGroup
	errs := make(chan error, n)
	started.Add(n)
	for range n {
		wg.Go(func() {
			started.Done()
			md, err := c.Get(t.Context())
			if err == nil && md.JWKSURI != as.URL()+"/jwks" {
				err = errors.New("wrong metadata")
			}
			errs <- err
		})
	}
	started.Wait()
	time.Sleep(50 * time.Millisecond) // let the callers reach the wait
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := as.totalHits(); got != 1 {
		t.Fatalf("%d fetches for %d concurrent first Gets, want 1", got, n)
	}
}

func TestCacheRefreshKeepsLastGood(t *testing.T) {
	as := newTestAS(t)
	sw := &switchable{}
	sw.set(goodDoc(t, as.URL()), false)
	as.handle(pathOAuth, sw.ServeHTTP)
	c, clk := newTestCache(t, as, time.Hour)

	first, err := c.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Within the refresh interval: no fetch.
	clk.Advance(59 * time.Minute)
	if _, err := c.Get(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := as.hitCount(pathOAuth); n != 1 {
		t.Fatalf("%d fetches within the refresh interval, want 1", n)
	}

	// Due, but the issuer is down: the last good metadata is served, also
	// after the failed refresh.
	sw.set(nil, true)
	clk.Advance(2 * time.Minute)
	md, err := c.Get(t.Context())
	if err != nil || md.JWKSURI != first.JWKSURI {
		t.Fatalf("Get during refresh = %v, %v", md, err)
	}
	waitIdle(c)
	if n := as.hitCount(pathOAuth); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	md, err = c.Get(t.Context())
	if err != nil || md.JWKSURI != first.JWKSURI {
		t.Fatalf("Get after failed refresh = %v, %v", md, err)
	}

	// A successful refresh replaces it.
	other := metaDoc(t, map[string]any{"issuer": as.URL(), "jwks_uri": as.URL() + "/jwks2"})
	sw.set(other, false)
	clk.Advance(failureBackoff)
	c.Get(t.Context())
	waitIdle(c)
	md, err = c.Get(t.Context())
	if err != nil || md.JWKSURI != as.URL()+"/jwks2" {
		t.Fatalf("Get after refresh = %v, %v", md, err)
	}

	// A mismatching document does not replace it either.
	sw.set(goodDoc(t, "https://evil.example.com"), false)
	clk.Advance(time.Hour)
	c.Get(t.Context())
	waitIdle(c)
	md, err = c.Get(t.Context())
	if err != nil || md.JWKSURI != as.URL()+"/jwks2" {
		t.Fatalf("Get after mismatching refresh = %v, %v", md, err)
	}
}

func TestCacheRateLimitAfterFailure(t *testing.T) {
	as := newTestAS(t)
	sw := &switchable{}
	sw.set(goodDoc(t, as.URL()), false)
	as.handle(pathOAuth, sw.ServeHTTP)
	c, clk := newTestCache(t, as, time.Second) // refresh shorter than the back-off

	if _, err := c.Get(t.Context()); err != nil {
		t.Fatal(err)
	}
	sw.set(nil, true)
	clk.Advance(2 * time.Second)
	c.Get(t.Context())
	waitIdle(c)
	hits := as.totalHits() // RFC 8414 and OIDC locations for the failed refresh
	if hits != 3 {
		t.Fatalf("%d requests after one success and one failed refresh, want 3", hits)
	}
	for range 9 {
		clk.Advance(time.Second)
		for range 10 {
			if _, err := c.Get(t.Context()); err != nil {
				t.Fatalf("Get: %v", err)
			}
		}
		waitIdle(c)
	}
	if n := as.totalHits(); n != hits {
		t.Fatalf("%d requests within 9 s of a failure, want %d", n, hits)
	}
	clk.Advance(time.Second) // 10 s after the failure
	c.Get(t.Context())
	waitIdle(c)
	if n := as.totalHits(); n != hits+2 {
		t.Fatalf("%d requests 10 s after the failure, want %d", n, hits+2)
	}
}

func TestCacheOutageBeforeFirstFetch(t *testing.T) {
	as := newTestAS(t)
	sw := &switchable{}
	sw.set(nil, true)
	as.handle(pathOAuth, sw.ServeHTTP)
	as.handle(pathOIDC, sw.ServeHTTP)
	c, clk := newTestCache(t, as, 0)

	_, err := c.Get(t.Context())
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	hits := as.totalHits()
	// Within the back-off: fails closed at once, without fetching.
	clk.Advance(5 * time.Second)
	if _, err := c.Get(t.Context()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if n := as.totalHits(); n != hits {
		t.Fatalf("fetched again within the back-off (%d requests, want %d)", n, hits)
	}
	// After it, the issuer is back.
	sw.set(goodDoc(t, as.URL()), false)
	clk.Advance(5 * time.Second)
	md, err := c.Get(t.Context())
	if err != nil || md.Issuer != as.URL() {
		t.Fatalf("Get = %v, %v", md, err)
	}
}

func TestCacheFirstFetchInvalidFailsClosed(t *testing.T) {
	as := newTestAS(t)
	as.serveDoc(pathOAuth, goodDoc(t, "https://evil.example.com"))
	c, _ := newTestCache(t, as, 0)
	if _, err := c.Get(t.Context()); !errors.Is(err, ErrIssuerMismatch) {
		t.Fatalf("err = %v, want ErrIssuerMismatch", err)
	}
	if _, err := c.Get(t.Context()); !errors.Is(err, ErrIssuerMismatch) {
		t.Fatalf("second Get: err = %v, want ErrIssuerMismatch", err)
	}
}

func TestCacheCallerGivesUp(t *testing.T) {
	as := newTestAS(t)
	gate := make(chan struct{})
	doc := goodDoc(t, as.URL())
	as.handle(pathOAuth, func(w http.ResponseWriter, r *http.Request) {
		<-gate
		w.Write(doc)
	})
	c, _ := newTestCache(t, as, 0)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	// The fetch went on for the others.
	close(gate)
	md, err := c.Get(t.Context())
	if err != nil || md.Issuer != as.URL() {
		t.Fatalf("Get = %v, %v", md, err)
	}
	if n := as.totalHits(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
}

func TestCacheClose(t *testing.T) {
	as := newTestAS(t)
	release := make(chan struct{})
	defer close(release)
	as.handle(pathOAuth, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	c, _ := newTestCache(t, as, 0)
	done := make(chan error, 1)
	go func() {
		_, err := c.Get(context.Background())
		done <- err
	}()
	for as.totalHits() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	c.Close()
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Close took %v", el)
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Get during Close: err = %v, want context.Canceled", err)
	}
	c.Close() // idempotent
	if _, err := c.Get(t.Context()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get after Close: err = %v", err)
	}
}

func TestCacheResultIsACopy(t *testing.T) {
	as := newTestAS(t)
	as.serveDoc(pathOAuth, goodDoc(t, as.URL()))
	c, _ := newTestCache(t, as, 0)
	md, err := c.Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	md.JWKSURI = "changed"
	md.IntrospectionAuthMethods[0] = "changed"
	again, _ := c.Get(t.Context())
	if again.JWKSURI == "changed" || again.IntrospectionAuthMethods[0] == "changed" {
		t.Fatal("caller's change reached the cache")
	}
}

func TestNewCacheValidation(t *testing.T) {
	_, err := NewCache(Config{Issuer: "http://as.example.com"}, -time.Second)
	if err == nil || !strings.Contains(err.Error(), "discovery: Issuer:") || !strings.Contains(err.Error(), "discovery: refresh:") {
		t.Fatalf("err = %v, want both problems", err)
	}
	c, err := NewCache(Config{Issuer: "https://as.example.com"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.refresh != defaultRefresh {
		t.Errorf("refresh = %v, want %v", c.refresh, defaultRefresh)
	}
}
