package dpop

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMemoryReplayStore(t *testing.T) {
	s, err := NewMemoryReplayStore(memoryShards) // one entry per shard
	if err != nil {
		t.Fatal(err)
	}
	now := testNow
	s.now = func() time.Time { return now }
	ctx := context.Background()
	a, b := NewReplayID("k1", "j1"), NewReplayID("k2", "j1")
	if NewReplayID("k1", "j1") != a || a == b || NewReplayID("k1j", "1") == NewReplayID("k1", "j1") {
		t.Fatal("NewReplayID does not separate key and jti")
	}
	if err := s.Use(ctx, replayOf(a, now.Add(time.Minute))); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := s.Use(ctx, replayOf(a, now.Add(time.Minute))); !errors.Is(err, ErrReplay) {
		t.Fatalf("second use = %v, want ErrReplay", err)
	}
	// Fill a's shard: another id landing there is refused, not evicting a.
	same := sameShard(t, a)
	if err := s.Use(ctx, replayOf(same, now.Add(time.Minute))); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("use in a full shard = %v, want ErrStoreFull", err)
	}
	if s.Refused() != 1 {
		t.Errorf("Refused() = %d, want 1", s.Refused())
	}
	if err := s.Use(ctx, replayOf(a, now.Add(time.Minute))); !errors.Is(err, ErrReplay) {
		t.Fatalf("a was evicted: %v", err)
	}
	// At its expiry instant a is still live (the verifier still accepts
	// its proof then); just after, its slot is reclaimed.
	now = now.Add(time.Minute)
	if err := s.Use(ctx, replayOf(a, now.Add(time.Minute))); !errors.Is(err, ErrReplay) {
		t.Fatalf("a at its expiry instant = %v, want ErrReplay", err)
	}
	now = now.Add(time.Nanosecond)
	if err := s.Use(ctx, replayOf(same, now.Add(time.Minute))); err != nil {
		t.Fatalf("use after expiry freed the shard: %v", err)
	}
	if s.Len() != 1 {
		t.Errorf("Len() = %d after reclaiming, want 1", s.Len())
	}
	if err := s.Use(ctx, replayOf(a, now.Add(time.Minute))); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("a's shard is full again, got %v", err)
	}
	if _, err := NewMemoryReplayStore(0); err == nil {
		t.Error("NewMemoryReplayStore(0) succeeded")
	}
}

// sameShard finds another ReplayID in id's shard.
func sameShard(t *testing.T, id ReplayID) ReplayID {
	for i := range 10_000 {
		o := NewReplayID("other", fmt.Sprint(i))
		if o[0]%memoryShards == id[0]%memoryShards {
			return o
		}
	}
	t.Fatal("no id in the same shard")
	return ReplayID{}
}

// TestMemoryReplayStoreExpiryWithoutSweep: an expired record neither
// blocks its id nor fills its shard, even before the periodic sweep.
func TestMemoryReplayStoreExpiryWithoutSweep(t *testing.T) {
	s, err := NewMemoryReplayStore(memoryShards) // one entry per shard
	if err != nil {
		t.Fatal(err)
	}
	now := testNow
	s.now = func() time.Time { return now }
	ctx := context.Background()
	a := NewReplayID("k", "a")
	if err := s.Use(ctx, replayOf(a, now.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second) // expired, but well before sweepInterval
	if err := s.Use(ctx, replayOf(a, now.Add(time.Second))); err != nil {
		t.Fatalf("expired id used again: %v, want nil", err)
	}
	now = now.Add(2 * time.Second)
	if err := s.Use(ctx, replayOf(sameShard(t, a), now.Add(time.Second))); err != nil {
		t.Fatalf("shard full of expired records: %v, want nil", err)
	}
}

func TestMemoryReplayStoreSweepsExpired(t *testing.T) {
	s, err := NewMemoryReplayStore(10_000)
	if err != nil {
		t.Fatal(err)
	}
	now := testNow
	s.now = func() time.Time { return now }
	for i := range 5000 {
		if err := s.Use(context.Background(), replayOf(NewReplayID("k", fmt.Sprint(i)), now.Add(time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(sweepInterval + time.Second)
	// Each shard sweeps when next used after its interval.
	for i := range 5000 {
		_ = s.Use(context.Background(), replayOf(NewReplayID("k2", fmt.Sprint(i)), now.Add(time.Second)))
	}
	if n := s.Len(); n != 5000 {
		t.Errorf("Len() = %d after the old entries expired, want 5000", n)
	}
}

func TestMemoryReplayStoreConcurrent(t *testing.T) {
	s, err := NewMemoryReplayStore(1000)
	if err != nil {
		t.Fatal(err)
	}
	id := NewReplayID("k", "contested")
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := s.Use(context.Background(), replayOf(id, time.Now().Add(time.Minute))); {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, ErrReplay):
				t.Errorf("Use = %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent uses of one id succeeded, want 1", wins.Load())
	}
}

// TestMemoryReplayStoreBytesPerEntry measures the store's memory cost; the
// README quotes it. It fails only if the cost is far above the estimate.
func TestMemoryReplayStoreBytesPerEntry(t *testing.T) {
	const n = 200_000
	s, err := NewMemoryReplayStore(2 * n) // shards fill unevenly; leave room
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]ReplayID, n)
	for i := range ids {
		ids[i] = NewReplayID("k", fmt.Sprint(i))
	}
	exp := time.Now().Add(time.Hour)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, id := range ids {
		if err := s.Use(context.Background(), replayOf(id, exp)); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("in-memory replay store: %.0f bytes per entry (%d entries)", per, n)
	if per < 40 || per > 200 {
		t.Errorf("%.0f bytes per entry, expected 40 of data plus map overhead", per)
	}
	runtime.KeepAlive(s)
	runtime.KeepAlive(ids) // measured in both readings, so it must stay live
}

// replayOf is the Replay of id, its own proof key (so no quota is shared
// between ids), expiring at expires.
func replayOf(id ReplayID, expires time.Time) Replay {
	return Replay{ID: id, Key: KeyID(id), Expires: expires}
}

// TestMemoryReplayStoreKeyQuota: one key records at most its quota per
// window and then gets ErrKeyQuota, while other keys still record; the
// window ends with the first proof's lifetime.
func TestMemoryReplayStoreKeyQuota(t *testing.T) {
	s, err := NewMemoryReplayStoreQuota(1000, 10)
	if err != nil {
		t.Fatal(err)
	}
	now := testNow
	s.now = func() time.Time { return now }
	ctx := context.Background()
	use := func(jkt string, i int) error {
		return s.Use(ctx, NewReplay(jkt, fmt.Sprint(i), now.Add(time.Minute)))
	}
	for i := range 10 {
		if err := use("greedy", i); err != nil {
			t.Fatalf("proof %d of the quota: %v", i, err)
		}
	}
	if err := use("greedy", 10); !errors.Is(err, ErrKeyQuota) {
		t.Fatalf("proof over the quota = %v, want ErrKeyQuota", err)
	}
	// A replay is still a replay, not a quota refusal.
	if err := use("greedy", 3); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay of a recorded proof over the quota = %v, want ErrReplay", err)
	}
	if err := use("other", 0); err != nil {
		t.Fatalf("another key is refused: %v", err)
	}
	if n := s.Len(); n != 11 {
		t.Errorf("Len() = %d, want 11: a refused proof must not be recorded", n)
	}
	// The window ends with the first proof's lifetime.
	now = now.Add(time.Minute + time.Nanosecond)
	if err := use("greedy", 11); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	// A lower quota (a reload) applies from the next proof on.
	if err := s.SetKeyQuota(2); err != nil {
		t.Fatal(err)
	}
	if err := use("greedy", 12); err != nil {
		t.Fatalf("second proof of the lowered quota: %v", err)
	}
	if err := use("greedy", 13); !errors.Is(err, ErrKeyQuota) {
		t.Fatalf("third proof with quota 2 = %v, want ErrKeyQuota", err)
	}
	for _, bad := range []int{0, -1, 1 << 20} {
		if err := s.SetKeyQuota(bad); err == nil {
			t.Errorf("SetKeyQuota(%d) succeeded", bad)
		}
	}

	for _, bad := range [][2]int{{10, 0}, {10, 11}, {10, -1}} {
		if _, err := NewMemoryReplayStoreQuota(bad[0], bad[1]); err == nil {
			t.Errorf("NewMemoryReplayStoreQuota(%d, %d) succeeded", bad[0], bad[1])
		}
	}
	if got := DefaultKeyQuota(DefaultReplayStoreSize); got != DefaultReplayStoreSize/16 {
		t.Errorf("DefaultKeyQuota = %d", got)
	}
}

// TestMemoryReplayStoreFillByOneKey is the attack: one key, proof after
// proof, cannot take the store from everyone else.
func TestMemoryReplayStoreFillByOneKey(t *testing.T) {
	s, err := NewMemoryReplayStore(64 * 100)
	if err != nil {
		t.Fatal(err)
	}
	now := testNow
	s.now = func() time.Time { return now }
	ctx := context.Background()
	refused := 0
	for i := range 64 * 100 {
		if err := s.Use(ctx, NewReplay("attacker", fmt.Sprint(i), now.Add(5*time.Minute))); errors.Is(err, ErrKeyQuota) {
			refused++
		}
	}
	if want := 64*100 - DefaultKeyQuota(64*100); refused != want {
		t.Errorf("refused %d of the attacker's proofs, want %d", refused, want)
	}
	for i := range 100 {
		if err := s.Use(ctx, NewReplay(fmt.Sprint("client-", i), "j", now.Add(5*time.Minute))); err != nil {
			t.Fatalf("client %d refused after the attack: %v", i, err)
		}
	}
}
