package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard/internal/hygiene"
)

// CORS (the cors block): the gateway answers browsers' preflights itself
// and marks every response to an allowed origin, so that a browser app on
// another origin can call the API and read its denials (the challenge
// and the DPoP nonce a client needs to retry).
//
// What it does not do: it never sends Access-Control-Allow-Credentials.
// Cross-origin calls carry their token in Authorization, which is not a
// credential in the CORS sense; the token handler's session cookie is for
// same-origin apps (and SameSite=Strict besides). bff.allowed_origins is
// a separate list: it decides which origins may use a session, cors which
// origins may read answers.

// Defaults of the cors block.
const (
	defaultCORSMaxAge = 10 * time.Minute
	// maxCORSMaxAge is Firefox's cap on Access-Control-Max-Age (Chromium
	// caps at 2 h): more would be ignored.
	maxCORSMaxAge = 24 * time.Hour
)

// defaultCORSHeaders is allowed_headers when the key is absent: what a
// token-bearing call needs beyond the CORS-safelisted headers.
var defaultCORSHeaders = []string{"Authorization", "DPoP", "Content-Type"}

// corsExposed is Access-Control-Expose-Headers: beyond the safelisted
// response headers, a script may read a denial's challenge and a DPoP
// nonce.
const corsExposed = "WWW-Authenticate, DPoP-Nonce"

// corsConfig is the cors block, checked.
type corsConfig struct {
	AllowedOrigins []string // serialised origins, exactly as browsers send them
	AllowedHeaders []string // as written; empty: only the safelisted ones
	MaxAge         time.Duration
}

// validate checks the cors block (fc nil: "cors:" with no value).
func (fc *fileCORS) validate(pos positions, bad func(keyPos, string, ...any), dur func(key, v string, def time.Duration, allowZero bool) time.Duration) *corsConfig {
	if fc == nil {
		fc = &fileCORS{}
	}
	cc := &corsConfig{AllowedHeaders: slices.Clone(defaultCORSHeaders)}
	if len(fc.AllowedOrigins) == 0 {
		bad(pos.at("cors", "allowed_origins"), "list at least one origin (such as https://app.example.com); without cors, OPTIONS is routed like any request")
	}
	for i, o := range fc.AllowedOrigins {
		canon, err := checkOrigin(o)
		if err != nil {
			bad(pos.at("cors", "allowed_origins", i), "%v", err)
			continue
		}
		if slices.Contains(cc.AllowedOrigins, canon) {
			bad(pos.at("cors", "allowed_origins", i), "%q is listed twice", o)
			continue
		}
		cc.AllowedOrigins = append(cc.AllowedOrigins, canon)
	}
	if fc.AllowedHeaders != nil {
		cc.AllowedHeaders = nil
		for i, h := range *fc.AllowedHeaders {
			switch {
			case !isToken(h):
				bad(pos.at("cors", "allowed_headers", i), "%q is not a header name", h)
			case slices.ContainsFunc(cc.AllowedHeaders, func(o string) bool { return strings.EqualFold(o, h) }):
				bad(pos.at("cors", "allowed_headers", i), "%q is listed twice", h)
			default:
				cc.AllowedHeaders = append(cc.AllowedHeaders, h)
			}
		}
	}
	cc.MaxAge = dur("cors.max_age", fc.MaxAge, defaultCORSMaxAge, true)
	if cc.MaxAge > maxCORSMaxAge {
		bad(pos.at("cors", "max_age"), "must be at most %v (browsers cap it lower still)", maxCORSMaxAge)
	}
	if cc.MaxAge%time.Second != 0 {
		bad(pos.at("cors", "max_age"), "must be whole seconds (it is sent as Access-Control-Max-Age)")
	}
	return cc
}

// checkOrigin requires an origin as a browser serialises it in the Origin
// header: scheme "://" host [":" port], lower case, no default port, no
// path, query, fragment or user; it returns that form. "*" is refused:
// any web page could then read the gateway's answers (its public routes,
// its denials) through the browser of anyone who can reach it, which for
// a gateway inside a network is the one thing its placement was meant to
// prevent. "null" (sandboxed frames, file: pages) is refused too: any page
// can make itself "null".
func checkOrigin(s string) (string, error) {
	switch s {
	case "*":
		return "", fmt.Errorf(`"*" is refused: list the origins of the apps that call this API (any page could otherwise read its answers through a visitor's browser)`)
	case "null":
		return "", fmt.Errorf(`"null" is refused: any page can send it (sandboxed frames, file: pages)`)
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "":
		return "", fmt.Errorf("%q is not an origin: write scheme://host[:port], such as https://app.example.com", s)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%q: the scheme must be http or https", s)
	case u.User != nil || u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(s, "#*"):
		return "", fmt.Errorf("%q is not an origin: no path (not even a trailing /), query, fragment, user or wildcard", s)
	}
	if err := checkHost(u.Host); err != nil {
		return "", err
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	canon := strings.ToLower(u.Scheme) + "://" + host
	if p := u.Port(); p != "" && !(u.Scheme == "http" && p == "80" || u.Scheme == "https" && p == "443") {
		canon += ":" + p
	}
	if canon != s {
		return "", fmt.Errorf("%q: write it as browsers send it, %q (browsers compare origins byte for byte)", s, canon)
	}
	return canon, nil
}

// origin returns r's Origin when it is one allowed origin.
func (cc *corsConfig) origin(r *http.Request) (string, bool) {
	vals := r.Header.Values("Origin")
	if len(vals) != 1 || !slices.Contains(cc.AllowedOrigins, vals[0]) {
		return "", false
	}
	return vals[0], true
}

// headers marks every response: Vary: Origin always (the answer depends
// on it, and a cache must know), and, to an allowed origin,
// Access-Control-Allow-Origin with that origin and
// Access-Control-Expose-Headers. It runs before hygiene, so that
// refusals and denials carry them too: a browser app must be able to
// read why it was refused. The proxy drops the upstream's own
// Access-Control-Allow-* headers (dropUpstreamCORS), so these are the only
// ones.
func (cc *corsConfig) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		if o, ok := cc.origin(r); ok {
			h.Set("Access-Control-Allow-Origin", o)
			h.Set("Access-Control-Expose-Headers", corsExposed)
		}
		next.ServeHTTP(w, r)
	})
}

// preflight answers CORS preflights (OPTIONS with Origin and
// Access-Control-Request-Method) itself; they need no token and are never
// forwarded. From an allowed origin: 204 allowing the method asked for,
// allowed_headers and max_age. From any other: 403
// {"error":"origin_not_allowed"}. Any other request, OPTIONS included,
// goes on to next. It runs after hygiene: a preflight for a path the
// gateway would refuse is refused.
func (cc *corsConfig) preflight(next http.Handler) http.Handler {
	allowHeaders := strings.Join(cc.AllowedHeaders, ", ")
	maxAge := strconv.FormatInt(int64(cc.MaxAge/time.Second), 10)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// An auth subrequest's preflight is routed like any request: to
		// an ingress a 204 means "forward it", and anyone can send the
		// two headers that make a request a preflight.
		if r.Method != http.MethodOptions || len(r.Header.Values("Origin")) == 0 || len(r.Header.Values("Access-Control-Request-Method")) == 0 || isForwardAuth(r.Context()) {
			next.ServeHTTP(w, r)
			return
		}
		if _, ok := cc.origin(r); !ok {
			refuse(w, r, http.StatusForbidden, "origin_not_allowed", "origin_not_allowed")
			return
		}
		method := r.Header.Values("Access-Control-Request-Method")
		if len(method) != 1 || !isToken(method[0]) {
			refuse(w, r, http.StatusBadRequest, "invalid_preflight", "invalid_request")
			return
		}
		if rec := recordFrom(r.Context()); rec != nil {
			rec.preflight = true
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", method[0])
		if allowHeaders != "" {
			h.Set("Access-Control-Allow-Headers", allowHeaders)
		}
		h.Set("Access-Control-Max-Age", maxAge)
		w.WriteHeader(http.StatusNoContent)
	})
}

// dropUpstreamCORS removes from an upstream's response the CORS headers
// the gateway decides on its own: with a cors block, a second
// Access-Control-Allow-Origin would make browsers refuse the response,
// and an upstream's Access-Control-Allow-Credentials would open it to
// cookie-bearing reads the gateway never allowed. The upstream's
// Access-Control-Expose-Headers stay, added to the gateway's.
func dropUpstreamCORS(h http.Header) {
	for k := range h {
		if hygiene.FoldedHasPrefix(k, "access-control-") && !hygiene.FoldedEqual(k, "access-control-expose-headers") {
			delete(h, k)
		}
	}
}

// isToken reports whether s is an RFC 9110 token: a method or a header
// field name.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
