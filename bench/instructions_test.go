package bench

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/middleware"
)

// Instruction counts are the one cost figure a shared, noisy machine
// cannot move: the same binary, inputs and environment execute the same
// instructions however busy the other tenants are. instructions.sh runs
// TestInstructions under valgrind's callgrind twice per contestant, with
// -instr.n small and large, and divides the difference by the difference
// in n, so set-up (process start, JWKS fetch, warm-up) cancels out.
//
// For the difference to be exact, every run must do the same set-up: the
// keys come from testdata/keys (no key generation) and the token's claims
// are fixed (no clock, no random jti). The token is minted for the far
// future, so it stays valid.
var (
	instrWhat = flag.String("instr.what", "", "TestInstructions: floor, guard (token cache off), cached (the same token again, cache on) or dpop (cached bound token, fresh proof)")
	instrAlg  = flag.String("instr.alg", "", "TestInstructions: ES256, RS256 or EdDSA")
	instrN    = flag.Int("instr.n", 0, "TestInstructions: operations to run after set-up")
	instrPrep = flag.Int("instr.prep", 0, "TestInstructions: dpop proofs to make during set-up (at least -instr.n; give both runs the same value, so set-up cancels out)")
)

// fixedClaims are the claims of the instruction-count token: valid from
// 2026 to 2099, the same bytes on every run.
func fixedClaims(iss string) map[string]any {
	return map[string]any{
		"iss": iss, "sub": "user-1", "aud": audience, "client_id": "bench-client",
		"scope": scope, "jti": "instructions-0001",
		"iat": int64(1_780_000_000), "nbf": int64(1_780_000_000), "exp": int64(4_070_908_800),
	}
}

// fixedKey reads testdata/keys/<alg>.pem (PKCS #8).
func fixedKey(tb testing.TB, alg string) *devissuer.Key {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "keys", alg+".pem"))
	if err != nil {
		tb.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		tb.Fatalf("testdata/keys/%s.pem: no PEM block", alg)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		tb.Fatalf("testdata/keys/%s.pem: %v", alg, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		tb.Fatalf("testdata/keys/%s.pem: %T is not a signer", alg, k)
	}
	return &devissuer.Key{KID: "k1", Alg: alg, Private: signer}
}

// TestInstructions runs one contestant -instr.n times for instructions.sh.
// Without -instr.what it is an ordinary test: every contestant, twice
// each, so the fixed keys and token keep working. It checks every answer,
// so a count can never be of a refusal.
func TestInstructions(t *testing.T) {
	if *instrWhat == "" {
		for _, alg := range algs {
			for _, what := range []string{"floor", "guard", "cached", "dpop"} {
				t.Run(what+"/"+alg, func(t *testing.T) { runOps(t, what, alg, 2, 2) })
			}
		}
		return
	}
	if *instrN < 0 {
		t.Fatalf("-instr.n %d: must not be negative", *instrN)
	}
	// The heap profiler samples allocations at random intervals, and
	// each sample costs instructions: off, so two runs count alike.
	runtime.MemProfileRate = 0
	runOps(t, *instrWhat, *instrAlg, *instrN, max(*instrPrep, *instrN))
	fmt.Printf("instructions: %s %s n=%d done\n", *instrWhat, *instrAlg, *instrN)
}

// runOps sets up contestant what for alg and runs it n times. prep is how
// many DPoP proofs the dpop contestant makes during set-up (at least n).
func runOps(t *testing.T, what, alg string, n, prep int) {
	env := newFixedEnv(t, alg)
	var op func() bool
	serve := func(h http.Handler, req *http.Request) func() bool {
		w := &statusWriter{h: http.Header{}}
		warm(t, h, req)
		return func() bool {
			w.code = http.StatusOK
			h.ServeHTTP(w, req)
			return w.code == http.StatusOK
		}
	}
	switch what {
	case "floor":
		op = env.floor(t)
	case "guard":
		op = serve(newTokenguard(t, env, false, noop), request(env.tokens.valid))
	case "cached":
		op = serve(newTokenguard(t, env, true, noop), request(env.tokens.valid))
	case "dpop":
		op = fixedDPoP(t, env, prep)
	default:
		t.Fatalf("-instr.what %q: want floor, guard, cached or dpop", what)
	}

	for i := range n {
		if !op() {
			t.Fatalf("%s %s: operation %d refused the valid token", what, alg, i)
		}
	}
}

// fixedIssuer names the instruction-count token's issuer: not the
// loopback server's URL, whose port changes from run to run.
const fixedIssuer = "https://issuer.example.com"

// newFixedEnv is newEnv with the fixed key and only the fixed valid token.
func newFixedEnv(tb testing.TB, alg string) *issuerEnv {
	tb.Helper()
	key := fixedKey(tb, alg)
	iss := devissuer.New(fixedIssuer, audience, key)
	srv := httptest.NewServer(iss.Handler())
	tb.Cleanup(srv.Close)
	tok, err := key.Sign(map[string]any{"typ": "at+jwt"}, fixedClaims(fixedIssuer))
	if err != nil {
		tb.Fatal(err)
	}
	return &issuerEnv{alg: alg, key: key, iss: iss, jwksURL: srv.URL + "/jwks", tokens: tokens{valid: tok}}
}

// statusWriter is a ResponseWriter that remembers the status instead of
// panicking on a refusal (discard's way), so a refusal fails the test.
type statusWriter struct {
	h    http.Header
	code int
}

func (w *statusWriter) Header() http.Header         { return w.h }
func (w *statusWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *statusWriter) WriteHeader(code int)        { w.code = code }

// fixedDPoP sets up the dpop contestant: a guard with DPoP allowed and its
// token cache on, a token bound to the fixed key (which also signs the
// proofs, with alg), and prep fresh proofs made before the first
// operation. Each operation serves the next unused proof; the warm-up
// request (its own proof) has cached the token, so what is counted is the
// proof, its binding and the replay check.
func fixedDPoP(t *testing.T, env *issuerEnv, prep int) func() bool {
	jkt, err := dpop.Thumbprint(env.key.Private.Public())
	if err != nil {
		t.Fatal(err)
	}
	claims := fixedClaims(fixedIssuer)
	claims["cnf"] = map[string]any{"jkt": jkt}
	tok, err := env.key.Sign(map[string]any{"typ": "at+jwt"}, claims)
	if err != nil {
		t.Fatal(err)
	}
	guard, err := middleware.New(context.Background(), middleware.Config{
		Audience:  audience,
		Issuers:   []middleware.Issuer{{Issuer: env.iss.URL(), JWKSURI: env.jwksURL}},
		PublicURL: "https://api.example.com",
		DPoP:      middleware.DPoPConfig{Mode: middleware.DPoPAllowed},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { guard.Close() })
	proofs := make([]string, prep+1)
	for i := range proofs {
		if proofs[i], err = dpop.NewProof(env.key.Private, dpop.ProofParams{
			Method: http.MethodGet, URL: dpopTarget, AccessToken: tok, Alg: env.alg,
			JTI: fmt.Sprintf("instructions-%08d", i),
		}); err != nil {
			t.Fatal(err)
		}
	}
	h := guard.Require(scope)(noop)
	req, w := dpopRequest(tok, proofs[0]), &statusWriter{h: http.Header{}}
	warm(t, h, req)
	next := 1
	return func() bool {
		setProof(req, proofs[next])
		next++
		w.code = http.StatusOK
		h.ServeHTTP(w, req)
		return w.code == http.StatusOK
	}
}
