// Package introspect is an OAuth 2.0 Token Introspection (RFC 7662) client
// for a resource server: it asks an authorization server whether an opaque
// access token is active, and what it is for.
//
// # What a call does
//
// [Client.Introspect] POSTs token=…&token_type_hint=access_token to
// [Config.Endpoint] (RFC 7662 §2.1), authenticated as the resource server
// with client_secret_basic (RFC 6749 §2.3.1: client ID and secret are
// form-urlencoded before base64, which many clients forget),
// client_secret_post, or private_key_jwt (RFC 7523 §2.2, a short-lived
// client assertion signed with [Config.PrivateKey]).
//
// The response (RFC 7662 §2.2) is parsed strictly: "active" must be the
// JSON literal true or false; "scope", "client_id", "sub", "iss" and the
// other string members must be strings; "aud" a string or an array of
// strings; "exp", "iat" and "nbf" non-negative numbers; "cnf" an object
// whose "jkt" is a string. The JSON itself must follow RFC 8259 exactly:
// a top-level member (or a member of "cnf") that appears twice, even
// spelled with escapes, a string that is not valid UTF-8, nesting deeper
// than 32 levels, or anything after the top-level object makes the whole
// response invalid. [Result.Raw] keeps the body for other members. An active response is then checked: "iss", when
// present, must equal [Config.Issuer]; "aud", when present, must contain
// [Config.Audience]; "exp" must not have passed and "nbf" must have, each
// with [Config.Leeway].
//
// # Signed answers (RFC 9701)
//
// With [Config.ResponseFormat] set to [ResponseJWT], the request carries
// Accept: application/token-introspection+jwt and only a signed answer is
// believed: a 200 whose Content-Type is application/token-introspection+jwt
// (parameters ignored) and whose body is a compact JWS, at most
// [Config.MaxResponseSize] bytes, with
//   - "typ" token-introspection+jwt (or application/token-introspection+jwt);
//   - a signature by the key for its "kid" in [Config.Keys] (the issuer's
//     JWKS, the keys its access tokens are checked with), under an "alg"
//     that key allows: on the set's allow-list and matching the key, so
//     never "none" or HMAC; "jwk", "jku", "x5u", "x5c" and "crit" headers
//     are refused;
//   - "iss" equal to [Config.Issuer];
//   - "aud" containing [Config.ClientID] or [Config.Audience] (RFC 9701 §5
//     only says it identifies the resource server; some servers name the
//     client, others, such as oidc-provider, the token's audience);
//   - "iat" present, not later than now + Leeway and not earlier than
//     now − Leeway − 1 minute (RFC 9701 sets no bound: an answer is made
//     for the request it answers, so an older one is stale or replayed);
//   - "exp" and "nbf", when present, honoured with Leeway;
//   - a "token_introspection" object, then parsed and checked exactly as
//     a JSON answer (above): it is the Result, and [Result.Raw] holds it.
//
// The claims set is parsed as strictly as a JSON answer. Any failure,
// a plain JSON answer included, is [ErrInvalidResponse] (an unknown "kid"
// too; keys that cannot be had are [ErrUnavailable]): never an inactive
// verdict, never a Result. Encrypted answers (JWE) are not supported.
//
// # Failing closed
//
// Introspect returns a [Result] only for an active token that passed every
// check. Every other outcome is an error wrapping exactly one sentinel:
//   - [ErrInactive]: the server said active=false, or the token failed
//     the iss, aud, exp or nbf check. The token is bad: HTTP 401
//     error="invalid_token".
//   - [ErrUnavailable]: no answer could be had: network error, timeout,
//     a status other than 200 (a 400 included: the server could not
//     judge this token, which is not a verdict), a body over
//     [Config.MaxResponseSize], the caller's context ending, the Client
//     closed. HTTP 503.
//   - [ErrInvalidResponse]: a 200 whose body is not a valid
//     introspection response. Nothing can be decided: HTTP 503.
//
// An unexpected answer is never read as "active". Errors never contain
// the token, the client secret or bytes of the response body.
//
// # Caching and collapsing
//
// Answers are cached under SHA-256(token), never the token itself, in a
// bounded cache ([Config.CacheSize] entries). An active answer is kept
// until the token's "exp" or for [Config.MaxCacheAge], whichever is
// sooner, so revocation takes effect within MaxCacheAge. An inactive
// answer is kept for [Config.NegativeCacheAge], so a client retrying a
// dead token does not hammer the server. A failure (no answer, a 5xx, an
// invalid or unverifiable answer) is never cached as a verdict: it is
// remembered for [Config.FailureCacheAge] only to answer ErrUnavailable
// without another call, and a call its callers all abandoned is not
// remembered at all. Signed answers are cached exactly like JSON ones.
//
// Concurrent calls for a token that is not cached share one HTTP request.
// It runs on its own goroutine, bounded by [Config.Timeout], with a
// context that keeps the first caller's values but not its cancellation;
// each caller waits only as long as its own context allows, and the
// request is cancelled once every waiter has given up, or by
// [Client.Close].
//
// # Not done here
//
// This package does not check scopes, DPoP proofs or the binding of a
// token to one ("cnf.jkt" is returned in [Result.JKT] for the caller to
// compare), does not discover the introspection endpoint from issuer
// metadata (RFC 8414), does not fetch keys for signed answers
// ([Config.Keys] is the caller's key set), and does not pin TLS
// certificates or filter the addresses it connects to; supply an
// [net/http.Client] for that.
//
// A [Client] is safe for concurrent use.
package introspect
