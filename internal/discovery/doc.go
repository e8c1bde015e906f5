// Package discovery fetches an authorization server's metadata so a
// resource server can find its "jwks_uri" and "introspection_endpoint".
//
// # Where it looks
//
// [Fetch] first tries the OAuth 2.0 Authorization Server Metadata location
// of RFC 8414 §3.1 (https://www.rfc-editor.org/rfc/rfc8414#section-3.1):
// "/.well-known/oauth-authorization-server" inserted between the issuer's
// host and its path, so the issuer https://as.example.com/tenant1 is
// looked up at
//
//	https://as.example.com/.well-known/oauth-authorization-server/tenant1
//
// If that fails for any reason other than an issuer mismatch (a status
// other than 200, no response, or a 200 whose body is not usable metadata,
// such as a catch-all HTML page), it tries the OpenID Connect Discovery 1.0
// §4 location: the issuer, without a trailing "/", followed by
// "/.well-known/openid-configuration". When both fail the error is the
// second attempt's, with the first one's wrapped in as well, so errors.Is
// matches the sentinels of both.
//
// # What it checks
//
//   - The document's "issuer" must equal [Config.Issuer] byte for byte (RFC
//     8414 §3.3, the mix-up defence): no trailing-slash, case or
//     percent-encoding normalisation. A mismatch is [ErrIssuerMismatch] and
//     stops the lookup at once; the document is never used.
//   - "jwks_uri" and "introspection_endpoint", when present, must be
//     absolute URLs without user info or fragment, and https, or http only
//     to a loopback host unless [Config.InsecureAllowHTTP] is set. At least
//     one of them must be present, or the document is of no use here.
//   - The body must be at most [Config.MaxBodySize] bytes and exactly one
//     JSON object. The members read here must have the right JSON type
//     (null is not a string) and must not appear twice; a JSON parser that
//     keeps the first or the last of two "issuer" members would otherwise
//     decide which issuer we trust. Members are matched case-sensitively
//     ("Issuer" is an unknown member, and ignored). Other members are
//     ignored.
//
// Failures are reported with the sentinels [ErrUnavailable] (network, HTTP
// status, timeout), [ErrInvalid] (the document) and [ErrIssuerMismatch].
// No byte of the document reaches an error message.
//
// # Caching
//
// [Cache] fetches on first use, collapses concurrent first calls into one
// fetch, refreshes at most once per refresh interval (serving the current
// metadata while the refresh runs in the background), keeps the last good
// metadata when a refresh fails, and waits at least 10 s after a failed
// fetch before trying again. Until one fetch has succeeded, Get fails
// closed with an error.
//
// # Not done here
//
// This package does not fetch the JWKS or call the introspection endpoint,
// does not check the other metadata members (signing algorithms, grant
// types and so on), does not verify signed metadata ("signed_metadata",
// RFC 8414 §2.1), and does not pin certificates or filter the addresses
// it connects to; supply an [net/http.Client] for that.
package discovery
