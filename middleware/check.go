package middleware

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard/internal/tokencache"
)

// Request is one request to decide on, as any transport carries it: gRPC
// and Connect metadata, a message from a queue, a WebSocket's first
// message. Check reads nothing else.
type Request struct {
	// Authorization is the Authorization value as received, such as
	// "Bearer eyJ…" or "DPoP eyJ…"; "" when there is none. When the
	// transport received several, it is the first, and
	// AuthorizationCount says how many.
	Authorization string

	// AuthorizationCount is how many Authorization values the transport
	// received (gRPC metadata and HTTP headers may repeat a key). More
	// than one refuses the request as Require refuses two Authorization
	// headers: 400 invalid_request, with its challenge, counted and
	// logged. Zero means one when Authorization is set and none when it
	// is "".
	AuthorizationCount int

	// DPoP is the DPoP proof (the DPoP header's value, RFC 9449 §4.1), ""
	// if none; the first when the transport received several.
	DPoP string

	// DPoPCount is how many DPoP values the transport received. More
	// than one refuses a DPoP request as Require refuses two DPoP
	// headers: 401 invalid_dpop_proof. Zero means one when DPoP is set
	// and none when it is "".
	DPoPCount int

	// Method is the method a DPoP proof's "htm" must name: the HTTP
	// method, or "POST" for gRPC.
	Method string

	// URL is the URL a DPoP proof's "htu" must name, as the client
	// addressed it: scheme, host and path, such as Config.PublicURL plus
	// the path (for gRPC, the full method "/pkg.Service/Method"). Its query
	// and fragment are ignored. Build it from what the server knows, never
	// from headers a client can set (X-Forwarded-*). As with Require, a
	// request without Authorization whose query has an access_token is
	// refused (400 invalid_request, RFC 6750 §2.3 tokens are not taken).
	URL string

	// ClientCertificate is the leaf certificate the client presented on
	// its TLS connection, such as the first of a gRPC peer's
	// credentials.TLSInfo State.PeerCertificates; nil when it presented
	// none. Only a token bound to a certificate (cnf."x5t#S256", RFC
	// 8705) needs it: it is accepted only with that very certificate.
	// A certificate reported in ctx (ContextWithClientCertificate) takes
	// its place: a proxy's report about its client is what counts there,
	// not the proxy's own connection. Pass only what the TLS stack verified was presented with
	// the private key, never a certificate a client merely sent as data.
	ClientCertificate *x509.Certificate
}

// Check makes the decision Require makes, without net/http: it verifies
// req's access token and, for the DPoP scheme, its proof, and requires
// every one of scopes (none: any valid token). It returns the token's
// Principal, or a *Denial saying what to answer:
//
//	p, err := guard.Check(ctx, middleware.Request{
//		Authorization: authz, DPoP: proof, Method: "POST", URL: publicURL + fullMethod,
//	}, "orders:read")
//	var d *middleware.Denial
//	if errors.As(err, &d) {
//		// d.Status (400, 401, 403, 429, 503), d.Code, d.Description,
//		// d.Challenges (WWW-Authenticate values), d.DPoPNonce
//	}
//	ctx = middleware.ContextWithPrincipal(ctx, p)
//
// It counts the decision in the guard's metrics and logs a denial, as
// Require does; Config.OnDecision and Config.OnDenial, which take an
// *http.Request, are not called. ctx bounds the waits the decision may
// need (keys, introspection, the replay store); WithServerHeldToken
// applies to it as to a request's context, and so does a client
// certificate report (ContextWithClientCertificate): its certificate in
// place of req.ClientCertificate, and a malformed report refuses the
// request. Check does not hand out the fresh DPoP-Nonce that Require
// sends with an allowed response whose proof's nonce is about to expire:
// the client is told use_dpop_nonce once it has expired, and retries.
//
// Any error that is not a *Denial is a programming error: a scope that is
// empty or has spaces or quotes. For a Policy, use Checker.
func (g *Guard) Check(ctx context.Context, req Request, scopes ...string) (*Principal, error) {
	for _, s := range scopes {
		if !scopeOK(s) {
			return nil, fmt.Errorf("middleware: Check: scope %q is empty or has spaces or quotes", s)
		}
	}
	pol := policy{Policy: Policy{Scopes: scopes}}
	return g.check(ctx, req, &pol)
}

// Checker is RequirePolicy without net/http: it returns the function that
// makes p's decision for one request, as Check does for a list of scopes.
// Like RequirePolicy it checks p once, panicking on a Policy that
// CheckPolicy refuses, and adds p's scopes to the protected resource
// metadata's scopes_supported (Check does not).
func (g *Guard) Checker(p Policy) func(ctx context.Context, req Request) (*Principal, error) {
	pol := g.mustPolicy(p)
	return func(ctx context.Context, req Request) (*Principal, error) {
		return g.check(ctx, req, pol)
	}
}

// PublicURL is Config.PublicURL without a trailing "/", or "" when it is
// not set: the base of the URL a transport without an *http.Request
// passes to Check as Request.URL, such as PublicURL() plus the full
// method for gRPC.
func (g *Guard) PublicURL() string { return g.publicURL }

// check is Check and Checker's decision: decide, then the denial's log
// line. A *Denial is returned as the error only when there is one: a nil
// *Denial must not become a non-nil error.
func (g *Guard) check(ctx context.Context, req Request, pol *policy) (*Principal, error) {
	in := request{ctx: ctx, req: req}
	p, _, e := g.decide(&in, pol, time.Now())
	if e != nil {
		g.logDenial(&in, e)
		return nil, e
	}
	return p, nil
}

// decide is the guard's one decision, for every transport: it
// authenticates the request, enforces pol, records a DPoP proof as used,
// counts the result in the metrics and, for a denial, fills in the
// challenges. It returns the Principal and the DPoP-Nonce to send with
// the response ("" for none), or the denial. start is when the request
// arrived, for the duration metric and, with the real clock, as the
// verification time.
func (g *Guard) decide(in *request, pol *policy, start time.Time) (*Principal, string, *Denial) {
	p, tok, nonce, proof, e := g.authenticate(in, start)
	if e == nil {
		e = g.enforce(in, pol, p, tok)
	}
	if e == nil && proof != nil {
		e = g.recordProof(in, proof, p)
	}
	if e != nil {
		g.metrics.record(e.Reason, time.Since(start))
		g.setChallenges(e, pol.challengeScopes())
		return nil, "", e
	}
	g.metrics.record(ReasonOK, time.Since(start))
	return p, nonce, nil
}

// request is one request as the decision reads it: an *http.Request (the
// HTTP handlers; its headers and URL are read only when the decision needs
// them) or, when hr is nil, a Check Request (held by value: a pointer
// would put every Request on the heap).
type request struct {
	ctx context.Context
	hr  *http.Request
	req Request

	// tokenSum is the SHA-256 of the access token when verifyToken
	// computed it (the verified-token cache's key), so a DPoP proof's
	// "ath" is checked without hashing the token a second time.
	tokenSum    tokencache.Key
	hasTokenSum bool
}

// The request headers the decision reads, as http.Header keys them
// (canonical form, so "DPoP" is "Dpop"). Indexing the map with them reads
// exactly what Header.Values would, without canonicalising the name on
// every request: that cost a cached request about 2% more instructions.
const (
	headerAuthorization = "Authorization"
	headerDPoP          = "Dpop"
)

// authorization returns the Authorization value and how many there are
// (0, 1, or more).
func (in *request) authorization() (string, int) {
	return in.header(in.req.Authorization, in.req.AuthorizationCount, headerAuthorization)
}

// proof returns the DPoP proof and how many there are (0, 1, or more).
func (in *request) proof() (string, int) {
	return in.header(in.req.DPoP, in.req.DPoPCount, headerDPoP)
}

// header returns a credential header's first value and how many values
// there are: for Check, given and count (when count is not positive, one
// value, or none when given is empty); for an HTTP request, the values
// under key, a canonical header name.
func (in *request) header(given string, count int, key string) (string, int) {
	if in.hr == nil {
		if count > 0 {
			return given, count
		}
		if given == "" {
			return "", 0
		}
		return given, 1
	}
	vals := in.hr.Header[key]
	if len(vals) == 0 {
		return "", 0
	}
	return vals[0], len(vals)
}

// method is the method a proof's htm must name.
func (in *request) method() string {
	if in.hr == nil {
		return in.req.Method
	}
	return in.hr.Method
}

// queryToken reports whether the request's query has an access_token
// (RFC 6750 §2.3). Query() decodes the names, so access%5Ftoken is
// caught too.
func (in *request) queryToken() bool {
	if in.hr == nil {
		_, q, ok := strings.Cut(in.req.URL, "?")
		if !ok {
			return false
		}
		q, _, _ = strings.Cut(q, "#")
		v, _ := url.ParseQuery(q)
		return v.Has("access_token")
	}
	u := in.hr.URL
	return u != nil && u.RawQuery != "" && u.Query().Has("access_token")
}

// htu is the URL a proof's htu must name: Check's Request.URL, or for an
// HTTP request the one Guard.requestURL derives.
func (g *Guard) htu(in *request) (string, bool) {
	if in.hr == nil {
		return in.req.URL, true
	}
	return g.requestURL(in.hr)
}

// logPath is the request's path, for logs: without query and fragment.
func (in *request) logPath() string {
	if in.hr != nil {
		return in.hr.URL.EscapedPath()
	}
	u := in.req.URL
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	if _, rest, ok := strings.Cut(u, "://"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			return rest[i:]
		}
		return "/"
	}
	return u
}

// mustPolicy checks p and registers its scopes for the protected resource
// metadata, panicking on a Policy CheckPolicy refuses.
func (g *Guard) mustPolicy(p Policy) *policy {
	pol, err := g.checkPolicy(p)
	if err != nil {
		panic(err)
	}
	g.meta.addScopes(pol.Scopes)
	for _, set := range pol.AnyOf {
		g.meta.addScopes(set)
	}
	return pol
}
