package gateway

import (
	"net/http"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenguard/tokenguard/middleware"
)

// validateIngress checks the keys for running behind or beside another
// ingress: trusted_proxies, cors and forward_auth, and what they change
// for the rest (upstream becomes optional with forward_auth; the token
// handler still needs one).
func (fc *fileConfig) validateIngress(c *config, doc *yaml.Node, pos positions, bad func(keyPos, string, ...any), dur func(key, v string, def time.Duration, allowZero bool) time.Duration) {
	for i, s := range fc.TrustedProxies {
		p, err := parseTrustedProxy(s)
		if err != nil {
			bad(pos.at("trusted_proxies", i), "%v", err)
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, p)
	}
	if fc.TrustedProxies != nil && len(fc.TrustedProxies) == 0 {
		bad(pos.at("trusted_proxies"), "an empty list trusts nobody; omit the key")
	}
	fc.validateClientCerts(c, pos, bad)
	if fc.CORS != nil || hasKey(doc, "cors") {
		c.CORS = fc.CORS.validate(pos, bad, dur)
	}
	if fc.forwardAuthOn(doc) {
		c.ForwardAuth = fc.ForwardAuth.validate(c, fc.TrustedProxies, pos, bad)
		if c.ClientCertHeader != "" {
			// nginx's auth_request and Caddy's forward_auth copy the
			// client's headers into the subrequest: the client's own
			// Client-Cert would arrive from a trusted peer and be
			// believed, and it would reach the API past the gateway.
			bad(pos.at("client_cert_header"), "cannot be used with forward_auth: the ingress copies its clients' headers into the auth subrequests, so a client could name any certificate; terminate TLS at the gateway (tls.client_certs: request) or use proxy mode for certificate-bound tokens")
		}
	}
	if c.BFF != nil && fc.Upstream == "" {
		bad(pos.at("bff"), "needs upstream: the token handler forwards the requests its sessions authenticate")
	}
}

// hasKey reports whether the top-level mapping doc has key, whatever its
// value (a key with no value decodes to a nil pointer).
func hasKey(doc *yaml.Node, key string) bool {
	n := resolve(doc)
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = resolve(n.Content[0])
	}
	if n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// ingress puts in front of router (reserved paths, the token handler's
// endpoints, routes and their guards) what every request on listen goes
// through, in this order:
//
//   - forward_auth.path, when set: the auth subrequests of an ingress,
//     whose described request goes through everything below instead
//     (forwardAuth); without an upstream, any other request but the
//     metadata document's is 404, as nothing is proxied;
//   - the CORS response headers, before hygiene so that its refusals
//     carry them too;
//   - hygiene, before any route is matched: with path_normalization
//     reject, the path a route is matched on is then the path the
//     upstream gets, byte for byte, and means the same to it however it
//     decodes (TestGatewayForwardsWhatItMatched, FuzzGatewayTarget);
//   - CORS preflights, answered here and never forwarded.
func (c *config) ingress(guard *middleware.Guard, router http.Handler) http.Handler {
	h := router
	if c.CORS != nil {
		h = c.CORS.preflight(h)
	}
	h = guard.Hygiene(c.hygiene())(h)
	if c.CORS != nil {
		h = c.CORS.headers(h)
	}
	h = c.clientCertHeader(h) // a trusted proxy's Client-Cert, for the guard
	if c.ForwardAuth == nil {
		return h
	}
	fa := &forwardAuth{trusted: c.TrustedProxies, next: h}
	path, metadata, proxying := c.ForwardAuth.Path, guard.MetadataPath(), c.Upstream != nil
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.EscapedPath(); {
		case p == path:
			fa.ServeHTTP(w, r)
		case proxying || metadata != "" && p == metadata:
			h.ServeHTTP(w, r)
		default:
			notFoundHandler(w, r)
		}
	})
}

// notFoundHandler answers 404 {"error":"not_found"}.
var notFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	writeJSONError(w, http.StatusNotFound, "not_found")
})

// upstreamString is the upstream's URL for log lines; "" without one.
func (c *config) upstreamString() string {
	if c.Upstream == nil {
		return ""
	}
	return c.Upstream.String()
}
