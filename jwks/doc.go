// Package jwks keeps an authorization server's JSON Web Key Set (RFC 7517
// §5) in memory, refreshes it, and hands out its verification keys.
//
// # Design
//
// The rare, subtle work is done by libraries: github.com/lestrrat-go/httprc/v3
// schedules fetches, and github.com/lestrrat-go/jwx/v3/jwk parses each key,
// validates it and computes its RFC 7638 thumbprint. This package adds what
// they leave out, around one idea: every successful fetch publishes an
// immutable [Snapshot] (kid → [Key] with a standard-library public key, its
// "alg" and thumbprint) behind an atomic.Pointer. Requests only read it, so
// [Set.Lookup] on a known kid is one atomic load and one map lookup, with
// no lock and no allocation. A *Key stays the same pointer across snapshots
// while its kid, thumbprint and alg are unchanged, so a cache of verified
// tokens can tell that a key left the set by comparing pointers.
//
// # Refreshing
//
// httprc refreshes on a schedule taken from the response's Cache-Control
// max-age or Expires, clamped to [Config.MinRefreshInterval,
// Config.MaxRefreshInterval]; after a failed fetch it retries after
// MinRefreshInterval. Until the first load succeeds, the Set also retries
// on its own, with exponential backoff from 100 ms (with jitter, capped at
// 30 s or MinRefreshInterval), because a guard without keys answers 503.
//
// A token whose kid is not in the snapshot triggers a refresh (issuers
// publish new keys before signing with them). Such refreshes:
//   - are collapsed: concurrent misses wait on one in-flight fetch;
//   - are rate-limited: at most one starts per [Config.RefreshRateLimit];
//     a miss the limiter refuses fails at once with [ErrUnknownKID];
//   - remember their misses: a kid still unknown after a refresh fails at
//     once for RefreshRateLimit (at most 1,024 kids are remembered), so a
//     spray of random kids costs a map lookup, never a fetch;
//   - send Cache-Control: no-cache, so caches on the way don't answer with
//     the document that lacked the kid;
//   - run under the Set's context, not the caller's; a caller waits at
//     most [Config.UnknownKIDWait] and its own context. No value of a
//     caller's context reaches the fetch, except those
//     [Config.RefreshContext] picks from the lookup that started it (a
//     trace span, for one); never its cancellation or deadline.
//
// A failed fetch (network error, status other than 200, a body over
// [Config.MaxBodySize], not JSON, not a JWK set, more than [Config.MaxKeys]
// keys, no usable key) keeps the last good snapshot: keys are dropped only
// when a successful fetch no longer contains them. Each attempt is
// reported once to [Config.OnRefresh] with a Result* label.
//
// # Key hygiene
//
// Before publishing, each key is checked; a key that fails is skipped and
// logged (slog keys "url", "kid", "reason"), and the rest of the set is
// still used. Skipped: keys with "use" other than "sig", "key_ops" without
// "verify", an "alg" not on [Config.Algorithms] or not matching the key
// type, RSA keys under 2048 bits, symmetric (oct) keys, keys carrying
// private members (logged at error level: the issuer leaked a private key),
// key types and curves other than RSA, P-256, P-384, P-521 and Ed25519, and
// every key whose kid appears more than once (which one is meant is
// ambiguous). A key without "alg" may verify each allow-listed algorithm
// its type supports; [Key.Allows] answers for a given header "alg". The
// document's bytes never reach an error or a log line.
//
// # Not done here
//
// This package does not verify signatures or look at tokens; the caller
// checks [Key.Allows] and verifies. It never takes keys from a token
// header (jwk, jku, x5u, x5c) and ignores x5c/x5u in the JWKS: keys come
// only from [Config.URL]. It does not discover the jwks_uri from issuer
// metadata, does not send conditional requests (ETag), and does not pin
// TLS certificates or filter the addresses it connects to; supply an
// [net/http.Client] for that.
package jwks
