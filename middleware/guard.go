package middleware

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/discovery"
	"github.com/tokenguard/tokenguard/internal/jose"
	"github.com/tokenguard/tokenguard/internal/tokencache"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/jwks"
)

// Guard verifies access tokens and wraps handlers so that only requests
// carrying a valid token reach them. Create one with New; it is safe for
// concurrent use. Close stops its background key refreshes.
type Guard struct {
	cfg     Config                          // private copy, defaults filled; read-only after New
	issuers map[string]*issuer              // by exact "iss"; read-only after New
	order   []*issuer                       // Config.Issuers order, for readiness and Close
	cache   *tokencache.Cache[*cachedToken] // nil when disabled
	headers *jose.HeaderCache               // protected headers of tokens that verified
	metrics *metrics
	log     *slog.Logger

	// DPoP; proofs is nil when DPoP is disabled.
	proofs    *dpop.Verifier
	algsParam string // the challenge's algs= value
	publicURL string // Config.PublicURL without a trailing "/"; "" when unset

	meta        resourceMeta // RFC 9728
	metadataURL string       // resource_metadata= in challenges; "" when not advertised

	// Opaque tokens: the one issuer that introspects them, or nil.
	introspector atomic.Pointer[introspect.Client] // nil until configured or discovered

	// Key sets and introspection clients replaced after a metadata
	// change. Requests may still hold them briefly, so each is closed
	// only when the next one is retired, or by Close.
	retiredMu      sync.Mutex
	retiredSet     *jwks.Set
	retiredIntrosp *introspect.Client
	introIss       *issuer // the issuer that introspects, or nil

	closeOnce sync.Once
	closeErr  error
}

// issuer is one configured authorization server and its key set.
type issuer struct {
	cfg  Issuer
	keys atomic.Pointer[jwks.Set] // nil until the JWKS URI is known (discovery)

	// For discovered metadata: stops the discovery loop and waits for it.
	stopDiscovery context.CancelFunc
	discovered    chan struct{}

	retiredMu  sync.Mutex
	retiredSet *jwks.Set // replaced after a jwks_uri change; closed by the next retire or Close
}

// ready reports whether the issuer's keys have loaded.
func (is *issuer) ready() bool {
	set := is.keys.Load()
	return set != nil && set.Ready()
}

// discoveryBackoff bounds the wait between failed metadata fetches.
const (
	discoveryMinBackoff        = 500 * time.Millisecond
	discoveryRefetchMinBackoff = 10 * time.Second
	discoveryMaxBackoff        = 30 * time.Second

	// setSwitchWait bounds how long a new key set (after jwks_uri
	// changed) may take to load before the switch is given up.
	setSwitchWait = 30 * time.Second
)

// discover fetches the issuer's metadata, retrying with backoff until it
// succeeds, hands it to found, and then fetches it again every refresh
// (after a failed refetch: with backoff, never faster than every 10 s or
// refresh, whichever is shorter),
// until ctx ends. A failed refetch changes nothing: the last good
// metadata stays in use.
func (is *issuer) discover(ctx context.Context, dc discovery.Config, refresh time.Duration, found func(*discovery.Metadata), log *slog.Logger) {
	defer close(is.discovered)
	backoff, loaded := discoveryMinBackoff, false
	wait := time.Duration(0)
	for {
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		md, err := discovery.Fetch(ctx, dc)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if !loaded {
				log.Info("issuer metadata discovered", "iss", is.cfg.Issuer, "jwks_uri", md.JWKSURI,
					"introspection_endpoint", md.IntrospectionEndpoint, "source", md.Source)
			}
			found(md)
			loaded, backoff, wait = true, discoveryMinBackoff, refresh
			continue
		}
		if loaded {
			backoff = max(backoff, min(discoveryRefetchMinBackoff, refresh))
			log.Warn("issuer metadata refetch failed; keeping the last good metadata", "iss", is.cfg.Issuer, "err", err, "retry_in", backoff)
		} else {
			log.Warn("issuer metadata discovery failed; retrying", "iss", is.cfg.Issuer, "err", err, "retry_in", backoff)
		}
		wait = backoff
		backoff = min(2*backoff, discoveryMaxBackoff)
	}
}

// cachedToken is a verified token: valid until expires, and only while the
// key that verified it is still in its issuer's JWKS.
type cachedToken struct {
	p       *Principal
	iss     *issuer
	kid     string
	key     *jwks.Key
	expires time.Time
	// snap is the issuer's key-set snapshot that held key under kid when
	// the token was verified, or nil: while it is still the current one,
	// the key is still in the JWKS without looking it up.
	snap *jwks.Snapshot
}

// New validates cfg, starts fetching every issuer's keys, and waits up to
// Config.StartupWait (or until ctx is done) for them to load. A
// configuration mistake is an error naming each bad field; an issuer that
// cannot be reached is not: the guard answers 503 for its tokens until its
// keys load, and Ready reports false meanwhile.
//
// ctx bounds only the wait; the background refreshes run until Close.
func New(ctx context.Context, cfg Config) (*Guard, error) {
	cfg.Issuers = slices.Clone(cfg.Issuers)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	g := &Guard{
		cfg:     cfg,
		issuers: make(map[string]*issuer, len(cfg.Issuers)),
		metrics: m,
		log:     cfg.Logger,
		headers: jose.NewHeaderCache(),
	}
	g.publicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	g.setUpResourceMetadata()
	if cfg.DPoP.Mode != DPoPDisabled {
		if err := g.setUpDPoP(); err != nil {
			return nil, err
		}
	}
	if !cfg.DisableTokenCache {
		if g.cache, err = tokencache.New[*cachedToken](cfg.TokenCacheSize); err != nil {
			return nil, fmt.Errorf("middleware: TokenCacheSize: %w", err)
		}
	}
	onRefresh := func(result string) { m.jwksRefresh.WithLabelValues(result).Inc() }
	for i, ic := range cfg.Issuers {
		start := func(jwksURI string) (*jwks.Set, error) {
			// The context only bounds jwks.New's initial wait, which
			// is off: New waits for all issuers at once below.
			return jwks.New(context.Background(), jwks.Config{
				URL:                jwksURI,
				HTTPClient:         cfg.HTTPClient,
				WrapTransport:      cfg.wrapTransport(purposeJWKS),
				Algorithms:         cfg.Algorithms,
				MinRefreshInterval: cfg.JWKSMinRefreshInterval,
				MaxRefreshInterval: cfg.JWKSMaxRefreshInterval,
				RefreshRateLimit:   cfg.JWKSRefreshRateLimit,
				RefreshContext:     cfg.JWKSRefreshContext,
				InitialWait:        -1,
				InsecureAllowHTTP:  cfg.InsecureAllowHTTP,
				Logger:             cfg.Logger.With("iss", ic.Issuer),
				OnRefresh:          onRefresh,
			})
		}
		is := &issuer{cfg: ic}
		g.issuers[ic.Issuer] = is
		g.order = append(g.order, is)
		introspects := ic.IntrospectionEndpoint != "" || ic.ClientID != ""
		if introspects {
			g.introIss = is
		}
		if ic.JWKSURI != "" {
			set, err := start(ic.JWKSURI)
			if err != nil {
				g.Close()
				return nil, fmt.Errorf("middleware: Issuers[%d]: %w", i, err)
			}
			is.keys.Store(set)
		}
		if ic.IntrospectionEndpoint != "" {
			c, err := g.newIntrospector(is, ic.IntrospectionEndpoint, m)
			if err != nil {
				g.Close()
				return nil, fmt.Errorf("middleware: Issuers[%d]: %w", i, err)
			}
			g.introspector.Store(c)
		}
		if ic.JWKSURI != "" && (ic.IntrospectionEndpoint != "" || !introspects) {
			continue // nothing to discover
		}
		log := cfg.Logger
		dctx, stop := context.WithCancel(context.Background())
		var curJWKS, curIntro string // what found last put in use
		found := func(md *discovery.Metadata) {
			if ic.JWKSURI == "" && md.JWKSURI != curJWKS {
				if is.switchKeys(dctx, start, md.JWKSURI, log) {
					curJWKS = md.JWKSURI
				}
			}
			if introspects && ic.IntrospectionEndpoint == "" && md.IntrospectionEndpoint != curIntro {
				if md.IntrospectionEndpoint == "" {
					log.Error("issuer metadata has no introspection_endpoint; opaque tokens get 503 (or keep the last one)", "iss", ic.Issuer)
					return
				}
				c, err := g.newIntrospector(is, md.IntrospectionEndpoint, m)
				if err != nil {
					log.Error("discovered introspection_endpoint refused", "iss", ic.Issuer, "err", err)
					return
				}
				g.retireIntrospector(g.introspector.Swap(c))
				curIntro = md.IntrospectionEndpoint
			}
		}
		is.stopDiscovery, is.discovered = stop, make(chan struct{})
		refresh := cfg.discoveryRefresh
		if refresh <= 0 {
			refresh = DiscoveryRefreshInterval
		}
		go is.discover(dctx, discovery.Config{
			Issuer:            ic.Issuer,
			HTTPClient:        cfg.HTTPClient,
			WrapTransport:     cfg.wrapTransport(purposeDiscovery),
			InsecureAllowHTTP: cfg.InsecureAllowHTTP,
		}, refresh, found, cfg.Logger)
	}
	g.waitReady(ctx, cfg.StartupWait)
	return g, nil
}

// switchKeys starts a key set for jwksURI and puts it in use: at once when
// the issuer has none yet, else only once it has loaded (so a jwks_uri
// change never leaves requests without keys), retiring the old one. It
// gives up when ctx ends (the guard closing) or after setSwitchWait, and
// reports whether the new set is in use.
func (is *issuer) switchKeys(ctx context.Context, start func(string) (*jwks.Set, error), jwksURI string, log *slog.Logger) bool {
	set, err := start(jwksURI)
	if err != nil {
		log.Error("discovered jwks_uri refused", "iss", is.cfg.Issuer, "err", err)
		return false
	}
	if is.keys.Load() == nil {
		is.keys.Store(set)
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, setSwitchWait) // also ends when the guard closes
	defer cancel()
	for !set.Ready() {
		select {
		case <-ctx.Done():
			log.Warn("new jwks_uri did not load; keeping the old keys", "iss", is.cfg.Issuer, "jwks_uri", jwksURI)
			set.Close()
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	is.retire(is.keys.Swap(set))
	log.Info("switched to the new jwks_uri", "iss", is.cfg.Issuer, "jwks_uri", jwksURI)
	return true
}

// retire keeps a replaced key set until the next replacement, then closes it.
func (is *issuer) retire(old *jwks.Set) {
	is.retiredMu.Lock()
	prev := is.retiredSet
	is.retiredSet = old
	is.retiredMu.Unlock()
	if prev != nil {
		prev.Close()
	}
}

// retireIntrospector keeps a replaced introspection client until the next
// replacement, then closes it.
func (g *Guard) retireIntrospector(old *introspect.Client) {
	g.retiredMu.Lock()
	prev := g.retiredIntrosp
	g.retiredIntrosp = old
	g.retiredMu.Unlock()
	if prev != nil {
		prev.Close()
	}
}

// newIntrospector makes the RFC 7662 client for issuer is's endpoint.
// Signed answers (RFC 9701) are verified with the issuer's own key set,
// whichever is in use at the time: no second fetcher of its JWKS.
func (g *Guard) newIntrospector(is *issuer, endpoint string, m *metrics) (*introspect.Client, error) {
	ic := is.cfg
	var format introspect.ResponseFormat
	var keys introspect.KeySet
	if ic.IntrospectionResponse == "jwt" {
		format, keys = introspect.ResponseJWT, issuerKeys{is}
	}
	method := map[string]introspect.AuthMethod{
		"":                    introspect.ClientSecretBasic,
		"client_secret_basic": introspect.ClientSecretBasic,
		"client_secret_post":  introspect.ClientSecretPost,
		"private_key_jwt":     introspect.PrivateKeyJWT,
	}[ic.IntrospectionAuthMethod]
	// Introspection must never follow a redirect: a redirected POST
	// would carry the token and the client credentials elsewhere, and
	// the answer would come from whoever it was sent to.
	hc := g.cfg.HTTPClient
	if hc != nil {
		c := *hc
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		hc = &c
	}
	return introspect.New(introspect.Config{
		Endpoint:          endpoint,
		Issuer:            ic.Issuer,
		Audience:          g.cfg.Audience,
		ClientID:          ic.ClientID,
		ClientSecret:      ic.ClientSecret,
		AuthMethod:        method,
		PrivateKey:        ic.IntrospectionKey,
		KeyID:             ic.IntrospectionKeyID,
		HTTPClient:        hc,
		WrapTransport:     g.cfg.wrapTransport(purposeIntrospection),
		ResponseFormat:    format,
		Keys:              keys,
		MaxCacheAge:       ic.IntrospectionCacheMaxAge,
		RateLimit:         ic.IntrospectionRateLimit,
		Leeway:            g.cfg.Leeway,
		InsecureAllowHTTP: g.cfg.InsecureAllowHTTP,
		OnRequest:         func(result string) { m.introspection.WithLabelValues(result).Inc() },
		Now:               g.cfg.now,
	})
}

// issuerKeys looks keys up in the key set an issuer has in use: none
// (jwks.ErrNotLoaded) until its jwks_uri is discovered, then the current
// one, also after a jwks_uri change.
type issuerKeys struct{ is *issuer }

func (k issuerKeys) Lookup(ctx context.Context, kid string) (*jwks.Key, error) {
	set := k.is.keys.Load()
	if set == nil {
		return nil, jwks.ErrNotLoaded
	}
	return set.Lookup(ctx, kid)
}

// setUpResourceMetadata picks the RFC 9728 resource identifier
// (Config.Resource, else Audience when it is a URL) and the
// resource_metadata URL sent in challenges: Config.ResourceMetadataURL,
// else, with Config.AdvertiseResourceMetadata, the identifier's metadata
// URL; else none, so that no client is sent to a document nobody serves.
func (g *Guard) setUpResourceMetadata() {
	res := g.cfg.Resource
	if res == "" && checkPublicURL(g.cfg.Audience, g.cfg.InsecureAllowHTTP) == nil {
		res = g.cfg.Audience
	}
	if res != "" {
		g.meta.resource = res
		g.meta.url, g.meta.path = metadataURL(res)
	}
	switch {
	case g.cfg.ResourceMetadataURL != "":
		g.metadataURL = g.cfg.ResourceMetadataURL
	case g.cfg.AdvertiseResourceMetadata && g.meta.url != "":
		g.metadataURL = g.meta.url
	case g.cfg.AdvertiseResourceMetadata:
		g.log.Warn("AdvertiseResourceMetadata is set but there is no resource identifier (Resource, or an Audience that is an https URL): challenges carry no resource_metadata")
	}
}

// setUpDPoP builds the proof verifier from g.cfg.DPoP.
func (g *Guard) setUpDPoP() error {
	dc := g.cfg.DPoP
	vc := dpop.Config{
		Algorithms:   dc.Algorithms,
		MaxAge:       dc.MaxProofAge,
		MaxClockSkew: dc.MaxClockSkew,
		ReplayStore:  dc.ReplayStore,
		Now:          g.cfg.now,
	}
	if vc.ReplayStore == nil {
		size := dc.ReplayStoreSize
		if size == 0 {
			size = dpop.DefaultReplayStoreSize
		}
		store, err := dpop.NewMemoryReplayStoreQuota(size, cmp.Or(dc.ReplayKeyQuota, dpop.DefaultKeyQuota(size)))
		if err != nil {
			return fmt.Errorf("middleware: DPoP.ReplayStoreSize: %w", err)
		}
		vc.ReplayStore = store
	}
	if dc.Nonce {
		n, err := dpop.NewNonces(dc.NonceSecrets, dc.NonceLifetime)
		if err != nil {
			return fmt.Errorf("middleware: DPoP nonces: %w", err)
		}
		vc.Nonces = n
	} else if len(dc.NonceSecrets) > 0 {
		return errors.New("middleware: DPoP.NonceSecrets: set DPoP.Nonce to use them")
	}
	v, err := dpop.NewVerifier(vc)
	if err != nil {
		return fmt.Errorf("middleware: DPoP: %w", err)
	}
	g.proofs = v
	g.algsParam = strings.Join(v.Algorithms(), " ")
	return nil
}

// waitReady polls until every issuer has keys, d has passed, or ctx is
// done. The poll is coarse on purpose: it runs once per New.
func (g *Guard) waitReady(ctx context.Context, d time.Duration) {
	if d < 0 {
		return
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !g.Ready() {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			for _, is := range g.order {
				if !is.ready() {
					g.log.Warn("issuer keys not loaded yet; answering 503 for its tokens until they are",
						"iss", is.cfg.Issuer, "jwks_uri", is.cfg.JWKSURI)
				}
			}
			return
		case <-tick.C:
		}
	}
}

// Ready reports whether every issuer's keys have loaded at least once. Until
// then requests with that issuer's tokens get 503. Use it for readiness
// probes.
func (g *Guard) Ready() bool {
	for _, is := range g.order {
		if !is.ready() {
			return false
		}
	}
	return true
}

// Close stops the guard's background work and waits for it to finish. It
// is safe to call more than once. Handlers wrapped by the guard keep
// working with the keys they have, but keys are no longer refreshed.
func (g *Guard) Close() error {
	g.closeOnce.Do(func() {
		var errs []error
		for _, is := range g.order {
			if is.stopDiscovery != nil {
				is.stopDiscovery()
				<-is.discovered
			}
			if set := is.keys.Load(); set != nil {
				if err := set.Close(); err != nil {
					errs = append(errs, err)
				}
			}
			is.retire(nil)
		}
		if c := g.introspector.Load(); c != nil {
			c.Close()
		}
		g.retireIntrospector(nil)
		g.closeErr = errors.Join(errs...)
	})
	return g.closeErr
}

// Require returns middleware that lets a request through only if it carries
// a valid access token that grants every one of scopes. With no scopes, any
// valid token will do:
//
//	mux.Handle("GET /orders/", guard.Require("orders:read")(ordersHandler))
//
// The wrapped handler finds the verified token's Principal with
// PrincipalFrom. Denied requests get 400, 401, 403 or 503 with an RFC 6750
// WWW-Authenticate challenge (and the guard's JSON body, or what
// Config.OnDenial renders) and never reach the handler. The decision is
// the one Check makes.
//
// Scopes must be non-empty and free of spaces and quotes; Require panics
// otherwise, as RequirePolicy does. For any-of scope sets, DPoP-only
// routes, a maximum token age or RFC 9470 step-up, use RequirePolicy.
//
// The handler receives a shallow copy of the request (with the Principal in
// its context) and the caller's ResponseWriter unchanged, so optional
// interfaces such as http.Flusher and http.Hijacker survive.
func (g *Guard) Require(scopes ...string) func(http.Handler) http.Handler {
	return g.RequirePolicy(Policy{Scopes: scopes})
}

// logDenial records why a request was refused: reason, issuer and kid when
// known, and the internal cause. It never logs the token.
func (g *Guard) logDenial(in *request, e *Denial) {
	level := slog.LevelInfo
	if e.Status == http.StatusServiceUnavailable {
		level = slog.LevelWarn
	}
	ctx := in.ctx
	if !g.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("reason", string(e.Reason)),
		slog.Int("status", e.Status),
		slog.String("method", in.method()),
		slog.String("path", in.logPath()),
	}
	if e.iss != "" {
		attrs = append(attrs, slog.String("iss", truncate(e.iss)))
	}
	if e.kid != "" {
		attrs = append(attrs, slog.String("kid", truncate(e.kid)))
	}
	if e.alg != "" {
		attrs = append(attrs, slog.String("alg", truncate(e.alg)))
	}
	if e.Err != nil {
		attrs = append(attrs, slog.String("err", e.Err.Error()))
	}
	g.log.LogAttrs(ctx, level, "request denied", attrs...)
}

// maxLogValue bounds attacker-supplied strings (an unverified iss or kid)
// in log lines.
const maxLogValue = 128

func truncate(s string) string {
	if len(s) <= maxLogValue {
		return s
	}
	return s[:maxLogValue] + "…"
}
