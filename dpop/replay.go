package dpop

import (
	"context"
	"crypto/sha256"
	"time"
)

// ReplayID identifies one proof for replay detection: SHA-256 over the
// proof key's thumbprint and the proof's jti, so one client cannot use up
// another's identifiers and stores never hold attacker-chosen strings.
type ReplayID [sha256.Size]byte

// NewReplayID returns the ReplayID of a proof with key thumbprint jkt and
// identifier jti.
func NewReplayID(jkt, jti string) ReplayID {
	// Hashed from a buffer on the stack: sha256.New would allocate on
	// every DPoP request. Thumbprints are 43 bytes and jtis at most
	// DefaultMaxJTILength; a longer input only costs an allocation.
	var buf [512]byte
	b := append(buf[:0], replayIDPrefix...)
	b = append(b, jkt...)
	b = append(b, 0)
	b = append(b, jti...)
	return sha256.Sum256(b)
}

const (
	replayIDPrefix = "tokenguard-dpop-replay\x00"
	keyIDPrefix    = "tokenguard-dpop-key\x00"
)

// KeyID identifies a proof key for per-key quotas: SHA-256 over the key's
// thumbprint, so stores never hold attacker-chosen strings.
type KeyID [sha256.Size]byte

// NewKeyID returns the KeyID of the proof key with thumbprint jkt.
func NewKeyID(jkt string) KeyID {
	var buf [128]byte
	return sha256.Sum256(append(append(buf[:0], keyIDPrefix...), jkt...))
}

// Replay is one proof to record as used.
type Replay struct {
	ID      ReplayID  // the proof: its key and jti
	Key     KeyID     // the proof key, for per-key quotas
	Expires time.Time // until when the proof could be accepted; its record must live at least that long
}

// NewReplay returns the Replay of a proof with key thumbprint jkt and
// identifier jti that stays acceptable until expires.
func NewReplay(jkt, jti string, expires time.Time) Replay {
	return Replay{ID: NewReplayID(jkt, jti), Key: NewKeyID(jkt), Expires: expires}
}

// ReplayStore remembers which proofs have been used. Implementations must
// be safe for concurrent use and atomic: of any number of concurrent Use
// calls with one ID, exactly one may return nil.
type ReplayStore interface {
	// Use records r.ID as used until r.Expires. It returns nil if the ID
	// was not already recorded (or its record has expired), an error
	// wrapping ErrReplay if it was, ErrKeyQuota if r.Key may record no
	// more proofs for now, and an error wrapping ErrStoreUnavailable or
	// ErrStoreFull when it cannot tell; the caller must then refuse the
	// request (fail closed).
	Use(ctx context.Context, r Replay) error
}
