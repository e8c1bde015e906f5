package jwks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRotation: a new kid is accepted after one fetch; a key the issuer
// removed is gone after the next successful fetch, not before.
func TestRotation(t *testing.T) {
	iss := newIssuer(t, jwksDoc(kRSA1(t)))
	var res results
	s := newTestSet(t, testConfig(iss.srv.URL, &res))
	ctx := context.Background()

	k1, err := s.Lookup(ctx, "rsa1")
	if err != nil || k1.ID != "rsa1" {
		t.Fatalf("Lookup(rsa1) = %v, %v", k1, err)
	}
	if n := iss.hits.Load(); n != 1 {
		t.Fatalf("initial fetches = %d, want 1", n)
	}

	// The issuer adds rsa2 and signs with it: one fetch, then accepted.
	iss.update(func(i *issuer) { i.doc = jwksDoc(kRSA1(t), kRSA2(t)) })
	k2, err := s.Lookup(ctx, "rsa2")
	if err != nil || k2.ID != "rsa2" {
		t.Fatalf("Lookup(rsa2) after rotation = %v, %v", k2, err)
	}
	if n := iss.hits.Load(); n != 2 {
		t.Errorf("fetches after new kid = %d, want 2", n)
	}
	if again, _ := s.Lookup(ctx, "rsa1"); again != k1 {
		t.Errorf("unchanged key rsa1 got a new *Key")
	}

	// The issuer retires rsa1. Until a fetch succeeds, rsa1 stays.
	iss.update(func(i *issuer) { i.doc = jwksDoc(kRSA2(t)) })
	if got := s.Snapshot().Key("rsa1"); got != k1 {
		t.Fatalf("rsa1 dropped before any fetch")
	}
	time.Sleep(60 * time.Millisecond) // past RefreshRateLimit
	if _, err := s.Lookup(ctx, "rsa3"); !errors.Is(err, ErrUnknownKID) {
		t.Fatalf("Lookup(rsa3) = %v, want ErrUnknownKID", err)
	}
	if got := s.Snapshot().Key("rsa1"); got != nil {
		t.Errorf("rsa1 still published after the issuer removed it")
	}
	if got := s.Snapshot().Key("rsa2"); got != k2 {
		t.Errorf("rsa2 changed pointer")
	}
	if diff := cmp.Diff([]string{"success", "success", "success"}, res.list()); diff != "" {
		t.Errorf("OnRefresh results (-want +got):\n%s", diff)
	}
}

// TestScheduledRefresh: with no lookups at all, httprc's schedule
// (max-age clamped up to MinRefreshInterval) picks up a rotation.
func TestScheduledRefresh(t *testing.T) {
	iss := newIssuer(t, jwksDoc(kRSA1(t)))
	iss.update(func(i *issuer) { i.header = http.Header{"Cache-Control": {"max-age=0"}} })
	var res results
	cfg := testConfig(iss.srv.URL, &res)
	cfg.MinRefreshInterval = time.Second
	s := newTestSet(t, cfg)
	iss.update(func(i *issuer) { i.doc = jwksDoc(kRSA2(t)) })
	waitFor(t, 6*time.Second, "the scheduled refresh", func() bool {
		snap := s.Snapshot()
		return snap.Key("rsa2") != nil && snap.Key("rsa1") == nil
	})
}

// TestUnknownKIDBurst: 1,000 concurrent misses cause exactly one fetch.
func TestUnknownKIDBurst(t *testing.T) {
	for _, tt := range []struct {
		name    string
		sameKID bool // all ask for the new key; else each asks for its own random kid
	}{
		{"same new kid", true},
		{"random kids", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			iss := newIssuer(t, jwksDoc(kRSA1(t)))
			cfg := testConfig(iss.srv.URL, &results{})
			cfg.RefreshRateLimit = time.Hour
			s := newTestSet(t, cfg)
			iss.update(func(i *issuer) {
				i.doc = jwksDoc(kRSA1(t), kRSA2(t))
				i.delay = 200 * time.Millisecond // so every lookup arrives while the fetch is in flight
			})

			const n = 1000
			var wg sync.WaitGroup
			start := make(chan struct{})
			keys := make([]*Key, n)
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() {
					kid := "rsa2"
					if !tt.sameKID {
						kid = fmt.Sprintf("random-%d", i)
					}
					<-start
					keys[i], errs[i] = s.Lookup(context.Background(), kid)
				})
			}
			close(start)
			wg.Wait()

			if got := iss.hits.Load(); got != 2 {
				t.Errorf("fetches = %d, want 2 (initial + one refresh)", got)
			}
			want := s.Snapshot().Key("rsa2")
			for i := range n {
				if tt.sameKID && (errs[i] != nil || keys[i] != want) {
					t.Fatalf("lookup %d = %v, %v", i, keys[i], errs[i])
				}
				if !tt.sameKID && !errors.Is(errs[i], ErrUnknownKID) {
					t.Fatalf("lookup %d = %v, want ErrUnknownKID", i, errs[i])
				}
			}
		})
	}
}

// TestUnknownKIDSpray: random kids over time cost no more fetches than
// the rate limit allows, and the memory of unknown kids stays bounded.
func TestUnknownKIDSpray(t *testing.T) {
	iss := newIssuer(t, jwksDoc(kRSA1(t)))
	cfg := testConfig(iss.srv.URL, &results{})
	cfg.RefreshRateLimit = 100 * time.Millisecond
	s := newTestSet(t, cfg)

	const spray = 700 * time.Millisecond
	var wg sync.WaitGroup
	var mu sync.Mutex
	lookups := 0
	start := time.Now()
	for g := range 4 {
		wg.Go(func() {
			for i := 0; time.Since(start) < spray; i++ {
				_, err := s.Lookup(context.Background(), fmt.Sprintf("spray-%d-%d", g, i))
				if !errors.Is(err, ErrUnknownKID) {
					t.Errorf("Lookup = %v, want ErrUnknownKID", err)
					return
				}
				mu.Lock()
				lookups++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	refreshes := int(iss.hits.Load()) - 1
	allowed := int(elapsed/cfg.RefreshRateLimit) + 1
	if refreshes > allowed || refreshes < 2 {
		t.Errorf("%d lookups in %v caused %d refreshes; the limiter allows at most %d (and at least 2 should happen)",
			lookups, elapsed, refreshes, allowed)
	}
	if lookups < 2*unknownKIDMemory {
		t.Fatalf("only %d lookups; the memory bound was not exercised", lookups)
	}
	s.mu.Lock()
	remembered := len(s.unknown)
	s.mu.Unlock()
	if remembered > unknownKIDMemory {
		t.Errorf("remembered %d unknown kids, bound is %d", remembered, unknownKIDMemory)
	}
}

// TestLimiterRefusalIsImmediate: when the limiter says no, Lookup returns
// at once, without a fetch, even while the issuer is slow.
func TestLimiterRefusalIsImmediate(t *testing.T) {
	iss := newIssuer(t, jwksDoc(kRSA1(t)))
	cfg := testConfig(iss.srv.URL, &results{})
	cfg.RefreshRateLimit = time.Hour
	s := newTestSet(t, cfg)
	ctx := context.Background()

	if _, err := s.Lookup(ctx, "first"); !errors.Is(err, ErrUnknownKID) {
		t.Fatalf("Lookup(first) = %v", err)
	}
	iss.update(func(i *issuer) { i.delay = 3 * time.Second })
	for _, kid := range []string{"second", "first"} {
		start := time.Now()
		_, err := s.Lookup(ctx, kid)
		if d := time.Since(start); !errors.Is(err, ErrUnknownKID) || d > 100*time.Millisecond {
			t.Errorf("Lookup(%s) = %v after %v, want ErrUnknownKID at once", kid, err, d)
		}
	}
	if n := iss.hits.Load(); n != 2 {
		t.Errorf("fetches = %d, want 2", n)
	}
	// A JWS without kid matches the only key of a one-key set.
	if k, err := s.Lookup(ctx, ""); err != nil || k.ID != "rsa1" {
		t.Errorf("Lookup(\"\") on a one-key set = %v, %v", k, err)
	}
}

// TestUnknownKIDWait: a caller waits for a slow refresh at most
// UnknownKIDWait, or until its own context ends; the refresh goes on
// for everyone else.
func TestUnknownKIDWait(t *testing.T) {
	iss := newIssuer(t, jwksDoc(kRSA1(t)))
	cfg := testConfig(iss.srv.URL, &results{})
	cfg.UnknownKIDWait = 100 * time.Millisecond
	s := newTestSet(t, cfg)
	iss.update(func(i *issuer) {
		i.doc = jwksDoc(kRSA1(t), kRSA2(t))
		i.delay = 500 * time.Millisecond
	})

	start := time.Now()
	_, err := s.Lookup(context.Background(), "rsa2")
	if d := time.Since(start); !errors.Is(err, ErrUnknownKID) || d > 400*time.Millisecond {
		t.Fatalf("Lookup = %v after %v, want ErrUnknownKID after about UnknownKIDWait", err, d)
	}

	// The refresh was not abandoned: rsa2 arrives.
	waitFor(t, 3*time.Second, "the refresh to finish", func() bool { return s.Snapshot().Key("rsa2") != nil })

	// A caller whose context ends first sees its context's error.
	time.Sleep(60 * time.Millisecond)
	iss.update(func(i *issuer) { i.doc = jwksDoc(kRSA1(t), kRSA2(t), kEC(t)) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Lookup(ctx, "ec1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lookup with expiring ctx = %v, want context.DeadlineExceeded", err)
	}
	waitFor(t, 3*time.Second, "the refresh the impatient caller started", func() bool { return s.Snapshot().Key("ec1") != nil })
}

// TestRefreshFailureKeepsLastGoodKeys: every kind of failed refresh keeps
// the last good snapshot and is reported with the right label.
func TestRefreshFailureKeepsLastGoodKeys(t *testing.T) {
	k := testKeys()
	tests := []struct {
		name   string
		break_ func(*issuer)
		want   string
	}{
		{"500", func(i *issuer) { i.status = 500 }, ResultHTTPError},
		{"404", func(i *issuer) { i.status = 404 }, ResultHTTPError},
		{"connection closed", func(i *issuer) { i.hangup = true }, ResultNetworkError},
		{"connection refused", func(i *issuer) { i.srv.Close() }, ResultNetworkError},
		{"not JSON", func(i *issuer) { i.doc = []byte("<html>maintenance</html>") }, ResultInvalid},
		{"over MaxBodySize", func(i *issuer) {
			// A valid set with the wanted key, just too long.
			i.doc = []byte(`{"keys":[` + string(kRSA2(t)) + `],"padding":"` + strings.Repeat("x", 1000) + `"}`)
		}, ResultInvalid},
		{"over MaxBodySize in trailing white space", func(i *issuer) {
			// Valid JSON whatever is cut off: only the size check refuses it.
			i.doc = append(jwksDoc(kRSA2(t)), strings.Repeat(" ", 1000)...)
		}, ResultInvalid},
		{"empty set", func(i *issuer) { i.doc = []byte(`{"keys":[]}`) }, ResultInvalid},
		{"no keys member", func(i *issuer) { i.doc = []byte(`{}`) }, ResultInvalid},
		{"every key rejected", func(i *issuer) {
			i.doc = jwksDoc(jwkJSON(t, &k.rsa2.PublicKey, map[string]any{"kid": "rsa2", "use": "enc"}),
				jwkJSON(t, k.p256, map[string]any{"kid": "ec1"}))
		}, ResultInvalid},
		{"more than MaxKeys", func(i *issuer) { i.doc = jwksDoc(kRSA1(t), kRSA2(t), kEC(t)) }, ResultInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := newIssuer(t, jwksDoc(kRSA1(t)))
			var res results
			cfg := testConfig(iss.srv.URL, &res)
			cfg.MaxBodySize = 1000 // fits a one-key set
			cfg.MaxKeys = 2
			s := newTestSet(t, cfg)
			before := s.Snapshot()
			if before == nil {
				t.Fatal("not loaded")
			}
			good := before.Key("rsa1")

			iss.update(tt.break_)
			if _, err := s.Lookup(context.Background(), "rsa2"); !errors.Is(err, ErrUnknownKID) {
				t.Fatalf("Lookup(rsa2) = %v, want ErrUnknownKID", err)
			}
			if s.Snapshot() != before {
				t.Errorf("snapshot replaced by a failed refresh")
			}
			if got, err := s.Lookup(context.Background(), "rsa1"); got != good || err != nil {
				t.Errorf("Lookup(rsa1) = %v, %v; want the last good key", got, err)
			}
			if !s.Ready() {
				t.Errorf("Ready() = false after a failed refresh")
			}
			if diff := cmp.Diff([]string{ResultSuccess, tt.want}, res.list()); diff != "" {
				t.Errorf("OnRefresh results (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMaxBodySizeIsInclusive: a document of exactly MaxBodySize bytes is
// accepted.
func TestMaxBodySizeIsInclusive(t *testing.T) {
	doc := jwksDoc(kRSA1(t))
	const limit = 1000
	if len(doc) > limit {
		t.Fatalf("test key set is %d bytes", len(doc))
	}
	doc = append(doc, strings.Repeat(" ", limit-len(doc))...)
	iss := newIssuer(t, doc)
	cfg := testConfig(iss.srv.URL, &results{})
	cfg.MaxBodySize = limit
	if s := newTestSet(t, cfg); !s.Ready() {
		t.Fatal("a document of exactly MaxBodySize bytes was refused")
	}
}

// TestFirstLoadRetries: a failing first load leaves the Set not ready,
// then it recovers on its own with backoff, long before
// MinRefreshInterval (an hour here). It also shows that httprc v3 does
// not mark a resource ready after a failed fetch (httprc#10, jwx#922 in
// earlier versions).
func TestFirstLoadRetries(t *testing.T) {
	t.Run("http errors", func(t *testing.T) {
		iss := newIssuer(t, jwksDoc(kRSA1(t)))
		iss.update(func(i *issuer) { i.failN = 3 })
		var res results
		cfg := testConfig(iss.srv.URL, &res)
		cfg.InitialWait = -1
		s := newTestSet(t, cfg)

		waitFor(t, 2*time.Second, "the first attempt", func() bool { return len(res.list()) > 0 })
		if s.Ready() || s.Snapshot() != nil {
			t.Fatalf("Ready after a failed first fetch")
		}
		if _, err := s.Lookup(context.Background(), "rsa1"); !errors.Is(err, ErrNotLoaded) {
			t.Errorf("Lookup before the first load = %v, want ErrNotLoaded", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if err := s.res.Ready(ctx); err == nil && s.Snapshot() == nil {
			t.Errorf("httprc marked the resource ready after a failed fetch")
		}

		waitFor(t, 5*time.Second, "recovery", s.Ready)
		if k, err := s.Lookup(context.Background(), "rsa1"); err != nil || k == nil {
			t.Errorf("Lookup after recovery = %v, %v", k, err)
		}
		want := []string{ResultHTTPError, ResultHTTPError, ResultHTTPError, ResultSuccess}
		if diff := cmp.Diff(want, res.list()); diff != "" {
			t.Errorf("OnRefresh results (-want +got):\n%s", diff)
		}
	})

	t.Run("connection refused", func(t *testing.T) {
		// Reserve a port, free it, and start the issuer there later.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		var res results
		cfg := testConfig("http://"+addr+"/jwks", &res)
		cfg.InitialWait = 300 * time.Millisecond
		start := time.Now()
		s := newTestSet(t, cfg) // an unreachable server is not an error
		if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
			t.Errorf("New returned after %v, want about InitialWait", d)
		}
		if s.Ready() {
			t.Fatal("Ready with no server")
		}

		iss := &issuer{doc: jwksDoc(kRSA1(t))}
		l, err = net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("port %s was taken meanwhile: %v", addr, err)
		}
		srv := httptest.NewUnstartedServer(http.HandlerFunc(iss.serve))
		srv.Listener.Close()
		srv.Listener = l
		srv.Start()
		defer srv.Close()

		waitFor(t, 5*time.Second, "recovery", s.Ready)
		got := res.list()
		if len(got) < 2 || got[0] != ResultNetworkError || got[len(got)-1] != ResultSuccess {
			t.Errorf("OnRefresh results = %v, want network errors then success", got)
		}
	})
}

// TestNewWaitsForFirstLoad: by default New returns with keys loaded.
func TestNewWaitsForFirstLoad(t *testing.T) {
	iss := newIssuer(t, jwksDoc(kRSA1(t)))
	s := newTestSet(t, Config{URL: iss.srv.URL})
	if !s.Ready() || s.Snapshot().Key("rsa1") == nil {
		t.Fatal("New returned before the first load")
	}
	if s.Snapshot().FetchedAt().IsZero() {
		t.Error("FetchedAt is zero")
	}
}

// TestRefreshIntervalClamped: the interval from Cache-Control max-age or
// Expires is clamped into [MinRefreshInterval, MaxRefreshInterval].
func TestRefreshIntervalClamped(t *testing.T) {
	const min, max = 30 * time.Minute, 2 * time.Hour
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"max-age below min", http.Header{"Cache-Control": {"public, max-age=1"}}, min},
		{"max-age above max", http.Header{"Cache-Control": {"max-age=315360000"}}, max},
		{"max-age within bounds", http.Header{"Cache-Control": {"max-age=3600"}}, time.Hour},
		{"Expires far away", http.Header{"Expires": {time.Now().AddDate(10, 0, 0).UTC().Format(http.TimeFormat)}}, max},
		{"Expires in the past", http.Header{"Expires": {time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)}}, min},
		{"no caching headers", nil, min},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := newIssuer(t, jwksDoc(kRSA1(t)))
			iss.update(func(i *issuer) { i.header = tt.header })
			cfg := testConfig(iss.srv.URL, &results{})
			cfg.MinRefreshInterval, cfg.MaxRefreshInterval = min, max
			s := newTestSet(t, cfg)
			fetched := s.Snapshot().FetchedAt()
			got := s.res.Next().Sub(fetched)
			if d := got - tt.want; d < -5*time.Second || d > 5*time.Second {
				t.Errorf("next refresh in %v, want %v", got, tt.want)
			}
		})
	}
}

// TestNoCacheHeader: unknown-kid refreshes bypass caches; the initial
// fetch does not.
func TestNoCacheHeader(t *testing.T) {
	iss := newIssuer(t, jwksDoc(kRSA1(t)))
	s := newTestSet(t, testConfig(iss.srv.URL, &results{}))
	s.Lookup(context.Background(), "other")
	reqs := iss.requestHeaders()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if got := reqs[0].Get("Cache-Control"); got != "" {
		t.Errorf("initial fetch sent Cache-Control: %q", got)
	}
	if got := reqs[1].Get("Cache-Control"); got != "no-cache" {
		t.Errorf("unknown-kid refresh sent Cache-Control: %q, want no-cache", got)
	}
	if got := reqs[0].Get("Accept"); !strings.Contains(got, "application/jwk-set+json") {
		t.Errorf("Accept = %q", got)
	}
}

// Context keys for TestRefreshContext: callerKey stands for any value of
// a lookup's context, chosenKey for the one RefreshContext picks.
type (
	callerKey struct{}
	chosenKey struct{}
)

// joinWatch is a lookup's context that reports when the lookup starts
// waiting for a refresh: lookupMiss calls Done only in its final select,
// after it has joined the refresh in flight (or started one).
type joinWatch struct {
	context.Context
	once    sync.Once
	waiting chan struct{}
}

func (w *joinWatch) Done() <-chan struct{} {
	w.once.Do(func() { close(w.waiting) })
	return w.Context.Done()
}

// TestRefreshContext: the fetch of an unknown-kid refresh carries only
// the values Config.RefreshContext picks from the lookup that started it
// (a tracing transport finds the caller's span there), no other value of
// that lookup's, and none at all without the hook; never the lookup's
// cancellation: the caller gives up, and the refresh still completes for
// a lookup that joined it, in one fetch. Scheduled fetches carry no
// caller's values.
func TestRefreshContext(t *testing.T) {
	tests := []struct {
		name string
		hook func(caller context.Context) context.Context
		// want is what the forced fetch's context holds under callerKey
		// and chosenKey.
		wantCaller, wantChosen any
	}{
		{
			name: "no hook: no caller value",
		},
		{
			name: "hook: its value, no other",
			hook: func(caller context.Context) context.Context {
				return context.WithValue(context.Background(), chosenKey{}, fmt.Sprint("chosen from ", caller.Value(callerKey{})))
			},
			wantChosen: "chosen from request-1",
		},
		{
			name: "hook returns nil: no caller value",
			hook: func(context.Context) context.Context { return nil },
		},
		{
			// A hook that hands the caller back carries all of its
			// values (its choice), but still not its cancellation.
			name:       "hook returns the caller: not its cancellation",
			hook:       func(caller context.Context) context.Context { return caller },
			wantCaller: "request-1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := newIssuer(t, jwksDoc(kRSA1(t)))
			type fetch struct {
				forced         bool
				caller, chosen any
			}
			var mu sync.Mutex
			var seen []fetch // each fetch, in order
			forcedStarted := make(chan struct{}, 1)
			gate := make(chan struct{})
			var openGate sync.Once
			t.Cleanup(func() { openGate.Do(func() { close(gate) }) })
			cfg := testConfig(iss.srv.URL, &results{})
			cfg.RefreshRateLimit = time.Hour
			cfg.UnknownKIDWait = 10 * time.Second // the joiner waits for the gate, not for this
			cfg.RefreshContext = tt.hook
			cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
				return roundTripFunc(func(r *http.Request) (*http.Response, error) {
					f := fetch{
						forced: r.Header.Get("Cache-Control") == "no-cache",
						caller: r.Context().Value(callerKey{}),
						chosen: r.Context().Value(chosenKey{}),
					}
					mu.Lock()
					seen = append(seen, f)
					mu.Unlock()
					if f.forced {
						forcedStarted <- struct{}{}
						select {
						case <-gate:
						case <-r.Context().Done():
							return nil, r.Context().Err()
						}
					}
					return rt.RoundTrip(r)
				})
			}
			s := newTestSet(t, cfg)
			iss.update(func(i *issuer) { i.doc = jwksDoc(kRSA1(t), kRSA2(t)) })

			// request-1 starts the refresh, which the gate holds.
			ctx, cancel := context.WithCancel(context.WithValue(context.Background(), callerKey{}, "request-1"))
			defer cancel()
			first := make(chan error, 1)
			go func() {
				_, err := s.Lookup(ctx, "rsa2")
				first <- err
			}()
			select {
			case <-forcedStarted:
			case <-time.After(5 * time.Second):
				t.Fatal("the unknown kid started no forced fetch")
			}

			// A second lookup joins the refresh in flight.
			w := &joinWatch{Context: context.Background(), waiting: make(chan struct{})}
			joined := make(chan error, 1)
			go func() {
				_, err := s.Lookup(w, "rsa2")
				joined <- err
			}()
			select {
			case <-w.waiting:
			case <-time.After(5 * time.Second):
				t.Fatal("the second lookup never waited for the refresh")
			}

			// request-1 gives up; then the fetch may go on.
			cancel()
			select {
			case err := <-first:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("the lookup that gave up = %v, want context.Canceled", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("cancelling the first lookup did not end it")
			}
			openGate.Do(func() { close(gate) })
			select {
			case err := <-joined:
				if err != nil {
					t.Fatalf("the lookup that joined the refresh: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the lookup that joined the refresh never returned")
			}
			if got := iss.hits.Load(); got != 2 {
				t.Errorf("fetches = %d, want 2 (initial + one refresh)", got)
			}
			mu.Lock()
			defer mu.Unlock()
			want := []fetch{{}, {forced: true, caller: tt.wantCaller, chosen: tt.wantChosen}}
			if diff := cmp.Diff(want, seen, cmp.AllowUnexported(fetch{})); diff != "" {
				t.Errorf("fetches and the values they carried (-want +got):\n%s", diff)
			}
		})
	}
}

// TestClose: Close stops every goroutine New started, including while a
// refresh is in flight and a lookup waits, and is idempotent.
func TestClose(t *testing.T) {
	iss := newIssuer(t, jwksDoc(kRSA1(t)))
	before := runtime.NumGoroutine()

	s, err := New(context.Background(), testConfig(iss.srv.URL, &results{}))
	if err != nil {
		t.Fatal(err)
	}
	iss.update(func(i *issuer) { i.delay = 10 * time.Second })
	lookupErr := make(chan error, 1)
	go func() {
		_, err := s.Lookup(context.Background(), "rsa2")
		lookupErr <- err
	}()
	waitFor(t, 2*time.Second, "the refresh to start", func() bool { return iss.hits.Load() == 2 })

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := <-lookupErr; err == nil {
		t.Errorf("Lookup waiting through Close returned a key")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	waitFor(t, 5*time.Second, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
	if s.Snapshot().Key("rsa1") == nil {
		t.Errorf("snapshot unreadable after Close")
	}
}

// TestLookupHitAllocs: the hit path allocates nothing.
func TestLookupHitAllocs(t *testing.T) {
	iss := newIssuer(t, jwksDoc(kRSA1(t)))
	s := newTestSet(t, testConfig(iss.srv.URL, &results{}))
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		if k, err := s.Lookup(ctx, "rsa1"); k == nil || err != nil {
			t.Fatal("miss")
		}
		if !s.Snapshot().Key("rsa1").Allows("RS256") {
			t.Fatal("not allowed")
		}
	})
	if allocs != 0 {
		t.Errorf("Lookup hit allocates %v times per call", allocs)
	}
}

func BenchmarkLookup(b *testing.B) {
	iss := newIssuer(b, jwksDoc(kRSA1(b), kRSA2(b), kEC(b)))
	s := newTestSet(b, testConfig(iss.srv.URL, &results{}))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if k, err := s.Lookup(ctx, "ec1"); k == nil || err != nil {
				b.Fatal("miss")
			}
		}
	})
}
