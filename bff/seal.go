package bff

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// SessionKeySize is the size of a session key: AES-256.
const SessionKeySize = 32

// sealer encrypts what the handler stores, when it has a session key:
// AES-256-GCM with a random 96-bit nonce, and the entry's store key as
// additional data, so a value moved to another key does not open. A
// value sealed under the previous key still opens (a key rotation); the
// next write seals it under the current one.
//
// Without a key (a MemoryStore in this process only) values are stored
// as they are, marked as such.
type sealer struct {
	cur, prev cipher.AEAD // prev may be nil; both nil without a key
}

// Formats of a stored value: its first byte.
const (
	formatPlain  = 0x00
	formatSealed = 0x01
)

var errUnseal = errors.New("bff: stored value does not open with the session key")

func newSealer(key, previous []byte) (*sealer, error) {
	s := &sealer{}
	if key == nil {
		if previous != nil {
			return nil, errors.New("bff: PreviousSessionKey without SessionKey")
		}
		return s, nil
	}
	var err error
	if s.cur, err = aead(key); err != nil {
		return nil, fmt.Errorf("bff: SessionKey: %w", err)
	}
	if previous != nil {
		if s.prev, err = aead(previous); err != nil {
			return nil, fmt.Errorf("bff: PreviousSessionKey: %w", err)
		}
	}
	return s, nil
}

func aead(key []byte) (cipher.AEAD, error) {
	if len(key) != SessionKeySize {
		return nil, fmt.Errorf("must be %d bytes, got %d", SessionKeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal returns the stored form of plaintext under the store key aad.
func (s *sealer) seal(plaintext []byte, aad string) []byte {
	if s.cur == nil {
		return append([]byte{formatPlain}, plaintext...)
	}
	out := make([]byte, 1+s.cur.NonceSize(), 1+s.cur.NonceSize()+len(plaintext)+s.cur.Overhead())
	out[0] = formatSealed
	_, _ = rand.Read(out[1:]) // never fails (crypto/rand, Go 1.24+)
	return s.cur.Seal(out, out[1:], plaintext, []byte(aad))
}

// open reverses seal. A plain value is refused once there is a key: an
// attacker who can write to the store must not be able to plant one.
func (s *sealer) open(stored []byte, aad string) ([]byte, error) {
	if len(stored) == 0 {
		return nil, errUnseal
	}
	switch stored[0] {
	case formatPlain:
		if s.cur != nil {
			return nil, errUnseal
		}
		return stored[1:], nil
	case formatSealed:
		if s.cur == nil {
			return nil, errUnseal
		}
		for _, a := range []cipher.AEAD{s.cur, s.prev} {
			if a == nil || len(stored) < 1+a.NonceSize() {
				continue
			}
			if p, err := a.Open(nil, stored[1:1+a.NonceSize()], stored[1+a.NonceSize():], []byte(aad)); err == nil {
				return p, nil
			}
		}
	}
	return nil, errUnseal
}
