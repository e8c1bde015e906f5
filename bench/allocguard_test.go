package bench

import (
	"bufio"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// allocsFile holds the committed allocation thresholds: one
// "BenchmarkName allocs/op" per line.
const allocsFile = "testdata/allocs.txt"

var updateAllocs = flag.Bool("update-allocs", false, "TestAllocGuard: rewrite "+allocsFile+" with the measured allocs/op")

// allocGuardRuns is how many requests each hot path is measured over. The
// count is fixed, not timed, and allocs/op is an integer quotient, so a
// handful of stray allocations from background goroutines cannot change
// it: the guard does not depend on the machine's speed.
const allocGuardRuns = "1000x"

// hotPaths are the tokenguard benchmarks whose allocations are guarded,
// by the benchmark name run.sh and `go test -bench` print.
func hotPaths() map[string]func(*testing.B) {
	m := map[string]func(*testing.B){
		"BenchmarkDPoP/memory":       dpopCase(nil, false),
		"BenchmarkIntrospected/warm": introspectWarmCase(false),
	}
	for _, alg := range algs {
		for _, cache := range []bool{false, true} {
			m["BenchmarkGuard/"+alg+"/"+cacheName(cache)] = contestantCase(tokenguardContestant(cache), alg, false)
		}
	}
	return m
}

// TestAllocGuard fails when a hot path allocates more per request than
// testdata/allocs.txt allows. Allocation counts are exact, unlike times,
// so CI can enforce them: a change that adds an allocation to the
// per-request path fails here, and the message says how to accept it
// when it is deliberate.
func TestAllocGuard(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	want, err := readAllocs(allocsFile)
	if err != nil && !*updateAllocs {
		t.Fatal(err)
	}
	cases := hotPaths()
	names := slices.Sorted(maps.Keys(cases))
	if !*updateAllocs {
		for _, n := range names {
			if _, ok := want[n]; !ok {
				t.Errorf("%s: no threshold in %s (run: go test -run TestAllocGuard -update-allocs)", n, allocsFile)
			}
		}
		for n := range want {
			if _, ok := cases[n]; !ok {
				t.Errorf("%s: threshold in %s for a benchmark the guard does not know", n, allocsFile)
			}
		}
	}

	// A fixed iteration count, whatever -benchtime says: with very few
	// iterations (-benchtime 1x), one-off allocations of the first request
	// would count as per-request ones.
	bt := flag.Lookup("test.benchtime")
	old := bt.Value.String()
	if err := bt.Value.Set(allocGuardRuns); err != nil {
		t.Fatal(err)
	}
	defer bt.Value.Set(old)

	got := map[string]int64{}
	for _, n := range names {
		r := testing.Benchmark(cases[n])
		if r.N == 0 {
			t.Errorf("%s: the benchmark failed or was skipped", n)
			continue
		}
		got[n] = r.AllocsPerOp()
		limit, ok := want[n]
		switch {
		case *updateAllocs, !ok:
		case got[n] > limit:
			t.Errorf("%s: %d allocs/op, threshold %d: an allocation was added to the hot path.\n"+
				"\tIf it is deliberate, say why in the commit and run: cd bench && go test -run TestAllocGuard -update-allocs",
				n, got[n], limit)
		case got[n] < limit:
			t.Logf("%s: %d allocs/op, below the threshold %d: lower it with -update-allocs", n, got[n], limit)
		default:
			t.Logf("%s: %d allocs/op (threshold %d)", n, got[n], limit)
		}
	}
	if *updateAllocs && !t.Failed() {
		if err := writeAllocs(allocsFile, got); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", allocsFile)
	}
}

func readAllocs(path string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]int64{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		fields := strings.Fields(s)
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"BenchmarkName allocs\", got %q", path, line, s)
		}
		n, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%s:%d: bad allocation count %q", path, line, fields[1])
		}
		if _, dup := m[fields[0]]; dup {
			return nil, fmt.Errorf("%s:%d: %s listed twice", path, line, fields[0])
		}
		m[fields[0]] = n
	}
	return m, sc.Err()
}

func writeAllocs(path string, m map[string]int64) error {
	var b strings.Builder
	b.WriteString("# Allocations per request on tokenguard's hot paths, enforced by TestAllocGuard\n")
	b.WriteString("# (bench/allocguard_test.go). Exact counts, not times: a change that adds an\n")
	b.WriteString("# allocation fails CI. Rewrite with: cd bench && go test -run TestAllocGuard -update-allocs\n")
	for _, n := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "%s %d\n", n, m[n])
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
