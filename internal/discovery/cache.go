package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// errClosed is returned by Get on a closed Cache that never loaded.
var errClosed = fmt.Errorf("%w: cache closed", ErrUnavailable)

// Cache keeps an issuer's metadata and refreshes it. Its methods are safe
// for concurrent use.
//
//   - The first Get fetches; concurrent first callers share that fetch.
//   - Metadata younger than the refresh interval is returned as is. Older
//     metadata is still returned at once, and a background refresh
//     starts (one at a time); it replaces the metadata only if it
//     succeeds.
//   - After a failed fetch, no new fetch starts for 10 s, whatever the
//     refresh interval; until one fetch has succeeded, Get returns the
//     last fetch error in that time.
//
// Fetches run under a context owned by the Cache, bounded by
// Config.Timeout; a caller's ctx only bounds its own wait, so a caller
// that gives up does not cancel the fetch others wait for. [Cache.Close]
// cancels a fetch in flight and waits for it.
type Cache struct {
	// Written once by NewCache (now also by tests before first use), then
	// only read.
	cfg     Config
	client  *http.Client
	tr      *http.Transport // the default client's; nil with Config.HTTPClient
	refresh time.Duration
	now     func() time.Time
	ctx     context.Context
	cancel  context.CancelFunc

	mu        sync.Mutex // guards the fields below
	md        *Metadata  // last good metadata; never modified once stored
	fetchedAt time.Time  // when md was fetched
	lastErr   error      // error of the last fetch if it failed, else nil
	failedAt  time.Time  // when the last failed fetch ended; zero after a success
	inflight  *fetchCall // the fetch in flight, or nil
	closed    bool
	wg        sync.WaitGroup // fetch goroutines; Add only under mu while !closed
}

// fetchCall is one fetch; done is closed when it ends.
type fetchCall struct {
	done chan struct{}
	md   *Metadata // written before done is closed
	err  error     // written before done is closed
}

// NewCache validates cfg and returns a Cache that has fetched nothing yet.
// refresh is how long fetched metadata is used before it is refreshed; 0
// means 1 hour, negative is an error. Call [Cache.Close] when done.
func NewCache(cfg Config, refresh time.Duration) (*Cache, error) {
	c, err := cfg.withDefaults()
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	switch {
	case refresh < 0:
		errs = append(errs, fmt.Errorf("discovery: refresh: must not be negative (0 means %v)", defaultRefresh))
	case refresh == 0:
		refresh = defaultRefresh
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cache := &Cache{cfg: c, client: c.HTTPClient, refresh: refresh, now: time.Now}
	if cache.client == nil {
		cache.client, cache.tr = defaultClient(nil, c.InsecureAllowHTTP, c.WrapTransport)
	}
	cache.ctx, cache.cancel = context.WithCancel(context.Background())
	return cache, nil
}

// Get returns the issuer's metadata, fetching it on first use and
// refreshing it as described on [Cache]. It fails closed: until a fetch
// has succeeded it returns an error (matching [ErrUnavailable],
// [ErrInvalid] or [ErrIssuerMismatch], or ctx's error if ctx ends first).
// The result is the caller's own copy.
func (c *Cache) Get(ctx context.Context) (*Metadata, error) {
	c.mu.Lock()
	now := c.now()
	md := c.md
	if md != nil && now.Sub(c.fetchedAt) < c.refresh {
		c.mu.Unlock()
		return md.clone(), nil
	}
	call := c.inflight
	if call == nil && !c.closed && (c.failedAt.IsZero() || now.Sub(c.failedAt) >= failureBackoff) {
		call = &fetchCall{done: make(chan struct{})}
		c.inflight = call
		c.wg.Add(1)
		go c.run(call)
	}
	lastErr := c.lastErr
	c.mu.Unlock()

	if md != nil {
		return md.clone(), nil // stale, but the last good; a refresh may be running
	}
	if call == nil {
		if lastErr == nil { // closed before any fetch
			return nil, errClosed
		}
		return nil, lastErr
	}
	select {
	case <-call.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("discovery: waiting for issuer metadata: %w", ctx.Err())
	}
	if call.err != nil {
		return nil, call.err
	}
	return call.md.clone(), nil
}

// run performs one fetch under the Cache's context and records it.
func (c *Cache) run(call *fetchCall) {
	defer c.wg.Done()
	md, err := fetch(c.ctx, &c.cfg, c.client)

	c.mu.Lock()
	now := c.now()
	if err == nil {
		c.md, c.fetchedAt = md, now
		c.lastErr, c.failedAt = nil, time.Time{}
	} else {
		c.lastErr, c.failedAt = err, now
	}
	c.inflight = nil
	c.mu.Unlock()

	call.md, call.err = md, err
	close(call.done)
}

// Close cancels a fetch in flight, waits for it, and stops further
// fetches. Get keeps returning the last good metadata, if any. Close is
// safe to call more than once; it returns nil.
func (c *Cache) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	if c.tr != nil {
		c.tr.CloseIdleConnections()
	}
	return nil
}
