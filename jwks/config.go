package jwks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/tokenguard/tokenguard/internal/netutil"
)

// Defaults for the zero values of [Config].
const (
	defaultMinRefreshInterval = 5 * time.Minute
	defaultMaxRefreshInterval = 24 * time.Hour
	defaultRefreshRateLimit   = 10 * time.Second
	defaultUnknownKIDWait     = 2 * time.Second
	defaultInitialWait        = 10 * time.Second
	defaultMaxBodySize        = 1 << 20
	defaultMaxKeys            = 100
	defaultHTTPTimeout        = 10 * time.Second // of the client used when Config.HTTPClient is nil
)

// Config configures a [Set]. [New] copies it, so changing a Config (or its
// Algorithms slice) after New returns has no effect. Every zero value is a
// safe default, documented on its field.
type Config struct {
	// URL is the JWKS location (an authorization server's jwks_uri).
	// Required. It must be https, or http to a loopback host (127.0.0.0/8,
	// ::1, localhost) unless InsecureAllowHTTP is set, and must not carry
	// user info.
	URL string

	// HTTPClient fetches the JWKS. nil means a client with a 10 s timeout
	// that follows at most 5 redirects, and only to https (or to http
	// where URL itself could be http: loopback, or InsecureAllowHTTP),
	// never from https to http. A client you pass is used as it is,
	// redirect policy included, except that each fetch is also bounded by
	// a 30 s deadline.
	HTTPClient *http.Client

	// WrapTransport, when set, is called once, by New, with the Transport
	// of the default client (the one used when HTTPClient is nil) and
	// returns the RoundTripper that client uses instead: for tracing,
	// egress policy or logging. The default client's timeout and redirect
	// policy stay as they are, and Close still drops the idle connections
	// of the Transport it wrapped. A nil result keeps the Transport
	// unwrapped. It is not applied to HTTPClient: wrap that client's
	// Transport yourself.
	WrapTransport func(http.RoundTripper) http.RoundTripper

	// Algorithms is the JWS "alg" allow-list; a key is usable only for
	// algorithms on it. nil means [DefaultAlgorithms]. Supported: RS256,
	// RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA. An
	// empty non-nil list is an error.
	Algorithms []string

	// MinRefreshInterval is the lower bound of the refresh interval taken
	// from the response's Cache-Control max-age or Expires, and the
	// interval used when neither is present or a fetch fails. 0 means
	// 5 minutes. The scheduler's resolution is about one second.
	MinRefreshInterval time.Duration
	// MaxRefreshInterval is the upper bound of that interval: a huge
	// max-age is clamped to it. 0 means 24 hours.
	MaxRefreshInterval time.Duration

	// RefreshRateLimit is the minimum gap between two refreshes triggered
	// by unknown "kid"s. 0 means 10 seconds.
	RefreshRateLimit time.Duration
	// UnknownKIDWait is the longest a Lookup waits for an in-flight
	// refresh. 0 means 2 seconds.
	UnknownKIDWait time.Duration
	// InitialWait is how long New waits for the first load. 0 means 10
	// seconds; negative means New does not wait.
	InitialWait time.Duration

	// MaxBodySize caps the JWKS response body in bytes; a larger body is a
	// failed fetch. 0 means 1 MiB.
	MaxBodySize int64
	// MaxKeys caps the number of entries in the document's "keys" array;
	// more is a failed fetch. 0 means 100.
	MaxKeys int

	// InsecureAllowHTTP permits a plain http:// URL to a non-loopback host,
	// where anyone on the path can replace the keys. Tests and sidecars on
	// loopback do not need it.
	InsecureAllowHTTP bool

	// Logger receives refresh failures and skipped keys, with the keys
	// "url", "kid" and "reason". nil means no logging.
	Logger *slog.Logger

	// RefreshContext, when set, gives the context an unknown-kid refresh
	// takes its values from, given the context of the lookup that starts
	// it: return a context holding only what the fetch may carry, such as
	// a trace span for a tracing transport (see WrapTransport), built on
	// context.Background(). The refresh is shared by every lookup that
	// waits on it and may outlive them all, so handing caller back whole
	// would let each of that lookup's values ride into it (a
	// net/http/httptrace.ClientTrace firing after Lookup returned, an
	// incoming request's metadata held for up to 30 s). It is called once
	// per refresh, on the goroutine of the lookup that starts it, before
	// the refresh starts, so it must be fast. The result's cancellation
	// and deadline are ignored: the refresh ends at Close or after 30 s,
	// never because a lookup gave up. nil, or a nil result, means none:
	// the refresh carries no value of any caller's, only those of the
	// context given to New, as scheduled fetches do.
	RefreshContext func(caller context.Context) context.Context

	// OnRefresh, when non-nil, is called once per fetch attempt with one of
	// ResultSuccess, ResultNetworkError, ResultHTTPError or ResultInvalid.
	// It is called from a background goroutine, so it must be fast and
	// safe for concurrent use. Attempts cut short by Close are not
	// reported.
	OnRefresh func(result string)
}

// Refresh results passed to [Config.OnRefresh]; they make a bounded metric
// label.
const (
	// ResultSuccess: a new snapshot was published.
	ResultSuccess = "success"
	// ResultNetworkError: no response, or the body could not be read.
	ResultNetworkError = "network_error"
	// ResultHTTPError: a response with a status other than 200.
	ResultHTTPError = "http_error"
	// ResultInvalid: the body was not JSON, was larger than MaxBodySize,
	// was not a JWK set, had too many keys, was empty, or every key was
	// rejected by key hygiene.
	ResultInvalid = "invalid"
)

// withDefaults returns a copy of c with defaults filled in, the allow-list
// as a bit set, and every problem found, each naming its field.
func (c Config) withDefaults() (Config, algSet, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("jwks: %s: %s", field, fmt.Sprintf(format, args...)))
	}

	if err := checkURL(c.URL, c.InsecureAllowHTTP); err != nil {
		bad("URL", "%v", err)
	}

	var allowed algSet
	if c.Algorithms == nil {
		c.Algorithms = DefaultAlgorithms()
	} else {
		c.Algorithms = append([]string(nil), c.Algorithms...)
		if len(c.Algorithms) == 0 {
			bad("Algorithms", "empty allow-list (nil means the default)")
		}
	}
	for _, a := range c.Algorithms {
		b := algBit(a)
		if b == 0 {
			bad("Algorithms", "%q is not a supported asymmetric signature algorithm", a)
		}
		allowed |= b
	}

	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"MinRefreshInterval", &c.MinRefreshInterval, defaultMinRefreshInterval},
		{"MaxRefreshInterval", &c.MaxRefreshInterval, defaultMaxRefreshInterval},
		{"RefreshRateLimit", &c.RefreshRateLimit, defaultRefreshRateLimit},
		{"UnknownKIDWait", &c.UnknownKIDWait, defaultUnknownKIDWait},
	}
	for _, d := range durations {
		switch {
		case *d.v < 0:
			bad(d.name, "must not be negative (0 means %v)", d.def)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if c.MinRefreshInterval > 0 && c.MaxRefreshInterval > 0 && c.MinRefreshInterval > c.MaxRefreshInterval {
		bad("MinRefreshInterval", "%v is greater than MaxRefreshInterval %v", c.MinRefreshInterval, c.MaxRefreshInterval)
	}
	if c.InitialWait == 0 {
		c.InitialWait = defaultInitialWait
	}
	switch {
	case c.MaxBodySize < 0:
		bad("MaxBodySize", "must not be negative (0 means %d)", defaultMaxBodySize)
	case c.MaxBodySize == 0:
		c.MaxBodySize = defaultMaxBodySize
	}
	switch {
	case c.MaxKeys < 0:
		bad("MaxKeys", "must not be negative (0 means %d)", defaultMaxKeys)
	case c.MaxKeys == 0:
		c.MaxKeys = defaultMaxKeys
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, allowed, errors.Join(errs...)
}

// checkURL enforces the URL policy: an absolute https URL, or http to a
// loopback host, or http anywhere when insecure is set; no user info.
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
	if !netutil.AllowedScheme(u, insecure) {
		return errors.New("must be https (http only to a loopback host, or with InsecureAllowHTTP)")
	}
	return nil
}

// maxRedirects bounds the default client's redirect chain.
const maxRedirects = 5

// defaultClient builds the client used when Config.HTTPClient is nil. It
// has its own Transport so Close can drop its idle connections; the
// client sends through wrap(Transport) when wrap is non-nil (and returns
// non-nil).
func defaultClient(insecure bool, wrap func(http.RoundTripper) http.RoundTripper) (*http.Client, *http.Transport) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	var rt http.RoundTripper = tr
	if wrap != nil {
		if w := wrap(tr); w != nil {
			rt = w
		}
	}
	return &http.Client{
		Transport: rt,
		Timeout:   defaultHTTPTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return errors.New("jwks: too many redirects")
			}
			if !netutil.AllowedScheme(req.URL, insecure) || (via[0].URL.Scheme == "https" && req.URL.Scheme != "https") {
				return errors.New("jwks: refusing redirect to a non-https URL")
			}
			return nil
		},
	}, tr
}
