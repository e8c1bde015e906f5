package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/middleware"
)

const dpopTarget = "https://api.example.com/orders/1"

// dpopFixture is a guard with DPoP allowed and its token cache on, a
// DPoP-bound ES256 token, and a client key to make proofs with.
type dpopFixture struct {
	token   string
	key     *ecdsa.PrivateKey
	handler http.Handler
	close   func()
	proofs  []string // unused proofs, each with a fresh jti
}

func newDPoPFixture(tb testing.TB) *dpopFixture {
	tb.Helper()
	key, err := devissuer.GenerateKey("ES256", "k1")
	if err != nil {
		tb.Fatal(err)
	}
	var iss *devissuer.Issuer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { iss.Handler().ServeHTTP(w, r) }))
	iss = devissuer.New(srv.URL, audience, key)
	client, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	jkt, err := dpop.Thumbprint(client.Public())
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := iss.Mint("orders:read", 24*time.Hour, map[string]any{"cnf": map[string]any{"jkt": jkt}})
	if err != nil {
		tb.Fatal(err)
	}
	guard, err := middleware.New(context.Background(), middleware.Config{
		Audience:  audience,
		Issuers:   []middleware.Issuer{{Issuer: iss.URL(), JWKSURI: srv.URL + "/jwks"}},
		PublicURL: "https://api.example.com",
		DPoP:      middleware.DPoPConfig{Mode: middleware.DPoPAllowed},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return &dpopFixture{
		token:   tok,
		key:     client,
		handler: guard.Require("orders:read")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})),
		close:   func() { guard.Close(); srv.Close() },
	}
}

// refill makes n fresh proofs.
func (f *dpopFixture) refill(tb testing.TB, n int) {
	f.proofs = f.proofs[:0]
	for range n {
		p, err := dpop.NewProof(f.key, dpop.ProofParams{Method: http.MethodGet, URL: dpopTarget, AccessToken: f.token})
		if err != nil {
			tb.Fatal(err)
		}
		f.proofs = append(f.proofs, p)
	}
}

// next returns an unused proof, refilling (off the clock) when needed.
func (f *dpopFixture) next(b *testing.B) string {
	if len(f.proofs) == 0 {
		b.StopTimer()
		f.refill(b, 2000)
		b.StartTimer()
	}
	p := f.proofs[len(f.proofs)-1]
	f.proofs = f.proofs[:len(f.proofs)-1]
	return p
}

// proofFloor is one bare ES256 verification of a proof: the least any
// DPoP check must do.
func proofFloor(tb testing.TB, proof string, pub *ecdsa.PublicKey) func() bool {
	i := strings.LastIndexByte(proof, '.')
	input := []byte(proof[:i])
	sig, err := base64.RawURLEncoding.DecodeString(proof[i+1:])
	if err != nil {
		tb.Fatal(err)
	}
	der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])})
	if err != nil {
		tb.Fatal(err)
	}
	return func() bool {
		h := sha256.Sum256(input)
		return ecdsa.VerifyASN1(pub, h[:], der)
	}
}

func dpopRequest(tok, proof string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, dpopTarget, nil)
	req.Header.Set("Authorization", "DPoP "+tok)
	req.Header.Set("DPoP", proof)
	return req
}

// BenchmarkDPoP is a DPoP request with a cached token: proof verification
// and the in-memory replay check, next to its floor.
func BenchmarkDPoP(b *testing.B) {
	b.Run("floor", func(b *testing.B) {
		f := newDPoPFixture(b)
		defer f.close()
		f.refill(b, 1)
		floor := proofFloor(b, f.proofs[0], &f.key.PublicKey)
		b.ReportAllocs()
		for b.Loop() {
			if !floor() {
				b.Fatal("floor rejected the proof")
			}
		}
	})
	b.Run("guard", func(b *testing.B) {
		f := newDPoPFixture(b)
		defer f.close()
		f.refill(b, 2000)
		w := &discard{h: http.Header{}}
		f.handler.ServeHTTP(w, dpopRequest(f.token, f.next(b))) // caches the token
		b.ReportAllocs()
		for b.Loop() {
			f.handler.ServeHTTP(w, dpopRequest(f.token, f.next(b)))
		}
	})
}

// dpopRatio measures the DPoP request against its floor, as TestRatios
// does for bearer tokens.
func dpopRatio(t *testing.T, rounds int) {
	f := newDPoPFixture(t)
	defer f.close()
	f.refill(t, 1)
	floor := proofFloor(t, f.proofs[0], &f.key.PublicKey)
	var rs, floorNs, guardNs []float64
	var allocs int64
	for range rounds {
		fl := testing.Benchmark(func(b *testing.B) {
			for b.Loop() {
				floor()
			}
		})
		g := testing.Benchmark(func(b *testing.B) {
			w := &discard{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				f.handler.ServeHTTP(w, dpopRequest(f.token, f.next(b)))
			}
		})
		floorNs = append(floorNs, float64(fl.NsPerOp()))
		guardNs = append(guardNs, float64(g.NsPerOp()))
		rs = append(rs, float64(g.NsPerOp())/float64(fl.NsPerOp()))
		allocs = g.AllocsPerOp()
	}
	t.Logf("DPoP   floor %8.0f ns  guard %8.0f ns  ratio %.3f (min %.3f max %.3f)  allocs %d  (cached token + proof + in-memory replay check)",
		median(floorNs), median(guardNs), median(rs), slices.Min(rs), slices.Max(rs), allocs)
}
