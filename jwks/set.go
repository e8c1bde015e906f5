package jwks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/httprc/v3"
)

// Errors returned by [Set.Lookup]. Callers branch on them with errors.Is.
var (
	// ErrNotLoaded means no JWKS has ever been loaded: the caller cannot
	// decide, and a guard answers 503.
	ErrNotLoaded = errors.New("jwks: no keys loaded yet")
	// ErrUnknownKID means the "kid" is not in the JWKS after the refresh
	// this lookup was allowed, or that the rate limiter allowed none: the
	// token cannot be verified, and a guard answers 401.
	ErrUnknownKID = errors.New("jwks: unknown key ID")
)

const (
	// unknownKIDMemory bounds the map of recently unknown kids.
	unknownKIDMemory = 1024
	// firstRetryDelay and maxRetryDelay shape the backoff of the first
	// load; later failures wait for httprc's schedule (MinRefreshInterval).
	firstRetryDelay = 100 * time.Millisecond
	maxRetryDelay   = 30 * time.Second
)

// Set is an auto-refreshing JWKS: it fetches the document at
// [Config.URL], applies key hygiene and publishes the result as an
// immutable [Snapshot]. Its methods are safe for concurrent use. A Set
// runs background goroutines until [Set.Close].
type Set struct {
	// Written once by New, then only read.
	cfg     Config
	allowed algSet
	log     *slog.Logger
	logURL  string // cfg.URL, redacted for logs
	ctx     context.Context
	cancel  context.CancelFunc
	ctl     httprc.Controller
	res     *httprc.ResourceBase[*Snapshot]
	fetch   *fetcher
	tr      *http.Transport // the default client's; nil with Config.HTTPClient

	// snap is the current snapshot; nil until the first successful load.
	// An atomic.Pointer, not a mutex: it is read on every request and
	// replaced rarely, and a snapshot is never modified once stored.
	snap atomic.Pointer[Snapshot]

	buildMu sync.Mutex // serialises building and storing snapshots

	loaded        chan struct{} // closed after the first successful load
	loadedOnce    sync.Once
	attempted     chan struct{} // closed after the first fetch attempt
	attemptedOnce sync.Once

	mu         sync.Mutex           // guards the three fields below
	inflight   *refreshCall         // the unknown-kid refresh in flight, or nil
	lastForced time.Time            // when the last unknown-kid refresh started
	unknown    map[string]time.Time // recently unknown kids → when they may trigger a refresh again

	wg        sync.WaitGroup // the Set's own goroutines
	closeOnce sync.Once
	closeErr  error
}

// refreshCall is one unknown-kid refresh; done is closed when it ends.
type refreshCall struct {
	done chan struct{}
	err  error // written before done is closed
}

// New validates cfg, starts fetching the JWKS in the background and waits
// up to cfg.InitialWait (or until ctx is done) for the first load.
//
// Configuration problems are returned together (errors.Join), each naming
// its field ("jwks: URL: must be https ..."). An unreachable or failing
// server is not an error: New returns the Set, which keeps retrying with
// backoff, and [Set.Ready] reports false until a load succeeds.
//
// ctx bounds only New's wait. Background work runs under a context owned
// by the Set (it keeps ctx's values, not its cancellation) and stops at
// [Set.Close], which the caller must call.
func New(ctx context.Context, cfg Config) (*Set, error) {
	c, allowed, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(c.URL) // checked by withDefaults
	s := &Set{
		cfg:       c,
		allowed:   allowed,
		log:       c.Logger,
		logURL:    u.Redacted(),
		loaded:    make(chan struct{}),
		attempted: make(chan struct{}),
		unknown:   make(map[string]time.Time),
	}
	client := c.HTTPClient
	if client == nil {
		client, s.tr = defaultClient(c.InsecureAllowHTTP, c.WrapTransport)
	}
	s.fetch = &fetcher{client: client, set: s}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))

	s.res, err = httprc.NewResource[*Snapshot](c.URL, httprc.TransformFunc[*Snapshot](s.transform),
		httprc.WithHTTPClient(s.fetch),
		httprc.WithMinInterval(c.MinRefreshInterval),
		httprc.WithMaxInterval(c.MaxRefreshInterval),
	)
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("jwks: URL: %w", err)
	}
	// One worker: a single resource needs no more, and it serialises
	// fetches, so snapshots are published in the order fetched.
	s.ctl, err = httprc.NewClient(
		httprc.WithWorkers(1),
		httprc.WithHTTPClient(s.fetch),
		httprc.WithWhitelist(httprc.NewMapWhitelist().Add(c.URL)),
	).Start(s.ctx)
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("jwks: starting the refresher: %w", err)
	}
	if err := s.ctl.Add(s.ctx, s.res, httprc.WithWaitReady(false)); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("jwks: starting the refresher: %w", err)
	}
	s.wg.Add(1)
	go s.retryFirstLoad()

	if c.InitialWait > 0 {
		t := time.NewTimer(c.InitialWait)
		defer t.Stop()
		select {
		case <-s.loaded:
		case <-t.C:
		case <-ctx.Done():
		}
	}
	return s, nil
}

// retryFirstLoad retries the first load with exponential backoff and
// jitter until it succeeds. httprc retries a failed fetch only after
// MinRefreshInterval (minutes), which is too slow while no keys at all
// are loaded and every request is answered 503.
func (s *Set) retryFirstLoad() {
	defer s.wg.Done()
	select { // httprc's own first fetch
	case <-s.attempted:
	case <-s.loaded:
		return
	case <-s.ctx.Done():
		return
	}
	delay := firstRetryDelay
	limit := min(maxRetryDelay, s.cfg.MinRefreshInterval)
	for s.snap.Load() == nil {
		t := time.NewTimer(jitter(delay))
		select {
		case <-t.C:
		case <-s.loaded:
			t.Stop()
			return
		case <-s.ctx.Done():
			t.Stop()
			return
		}
		_ = s.ctl.Refresh(s.ctx, s.cfg.URL) // the outcome is reported by the fetch itself
		delay = min(2*delay, limit)
	}
}

// jitter spreads d over [0.8d, 1.2d) so replicas that failed together do
// not retry together.
func jitter(d time.Duration) time.Duration {
	return d*4/5 + rand.N(d*2/5+1)
}

// Snapshot returns the current snapshot, or nil before the first
// successful load. It is one atomic load.
func (s *Set) Snapshot() *Snapshot { return s.snap.Load() }

// Ready reports whether a JWKS has been loaded. It stays true through
// later failed refreshes, which keep the last good keys.
func (s *Set) Ready() bool { return s.snap.Load() != nil }

// Lookup returns the key for kid ("" for a JWS without "kid", which
// matches only a set of exactly one key).
//
// A hit costs one atomic load and one map lookup, with no lock and no
// allocation. On a miss:
//   - before the first load, it returns [ErrNotLoaded];
//   - for kid == "", or a kid found unknown within the last
//     RefreshRateLimit, it returns [ErrUnknownKID] at once;
//   - otherwise it joins the refresh in flight, or starts one if the rate
//     limiter allows (at most one per RefreshRateLimit; else
//     ErrUnknownKID at once), and waits for it at most UnknownKIDWait.
//
// The refresh runs under the Set's context, not ctx: a caller that gives
// up returns ctx's error but does not cancel the refresh for the others.
// No value of ctx reaches the refresh, except what
// [Config.RefreshContext] picks out of it when this call starts one (a
// trace span, so that a tracing transport records the fetch as a child
// of the caller's span).
func (s *Set) Lookup(ctx context.Context, kid string) (*Key, error) {
	snap := s.snap.Load()
	if snap != nil {
		if k := snap.Key(kid); k != nil {
			return k, nil
		}
	}
	return s.lookupMiss(ctx, snap, kid)
}

// lookupMiss is the slow path of Lookup.
func (s *Set) lookupMiss(ctx context.Context, snap *Snapshot, kid string) (*Key, error) {
	if snap == nil {
		return nil, ErrNotLoaded
	}
	if kid == "" {
		return nil, ErrUnknownKID // only a one-key set matches no kid; a refresh cannot help
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("jwks: lookup: %w", err)
	}

	s.mu.Lock()
	now := time.Now()
	if until, ok := s.unknown[kid]; ok {
		if now.Before(until) {
			s.mu.Unlock()
			return nil, ErrUnknownKID
		}
		delete(s.unknown, kid)
	}
	c := s.inflight
	if c == nil {
		if !s.lastForced.IsZero() && now.Sub(s.lastForced) < s.cfg.RefreshRateLimit {
			s.rememberUnknownLocked(kid, now)
			s.mu.Unlock()
			return nil, ErrUnknownKID
		}
		c = &refreshCall{done: make(chan struct{})}
		s.inflight = c
		s.lastForced = now
		s.wg.Add(1)
		s.mu.Unlock()
		s.startRefresh(ctx, c)
	} else {
		s.mu.Unlock()
	}

	t := time.NewTimer(s.cfg.UnknownKIDWait)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		return nil, fmt.Errorf("%w: key refresh still running after %v", ErrUnknownKID, s.cfg.UnknownKIDWait)
	case <-ctx.Done():
		return nil, fmt.Errorf("jwks: waiting for a key refresh: %w", ctx.Err())
	case <-s.ctx.Done():
		return nil, fmt.Errorf("%w: key set closed", ErrUnknownKID)
	}
	if k := s.snap.Load().Key(kid); k != nil {
		return k, nil
	}
	s.mu.Lock()
	s.rememberUnknownLocked(kid, time.Now())
	s.mu.Unlock()
	if c.err != nil {
		return nil, fmt.Errorf("%w (refresh failed: %w)", ErrUnknownKID, c.err)
	}
	return nil, ErrUnknownKID
}

// rememberUnknownLocked records kid as unknown for RefreshRateLimit. The
// map is bounded: when full, expired entries go first, then arbitrary
// ones. Forgetting early costs at most a refresh the limiter still bounds.
// s.mu must be held.
func (s *Set) rememberUnknownLocked(kid string, now time.Time) {
	if len(s.unknown) >= unknownKIDMemory {
		for k, until := range s.unknown {
			if !now.Before(until) {
				delete(s.unknown, k)
			}
		}
		for k := range s.unknown {
			if len(s.unknown) < unknownKIDMemory {
				break
			}
			delete(s.unknown, k)
		}
	}
	s.unknown[kid] = now.Add(s.cfg.RefreshRateLimit)
}

// startRefresh starts the unknown-kid refresh c, which the lookup under
// ctx has just put in flight (s.inflight, s.wg). Config.RefreshContext
// runs here, outside s.mu, on the lookup's goroutine, so it never sees
// ctx after the lookup returned; other lookups join c meanwhile. Should
// the hook panic, the refresh still starts, carrying no value, so c ends
// and Close does not hang; the panic goes on up the lookup's stack.
func (s *Set) startRefresh(ctx context.Context, c *refreshCall) {
	var values context.Context
	defer func() { go s.refreshForUnknownKID(c, values) }()
	values = s.refreshValues(ctx)
}

// refreshValues returns the context whose values the unknown-kid refresh
// started by a lookup under ctx carries: Config.RefreshContext's choice,
// without its cancellation, or nil (none) without a hook or for a nil
// result.
func (s *Set) refreshValues(ctx context.Context) context.Context {
	if s.cfg.RefreshContext == nil {
		return nil
	}
	v := s.cfg.RefreshContext(ctx)
	if v == nil {
		return nil
	}
	return context.WithoutCancel(v)
}

// refreshForUnknownKID runs one unknown-kid refresh through httprc, with
// Cache-Control: no-cache, under the Set's context; the fetch carries the
// values of values (see refreshValues), if not nil.
func (s *Set) refreshForUnknownKID(c *refreshCall, values context.Context) {
	defer s.wg.Done()
	s.fetch.forced.Store(&forcedRefresh{values: values})
	err := s.ctl.Refresh(s.ctx, s.cfg.URL)
	s.fetch.forced.Store(nil)

	s.mu.Lock()
	s.inflight = nil
	s.mu.Unlock()
	c.err = err
	close(c.done)
}

// Close stops every goroutine New started, including httprc's, and waits
// for them. It is safe to call more than once; later calls return the
// first call's result. After Close the last snapshot stays readable, but
// nothing refreshes it.
func (s *Set) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		if s.ctl != nil {
			if err := s.ctl.ShutdownContext(context.Background()); err != nil {
				s.closeErr = fmt.Errorf("jwks: stopping the refresher: %w", err)
			}
		}
		s.wg.Wait()
		if s.tr != nil {
			s.tr.CloseIdleConnections()
		}
	})
	return s.closeErr
}
