// Package middleware is tokenguard's net/http guard for OAuth 2.0 access
// tokens. Wrap a handler in one line and only requests that carry a token
// verified for this request reach it:
//
//	guard, err := middleware.New(ctx, middleware.Config{
//		Audience: "https://api.example.com",
//		Issuers:  []middleware.Issuer{{Issuer: "https://as.example.com", JWKSURI: "https://as.example.com/jwks"}},
//	})
//	...
//	mux.Handle("GET /orders/", guard.Require("orders:read")(ordersHandler))
//
// Inside the handler, PrincipalFrom(r.Context()) returns who the token
// speaks for.
//
// Guard.Check makes the same decision without net/http, for gRPC, Connect,
// queues or WebSockets: it takes a Request (the Authorization value, the
// DPoP proof, and the method and URL the proof must name) and returns the
// Principal or a *Denial (see "Other transports" below).
//
// # What is checked, on every request
//
//   - RFC 6750 §2.1: exactly one Authorization header, scheme "Bearer"
//     (case-insensitive), a b64token no larger than Config.MaxTokenSize.
//     Two headers are a 400 invalid_request; a token in the query string
//     (§2.3) is refused with 400; tokens in a form body (§2.2) are not read.
//   - RFC 8725 and RFC 9068 §4: the JWS "alg" is on the allow-list
//     (Config.Algorithms; never "none" or HMAC) and matches the key's type;
//     the key is chosen by "kid" among the keys of the issuer named by the
//     token's "iss" only, so one issuer's key never verifies another's
//     tokens; a header that carries a key or a key URL ("jwk", "jku",
//     "x5u", "x5c") or a "crit" extension is refused, never followed;
//     "typ" is "at+jwt" or "application/at+jwt" (see
//     Issuer.AllowLegacyTyp); "iss" equals a configured issuer byte for
//     byte; "aud" contains Config.Audience; "exp" is required and "nbf"
//     and "iat" are honoured with Config.Leeway; an at+jwt token carries
//     "sub", "client_id", "iat" and "jti" (RFC 9068 §2.2).
//   - A token with a "cnf" claim is sender-constrained (RFC 7800). With
//     "cnf.jkt" (DPoP, RFC 9449 §7.1), or with no confirmation method the
//     guard can check, presented as Bearer it is rejected, never
//     downgraded, whatever the DPoP mode. With "cnf"."x5t#S256" (RFC 8705
//     §3) it is accepted, on any scheme, only with that client
//     certificate; see "Certificate-bound tokens" below. Other members of
//     "cnf" are ignored.
//   - With DPoP enabled (DPoPConfig.Mode), the "DPoP" scheme is taken too
//     (and, in DPoPRequired, only it). Its token must carry "cnf.jkt", and
//     the request exactly one DPoP header holding a proof (package dpop)
//     whose key has that thumbprint, whose "htm" and "htu" name this
//     request, whose "ath" hashes this token, whose "iat" is recent, whose
//     nonce is current (DPoPConfig.Nonce) and whose "jti" was never used
//     with that key. "htu" is compared with Config.PublicURL plus the
//     request path when PublicURL is set, else with the request's own
//     scheme and Host, limited by DPoPConfig.AllowedHosts; X-Forwarded-*
//     headers are never believed.
//   - Guard.Require's scopes: every one must be granted by "scope" (or
//     "scp", with Issuer.ScpClaim), else 403 insufficient_scope.
//     Guard.RequirePolicy adds any-of scope sets, DPoP-only routes, a
//     maximum token age and RFC 9470 step-up ("acr", "auth_time": 401
//     insufficient_user_authentication with acr_values and max_age).
//
// Responses follow RFC 6750 §3 and RFC 9449 §7.1: 401 with
// error="invalid_token" for a bad token, error="invalid_dpop_proof" for a
// bad proof, error="use_dpop_nonce" and a DPoP-Nonce header when a nonce
// is needed, a bare challenge when there is no credential, 403
// insufficient_scope with the required scope, 400 invalid_request for a
// malformed request. There is a Bearer challenge unless DPoP is required
// and a DPoP challenge with algs= when it is enabled; the error goes in the
// challenge of the scheme the request used. When a decision needs keys
// that never loaded or a replay store that cannot answer, the answer is
// 503: the guard fails closed. Error
// descriptions are fixed phrases and never contain token bytes or claim
// values; the detail goes to Config.Logger.
//
// # Certificate-bound tokens (RFC 8705)
//
// A token whose "cnf" has "x5t#S256" (a JWT's claim, or an introspection
// answer's member) is bound to a TLS client certificate: on every request,
// after the verified-token cache, the SHA-256 of the client certificate's
// DER must equal it (crypto/subtle), whatever the scheme. No certificate is
// 401 invalid_token (ReasonCertificateRequired), another one too
// (ReasonCertificateMismatch), and a value that is not the canonical
// unpadded base64url of 32 bytes makes the token malformed. A token with
// "jkt" too needs its DPoP proof as well. Tokens without "x5t#S256" are
// not affected by a certificate being presented or not.
//
// The certificate is, in order: a report in the request's context
// (ContextWithClientCertificate, for a trusted TLS-terminating proxy; a
// malformed report refuses the request, 401 invalid_request,
// ReasonMalformedCertificate); else the leaf of the request's own TLS
// connection (r.TLS.PeerCertificates[0]: set tls.Config.ClientAuth to
// tls.RequestClientCert). For Check, the context's report comes first,
// else Request.ClientCertificate. Only the binding is checked, never the certificate's
// chain, validity dates or names (RFC 8705 §2.2): that is the TLS
// configuration's business. Principal.Confirmation says which proofs were
// checked; Config.TLSClientCertificateBoundAccessTokens advertises the
// support in the RFC 9728 metadata.
//
// # Opaque tokens (RFC 7662)
//
// When one issuer has an IntrospectionEndpoint, a token that is not
// three dot-separated segments (a compact JWS) is POSTed there and accepted only if the answer is active,
// from that issuer, for Config.Audience and unexpired; answers are cached
// (active until min(exp, Issuer.IntrospectionCacheMaxAge), inactive for
// 5 s) and concurrent misses share one request. A JWT is never
// introspected unless its route's Policy.Introspect asks (for
// revocation-sensitive routes). An endpoint that is down, slow or answers
// nonsense gives 503. Claims other than those above (and "acr" and
// "auth_time" where a Policy asks) are not inspected; read them with
// Principal.Claims.
//
// # Protected resource metadata (RFC 9728)
//
// Guard.MetadataHandler serves the guard's protected resource metadata
// (resource identifier, authorization servers, the scopes its routes
// require, DPoP algorithms) at Guard.MetadataPath. A program that mounts
// it sets Config.AdvertiseResourceMetadata, and every challenge then
// carries resource_metadata= pointing there, which is how MCP clients and
// other modern OAuth clients find the authorization server. Without it
// (or Config.ResourceMetadataURL, for a document served elsewhere) no
// challenge names a document: a client sent to one that is not served
// gets a 404 and gives up.
//
// # Request hygiene: one reading of every request
//
// The guard decides by route, and ServeMux matches the path as sent. An
// application that hands the request on (a proxy to another service, a
// framework mounted behind the mux) must read the same path, or a token
// for one route reaches another: "/orders/..%2fadmin" is inside "/orders/"
// for ServeMux and is "/admin" for Spring, Tomcat, IIS and many Node and
// Python stacks. Guard.Hygiene, around the router, refuses every
// request-target with more than one reading (400 invalid_path), every
// protocol switch but WebSocket (400 invalid_request: "Upgrade: h2c" would
// take the connection past every check) and, optionally, unexpected Host
// values (421). It refuses rather than normalises, and does not examine
// the query. See Hygiene for the exact rules and SECURITY.md for the
// classes and the upstream behaviours (case-insensitive or suffix
// matching) it cannot see.
//
// # Keys and performance
//
// Each issuer's JWKS is fetched and refreshed in the background by package
// jwks (Cache-Control-driven, clamped; an unknown kid triggers one
// rate-limited refresh shared by all requests that need it; a failed
// refresh keeps the last good keys). Requests read an immutable key
// snapshot without locks and verify signatures with the standard library
// directly. Verified tokens are cached (Config.TokenCacheSize) until their
// "exp", and dropped as soon as their signing key leaves the JWKS, so a
// repeated token costs about a microsecond.
//
// # Other transports
//
// Require and RequirePolicy are thin: they read the request's
// Authorization and DPoP headers, derive the URL a proof must name (see
// Config.PublicURL), and hand them to the one decision that Guard.Check
// and Guard.Checker (Check for a Policy) also make, with the same checks,
// answers, metrics and logs. A transport maps the answer itself: a
// *Denial's Status (400, 401, 403, 429, 503) to its own codes, its
// Challenges to its way of carrying WWW-Authenticate, its DPoPNonce to
// a DPoP-Nonce. For DPoP, Request.Method and Request.URL are what the
// client signed as "htm" and "htu" (for gRPC: POST, and Config.PublicURL
// plus the full method). ContextWithPrincipal puts the Principal where
// PrincipalFrom finds it, behind any transport and in handler tests.
//
// # Observing and rendering decisions
//
// Config.OnDecision (a DecisionFunc) is called once per guarded request
// with ReasonOK or the denial's Reason, before the response is written,
// so an access log can record why a request was refused without parsing
// responses. The token is not passed to it, but the request it sees still
// carries the Authorization and DPoP headers, so it must not log them. When it is nil the
// guard adds no work and no allocation.
//
// Config.OnDenial renders denials in the application's style (a
// framework's error format, problem details): it gets the *Denial after
// the guard has set WWW-Authenticate, DPoP-Nonce, Retry-After and
// Cache-Control, counted the request and logged it; nil means the
// guard's JSON body, {"error":"…","error_description":"…"}.
//
// # Concurrency and lifecycle
//
// A Guard is safe for concurrent use. New starts one background refresher
// per issuer; Close stops them. Metrics go to Config.Registerer only.
// Guards given the same Registerer share its series (their counts add
// up), so a guard replaced by a new one, as in a configuration reload,
// keeps its counters going; with different Registerers (or none) two
// Guards share nothing.
package middleware
