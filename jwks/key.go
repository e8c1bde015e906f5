package jwks

import (
	"crypto"
	"time"
)

// Key is one usable public key from a JWKS, after key hygiene. A Key is
// immutable once published: callers must not modify it or its Public key.
//
// While a key's "kid", thumbprint and "alg" stay the same, every snapshot
// holds the same *Key, so comparing pointers tells whether a key is still
// published (a key that left the JWKS and came back is a new pointer).
type Key struct {
	// ID is the JWK's "kid"; "" when the JWK had none.
	ID string
	// Algorithm is the JWK's "alg"; "" when absent. When set, it is on the
	// set's allow-list and matches the key's type.
	Algorithm string
	// Public is the key: *rsa.PublicKey (at least 2048 bits),
	// *ecdsa.PublicKey (P-256, P-384 or P-521) or ed25519.PublicKey.
	Public crypto.PublicKey
	// Thumbprint is the key's RFC 7638 SHA-256 thumbprint, base64url
	// without padding.
	Thumbprint string

	// allowed holds the algorithms this key may verify: the set's
	// allow-list, narrowed to the key's type and curve and to Algorithm
	// when that is set. Never 0 for a published key.
	allowed algSet
}

// Allows reports whether a JWS whose header says alg may be verified with
// k: alg must be on the set's allow-list ([Config.Algorithms]), match the
// key type (RS*/PS* ↔ RSA; ES256 ↔ P-256, ES384 ↔ P-384, ES512 ↔ P-521;
// EdDSA ↔ Ed25519) and equal k.Algorithm when that is non-empty. It does
// not allocate.
func (k *Key) Allows(alg string) bool {
	b := algBit(alg)
	return b != 0 && k.allowed&b != 0
}

// Snapshot is the immutable result of one successful fetch: the usable keys
// of one JWKS document. Its methods are safe for concurrent use.
type Snapshot struct {
	byKID     map[string]*Key // keys with a "kid"; read-only once published
	keys      []*Key          // every key, in document order
	only      *Key            // the key when there is exactly one, else nil
	fetchedAt time.Time
}

// Key returns the key whose "kid" is kid, or nil if there is none. For
// kid == "" (a JWS without "kid"), it returns the only key when the
// snapshot holds exactly one, else nil: with several keys, guessing would
// mean trying each, which this package never does. A nil *Snapshot (no
// keys loaded yet) has no keys.
func (s *Snapshot) Key(kid string) *Key {
	if s == nil {
		return nil
	}
	if kid == "" {
		return s.only
	}
	if s.only != nil && s.only.ID == kid {
		return s.only // a one-key set: one comparison instead of hashing kid
	}
	return s.byKID[kid]
}

// Len returns the number of usable keys: at least 1, or 0 for a nil
// *Snapshot.
func (s *Snapshot) Len() int {
	if s == nil {
		return 0
	}
	return len(s.keys)
}

// FetchedAt returns when the document behind this snapshot was fetched;
// the zero time for a nil *Snapshot.
func (s *Snapshot) FetchedAt() time.Time {
	if s == nil {
		return time.Time{}
	}
	return s.fetchedAt
}
