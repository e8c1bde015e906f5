package dpop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// testNow is the fixed clock of these tests.
var testNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

const (
	testURL   = "https://api.example.com/orders/1"
	testToken = "an-access-token"
)

func newECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// jwkOf returns key's JWK as a JSON-ready map (private members included
// when key is private).
func jwkOf(t testing.TB, key any) map[string]any {
	t.Helper()
	k, err := jwk.Import(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// validClaims are the claims of a proof that passes, for testURL and
// testToken at testNow.
func validClaims(jti string) map[string]any {
	return map[string]any{
		"jti": jti,
		"htm": "GET",
		"htu": testURL,
		"iat": testNow.Unix(),
		"ath": AccessTokenHash(testToken),
	}
}

// signES256 makes a compact JWS with exactly header and claims, signed
// with key by crypto/ecdsa directly (r‖s), so tests can build proofs no
// honest client would.
func signES256(t testing.TB, key *ecdsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b64.EncodeToString(b)
	}
	in := enc(header) + "." + enc(claims)
	d := sha256.Sum256([]byte(in))
	r, s, err := ecdsa.Sign(rand.Reader, key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return in + "." + b64.EncodeToString(sig)
}

func proofHeader(t testing.TB, key crypto.Signer) map[string]any {
	return map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jwkOf(t, key.Public())}
}

func newTestVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func testRequest(proof string) Request {
	return Request{Proof: proof, Method: "GET", URL: testURL, AccessToken: testToken}
}

// funcStore is a ReplayStore made of a function.
type funcStore func(ctx context.Context, r Replay) error

func (f funcStore) Use(ctx context.Context, r Replay) error { return f(ctx, r) }

// recordingStore accepts everything and remembers what it was asked.
type recordingStore struct {
	mu      sync.Mutex
	ids     []ReplayID
	keys    []KeyID
	expires []time.Time
}

func (s *recordingStore) Use(_ context.Context, r Replay) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, r.ID)
	s.keys = append(s.keys, r.Key)
	s.expires = append(s.expires, r.Expires)
	return nil
}
