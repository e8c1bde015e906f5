package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"
	"time"
)

// TestNewProofVerifies: a proof NewProof makes, by its direct ES256 path
// or by jwx for every other key, is accepted by the Verifier for its
// method, URL, token and key, and refused for another token.
func TestNewProofVerifies(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		key  crypto.Signer
	}{{"ES256", p256}, {"ES384", p384}, {"EdDSA", ed}, {"PS256", rk}} {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestVerifier(t, Config{Now: time.Now})
			jkt, err := Thumbprint(tc.key.Public())
			if err != nil {
				t.Fatal(err)
			}
			proof, err := NewProof(tc.key, ProofParams{Method: "POST", URL: "https://api.example/orders?x=1", AccessToken: "tok"})
			if err != nil {
				t.Fatal(err)
			}
			req := Request{Proof: proof, Method: "POST", URL: "https://api.example/orders", AccessToken: "tok", JKT: jkt}
			p, err := v.Check(req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if p.JKT != jkt {
				t.Errorf("proof key %q, want %q", p.JKT, jkt)
			}
			req.AccessToken = "another"
			if _, err := newTestVerifier(t, Config{Now: time.Now}).Check(req); err == nil {
				t.Error("a proof for one token accepted with another")
			}
		})
	}
}
