package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/internal/hygiene"
	"github.com/tokenguard/tokenguard/middleware"
)

// Forward auth (the forward_auth block): an ingress that is already the
// proxy (nginx auth_request, Caddy forward_auth, Traefik forwardAuth) asks
// the gateway about each request with a subrequest to forward_auth.path,
// describing the original request in headers, and forwards it itself
// when the answer is 2xx.
//
// The gateway does not decide a description with logic of its own: it
// builds the request described (forwarded.request) and serves it through
// the same chain as a proxied request (CORS, hygiene, routes, the route's
// guard), whose last handler answers the ingress instead of proxying
// (allowForwardAuth). Route, scopes, path hygiene, DPoP (htm is the
// forwarded method, htu public_url, else the forwarded scheme and host,
// plus the forwarded path) and denials are therefore those of proxy mode,
// byte for byte.
//
// What the gateway cannot do in this mode is the ingress's job: strip
// client copies of the identity headers and set them from the answer,
// pass the challenge of a denial to the client, and forward nothing it
// was not told to (README, "Behind your ingress").

// defaultForwardAuthPath is forward_auth.path when it is not set.
const defaultForwardAuthPath = "/tokenguard/auth"

// forwardAuthConfig is the forward_auth block, checked.
type forwardAuthConfig struct {
	Path string
}

// forwardAuthOn reports whether the file turns forward auth on: a
// forward_auth block, even one with no value ("forward_auth:" alone
// means the defaults, not "off").
func (fc *fileConfig) forwardAuthOn(doc *yaml.Node) bool {
	return fc.ForwardAuth != nil || hasKey(doc, "forward_auth")
}

// validate checks the forward_auth block (fa nil: no value) against the
// rest of the file.
func (fa *fileForwardAuth) validate(c *config, trusted []string, pos positions, bad func(keyPos, string, ...any)) *forwardAuthConfig {
	if fa == nil {
		fa = &fileForwardAuth{}
	}
	out := &forwardAuthConfig{Path: cmpOr(fa.Path, defaultForwardAuthPath)}
	at := pos.at("forward_auth", "path")
	if fa.Path == "" {
		at = pos.at("forward_auth")
	}
	switch p := out.Path; {
	case hygiene.CheckPath(p) != nil || p == "/" || strings.HasSuffix(p, "/"):
		bad(at, "%q must be a plain path such as %s (no dot segments, encoded delimiters, ';' or trailing '/')", p, defaultForwardAuthPath)
	case reservedPaths[p]:
		bad(at, "%s is served only on metrics_listen", p)
	case strings.HasPrefix(p, "/.well-known/"):
		bad(at, "%q is under /.well-known/, where the protected resource metadata is served", p)
	}
	if c.BFF != nil {
		prefix := cmpOr(c.BFF.Path, bff.DefaultPath)
		if out.Path == prefix || strings.HasPrefix(out.Path, prefix+"/") {
			bad(at, "%q is under bff.path %s", out.Path, prefix)
		}
	}
	for _, r := range c.Routes {
		if routePath(r.Pattern) == out.Path {
			bad(keyPos{Key: r.Key, Line: r.Line}, "%q is forward_auth.path, which is answered before any route", r.Pattern)
		}
	}
	if len(trusted) == 0 {
		bad(pos.at("forward_auth"), "needs trusted_proxies: the addresses of the ingress that sends the auth subrequests (nobody else may describe a request)")
	}
	return out
}

// routePath is the path of a ServeMux pattern: without its method and
// host.
func routePath(pattern string) string {
	_, p, _ := strings.Cut(pattern, " ")
	if p == "" {
		p = pattern
	}
	if j := strings.IndexByte(p, '/'); j > 0 {
		p = p[j:] // a host pattern
	}
	return p
}

type forwardAuthKey struct{}

// isForwardAuth reports whether the request whose context this is was
// described by an ingress's auth subrequest (forwarded.request made it):
// its chain must answer the ingress, never proxy.
func isForwardAuth(ctx context.Context) bool {
	v, _ := ctx.Value(forwardAuthKey{}).(bool)
	return v
}

// forwarded is the original request an auth subrequest describes.
type forwarded struct {
	Method string // X-Forwarded-Method or X-Original-Method
	Proto  string // "http" or "https": X-Forwarded-Proto, else the subrequest's own
	Host   string // X-Forwarded-Host (required)
	URI    string // the request-target: X-Forwarded-Uri or X-Original-URI
}

// Errors of parseForwarded. None quotes a header value.
var (
	errForwardedMissing   = errors.New("gateway: forward auth: the original method or URI is missing (X-Forwarded-Method and -Uri, or X-Original-Method and -URI)")
	errForwardedRepeated  = errors.New("gateway: forward auth: a forwarding header is repeated, or the two spellings disagree")
	errForwardedMethod    = errors.New("gateway: forward auth: the original method is not a token")
	errForwardedProto     = errors.New("gateway: forward auth: X-Forwarded-Proto is neither http nor https")
	errForwardedHost      = errors.New("gateway: forward auth: the original host is not a host or host:port")
	errForwardedNoHost    = errors.New("gateway: forward auth: X-Forwarded-Host is missing (nginx: proxy_set_header X-Forwarded-Host $host:$server_port)")
	errForwardedOverride  = errors.New("gateway: forward auth: the request carries a header that overrides its method, URL or client address, which the ingress would pass on to the upstream")
	errForwardedURIFormat = errors.New("gateway: forward auth: the original URI is not an origin-form request-target")
)

// parseForwarded reads the original request an ingress describes in h,
// the headers of its auth subrequest; subTLS is the subrequest's own
// scheme, which stands in for X-Forwarded-Proto when that is absent.
// X-Forwarded-Host is required: the subrequest's own Host (subHost, kept
// for callers' symmetry) names the gateway, not the client's request.
//
// Each header may appear once; when both spellings of the method or of the
// URI are present they must agree. The method must be a token (compared
// case-sensitively later, as ServeMux does), the scheme http or https,
// the host a host or host:port, and the URI an origin-form
// request-target of visible ASCII ("/path?query"). Whether its path has
// one reading is hygiene's to decide, as for any request.
func parseForwarded(h http.Header, subTLS bool, subHost string) (forwarded, error) {
	var f forwarded
	var err error
	if f.Method, err = oneOf(h, "X-Forwarded-Method", "X-Original-Method"); err != nil {
		return forwarded{}, err
	}
	if f.URI, err = oneOf(h, "X-Forwarded-Uri", "X-Original-Uri"); err != nil {
		return forwarded{}, err
	}
	if f.Method == "" || f.URI == "" {
		return forwarded{}, errForwardedMissing
	}
	if !isToken(f.Method) {
		return forwarded{}, errForwardedMethod
	}
	if f.URI[0] != '/' {
		return forwarded{}, errForwardedURIFormat
	}
	for i := 0; i < len(f.URI); i++ {
		if c := f.URI[i]; c < 0x21 || c > 0x7e {
			return forwarded{}, errForwardedURIFormat
		}
	}
	switch vals := h.Values("X-Forwarded-Proto"); {
	case len(vals) > 1:
		return forwarded{}, errForwardedRepeated
	case len(vals) == 0 && subTLS:
		f.Proto = "https"
	case len(vals) == 0:
		f.Proto = "http"
	case strings.EqualFold(vals[0], "http"), strings.EqualFold(vals[0], "https"):
		f.Proto = strings.ToLower(vals[0])
	default:
		return forwarded{}, errForwardedProto
	}
	switch vals := h.Values("X-Forwarded-Host"); len(vals) {
	case 0:
		// Not the subrequest's own Host: that names the gateway, and a
		// host route would then be chosen by where the ingress sends
		// its subrequests rather than by the client's request.
		return forwarded{}, errForwardedNoHost
	case 1:
		f.Host = vals[0]
	default:
		return forwarded{}, errForwardedRepeated
	}
	if checkHost(f.Host) != nil {
		return forwarded{}, errForwardedHost
	}
	// In proxy mode these are removed before the upstream sees them; here
	// the ingress forwards the client's headers as they are, so a request
	// carrying one is refused: the upstream could act on another method
	// or URL than the one decided on (X-HTTP-Method-Override: DELETE on a
	// POST the token may make).
	for k := range h {
		for _, o := range clientOverrideHeaders {
			if o != "client-cert" && o != "client-cert-chain" && hygiene.FoldedEqual(k, o) {
				return forwarded{}, errForwardedOverride
			}
		}
		if hygiene.FoldedEqual(k, "x-forwarded-prefix") {
			return forwarded{}, errForwardedOverride
		}
	}
	return f, nil
}

// oneOf returns the value of header a or b: each at most once, and equal
// when both are there; "" when neither is.
func oneOf(h http.Header, a, b string) (string, error) {
	va, vb := h.Values(a), h.Values(b)
	if len(va) > 1 || len(vb) > 1 || len(va) == 1 && len(vb) == 1 && va[0] != vb[0] {
		return "", errForwardedRepeated
	}
	if len(va) == 1 {
		return va[0], nil
	}
	if len(vb) == 1 {
		return vb[0], nil
	}
	return "", nil
}

// request builds the request f describes, to be served through the
// gateway's chain in sub's place: f's method, target, host and scheme;
// sub's headers (Authorization, DPoP, Origin, ...) without the forwarding
// ones; no body; sub's context (with its access record) marked as forward
// auth, and sub's peer. An https request gets an empty TLS state: the
// scheme is what the guard builds a proof's htu from, and the
// subrequest's own connection (the ingress's, not the client's) says
// nothing about the client, so no certificate is ever taken from it.
func (f forwarded) request(sub *http.Request) (*http.Request, error) {
	u, err := url.ParseRequestURI(f.URI)
	if err != nil {
		return nil, err
	}
	h := sub.Header.Clone()
	for k := range h {
		if hygiene.FoldedHasPrefix(k, "x-forwarded-") || hygiene.FoldedHasPrefix(k, "x-original-") || hygiene.FoldedEqual(k, "forwarded") {
			delete(h, k)
		}
	}
	r := &http.Request{
		Method:     f.Method,
		URL:        u,
		Proto:      sub.Proto,
		ProtoMajor: sub.ProtoMajor,
		ProtoMinor: sub.ProtoMinor,
		Header:     h,
		Body:       http.NoBody,
		Host:       f.Host,
		RemoteAddr: sub.RemoteAddr,
		RequestURI: f.URI,
	}
	if f.Proto == "https" {
		r.TLS = &tls.ConnectionState{}
	}
	return r.WithContext(context.WithValue(sub.Context(), forwardAuthKey{}, true)), nil
}

// forwardAuth serves forward_auth.path: GET or POST from a trusted proxy,
// describing a request, which next (the gateway's chain) decides.
type forwardAuth struct {
	trusted []netip.Prefix
	next    http.Handler
}

func (fa *forwardAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := recordFrom(r.Context())
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		refuse(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "method_not_allowed")
		return
	}
	if !trustedPeer(fa.trusted, r.RemoteAddr) {
		refuse(w, r, http.StatusForbidden, "untrusted_proxy", "untrusted_proxy")
		return
	}
	f, err := parseForwarded(r.Header, r.TLS != nil, r.Host)
	if err != nil {
		refuse(w, r, http.StatusBadRequest, "invalid_forward_auth", "invalid_request")
		return
	}
	in, err := f.request(r)
	if err != nil {
		refuse(w, r, http.StatusBadRequest, "invalid_path", "invalid_path")
		return
	}
	if rec != nil {
		rec.forwardedMethod, rec.forwardedPath = in.Method, in.URL.EscapedPath()
	}
	fa.next.ServeHTTP(w, in)
}

// allowForwardAuth answers an auth subrequest whose request the chain
// allowed: 200, no body, and the identity headers from the verified
// token for the ingress to set on the request it forwards. Headers the
// chain set on the way (a fresh DPoP-Nonce, the CORS headers) are part of
// the answer.
//
// The three identity headers are always there, empty when the token has
// no such claim and on a public route: an ingress that copies them then
// always replaces what the client sent, and never makes up a value for a
// missing one (Caddy 2.6 sets its placeholder's own text,
// "{http.reverse_proxy.header.X-Tokenguard-Subject}", for a header the
// answer lacks; nginx sends no header for an empty value).
func allowForwardAuth(w http.ResponseWriter, r *http.Request) {
	if _, ok := middleware.PrincipalFrom(r.Context()); !ok && !isPublic(r.Context()) {
		// Not expected: every route but a public one runs the guard
		// first. Fail closed, as proxy mode's requirePrincipal does.
		writeJSONError(w, http.StatusInternalServerError, "internal_error")
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	for _, k := range []string{HeaderSubject, HeaderClientID, HeaderScope} {
		h[k] = []string{""}
	}
	setIdentityHeaders(h, r)
	w.WriteHeader(http.StatusOK)
}

// proxyOrAnswer ends a route's chain: an auth subrequest's request is
// answered (allowForwardAuth); any other goes to proxy.
func proxyOrAnswer(proxy http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isForwardAuth(r.Context()) {
			allowForwardAuth(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	})
}

// unlessForwardAuth serves an auth subrequest's request with alt and any
// other with h: for what only a proxied request has (the token handler's
// endpoints and sessions, the metadata document, which the ingress routes
// to the gateway directly).
func unlessForwardAuth(h, alt http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isForwardAuth(r.Context()) {
			alt.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
