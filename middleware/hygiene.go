package middleware

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/tokenguard/tokenguard/internal/httpauth"
	"github.com/tokenguard/tokenguard/internal/hygiene"
)

// Hygiene is what Guard.Hygiene checks before a request reaches a router.
// The zero value is the safe default: every request-target check on, any
// Host, WebSocket the only protocol switch.
//
// A guard decides by route, and a route is matched on the path as Go's
// ServeMux reads it. That is only safe if whatever acts on the request
// afterwards reads the same path: an upstream behind a proxy, or a
// framework mounted behind the guard. Many do not: Spring, Tomcat, IIS,
// PHP and many Node and Python stacks decode "%2f" and "%2e", resolve
// dot segments after decoding, strip ";params" or read '\' as '/', so
// "/orders/..%2fadmin" is inside "/orders/" for ServeMux and is "/admin"
// for them. Hygiene refuses every request-target with more than one
// reading instead of repairing it into one of them.
type Hygiene struct {
	// AllowedHosts, when not empty, lists the Host header values this
	// server answers to: a host name or address ("api.example.com",
	// "127.0.0.1", "[::1]") matches it with any port, a host:port only
	// that port; letter case is ignored. A request with any other Host,
	// or none, gets 421 {"error":"misdirected_request"} (RFC 9110
	// §15.5.20). Empty means any Host. Entries with a scheme, a path or
	// spaces are a programming error (Hygiene panics).
	AllowedHosts []string

	// InsecureSkipPathCheck turns the request-target checks off: requests
	// are passed on with the path as sent, dot segments, encoded slashes
	// and all. It is safe only when nothing behind the guard decodes,
	// normalises or re-reads the path in any way that ServeMux does not.
	// The Host and upgrade checks still apply.
	InsecureSkipPathCheck bool

	// RefuseWebSocket refuses WebSocket upgrades too. Every other
	// protocol switch (h2c above all) is always refused.
	RefuseWebSocket bool
}

// The refusals Hygiene sends, in the JSON body's "error".
const (
	codeInvalidPath = "invalid_path"
	codeMisdirected = "misdirected_request"
)

// Hygiene returns middleware that refuses, before next sees them,
// requests that something behind next could read differently from the
// way ServeMux and the guard read them:
//
//   - a request-target that is not origin-form, or whose path holds a
//     percent-encoded '/', '\', '.', '%', ';', '?', '#' or control
//     character, a dot segment (plain or encoded), an empty segment
//     ("//"), a ';' path parameter, a backslash, invalid
//     percent-encoding, a character RFC 3986 does not allow, or, decoded,
//     invalid UTF-8 or a character that Unicode normalisation turns into
//     a delimiter (fullwidth dots and slashes): 400
//     {"error":"invalid_path"}. The query is not examined. See
//     Hygiene.InsecureSkipPathCheck.
//   - an Upgrade to anything but WebSocket, or to WebSocket when
//     Hygiene.RefuseWebSocket is set: 400 {"error":"invalid_request"},
//     with Connection: close. An "Upgrade: h2c" passed to an upstream
//     that speaks h2c would give the client a raw HTTP/2 connection on
//     which no later request is checked.
//   - a Host not in Hygiene.AllowedHosts: 421
//     {"error":"misdirected_request"}.
//
// Each refusal is counted in tokenguard_requests_total with its own reason
// (ReasonMisdirected, ReasonInvalidPath, ReasonUpgradeRefused) and reported
// to Config.OnDecision; next never runs. Requests that pass go to next
// unchanged, with the caller's ResponseWriter.
//
// Put it outside the router, so it sees every request before a route is
// chosen:
//
//	handler := guard.Hygiene(middleware.Hygiene{AllowedHosts: []string{"api.example.com"}})(mux)
//
// Hygiene panics on an AllowedHosts entry that is not a host or host:port,
// as http.ServeMux does on a bad pattern.
func (g *Guard) Hygiene(h Hygiene) func(http.Handler) http.Handler {
	hosts, err := checkAllowedHosts(h.AllowedHosts)
	if err != nil {
		panic(err)
	}
	h.AllowedHosts = hosts
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if e := h.check(r); e != nil {
				g.refuse(w, r, e)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// check returns the refusal for r, or nil.
func (h *Hygiene) check(r *http.Request) *Denial {
	if len(h.AllowedHosts) > 0 && !hostAllowed(h.AllowedHosts, r.Host) {
		return deny(http.StatusMisdirectedRequest, codeMisdirected, ReasonMisdirected, "", nil)
	}
	if !h.InsecureSkipPathCheck {
		var err error
		if r.RequestURI != "" {
			err = hygiene.CheckTarget(r.RequestURI)
		} else {
			// A request made in-process (a test, or a caller that builds
			// its own): the URL is all there is.
			err = hygiene.CheckPath(r.URL.EscapedPath())
		}
		if err != nil {
			return deny(http.StatusBadRequest, codeInvalidPath, ReasonInvalidPath, "", err)
		}
	}
	if err := hygiene.CheckUpgrade(r.Header, !h.RefuseWebSocket); err != nil {
		return deny(http.StatusBadRequest, CodeInvalidRequest, ReasonUpgradeRefused, "", err)
	}
	return nil
}

// refuse counts, reports, logs and answers a Hygiene refusal: with
// Config.OnDenial, or a body of {"error":"<code>"}. Nothing from the
// request is echoed.
func (g *Guard) refuse(w http.ResponseWriter, r *http.Request, e *Denial) {
	g.metrics.count(e.Reason)
	g.decided(r, e.Reason)
	in := request{ctx: r.Context(), hr: r}
	g.logDenial(&in, e)
	if e.Reason == ReasonUpgradeRefused {
		// The client may already be speaking the protocol it asked for.
		w.Header().Set("Connection", "close")
	}
	g.writeDenial(w, r, e)
}

// checkAllowedHosts validates and normalises Hygiene.AllowedHosts: lower
// case, IPv6 addresses in brackets.
func checkAllowedHosts(in []string) ([]string, error) {
	out := slices.Clone(in)
	for i, h := range out {
		if a, err := netip.ParseAddr(h); err == nil && a.Is6() {
			h = "[" + h + "]"
		}
		if h == "" || strings.ContainsAny(h, "/ \t@?#\\") || strings.Contains(h, "://") {
			return nil, fmt.Errorf("middleware: Hygiene.AllowedHosts[%d]: %q is not a host or host:port", i, in[i])
		}
		out[i] = strings.ToLower(h)
	}
	return out, nil
}

// hostAllowed reports whether the Host header value host matches an
// entry of allowed (normalised by checkAllowedHosts): exactly, or by its
// host part when the entry has no port.
func hostAllowed(allowed []string, host string) bool {
	if host == "" {
		return false
	}
	name := hostPart(host)
	for _, a := range allowed {
		if httpauth.EqualFoldASCII(host, a) || name != host && hostPart(a) == a && httpauth.EqualFoldASCII(name, a) {
			return true
		}
	}
	return false
}

// hostPart is host without its port: "a.example:8080" → "a.example",
// "[::1]:8080" → "[::1]". A value it cannot split is returned as is.
func hostPart(host string) string {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i > 0 {
			return host[:i+1]
		}
		return host
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.IndexByte(host, ':') == i {
		return host[:i]
	}
	return host
}
