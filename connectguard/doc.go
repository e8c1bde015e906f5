// Package connectguard protects connect-go handlers with a tokenguard
// middleware.Guard: the same decision, challenges, metrics and logs as
// Guard.Require, made by a connect.Interceptor, so that clients get
// Connect (or gRPC, gRPC-Web) errors rather than a bare HTTP 401.
//
//	guarded := connect.WithInterceptors(connectguard.NewInterceptor(guard, connectguard.Rules{
//		ordersv1connect.OrdersGetProcedure:    {"orders:read"},
//		ordersv1connect.OrdersCreateProcedure: {"orders:write"},
//	}))
//	mux.Handle(ordersv1connect.NewOrdersHandler(srv, guarded))
//
// Inside a handler, middleware.PrincipalFrom(ctx) returns who the token
// speaks for. Rules and the answers are grpcguard's: a procedure that is
// not listed is refused with CodePermissionDenied before its handler
// runs, and before the token is looked at, unless Rules has the key "*".
// Each rule's scopes are checked once, when the interceptor is made (a
// bad rule panics, as Guard.RequirePolicy does), and join the guard's
// scopes_supported.
//
// # The request
//
// The token is read from the Authorization header, the DPoP proof from
// the DPoP header. Repeated headers are decided as Require decides them,
// challenge, metric and log line included: more than one Authorization
// is 400 invalid_request (CodeInvalidArgument), more than one DPoP on a
// DPoP call 401 invalid_dpop_proof (CodeUnauthenticated). A proof names
// the request's HTTP method as "htm" (POST, or GET for a Connect GET
// request) and, as "htu", the guard's Config.PublicURL followed by the
// procedure, such as
// "https://api.example.com/orders.v1.Orders/Get": the interceptor sees the
// procedure, not the URL the handler is mounted at, so mount handlers at
// their procedure paths and set PublicURL when the guard takes DPoP;
// without it every DPoP call is refused (401 invalid_dpop_proof), while
// Bearer calls are unaffected.
//
// An interceptor does not see the TLS connection, so a token bound to a
// client certificate (cnf."x5t#S256", RFC 8705) is checked against the
// certificate in the call's context: hand it over in front of the Connect
// handler, or such tokens are refused (CodeUnauthenticated):
//
//	h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//		var leaf *x509.Certificate
//		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
//			leaf = r.TLS.PeerCertificates[0]
//		}
//		next.ServeHTTP(w, r.WithContext(middleware.ContextWithClientCertificate(r.Context(), leaf, nil)))
//	})
//
// # The answer
//
// A denial (a *middleware.Denial) becomes a *connect.Error:
//
//	400 invalid_request          CodeInvalidArgument
//	401 (no or bad credential)   CodeUnauthenticated
//	403 insufficient_scope       CodePermissionDenied
//	429 (DPoP key over quota)    CodeResourceExhausted
//	503 (keys, store down)       CodeUnavailable
//
// Its message is the Denial's code and fixed description, such as
// "invalid_token: token expired", never token bytes or claim values. The
// challenges go in the response's WWW-Authenticate headers, one value per
// challenge, and a fresh DPoP nonce, when the guard asks for one
// (use_dpop_nonce), in DPoP-Nonce; a client finds them in the error's
// metadata (connect.Error.Meta), in every protocol. They are response
// headers rather than the server-side error's metadata because the gRPC
// protocol sends that as HTTP trailers, and net/http drops
// WWW-Authenticate from trailers. Denials are counted in
// tokenguard_requests_total and logged by the guard exactly as Require's;
// a call refused because its procedure is not in Rules never reaches the
// guard and is not counted. The interceptor does nothing on a client.
//
// This package is its own Go module, so that programs using only the
// net/http guard never download connect-go.
package connectguard
