package introspect

import (
	"crypto"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/tokenguard/tokenguard/internal/clientauth"
	"github.com/tokenguard/tokenguard/internal/netutil"
)

// Defaults for the zero values of [Config].
const (
	defaultTimeout          = 5 * time.Second
	defaultMaxResponseSize  = 64 << 10
	defaultMaxConcurrent    = 64
	defaultCacheSize        = 10_000
	defaultMaxCacheAge      = 60 * time.Second
	defaultNegativeCacheAge = 5 * time.Second
	defaultFailureCacheAge  = time.Second
	defaultRateLimit        = 200
	defaultLeeway           = 30 * time.Second
)

// AuthMethod is how the client authenticates to the introspection
// endpoint (RFC 7662 §2.1 requires some authentication).
type AuthMethod int

const (
	// ClientSecretBasic sends ClientID and ClientSecret in an HTTP Basic
	// Authorization header, each form-urlencoded first (RFC 6749 §2.3.1).
	// The zero value.
	ClientSecretBasic AuthMethod = iota
	// ClientSecretPost sends client_id and client_secret in the form body.
	ClientSecretPost
	// PrivateKeyJWT sends a client assertion signed with
	// [Config.PrivateKey] (RFC 7523 §2.2, OpenID Connect Core §9).
	PrivateKeyJWT
)

// String returns the method's registered name, e.g. "client_secret_basic".
func (m AuthMethod) String() string {
	switch m {
	case ClientSecretBasic:
		return "client_secret_basic"
	case ClientSecretPost:
		return "client_secret_post"
	case PrivateKeyJWT:
		return "private_key_jwt"
	}
	return fmt.Sprintf("AuthMethod(%d)", int(m))
}

// ResponseFormat is the form of introspection answers a [Client] asks for
// and believes.
type ResponseFormat int

const (
	// ResponseJSON asks for and accepts plain JSON answers (RFC 7662
	// §2.2), believed on the strength of the TLS connection alone. The
	// zero value.
	ResponseJSON ResponseFormat = iota
	// ResponseJWT asks for answers signed by the authorization server
	// (RFC 9701) and believes nothing else: see "Signed answers" in the
	// package doc. It needs [Config.Keys].
	ResponseJWT
)

// String returns the format's configuration name, "json" or "jwt".
func (f ResponseFormat) String() string {
	switch f {
	case ResponseJSON:
		return "json"
	case ResponseJWT:
		return "jwt"
	}
	return fmt.Sprintf("ResponseFormat(%d)", int(f))
}

// Results passed to [Config.OnRequest], one per HTTP request; they make a
// bounded metric label. Cache hits and collapsed waiters are not reported.
const (
	// ResultActive: an active token that passed every check.
	ResultActive = "active"
	// ResultInactive: active=false, or an iss, aud, exp or nbf failure.
	ResultInactive = "inactive"
	// ResultError: no response (network error, timeout, cancellation),
	// the body could not be read, or (ResponseJWT) no keys to verify the
	// answer with could be had.
	ResultError = "error"
	// ResultHTTPError: a response with a status other than 200.
	ResultHTTPError = "http_error"
	// ResultInvalid: a 200 whose body was too large or not a valid
	// introspection response; with ResponseJWT, also an answer that is
	// not a signed JWT whose signature, "typ", "iss", "aud" and "iat"
	// all check out.
	ResultInvalid = "invalid"
	// ResultThrottled: no request was sent, because MaxConcurrent
	// requests were already in flight or RateLimit was reached; the
	// caller got ErrUnavailable.
	ResultThrottled = "throttled"
)

// Config configures a [Client]. [New] copies it, so changing a Config
// after New returns has no effect. Every zero value is a safe default,
// documented on its field.
type Config struct {
	// Endpoint is the authorization server's introspection_endpoint.
	// Required. It must be https, or http to a loopback host (127.0.0.0/8,
	// ::1, localhost) unless InsecureAllowHTTP is set, and must not carry
	// user info.
	Endpoint string

	// Issuer is the authorization server's issuer identifier. Required.
	// A response carrying "iss" must match it exactly; a response without
	// "iss" is accepted (RFC 7662 makes it optional). It is also an
	// audience of private_key_jwt client assertions.
	Issuer string

	// Audience is this resource server's identifier. Required. A response
	// carrying "aud" must contain it; a response without "aud" is
	// accepted.
	Audience string

	// ClientID identifies this resource server to the authorization
	// server. Required.
	ClientID string
	// ClientSecret is the shared secret for ClientSecretBasic and
	// ClientSecretPost; required for them, and must be empty for
	// PrivateKeyJWT.
	ClientSecret string
	// AuthMethod selects client authentication. The zero value is
	// ClientSecretBasic.
	AuthMethod AuthMethod

	// PrivateKey signs PrivateKeyJWT client assertions; required for it
	// and must be nil otherwise. RSA (2048 bits or more), ECDSA P-256,
	// P-384, P-521 and Ed25519 keys are supported, including keys held in
	// a KMS behind crypto.Signer.
	PrivateKey crypto.Signer
	// KeyID, when set, is the "kid" header of client assertions.
	KeyID string
	// Algorithm is the JWS "alg" of client assertions. "" means RS256
	// for RSA, ES256/ES384/ES512 by curve, and EdDSA for Ed25519. It must
	// match the key type.
	Algorithm string

	// ResponseFormat selects plain JSON answers (ResponseJSON, the zero
	// value) or signed ones (ResponseJWT, RFC 9701).
	ResponseFormat ResponseFormat
	// Keys verifies ResponseJWT answers: required with ResponseJWT, and
	// must be nil otherwise. Use the Issuer's key set, the one its access
	// tokens are verified with (a *jwks.Set, whose allow-list applies):
	// a second fetcher of the same JWKS would only add load and a second
	// view of the keys.
	Keys KeySet

	// HTTPClient sends introspection requests. nil means a client with a
	// 5 s timeout that follows no redirects (a 3xx is ErrUnavailable: a
	// redirected POST would carry the token and credentials elsewhere). A
	// client you pass is used as it is, except that each call is also
	// bounded by Timeout.
	HTTPClient *http.Client
	// WrapTransport, when set, is called once, by New, with the Transport
	// of the default client (the one used when HTTPClient is nil) and
	// returns the RoundTripper that client uses instead: for tracing,
	// egress policy or logging. The client's timeout and its refusal of
	// redirects stay as they are, and Close still drops the idle
	// connections of the Transport it wrapped. A nil result keeps the
	// Transport unwrapped. It is not applied to HTTPClient: wrap that
	// client's Transport yourself.
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// Timeout bounds one introspection request, body included. 0 means
	// 5 seconds.
	Timeout time.Duration
	// MaxResponseSize caps the response body in bytes; a larger body is
	// ErrUnavailable. 0 means 64 KiB.
	MaxResponseSize int64

	// MaxConcurrent bounds introspection requests in flight at once (each
	// distinct uncached token is one). Past it, Introspect fails at once
	// with ErrUnavailable rather than queue: a client spraying random
	// tokens must not turn the guard into a flood against the
	// authorization server. 0 means 64.
	MaxConcurrent int

	// RateLimit bounds the introspection requests sent per second (a
	// token bucket holding one second's worth). Past it, Introspect fails
	// at once with ErrUnavailable, reported as ResultThrottled: with
	// MaxConcurrent it is what keeps a spray of random tokens, or a
	// failing endpoint, from turning the guard into a load generator
	// against the authorization server. 0 means 200; negative is an
	// error.
	RateLimit float64

	// CacheSize bounds the number of cached active answers. 0 means
	// 10,000. Caching cannot be turned off, only shortened with
	// MaxCacheAge. Inactive answers and failures are cached apart, in
	// as many entries again, so tokens nobody minted cannot push out the
	// answers for tokens in use.
	CacheSize int
	// MaxCacheAge is the longest an active answer is reused; the entry
	// also ends at the token's "exp". It bounds how long a revoked token
	// is still accepted. 0 means 60 seconds.
	MaxCacheAge time.Duration
	// NegativeCacheAge is how long an inactive answer is reused. 0 means
	// 5 seconds.
	NegativeCacheAge time.Duration
	// FailureCacheAge is how long a failed introspection of a token (no
	// answer, a 5xx, nonsense) is remembered: requests with that token
	// get ErrUnavailable without another call. 0 means 1 second;
	// negative is an error.
	FailureCacheAge time.Duration
	// Leeway is the clock skew allowed when checking "exp" and "nbf"
	// (and, for ResponseJWT, the signed answer's "iat", "exp" and "nbf").
	// 0 means 30 seconds.
	Leeway time.Duration

	// InsecureAllowHTTP permits a plain http:// Endpoint to a non-loopback
	// host, where anyone on the path can read tokens and client secrets
	// and forge answers. Tests and sidecars on loopback do not need it.
	InsecureAllowHTTP bool

	// OnRequest, when non-nil, is called once per HTTP request with one of
	// ResultActive, ResultInactive, ResultError, ResultHTTPError or
	// ResultInvalid, and once per request not sent with ResultThrottled.
	// It is called from the goroutine that made the request, so it must
	// be fast and safe for concurrent use.
	OnRequest func(result string)

	// Now returns the current time, for tests. nil means time.Now.
	Now func() time.Time
}

// withDefaults returns a copy of c with defaults filled in, the assertion
// algorithm resolved, and every problem found, each naming its field.
func (c Config) withDefaults() (Config, jwa.SignatureAlgorithm, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("introspect: %s: %s", field, fmt.Sprintf(format, args...)))
	}

	if err := checkURL(c.Endpoint, c.InsecureAllowHTTP); err != nil {
		bad("Endpoint", "%v", err)
	}
	if c.Issuer == "" {
		bad("Issuer", "required")
	}
	if c.Audience == "" {
		bad("Audience", "required")
	}
	if c.ClientID == "" {
		bad("ClientID", "required")
	}

	var alg jwa.SignatureAlgorithm
	switch c.AuthMethod {
	case ClientSecretBasic, ClientSecretPost:
		if c.ClientSecret == "" {
			bad("ClientSecret", "required for %v", c.AuthMethod)
		}
		if c.PrivateKey != nil {
			bad("PrivateKey", "set, but AuthMethod is %v", c.AuthMethod)
		}
		if c.KeyID != "" || c.Algorithm != "" {
			bad("KeyID", "KeyID and Algorithm are only for PrivateKeyJWT")
		}
	case PrivateKeyJWT:
		if c.ClientSecret != "" {
			bad("ClientSecret", "set, but AuthMethod is %v", c.AuthMethod)
		}
		if c.PrivateKey == nil {
			bad("PrivateKey", "required for %v", c.AuthMethod)
		} else {
			a, err := clientauth.Algorithm(c.PrivateKey.Public(), c.Algorithm)
			if err != nil {
				bad("Algorithm", "%v", err)
			}
			alg = a
		}
	default:
		bad("AuthMethod", "unknown method %d", int(c.AuthMethod))
	}

	switch c.ResponseFormat {
	case ResponseJSON:
		if c.Keys != nil {
			bad("Keys", "set, but ResponseFormat is %v (keys verify only %v answers)", c.ResponseFormat, ResponseJWT)
		}
	case ResponseJWT:
		if isNil(c.Keys) {
			bad("Keys", "required for ResponseFormat %v", c.ResponseFormat)
		}
	default:
		bad("ResponseFormat", "unknown format %d", int(c.ResponseFormat))
	}

	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"Timeout", &c.Timeout, defaultTimeout},
		{"MaxCacheAge", &c.MaxCacheAge, defaultMaxCacheAge},
		{"NegativeCacheAge", &c.NegativeCacheAge, defaultNegativeCacheAge},
		{"FailureCacheAge", &c.FailureCacheAge, defaultFailureCacheAge},
		{"Leeway", &c.Leeway, defaultLeeway},
	}
	for _, d := range durations {
		switch {
		case *d.v < 0:
			bad(d.name, "must not be negative (0 means %v)", d.def)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	switch {
	case c.MaxResponseSize < 0:
		bad("MaxResponseSize", "must not be negative (0 means %d)", defaultMaxResponseSize)
	case c.MaxResponseSize == 0:
		c.MaxResponseSize = defaultMaxResponseSize
	}
	switch {
	case c.MaxConcurrent < 0:
		bad("MaxConcurrent", "must not be negative (0 means %d)", defaultMaxConcurrent)
	case c.MaxConcurrent == 0:
		c.MaxConcurrent = defaultMaxConcurrent
	}
	switch {
	case c.RateLimit < 0 || math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0):
		bad("RateLimit", "must be a positive number of requests per second (0 means %d)", defaultRateLimit)
	case c.RateLimit == 0:
		c.RateLimit = defaultRateLimit
	}
	switch {
	case c.CacheSize < 0:
		bad("CacheSize", "must not be negative (0 means %d)", defaultCacheSize)
	case c.CacheSize == 0:
		c.CacheSize = defaultCacheSize
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, alg, errors.Join(errs...)
}

// isNil reports whether v is nil, or an interface holding a nil pointer
// (a *jwks.Set not yet made), which would panic at the first answer.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// checkURL enforces the URL policy: an absolute https URL, or http to a
// loopback host, or http anywhere when insecure is set; no user info, no
// fragment.
func checkURL(raw string, insecure bool) error {
	if raw == "" {
		return errors.New("required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("must be an absolute URL with a host")
	}
	if u.User != nil {
		return errors.New("must not contain user info")
	}
	if u.Fragment != "" {
		return errors.New("must not contain a fragment")
	}
	if !netutil.AllowedScheme(u, insecure) {
		return errors.New("must be https (http only to a loopback host, or with InsecureAllowHTTP)")
	}
	return nil
}

// defaultClient builds the client used when Config.HTTPClient is nil. It
// has its own Transport so Close can drop its idle connections; the
// client sends through wrap(Transport) when wrap is non-nil (and returns
// non-nil).
func defaultClient(wrap func(http.RoundTripper) http.RoundTripper) (*http.Client, *http.Transport) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	var rt http.RoundTripper = tr
	if wrap != nil {
		if w := wrap(tr); w != nil {
			rt = w
		}
	}
	return &http.Client{
		Transport: rt,
		Timeout:   defaultTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, tr
}
