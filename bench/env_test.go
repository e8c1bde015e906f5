package bench

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/devissuer"
)

// Everything a contestant is measured on is made here once, so every
// contestant sees the same token, key, claims and JWKS document.

const audience = "https://api.example.com"

// scope is granted by every token and required by tokenguard's route.
const scope = "orders:read"

var algs = []string{"ES256", "RS256", "EdDSA"}

// keys holds one signing key per algorithm for the whole process: RSA key
// generation alone can take a second, and every fixture would repeat it.
var keys struct {
	mu sync.Mutex // guards m
	m  map[string]*devissuer.Key
}

func keyFor(tb testing.TB, alg string) *devissuer.Key {
	tb.Helper()
	keys.mu.Lock()
	defer keys.mu.Unlock()
	if k := keys.m[alg]; k != nil {
		return k
	}
	k, err := devissuer.GenerateKey(alg, "k1")
	if err != nil {
		tb.Fatal(err)
	}
	if keys.m == nil {
		keys.m = map[string]*devissuer.Key{}
	}
	keys.m[alg] = k
	return k
}

// tokens are the inputs of the correctness table: one valid token and one
// variant for each check a verifier must make.
type tokens struct {
	valid, tampered, wrongAud, wrongIss, expired string
}

// issuerEnv is one development issuer, its JWKS on a loopback httptest
// server, and the tokens it minted, for one algorithm.
type issuerEnv struct {
	alg     string
	key     *devissuer.Key
	iss     *devissuer.Issuer
	jwksURL string
	tokens  tokens
}

// newEnv starts an issuer for alg; its server stops when tb ends.
func newEnv(tb testing.TB, alg string) *issuerEnv {
	tb.Helper()
	key := keyFor(tb, alg)
	var iss *devissuer.Issuer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { iss.Handler().ServeHTTP(w, r) }))
	tb.Cleanup(srv.Close)
	iss = devissuer.New(srv.URL, audience, key)
	e := &issuerEnv{alg: alg, key: key, iss: iss, jwksURL: srv.URL + "/jwks"}
	mint := func(extra map[string]any) string {
		tok, err := iss.Mint(scope, 24*time.Hour, extra)
		if err != nil {
			tb.Fatal(err)
		}
		return tok
	}
	e.tokens = tokens{
		valid:    mint(nil),
		wrongAud: mint(map[string]any{"aud": "https://other.example.com"}),
		wrongIss: mint(map[string]any{"iss": "https://evil.example.com"}),
		// An hour past: beyond every contestant's clock-skew leeway.
		expired: mint(map[string]any{"exp": time.Now().Add(-time.Hour).Unix(), "iat": time.Now().Add(-2 * time.Hour).Unix()}),
	}
	e.tokens.tampered = tamper(e.tokens.valid)
	return e
}

// tamper flips one bit in the middle of the signature. (The last base64url
// character can carry unused bits, so changing it may not change the
// signature at all.)
func tamper(tok string) string {
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		panic(err)
	}
	sig[len(sig)/2] ^= 0x01
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
}

// floor returns the minimal work any verifier must do for the env's
// valid token: hash the signing input and check the signature.
func (e *issuerEnv) floor(tb testing.TB) func() bool {
	return floorFor(tb, e.alg, e.key.Private.Public(), e.tokens.valid)
}

// floorFor returns the bare signature check of tok. The signature is
// decoded once, outside the measured function, so the floor is as low as
// it can be.
func floorFor(tb testing.TB, alg string, pub crypto.PublicKey, tok string) func() bool {
	tb.Helper()
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

// noop is the protected handler every contestant wraps.
var noop = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

// discard is the cheap ResponseWriter every contestant is driven with. It
// keeps nothing, and fails loudly on any status but 200 so a benchmark
// cannot quietly measure a refusal.
type discard struct{ h http.Header }

func newDiscard() *discard { return &discard{h: http.Header{}} }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(code int) {
	if code != http.StatusOK {
		panic(fmt.Sprintf("status %d", code))
	}
}

// request is a GET of a protected resource with tok as a Bearer token.
func request(tok string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, "https://api.example.com/orders/1", nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return req
}

// warm sends one request through h before the timer starts (so JWKS
// fetches, lazy initialisation and caches are behind us) and fails the
// benchmark if it is refused.
func warm(tb testing.TB, h http.Handler, req *http.Request) {
	tb.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		tb.Fatalf("warm-up request refused: %d %s %s", rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body)
	}
}

// benchServe measures h serving tok, serially.
func benchServe(b *testing.B, h http.Handler, tok string) {
	req, w := request(tok), newDiscard()
	warm(b, h, req)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
	cpu.report(b)
}

// benchServeParallel measures h serving tok from GOMAXPROCS goroutines
// (testing's RunParallel), each with its own request and writer.
func benchServeParallel(b *testing.B, h http.Handler, tok string) {
	warm(b, h, request(tok))
	b.ReportAllocs()
	cpu := startCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, w := request(tok), newDiscard()
		for pb.Next() {
			h.ServeHTTP(w, req)
		}
	})
	cpu.report(b)
}

// cpuClock measures the process's CPU time across a benchmark's loop.
type cpuClock struct {
	start time.Duration
	ok    bool
}

func startCPU() cpuClock {
	t, ok := processCPU()
	return cpuClock{t, ok}
}

// report adds cpu-ns/op: process CPU time (all threads) per operation.
// Next to ns/op (wall time) it shows how many cores an operation really
// kept busy: a serial loop whose garbage is collected on the idle core
// uses more than one, and a parallel run whose work per operation grows
// when both cores are busy shows it here.
func (c cpuClock) report(b *testing.B) {
	end, ok := processCPU()
	if !c.ok || !ok || b.N == 0 {
		return
	}
	b.ReportMetric(float64(end-c.start)/float64(b.N), "cpu-ns/op")
}

// benchFunc measures f serially or in parallel; f must report success.
func benchFunc(b *testing.B, f func() bool, parallel bool) {
	b.ReportAllocs()
	if !f() {
		b.Fatal("floor rejected the token")
	}
	cpu := startCPU()
	if !parallel {
		for b.Loop() {
			f()
		}
		cpu.report(b)
		return
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			f()
		}
	})
	cpu.report(b)
}
