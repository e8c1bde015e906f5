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
	h := sha256.New()
	h.Write([]byte("tokenguard-dpop-replay\x00"))
	h.Write([]byte(jkt))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	var id ReplayID
	h.Sum(id[:0])
	return id
}

// ReplayStore remembers which proofs have been used. Implementations must
// be safe for concurrent use and atomic: of any number of concurrent Use
// calls with one id, exactly one may return nil.
type ReplayStore interface {
	// Use records id as used until expires. It returns nil if id was not
	// already recorded (or its record has expired), an error wrapping
	// ErrReplay if it was, and an error wrapping ErrStoreUnavailable or
	// ErrStoreFull when it cannot tell; the caller must then refuse the
	// request (fail closed).
	Use(ctx context.Context, id ReplayID, expires time.Time) error
}
