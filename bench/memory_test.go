package bench

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/middleware"
)

// The memory figures in BENCHMARKS.md: what one entry of the in-memory
// replay store and of the verified-token cache costs, measured as live
// heap (runtime.ReadMemStats after a GC) before and after filling.

// replayMillion is the replay-store size the memory target is about.
const (
	replayMillion  = 1_000_000
	replayMaxBytes = 150_000_000 // the target: 1,000,000 entries in at most 150 MB
)

// liveHeap returns the bytes of live heap after a full collection.
func liveHeap() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// replayStoreBytes fills a store of the default size
// (dpop.DefaultReplayStoreSize) with n used proofs and returns the live
// heap it holds: the empty store plus its entries.
func replayStoreBytes(tb testing.TB, n int) int64 {
	tb.Helper()
	exp := time.Now().Add(time.Hour)
	before := liveHeap()
	s, err := dpop.NewMemoryReplayStore(dpop.DefaultReplayStoreSize)
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	for i := range n {
		// The id is made here, not kept in a slice: only the store's own
		// memory is live at the second reading.
		if err := s.Use(ctx, dpop.NewReplay("jkt-"+strconv.Itoa(i%1000), strconv.Itoa(i), exp)); err != nil {
			tb.Fatalf("entry %d: %v", i, err)
		}
	}
	after := liveHeap()
	if got := s.Len(); got != n {
		tb.Fatalf("store holds %d entries, want %d", got, n)
	}
	runtime.KeepAlive(s)
	return after - before
}

// TestReplayStoreMillion checks the memory target: 1,000,000 replay
// entries fit in at most 150 MB. About a second and 100 MB of heap;
// skipped with -short.
func TestReplayStoreMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a million entries; skipped with -short")
	}
	total := replayStoreBytes(t, replayMillion)
	t.Logf("in-memory replay store: %d entries in %.1f MB (%.1f bytes per entry)",
		replayMillion, float64(total)/1e6, float64(total)/replayMillion)
	if total > replayMaxBytes {
		t.Errorf("%d replay entries take %.1f MB, target at most %.0f MB", replayMillion, float64(total)/1e6, replayMaxBytes/1e6)
	}
}

// tokenCacheBytes serves n distinct tokens through a guard with a token
// cache of 2n entries and through one with the cache off, and returns the
// difference per entry: the bytes a filled entry holds (its Principal,
// claims and bookkeeping) and the bytes each configured slot costs before
// anything is stored (the cache's preallocated table and ring).
func tokenCacheBytes(tb testing.TB, n int) (perEntry, perSlot float64) {
	tb.Helper()
	env := newEnv(tb, "EdDSA") // the cheapest to mint and verify
	toks := make([]string, n)
	for i := range toks {
		tok, err := env.iss.Mint(scope, time.Hour, nil) // each with its own jti
		if err != nil {
			tb.Fatal(err)
		}
		toks[i] = tok
	}
	measure := func(cache bool) (made, filled int64) {
		h0 := liveHeap()
		guard, err := middleware.New(context.Background(), middleware.Config{
			Audience:          audience,
			Issuers:           []middleware.Issuer{{Issuer: env.iss.URL(), JWKSURI: env.jwksURL}},
			TokenCacheSize:    2 * n, // shards fill unevenly: room so none evicts
			DisableTokenCache: !cache,
		})
		if err != nil {
			tb.Fatal(err)
		}
		defer guard.Close()
		h := guard.Require(scope)(noop)
		h1 := liveHeap()
		w := newDiscard()
		for _, tok := range toks {
			h.ServeHTTP(w, request(tok))
		}
		h2 := liveHeap()
		runtime.KeepAlive(guard)
		return h1 - h0, h2 - h1
	}
	offMade, offFilled := measure(false)
	onMade, onFilled := measure(true)
	return float64(onFilled-offFilled) / float64(n), float64(onMade-offMade) / float64(2*n)
}

// TestTokenCacheBytes reports the verified-token cache's cost per entry
// and fails only if it is far beyond the estimate (a Principal with its
// claims, a few hundred bytes), which would mean entries leak or retain
// the whole request.
func TestTokenCacheBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("serves thousands of tokens; skipped with -short")
	}
	perEntry, perSlot := tokenCacheBytes(t, 5000)
	t.Logf("verified-token cache: %.0f bytes per cached token, plus %.0f bytes per configured slot (preallocated)", perEntry, perSlot)
	if perEntry <= 0 || perEntry > 4096 {
		t.Errorf("%.0f bytes per cached token: expected a few hundred", perEntry)
	}
}

// BenchmarkMemory reports the memory figures as benchmark metrics for
// run.sh. It measures once per call whatever b.N is: run it with
// -benchtime 1x.
func BenchmarkMemory(b *testing.B) {
	b.Run("replay-store", func(b *testing.B) {
		total := replayStoreBytes(b, replayMillion)
		b.ReportMetric(float64(total)/replayMillion, "B/entry")
		b.ReportMetric(float64(total)/1e6, "MB/1M-entries")
	})
	b.Run("token-cache", func(b *testing.B) {
		perEntry, perSlot := tokenCacheBytes(b, 5000)
		b.ReportMetric(perEntry, "B/entry")
		b.ReportMetric(perSlot, "B/slot")
	})
}
