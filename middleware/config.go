package middleware

import (
	"cmp"
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/netutil"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultLeeway         = 30 * time.Second
	DefaultMaxTokenSize   = 8 << 10
	DefaultTokenCacheSize = 10_000
	DefaultStartupWait    = 10 * time.Second
)

// DefaultAlgorithms is the signing-algorithm allow-list used when
// Config.Algorithms is nil: RS256, PS256, ES256, ES384 and EdDSA. It never
// includes "none" or an HMAC algorithm (RFC 8725 §3.1, §3.2).
func DefaultAlgorithms() []string {
	return []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"}
}

// supportedAlgorithms are the algorithms the verifier implements; an
// allow-list may name only these.
var supportedAlgorithms = []string{
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA",
}

// Config configures a Guard. New copies it, so changing a Config after
// New returns has no effect. Every zero value is a safe default, documented
// on its field.
type Config struct {
	// Audience is this resource server's identifier. A token's "aud" must
	// contain it (RFC 9068 §4). Required.
	Audience string

	// Issuers are the authorization servers whose tokens are accepted. At
	// least one is required. A token's unverified "iss" only selects which
	// issuer's keys are tried; an issuer's keys never verify another
	// issuer's tokens.
	Issuers []Issuer

	// DPoP configures sender-constrained tokens (RFC 9449). The zero value
	// is DPoPDisabled: the DPoP scheme is refused, and a DPoP-bound token
	// presented as Bearer is rejected.
	DPoP DPoPConfig

	// TLSClientCertificateBoundAccessTokens says that clients can present
	// TLS client certificates to this API: the server requests them
	// (tls.Config.ClientAuth), or a trusted TLS-terminating proxy reports
	// them (ContextWithClientCertificate). The RFC 9728 metadata then
	// carries "tls_client_certificate_bound_access_tokens": true, telling
	// clients that certificate-bound tokens (RFC 8705) work here. It only
	// advertises: a token bound to a certificate is checked against the
	// request's certificate, and refused without it, whatever this says.
	// False (the default): not advertised.
	TLSClientCertificateBoundAccessTokens bool

	// PublicURL is the external base URL clients use to reach the
	// protected API, such as "https://api.example.com". DPoP proofs' "htu"
	// is checked against PublicURL's scheme and host, its path (if any)
	// followed by the request's path. Set it whenever the server sits
	// behind a proxy or load balancer that terminates TLS or rewrites the
	// Host: the request's own scheme and Host are then not what the
	// client signed. X-Forwarded-* headers are never used.
	PublicURL string

	// Algorithms is the JWS "alg" allow-list. nil means DefaultAlgorithms.
	// Only asymmetric algorithms can be listed.
	Algorithms []string

	// Leeway is the clock skew tolerated when checking "exp", "nbf" and
	// "iat". Zero means DefaultLeeway (30 s); it must not be negative or
	// above 5 minutes.
	Leeway time.Duration

	// MaxTokenSize bounds the Authorization header's credentials, in bytes.
	// A larger credential is rejected before any parsing. Zero means
	// DefaultMaxTokenSize (8 KiB).
	MaxTokenSize int

	// TokenCacheSize bounds the verified-token cache, in entries. Zero
	// means DefaultTokenCacheSize. A cached token is still checked for
	// expiry and for its signing key's presence in the current JWKS on
	// every request; scopes are checked per route as usual.
	TokenCacheSize int

	// DisableTokenCache turns the verified-token cache off, so every
	// request verifies its token's signature.
	DisableTokenCache bool

	// Realm is the realm sent in WWW-Authenticate challenges. Empty means
	// Audience.
	Realm string

	// Resource is this API's resource identifier for RFC 9728 protected
	// resource metadata: an absolute https URL (http only to loopback or
	// with InsecureAllowHTTP), such as "https://api.example.com" or, for
	// an MCP server, "https://example.com/mcp". Empty means Audience when
	// Audience is such a URL; otherwise the guard publishes no metadata.
	Resource string

	// AdvertiseResourceMetadata says that the program serves the guard's
	// RFC 9728 metadata document: Guard.MetadataHandler mounted,
	// unguarded, at Guard.MetadataPath on the host of the resource
	// identifier. Every challenge then carries resource_metadata= with
	// the document's URL (RFC 9728 §5.1), which MCP clients and other
	// modern clients follow to find the authorization server. False (the
	// default) means no resource_metadata=, unless ResourceMetadataURL is
	// set: a client sent to a document nobody serves gets a 404 and
	// gives up. It has no effect without a resource identifier (Resource,
	// or an Audience that is a URL).
	AdvertiseResourceMetadata bool

	// ResourceMetadataURL, when set, is where the metadata document is
	// served, sent as resource_metadata= in every challenge whatever
	// AdvertiseResourceMetadata says: for a document served elsewhere
	// than the URL derived from the resource identifier (RFC 9728 §3.1).
	// Empty means that derived URL, advertised only with
	// AdvertiseResourceMetadata.
	ResourceMetadataURL string

	// HTTPClient fetches JWKS documents. nil means a client with a 10 s
	// timeout that refuses redirects to non-https URLs.
	HTTPClient *http.Client

	// WrapTransport, when set, wraps the Transport of each HTTP client the
	// guard builds itself, that is, when HTTPClient is nil: purpose is
	// "jwks" (key set fetches), "discovery" (RFC 8414 / OpenID metadata)
	// or "introspection" (RFC 7662), and the result is the RoundTripper
	// that client sends through. Use it for tracing, egress policy or
	// logging. It is called when a client is built, never per request: at
	// New, when discovery brings a new jwks_uri or introspection_endpoint,
	// and for each discovery fetch. The clients keep their timeouts and
	// redirect policies (introspection follows none), and the guard still
	// drops the idle connections of the Transports it wrapped. It may be
	// called from the guard's background goroutines. nil, or a nil
	// result, leaves the Transport unwrapped. It is not applied to
	// HTTPClient: wrap that client's Transport yourself.
	WrapTransport func(purpose string, rt http.RoundTripper) http.RoundTripper

	// JWKSRefreshContext, when set, gives the context a JWKS refresh
	// triggered by a token's unknown kid takes its values from, given the
	// context of the request whose token started it: return one that
	// holds only what the fetch may carry, such as the request's trace
	// span for a tracing WrapTransport, built on context.Background().
	// The refresh is shared by every request that waits on it and may
	// outlive them all, so no other value of the request's should ride
	// into it. It is called once per refresh, on that request's
	// goroutine, and must be fast. The result's cancellation and deadline
	// are ignored: the refresh never ends because a request did. nil, or
	// a nil result, means none: the refresh carries no value of any
	// request's. See jwks.Config.RefreshContext.
	JWKSRefreshContext func(caller context.Context) context.Context

	// Logger receives denials (reason, issuer, kid; never a token) and key
	// refresh events. nil means logs are discarded.
	Logger *slog.Logger

	// Registerer receives the guard's Prometheus metrics. nil means the
	// metrics are kept but not registered anywhere. A Guard given a
	// Registerer that already holds another Guard's metrics shares them:
	// both count into the same series.
	Registerer prometheus.Registerer

	// OnDecision, when set, is told the outcome of every request a
	// Require or RequirePolicy handler decides (ReasonOK or the denial's
	// reason), for access logs; see DecisionFunc. nil means no call and no
	// cost.
	OnDecision DecisionFunc

	// OnDenial, when set, renders a denial in the application's style
	// (a framework's error format, a Connect or problem+json body): it is
	// called, instead of writing the guard's JSON body, for every request
	// a Require or RequirePolicy handler refuses and every request
	// Hygiene refuses. d says what to answer (d.Status, d.Code,
	// d.Description); the guard has already set WWW-Authenticate,
	// DPoP-Nonce and Retry-After when they apply, Cache-Control: no-store
	// and X-Content-Type-Options: nosniff, counted the request, told
	// OnDecision and logged it. OnDenial writes the status and body: a
	// status below 400, or none, is sent as d.Status, so a denial is never
	// a success; it must not echo the request's credentials. nil means the
	// guard's JSON body, {"error":"<d.Code>","error_description":"…"}. It is
	// called concurrently for concurrent requests. Check never calls it.
	OnDenial func(w http.ResponseWriter, r *http.Request, d *Denial)

	// JWKSMinRefreshInterval and JWKSMaxRefreshInterval bound the refresh
	// interval taken from the JWKS response's Cache-Control/Expires. Zero
	// means 5 minutes and 24 hours.
	JWKSMinRefreshInterval time.Duration
	JWKSMaxRefreshInterval time.Duration

	// JWKSRefreshRateLimit is the minimum gap between refreshes triggered
	// by tokens with an unknown "kid", per issuer. Zero means 10 s.
	JWKSRefreshRateLimit time.Duration

	// StartupWait is how long New waits for every issuer's keys before
	// returning. An issuer that is down at start is not an error: the
	// guard answers 503 until its keys load (see Guard.Ready). Zero means
	// DefaultStartupWait; negative means New does not wait.
	StartupWait time.Duration

	// InsecureAllowHTTP permits plain http:// issuer and JWKS URLs to hosts
	// other than loopback. Loopback (127.0.0.0/8, ::1, localhost) is always
	// allowed for tests, demos and sidecars.
	InsecureAllowHTTP bool

	// now is the clock; tests replace it. realClock reports that it is
	// time.Now, so a reading already taken for the request can be reused.
	now       func() time.Time
	realClock bool
	// discoveryRefresh is how often discovered metadata is fetched again;
	// 0 means DiscoveryRefreshInterval. Tests shorten it.
	discoveryRefresh time.Duration
}

// DiscoveryRefreshInterval is how often an issuer's discovered metadata is
// fetched again, so a changed jwks_uri or introspection_endpoint is
// followed without a restart.
const DiscoveryRefreshInterval = time.Hour

// Issuer is one trusted authorization server.
type Issuer struct {
	// Issuer is the exact "iss" value of the tokens (RFC 8414 issuer
	// identifier). Required; compared byte for byte.
	Issuer string

	// JWKSURI is where the issuer's signing keys are published. Empty
	// means discovered: New fetches the issuer's RFC 8414 metadata
	// (/.well-known/oauth-authorization-server, then OpenID Connect's
	// /.well-known/openid-configuration), requires its "issuer" to equal
	// Issuer exactly, and uses its "jwks_uri" from then on. Until that
	// succeeds (retried in the background with backoff) the issuer's
	// tokens get 503 and Ready reports false.
	JWKSURI string

	// IntrospectionEndpoint, ClientID and ClientSecret configure RFC 7662
	// introspection for this issuer's opaque tokens (with a ClientID but
	// no IntrospectionEndpoint, the endpoint is discovered from the
	// issuer's metadata like JWKSURI; opaque tokens get 503 until then): a token that is not
	// three dot-separated segments (a compact JWS) is POSTed there and
	// accepted only if the answer is active and, for each of "iss",
	// "aud", "exp" and "nbf" that the answer includes, names this issuer,
	// includes Audience and is in date. An authorization server that
	// serves several APIs and omits "aud" vouches for tokens meant for
	// any of them: prefer one that sends it. At most one issuer may have
	// an endpoint: an opaque token names no issuer, and it must never be
	// sent to another one. A JWT that fails verification is a 401 and is
	// never introspected; so are tokens of exactly three segments that
	// are not JWTs (some opaque formats): they fail as malformed JWTs.
	IntrospectionEndpoint string
	ClientID              string
	ClientSecret          string

	// IntrospectionAuthMethod is how the guard authenticates to the
	// introspection endpoint: "client_secret_basic" (the default, ""),
	// "client_secret_post", or "private_key_jwt" (RFC 7523; signed with
	// IntrospectionKey, whose kid is IntrospectionKeyID if set).
	IntrospectionAuthMethod string
	IntrospectionKey        crypto.Signer
	IntrospectionKeyID      string

	// IntrospectionCacheMaxAge is how long an active introspection answer
	// is reused (never past the token's "exp"): the longest a revoked
	// token can still be accepted. Zero means 60 s; inactive answers are
	// reused for 5 s.
	IntrospectionCacheMaxAge time.Duration

	// IntrospectionRateLimit bounds the introspection requests sent to
	// this issuer per second; past it, tokens that need one get 503 at
	// once. With at most 64 in flight, it keeps a spray of random opaque
	// tokens, or an endpoint that is failing, from turning the guard into
	// a load generator against the authorization server. Zero means 200.
	IntrospectionRateLimit float64

	// IntrospectionResponse is the form of introspection answers the
	// guard asks for and believes: "json" (the default, ""), plain RFC
	// 7662 JSON trusted on TLS alone, or "jwt", answers signed by the
	// issuer (RFC 9701), verified with this issuer's keys under the rules
	// for access tokens (Algorithms, kid, no "none"), with "typ"
	// token-introspection+jwt, "iss" this issuer, "aud" ClientID or
	// Audience and a recent "iat". An answer that fails any check, a
	// plain JSON one included, is never believed: the request gets 503,
	// never access and never a cached "inactive". Only with introspection
	// (ClientID).
	IntrospectionResponse string

	// AllowLegacyTyp accepts tokens whose JOSE "typ" is "JWT" or absent,
	// as some identity providers still issue, instead of requiring
	// "at+jwt" (RFC 9068 §2.1). Such tokens need only "iss", "aud" and
	// "exp"; an "at+jwt" token must carry every claim RFC 9068 §2.2
	// requires. Off by default: the typ check is what stops an ID token
	// being used as an access token (RFC 8725 §3.11).
	AllowLegacyTyp bool

	// ScpClaim also reads scopes from the "scp" claim (an array of strings
	// or a space-delimited string, as Azure AD and Okta send), in addition
	// to RFC 9068's "scope".
	ScpClaim bool
}

// DPoPMode says whether DPoP-bound tokens (RFC 9449) are accepted.
type DPoPMode int

const (
	// DPoPDisabled refuses the DPoP scheme. Bearer tokens that are
	// DPoP-bound ("cnf" claim) are rejected, never downgraded.
	DPoPDisabled DPoPMode = iota
	// DPoPAllowed accepts Bearer tokens and DPoP-bound tokens with proofs.
	DPoPAllowed
	// DPoPRequired accepts only DPoP-bound tokens with proofs.
	DPoPRequired
)

// String returns the mode's configuration name.
func (m DPoPMode) String() string {
	switch m {
	case DPoPDisabled:
		return "disabled"
	case DPoPAllowed:
		return "allowed"
	case DPoPRequired:
		return "required"
	}
	return fmt.Sprintf("DPoPMode(%d)", int(m))
}

// DPoPConfig configures RFC 9449 proof checking. Every zero value is a
// safe default.
type DPoPConfig struct {
	// Mode is DPoPDisabled (the zero value), DPoPAllowed or DPoPRequired.
	Mode DPoPMode

	// Algorithms is the proof "alg" allow-list, announced in the
	// challenge's algs= parameter. nil means dpop.DefaultAlgorithms
	// (ES256, ES384, EdDSA, RS256, PS256).
	Algorithms []string

	// AllowedHosts, used only when Config.PublicURL is empty, lists the
	// Host header values (host or host:port, compared case-insensitively)
	// a DPoP request may carry; the proof's "htu" is then checked against
	// the request's own scheme and Host. A DPoP request with any other
	// Host is refused, so a forged Host cannot make a proof for one
	// endpoint pass at another. Empty means any Host is taken as is:
	// safe only when the server is reached by exactly one name. Prefer
	// Config.PublicURL.
	AllowedHosts []string

	// Nonce requires a server-issued nonce in every proof (RFC 9449 §9):
	// a proof without a valid one gets 401 error="use_dpop_nonce" and a
	// DPoP-Nonce header to retry with.
	Nonce bool

	// NonceSecrets are the HMAC keys (at least 32 bytes each) nonces are
	// made with: the first makes them, all are accepted, so a secret can
	// be rotated by adding the new one first. Replicas that share the
	// secrets accept each other's nonces. Empty with Nonce set means a
	// random key per Guard: fine for one instance, not for several.
	NonceSecrets [][]byte

	// NonceLifetime is how long a nonce stays valid: between one and two
	// lifetimes after it is issued. Zero means dpop.DefaultNonceLifetime.
	NonceLifetime time.Duration

	// ReplayStore remembers used proofs. nil means an in-memory store
	// (dpop.MemoryReplayStore) of ReplayStoreSize entries; use a shared
	// store such as dpop/redisstore when several replicas serve the same
	// API, or a proof accepted by one can be replayed at another.
	ReplayStore dpop.ReplayStore

	// ReplayStoreSize bounds the in-memory store, in entries. Zero means
	// dpop.DefaultReplayStoreSize. When full, new proofs are refused
	// with 503 rather than evicting proofs that could still be replayed.
	ReplayStoreSize int

	// ReplayKeyQuota bounds how many proofs one key may record in the
	// in-memory store per proof lifetime (MaxProofAge), so one client
	// cannot fill the store and take DPoP away from everyone; beyond it
	// its requests get 429 with Retry-After. Zero means
	// dpop.DefaultKeyQuota(ReplayStoreSize), a sixteenth of the store.
	// A store set in ReplayStore keeps its own quota
	// (redisstore.Options.KeyQuota).
	ReplayKeyQuota int

	// MaxProofAge is how old a proof's "iat" may be. Zero means
	// dpop.DefaultMaxAge (5 minutes).
	MaxProofAge time.Duration

	// MaxClockSkew is how far in the future a proof's "iat" may be. Zero
	// means dpop.DefaultMaxClockSkew (5 seconds).
	MaxClockSkew time.Duration
}

// validate checks c and fills in defaults. c must be a private copy.
func (c *Config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("middleware: %s: "+format, append([]any{field}, args...)...))
	}

	if c.Audience == "" {
		bad("Audience", "required")
	}
	if len(c.Issuers) == 0 {
		bad("Issuers", "at least one issuer is required")
	}
	seen := make(map[string]int, len(c.Issuers))
	introspecting := "" // the issuer with an IntrospectionEndpoint
	for i, is := range c.Issuers {
		name := fmt.Sprintf("Issuers[%d]", i)
		switch {
		case is.Issuer == "":
			bad(name+".Issuer", "required")
		default:
			if err := checkURL(is.Issuer, c.InsecureAllowHTTP); err != nil {
				bad(name+".Issuer", "%v", err)
			}
			if j, dup := seen[is.Issuer]; dup {
				bad(name+".Issuer", "duplicates Issuers[%d]", j)
			}
			seen[is.Issuer] = i
		}
		if is.JWKSURI != "" {
			if err := checkURL(is.JWKSURI, c.InsecureAllowHTTP); err != nil {
				bad(name+".JWKSURI", "%v", err)
			}
		}
		if is.IntrospectionEndpoint != "" || is.ClientID != "" {
			if introspecting != "" {
				bad(name+".IntrospectionEndpoint", "only one issuer may introspect opaque tokens (%s already does): an opaque token names no issuer", introspecting)
			}
			introspecting = is.Issuer
			if is.IntrospectionEndpoint != "" {
				if err := checkURL(is.IntrospectionEndpoint, c.InsecureAllowHTTP); err != nil {
					bad(name+".IntrospectionEndpoint", "%v", err)
				}
			}
			if is.ClientID == "" {
				bad(name+".ClientID", "required with IntrospectionEndpoint")
			}
		} else if is.ClientSecret != "" {
			bad(name+".ClientSecret", "set only with ClientID (for introspection)")
		}
		switch is.IntrospectionAuthMethod {
		case "", "client_secret_basic", "client_secret_post", "private_key_jwt":
		default:
			bad(name+".IntrospectionAuthMethod", "%q is not client_secret_basic, client_secret_post or private_key_jwt", is.IntrospectionAuthMethod)
		}
		if (is.IntrospectionAuthMethod == "private_key_jwt") != (is.IntrospectionKey != nil) {
			bad(name+".IntrospectionKey", "required with private_key_jwt, and only with it")
		}
		if is.IntrospectionCacheMaxAge < 0 {
			bad(name+".IntrospectionCacheMaxAge", "must not be negative")
		}
		if is.IntrospectionRateLimit < 0 || math.IsNaN(is.IntrospectionRateLimit) || math.IsInf(is.IntrospectionRateLimit, 0) {
			bad(name+".IntrospectionRateLimit", "must be a positive number of requests per second (0: 200)")
		}
		switch is.IntrospectionResponse {
		case "", "json":
		case "jwt":
			if is.IntrospectionEndpoint == "" && is.ClientID == "" {
				bad(name+".IntrospectionResponse", "set only with ClientID (for introspection)")
			}
		default:
			bad(name+".IntrospectionResponse", "%q is not json or jwt", is.IntrospectionResponse)
		}
	}

	switch c.DPoP.Mode {
	case DPoPDisabled, DPoPAllowed, DPoPRequired:
	default:
		bad("DPoP.Mode", "unknown mode %d", int(c.DPoP.Mode))
	}
	c.DPoP.Algorithms = slices.Clone(c.DPoP.Algorithms)
	c.DPoP.NonceSecrets = slices.Clone(c.DPoP.NonceSecrets)
	c.DPoP.AllowedHosts = slices.Clone(c.DPoP.AllowedHosts)
	for i, h := range c.DPoP.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/ \t@") {
			bad(fmt.Sprintf("DPoP.AllowedHosts[%d]", i), "%q is not a host or host:port", h)
		}
		c.DPoP.AllowedHosts[i] = strings.ToLower(h)
	}
	if c.DPoP.ReplayStoreSize < 0 {
		bad("DPoP.ReplayStoreSize", "must not be negative")
	}
	if size := cmp.Or(c.DPoP.ReplayStoreSize, dpop.DefaultReplayStoreSize); c.DPoP.ReplayKeyQuota < 0 || c.DPoP.ReplayKeyQuota > size {
		bad("DPoP.ReplayKeyQuota", "must be between 0 (the default) and the store size, %d", size)
	} else if c.DPoP.ReplayKeyQuota != 0 && c.DPoP.ReplayStore != nil {
		bad("DPoP.ReplayKeyQuota", "applies to the in-memory store only; set the quota on the ReplayStore")
	}
	if c.PublicURL != "" {
		if err := checkPublicURL(c.PublicURL, c.InsecureAllowHTTP); err != nil {
			bad("PublicURL", "%v", err)
		}
	}

	if c.Algorithms == nil {
		c.Algorithms = DefaultAlgorithms()
	} else {
		c.Algorithms = slices.Clone(c.Algorithms)
		if len(c.Algorithms) == 0 {
			bad("Algorithms", "empty allow-list (nil means the default)")
		}
		for _, a := range c.Algorithms {
			if !slices.Contains(supportedAlgorithms, a) {
				bad("Algorithms", "%q is not a supported asymmetric algorithm", a)
			}
		}
	}

	switch {
	case c.Leeway == 0:
		c.Leeway = DefaultLeeway
	case c.Leeway < 0 || c.Leeway > 5*time.Minute:
		bad("Leeway", "must be between 0 and 5m, got %v", c.Leeway)
	}
	switch {
	case c.MaxTokenSize == 0:
		c.MaxTokenSize = DefaultMaxTokenSize
	case c.MaxTokenSize < 0 || c.MaxTokenSize > 1<<20:
		bad("MaxTokenSize", "must be between 1 and 1 MiB, got %d", c.MaxTokenSize)
	}
	switch {
	case c.TokenCacheSize == 0:
		c.TokenCacheSize = DefaultTokenCacheSize
	case c.TokenCacheSize < 0:
		bad("TokenCacheSize", "must not be negative (use DisableTokenCache)")
	}
	if c.StartupWait == 0 {
		c.StartupWait = DefaultStartupWait
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"JWKSMinRefreshInterval", c.JWKSMinRefreshInterval},
		{"JWKSMaxRefreshInterval", c.JWKSMaxRefreshInterval},
		{"JWKSRefreshRateLimit", c.JWKSRefreshRateLimit},
	} {
		if d.v < 0 {
			bad(d.name, "must not be negative")
		}
	}
	if c.JWKSMinRefreshInterval > 0 && c.JWKSMaxRefreshInterval > 0 && c.JWKSMinRefreshInterval > c.JWKSMaxRefreshInterval {
		bad("JWKSMinRefreshInterval", "exceeds JWKSMaxRefreshInterval")
	}
	if c.ResourceMetadataURL != "" {
		if err := checkURL(c.ResourceMetadataURL, c.InsecureAllowHTTP); err != nil {
			bad("ResourceMetadataURL", "%v", err)
		}
	}
	if c.Resource != "" {
		if err := checkPublicURL(c.Resource, c.InsecureAllowHTTP); err != nil {
			bad("Resource", "%v", err)
		}
	}
	if c.HTTPClient != nil {
		if tr, ok := c.HTTPClient.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil && tr.TLSClientConfig.InsecureSkipVerify {
			bad("HTTPClient", "TLS certificate verification must stay on (InsecureSkipVerify is set); add the CA to RootCAs instead")
		}
	}
	if c.Realm == "" {
		c.Realm = c.Audience
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
		c.realClock = true
	}
	return errors.Join(errs...)
}

// checkPublicURL vets Config.PublicURL: an http(s) base URL without
// query, fragment or credentials, usable as the prefix of DPoP "htu".
func checkPublicURL(s string, insecure bool) error {
	if err := checkURL(s, insecure); err != nil {
		return err
	}
	u, _ := url.Parse(s)
	if u.RawQuery != "" || u.ForceQuery {
		return errors.New("must not contain a query")
	}
	return nil
}

// checkURL requires an absolute https URL, or http to a loopback host.
func checkURL(s string, insecure bool) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return errors.New("must be an absolute URL")
	}
	if u.User != nil {
		return errors.New("must not contain credentials")
	}
	if u.Fragment != "" {
		return errors.New("must not contain a fragment")
	}
	switch {
	case netutil.AllowedScheme(u, insecure):
		return nil
	case u.Scheme == "http":
		return errors.New("must use https (plain http is allowed only to loopback, or with InsecureAllowHTTP)")
	}
	return fmt.Errorf("unsupported scheme %q", u.Scheme)
}

// The purposes Config.WrapTransport is called with.
const (
	purposeJWKS          = "jwks"
	purposeDiscovery     = "discovery"
	purposeIntrospection = "introspection"
)

// wrapTransport returns c.WrapTransport bound to purpose, in the shape the
// jwks, discovery and introspect configs take, or nil without one.
func (c *Config) wrapTransport(purpose string) func(http.RoundTripper) http.RoundTripper {
	wrap := c.WrapTransport
	if wrap == nil {
		return nil
	}
	return func(rt http.RoundTripper) http.RoundTripper { return wrap(purpose, rt) }
}
