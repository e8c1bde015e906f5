// Package grpcguard protects a grpc-go server with a tokenguard
// middleware.Guard: the same decision, challenges, metrics and logs as
// Guard.Require, made by server interceptors.
//
//	rules := grpcguard.Rules{
//		"/orders.v1.Orders/Get":    {"orders:read"},
//		"/orders.v1.Orders/Create": {"orders:write"},
//		"/grpc.health.v1.Health/Check": nil, // any valid token
//	}
//	srv := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(grpcguard.UnaryServerInterceptor(guard, rules)),
//		grpc.ChainStreamInterceptor(grpcguard.StreamServerInterceptor(guard, rules)),
//	)
//
// Inside a handler, middleware.PrincipalFrom(ctx) returns who the token
// speaks for (for a stream, from the stream's Context).
//
// # Rules: refused by default
//
// Rules maps each full method name ("/pkg.Service/Method", as
// grpc.UnaryServerInfo.FullMethod has it) to the scopes a call must be
// granted; none means any valid token. A method that is not listed is
// refused with PermissionDenied before its handler runs, and before the
// token is looked at, unless Rules has the key "*", whose scopes then
// apply to every method not listed. Services registered later (health,
// reflection) are thus closed until they are listed. Each rule's scopes
// are checked once, when the interceptor is made (a bad rule panics, as
// Guard.RequirePolicy does), and join the guard's protected resource
// metadata's scopes_supported.
//
// # The request
//
// The token is read from the "authorization" metadata ("Bearer …" or,
// when the guard takes DPoP, "DPoP …"), the proof from "dpop". Repeated
// values are decided as Require decides repeated headers, challenge,
// metric and log line included: more than one "authorization" is 400
// invalid_request (InvalidArgument), more than one "dpop" on a DPoP call
// 401 invalid_dpop_proof (Unauthenticated). A DPoP proof names
// "POST" as its "htm" and, as its "htu", the guard's Config.PublicURL
// followed by the full method, such as
// "https://api.example.com/orders.v1.Orders/Get": a gRPC server has no
// request URL of its own to trust, so a guard that takes DPoP over gRPC
// needs PublicURL; without it every DPoP call is refused (401
// invalid_dpop_proof: no proof can name a URL that is not there), while
// Bearer calls are unaffected. A token bound to a client certificate
// (cnf."x5t#S256", RFC 8705) is checked against the leaf certificate the
// client presented on the call's TLS connection (serve with
// credentials.NewTLS and a tls.Config whose ClientAuth asks for one, such
// as tls.RequestClientCert); without TLS, or without a certificate, such a
// token is refused (Unauthenticated).
//
// # The answer
//
// A denial (a *middleware.Denial) becomes a gRPC status:
//
//	400 invalid_request          InvalidArgument
//	401 (no or bad credential)   Unauthenticated
//	403 insufficient_scope       PermissionDenied
//	429 (DPoP key over quota)    ResourceExhausted
//	503 (keys, store down)       Unavailable
//
// Its message is the Denial's code and fixed description, such as
// "invalid_token: token expired", never token bytes or claim values. The
// challenges go in the "www-authenticate" response header metadata, one
// value per challenge (a client reads them with grpc.Header), and a fresh
// DPoP nonce, when the guard asks for one (use_dpop_nonce), in
// "dpop-nonce". Denials are counted in tokenguard_requests_total and
// logged by the guard exactly as Require's; a call refused because its
// method is not in Rules never reaches the guard and is not counted.
//
// This package is its own Go module, so that programs using only the
// net/http guard never download gRPC.
package grpcguard
