package gateway

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
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
	// closers run when the generation closes: the Redis clients a reload
	// replaced, which requests on this generation may still use.
	closers []func() error
	// closeAfter delays closers until the replay handover is over (see
	// handoverReplayStore): the replaced replay store is asked until then.
	closeAfter time.Time
	closeTimer *time.Timer // runs closers after closeAfter; nil when they ran at once
}

// shared is what every generation of one Gateway uses; a reload keeps it.
// Guarded by Gateway.reloadMu.
type shared struct {
	memReplay *dpop.MemoryReplayStore // made by the first generation that needs it

	redisReplay    *redisstore.Store // the Redis replay store in use, and its URL
	redisReplayURL string

	sessions   *bff.MemoryStore // made by the first generation with a memory session store
	sessionsRS *bffredis.Store  // the Redis session store in use, and its URL
	sessionURL string

	// processKey seals in-memory sessions and login cookies when no
	// session_key is set, nonceKey makes DPoP nonces when no
	// TOKENGUARD_DPOP_NONCE_SECRETS are: one random key per process, as
	// before, but the same across reloads.
	processKey, nonceKey []byte
}

func newShared() *shared {
	s := &shared{processKey: make([]byte, bff.SessionKeySize), nonceKey: make([]byte, dpop.MinNonceSecretSize)}
	_, _ = rand.Read(s.processKey)
	_, _ = rand.Read(s.nonceKey)
	return s
}

// pending is what building a generation opened that the current one does
// not have yet: put in place by commit, closed by abandon.
type pending struct {
	redisReplay, sessionsRS bool // opened for the new generation
	replay                  *redisstore.Store
	replayURL               string
	sessions                *bffredis.Store
	sessionURL              string
	memReplay               *dpop.MemoryReplayStore
	memQuota                int // the shared memory store's new key quota; 0: unchanged
	memSessions             *bff.MemoryStore
	certs                   *certReloader
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
			if p.memSessions = s.sessions; p.memSessions == nil {
				p.memSessions, _ = bff.NewMemoryStore(0)
			}
			store = p.memSessions
		case c.BFF.SessionStore == s.sessionURL && s.sessionsRS != nil:
			p.sessions, p.sessionURL = s.sessionsRS, s.sessionURL
			store = p.sessions
		default:
			if p.sessions, err = c.openSessionStore(); err != nil {
				return nil, nil, err
			}
			p.sessionsRS, p.sessionURL = true, c.BFF.SessionStore
			store = p.sessions
		}
		if gen.th, err = c.newBFF(log, g.reg, store, s.processKey); err != nil {
			return nil, nil, err
		}
	}
	proxy := newProxy(c, log)
	gen.upstream = proxy.Transport.(*http.Transport)
	if err := instrumentUpstream(proxy, g.reg); err != nil {
		return nil, nil, err
	}
	proxy.Transport = g.tracer.transport("upstream", proxy.Transport)
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
// shared memory store (its quota set to c's), the Redis store in use when
// the URL is the same, or a new Redis store. When the store changes, the
// one in use is asked too until every proof it recorded has expired
// (handoverReplayStore).
func (g *Gateway) replayStore(c *config, s *shared, p *pending, gen *generation) (dpop.ReplayStore, error) {
	var store dpop.ReplayStore
	switch {
	case c.ReplayStore == "":
		if p.memReplay = s.memReplay; p.memReplay == nil {
			size := dpop.DefaultReplayStoreSize
			var err error
			if p.memReplay, err = dpop.NewMemoryReplayStoreQuota(size, cmp.Or(c.ReplayKeyQuota, dpop.DefaultKeyQuota(size))); err != nil {
				return nil, c.guardError(errors.New("middleware: DPoP.ReplayKeyQuota: " + err.Error()))
			}
		} else {
			p.memQuota = cmp.Or(c.ReplayKeyQuota, dpop.DefaultKeyQuota(dpop.DefaultReplayStoreSize)) // set by commit
		}
		store = p.memReplay
	case c.ReplayStore == s.redisReplayURL && s.redisReplay != nil:
		p.replay, p.replayURL = s.redisReplay, s.redisReplayURL
		store = p.replay
	default:
		r, err := redisstore.NewFromURL(c.ReplayStore, redisstore.Options{KeyQuota: c.ReplayKeyQuota})
		if err != nil {
			return nil, c.replayStoreError(err)
		}
		p.replay, p.replayURL, p.redisReplay = r, c.ReplayStore, true
		store = r
	}
	if p.replay != nil {
		gen.replay = p.replay
		gen.replayGates = c.DPoPMode == "required"
	}
	// The store in use, if this one replaces it.
	var prev dpop.ReplayStore
	switch {
	case s.redisReplay != nil && p.replay != s.redisReplay:
		prev = s.redisReplay
	case s.memReplay != nil && p.memReplay == nil:
		prev = s.memReplay
	}
	if prev != nil && g.gen.Load() != nil {
		return &handoverReplayStore{ReplayStore: store, prev: prev, until: time.Now().Add(replayHandover)}, nil
	}
	return store, nil
}

// commit makes p's parts the shared ones. Called with reloadMu held, when
// the generation built with p becomes current; old is the generation it
// replaces, which closes the stores no longer in use when it closes.
func (p *pending) commit(s *shared, old *generation) {
	if old == nil { // the first generation: nothing is replaced
		old = &generation{}
	}
	if p.memReplay != nil {
		s.memReplay = p.memReplay
		if p.memQuota > 0 {
			_ = p.memReplay.SetKeyQuota(p.memQuota) // validate checked the range
		}
	}
	if p.memSessions != nil {
		s.sessions = p.memSessions
	}
	if s.redisReplay != nil && s.redisReplay != p.replay {
		r := s.redisReplay
		old.closers = append(old.closers, r.Close)
		old.closeAfter = time.Now().Add(replayHandover)
	}
	s.redisReplay, s.redisReplayURL = p.replay, p.replayURL
	if s.sessionsRS != nil && s.sessionsRS != p.sessions {
		old.closers = append(old.closers, s.sessionsRS.Close)
	}
	s.sessionsRS, s.sessionURL = p.sessions, p.sessionURL
}

// abandon closes what building opened; the shared parts stay.
func (p *pending) abandon() {
	if p.redisReplay && p.replay != nil {
		_ = p.replay.Close()
	}
	if p.sessionsRS && p.sessions != nil {
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
// upstream connections and closes the stores a reload replaced (after the
// replay handover). Safe to call more than once, and while requests still
// run on it (shutdown): they finish on what they hold.
func (gen *generation) close() error {
	var err error
	gen.closeOnce.Do(func() {
		defer gen.closed.Store(true)
		err = gen.closeParts()
		if d := time.Until(gen.closeAfter); d > 0 {
			gen.closeTimer = time.AfterFunc(d, func() { _ = runAll(gen.closers) })
			return
		}
		err = errors.Join(err, runAll(gen.closers))
	})
	return err
}

// closeNow is close for Shutdown: the replaced stores are closed now, not
// after the replay handover.
func (gen *generation) closeNow() error {
	err := gen.close() // waits for a close already running
	if t := gen.closeTimer; t != nil && t.Stop() {
		err = errors.Join(err, runAll(gen.closers))
	}
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

func runAll(fs []func() error) error {
	var errs []error
	for _, f := range fs {
		errs = append(errs, f())
	}
	return errors.Join(errs...)
}

// ready reports whether the generation can decide requests.
func (gen *generation) ready(ctx context.Context) bool {
	return gen.guard.Ready() && !(gen.replayGates && gen.replay.Ping(ctx) != nil)
}

// replayHandover is how long a replaced replay store is still asked: the
// longest a proof it recorded can be accepted again (its maximum age,
// plus the clock skew allowed in the other direction).
const replayHandover = dpop.DefaultMaxAge + dpop.DefaultMaxClockSkew

// handoverReplayStore records proofs in the new store and, until until,
// refuses those the replaced store already holds: a reload that changes
// dpop.replay_store (or turns the Redis store on or off) must not let a
// proof used just before it be used again after it. The replaced store is
// asked on a best-effort basis: when it cannot answer, the new store
// alone decides, as it would after a restart.
type handoverReplayStore struct {
	dpop.ReplayStore // the new store
	prev             dpop.ReplayStore
	until            time.Time
}

func (h *handoverReplayStore) Use(ctx context.Context, r dpop.Replay) error {
	if time.Now().Before(h.until) {
		if err := h.prev.Use(ctx, r); errors.Is(err, dpop.ErrReplay) {
			return err
		}
	}
	return h.ReplayStore.Use(ctx, r)
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
		if lim := l.limit.Load(); lim >= 0 {
			if l.n.Add(1) > lim {
				l.n.Add(-1)
				if rec := recordFrom(r.Context()); rec != nil {
					rec.overloaded = true
				}
				w.Header().Set("Retry-After", "1")
				writeJSONError(w, http.StatusServiceUnavailable, "overloaded")
				return
			}
			defer l.n.Add(-1)
		}
		next.ServeHTTP(w, r)
	})
}
