package jwks

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// maxFetchTime bounds one fetch, body included, whatever client is used:
// httprc runs fetches on a single worker, and a server that never finishes
// its answer must not stall every later refresh.
const maxFetchTime = 30 * time.Second

// fetcher is the httprc.HTTPClient for a Set. httprc builds each request
// itself, under its worker's context, so per-fetch choices are made here:
// the Cache-Control: no-cache header and the values chosen by
// Config.RefreshContext on unknown-kid refreshes, the fetch deadline, and
// reporting of attempts that never reach the transformer (no response, or
// a status other than 200).
type fetcher struct {
	client *http.Client
	set    *Set

	// forced is set while an unknown-kid refresh is in flight, nil
	// otherwise. That refresh must bypass caches between us and the
	// issuer, or it would return the same stale document, and it carries
	// the values Config.RefreshContext chose. A scheduled fetch that
	// happens to run meanwhile is treated the same, which is harmless.
	forced atomic.Pointer[forcedRefresh]
}

// forcedRefresh describes the unknown-kid refresh in flight.
type forcedRefresh struct {
	// values is what Config.RefreshContext returned for the lookup that
	// started the refresh, without its cancellation
	// (context.WithoutCancel), or nil without a hook. Its values, such as
	// a trace span, reach the fetch's request, so a tracing transport
	// records the fetch as a child of that caller's span. Nothing else of
	// the caller's does.
	values context.Context
}

// Do implements httprc.HTTPClient. It never modifies req.
func (f *fetcher) Do(req *http.Request) (*http.Response, error) {
	forced := f.forced.Load()
	ctx, cancel := fetchContext(req.Context(), forced)
	out := req.Clone(ctx)
	out.Header.Set("Accept", "application/jwk-set+json, application/json")
	if forced != nil {
		out.Header.Set("Cache-Control", "no-cache")
	}
	res, err := f.client.Do(out)
	if err != nil {
		cancel()
		f.set.report(ResultNetworkError, "request failed", err)
		return nil, fmt.Errorf("jwks: fetching JWKS: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		f.set.report(ResultHTTPError, fmt.Sprintf("unexpected HTTP status %d", res.StatusCode), nil)
	}
	res.Body = &cancelOnClose{ReadCloser: res.Body, cancel: cancel}
	return res, nil
}

// fetchContext returns the context of one fetch: it ends when base (the
// httprc worker's, cancelled by Close) ends or after maxFetchTime. During
// an unknown-kid refresh whose lookup had Config.RefreshContext choose
// values, its values are those; no lookup's cancellation or deadline ever
// reaches the fetch, which other lookups may be waiting for.
func fetchContext(base context.Context, forced *forcedRefresh) (context.Context, context.CancelFunc) {
	if forced == nil || forced.values == nil {
		return context.WithTimeout(base, maxFetchTime)
	}
	deadline := time.Now().Add(maxFetchTime)
	if d, ok := base.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(forced.values, deadline)
	stop := context.AfterFunc(base, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// cancelOnClose releases a fetch's deadline when httprc closes the body.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// transform is the httprc.Transformer of a Set's resource; httprc calls it
// for each 200 response. It reads at most MaxBodySize bytes, builds a
// snapshot, publishes it, and reports the attempt. On error the current
// snapshot stays.
func (s *Set) transform(_ context.Context, res *http.Response) (*Snapshot, error) {
	body, err := io.ReadAll(io.LimitReader(res.Body, s.cfg.MaxBodySize+1))
	if err != nil {
		s.report(ResultNetworkError, "reading the response body failed", err)
		return nil, fmt.Errorf("jwks: reading JWKS body: %w", err)
	}
	if int64(len(body)) > s.cfg.MaxBodySize {
		s.report(ResultInvalid, errTooLarge.Error(), nil)
		return nil, errTooLarge
	}

	// Builds are serialised so a snapshot is always built against the one
	// it replaces (for *Key reuse). httprc runs one worker, so this lock
	// is uncontended; it keeps the invariant if that ever changes.
	s.buildMu.Lock()
	defer s.buildMu.Unlock()
	snap, err := buildSnapshot(body, &buildOptions{
		allowed: s.allowed,
		maxKeys: s.cfg.MaxKeys,
		log:     s.log,
		url:     s.logURL,
		prev:    s.snap.Load(),
		now:     time.Now(),
	})
	if err != nil {
		s.report(ResultInvalid, err.Error(), nil)
		return nil, err
	}
	s.snap.Store(snap)
	s.loadedOnce.Do(func() { close(s.loaded) })
	s.report(ResultSuccess, "", nil)
	return snap, nil
}

// report records the outcome of one fetch attempt: OnRefresh, a log line
// for failures, and the signal that the first attempt is over. Attempts
// cut short by Close are not reported.
func (s *Set) report(result, reason string, err error) {
	if s.ctx.Err() != nil {
		return
	}
	if result != ResultSuccess {
		args := []any{"url", s.logURL, "result", result, "reason", reason}
		if err != nil {
			args = append(args, "err", err)
		}
		if s.snap.Load() == nil {
			s.log.Error("jwks: JWKS fetch failed; no keys loaded yet", args...)
		} else {
			s.log.Warn("jwks: JWKS refresh failed; keeping the last good keys", args...)
		}
	}
	if s.cfg.OnRefresh != nil {
		s.cfg.OnRefresh(result)
	}
	s.attemptedOnce.Do(func() { close(s.attempted) })
}
