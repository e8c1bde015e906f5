package dpop

import (
	"context"
	"errors"
	"testing"
)

// FuzzVerify feeds arbitrary proofs to a Verifier: it must never panic,
// every error must wrap one of the package's errors, and a proof it
// accepts must be refused as a replay the second time.
func FuzzVerify(f *testing.F) {
	key := newECKey(f)
	f.Add(signES256(f, key, proofHeader(f, key), validClaims("seed")), "GET", testURL)
	f.Add(rfc9449Proof, "POST", "https://server.example.com/token")
	f.Add("eyJhbGciOiJFUzI1NiJ9.e30.AA", "GET", testURL)
	f.Fuzz(func(t *testing.T, proof, method, url string) {
		v := newTestVerifier(t, Config{})
		req := Request{Proof: proof, Method: method, URL: url, AccessToken: testToken}
		p, err := v.Verify(context.Background(), req)
		if err != nil {
			if !errors.Is(err, ErrInvalidProof) && !errors.Is(err, ErrUseNonce) && !errors.Is(err, ErrTokenBinding) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if p.JKT == "" || p.JTI == "" {
			t.Fatalf("accepted proof without jkt or jti: %+v", p)
		}
		if _, err := v.Verify(context.Background(), req); !errors.Is(err, ErrReplay) {
			t.Fatalf("second Verify = %v, want ErrReplay", err)
		}
	})
}
