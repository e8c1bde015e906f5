package bff

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
)

func testKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, SessionKeySize)
	_, _ = rand.Read(k)
	return k
}

func mustSealer(t *testing.T, key, previous []byte) *sealer {
	t.Helper()
	s, err := newSealer(key, previous)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealRoundTrip(t *testing.T) {
	s := mustSealer(t, testKey(t), nil)
	for _, plain := range [][]byte{nil, {}, []byte(`{"access_token":"eyJ..."}`), bytes.Repeat([]byte{0xff}, 10000)} {
		stored := s.seal(plain, "s/abc")
		if len(plain) > 4 && bytes.Contains(stored, plain[:5]) {
			t.Errorf("the stored form holds the plaintext: %x", stored)
		}
		got, err := s.open(stored, "s/abc")
		if err != nil {
			t.Fatalf("open(%d bytes): %v", len(plain), err)
		}
		if !bytes.Equal(got, plain) {
			t.Errorf("round trip: %q, want %q", got, plain)
		}
	}
	// A fresh nonce each time: the same plaintext never seals the same.
	if a, b := s.seal([]byte("x"), "k"), s.seal([]byte("x"), "k"); bytes.Equal(a, b) {
		t.Error("two seals of one plaintext are equal: nonce reuse")
	}
}

// TestSealBoundToKey: a value copied to another store key (another
// session, another kind of entry) does not open there.
func TestSealBoundToKey(t *testing.T) {
	s := mustSealer(t, testKey(t), testKey(t))
	stored := s.seal([]byte(`{"sub":"alice"}`), sessionPrefix+"alice")
	for _, aad := range []string{sessionPrefix + "mallory", usedPrefix + "alice", "", sessionPrefix + "alice "} {
		if got, err := s.open(stored, aad); err == nil {
			t.Errorf("opened under %q: %q", aad, got)
		}
	}
	if _, err := s.open(stored, sessionPrefix+"alice"); err != nil {
		t.Fatal(err)
	}
}

// TestSealTamper: every changed bit, a truncation and an extension are
// refused.
func TestSealTamper(t *testing.T) {
	s := mustSealer(t, testKey(t), nil)
	stored := s.seal([]byte(`{"sub":"alice","access_token":"t"}`), "s/k")
	for i := range stored {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(stored)
			bad[i] ^= bit
			if got, err := s.open(bad, "s/k"); err == nil {
				t.Fatalf("byte %d ^ %#x opened: %q", i, bit, got)
			}
		}
	}
	for _, bad := range [][]byte{nil, {}, {formatSealed}, stored[:len(stored)-1], stored[:13], append(bytes.Clone(stored), 0), {0x02, 1, 2, 3}} {
		if got, err := s.open(bad, "s/k"); err == nil {
			t.Errorf("%x opened: %q", bad, got)
		}
	}
}

// TestSealRotation: values sealed under the previous key open; new ones
// are sealed under the current key only; without a previous key
// configured, old values do not open.
func TestSealRotation(t *testing.T) {
	oldKey, newKey := testKey(t), testKey(t)
	before := mustSealer(t, oldKey, nil)
	stored := before.seal([]byte("session"), "s/k")

	rotated := mustSealer(t, newKey, oldKey)
	got, err := rotated.open(stored, "s/k")
	if err != nil || string(got) != "session" {
		t.Fatalf("previous-key value after rotation: %q, %v", got, err)
	}
	resealed := rotated.seal(got, "s/k")
	if _, err := before.open(resealed, "s/k"); err == nil {
		t.Error("a value written after the rotation is sealed under the previous key")
	}
	if _, err := mustSealer(t, newKey, nil).open(resealed, "s/k"); err != nil {
		t.Errorf("a value written after the rotation does not open with the new key alone: %v", err)
	}

	currentOnly := mustSealer(t, newKey, nil)
	if got, err := currentOnly.open(stored, "s/k"); err == nil {
		t.Errorf("the current-only sealer opened a previous-key value: %q", got)
	}
	// The previous key's seal under the wrong aad still fails with both.
	if _, err := rotated.open(stored, "s/other"); err == nil {
		t.Error("previous-key value opened under another store key")
	}
}

// TestSealRefusesPlain: once there is a session key, a plain value (as an
// attacker who can write to the store would plant) never opens.
func TestSealRefusesPlain(t *testing.T) {
	plainSealer := mustSealer(t, nil, nil)
	planted := plainSealer.seal([]byte(`{"access_token":"forged","expires":9999999999}`), "s/k")
	if planted[0] != formatPlain {
		t.Fatalf("keyless seal format %#x", planted[0])
	}
	if got, err := plainSealer.open(planted, "s/k"); err != nil || !strings.Contains(string(got), "forged") {
		t.Fatalf("keyless round trip: %q %v", got, err)
	}
	for _, s := range []*sealer{mustSealer(t, testKey(t), nil), mustSealer(t, testKey(t), testKey(t))} {
		if got, err := s.open(planted, "s/k"); err == nil {
			t.Errorf("a plain value opened with a session key: %q", got)
		}
		if got, err := s.open([]byte{formatPlain}, "s/k"); err == nil {
			t.Errorf("an empty plain value opened with a session key: %q", got)
		}
	}
}

// TestSealKeylessRefusesSealed: without a key, a sealed value is refused,
// not returned as it is.
func TestSealKeylessRefusesSealed(t *testing.T) {
	sealed := mustSealer(t, testKey(t), nil).seal([]byte("session"), "s/k")
	if got, err := mustSealer(t, nil, nil).open(sealed, "s/k"); err == nil {
		t.Errorf("a sealed value opened without a key: %q", got)
	}
}

func TestNewSealerKeySizes(t *testing.T) {
	good := testKey(t)
	for _, n := range []int{0, 1, 16, 24, 31, 33, 64} {
		bad := make([]byte, n)
		if _, err := newSealer(bad, nil); err == nil {
			t.Errorf("a %d-byte SessionKey was accepted", n)
		}
		if _, err := newSealer(good, bad); err == nil {
			t.Errorf("a %d-byte PreviousSessionKey was accepted", n)
		}
	}
	if _, err := newSealer(nil, good); err == nil {
		t.Error("a PreviousSessionKey without a SessionKey was accepted")
	}
	if _, err := newSealer(good, good); err != nil {
		t.Errorf("32-byte keys: %v", err)
	}
	// New refuses them too, before anything is stored.
	for _, cfg := range []Config{
		{SessionKey: make([]byte, 16)},
		{SessionKey: good, PreviousSessionKey: make([]byte, 31)},
		{PreviousSessionKey: good},
	} {
		cfg.Issuer, cfg.ClientID, cfg.ClientSecret = "http://127.0.0.1:1", "c", "s"
		cfg.Scopes, cfg.PublicURL = []string{"openid"}, "http://127.0.0.1:2"
		if h, err := New(cfg); err == nil {
			_ = h.Close()
			t.Errorf("New accepted SessionKey %d bytes, PreviousSessionKey %d bytes", len(cfg.SessionKey), len(cfg.PreviousSessionKey))
		}
	}
}
