package dpop

import "time"

// Defaults used for zero-valued Config fields.
const (
	// DefaultMaxAge is how old a proof's iat may be. RFC 9449 §11.1
	// leaves the window to the server; five minutes tolerates slow
	// networks and modest clock drift while bounding replay-store size.
	DefaultMaxAge = 5 * time.Minute
	// DefaultMaxClockSkew is how far in the future a proof's iat may be:
	// clients whose clocks run fast by more should use server nonces.
	DefaultMaxClockSkew = 5 * time.Second
	// DefaultMaxProofSize bounds the DPoP header, in bytes.
	DefaultMaxProofSize = 8 << 10
	// DefaultMaxJTILength bounds the proof's jti, in bytes. A jti is
	// usually 16 to 64 characters.
	DefaultMaxJTILength = 256
	// DefaultReplayStoreSize bounds the in-memory replay store, in
	// entries (see the README for bytes per entry).
	DefaultReplayStoreSize = 1 << 20
	// DefaultNonceLifetime is the time step of server nonces: a nonce is
	// accepted for one to two steps after it is issued.
	DefaultNonceLifetime = 5 * time.Minute
)

// DefaultAlgorithms returns the proof alg allow-list used when none is
// configured: ES256, ES384, EdDSA, RS256 and PS256.
func DefaultAlgorithms() []string {
	return []string{"ES256", "ES384", "EdDSA", "RS256", "PS256"}
}
