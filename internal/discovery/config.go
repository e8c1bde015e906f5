package discovery

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tokenguard/tokenguard/internal/netutil"
)

// Defaults for the zero values of [Config] and [NewCache].
const (
	defaultMaxBodySize = 256 << 10
	defaultTimeout     = 10 * time.Second
	defaultRefresh     = time.Hour
	// failureBackoff is the shortest gap between a failed fetch and the
	// next attempt by a [Cache].
	failureBackoff = 10 * time.Second
	// maxRedirects bounds the default client's redirect chain.
	maxRedirects = 5
)

// Config configures [Fetch] and [NewCache]. It is copied, so changing it
// afterwards has no effect. Every zero value is a safe default, documented
// on its field.
type Config struct {
	// Issuer is the authorization server's issuer identifier, exactly as
	// its tokens and metadata spell it. Required. It must be https, or
	// http to a loopback host (127.0.0.0/8, ::1, localhost) unless
	// InsecureAllowHTTP is set, and must not carry user info, a query or
	// a fragment (RFC 8414 §2).
	Issuer string

	// HTTPClient fetches the metadata. nil means a client that follows at
	// most 5 redirects, and only to https (or to http where Issuer itself
	// could be http: loopback, or InsecureAllowHTTP), never from https to
	// http. A client you pass is used as it is, redirect policy included;
	// Timeout still bounds each Fetch.
	HTTPClient *http.Client

	// WrapTransport, when set, is called with the Transport of the
	// default client (the one used when HTTPClient is nil) each time one
	// is built, by [NewCache] and by each [Fetch], and returns the
	// RoundTripper that client uses instead: for tracing, egress policy
	// or logging. The redirect policy stays as it is, and idle
	// connections are still dropped from the Transport it wrapped. A nil
	// result keeps the Transport unwrapped. It is not applied to
	// HTTPClient.
	WrapTransport func(http.RoundTripper) http.RoundTripper

	// MaxBodySize caps the metadata document in bytes; a larger body is
	// [ErrInvalid]. 0 means 256 KiB.
	MaxBodySize int64

	// Timeout bounds one Fetch, both locations and the bodies included.
	// 0 means 10 seconds.
	Timeout time.Duration

	// InsecureAllowHTTP permits plain http:// to non-loopback hosts for the
	// issuer, "jwks_uri" and "introspection_endpoint", where anyone on the
	// path can substitute their own keys. Loopback does not need it.
	InsecureAllowHTTP bool
}

// withDefaults returns a copy of c with defaults filled in, and every
// problem found, each naming its field.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("discovery: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if err := checkIssuer(c.Issuer, c.InsecureAllowHTTP); err != nil {
		bad("Issuer", "%v", err)
	}
	switch {
	case c.MaxBodySize < 0:
		bad("MaxBodySize", "must not be negative (0 means %d)", defaultMaxBodySize)
	case c.MaxBodySize == 0:
		c.MaxBodySize = defaultMaxBodySize
	}
	switch {
	case c.Timeout < 0:
		bad("Timeout", "must not be negative (0 means %v)", defaultTimeout)
	case c.Timeout == 0:
		c.Timeout = defaultTimeout
	}
	return c, errors.Join(errs...)
}

// checkIssuer enforces the issuer policy: an absolute URL that passes
// [checkURL], without query or fragment.
func checkIssuer(raw string, insecure bool) error {
	if raw == "" {
		return errors.New("required")
	}
	if !utf8.ValidString(raw) {
		return errors.New("not valid UTF-8")
	}
	if strings.ContainsAny(raw, "?#") {
		return errors.New("must not have a query or fragment (RFC 8414 §2)")
	}
	return checkURL(raw, insecure)
}

// checkURL is the URL policy for the issuer and the endpoints taken from
// its metadata: an absolute URL with a host, no user info, no fragment,
// and an allowed scheme.
func checkURL(raw string, insecure bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	if !u.IsAbs() || u.Host == "" || u.Hostname() == "" || u.Opaque != "" {
		return errors.New("must be an absolute URL with a host")
	}
	if u.User != nil {
		return errors.New("must not contain user info")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("must not have a fragment")
	}
	if !netutil.AllowedScheme(u, insecure) {
		return errors.New("must be https (http only to a loopback host, or with InsecureAllowHTTP)")
	}
	return nil
}

// errRedirect is the reason the default client refuses a redirect.
var errRedirect = errors.New("discovery: refusing redirect to a non-https URL")

// defaultClient builds the client used when Config.HTTPClient is nil, on a
// clone of base (http.DefaultTransport when nil), sending through
// wrap(clone) when wrap is non-nil (and returns non-nil). The caller owns
// the returned Transport (the clone) and closes its idle connections when
// done.
func defaultClient(base *http.Transport, insecure bool, wrap func(http.RoundTripper) http.RoundTripper) (*http.Client, *http.Transport) {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport)
	}
	tr := base.Clone()
	var rt http.RoundTripper = tr
	if wrap != nil {
		if w := wrap(tr); w != nil {
			rt = w
		}
	}
	return &http.Client{
		Transport: rt,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return errors.New("discovery: too many redirects")
			}
			if !netutil.AllowedScheme(req.URL, insecure) {
				return errRedirect
			}
			for _, prev := range via { // no downgrade once on https
				if prev.URL.Scheme == "https" && req.URL.Scheme != "https" {
					return errRedirect
				}
			}
			return nil
		},
	}, tr
}
