package gateway

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenguard/tokenguard/bff"
	bffredis "github.com/tokenguard/tokenguard/bff/redisstore"
	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/dpop/redisstore"
	"github.com/tokenguard/tokenguard/middleware"
)

// A generation is what one configuration builds: the guard, the token
// handler, the reverse proxy and the handler chain in front of them. A
// reload builds a new generation and makes it current in one atomic
// store; requests that started on the old one finish on it, and the old
// one is closed when the last of them ends (an upgraded connection counts
// until it closes).
//
// What a reload must not lose lives in the Gateway and is handed from one
// generation to the next (shared): the in-memory DPoP replay store (a
// proof used before the reload stays used), the in-memory session store
// and the key sealing it (sessions and logins in progress survive), the
// DPoP nonce key (issued nonces stay valid), the Redis clients whose URL
// did not change, the concurrency limit, and the metrics.
type generation struct {
	cfg         *config
	log         *slog.Logger
	guard       *middleware.Guard
	th          *bff.Handler // nil without the bff block
	handler     http.Handler // access log, limits, hygiene, routes, guards, proxy
	upstream    *http.Transport
	replay      sharedReplayStore // the Redis replay store in use; nil: in memory
	replayGates bool              // readiness waits on replay (DPoP required)

	// refs is 1 while the generation is current, plus one per request
	// running on it; at 0 it is closed and can never be taken again.
	refs atomic.Int64

	closeOnce sync.Once
	closed    atomic.Bool // close has run
	// stores are the Redis clients it uses, shared with other
	// generations: shared.stores closes each when the last user closes.
	stores []io.Closer
	set    *storeSet
}

// shared is what every generation of one Gateway uses; a reload keeps it.
// Guarded by Gateway.reloadMu (stores has its own lock).
type shared struct {
	memReplay *dpop.MemoryReplayStore // the in-memory replay store, whichever generation uses it
	sessions  *bff.MemoryStore        // the in-memory session store

	redisReplay    *redisstore.Store // the Redis replay store in use, and its URL
	redisReplayURL string
	sessionsRS     *bffredis.Store // the Redis session store in use, and its URL
	sessionURL     string
	replay         dpop.ReplayStore // the replay store the current configuration uses; nil: DPoP off

	stores *storeSet

	// processKey seals in-memory sessions and login cookies when no
	// session_key is set, nonceKey makes DPoP nonces when no
	// TOKENGUARD_DPOP_NONCE_SECRETS are: one random key per process, as
	// before, but the same across reloads.
	processKey, nonceKey []byte
}

func newShared() *shared {
	s := &shared{processKey: make([]byte, bff.SessionKeySize), nonceKey: make([]byte, dpop.MinNonceSecretSize), stores: newStoreSet()}
	_, _ = rand.Read(s.processKey)
	_, _ = rand.Read(s.nonceKey)
	// Made once, before any configuration: every generation uses the same
	// ones (and the sessions gauge counts this store), so nothing a
	// refused reload built is left pointed at.
	s.memReplay, _ = dpop.NewMemoryReplayStore(dpop.DefaultReplayStoreSize)
	s.sessions, _ = bff.NewMemoryStore(0)
	return s
}

// pending is what building a generation opened or chose that the current
// one does not have yet: put in place by commit, closed by abandon.
type pending struct {
	replay     dpop.ReplayStore  // the generation's replay store (before wrapping); nil: DPoP off
	redis      *redisstore.Store // the Redis replay store it uses, if any
	redisURL   string
	openedRS   bool            // redis was opened for it
	sessions   *bffredis.Store // the Redis session store it uses, if any
	sessionURL string
	openedSS   bool // sessions was opened for it
	memQuota   int  // the in-memory replay store's key quota, when it uses that store
	certs      *certReloader
}

// build makes a generation from c on what s shares. It does no network
// I/O of its own; the guard starts loading its issuers' keys. Nothing is
// put in place: on success, commit (or abandon) the pending part.
func (g *Gateway) build(c *config, s *shared, log *slog.Logger) (_ *generation, _ *pending, err error) {
	gen := &generation{cfg: c, log: log}
	p := &pending{}
	defer func() {
		if err != nil {
			gen.closeParts()
			p.abandon()
		}
	}()
	c.logDPoPNotes(log)
	mc := c.guardConfig(log, g.reg)
	mc.StartupWait = -1 // Start and reload wait, with /readyz served meanwhile
	if g.tracer != nil {
		// Only then: a nil tracer's method value would not be a nil func.
		mc.WrapTransport = g.tracer.transport
		mc.JWKSRefreshContext = jwksRefreshContext
	}
	if err := c.loadIssuerKeys(&mc); err != nil {
		return nil, nil, err
	}
	if c.DPoPNonce && len(mc.DPoP.NonceSecrets) == 0 {
		mc.DPoP.NonceSecrets = [][]byte{s.nonceKey}
	}
	if c.DPoPMode != "disabled" {
		store, err := g.replayStore(c, s, p, gen)
		if err != nil {
			return nil, nil, err
		}
		mc.DPoP.ReplayStore = g.tracer.replayStore(store)
	}
	if gen.guard, err = middleware.New(context.Background(), mc); err != nil {
		return nil, nil, c.guardError(err)
	}
	if c.BFF != nil {
		var store bff.Store
		switch {
		case c.BFF.SessionStore == "":
			store = s.sessions
		case c.BFF.SessionStore == s.sessionURL && s.sessionsRS != nil:
			p.sessions, p.sessionURL = s.sessionsRS, s.sessionURL
			store = p.sessions
		default:
			if p.sessions, err = c.openSessionStore(); err != nil {
				return nil, nil, err
			}
			p.openedSS, p.sessionURL = true, c.BFF.SessionStore
			store = p.sessions
		}
		var nonce func() string
		if c.BFF.DPoP && c.DPoPNonce {
			// The guard's own nonces (same secrets, same lifetime), so
			// the proofs the token handler makes pass its check.
			n, err := dpop.NewNonces(mc.DPoP.NonceSecrets, mc.DPoP.NonceLifetime)
			if err != nil {
				return nil, nil, c.guardError(err)
			}
			nonce = func() string { return n.Issue(time.Now()) }
		}
		if gen.th, err = c.newBFF(log, g.reg, store, s.processKey, nonce); err != nil {
			return nil, nil, err
		}
	}
	var proxy http.Handler = notFoundHandler // forward_auth alone: nothing is proxied
	if c.Upstream != nil {
		rp := newProxy(c, log)
		gen.upstream = rp.Transport.(*http.Transport)
		if err := instrumentUpstream(rp, g.reg); err != nil {
			return nil, nil, err
		}
		rp.Transport = g.tracer.transport("upstream", rp.Transport)
		proxy = rp
	}
	h, err := newProxyHandler(c, gen.guard, gen.th, proxy, log)
	if err != nil {
		return nil, nil, err
	}
	gen.handler = accessLog(g.tracer.serverSpan(refuseAmbiguousFraming(g.limiter.wrap(h))), log, &g.inflight, c.ResponseWriteTimeout)
	if c.TLS != nil {
		if p.certs, err = newCertReloader(c.TLS.CertFile, c.TLS.KeyFile, log); err != nil {
			return nil, nil, &ConfigError{File: c.File, Err: err, Fields: []*FieldError{{Line: c.TLS.Line, Key: "tls.cert_file", Msg: err.Error()}}}
		}
	}
	gen.refs.Store(1)
	return gen, p, nil
}

// replayStore returns the DPoP replay store for a generation of c: the
// shared memory store (its quota set to c's at commit), the Redis store in
// use when the URL is the same, or a new Redis store; wrapped so that the
// stores reloads replaced are still asked (handoverReplayStore).
func (g *Gateway) replayStore(c *config, s *shared, p *pending, gen *generation) (dpop.ReplayStore, error) {
	switch {
	case c.ReplayStore == "":
		q := cmp.Or(c.ReplayKeyQuota, dpop.DefaultKeyQuota(dpop.DefaultReplayStoreSize))
		if q > dpop.DefaultReplayStoreSize {
			return nil, c.guardError(fmt.Errorf("middleware: DPoP.ReplayKeyQuota: must be at most the store's size, %d", dpop.DefaultReplayStoreSize))
		}
		p.replay, p.memQuota = s.memReplay, q
	case c.ReplayStore == s.redisReplayURL && s.redisReplay != nil:
		p.redis, p.redisURL = s.redisReplay, s.redisReplayURL
		p.replay = p.redis
	default:
		r, err := redisstore.NewFromURL(c.ReplayStore, redisstore.Options{KeyQuota: c.ReplayKeyQuota})
		if err != nil {
			return nil, c.replayStoreError(err)
		}
		p.redis, p.redisURL, p.openedRS = r, c.ReplayStore, true
		p.replay = r
	}
	if p.redis != nil {
		gen.replay = p.redis
		gen.replayGates = c.DPoPMode == "required"
	}
	return &handoverReplayStore{ReplayStore: p.replay, set: s.stores}, nil
}

// commit makes p's parts the shared ones and gen their user. Called with
// reloadMu held, when gen becomes current; nothing here can fail.
func (p *pending) commit(s *shared, gen *generation) {
	if p.replay == s.memReplay && p.memQuota > 0 {
		_ = s.memReplay.SetKeyQuota(p.memQuota) // replayStore checked the range
	}
	gen.set = s.stores
	if p.redis != nil {
		gen.stores = append(gen.stores, p.redis)
	}
	if p.sessions != nil {
		gen.stores = append(gen.stores, p.sessions)
	}
	s.stores.use(gen.stores)
	if s.replay != nil && s.replay != p.replay {
		// The replay store changes: later generations still ask the
		// one in use until its proofs have expired.
		var closer io.Closer
		if s.redisReplay != nil && s.replay == dpop.ReplayStore(s.redisReplay) {
			closer = s.redisReplay
		}
		s.stores.replaced(s.replay, closer)
	}
	if p.replay != nil {
		s.replay = p.replay
	}
	s.redisReplay, s.redisReplayURL = p.redis, p.redisURL
	s.sessionsRS, s.sessionURL = p.sessions, p.sessionURL
}

// abandon closes what building opened; the shared parts stay.
func (p *pending) abandon() {
	if p.openedRS {
		_ = p.redis.Close()
	}
	if p.openedSS {
		_ = p.sessions.Close()
	}
}

// acquire takes a reference for one request; false once the generation
// has closed (a newer one is current then).
func (gen *generation) acquire() bool {
	for {
		n := gen.refs.Load()
		if n == 0 {
			return false
		}
		if gen.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference; the last one closes the generation.
func (gen *generation) release() {
	if gen.refs.Add(-1) == 0 {
		go gen.close()
	}
}

// close stops the generation's guard and token handler, drops its idle
// upstream connections and gives up its use of the shared stores, which
// close when nothing needs them (see storeSet). Safe to call more than
// once, and while requests still run on it (Shutdown): they finish on
// what they hold.
func (gen *generation) close() error {
	var err error
	gen.closeOnce.Do(func() {
		defer gen.closed.Store(true)
		err = gen.closeParts()
		if gen.set != nil {
			gen.set.release(gen.stores)
		}
	})
	return err
}

// closeParts closes what the generation itself made.
func (gen *generation) closeParts() error {
	var errs []error
	if gen.guard != nil {
		errs = append(errs, gen.guard.Close())
	}
	if gen.th != nil {
		errs = append(errs, gen.th.Close())
	}
	if gen.upstream != nil {
		gen.upstream.CloseIdleConnections()
	}
	return errors.Join(errs...)
}

// ready reports whether the generation can decide requests.
func (gen *generation) ready(ctx context.Context) bool { return gen.notReady(ctx) == nil }

// notReady says why the generation cannot decide requests; nil when it
// can.
func (gen *generation) notReady(ctx context.Context) error {
	if !gen.guard.Ready() {
		return errors.New("the issuers' keys did not load")
	}
	if gen.replayGates {
		if err := gen.replay.Ping(ctx); err != nil {
			return errors.New("the Redis replay store (dpop.mode required) did not answer")
		}
	}
	return nil
}

// limiter bounds the requests in flight across every generation, so a
// reload never lets two generations' worth through; a reload changes the
// bound.
type limiter struct {
	n     atomic.Int64
	limit atomic.Int64 // negative: no limit
}

// wrap lets at most limit requests through next at once; the rest get 503
// with Retry-After at once, never a queue.
func (l *limiter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Counted even without a limit, so that a reload that sets one
		// knows what is already in flight.
		n := l.n.Add(1)
		defer l.n.Add(-1)
		if lim := l.limit.Load(); lim >= 0 && n > lim {
			if rec := recordFrom(r.Context()); rec != nil {
				rec.overloaded = true
			}
			w.Header().Set("Retry-After", "1")
			writeJSONError(w, http.StatusServiceUnavailable, "overloaded")
			return
		}
		next.ServeHTTP(w, r)
	})
}
