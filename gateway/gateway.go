package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/dpop/redisstore"
	"github.com/tokenguard/tokenguard/middleware"
)

// Server limits. There is deliberately no ReadTimeout or WriteTimeout on
// the proxy: they would cut off large uploads, long polls and streamed
// responses that the upstream legitimately serves. Slow-loris clients are
// bounded by ReadHeaderTimeout, idle keep-alive connections by
// IdleTimeout.
const (
	ReadHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	// maxConcurrentStreams bounds HTTP/2 streams per connection (the
	// standard library's default, made explicit): one client connection
	// cannot take more than this share of max_concurrent_requests.
	maxConcurrentStreams = 250
	// headerHeadroom is what other request headers may use beyond the
	// Authorization (and, with DPoP, the proof) header.
	headerHeadroom = 64 << 10
)

// gateway is a running tokenguard: the guarded reverse proxy on listen and
// the metrics/health server on metrics_listen. Create it with
// startGateway, stop it with shutdown (run does both ends).
type Gateway struct {
	cfg *Config
	log *slog.Logger
	reg *prometheus.Registry

	guard  atomic.Pointer[middleware.Guard] // nil until middleware.New returns
	replay sharedReplayStore                // nil: the guard's in-memory store; written once by startGateway
	// replayGates: readiness waits on the replay store only when DPoP is
	// required, so no request could be served without it. In allowed
	// mode a shared Redis outage must not take every replica, and with
	// them all Bearer traffic, out of the load balancer.
	replayGates bool
	draining    atomic.Bool        // set when shutdown starts: /readyz answers 503
	certs       *certReloader      // nil without tls
	upstream    *http.Transport    // the connection pool to the upstream; written once by startGateway
	stopWatch   context.CancelFunc // stops the certificate poller; nil without tls

	proxyLn, metricsLn   net.Listener // metricsLn is nil without metrics_listen
	proxySrv, metricsSrv *http.Server
	serveErr             chan error // a server that stopped for a reason other than shutdown

	shutdownOnce sync.Once
	shutdownErr  error
}

// listeners are optional pre-bound listeners for startGateway; nil fields
// are bound from the configuration. The demo uses them to pick free ports.
type Listeners struct {
	Proxy, Metrics net.Listener
}

// sharedReplayStore is a DPoP replay store shared by replicas, which the
// gateway opens and closes (redisstore.Store).
type sharedReplayStore interface {
	dpop.ReplayStore
	// Ping reports whether the store answers, for /readyz.
	Ping(ctx context.Context) error
	Close() error
}

// startGateway binds the listeners, serves /healthz and /readyz at once,
// creates the guard (waiting up to startup_wait for the issuers' keys), and
// then starts proxying. ctx bounds only the start; stop the gateway with
// shutdown.
func Start(ctx context.Context, cfg *Config, log *slog.Logger, lns Listeners) (_ *Gateway, err error) {
	g := &Gateway{cfg: cfg, log: log, reg: prometheus.NewRegistry(), serveErr: make(chan error, 2)}
	defer func() {
		if err != nil {
			CloseAll(lns.Proxy, lns.Metrics, g.proxyLn, g.metricsLn) // closing twice is harmless
			if g.metricsSrv != nil {
				g.metricsSrv.Close()
			}
			if g.replay != nil {
				g.replay.Close()
			}
		}
	}()
	if g.proxyLn = lns.Proxy; g.proxyLn == nil {
		if g.proxyLn, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("tokenguard: listen: %w", err)
		}
	}
	if g.metricsLn = lns.Metrics; g.metricsLn == nil && cfg.MetricsListen != "" {
		if g.metricsLn, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			return nil, fmt.Errorf("tokenguard: metrics_listen: %w", err)
		}
	}

	g.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if g.metricsLn != nil {
		g.metricsSrv = &http.Server{
			Handler:           g.metricsHandler(),
			ReadHeaderTimeout: ReadHeaderTimeout,
			ReadTimeout:       30 * time.Second, // nothing here reads a body or streams
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       idleTimeout,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		go g.serve("metrics", g.metricsSrv, g.metricsLn)
	}

	cfg.logDPoPNotes(log)
	mc := cfg.guardConfig(log, g.reg)
	if err := cfg.loadIssuerKeys(&mc); err != nil {
		return nil, err
	}
	if cfg.ReplayStore != "" {
		// No I/O here: an unreachable Redis is not a config error; DPoP
		// requests get 503 until it answers (and, in required mode,
		// /readyz reports it).
		s, err := redisstore.NewFromURL(cfg.ReplayStore, redisstore.Options{})
		if err != nil {
			return nil, cfg.replayStoreError(err)
		}
		g.replay = s
		g.replayGates = mc.DPoP.Mode == middleware.DPoPRequired
		mc.DPoP.ReplayStore = s
	}
	guard, err := middleware.New(ctx, mc)
	if err != nil {
		return nil, cfg.guardError(err)
	}
	g.guard.Store(guard)

	proxy := newProxy(cfg, log)
	g.upstream = proxy.Transport.(*http.Transport)
	h, err := newProxyHandler(cfg, guard, proxy, log)
	if err != nil {
		guard.Close()
		return nil, err
	}
	g.proxySrv = &http.Server{
		Handler:           accessLog(limitConcurrency(h, cfg.MaxConcurrentRequests), log),
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes(cfg.MaxTokenSize),
		// HTTP/2 (over TLS) takes its header-list limit from
		// MaxHeaderBytes too.
		HTTP2:    &http.HTTP2Config{MaxConcurrentStreams: maxConcurrentStreams},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.TLS != nil {
		if g.certs, err = newCertReloader(cfg.TLS.CertFile, cfg.TLS.KeyFile, log); err != nil {
			guard.Close()
			return nil, &configError{File: cfg.File, Err: err, Fields: []*fieldError{{Line: cfg.TLS.Line, Key: "tls.cert_file", Msg: err.Error()}}}
		}
		g.proxySrv.TLSConfig = g.certs.serverTLSConfig()
		var watchCtx context.Context
		watchCtx, g.stopWatch = context.WithCancel(context.Background())
		go g.certs.watch(watchCtx, cfg.TLS.ReloadInterval)
		go g.serveTLS(g.proxySrv, g.proxyLn)
	} else {
		go g.serve("proxy", g.proxySrv, g.proxyLn)
	}

	attrs := []any{"listen", g.proxyLn.Addr().String(), "tls", cfg.TLS != nil, "upstream", cfg.Upstream.String(), "routes", len(cfg.Routes), "ready", guard.Ready()}
	if g.metricsLn != nil {
		attrs = append(attrs, "metrics_listen", g.metricsLn.Addr().String())
	}
	attrs = append(attrs, "dpop", cfg.DPoPMode)
	if cfg.DPoPMode != "disabled" {
		store := "memory"
		if g.replay != nil {
			store = "redis" // never the URL: it may hold a password
		}
		attrs = append(attrs, "dpop_nonce", cfg.DPoPNonce, "dpop_replay_store", store)
	}
	log.Info("tokenguard gateway started", attrs...)
	return g, nil
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

// reloadCertificate loads the TLS certificate and key files again (what
// SIGHUP does). On failure the current certificate stays in use.
func (g *Gateway) ReloadCertificate() error {
	if g.certs == nil {
		return ErrNoTLS
	}
	return g.certs.reload()
}

// proxyAddr and metricsAddr are the bound addresses (useful with port 0).
func (g *Gateway) ProxyAddr() string { return g.proxyLn.Addr().String() }

func (g *Gateway) MetricsAddr() string {
	if g.metricsLn == nil {
		return ""
	}
	return g.metricsLn.Addr().String()
}

// run serves until ctx is done (SIGINT/SIGTERM in main) or a server fails,
// then shuts down gracefully.
func (g *Gateway) Run(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
		g.log.Info("shutting down: draining in-flight requests", "timeout", g.cfg.ShutdownTimeout.String())
	case err = <-g.serveErr:
		g.log.Error("server failed; shutting down", "err", err)
	}
	return errors.Join(err, g.Shutdown(g.cfg.ShutdownTimeout))
}

// shutdown stops accepting connections, waits up to timeout for in-flight
// requests to finish (then closes what is left), and closes the guard. It
// is safe to call more than once.
func (g *Gateway) Shutdown(timeout time.Duration) error {
	g.shutdownOnce.Do(func() {
		g.draining.Store(true)
		if d := g.cfg.DrainDelay; d > 0 {
			// Keep serving while /readyz says 503, so load balancers take
			// this instance out before its listener closes.
			g.log.Info("draining: readiness is 503; still serving until drain_delay passes", "drain_delay", d.String())
			time.Sleep(d)
		}
		if g.stopWatch != nil {
			g.stopWatch()
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var errs []error
		if err := g.proxySrv.Shutdown(ctx); err != nil {
			g.log.Warn("shutdown timeout reached; closing remaining connections", "err", err)
			errs = append(errs, g.proxySrv.Close())
		}
		if g.upstream != nil {
			g.upstream.CloseIdleConnections() // in-flight ones are done or cut off by now
		}
		if g.metricsSrv != nil {
			// Kept up while the proxy drains, so /readyz reports 503 and
			// scrapes go on; nothing long-running here needs draining.
			errs = append(errs, g.metricsSrv.Close())
		}
		if guard := g.guard.Load(); guard != nil {
			errs = append(errs, guard.Close())
		}
		if g.replay != nil {
			errs = append(errs, g.replay.Close())
		}
		g.shutdownErr = errors.Join(errs...)
		g.log.Info("tokenguard gateway stopped")
	})
	return g.shutdownErr
}

// metricsHandler serves GET /metrics, /healthz and /readyz. It is only
// ever mounted on metrics_listen.
func (g *Gateway) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
		Registry: g.reg, // counts its own errors
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writePlain(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		guard := g.guard.Load()
		switch {
		case g.draining.Load():
			writePlain(w, http.StatusServiceUnavailable, "shutting down\n")
		case guard == nil:
			writePlain(w, http.StatusServiceUnavailable, "starting\n")
		case !guard.Ready():
			writePlain(w, http.StatusServiceUnavailable, "issuer keys not loaded\n")
		case g.replayGates && g.replay.Ping(r.Context()) != nil:
			writePlain(w, http.StatusServiceUnavailable, "replay store unreachable\n")
		default:
			writePlain(w, http.StatusOK, "ready\n")
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

func CloseAll(ls ...net.Listener) {
	for _, l := range ls {
		if l != nil {
			_ = l.Close()
		}
	}
}
