package bench

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"flag"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/middleware"
)

const audience = "https://api.example.com"

var algs = []string{"ES256", "RS256", "EdDSA"}

// fixture is one issuer, one guard and one token for an algorithm.
type fixture struct {
	alg     string
	token   string
	floor   func() bool // the bare signature check of token
	handler http.Handler
	close   func()
}

func newFixture(tb testing.TB, alg string, cache bool) *fixture {
	tb.Helper()
	key, err := devissuer.GenerateKey(alg, "k1")
	if err != nil {
		tb.Fatal(err)
	}
	var iss *devissuer.Issuer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { iss.Handler().ServeHTTP(w, r) }))
	iss = devissuer.New(srv.URL, audience, key)
	tok, err := iss.Mint("orders:read orders:write", 24*time.Hour, nil)
	if err != nil {
		tb.Fatal(err)
	}
	guard, err := middleware.New(context.Background(), middleware.Config{
		Audience:          audience,
		Issuers:           []middleware.Issuer{{Issuer: iss.URL(), JWKSURI: srv.URL + "/jwks"}},
		DisableTokenCache: !cache,
	})
	if err != nil {
		tb.Fatal(err)
	}
	if !guard.Ready() {
		tb.Fatal("guard not ready")
	}
	return &fixture{
		alg:     alg,
		token:   tok,
		floor:   floorFor(tb, alg, key.Private.Public(), tok),
		handler: guard.Require("orders:read")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})),
		close:   func() { guard.Close(); srv.Close() },
	}
}

// floorFor returns the minimal work any verifier must do for tok: hash the
// signing input and check the signature. The signature is decoded once,
// outside the measured function, so the floor is as low as it can be.
func floorFor(tb testing.TB, alg string, pub crypto.PublicKey, tok string) func() bool {
	i := strings.LastIndexByte(tok, '.')
	input := []byte(tok[:i])
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		tb.Fatal(err)
	}
	switch alg {
	case "ES256":
		// VerifyASN1 is crypto/ecdsa's cheapest entry point (Verify with
		// big.Ints allocates twice as much), so the floor uses it with the
		// DER form prepared in advance.
		k := pub.(*ecdsa.PublicKey)
		der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])})
		if err != nil {
			tb.Fatal(err)
		}
		return func() bool {
			h := sha256.Sum256(input)
			return ecdsa.VerifyASN1(k, h[:], der)
		}
	case "RS256":
		k := pub.(*rsa.PublicKey)
		return func() bool {
			h := sha256.Sum256(input)
			return rsa.VerifyPKCS1v15(k, crypto.SHA256, h[:], sig) == nil
		}
	case "EdDSA":
		k := pub.(ed25519.PublicKey)
		return func() bool { return ed25519.Verify(k, input, sig) }
	}
	tb.Fatalf("no floor for %s", alg)
	return nil
}

// discard is a ResponseWriter that keeps nothing.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(code int) {
	if code != http.StatusOK {
		panic(fmt.Sprintf("status %d", code))
	}
}

func request(tok string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, "https://api.example.com/orders/1", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	return req
}

// serve runs one request through the guard.
func (f *fixture) serve(req *http.Request, w *discard) { f.handler.ServeHTTP(w, req) }

func BenchmarkFloor(b *testing.B) {
	for _, alg := range algs {
		b.Run(alg, func(b *testing.B) {
			f := newFixture(b, alg, false)
			defer f.close()
			b.ReportAllocs()
			for b.Loop() {
				if !f.floor() {
					b.Fatal("floor rejected the token")
				}
			}
		})
	}
}

func BenchmarkGuard(b *testing.B) {
	for _, alg := range algs {
		for _, cache := range []bool{false, true} {
			name := alg + "/cache=off"
			if cache {
				name = alg + "/cache=on"
			}
			b.Run(name, func(b *testing.B) {
				f := newFixture(b, alg, cache)
				defer f.close()
				req, w := request(f.token), &discard{h: http.Header{}}
				b.ReportAllocs()
				for b.Loop() {
					f.serve(req, w)
				}
			})
			b.Run(name+"/parallel", func(b *testing.B) {
				f := newFixture(b, alg, cache)
				defer f.close()
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					req, w := request(f.token), &discard{h: http.Header{}}
					for pb.Next() {
						f.serve(req, w)
					}
				})
			})
		}
	}
}

var ratios = flag.Bool("ratios", false, "run TestRatios: median guard/floor cost ratios measured in one run")

// TestRatios measures, in one process, the guard with the token cache off
// against the floor, interleaving the two five times per algorithm, and
// prints the median ratio and the guard's allocations. It is a report, not
// a pass/fail timing test (machines are noisy); run it with -ratios.
func TestRatios(t *testing.T) {
	if !*ratios {
		t.Skip("a measurement, not a test: run with -ratios")
	}
	const rounds = 5
	for _, alg := range algs {
		f := newFixture(t, alg, false)
		fc := newFixture(t, alg, true)
		var rs []float64
		var allocs int64
		var floorNs, guardNs, cachedNs []float64
		for range rounds {
			fl := testing.Benchmark(func(b *testing.B) {
				for b.Loop() {
					f.floor()
				}
			})
			g := testing.Benchmark(func(b *testing.B) {
				req, w := request(f.token), &discard{h: http.Header{}}
				b.ReportAllocs()
				for b.Loop() {
					f.serve(req, w)
				}
			})
			c := testing.Benchmark(func(b *testing.B) {
				req, w := request(fc.token), &discard{h: http.Header{}}
				for b.Loop() {
					fc.serve(req, w)
				}
			})
			floorNs = append(floorNs, float64(fl.NsPerOp()))
			guardNs = append(guardNs, float64(g.NsPerOp()))
			cachedNs = append(cachedNs, float64(c.NsPerOp()))
			rs = append(rs, float64(g.NsPerOp())/float64(fl.NsPerOp()))
			allocs = g.AllocsPerOp()
		}
		t.Logf("%-6s floor %8.0f ns  guard %8.0f ns  ratio %.3f (min %.3f max %.3f)  allocs %d  cached %6.0f ns",
			alg, median(floorNs), median(guardNs), median(rs), slices.Min(rs), slices.Max(rs), allocs, median(cachedNs))
		f.close()
		fc.close()
	}
	dpopRatio(t, rounds)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
