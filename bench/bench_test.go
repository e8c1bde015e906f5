package bench

import (
	"context"
	"flag"
	"net/http"
	"slices"
	"testing"
)

// Benchmark names are stable: bench/run.sh selects them, the report
// (cmd/benchreport) reads them and allocs.thresholds lists some of them.
//
//	BenchmarkFloor/<alg>[/parallel]                     bare signature check
//	BenchmarkGuard/<alg>/cache=off|cache=on[/parallel]  tokenguard
//	BenchmarkPeer/<peer>/<alg>[/parallel]                the peers
//	BenchmarkControl/context|alloc[/parallel]           no guard: the scaling controls
//	BenchmarkDPoP/..., BenchmarkIntrospected/...         see their files

// floorCase measures the bare signature check of the env's token.
func floorCase(alg string, parallel bool) func(*testing.B) {
	return func(b *testing.B) {
		env := newEnv(b, alg)
		benchFunc(b, env.floor(b), parallel)
	}
}

// contestantCase measures c serving the env's valid token.
func contestantCase(c contestant, alg string, parallel bool) func(*testing.B) {
	return func(b *testing.B) {
		env := newEnv(b, alg)
		h := c.newHandler(b, env, noop)
		if parallel {
			benchServeParallel(b, h, env.tokens.valid)
		} else {
			benchServe(b, h, env.tokens.valid)
		}
	}
}

// tokenguardContestant returns tokenguard with its token cache off or on.
func tokenguardContestant(cache bool) contestant {
	if cache {
		return contestants[1]
	}
	return contestants[0]
}

func cacheName(cache bool) string {
	if cache {
		return "cache=on"
	}
	return "cache=off"
}

func BenchmarkFloor(b *testing.B) {
	for _, alg := range algs {
		b.Run(alg, floorCase(alg, false))
		b.Run(alg+"/parallel", floorCase(alg, true))
	}
}

func BenchmarkGuard(b *testing.B) {
	for _, alg := range algs {
		for _, cache := range []bool{false, true} {
			name := alg + "/" + cacheName(cache)
			b.Run(name, contestantCase(tokenguardContestant(cache), alg, false))
			b.Run(name+"/parallel", contestantCase(tokenguardContestant(cache), alg, true))
		}
	}
}

// BenchmarkPeer runs the same requests through each peer library.
func BenchmarkPeer(b *testing.B) {
	for _, p := range peers {
		for _, alg := range algs {
			b.Run(p.name+"/"+alg, contestantCase(p, alg, false))
			b.Run(p.name+"/"+alg+"/parallel", contestantCase(p, alg, true))
		}
	}
}

// BenchmarkControl measures no guard at all: a handler that only hands a
// value on to the next handler in the request context, which every
// middleware that passes a principal on must do (r.WithContext copies the
// request). Its serial-to-parallel gain is the ceiling, on the machine at
// hand, for any such net/http middleware's cached path: it shows whether a
// shortfall is ours or the runtime's.
func BenchmarkControl(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			panic("no credentials")
		}
		noop.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), controlKey{}, controlValue)))
	})
	b.Run("context", func(b *testing.B) { benchServe(b, h, "control") })
	b.Run("context/parallel", func(b *testing.B) { benchServeParallel(b, h, "control") })
	// Not even net/http: one heap allocation the size of a request copy,
	// holding pointers as a request does. How this scales is the Go
	// runtime's allocator and garbage collector on the machine at hand.
	b.Run("alloc", func(b *testing.B) { benchFunc(b, allocOne, false) })
	b.Run("alloc/parallel", func(b *testing.B) { benchFunc(b, allocOne, true) })
}

// requestSized is as large as an http.Request and, like it, holds pointers.
type requestSized struct {
	p [28]*byte
	n [4]int64
}

// allocKeep is never set: the store it guards makes every allocation
// escape to the heap (escape analysis cannot know the branch is never
// taken), without a shared write that would make the two cores contend.
var (
	allocKeep bool
	allocSink *requestSized
)

// allocOne allocates one requestSized object on the heap.
func allocOne() bool {
	r := new(requestSized)
	if allocKeep {
		allocSink = r
	}
	return true
}

type controlKey struct{}

var controlValue = &struct{ subject string }{"control"}

var ratios = flag.Bool("ratios", false, "run TestRatios: median guard/floor cost ratios measured in one run")

// TestRatios measures, in one process, the guard with the token cache off
// against the floor, interleaving the two five times per algorithm, and
// prints the median ratio and the guard's allocations. It is a report, not
// a pass/fail timing test (machines are noisy); run it with -ratios. For
// the full side-by-side comparison, use run.sh.
func TestRatios(t *testing.T) {
	if !*ratios {
		t.Skip("a measurement, not a test: run with -ratios")
	}
	const rounds = 5
	for _, alg := range algs {
		env := newEnv(t, alg)
		floor := env.floor(t)
		guard := newTokenguard(t, env, false, noop)
		cached := newTokenguard(t, env, true, noop)
		var rs []float64
		var allocs int64
		var floorNs, guardNs, cachedNs []float64
		for range rounds {
			fl := testing.Benchmark(func(b *testing.B) { benchFunc(b, floor, false) })
			g := testing.Benchmark(func(b *testing.B) { benchServe(b, guard, env.tokens.valid) })
			c := testing.Benchmark(func(b *testing.B) { benchServe(b, cached, env.tokens.valid) })
			floorNs = append(floorNs, float64(fl.NsPerOp()))
			guardNs = append(guardNs, float64(g.NsPerOp()))
			cachedNs = append(cachedNs, float64(c.NsPerOp()))
			rs = append(rs, float64(g.NsPerOp())/float64(fl.NsPerOp()))
			allocs = g.AllocsPerOp()
		}
		t.Logf("%-6s floor %8.0f ns  guard %8.0f ns  ratio %.3f (min %.3f max %.3f)  allocs %d  cached %6.0f ns",
			alg, median(floorNs), median(guardNs), median(rs), slices.Min(rs), slices.Max(rs), allocs, median(cachedNs))
	}
	dpopRatio(t, rounds)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
