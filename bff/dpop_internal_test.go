package bff

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tokenguard/tokenguard/dpop"
)

// oldSession encodes a session as sessionFormat 1 has always been
// written (before DPoP keys), independently of marshal.
func oldSession(times [5]int64, fields [4]string) []byte {
	b := []byte{1}
	for _, v := range times {
		b = binary.AppendVarint(b, v)
	}
	for _, f := range fields {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// TestSessionFormats: sessions written before DPoP still decode, and a
// session without a key is still written that way; one with a key gets
// format 2, which round-trips; malformed encodings are refused.
func TestSessionFormats(t *testing.T) {
	old := oldSession([5]int64{1, 2, 3, 4, 5}, [4]string{"at", "rt", "idt", `{"sub":"alice"}`})
	var s session
	if err := s.unmarshal(old); err != nil {
		t.Fatalf("an old session does not decode: %v", err)
	}
	want := session{Created: 1, LastUsed: 2, Expires: 3, AccessExpiry: 4, AccessIssued: 5,
		AccessToken: "at", RefreshToken: "rt", IDToken: "idt", Claims: json.RawMessage(`{"sub":"alice"}`)}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("old session (-want +got):\n%s", diff)
	}
	if !bytes.Equal(s.marshal(), old) {
		t.Error("a session without a key is no longer written in format 1")
	}

	key := bytes.Repeat([]byte{7}, 32)
	withKey := want
	withKey.DPoPKey = key
	enc := withKey.marshal()
	if enc[0] != sessionFormatDPoP || !bytes.Equal(enc[1:len(old)], old[1:]) {
		t.Errorf("a session with a key: format %d, not format 1 plus the key", enc[0])
	}
	var got session
	if err := got.unmarshal(enc); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(withKey, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}

	short := withKey
	short.DPoPKey = key[:31]
	for name, bad := range map[string][]byte{
		"format 2 without a key":     append([]byte{sessionFormatDPoP}, old[1:]...),
		"format 2 with a short key":  short.marshal(),
		"format 1 with a key":        append([]byte{sessionFormat}, enc[1:]...),
		"unknown format":             append([]byte{3}, enc[1:]...),
		"format 2 with bytes after":  append(append([]byte{}, enc...), 0),
		"format 2, key cut":          enc[:len(enc)-1],
		"empty":                      {},
		"format 1, claims length 99": append(oldSession([5]int64{}, [4]string{"", "", "", ""})[:9], 99),
	} {
		var s session
		if err := s.unmarshal(bad); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// TestDeriveDPoPKey: the same secret and state give the same key; another
// state or secret another; at a callback, the key whose thumbprint the
// login recorded is found under the previous secret after a rotation, and
// none is made up for a thumbprint no secret gives.
func TestDeriveDPoPKey(t *testing.T) {
	a, b := bytes.Repeat([]byte{1}, SessionKeySize), bytes.Repeat([]byte{2}, SessionKeySize)
	raw := func(secret []byte, state string) []byte {
		t.Helper()
		k, err := deriveDPoPKey(secret, state)
		if err != nil {
			t.Fatal(err)
		}
		r, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if !bytes.Equal(raw(a, "s1"), raw(a, "s1")) {
		t.Error("not deterministic")
	}
	if bytes.Equal(raw(a, "s1"), raw(a, "s2")) || bytes.Equal(raw(a, "s1"), raw(b, "s1")) {
		t.Error("another state or secret gives the same key")
	}
	if bytes.Equal(raw(a, "s1"), a) {
		t.Error("the key is the secret")
	}

	h := &Handler{dpopSecrets: [][]byte{b, a}} // rotated from a to b during the login
	started, err := deriveDPoPKey(a, "s1")
	if err != nil {
		t.Fatal(err)
	}
	jkt, _ := dpop.Thumbprint(started.Public())
	k, err := h.callbackDPoPKey("s1", jkt)
	if err != nil || !k.Equal(started) {
		t.Fatalf("after a rotation: %v", err)
	}
	if k, err := h.callbackDPoPKey("s1", ""); err != nil || !bytes.Equal(mustBytes(t, k), raw(b, "s1")) {
		t.Errorf("without a recorded thumbprint: %v", err)
	}
	if _, err := h.callbackDPoPKey("s2", jkt); err == nil {
		t.Error("a key was found for a thumbprint no secret gives for this state")
	}
}

func mustBytes(t *testing.T, k interface{ Bytes() ([]byte, error) }) []byte {
	t.Helper()
	b, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
