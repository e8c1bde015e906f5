package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/middleware"
)

// Server limits. There is deliberately no ReadTimeout or WriteTimeout on
// the proxy: they would cut off large uploads, long polls and streamed
// responses that the upstream legitimately serves. Slow-loris clients are
// bounded by readHeaderTimeout, idle keep-alive connections by
// idleTimeout.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	// maxConcurrentStreams bounds HTTP/2 streams per connection (the
	// standard library's default, made explicit): one client connection
	// cannot take more than this share of max_concurrent_requests.
	maxConcurrentStreams = 250
	// headerHeadroom is what other request headers may use beyond the
	// Authorization (and, with DPoP, the proof) header.
	headerHeadroom = 64 << 10
	// defaultStartupWait is how long Start waits for the issuers' keys
	// when startup_wait is not set (middleware.DefaultStartupWait).
	defaultStartupWait = middleware.DefaultStartupWait
)

// tracerFlushTimeout bounds the export of the last spans at shutdown.
const tracerFlushTimeout = 2 * time.Second

// errorLog is the servers' ErrorLog: through the current configuration's
// logger, so a reload that changes log_format or log_level applies to it.
func (g *Gateway) errorLog() *stdlog.Logger {
	return slog.NewLogLogger(currentLogHandler{g}, slog.LevelWarn)
}

// currentLogHandler is a slog.Handler writing through the current
// generation's logger.
type currentLogHandler struct{ g *Gateway }

func (h currentLogHandler) handler() slog.Handler { return h.g.gen.Load().log.Handler() }

func (h currentLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.handler().Enabled(ctx, l)
}

func (h currentLogHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.handler().Handle(ctx, r)
}

func (h currentLogHandler) WithAttrs(as []slog.Attr) slog.Handler { return h.handler().WithAttrs(as) }

func (h currentLogHandler) WithGroup(n string) slog.Handler { return h.handler().WithGroup(n) }

// ErrNoTLS is ReloadCertificate's answer when the configuration has no
// tls block.
var ErrNoTLS = errors.New("tls is not configured: nothing to reload")

// Options are a Gateway's collaborators. The zero value is ready to use.
type Options struct {
	// Logger receives the gateway's log lines, one "access" line per
	// request among them. Nil means the configured log_format and
	// log_level on LogOutput, remade at each reload.
	Logger *slog.Logger
	// LogOutput is where the gateway's own logger writes when Logger is
	// nil; nil means standard error.
	LogOutput io.Writer

	// Listener and MetricsListener, when set, are served by Start instead
	// of binding listen and metrics_listen: for a port chosen at run
	// time, or sockets handed over by a supervisor. The gateway owns and
	// closes them. MetricsListener is served even when metrics_listen is
	// not set.
	Listener, MetricsListener net.Listener
}

// Gateway is tokenguard's gateway: a reverse proxy that forwards a request
// to the upstream only when its route's guard has verified the request's
// access token (and DPoP proof), with identity headers set from the token;
// and, on a separate listener, /metrics, /healthz and /readyz.
//
// Make one with New. Serve it with Start (or Run, which starts, serves
// until its context ends and shuts down), or mount Handler and
// MetricsHandler in a server of your own. Replace its configuration with
// Reload or ReloadConfig. Stop it with Shutdown. Its methods are safe for
// concurrent use.
type Gateway struct {
	log     *slog.Logger // the fixed Options.Logger; nil: each generation's own
	logOut  io.Writer
	reg     *prometheus.Registry
	handler http.Handler // the proxy side: the current generation's chain
	metrics http.Handler // /metrics, /healthz, /readyz

	gen      atomic.Pointer[generation] // the current configuration
	reloadMu sync.Mutex                 // serialises reloads; guards shared, closed and the fields marked
	shared   *shared
	// generations are those that may still be open, the current one
	// first: Shutdown closes them all.
	generations []*generation
	closed      bool                   // Shutdown has closed the generations: no more reloads
	reloads     *prometheus.CounterVec // tokenguard_config_reloads_total{result}
	fileHash    [32]byte               // of the configuration file last loaded (reloadMu)
	// closing is cancelled when Shutdown begins, before it waits for
	// reloadMu, so a reload waiting for keys gives up at once.
	closing       context.Context
	cancelClosing context.CancelFunc
	ownListener   bool // Options.Listener: listen is not ours to bind

	tracer   *tracer  // nil: tracing off (the OTEL_* environment)
	limiter  limiter  // max_concurrent_requests, across generations
	inflight inflight // requests being served, upgraded connections

	certs     atomic.Pointer[certReloader] // nil without tls
	stopWatch context.CancelFunc           // stops the certificate poller; nil without tls (reloadMu)

	proxyLn, metricsLn net.Listener // from Options until Start; metricsLn may be nil

	startOnce sync.Once
	startErr  error
	started   atomic.Bool // the proxy serves: /readyz may say ready
	starting  atomic.Bool // Start was called: until started, /readyz says "starting"; without Start (Handler mounted elsewhere) readiness is the guard's
	draining  atomic.Bool // Shutdown has begun: /readyz answers 503

	// Written once by Start, read by Shutdown after startOnce.
	proxySrv, metricsSrv *http.Server
	headerLimit          int        // the proxy server's MaxHeaderBytes
	serveErr             chan error // a server that stopped for a reason other than shutdown

	shutdownOnce sync.Once
	shutdownErr  error
}

// sharedReplayStore is a DPoP replay store shared by replicas, which the
// gateway opens and closes (redisstore.Store).
type sharedReplayStore interface {
	dpop.ReplayStore
	// Ping reports whether the store answers, for /readyz.
	Ping(ctx context.Context) error
	Close() error
}

// New builds a gateway from cfg: the guard (whose issuers' keys start
// loading in the background), the replay store, the reverse proxy and the
// handlers. It binds and serves nothing, and does no network I/O of its
// own; a configuration problem that only shows now (a client key file
// that cannot be read, a Redis URL its client refuses, a setting the guard
// does not support) is a *ConfigError naming the line. An unreachable
// issuer or Redis is not an error: requests that need them get 503 until
// they answer.
//
// Until the issuers' keys load, Ready is false and requests get 503. Call
// Shutdown to release what New made, whether or not the gateway was
// started.
func New(cfg *Config, opts Options) (*Gateway, error) { return newGateway(cfg, opts) }

func newGateway(cfg *Config, opts Options) (_ *Gateway, err error) {
	c := cfg.c
	g := &Gateway{
		log: opts.Logger, logOut: opts.LogOutput, reg: prometheus.NewRegistry(),
		ownListener: opts.Listener != nil,
		shared:      newShared(),
		proxyLn:     opts.Listener, metricsLn: opts.MetricsListener,
		serveErr: make(chan error, 2),
	}
	if g.logOut == nil {
		g.logOut = os.Stderr
	}
	g.closing, g.cancelClosing = context.WithCancel(context.Background())
	g.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenguard_config_reloads_total",
		Help: "Configuration reloads (SIGHUP, config_reload_interval or Gateway.Reload) by result: success, or error (the running configuration was kept).",
	}, []string{"result"})
	g.reloads.WithLabelValues("success")
	g.reloads.WithLabelValues("error")
	g.reg.MustRegister(g.reloads)
	// Tracing is the process's (OTEL_* variables), not the file's: a
	// reload keeps it.
	if g.tracer, err = newTracer(nil); err != nil {
		closeAll(opts.Listener, opts.MetricsListener)
		return nil, err
	}
	gen, p, err := g.build(c, g.shared, g.loggerFor(c))
	if err != nil {
		closeAll(opts.Listener, opts.MetricsListener)
		_ = g.tracer.shutdown(context.Background())
		return nil, err
	}
	g.install(gen, p, nil)
	g.fileHash = c.hash
	g.handler = http.HandlerFunc(g.serveHTTP)
	g.metrics = g.metricsHandler()
	return g, nil
}

// loggerFor is the logger of a generation of c.
func (g *Gateway) loggerFor(c *config) *slog.Logger {
	if g.log != nil {
		return g.log
	}
	return c.newLogger(g.logOut)
}

// current returns the current generation with a reference taken; release
// it when done.
func (g *Gateway) current() *generation {
	for {
		if gen := g.gen.Load(); gen.acquire() {
			return gen
		}
		// It closed between the load and the acquire: a reload made a
		// newer one current first.
	}
}

// serveHTTP serves a request on the current generation, which stays
// open until the request ends.
func (g *Gateway) serveHTTP(w http.ResponseWriter, r *http.Request) {
	gen := g.current()
	defer gen.release()
	gen.handler.ServeHTTP(w, r)
}

// Handler returns the proxy side of the gateway, for a server of your own:
// request hygiene, the routes and their guards, the reverse proxy, the
// identity headers, the concurrency limit and the access log. Serve it
// with the server limits you need; Start's are a 10 s header timeout, a
// 2 min idle timeout, 250 HTTP/2 streams per connection and a header size
// limit above max_token_size. The tls block applies only to Start's
// server.
func (g *Gateway) Handler() http.Handler { return g.handler }

// MetricsHandler returns GET /metrics (Prometheus), /healthz and /readyz.
// Keep it off the proxy's address: Handler never serves those paths.
func (g *Gateway) MetricsHandler() http.Handler { return g.metrics }

// Ready reports whether the gateway can decide requests: every issuer's
// keys have loaded and, in DPoP required mode with a Redis replay store,
// the store answers. It is what /readyz reports, apart from starting and
// draining.
func (g *Gateway) Ready() bool {
	gen := g.current()
	defer gen.release()
	return gen.ready(context.Background())
}

// Start serves the gateway: it binds listen and metrics_listen (or takes
// Options' listeners), serves /healthz and /readyz at once, waits up to
// startup_wait (or until ctx is done) for the issuers' keys, then serves
// the proxy and returns. ctx bounds only that wait. Start can be called
// once; on failure the gateway is shut down. Use Run to also wait and shut
// down, or Shutdown.
func (g *Gateway) Start(ctx context.Context) error {
	called := true
	g.startOnce.Do(func() {
		called = false
		g.starting.Store(true)
		g.startErr = g.start(ctx)
	})
	if called {
		return errors.New("gateway: Start called twice")
	}
	if g.startErr != nil {
		g.Shutdown(canceled)
	}
	return g.startErr
}

// canceled is a context that is already done: Shutdown with it closes at
// once.
var canceled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func (g *Gateway) start(ctx context.Context) (err error) {
	gen := g.current()
	defer gen.release()
	c, log := gen.cfg, gen.log
	if g.proxyLn == nil {
		if g.proxyLn, err = net.Listen("tcp", c.Listen); err != nil {
			return fmt.Errorf("tokenguard: listen: %w", err)
		}
	}
	if g.metricsLn == nil && c.MetricsListen != "" {
		if g.metricsLn, err = net.Listen("tcp", c.MetricsListen); err != nil {
			return fmt.Errorf("tokenguard: metrics_listen: %w", err)
		}
	}
	if g.metricsLn != nil {
		g.metricsSrv = &http.Server{
			Handler:           g.metrics,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       30 * time.Second, // nothing here reads a body or streams
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       idleTimeout,
			ErrorLog:          g.errorLog(),
		}
		go g.serve("metrics", g.metricsSrv, g.metricsLn)
	}
	waitForKeys(ctx, gen, c.StartupWait)

	// From here the configuration current now, which a reload during the
	// wait may have replaced, and no reload until the server is set up:
	// reloads check max_token_size against its header limit.
	g.reloadMu.Lock()
	c, log = g.gen.Load().cfg, g.gen.Load().log
	g.headerLimit = maxHeaderBytes(c.MaxTokenSize)
	g.proxySrv = &http.Server{
		Handler:           g.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    g.headerLimit,
		// HTTP/2 (over TLS) takes its header-list limit from
		// MaxHeaderBytes too.
		HTTP2:    &http.HTTP2Config{MaxConcurrentStreams: maxConcurrentStreams},
		ErrorLog: g.errorLog(),
	}
	if c.TLS != nil { // a reload cannot turn tls on or off
		// Through the Gateway, so a reload can change the files and
		// tls.client_certs (clientcert.go).
		g.proxySrv.TLSConfig = g.serverTLSConfig()
		go g.serveTLS(g.proxySrv, g.proxyLn)
	} else {
		// Plain HTTP/1: the requests' framing is followed as they are
		// read (framing.go); a proxy in front could read them otherwise.
		g.proxySrv.ConnContext = framingConnContext
		go g.serve("proxy", g.proxySrv, framingListener{g.proxyLn})
	}
	g.started.Store(true)
	g.restartWatchers(c)
	g.reloadMu.Unlock()

	attrs := []any{"listen", g.proxyLn.Addr().String(), "tls", c.TLS != nil, "upstream", c.upstreamString(), "routes", len(c.Routes), "ready", gen.guard.Ready()}
	if g.metricsLn != nil {
		attrs = append(attrs, "metrics_listen", g.metricsLn.Addr().String())
	}
	attrs = append(attrs, "dpop", c.DPoPMode)
	if c.DPoPMode != "disabled" {
		store := "memory"
		if c.ReplayStore != "" {
			store = "redis" // never the URL: it may hold a password
		}
		attrs = append(attrs, "dpop_nonce", c.DPoPNonce, "dpop_replay_store", store)
	}
	if c.ConfigReloadInterval > 0 {
		attrs = append(attrs, "config_reload_interval", c.ConfigReloadInterval.String())
	}
	log.Info("tokenguard gateway started", attrs...)
	return nil
}

// waitForKeys waits until gen's guard is ready, d has passed (0: the
// default startup wait; negative: not at all) or ctx is done, and
// reports whether it is ready. The poll is coarse on purpose: it runs
// once per Start or reload.
func waitForKeys(ctx context.Context, gen *generation, d time.Duration) bool {
	switch {
	case d < 0:
		return gen.guard.Ready()
	case d == 0:
		d = defaultStartupWait
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !gen.guard.Ready() {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			gen.log.Warn("issuer keys not loaded yet; answering 503 for their tokens until they are", "startup_wait", d.String())
			return false
		case <-tick.C:
		}
	}
	return true
}

// serve runs srv on ln until shutdown; any other end is reported on
// g.serveErr.
func (g *Gateway) serve(name string, srv *http.Server, ln net.Listener) {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		g.serveErr <- fmt.Errorf("tokenguard: %s server: %w", name, err)
	}
}

// serveTLS is serve for the TLS proxy listener; the certificate comes
// from g.certs through TLSConfig.GetCertificate, and HTTP/2 is offered
// by ALPN.
func (g *Gateway) serveTLS(srv *http.Server, ln net.Listener) {
	if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
		g.serveErr <- fmt.Errorf("tokenguard: proxy server: %w", err)
	}
}

// ReloadCertificate loads the TLS certificate and key files again. On
// failure the current certificate stays in use. Without a tls block it
// returns ErrNoTLS. ReloadConfig (SIGHUP) does this too.
func (g *Gateway) ReloadCertificate() error {
	certs := g.certs.Load()
	if certs == nil {
		return ErrNoTLS
	}
	return certs.reload()
}

// Addr and MetricsAddr are the addresses Start serves on (useful with port
// 0); "" before Start, and MetricsAddr without a metrics listener.
func (g *Gateway) Addr() string { return addrOf(g.proxyLn, g.started.Load()) }

// MetricsAddr: see Addr.
func (g *Gateway) MetricsAddr() string { return addrOf(g.metricsLn, g.started.Load()) }

func addrOf(ln net.Listener, started bool) string {
	if ln == nil || !started {
		return ""
	}
	return ln.Addr().String()
}

// Run starts the gateway if Start has not been called, serves until ctx is
// done (SIGINT or SIGTERM in the command) or a server fails, then shuts
// down as configured: /readyz answers 503, serving goes on for
// drain_delay, then in-flight requests get up to shutdown_timeout.
func (g *Gateway) Run(ctx context.Context) error {
	if !g.started.Load() {
		if err := g.Start(ctx); err != nil {
			return err
		}
	}
	var err error
	select {
	case <-ctx.Done():
		gen := g.gen.Load()
		gen.log.Info("shutting down: draining in-flight requests", "timeout", gen.cfg.ShutdownTimeout.String())
	case err = <-g.serveErr:
		g.gen.Load().log.Error("server failed; shutting down", "err", err)
	}
	return errors.Join(err, g.shutdown(context.Background(), func() (context.Context, context.CancelFunc) {
		// The configuration current now: a reload may have changed it.
		return context.WithTimeout(context.Background(), g.gen.Load().cfg.ShutdownTimeout)
	}))
}

// Shutdown stops the gateway gracefully: /readyz answers 503 at once, it
// keeps serving for drain_delay (or until ctx is done) so load balancers
// stop sending, then stops accepting connections and lets in-flight
// requests finish until ctx is done, closes what is left, and closes the
// guard and the replay store. It is safe to call more than once, and on a
// gateway that was never started; later calls return the first one's
// result.
func (g *Gateway) Shutdown(ctx context.Context) error {
	return g.shutdown(ctx, func() (context.Context, context.CancelFunc) { return ctx, func() {} })
}

// shutdown is Shutdown with the drain delay bounded by drainCtx and the
// graceful stop by the context stopCtx returns, made once the drain delay
// is over.
func (g *Gateway) shutdown(drainCtx context.Context, stopCtx func() (context.Context, context.CancelFunc)) error {
	g.shutdownOnce.Do(func() {
		g.startOnce.Do(func() {}) // no Start from now on
		g.draining.Store(true)
		g.cancelClosing() // a reload in progress gives up and lets go of reloadMu
		g.reloadMu.Lock()
		g.closed = true // no reload from now on
		g.stopWatchers()
		g.reloadMu.Unlock()
		gen := g.gen.Load() // final: reloads are over
		log := gen.log
		var errs []error
		if g.proxySrv != nil {
			if d := gen.cfg.DrainDelay; d > 0 {
				// Keep serving while /readyz says 503, so load balancers
				// take this instance out before its listener closes.
				log.Info("draining: readiness is 503; still serving until drain_delay passes", "drain_delay", d.String())
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-drainCtx.Done():
					t.Stop()
				}
			}
			ctx, cancel := stopCtx()
			err := g.proxySrv.Shutdown(ctx)
			if err == nil {
				// Shutdown does not wait for upgraded (hijacked)
				// connections; their handlers still count as in flight.
				err = g.inflight.wait(ctx)
			}
			cancel()
			if err != nil {
				cut := g.inflight.count()
				log.Warn("shutdown_timeout reached: closing the requests still in flight", "cut", cut)
				errs = append(errs, g.proxySrv.Close())
				g.inflight.closeTracked()
				if cut > 0 {
					errs = append(errs, &DrainError{Cut: cut})
				}
			}
		}
		closeAll(g.proxyLn) // bound but never served, or closed already
		if g.metricsSrv != nil {
			// Kept up while the proxy drains, so /readyz reports 503 and
			// scrapes go on; nothing long-running here needs draining.
			errs = append(errs, g.metricsSrv.Close())
		}
		closeAll(g.metricsLn)
		// Every generation, the current one and those a reload replaced
		// that still had requests: those are done or cut off by now.
		errs = append(errs, g.closeGenerations())
		// Last, so the spans of the requests drained above are sent; a
		// collector that does not answer costs at most 2 s and is no
		// failure of the gateway's.
		tctx, cancel := context.WithTimeout(context.Background(), tracerFlushTimeout)
		if err := g.tracer.shutdown(tctx); err != nil {
			log.Warn("tracing: spans not exported at shutdown", "err", err)
		}
		cancel()
		g.shutdownErr = errors.Join(errs...)
		log.Info("tokenguard gateway stopped")
	})
	return g.shutdownErr
}

// metricsHandler serves GET /metrics, /healthz and /readyz. Start mounts
// it only on metrics_listen.
func (g *Gateway) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{
		ErrorLog: g.errorLog(),
		Registry: g.reg, // counts its own errors
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writePlain(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case g.draining.Load():
			writePlain(w, http.StatusServiceUnavailable, "shutting down\n")
		case g.starting.Load() && !g.started.Load():
			writePlain(w, http.StatusServiceUnavailable, "starting\n")
		default:
			gen := g.current()
			defer gen.release()
			switch {
			case !gen.guard.Ready():
				writePlain(w, http.StatusServiceUnavailable, "issuer keys not loaded\n")
			case gen.replayGates && gen.replay.Ping(r.Context()) != nil:
				writePlain(w, http.StatusServiceUnavailable, "replay store unreachable\n")
			default:
				writePlain(w, http.StatusOK, "ready\n")
			}
		}
	})
	return mux
}

func writePlain(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func closeAll(ls ...net.Listener) {
	for _, l := range ls {
		if l != nil {
			_ = l.Close()
		}
	}
}
