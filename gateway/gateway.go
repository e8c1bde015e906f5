package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/dpop/redisstore"
	"github.com/tokenguard/tokenguard/internal/hygiene"
	"github.com/tokenguard/tokenguard/internal/netutil"
	"github.com/tokenguard/tokenguard/middleware"
)

// Headers the gateway sets on every request it forwards. Any header with
// this prefix sent by a client is removed first, whatever its case.
const (
	HeaderPrefix   = "X-Tokenguard-"
	headerSubject  = "X-Tokenguard-Subject"
	headerClientID = "X-Tokenguard-Client-Id"
	headerScope    = "X-Tokenguard-Scope"
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

// reservedPaths are served only on metrics_listen and never proxied, even
// when a route would match them.
var reservedPaths = map[string]bool{"/metrics": true, "/healthz": true, "/readyz": true}

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

// writeJSONError sends a small JSON error like the guard's own denials.
// code is a constant, never request or upstream data.
func writeJSONError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{"error":"`+code+`"}`+"\n")
}

// newProxyHandler builds the proxy's routing: every configured route,
// guarded with its scopes, in front of proxy; a catch-all that answers 404
// (so a method mismatch is 404 too, not 405); and the reserved paths,
// which are never proxied.
func newProxyHandler(cfg *Config, guard *middleware.Guard, proxy http.Handler, log *slog.Logger) (http.Handler, error) {
	mux := http.NewServeMux()
	upstream := requirePrincipal(proxy, log)
	for _, r := range cfg.Routes {
		pol := middleware.Policy{
			Scopes: r.Scopes, AnyOf: r.AnyScopes, RequireDPoP: r.RequireDPoP, Introspect: r.Introspect,
			IntrospectionMaxAge: r.IntrospectionMaxAge,
			MaxTokenAge:         r.MaxTokenAge, ACRValues: r.ACRValues, MaxAuthAge: r.MaxAuthAge,
		}
		if err := guard.CheckPolicy(pol); err != nil {
			// Not expected: validate checked the same rules.
			return nil, fmt.Errorf("tokenguard: config %s: line %d: %s: %w", cfg.File, r.Line, r.Key, err)
		}
		if err := tryHandle(mux, r.Pattern, guard.RequirePolicy(pol)(upstream)); err != nil {
			// Not expected: validate registered these on a scratch mux.
			return nil, fmt.Errorf("tokenguard: config %s: line %d: %s: %w", cfg.File, r.Line, r.Key, err)
		}
	}
	// RFC 9728 protected resource metadata, unguarded, where every 401
	// challenge's resource_metadata= points.
	if p := guard.MetadataPath(); p != "" {
		if err := tryHandle(mux, "GET "+p, guard.MetadataHandler()); err != nil {
			return nil, fmt.Errorf("tokenguard: config %s: a route conflicts with the protected resource metadata path %s: %w", cfg.File, p, err)
		}
	}
	notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, "not_found")
	})
	// When a route already covers every method and path ("/"), the
	// catch-all conflicts with it and is not needed.
	_ = tryHandle(mux, "/", notFound)
	router := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reservedPaths[r.URL.Path] {
			notFound(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
	// Hygiene runs before any route is matched: with path_normalization
	// reject, the path the route is matched on is then the path the
	// upstream gets, byte for byte, and means the same to it however it
	// decodes (TestGatewayForwardsWhatItMatched, FuzzGatewayTarget).
	return guard.Hygiene(cfg.hygiene())(router), nil
}

// hygiene is the gateway's middleware.Hygiene.
func (c *Config) hygiene() middleware.Hygiene {
	return middleware.Hygiene{
		AllowedHosts:          slices.Clone(c.AllowedHosts),
		InsecureSkipPathCheck: c.PathNormalization == pathForwardUnchanged,
		RefuseWebSocket:       !c.AllowWebSocket,
	}
}

// requirePrincipal fails closed if a request somehow reaches the proxy
// without a verified Principal; with every route guarded it never should.
func requirePrincipal(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := middleware.PrincipalFrom(r.Context()); !ok {
			log.Error("request reached the proxy without a verified principal", "method", r.Method, "path", r.URL.EscapedPath())
			writeJSONError(w, http.StatusInternalServerError, "internal_error")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// newProxy returns the reverse proxy to the upstream. It uses Rewrite, so
// the inbound Forwarded and X-Forwarded-* headers are dropped before it
// runs and only the ones SetXForwarded adds (the TCP peer, the Host the
// client asked for, and http or https per the listener) reach the
// upstream; every other X-Forwarded-* header and the client-address and
// URL/method-override headers frameworks read (dropClientForwarding) are
// removed too, so no client-supplied address, scheme, port, prefix,
// original URL or method reaches it under any common name. Hop-by-hop headers named in the
// client's Connection header are removed before Rewrite, so they can
// never remove the identity headers Rewrite sets.
//
// The connection pool, copy buffers and flush interval are those every
// proxy of ours shares (netutil.ConfigureProxy): streamed responses are
// flushed chunk by chunk, any other within 100 ms. Request bodies
// are streamed to the upstream as they arrive (ReverseProxy never
// buffers them); protocol upgrades (WebSocket) are passed through by
// ReverseProxy once the route's guard has allowed the request.
func newProxy(cfg *Config, log *slog.Logger) *httputil.ReverseProxy {
	upstream := cfg.Upstream
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			scrubHeaders(pr.Out.Header, cfg.AllowUnderscoreHeaders)
			// Request trailers are never forwarded: they would arrive after
			// every header rule here has run.
			pr.Out.Trailer = nil
			pr.SetXForwarded()
			setIdentityHeaders(pr.Out.Header, pr.In)
			if rec := recordFrom(pr.In.Context()); rec != nil {
				pr.Out.Header.Set(headerRequestID, rec.id)
			}
		},
		ModifyResponse: func(res *http.Response) error {
			// The gateway's own id goes on every response; an upstream's
			// copy would make a second value on a 101, which is sent
			// with the headers as they are at Hijack.
			res.Header.Del(headerRequestID)
			if rec := recordFrom(res.Request.Context()); rec != nil {
				rec.upstreamStatus = res.StatusCode
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			status, kind := classifyUpstreamError(err)
			if rec := recordFrom(r.Context()); rec != nil {
				rec.upstreamError = kind
			}
			level := slog.LevelWarn
			if kind == "client_gone" {
				level = slog.LevelDebug // the client went away: not the upstream's fault, not news
			}
			log.Log(r.Context(), level, "upstream request failed", "method", r.Method, "path", r.URL.EscapedPath(), "upstream_error", kind, "err", err)
			// The error names the upstream's address; it stays in the log.
			code := "bad_gateway"
			if status == http.StatusGatewayTimeout {
				code = "gateway_timeout"
			}
			writeJSONError(w, status, code)
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	netutil.ConfigureProxy(p, cfg.UpstreamDialTimeout, cfg.UpstreamTimeout)
	return p
}

// clientOverrideHeaders are request headers, other than Forwarded and
// X-Forwarded-*, that common frameworks and proxies read as the client's
// address or the original URL. Coming from a client they are claims
// nobody checked, so none reaches the upstream.
// Lower case with '-', as hygiene.FoldedEqual compares them.
var clientOverrideHeaders = []string{
	"x-real-ip", "true-client-ip", "x-client-ip", "cf-connecting-ip", "fastly-client-ip",
	"x-cluster-client-ip", "x-original-forwarded-for", "x-original-url", "x-rewrite-url",
	"x-original-host", "x-host", "x-http-method-override", "x-method-override", "x-http-method",
}

// scrubHeaders removes from a request about to be forwarded every header
// a client could use to lie to the upstream, under every spelling an
// upstream might fold to the same name (letter case, '_' for '-',
// surrounding space: CGI, WSGI, PHP and Rack read X_Tokenguard_Subject
// as X-Tokenguard-Subject):
//
//   - X-Tokenguard-*, the identity headers the gateway sets afterwards;
//   - every X-Forwarded-* header (Prefix, Port, Ssl, Scheme, ... as well
//     as the For, Host and Proto that SetXForwarded then sets afresh),
//     Forwarded, and clientOverrideHeaders (client address, original URL,
//     method override: the guard authorised the request's real method);
//   - unless allowUnderscore, every header whose name has a '_' at all,
//     as Envoy's headers_with_underscores_action does: upstreams fold
//     them unpredictably, so no list of names could be complete.
func scrubHeaders(h http.Header, allowUnderscore bool) {
	for k := range h {
		if !allowUnderscore && strings.IndexByte(k, '_') >= 0 ||
			hygiene.FoldedHasPrefix(k, "x-tokenguard-") ||
			hygiene.FoldedHasPrefix(k, "x-forwarded-") ||
			hygiene.FoldedEqual(k, "forwarded") {
			delete(h, k)
			continue
		}
		for _, name := range clientOverrideHeaders {
			if hygiene.FoldedEqual(k, name) {
				delete(h, k)
				break
			}
		}
	}
}

// setIdentityHeaders sets the gateway's identity headers on out from the
// request's verified Principal. scrubHeaders has removed every client
// copy of them first.
func setIdentityHeaders(out http.Header, in *http.Request) {
	p, ok := middleware.PrincipalFrom(in.Context())
	if !ok {
		return
	}
	if p.Subject != "" {
		out.Set(headerSubject, p.Subject)
	}
	if p.ClientID != "" {
		out.Set(headerClientID, p.ClientID)
	}
	if len(p.Scopes) > 0 {
		out.Set(headerScope, strings.Join(p.Scopes, " "))
	}
}

// maxHeaderBytes sizes the proxy's request-header limit above the token
// limit: room for the Authorization header, a DPoP proof of similar size,
// and ordinary headers. tokenSize 0 means the middleware's default.
func maxHeaderBytes(tokenSize int) int {
	if tokenSize == 0 {
		tokenSize = middleware.DefaultMaxTokenSize
	}
	return 2*tokenSize + headerHeadroom
}

// guardConfig converts the gateway configuration for middleware.New. Every
// setting is passed through, including those middleware does not support
// yet, so that New refuses them rather than the gateway ignoring them.
func (c *Config) guardConfig(log *slog.Logger, reg prometheus.Registerer) middleware.Config {
	mc := middleware.Config{
		Audience:          c.Audience,
		PublicURL:         c.publicURL(),
		Leeway:            c.Leeway,
		MaxTokenSize:      c.MaxTokenSize,
		Realm:             c.Realm,
		StartupWait:       c.StartupWait,
		InsecureAllowHTTP: c.InsecureAllowHTTP,
		Logger:            log,
		Registerer:        reg,
		OnDecision:        onDecision,

		JWKSMinRefreshInterval: c.JWKSMinRefreshInterval,
		JWKSMaxRefreshInterval: c.JWKSMaxRefreshInterval,
		JWKSRefreshRateLimit:   c.JWKSRefreshRateLimit,
	}
	switch c.DPoPMode {
	case "allowed":
		mc.DPoP.Mode = middleware.DPoPAllowed
	case "required":
		mc.DPoP.Mode = middleware.DPoPRequired
	default:
		mc.DPoP.Mode = middleware.DPoPDisabled
	}
	// RFC 9728: the audience is the resource identifier when the
	// middleware would take it as one (https, or http to loopback or with
	// insecure_allow_http; no query); otherwise the public URL is.
	if !resourceURL(c.Audience, c.InsecureAllowHTTP) {
		mc.Resource = c.publicURL()
	}
	mc.DPoP.Nonce = c.DPoPNonce
	mc.DPoP.NonceSecrets = slices.Clone(c.NonceSecrets)
	// DPoP.ReplayStore: nil is the in-memory store; startGateway sets a
	// Redis one.
	for _, is := range c.Issuers {
		mc.Issuers = append(mc.Issuers, middleware.Issuer{
			Issuer:                is.Issuer,
			JWKSURI:               is.JWKSURI,
			IntrospectionEndpoint: is.IntrospectionEndpoint,
			ClientID:              is.ClientID,
			ClientSecret:          is.ClientSecret,
			AllowLegacyTyp:        is.AllowLegacyTyp,
			ScpClaim:              is.ScpClaim,
			// IntrospectionKey is read from ClientKeyFile by startGateway.
			IntrospectionAuthMethod:  is.ClientAuthMethod,
			IntrospectionKeyID:       is.ClientKeyID,
			IntrospectionCacheMaxAge: is.IntrospectionCacheMaxAge,
		})
	}
	return mc
}

// resourceURL reports whether s is a URL middleware.Config accepts as a
// resource identifier.
func resourceURL(s string, insecure bool) bool {
	u, err := checkURL(s, false)
	if err != nil {
		return false
	}
	return netutil.AllowedScheme(u, insecure)
}

// replayStoreError reports a replay_store URL the Redis client refuses,
// at its line. The message never includes the URL, which may hold a
// password.
func (c *Config) replayStoreError(err error) error {
	p, _ := c.keyFor("DPoP.ReplayStore")
	msg := strings.TrimPrefix(err.Error(), "redisstore: ")
	return &configError{File: c.File, Err: err, Fields: []*fieldError{{Line: p.Line, Key: p.Key, Msg: msg}}}
}

// logDPoPNotes warns about DPoP settings that work but may not be what an
// operator running several replicas wants, or that trust the client more
// than it may expect.
func (c *Config) logDPoPNotes(log *slog.Logger) {
	if c.DPoPMode != "disabled" && c.PublicURL == nil {
		msg := "dpop is on and public_url is unset: a proof's htu is checked against a URL built from the client's Host header"
		if len(c.AllowedHosts) == 0 {
			log.Warn(msg+", and allowed_hosts is unset, so any Host is believed; set public_url to the URL clients call", "dpop", c.DPoPMode)
		} else {
			log.Warn(msg+" (one of allowed_hosts); set public_url to the URL clients call", "dpop", c.DPoPMode)
		}
	}
	switch {
	case c.DPoPNonce && len(c.NonceSecrets) == 0:
		log.Warn("dpop.nonce is on without "+NonceSecretsEnv+": nonces are made with a random per-process key, "+
			"so replicas do not accept each other's nonces and a restart invalidates those issued; "+
			"set it to the same secrets on every replica", "env", NonceSecretsEnv)
	case !c.DPoPNonce && len(c.NonceSecrets) > 0:
		log.Warn(NonceSecretsEnv+" is set but dpop.nonce is off; the secrets are not used", "env", NonceSecretsEnv)
	}
}

// publicURL is PublicURL as middleware.Config wants it: "" when unset.
func (c *Config) publicURL() string {
	if c.PublicURL == nil {
		return ""
	}
	return c.PublicURL.String()
}

// middlewareField matches the "middleware: Field: message" form of New's
// errors.
var middlewareField = regexp.MustCompile(`^middleware: ([A-Za-z.]+(?:\[\d+\])?(?:\.[A-Za-z]+)?): (.*)$`)

// goNames are Go names in middleware messages and what a YAML user knows
// them as.
var goNames = strings.NewReplacer(
	"InsecureAllowHTTP", "insecure_allow_http",
	"DPoPDisabled", "disabled",
	"DPoPAllowed", "allowed",
	"DPoPRequired", "required",
	"PublicURL", "public_url",
)

var goIssuerIndex = regexp.MustCompile(`\bIssuers\[(\d+)\]`)

// guardError maps middleware.New's errors back to YAML keys and lines.
// Errors it cannot place are kept as they are; the original error stays
// reachable with errors.Is/As.
func (c *Config) guardError(err error) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	ce := &configError{File: c.File, Err: err}
	for _, e := range errs {
		msg := e.Error()
		if m := middlewareField.FindStringSubmatch(msg); m != nil {
			if p, ok := c.keyFor(m[1]); ok {
				text := goIssuerIndex.ReplaceAllString(goNames.Replace(m[2]), "issuers[$1]")
				ce.Fields = append(ce.Fields, &fieldError{Line: p.Line, Key: p.Key, Msg: text})
				continue
			}
		}
		ce.Fields = append(ce.Fields, &fieldError{Msg: msg})
	}
	slices.SortStableFunc(ce.Fields, func(a, b *fieldError) int { return a.Line - b.Line })
	return ce
}

func CloseAll(ls ...net.Listener) {
	for _, l := range ls {
		if l != nil {
			_ = l.Close()
		}
	}
}
