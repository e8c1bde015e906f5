package jwks

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"log/slog"
	"testing"
	"time"
)

// FuzzSnapshot feeds arbitrary bytes to the snapshot builder as a JWKS
// document. It must never panic, and every key it publishes must satisfy
// the hygiene rules.
func FuzzSnapshot(f *testing.F) {
	k := testKeys()
	seeds := [][]byte{
		jwksDoc(kRSA1(f), kEC(f)), // a good set
		jwksDoc(jwkJSON(f, k.ed.Public(), map[string]any{"alg": "EdDSA"})),                                                            // one key, no kid
		jwksDoc(jwkJSON(f, &k.p384.PublicKey, map[string]any{"kid": "a", "alg": "ES384", "use": "sig"})),                              // every optional member
		jwksDoc(jwkJSON(f, &k.p521.PublicKey, map[string]any{"kid": "a", "key_ops": []string{"verify"}})),                             // P-521, not allowed by default
		jwksDoc(jwkJSON(f, k.rsa1, map[string]any{"kid": "priv"})),                                                                    // a private key
		jwksDoc(jwkJSON(f, &k.rsa1.PublicKey, map[string]any{"kid": "x", "alg": "ES256"})),                                            // alg of another type
		jwksDoc(jwkJSON(f, &k.rsa1.PublicKey, map[string]any{"kid": "x"}), jwkJSON(f, &k.rsa2.PublicKey, map[string]any{"kid": "x"})), // duplicate kid
		[]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`),                                                                             // symmetric
		[]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}]}`),                                                             // point off the curve
		[]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`),                                                                      // tiny modulus
		[]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":""}]}`),                                                                     // empty Ed25519 key
		[]byte(`{"keys":[]}`),              // empty set
		[]byte(`{"keys":[null,1,"a",[]]}`), // entries that are not objects
		[]byte(`{"keys":{}}`),              // keys not an array
		[]byte(`{"kty":"RSA"}`),            // a bare JWK
		[]byte(`[]`),                       // not an object
		[]byte(`{"keys":[{"kty":"RSA","kid":"\u0000\ud800"}]}`), // odd kid
		[]byte(``),          // empty
		[]byte(`{"keys":[`), // truncated
	}
	for _, s := range seeds {
		f.Add(s)
	}
	allow := defaultAllow()
	f.Fuzz(func(t *testing.T, doc []byte) {
		snap, err := buildSnapshot(doc, &buildOptions{
			allowed: allow,
			maxKeys: 20,
			log:     slog.New(slog.DiscardHandler),
			now:     time.Unix(0, 0),
		})
		if err != nil {
			if snap != nil {
				t.Fatal("snapshot and error")
			}
			return
		}
		if snap.Len() == 0 || snap.Len() > 20 {
			t.Fatalf("Len() = %d", snap.Len())
		}
		if (snap.Len() == 1) != (snap.Key("") != nil) {
			t.Fatalf("Key(\"\") wrong for Len() = %d", snap.Len())
		}
		kids := map[string]bool{}
		for _, key := range snap.keys {
			checkPublished(t, key, allow)
			if key.ID != "" {
				if kids[key.ID] || snap.Key(key.ID) != key {
					t.Fatalf("kid %q duplicated or not indexed", key.ID)
				}
				kids[key.ID] = true
			}
		}
		if len(kids) != len(snap.byKID) {
			t.Fatalf("index has %d kids, keys have %d", len(snap.byKID), len(kids))
		}
		// Every published key came from an entry that is a JSON object
		// without private members.
		var parsed struct{ Keys []map[string]json.RawMessage }
		if err := json.Unmarshal(doc, &parsed); err != nil {
			t.Fatalf("published keys from a document encoding/json rejects: %v", err)
		}
	})
}

// checkPublished asserts the hygiene rules on one published key.
func checkPublished(t *testing.T, key *Key, allow algSet) {
	t.Helper()
	if key.allowed == 0 || key.allowed&^allow != 0 || key.allowed&^algsFor(key.Public) != 0 {
		t.Fatalf("key %q allows %b (allow-list %b)", key.ID, key.allowed, allow)
	}
	switch p := key.Public.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < minRSABits || p.N.BitLen() > maxRSABits {
			t.Fatalf("RSA key of %d bits", p.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if _, err := p.ECDH(); err != nil {
			t.Fatalf("invalid EC key: %v", err)
		}
	case ed25519.PublicKey:
		if len(p) != ed25519.PublicKeySize {
			t.Fatalf("Ed25519 key of %d bytes", len(p))
		}
	default:
		t.Fatalf("published %T", key.Public)
	}
	if key.Algorithm != "" && (algBit(key.Algorithm) != key.allowed) {
		t.Fatalf("alg %q but allows %b", key.Algorithm, key.allowed)
	}
	if len(key.Thumbprint) != 43 {
		t.Fatalf("thumbprint %q", key.Thumbprint)
	}
}
