package bff

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/tokenguard/tokenguard/internal/discovery"
	"github.com/tokenguard/tokenguard/internal/promreg"
	"github.com/tokenguard/tokenguard/jwks"
)

// Cookie names (DESIGN.md). Both carry the __Host- prefix, so a browser
// keeps them only with Secure, Path=/ and no Domain: no other host, not
// even a sibling subdomain, can set or overwrite them.
const (
	// SessionCookie holds the session id: 256 random bits, nothing else.
	SessionCookie = "__Host-tokenguard-session"
	// LoginCookiePrefix starts the name of a login cookie: one per
	// started login, holding that login's PKCE verifier, nonce and
	// return_to, sealed; it lives for LoginTimeout or until the callback.
	LoginCookiePrefix = "__Host-tokenguard-login-"
)

// CSRFHeader must be "1" on every session-authenticated request. A page
// of another site cannot add it without a CORS preflight that the API
// does not grant, and a plain form or link cannot add it at all.
const CSRFHeader = "X-CSRF"

// Handler is the token handler: it serves the login, callback, user and
// logout endpoints (and, with Config.BackchannelLogout, the back-channel
// logout endpoint) under Config.Path, and its Authenticate middleware
// turns a session cookie into a verified-upstream Authorization header.
// Its methods are safe for concurrent use.
type Handler struct {
	cfg       Config
	seal      *sealer // what the store keeps
	loginSeal *sealer // login cookies: always sealed, under SessionKey or a key of this process
	meta      *discovery.Cache
	client    *http.Client // to the authorization server, client auth added
	metrics   *metrics
	// dpopSecrets derive the sessions' DPoP keys (deriveDPoPKey): the
	// login cookies' key, then PreviousSessionKey when set. Read-only.
	dpopSecrets [][]byte
	// nonce is the authorization server's latest DPoP-Nonce.
	nonce atomic.Pointer[string]

	keysMu sync.Mutex
	keys   *jwks.Set // ID token keys, made on first use; guarded by keysMu

	flightMu   sync.Mutex
	flights    map[string]*refreshCall // session key -> refresh in flight
	refreshing sync.WaitGroup          // refresh goroutines, which Close waits for

	closeOnce sync.Once
}

// New checks cfg and returns a Handler. It fetches nothing yet: the
// issuer's metadata is read at the first login (and refreshed hourly), so
// a gateway starts while its authorization server is still coming up.
// Call Close when done.
func New(cfg Config) (*Handler, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	seal, err := newSealer(c.SessionKey, c.PreviousSessionKey)
	if err != nil {
		return nil, err
	}
	loginKey := c.SessionKey
	if loginKey == nil {
		// One process (a MemoryStore): a key of its own will do.
		loginKey = make([]byte, SessionKeySize)
		_, _ = rand.Read(loginKey)
	}
	loginSeal, err := newSealer(loginKey, c.PreviousSessionKey)
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: c, seal: seal, loginSeal: loginSeal, flights: map[string]*refreshCall{}}
	// The DPoP keys come from the key that seals login cookies: shared by
	// replicas with SessionKey, the handler's own otherwise.
	h.dpopSecrets = [][]byte{loginKey}
	if c.PreviousSessionKey != nil {
		h.dpopSecrets = append(h.dpopSecrets, c.PreviousSessionKey)
	}
	h.client = h.clientFor(c.HTTPClient)
	h.meta, err = discovery.NewCache(discovery.Config{
		Issuer:            c.Issuer,
		HTTPClient:        c.HTTPClient,
		InsecureAllowHTTP: c.InsecureAllowHTTP,
	}, 0)
	if err != nil {
		return nil, fmt.Errorf("bff: Issuer: %w", err)
	}
	if h.metrics, err = newMetrics(c.Registerer, c.Store); err != nil {
		_ = h.meta.Close()
		return nil, err
	}
	return h, nil
}

// Close waits for the refresh grants in flight (at most lockTTL: one may
// already have rotated a refresh token at the authorization server, and
// the new one must reach the store before it closes), then stops the
// metadata and key refreshes. It does not close the Store.
func (h *Handler) Close() error {
	h.closeOnce.Do(func() {
		done := make(chan struct{})
		go func() { h.refreshing.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(lockTTL):
		}
		_ = h.meta.Close()
		h.keysMu.Lock()
		if h.keys != nil {
			_ = h.keys.Close()
		}
		h.keysMu.Unlock()
	})
	return nil
}

// Path returns the prefix of the handler's endpoints (Config.Path).
func (h *Handler) Path() string { return h.cfg.Path }

// RedirectURI returns the URI to register at the authorization server.
func (h *Handler) RedirectURI() string { return h.cfg.PublicURL + h.cfg.Path + "/callback" }

// BackchannelLogoutURI returns the URI to register at the authorization
// server as the client's backchannel_logout_uri, served when
// Config.BackchannelLogout is set.
func (h *Handler) BackchannelLogoutURI() string {
	return h.cfg.PublicURL + h.cfg.Path + "/backchannel"
}

// Owns reports whether r is for one of the handler's endpoints (its path
// is under Config.Path), which ServeHTTP answers.
func (h *Handler) Owns(r *http.Request) bool {
	p := r.URL.Path
	return p == h.cfg.Path || strings.HasPrefix(p, h.cfg.Path+"/")
}

// ServeHTTP serves the endpoints under Config.Path; any other path there
// is 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	var method string
	var serve func(http.ResponseWriter, *http.Request)
	switch strings.TrimPrefix(r.URL.Path, h.cfg.Path) {
	case "/login":
		method, serve = http.MethodGet, h.login
	case "/callback":
		method, serve = http.MethodGet, h.callback
	case "/user":
		method, serve = http.MethodGet, h.user
	case "/logout":
		method, serve = http.MethodPost, h.logout
	case "/backchannel":
		if !h.cfg.BackchannelLogout {
			writeError(w, http.StatusNotFound, "not_found")
			return
		}
		// Its own method rule: every refusal there is 400 (OpenID
		// Connect Back-Channel Logout 1.0 §2.8).
		h.backchannel(w, r)
		return
	default:
		writeError(w, http.StatusNotFound, "not_found")
		return
	}
	// HEAD is GET without a body, except for /login, which sets a cookie
	// and is only ever a navigation.
	if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead && serve != nil && strings.TrimPrefix(r.URL.Path, h.cfg.Path) != "/login") {
		w.Header().Set("Allow", method)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed")
		return
	}
	serve(w, r)
}

// endpoints returns the issuer's metadata, or an error for a 503.
func (h *Handler) endpoints(ctx context.Context) (*discovery.Metadata, error) {
	md, err := h.meta.Get(ctx)
	if err != nil {
		return nil, err
	}
	if md.AuthorizationEndpoint == "" || md.TokenEndpoint == "" {
		return nil, errors.New("bff: the issuer's metadata has no authorization_endpoint or token_endpoint")
	}
	if md.JWKSURI == "" {
		return nil, errors.New("bff: the issuer's metadata has no jwks_uri to verify ID tokens with")
	}
	return md, nil
}

// oauthConfig is the x/oauth2 client for the issuer's current endpoints.
func (h *Handler) oauthConfig(md *discovery.Metadata) *oauth2.Config {
	style := oauth2.AuthStyleInHeader
	if h.cfg.ClientAuthMethod != ClientSecretBasic {
		style = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{
		ClientID:     h.cfg.ClientID,
		ClientSecret: h.cfg.ClientSecret,
		Endpoint:     oauth2.Endpoint{AuthURL: md.AuthorizationEndpoint, TokenURL: md.TokenEndpoint, AuthStyle: style},
		RedirectURL:  h.RedirectURI(),
		Scopes:       h.cfg.Scopes,
	}
}

// keySet returns the issuer's keys, made on first use.
func (h *Handler) keySet(ctx context.Context, md *discovery.Metadata) (*jwks.Set, error) {
	h.keysMu.Lock()
	defer h.keysMu.Unlock()
	if h.keys != nil {
		return h.keys, nil
	}
	set, err := jwks.New(ctx, jwks.Config{
		URL:               md.JWKSURI,
		HTTPClient:        h.cfg.HTTPClient,
		InsecureAllowHTTP: h.cfg.InsecureAllowHTTP,
		Logger:            h.cfg.Logger,
		InitialWait:       5 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	h.keys = set
	return set, nil
}

// writeError answers {"error": code}.
func writeError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "{\"error\":%q}\n", code)
}

// logErr logs a failure without any secret: err never wraps a token.
func (h *Handler) logErr(ctx context.Context, msg string, err error, attrs ...any) {
	h.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, msg, append([]slog.Attr{slog.String("error", err.Error())}, toAttrs(attrs)...)...)
}

func toAttrs(kv []any) []slog.Attr {
	out := make([]slog.Attr, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, slog.Any(kv[i].(string), kv[i+1]))
	}
	return out
}

// metrics are the handler's Prometheus collectors. Handlers sharing a
// Registerer share them: a handler that replaces another (a reload)
// counts on where it stopped, and the sessions gauge follows the newest
// handler's MemoryStore.
type metrics struct {
	logins      *prometheus.CounterVec
	refreshes   *prometheus.CounterVec
	backchannel *prometheus.CounterVec
}

// Login and refresh results (the result label).
const (
	resultSuccess      = "success"
	resultDenied       = "denied"        // the AS answered the authorization request with an error
	resultInvalidState = "invalid_state" // unknown, used or cross-browser callback
	resultExchange     = "exchange_failed"
	resultIDToken      = "invalid_id_token"
	resultStore        = "store_error"
	resultInvalidGrant = "invalid_grant"
	resultUnavailable  = "unavailable"
)

// Back-channel logout results (the result label).
const (
	resultEnded     = "ended"      // a valid logout token ended one session or more
	resultNoSession = "no_session" // a valid logout token that matched no session
	resultInvalid   = "invalid"    // refused: the request or the token
	resultReplayed  = "replayed"   // refused: a valid token whose jti was used already
	// resultUnavailable: the store, the issuer's metadata or its keys
	// could not be had; 503, for the authorization server to retry.
)

func newMetrics(reg prometheus.Registerer, store Store) (*metrics, error) {
	m := &metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenguard_bff_logins_total",
			Help: "Logins through the token handler by result (success, denied, invalid_state, exchange_failed, invalid_id_token, store_error, unavailable).",
		}, []string{"result"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenguard_bff_refreshes_total",
			Help: "Refresh grants made by the token handler by result (success, invalid_grant, unavailable, store_error).",
		}, []string{"result"}),
		backchannel: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenguard_bff_backchannel_logouts_total",
			Help: "Back-channel logout requests by result (ended, no_session, invalid, replayed, unavailable).",
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	r := &promreg.Registration{Reg: reg}
	promreg.Add(r, &m.logins)
	promreg.Add(r, &m.refreshes)
	promreg.Add(r, &m.backchannel)
	if ms, ok := store.(*MemoryStore); ok {
		g := newSessionGauge()
		promreg.Add(r, &g)
		g.store.Store(ms)
	}
	if r.Err != nil {
		return nil, fmt.Errorf("bff: registering metrics: %w", r.Err)
	}
	return m, nil
}

// sessionGauge is tokenguard_bff_sessions: the live sessions of the
// MemoryStore of the handler made last.
type sessionGauge struct {
	desc  *prometheus.Desc
	store atomic.Pointer[MemoryStore]
}

func newSessionGauge() *sessionGauge {
	return &sessionGauge{desc: prometheus.NewDesc("tokenguard_bff_sessions", "Live sessions in the in-memory session store.", nil, nil)}
}

func (g *sessionGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *sessionGauge) Collect(ch chan<- prometheus.Metric) {
	if ms := g.store.Load(); ms != nil {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(ms.Count(sessionPrefix)))
	}
}
