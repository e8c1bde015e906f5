package bench

import (
	"context"
	"crypto/ecdsa"
	"net/http"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/dpop/redisstore"
	"github.com/tokenguard/tokenguard/internal/dpoptest"
	"github.com/tokenguard/tokenguard/middleware"
)

const dpopTarget = "https://api.example.com/orders/1"

// dpopFixture is a guard with DPoP allowed and its token cache on, a
// DPoP-bound ES256 token, and a client key to make proofs with.
type dpopFixture struct {
	token   string
	key     *ecdsa.PrivateKey
	handler http.Handler
	proofs  []string // unused proofs, each with a fresh jti
}

// newDPoPFixture makes the fixture with store as the replay store (nil:
// the default in-memory store).
func newDPoPFixture(tb testing.TB, store dpop.ReplayStore) *dpopFixture {
	tb.Helper()
	env := newEnv(tb, "ES256")
	client, jkt := dpoptest.NewKey(tb)
	tok, err := env.iss.Mint(scope, 24*time.Hour, map[string]any{"cnf": map[string]any{"jkt": jkt}})
	if err != nil {
		tb.Fatal(err)
	}
	guard, err := middleware.New(context.Background(), middleware.Config{
		Audience:  audience,
		Issuers:   []middleware.Issuer{{Issuer: env.iss.URL(), JWKSURI: env.jwksURL}},
		PublicURL: "https://api.example.com",
		DPoP:      middleware.DPoPConfig{Mode: middleware.DPoPAllowed, ReplayStore: store},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { guard.Close() })
	f := &dpopFixture{token: tok, key: client, handler: guard.Require(scope)(noop)}
	// One request before the timer: it caches the token, so what is
	// measured is the proof and the replay check.
	warm(tb, f.handler, dpopRequest(tok, f.makeProofs(tb, 1)[0]))
	return f
}

// makeProofs makes n fresh proofs.
func (f *dpopFixture) makeProofs(tb testing.TB, n int) []string {
	tb.Helper()
	out := make([]string, 0, n)
	for range n {
		p, err := dpop.NewProof(f.key, dpop.ProofParams{Method: http.MethodGet, URL: dpopTarget, AccessToken: f.token})
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// next returns an unused proof, refilling (off the clock) when needed.
// The refill's garbage is collected before the clock restarts: otherwise
// the collector would work it off during the timed loop, charged to the
// guard.
func (f *dpopFixture) next(b *testing.B) string {
	if len(f.proofs) == 0 {
		b.StopTimer()
		f.proofs = f.makeProofs(b, 2000)
		runtime.GC()
		b.StartTimer()
	}
	p := f.proofs[len(f.proofs)-1]
	f.proofs = f.proofs[:len(f.proofs)-1]
	return p
}

func dpopRequest(tok, proof string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, dpopTarget, nil)
	req.Header.Set("Authorization", "DPoP "+tok)
	req.Header.Set("DPoP", proof)
	return req
}

// setProof gives req a fresh proof, as the next request on a connection
// would carry. Like the other benchmarks, which build their request once,
// outside the loop, the DPoP rows time the guard, not the making of an
// http.Request. The guard keeps nothing of a request once it returns.
func setProof(req *http.Request, proof string) {
	req.Header[dpopHeader][0] = proof
}

// serveSerial times the guard serving one request after another, each
// with a fresh proof.
func (f *dpopFixture) serveSerial(b *testing.B) {
	w, req := newDiscard(), dpopRequest(f.token, "")
	b.ReportAllocs()
	for b.Loop() {
		setProof(req, f.next(b))
		f.handler.ServeHTTP(w, req)
	}
}

// dpopHeader is the canonical key of the DPoP header.
var dpopHeader = http.CanonicalHeaderKey("DPoP")

// dpopCase measures DPoP requests with a cached token and a fresh proof
// each: proof verification and the replay check in store (nil: memory).
// newStore, when set, makes the store and may skip the benchmark.
func dpopCase(newStore func(testing.TB) dpop.ReplayStore, parallel bool) func(*testing.B) {
	return func(b *testing.B) {
		var store dpop.ReplayStore
		if newStore != nil {
			store = newStore(b)
		}
		f := newDPoPFixture(b, store)
		if !parallel {
			f.serveSerial(b)
			return
		}
		b.ReportAllocs()
		// Every proof is made before the timer starts: b.N of them, taken
		// in turn by the parallel goroutines.
		proofs := f.makeProofs(b, b.N)
		runtime.GC()
		var i atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			w, req := newDiscard(), dpopRequest(f.token, "")
			for pb.Next() {
				setProof(req, proofs[i.Add(1)-1])
				f.handler.ServeHTTP(w, req)
			}
		})
	}
}

// dpopFloorCase is one bare ES256 verification of a proof: the least any
// DPoP check must do.
func dpopFloorCase(parallel bool) func(*testing.B) {
	return func(b *testing.B) {
		f := newDPoPFixture(b, nil)
		benchFunc(b, f.proofFloor(b), parallel)
	}
}

func (f *dpopFixture) proofFloor(tb testing.TB) func() bool {
	return floorFor(tb, "ES256", &f.key.PublicKey, f.makeProofs(tb, 1)[0])
}

// newRedisStore is a Redis replay store on this process's redis-server.
func newRedisStore(tb testing.TB) dpop.ReplayStore {
	addr := redisAddr(tb)
	s, err := redisstore.NewFromURL("redis://"+addr+"/0", redisstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkDPoP is a DPoP request with a cached token: proof verification
// and the replay check, in memory and in a local Redis, next to its
// floor.
func BenchmarkDPoP(b *testing.B) {
	b.Run("floor", dpopFloorCase(false))
	b.Run("floor/parallel", dpopFloorCase(true))
	b.Run("memory", dpopCase(nil, false))
	b.Run("memory/parallel", dpopCase(nil, true))
	b.Run("redis", dpopCase(newRedisStore, false))
	b.Run("redis/parallel", dpopCase(newRedisStore, true))
}

// dpopRatio measures the DPoP request against its floor, as TestRatios
// does for bearer tokens.
func dpopRatio(t *testing.T, rounds int) {
	f := newDPoPFixture(t, nil)
	floor := f.proofFloor(t)
	var rs, floorNs, guardNs []float64
	var allocs int64
	for range rounds {
		fl := testing.Benchmark(func(b *testing.B) { benchFunc(b, floor, false) })
		g := testing.Benchmark(f.serveSerial)
		floorNs = append(floorNs, float64(fl.NsPerOp()))
		guardNs = append(guardNs, float64(g.NsPerOp()))
		rs = append(rs, float64(g.NsPerOp())/float64(fl.NsPerOp()))
		allocs = g.AllocsPerOp()
	}
	t.Logf("DPoP   floor %8.0f ns  guard %8.0f ns  ratio %.3f (min %.3f max %.3f)  allocs %d  (cached token + proof + in-memory replay check)",
		median(floorNs), median(guardNs), median(rs), slices.Min(rs), slices.Max(rs), allocs)
}
