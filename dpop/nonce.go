package dpop

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// MinNonceSecretSize is the smallest nonce secret accepted, in bytes.
const MinNonceSecretSize = 32

// nonceMACSize is the bytes of HMAC-SHA256 kept in a nonce.
const nonceMACSize = 16

// Nonces issues and checks stateless DPoP server nonces (RFC 9449 §8, §9).
// A nonce is a time step and an HMAC over it: any server that holds one
// of the secrets accepts it during the step it was issued in and the
// next, with no shared state. Create one with NewNonces; it is safe for
// concurrent use.
type Nonces struct {
	secrets [][]byte
	step    time.Duration
	current atomic.Pointer[issued]
}

type issued struct {
	step  int64
	nonce string
}

// NewNonces returns a nonce source. The first secret makes nonces; all of
// them are accepted, so a secret can be rotated by putting the new one
// first and dropping the old one a lifetime later. Each secret must have
// at least MinNonceSecretSize bytes. With no secrets a random one is made:
// then only this process accepts its nonces. lifetime is the time step
// (zero means DefaultNonceLifetime): a nonce is accepted for between one
// and two lifetimes after it is issued.
func NewNonces(secrets [][]byte, lifetime time.Duration) (*Nonces, error) {
	if lifetime == 0 {
		lifetime = DefaultNonceLifetime
	}
	if lifetime < time.Second || lifetime > 24*time.Hour {
		return nil, fmt.Errorf("dpop: nonce lifetime must be between 1s and 24h, got %v", lifetime)
	}
	n := &Nonces{step: lifetime}
	for i, s := range secrets {
		if len(s) < MinNonceSecretSize {
			return nil, fmt.Errorf("dpop: nonce secret %d has %d bytes, need at least %d", i, len(s), MinNonceSecretSize)
		}
		n.secrets = append(n.secrets, append([]byte(nil), s...))
	}
	if len(n.secrets) == 0 {
		s := make([]byte, MinNonceSecretSize)
		if _, err := rand.Read(s); err != nil {
			return nil, errors.Join(errors.New("dpop: making a nonce secret"), err)
		}
		n.secrets = [][]byte{s}
	}
	return n, nil
}

func (n *Nonces) stepAt(t time.Time) int64 { return t.UnixNano() / int64(n.step) }

func mac(secret []byte, step int64) []byte {
	h := hmac.New(sha256.New, secret)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(step))
	h.Write([]byte("tokenguard-dpop-nonce\x00"))
	h.Write(b[:])
	return h.Sum(nil)[:nonceMACSize]
}

// Issue returns the nonce to hand out at now.
func (n *Nonces) Issue(now time.Time) string {
	step := n.stepAt(now)
	if c := n.current.Load(); c != nil && c.step == step {
		return c.nonce
	}
	var raw [8 + nonceMACSize]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(step))
	copy(raw[8:], mac(n.secrets[0], step))
	c := &issued{step: step, nonce: b64.EncodeToString(raw[:])}
	n.current.Store(c)
	return c.nonce
}

// Check reports whether nonce was issued by a holder of one of the
// secrets in the current time step or the previous one, and whether it
// is from the previous one, so that the response should carry a fresh
// nonce.
func (n *Nonces) Check(nonce string, now time.Time) (ok, renew bool) {
	raw, err := b64.Strict().DecodeString(nonce)
	if err != nil || len(raw) != 8+nonceMACSize {
		return false, false
	}
	step := int64(binary.BigEndian.Uint64(raw[:8]))
	cur := n.stepAt(now)
	if step != cur && step != cur-1 {
		return false, false
	}
	for _, s := range n.secrets {
		if hmac.Equal(raw[8:], mac(s, step)) {
			return true, step != cur
		}
	}
	return false, false
}
