package introspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/tokenguard/tokenguard/internal/tokencache"
)

// Client introspects tokens at one authorization server. It is safe for
// concurrent use. Create it with [New]; call [Client.Close] when done.
type Client struct {
	cfg    Config // written once by New, then read-only
	alg    jwa.SignatureAlgorithm
	client *http.Client
	tr     *http.Transport            // our own transport when cfg.HTTPClient is nil; closed by Close
	cache  *tokencache.Cache[*Result] // active answers
	neg    *tokencache.Cache[*Result] // inactive and failed: apart, so a spray cannot evict active answers
	flight flightGroup
	slots  chan struct{} // MaxConcurrent requests in flight
	rate   tokenBucket   // RateLimit requests a second

	closeOnce sync.Once
}

// New validates cfg and returns a Client. It makes no network call: an
// unreachable server is an ErrUnavailable at introspection time, not a
// configuration error. The error joins every problem found, each naming
// its field.
func New(cfg Config) (*Client, error) {
	cfg, alg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	cache, err := tokencache.New[*Result](cfg.CacheSize)
	if err != nil {
		return nil, fmt.Errorf("introspect: CacheSize: %w", err)
	}
	neg, err := tokencache.New[*Result](cfg.CacheSize)
	if err != nil {
		return nil, fmt.Errorf("introspect: CacheSize: %w", err)
	}
	c := &Client{
		cfg: cfg, alg: alg, cache: cache, neg: neg, client: cfg.HTTPClient,
		slots: make(chan struct{}, cfg.MaxConcurrent),
		rate:  tokenBucket{rate: cfg.RateLimit, burst: max(cfg.RateLimit, 1), tokens: max(cfg.RateLimit, 1)},
	}
	if c.client == nil {
		c.client, c.tr = defaultClient(cfg.WrapTransport)
		c.client.Timeout = cfg.Timeout
	}
	return c, nil
}

// Close cancels requests in flight, waits for their goroutines to end and
// drops idle connections of the default client. Introspect calls after
// Close that miss the cache return ErrUnavailable. Close is idempotent.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		c.flight.close()
		if c.tr != nil {
			c.tr.CloseIdleConnections()
		}
	})
}

// Introspect returns the introspection result for an active token that
// passed every check, or an error wrapping ErrInactive, ErrUnavailable or
// ErrInvalidResponse (see the package doc). The Result may be shared with
// other callers and must not be modified.
//
// Answers are cached; a miss sends one request however many callers
// want the same token at once. ctx bounds only this caller's wait. An
// empty token is ErrInactive without a request.
func (c *Client) Introspect(ctx context.Context, token string) (*Result, error) {
	return c.IntrospectWithin(ctx, token, 0)
}

// IntrospectWithin is Introspect for callers that need a fresher answer
// than the cache's MaxCacheAge: a cached active answer older than maxAge
// is not reused, the server is asked again (for revocation-sensitive
// uses). An inactive answer is always reused while cached. maxAge <= 0
// means any cached answer will do.
func (c *Client) IntrospectWithin(ctx context.Context, token string, maxAge time.Duration) (*Result, error) {
	if token == "" {
		return nil, fmt.Errorf("%w: empty token", ErrInactive)
	}
	key := tokencache.KeyOf(token)
	now := c.cfg.Now()
	if r, ok := c.cache.Get(key, now); ok && c.fresh(r, maxAge) {
		return answer(r)
	}
	if r, ok := c.neg.Get(key, now); ok {
		return answer(r)
	}
	r, err := c.flight.do(ctx, key, func(ctx context.Context) (*Result, error) {
		return c.lookup(ctx, key, token, maxAge)
	})
	if err != nil {
		return nil, err
	}
	return answer(r)
}

// fresh reports whether a cached verdict may answer a caller that wants
// one no older than maxAge.
func (c *Client) fresh(r *Result, maxAge time.Duration) bool {
	return maxAge <= 0 || r == inactive || c.cfg.Now().Sub(r.fetched) <= maxAge
}

// answer turns a verdict (a cached or fresh Result) into Introspect's
// return values.
func answer(r *Result) (*Result, error) {
	switch {
	case r == failed:
		return nil, fmt.Errorf("%w: the last introspection of this token failed (remembered for FailureCacheAge)", ErrUnavailable)
	case !r.Active:
		return nil, ErrInactive
	}
	return r, nil
}

// inactive is the cached verdict for every inactive token, and failed for
// every token whose introspection failed.
var inactive, failed = &Result{}, &Result{}

// lookup runs on a flight goroutine, under the flight's context: it checks the cache again (a flight
// that ended just before this one started may have filled it), asks the
// server, reports the attempt, and caches a verdict. It returns a Result,
// inactive, or an ErrUnavailable / ErrInvalidResponse error.
func (c *Client) lookup(ctx context.Context, key tokencache.Key, token string, maxAge time.Duration) (*Result, error) {
	now := c.cfg.Now()
	if r, ok := c.cache.Get(key, now); ok && c.fresh(r, maxAge) {
		return r, nil
	}
	if r, ok := c.neg.Get(key, now); ok {
		return r, nil
	}
	throttled := func(why string) (*Result, error) {
		if c.cfg.OnRequest != nil {
			c.cfg.OnRequest(ResultThrottled)
		}
		return nil, fmt.Errorf("%w: %s", ErrUnavailable, why)
	}
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	default:
		return throttled(fmt.Sprintf("%d introspection requests already in flight", c.cfg.MaxConcurrent))
	}
	if !c.rate.take(now) {
		return throttled(fmt.Sprintf("more than %g introspection requests a second", c.cfg.RateLimit))
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()

	r, result, err := c.request(ctx, token)
	if c.cfg.OnRequest != nil {
		c.cfg.OnRequest(result)
	}
	now = c.cfg.Now()
	if err != nil {
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// Remembered briefly, so a token whose introspection fails
			// does not send a call per request while the endpoint is
			// down. A cancelled call (every waiter left, or Close) says
			// nothing about the endpoint and is not remembered.
			c.neg.Add(key, failed, now.Add(c.cfg.FailureCacheAge), now)
		}
		return nil, err
	}
	if r == inactive {
		c.neg.Add(key, inactive, now.Add(c.cfg.NegativeCacheAge), now)
		return inactive, nil
	}
	r.fetched = now
	expires := now.Add(c.cfg.MaxCacheAge)
	if !r.ExpiresAt.IsZero() && r.ExpiresAt.Before(expires) {
		expires = r.ExpiresAt
	}
	c.cache.Add(key, r, expires, now)
	return r, nil
}

// request makes one introspection request and judges the answer. It
// returns the verdict (a checked active Result, or inactive), the
// OnRequest label, and an error for no verdict.
func (c *Client) request(ctx context.Context, token string) (*Result, string, error) {
	form := url.Values{
		"token":           {token},
		"token_type_hint": {"access_token"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.Endpoint, nil)
	if err != nil {
		return nil, ResultError, fmt.Errorf("%w: building request: %w", ErrUnavailable, err)
	}
	if err := c.authenticate(req, form); err != nil {
		return nil, ResultError, fmt.Errorf("%w: client authentication: %w", ErrUnavailable, err)
	}
	body := form.Encode()
	req.Body = io.NopCloser(strings.NewReader(body))
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.cfg.ResponseFormat == ResponseJWT {
		req.Header.Set("Accept", mediaTypeJWT)
	} else {
		req.Header.Set("Accept", "application/json")
	}

	res, err := c.client.Do(req)
	if err != nil {
		// *url.Error carries the URL, never the form body.
		return nil, ResultError, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4<<10))
		return nil, ResultHTTPError, fmt.Errorf("%w: unexpected HTTP status %d", ErrUnavailable, res.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(res.Body, c.cfg.MaxResponseSize+1))
	if err != nil {
		return nil, ResultError, fmt.Errorf("%w: reading response: %w", ErrUnavailable, err)
	}
	if int64(len(raw)) > c.cfg.MaxResponseSize {
		return nil, ResultInvalid, fmt.Errorf("%w: response larger than %d bytes", ErrUnavailable, c.cfg.MaxResponseSize)
	}
	var r *Result
	if c.cfg.ResponseFormat == ResponseJWT {
		// A signed answer's token_introspection goes through the same
		// parser and the same checks as a JSON answer.
		var result string
		if r, result, err = c.verifySigned(ctx, res.Header.Get("Content-Type"), raw); err != nil {
			return nil, result, err
		}
	} else if r, err = parseResponse(raw); err != nil {
		return nil, ResultInvalid, fmt.Errorf("%w: %w", ErrInvalidResponse, err)
	}
	if !c.valid(r, c.cfg.Now()) {
		return inactive, ResultInactive, nil
	}
	return r, ResultActive, nil
}

// valid reports whether a parsed response describes a token this resource
// server accepts: active, from the configured issuer, for this audience,
// and within its validity window (with leeway).
func (c *Client) valid(r *Result, now time.Time) bool {
	switch {
	case !r.Active:
		return false
	case r.hasIssuer && r.Issuer != c.cfg.Issuer:
		return false
	case r.Audience != nil && !slices.Contains(r.Audience, c.cfg.Audience):
		return false
	case !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt.Add(c.cfg.Leeway)):
		return false
	case !r.NotBefore.IsZero() && now.Add(c.cfg.Leeway).Before(r.NotBefore):
		return false
	}
	return true
}

// tokenBucket is a rate limiter: rate tokens a second, at most burst
// saved up. The zero value refuses everything.
type tokenBucket struct {
	mu          sync.Mutex // guards tokens and last
	rate, burst float64    // read-only after New
	tokens      float64
	last        time.Time
}

// take spends a token if one is there at now.
func (b *tokenBucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		if d := now.Sub(b.last); d > 0 {
			b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		}
	}
	if now.After(b.last) {
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
