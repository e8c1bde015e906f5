package dpop

import "errors"

// Errors returned by Verify and by replay stores. Each error wraps exactly
// one of them, so callers can classify with errors.Is.
var (
	// ErrInvalidProof: the proof is missing, malformed, badly signed, or
	// does not match the request or the token. HTTP: 401
	// error="invalid_dpop_proof".
	ErrInvalidProof = errors.New("dpop: invalid proof")
	// ErrTokenBinding: the proof is valid but its key is not the one the
	// access token is bound to (Request.JKT). HTTP: 401
	// error="invalid_token" (RFC 9449 §7.1).
	ErrTokenBinding = errors.New("dpop: proof key does not match the token's cnf.jkt")
	// ErrReplay: the proof's jti was already used with this key within
	// the acceptance window. HTTP: 401 error="invalid_dpop_proof".
	ErrReplay = errors.New("dpop: proof replayed")
	// ErrUseNonce: the server requires a nonce it issued and the proof
	// has none, or a stale or foreign one. HTTP: 401
	// error="use_dpop_nonce" with a DPoP-Nonce header.
	ErrUseNonce = errors.New("dpop: server nonce required")
	// ErrStoreUnavailable: the replay store could not be asked (network
	// error, timeout). The proof cannot be judged: HTTP 503.
	ErrStoreUnavailable = errors.New("dpop: replay store unavailable")
	// ErrStoreFull: the in-memory replay store is at its bound and will
	// not evict live entries. HTTP 503.
	ErrStoreFull = errors.New("dpop: replay store full")
	// ErrKeyQuota: the proof key has recorded its quota of proofs for
	// the current window (MemoryReplayStore's and redisstore's per-key
	// quota), so one client cannot fill a store that every client needs.
	// HTTP 429 with Retry-After.
	ErrKeyQuota = errors.New("dpop: proof key over its replay-store quota")
)
