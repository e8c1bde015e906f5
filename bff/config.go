package bff

import (
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Client authentication methods at the token and revocation endpoints
// (RFC 6749 §2.3.1, OpenID Connect Core §9).
const (
	ClientSecretBasic = "client_secret_basic"
	ClientSecretPost  = "client_secret_post"
	PrivateKeyJWT     = "private_key_jwt"
)

// When the authorization request is pushed (Config.PAR): RFC 9126
// Pushed Authorization Requests.
const (
	// PARAuto pushes it when the authorization server's metadata has a
	// pushed_authorization_request_endpoint, and sends it through the
	// browser otherwise. The default.
	PARAuto = "auto"
	// PARRequired always pushes it: a login fails (503, logged) when the
	// authorization server has no pushed_authorization_request_endpoint.
	PARRequired = "required"
	// PAROff never pushes it: a login fails (503, logged) when the
	// authorization server says require_pushed_authorization_requests.
	PAROff = "off"
)

// Defaults of the zero Config fields.
const (
	DefaultPath               = "/bff"
	DefaultSessionIdleTimeout = 8 * time.Hour
	DefaultSessionLifetime    = 24 * time.Hour
	DefaultRefreshMargin      = 30 * time.Second
	// LoginTimeout is how long a started login may take: its login
	// cookie lives this long.
	LoginTimeout = 10 * time.Minute
	// MaxTokenSize bounds each token the authorization server returns
	// (access, refresh, ID): a larger one fails the login or refresh.
	MaxTokenSize = 16 << 10
)

// Config configures a [Handler]. [New] copies it. Every zero value is a
// safe default, documented on its field.
type Config struct {
	// Issuer is the authorization server's issuer identifier; its
	// metadata (RFC 8414 or OpenID Connect discovery) gives the
	// authorization, token, revocation and end-session endpoints and the
	// keys that sign ID tokens. Required.
	Issuer string

	// ClientID identifies this token handler at the authorization server,
	// a confidential client. Required.
	ClientID string
	// ClientAuthMethod is how it authenticates at the token and revocation
	// endpoints: ClientSecretBasic (default with ClientSecret),
	// ClientSecretPost or PrivateKeyJWT (default with ClientKey).
	ClientAuthMethod string
	// ClientSecret is the secret for client_secret_basic and
	// client_secret_post.
	ClientSecret string
	// ClientKey signs private_key_jwt client assertions (RFC 7523), with
	// ClientKeyAlgorithm (default: RS256 for RSA, ES256/ES384/ES512 by
	// curve, EdDSA for Ed25519) and ClientKeyID as "kid" when set.
	ClientKey          crypto.Signer
	ClientKeyAlgorithm string
	ClientKeyID        string

	// Scopes are requested at login; they must include "openid" (the ID
	// token proves who logged in) and should include "offline_access"
	// where the authorization server needs it for a refresh token.
	Scopes []string
	// Resource is the RFC 8707 resource indicator sent at login and at
	// every token request: the API the access tokens are for. "" sends
	// none.
	Resource string

	// PublicURL is the origin (and optional base path) the browser uses
	// to reach this handler, https unless the host is loopback or
	// InsecureAllowHTTP is set. The redirect URI is PublicURL + Path +
	// "/callback", and must be registered exactly at the authorization
	// server. Required.
	PublicURL string
	// Path is where the handler's endpoints live: Path+"/login",
	// "/callback", "/user", "/logout" (and "/backchannel"). "" means
	// DefaultPath.
	Path string
	// AllowedOrigins are the origins (scheme://host[:port]) whose pages
	// may make session-authenticated requests. nil means the origin of
	// PublicURL.
	AllowedOrigins []string
	// PostLogoutRedirectURL is sent as post_logout_redirect_uri in the
	// logout URL /logout returns; "" sends none.
	PostLogoutRedirectURL string
	// BackchannelLogout serves POST Path+"/backchannel", where the
	// authorization server ends sessions with logout tokens (OpenID
	// Connect Back-Channel Logout 1.0; register
	// [Handler.BackchannelLogoutURI] as the client's
	// backchannel_logout_uri). With it, each session made at a login is
	// also recorded in the Store's indexes under its ID token's sid and
	// sub, which that endpoint reads: sessions made while it was off are
	// not found. false (the default) answers 404 there and writes no
	// index.
	BackchannelLogout bool

	// PAR says when the authorization request is pushed to the
	// authorization server (RFC 9126) instead of travelling in the
	// browser's URL: PARAuto, PARRequired or PAROff; "" means PARAuto.
	// A pushed request is a POST to the pushed_authorization_request_endpoint
	// carrying every authorization parameter, authenticated like the
	// token requests (ClientAuthMethod); the browser is then sent to the
	// authorization endpoint with only client_id and the request_uri it
	// got back, so nothing of the request can be read or changed on the
	// way. When the handler should push but the push fails, the login
	// fails: 503 when the endpoint is unreachable or answers 5xx, 502
	// for a refusal or any answer but 201 with a request_uri and
	// expires_in. It never falls back to the browser.
	PAR string

	// DPoP binds the tokens of each new session to a key of its own
	// (RFC 9449): an ES256 (P-256) key made at the login, kept in the
	// session (encrypted in the Store like the tokens, never sent to the
	// browser, not even sealed in a cookie), and its thumbprint sent as
	// dpop_jkt with the authorization request. Every token request (the
	// code exchange, each refresh) carries a DPoP proof, answering one
	// use_dpop_nonce demand with one retry; a token response whose
	// token_type is not DPoP is refused. Authenticate then forwards the
	// session's access token as "Authorization: DPoP" with a fresh proof
	// for the request's method and PublicURL + path. The key is derived
	// from the login's state and SessionKey (or the handler's own key
	// without one), so replicas sharing SessionKey agree on it and
	// nothing is stored before the user has logged in. Sessions made
	// while DPoP was off go on with Bearer tokens, and sessions made with
	// it keep their key when it is turned off.
	DPoP bool
	// DPoPNonce, when set, is called for each proof Authenticate makes
	// and its non-empty result is put in the proof as "nonce": the way
	// to satisfy a resource server that demands server nonces (a
	// middleware.Guard with DPoP.Nonce), such as one issuing stateless
	// nonces from the same secret (dpop.NewNonces(secrets,
	// lifetime).Issue). It must be safe for concurrent use. nil puts no
	// nonce in those proofs. Nonces of the authorization server are
	// learned from its answers, not from here. Authenticate never retries
	// a request the resource server refuses.
	DPoPNonce func() string

	// Store keeps sessions (and the states of completed logins). nil means a MemoryStore of
	// DefaultMaxEntries. A store shared by replicas (bff/redisstore)
	// needs SessionKey.
	Store Store
	// SessionKey (SessionKeySize bytes) encrypts what the store holds
	// with AES-256-GCM. Required unless Store is a *MemoryStore (or nil).
	SessionKey []byte
	// PreviousSessionKey still decrypts entries written under the key in
	// use before a rotation; each entry is re-encrypted under SessionKey
	// the next time it is written.
	PreviousSessionKey []byte

	// SessionIdleTimeout ends a session not used for this long; 0 means
	// DefaultSessionIdleTimeout.
	SessionIdleTimeout time.Duration
	// SessionLifetime ends a session this long after login, used or not;
	// 0 means DefaultSessionLifetime.
	SessionLifetime time.Duration
	// RefreshMargin: an access token that expires within this margin is
	// refreshed before the request is forwarded. 0 means
	// DefaultRefreshMargin.
	RefreshMargin time.Duration

	// HTTPClient talks to the authorization server (metadata, keys, token
	// and revocation endpoints). nil means a client with a 10 s timeout
	// that follows no redirects from https to http.
	HTTPClient *http.Client
	// InsecureAllowHTTP permits plain http:// issuer, endpoints and
	// PublicURL on non-loopback hosts. Loopback does not need it.
	InsecureAllowHTTP bool

	// Logger receives login, refresh and store failures, never a token or
	// a session id. nil means no logging.
	Logger *slog.Logger
	// Registerer receives the handler's metrics:
	// tokenguard_bff_logins_total{result},
	// tokenguard_bff_refreshes_total{result},
	// tokenguard_bff_backchannel_logouts_total{result} and, with a
	// MemoryStore, tokenguard_bff_sessions. nil means none are registered. Handlers
	// given the same Registerer share the series (a handler replacing
	// another keeps its counters going; the sessions gauge counts the
	// MemoryStore of the handler made last).
	Registerer prometheus.Registerer
	// OnDeny, when set, is called with the error code ("csrf_header_required",
	// "origin_not_allowed", "login_required", "temporarily_unavailable")
	// whenever the session rule refuses a request, before the answer is
	// written: for access logs.
	OnDeny func(r *http.Request, code string)
	// OnBackchannelLogout, when set, is called once for every request to
	// the back-channel logout endpoint, before the answer is written,
	// with the result the metric counts ("ended", "no_session",
	// "invalid", "replayed", "unavailable") and how many sessions it
	// ended: for access logs. Never with the token or its claims.
	OnBackchannelLogout func(r *http.Request, result string, sessions int)
	// Now is the clock; nil means time.Now. For tests.
	Now func() time.Time
}

// withDefaults returns a checked copy of c with defaults filled in.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("bff: "+format, args...)) }
	if c.Issuer == "" {
		bad("Issuer is required")
	}
	if c.ClientID == "" {
		bad("ClientID is required")
	}
	if c.ClientAuthMethod == "" {
		c.ClientAuthMethod = ClientSecretBasic
		if c.ClientKey != nil {
			c.ClientAuthMethod = PrivateKeyJWT
		}
	}
	switch c.ClientAuthMethod {
	case ClientSecretBasic, ClientSecretPost:
		if c.ClientSecret == "" {
			bad("ClientSecret is required with %s", c.ClientAuthMethod)
		}
		if c.ClientKey != nil {
			bad("ClientKey is set but ClientAuthMethod is %s", c.ClientAuthMethod)
		}
	case PrivateKeyJWT:
		if c.ClientKey == nil {
			bad("ClientKey is required with private_key_jwt")
		}
		if c.ClientSecret != "" {
			bad("ClientSecret is set but ClientAuthMethod is private_key_jwt")
		}
	default:
		bad("ClientAuthMethod %q is not one of client_secret_basic, client_secret_post, private_key_jwt", c.ClientAuthMethod)
	}
	if !slices.Contains(c.Scopes, "openid") {
		bad("Scopes must include \"openid\": the ID token proves who logged in")
	}
	if c.Resource != "" {
		if u, err := url.Parse(c.Resource); err != nil || !u.IsAbs() || u.Fragment != "" {
			bad("Resource %q must be an absolute URI without a fragment (RFC 8707 §2)", c.Resource)
		}
	}
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if !strings.HasPrefix(c.Path, "/") || strings.HasSuffix(c.Path, "/") || strings.ContainsAny(c.Path, "?#%\\") || strings.Contains(c.Path, "//") {
		bad("Path %q must start with / and not end with one, without ?, #, %% or \\", c.Path)
	}
	pub, err := checkHTTPURL(c.PublicURL, c.InsecureAllowHTTP)
	if err != nil {
		bad("PublicURL: %v", err)
	} else {
		c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
		if c.AllowedOrigins == nil {
			c.AllowedOrigins = []string{origin(pub)}
		}
		if pub.Scheme != "https" {
			// __Host- cookies need Secure, which browsers only keep
			// from https, except on localhost.
			if !loopback(pub.Hostname()) {
				bad("PublicURL %q: the session cookie is Secure, so browsers need https (or localhost)", c.PublicURL)
			}
		}
	}
	for _, o := range c.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil || o != strings.ToLower(o) {
			bad("AllowedOrigins: %q is not an origin (scheme://host[:port], lower case, nothing after)", o)
		} else if origin(u) != o {
			// Browsers never send the default port in Origin.
			bad("AllowedOrigins: %q names its scheme's default port; browsers send %q", o, origin(u))
		}
	}
	if c.PostLogoutRedirectURL != "" {
		if _, err := checkHTTPURL(c.PostLogoutRedirectURL, c.InsecureAllowHTTP); err != nil {
			bad("PostLogoutRedirectURL: %v", err)
		}
	}
	switch c.PAR {
	case "":
		c.PAR = PARAuto
	case PARAuto, PARRequired, PAROff:
	default:
		bad("PAR %q is not one of auto, required, off", c.PAR)
	}
	if c.DPoPNonce != nil && !c.DPoP {
		bad("DPoPNonce is set but DPoP is off")
	}
	if c.Store == nil {
		c.Store, _ = NewMemoryStore(0)
	}
	if _, mem := c.Store.(*MemoryStore); !mem && c.SessionKey == nil {
		bad("SessionKey is required with a store outside this process: it encrypts the tokens the store keeps")
	}
	if c.SessionKey != nil && len(c.SessionKey) != SessionKeySize {
		bad("SessionKey must be %d bytes, got %d", SessionKeySize, len(c.SessionKey))
	}
	if c.PreviousSessionKey != nil && len(c.PreviousSessionKey) != SessionKeySize {
		bad("PreviousSessionKey must be %d bytes, got %d", SessionKeySize, len(c.PreviousSessionKey))
	}
	if c.SessionIdleTimeout == 0 {
		c.SessionIdleTimeout = DefaultSessionIdleTimeout
	}
	if c.SessionLifetime == 0 {
		c.SessionLifetime = DefaultSessionLifetime
	}
	if c.SessionIdleTimeout < time.Minute || c.SessionLifetime < time.Minute {
		bad("SessionIdleTimeout and SessionLifetime must be at least a minute")
	}
	if c.SessionIdleTimeout > c.SessionLifetime {
		bad("SessionIdleTimeout %v is longer than SessionLifetime %v", c.SessionIdleTimeout, c.SessionLifetime)
	}
	if c.RefreshMargin == 0 {
		c.RefreshMargin = DefaultRefreshMargin
	}
	if c.RefreshMargin < 0 {
		bad("RefreshMargin must not be negative")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, errors.Join(errs...)
}

// origin is u's origin as a browser serializes it in the Origin header:
// scheme://host, with the port only when it is not the scheme's default.
func origin(u *url.URL) string {
	host := u.Host
	if p := u.Port(); (u.Scheme == "https" && p == "443") || (u.Scheme == "http" && p == "80") {
		host = strings.TrimSuffix(host, ":"+p)
	}
	return strings.ToLower(u.Scheme + "://" + host)
}

// checkHTTPURL checks an absolute http(s) URL without user info, query or
// fragment; http only to loopback unless insecure.
func checkHTTPURL(raw string, insecure bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("%q must not carry user info, a query or a fragment", raw)
	case u.Scheme == "http" && !insecure && !loopback(u.Hostname()):
		return nil, fmt.Errorf("%q is plain http to a host that is not loopback (set InsecureAllowHTTP to allow it)", raw)
	}
	return u, nil
}

func loopback(host string) bool {
	return host == "localhost" || host == "::1" || strings.HasPrefix(host, "127.")
}
