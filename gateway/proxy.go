package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"slices"
	"strings"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/internal/hygiene"
	"github.com/tokenguard/tokenguard/internal/netutil"
	"github.com/tokenguard/tokenguard/middleware"
)

// The identity headers the gateway sets on every request it forwards,
// from the verified token: its "sub", its "client_id" and its scopes,
// space-separated. A header is left out when the token has no such claim.
// Every header a client sends that an upstream could read as one of these
// (any header starting X-Tokenguard-, in any letter case, with '_' for
// '-') is removed first.
const (
	HeaderSubject  = "X-Tokenguard-Subject"
	HeaderClientID = "X-Tokenguard-Client-Id"
	HeaderScope    = "X-Tokenguard-Scope"
)

// reservedPaths are served only on metrics_listen and never proxied, even
// when a route would match them.
var reservedPaths = map[string]bool{"/metrics": true, "/healthz": true, "/readyz": true}

// writeJSONError sends a small JSON error like the guard's own denials.
// code is a constant, never request or upstream data.
func writeJSONError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{"error":"`+code+`"}`+"\n")
}

// newProxyHandler builds the proxy's routing: every configured route,
// guarded with its scopes, in front of proxy; a catch-all that answers 404
// (so a method mismatch is 404 too, not 405); and the reserved paths,
// which are never proxied.
//
// With a token handler (th, nil without the bff block), its endpoints
// under bff.path are served before any route, and every other request
// matched by a route passes its Authenticate before the route's guard: a
// session cookie becomes the Authorization header the guard verifies.
//
// A public route has no guard (publicRoute). An auth subrequest's request
// (forward_auth) goes through the same routes and guards, and the last
// handler answers the ingress instead of proxying (proxyOrAnswer).
func newProxyHandler(cfg *config, guard *middleware.Guard, th *bff.Handler, proxy http.Handler, log *slog.Logger) (http.Handler, error) {
	mux := http.NewServeMux()
	upstream := requirePrincipal(proxy, log)
	if cfg.ForwardAuth != nil {
		// Only forward_auth makes auth subrequests (isForwardAuth).
		upstream = proxyOrAnswer(upstream)
	}
	guarded := map[string]bool{} // the patterns of routes that are not public
	for _, r := range cfg.Routes {
		if !r.Public {
			guarded[r.Pattern] = true
		}
		pol := middleware.Policy{
			Scopes: r.Scopes, AnyOf: r.AnyScopes, RequireDPoP: r.RequireDPoP, Introspect: r.Introspect,
			IntrospectionMaxAge: r.IntrospectionMaxAge,
			MaxTokenAge:         r.MaxTokenAge, ACRValues: r.ACRValues, MaxAuthAge: r.MaxAuthAge,
		}
		if err := guard.CheckPolicy(pol); err != nil {
			// Not expected: validate checked the same rules.
			return nil, fmt.Errorf("tokenguard: config %s: line %d: %s: %w", cfg.File, r.Line, r.Key, err)
		}
		route := guard.RequirePolicy(pol)(upstream)
		switch {
		case r.Public:
			route = publicRoute(proxy)
		case th != nil:
			// Only on routes: a path no route serves is 404 whatever
			// cookie it carries. Never for an auth subrequest: the
			// ingress forwards the request, cookie and all.
			route = unlessForwardAuth(th.Authenticate(route), route)
		}
		if err := tryHandle(mux, r.Pattern, route); err != nil {
			// Not expected: validate registered these on a scratch mux.
			return nil, fmt.Errorf("tokenguard: config %s: line %d: %s: %w", cfg.File, r.Line, r.Key, err)
		}
	}
	// RFC 9728 protected resource metadata, unguarded, where every 401
	// challenge's resource_metadata= points.
	if p := guard.MetadataPath(); p != "" {
		if err := tryHandle(mux, "GET "+p, unlessForwardAuth(guard.MetadataHandler(), notFoundHandler)); err != nil {
			return nil, fmt.Errorf("tokenguard: config %s: a route conflicts with the protected resource metadata path %s: %w", cfg.File, p, err)
		}
	}
	notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, "not_found")
	})
	// When a route already covers every method and path ("/"), the
	// catch-all conflicts with it and is not needed.
	_ = tryHandle(mux, "/", notFound)
	router := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reservedPaths[r.URL.Path] {
			notFound(w, r)
			return
		}
		// CONNECT asks for a tunnel, TRACE for the request echoed back
		// (headers, tokens and all): neither is passed on by a route that
		// does not name it. CONNECT is refused outright.
		if r.Method == http.MethodConnect || r.Method == http.MethodTrace && !namesMethod(mux, r, http.MethodTrace) {
			refuse(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "method_not_allowed")
			return
		}
		if th != nil && th.Owns(r) && !isForwardAuth(r.Context()) {
			th.ServeHTTP(w, r)
			return
		}
		// Routes match the host and path case-sensitively, as written;
		// many upstreams (and DNS) do not. The host is matched in lower
		// case without a trailing dot, as allowed_hosts compares it; a
		// path that selects a guarded route only in lower case is
		// refused, so /Admin/ cannot reach an upstream that serves
		// /admin/ through a public or weaker route.
		r.Host = canonicalHost(r.Host)
		if hasUpper(r.URL.Path) && caseAmbiguous(mux, r, guarded) {
			refuse(w, r, http.StatusBadRequest, "ambiguous_case", "invalid_path")
			return
		}
		mux.ServeHTTP(w, r)
	})
	// Hygiene runs before any route is matched, CORS and forward auth
	// around it (ingress).
	return cfg.ingress(guard, router), nil
}

// canonicalHost is host in lower case, without the trailing dot of a
// fully qualified name: the name every route, allowed_hosts and DNS
// mean by it.
func canonicalHost(host string) string {
	if !hasUpper(host) && !strings.Contains(host, ".:") && !strings.HasSuffix(host, ".") {
		return host
	}
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		h, port = host, ""
	}
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if port != "" {
		return net.JoinHostPort(h, port)
	}
	return h
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// caseAmbiguous reports whether r's path, in lower case, selects a
// guarded route other than the one it selects as written.
func caseAmbiguous(mux *http.ServeMux, r *http.Request, guarded map[string]bool) bool {
	_, as := mux.Handler(r)
	lower := *r
	u := *r.URL
	u.Path, u.RawPath = strings.ToLower(u.Path), strings.ToLower(u.RawPath)
	lower.URL = &u
	_, lp := mux.Handler(&lower)
	return lp != as && guarded[lp]
}

// hygiene is the gateway's middleware.Hygiene.
func (c *config) hygiene() middleware.Hygiene {
	return middleware.Hygiene{
		AllowedHosts:          slices.Clone(c.AllowedHosts),
		InsecureSkipPathCheck: c.PathNormalization == pathForwardUnchanged,
		RefuseWebSocket:       !c.AllowWebSocket,
	}
}

// requirePrincipal fails closed if a request somehow reaches the proxy
// without a verified Principal; with every route guarded it never should.
func requirePrincipal(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := middleware.PrincipalFrom(r.Context()); !ok {
			log.Error("request reached the proxy without a verified principal", "method", r.Method, "path", r.URL.EscapedPath())
			writeJSONError(w, http.StatusInternalServerError, "internal_error")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// believeForwarded passes on what a trusted proxy in front said about
// the client (trusted_proxies is the one list that decides this): its
// X-Forwarded-For chain, with the proxy's own address appended after it,
// and its X-Forwarded-Host and -Proto instead of the gateway's view
// (SetXForwarded's), each only when it sent exactly one well-formed value.
// From any other peer these headers are never believed (newProxy).
//
// A host outside allowed_hosts (when set) is not passed on: the upstream
// would act on a host the gateway never accepted (a proxy that passes its
// clients' X-Forwarded-Host through, as nginx does unless told otherwise,
// lets them choose it).
func believeForwarded(pr *httputil.ProxyRequest, allowedHosts []string) {
	in, out := pr.In.Header, pr.Out.Header
	if v := in.Values("X-Forwarded-For"); len(v) > 0 {
		chain := strings.Join(v, ", ")
		if forwardedForOK(chain) {
			out.Set("X-Forwarded-For", chain+", "+out.Get("X-Forwarded-For"))
		}
	}
	if v := in.Values("X-Forwarded-Host"); len(v) == 1 && checkHost(v[0]) == nil && hostAllowed(allowedHosts, v[0]) {
		out.Set("X-Forwarded-Host", v[0])
	}
	if v := in.Values("X-Forwarded-Proto"); len(v) == 1 && (v[0] == "http" || v[0] == "https") {
		out.Set("X-Forwarded-Proto", v[0])
	}
}

// hostAllowed reports whether host (perhaps with a port) is in allowed,
// lower-case names as validate keeps them; any host when allowed is empty.
func hostAllowed(allowed []string, host string) bool {
	if len(allowed) == 0 {
		return true
	}
	h := canonicalHost(host)
	name := h
	if n, _, err := net.SplitHostPort(h); err == nil {
		name = n
	}
	return slices.Contains(allowed, h) || slices.Contains(allowed, name)
}

// forwardedForOK reports whether an X-Forwarded-For chain is a list of IP
// addresses (at most 32): nothing else is passed on.
func forwardedForOK(chain string) bool {
	n := 0
	for part := range strings.SplitSeq(chain, ",") {
		if _, err := netip.ParseAddr(strings.TrimSpace(part)); err != nil {
			return false
		}
		if n++; n > 32 {
			return false
		}
	}
	return true
}

// newProxy returns the reverse proxy to the upstream. It uses Rewrite, so
// the inbound Forwarded and X-Forwarded-* headers are dropped before it
// runs and only the ones SetXForwarded adds (the TCP peer, the Host the
// client asked for, and http or https per the listener) reach the
// upstream, or, from a peer in trusted_proxies, what it said about the
// client (believeForwarded); every other X-Forwarded-* header and the client-address and
// URL/method-override headers frameworks read (dropClientForwarding) are
// removed too, so no client-supplied address, scheme, port, prefix,
// original URL or method reaches it under any common name. Hop-by-hop headers named in the
// client's Connection header are removed before Rewrite, so they can
// never remove the identity headers Rewrite sets.
//
// The connection pool, copy buffers and flush interval are those every
// proxy of ours shares (netutil.ConfigureProxy): streamed responses are
// flushed chunk by chunk, any other within 100 ms. Request bodies
// are streamed to the upstream as they arrive (ReverseProxy never
// buffers them); protocol upgrades (WebSocket) are passed through by
// ReverseProxy once the route's guard has allowed the request.
func newProxy(cfg *config, log *slog.Logger) *httputil.ReverseProxy {
	upstream := cfg.Upstream
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			scrubHeaders(pr.Out.Header, cfg.AllowUnderscoreHeaders)
			dropClientCertHeader(pr.Out.Header, cfg.ClientCertHeader)
			// Request trailers are never forwarded: they would arrive after
			// every header rule here has run.
			pr.Out.Trailer = nil
			pr.SetXForwarded()
			if trustedPeer(cfg.TrustedProxies, pr.In.RemoteAddr) {
				believeForwarded(pr, cfg.AllowedHosts)
			}
			setIdentityHeaders(pr.Out.Header, pr.In)
			if rec := recordFrom(pr.In.Context()); rec != nil {
				pr.Out.Header[headerRequestID] = []string{rec.id} // Set; the name is canonical
				rec.forwarded = true
				if rec.body != nil {
					// A slow uploader may hold an upstream connection
					// this long, and no longer.
					rec.body.limit(cfg.BodyReadTimeout)
				}
			}
		},
		ModifyResponse: func(res *http.Response) error {
			// The gateway's own id goes on every response; an upstream's
			// copy would make a second value on a 101, which is sent
			// with the headers as they are at Hijack.
			delete(res.Header, headerRequestID) // Del; the name is canonical, as are the response's
			if rec := recordFrom(res.Request.Context()); rec != nil {
				rec.upstreamStatus = res.StatusCode
			}
			if cfg.CORS != nil {
				dropUpstreamCORS(res.Header)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			rec := recordFrom(r.Context())
			if kind, status, ok := clientFailure(r.Context(), rec, err); ok {
				if rec != nil {
					rec.clientError = kind
				}
				log.Debug("request failed on the client's side", "method", r.Method, "path", r.URL.EscapedPath(), "client_error", kind, "err", err)
				w.Header().Set("Connection", "close")
				switch status {
				case http.StatusRequestTimeout:
					writeJSONError(w, status, "request_timeout")
				case http.StatusBadRequest:
					writeJSONError(w, status, "invalid_request")
				default: // the client is gone; whatever is written goes nowhere
					writeJSONError(w, http.StatusBadRequest, "invalid_request")
				}
				return
			}
			status, kind := classifyUpstreamError(err)
			if rec != nil {
				rec.upstreamError = kind
			}
			log.Warn("upstream request failed", "method", r.Method, "path", r.URL.EscapedPath(), "upstream_error", kind, "err", err)
			// The error names the upstream's address; it stays in the log.
			code := "bad_gateway"
			if status == http.StatusGatewayTimeout {
				code = "gateway_timeout"
			}
			writeJSONError(w, status, code)
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	netutil.ConfigureProxy(p, netutil.ProxySettings{
		DialTimeout:            cfg.UpstreamDialTimeout,
		ResponseHeaderTimeout:  cfg.UpstreamTimeout,
		MaxResponseHeaderBytes: cfg.UpstreamMaxResponseHeaderBytes,
	})
	return p
}

// clientFailure reports whether err, from forwarding a request, is the
// client's doing, and if so how the access log and the client's response
// say so. A forwarded request fails on the client's side when its body
// could not be read (too slow, malformed, abandoned) or the client went
// away (ctx, the request's context, is done): that is never the
// upstream's fault, never a 502, and never counted in
// tokenguard_upstream_requests_total. rec may be nil.
func clientFailure(ctx context.Context, rec *accessRecord, err error) (kind string, status int, ok bool) {
	var bodyErr error
	if rec != nil && rec.body != nil {
		_, bodyErr = rec.body.state()
	}
	switch {
	case bodyErr != nil:
		kind, status = classifyBodyError(bodyErr)
		return kind, status, true
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return clientGone, statusClientClosed, true
	}
	return "", 0, false
}

// clientOverrideHeaders are request headers, other than Forwarded and
// X-Forwarded-*, that common frameworks and proxies read as the client's
// address or the original URL. Coming from a client they are claims
// nobody checked, so none reaches the upstream.
// Lower case with '-', as hygiene.FoldedEqual compares them.
var clientOverrideHeaders = []string{
	"x-real-ip", "true-client-ip", "x-client-ip", "cf-connecting-ip", "fastly-client-ip",
	"x-cluster-client-ip", "x-original-forwarded-for", "x-original-url", "x-rewrite-url",
	"x-original-host", "x-host", "x-http-method-override", "x-method-override", "x-http-method",
	// RFC 9440: the client certificate a TLS-terminating proxy saw. Only
	// the gateway may read it, and only from trusted_proxies (clientcert.go).
	"client-cert", "client-cert-chain",
}

// scrubHeaders removes from a request about to be forwarded every header
// a client could use to lie to the upstream, under every spelling an
// upstream might fold to the same name (letter case, '_' for '-',
// surrounding space: CGI, WSGI, PHP and Rack read X_Tokenguard_Subject
// as X-Tokenguard-Subject):
//
//   - X-Tokenguard-*, the identity headers the gateway sets afterwards;
//   - every X-Forwarded-* header (Prefix, Port, Ssl, Scheme, ... as well
//     as the For, Host and Proto that SetXForwarded then sets afresh),
//     Forwarded, and clientOverrideHeaders (client address, original URL,
//     method override: the guard authorised the request's real method);
//   - unless allowUnderscore, every header whose name has a '_' at all,
//     as Envoy's headers_with_underscores_action does: upstreams fold
//     them unpredictably, so no list of names could be complete.
func scrubHeaders(h http.Header, allowUnderscore bool) {
	var buf [64]byte // folded names this long or shorter stay on the stack
	for k := range h {
		if !allowUnderscore && strings.IndexByte(k, '_') >= 0 {
			delete(h, k)
			continue
		}
		// Folded once, then compared: the same as hygiene.FoldedEqual and
		// FoldedHasPrefix with each name, at a fraction of the cost.
		f := hygiene.AppendFolded(buf[:0], k)
		if bytes.HasPrefix(f, prefixTokenguard) || bytes.HasPrefix(f, prefixForwarded) ||
			string(f) == "forwarded" || clientOverrideSet[string(f)] {
			delete(h, k)
		}
	}
}

var (
	prefixTokenguard = []byte("x-tokenguard-")
	prefixForwarded  = []byte("x-forwarded-")
	// clientOverrideSet is clientOverrideHeaders, for lookups.
	clientOverrideSet = func() map[string]bool {
		m := make(map[string]bool, len(clientOverrideHeaders))
		for _, n := range clientOverrideHeaders {
			m[n] = true
		}
		return m
	}()
)

// setIdentityHeaders sets the gateway's identity headers on out from the
// request's verified Principal. scrubHeaders has removed every client
// copy of them first.
func setIdentityHeaders(out http.Header, in *http.Request) {
	p, ok := middleware.PrincipalFrom(in.Context())
	if !ok {
		return
	}
	// The names are in canonical form: assigning is Set without
	// canonicalizing them again.
	if p.Subject != "" {
		out[HeaderSubject] = []string{p.Subject}
	}
	if p.ClientID != "" {
		out[HeaderClientID] = []string{p.ClientID}
	}
	if len(p.Scopes) > 0 {
		out[HeaderScope] = []string{strings.Join(p.Scopes, " ")}
	}
}

// maxHeaderBytes sizes the proxy's request-header limit above the token
// limit: room for the Authorization header, a DPoP proof of similar size,
// and ordinary headers. tokenSize 0 means the middleware's default.
func maxHeaderBytes(tokenSize int) int {
	if tokenSize == 0 {
		tokenSize = middleware.DefaultMaxTokenSize
	}
	return 2*tokenSize + headerHeadroom
}

// namesMethod reports whether the route mux picks for r names method
// explicitly ("TRACE /debug/"), rather than matching every method.
func namesMethod(mux *http.ServeMux, r *http.Request, method string) bool {
	_, pattern := mux.Handler(r)
	return strings.HasPrefix(pattern, method+" ")
}
