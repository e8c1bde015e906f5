package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/redistest"
	"github.com/tokenguard/tokenguard/internal/redisurl"
)

// urlStore returns a Store made by NewFromURL, closed when the test ends:
// what one gateway replica makes from its dpop.replay_store.
func urlStore(tb testing.TB, rawURL string) *Store {
	tb.Helper()
	s, err := NewFromURL(rawURL, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func skipOrFatal(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, redistest.ErrNotInstalled) {
		tb.Skip(err)
	}
	if err != nil {
		tb.Fatal(err)
	}
}

// TestCluster: against a three-master Cluster, two stores (two gateway
// replicas) made from one redis+cluster:// URL refuse proofs replayed
// across them, the records spread over the masters, and a MOVED
// redirection (a slot moved after the client learnt the slot map) is
// followed.
func TestCluster(t *testing.T) {
	c, err := redistest.StartCluster(t.TempDir(), 3)
	skipOrFatal(t, err)
	t.Cleanup(c.Close)
	a, b := urlStore(t, c.URL()), urlStore(t, c.URL())
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)

	// MOVED: both clients learn the slot map, then a slot no record uses
	// yet moves to the next master, and a's next call lands on the old
	// owner first.
	if err := a.Use(ctx, replayOf(newID(), exp)); err != nil {
		t.Fatal(err)
	}
	if err := b.Use(ctx, replayOf(newID(), exp)); err != nil {
		t.Fatal(err)
	}
	moved := replayOf(newID(), exp)
	record, _ := a.keys(moved)
	slotText, err := redistest.Do(c.Nodes[0].Addr(), "CLUSTER", "KEYSLOT", record)
	if err != nil {
		t.Fatal(err)
	}
	slot, _ := strconv.Atoi(slotText)
	from := slot * 3 / 16384
	if n, _ := redistest.Do(c.Nodes[from].Addr(), "CLUSTER", "COUNTKEYSINSLOT", slotText); n != "0" {
		t.Fatalf("slot %d holds %s keys already", slot, n)
	}
	to := c.Nodes[(from+1)%3]
	toID, err := redistest.Do(to.Addr(), "CLUSTER", "MYID")
	if err != nil {
		t.Fatal(err)
	}
	// The new owner claims the slot and then takes the cluster's highest
	// config epoch, so gossip that still carries the old claim (a node
	// not yet told) loses to it instead of taking the slot back, which
	// would leave the two owners sending MOVED to each other.
	if _, err := redistest.Do(to.Addr(), "CLUSTER", "SETSLOT", slotText, "NODE", toID); err != nil {
		t.Fatalf("SETSLOT on %s: %v", to.Addr(), err)
	}
	if _, err := redistest.Do(to.Addr(), "CLUSTER", "BUMPEPOCH"); err != nil {
		t.Fatalf("BUMPEPOCH on %s: %v", to.Addr(), err)
	}
	for _, n := range c.Nodes {
		if _, err := redistest.Do(n.Addr(), "CLUSTER", "SETSLOT", slotText, "NODE", toID); err != nil {
			t.Fatalf("SETSLOT on %s: %v", n.Addr(), err)
		}
	}
	if err := a.Use(ctx, moved); err != nil {
		t.Fatalf("after the slot moved: %v", err)
	}
	if err := b.Use(ctx, moved); !errors.Is(err, dpop.ErrReplay) {
		t.Fatalf("replay at the other replica after the slot moved: %v, want ErrReplay", err)
	}
	if n, _ := redistest.Do(to.Addr(), "EXISTS", record); n != "1" {
		t.Fatalf("the record is not on the slot's new owner (EXISTS = %q)", n)
	}

	// Many keys: each proof recorded once, refused at the other replica.
	const proofs = 300
	for i := range proofs {
		r := dpop.NewReplay(fmt.Sprintf("jkt-%d", i), "jti", exp)
		if err := a.Use(ctx, r); err != nil {
			t.Fatalf("proof %d: %v", i, err)
		}
		if err := b.Use(ctx, r); !errors.Is(err, dpop.ErrReplay) {
			t.Fatalf("proof %d replayed at the other replica: %v, want ErrReplay", i, err)
		}
	}
	var sizes []int
	for _, n := range c.Nodes {
		v, err := redistest.Do(n.Addr(), "DBSIZE")
		if err != nil {
			t.Fatal(err)
		}
		k, _ := strconv.Atoi(v)
		sizes = append(sizes, k)
	}
	busy := 0
	for _, k := range sizes {
		if k > 0 {
			busy++
		}
	}
	if busy < 2 {
		t.Fatalf("records on %d masters only: keys per master %v", busy, sizes)
	}
	t.Logf("keys per master after %d proofs (record + counter each): %v", proofs, sizes)
}

// TestSentinel: against a master, a replica and three sentinels, two
// stores made from one redis+sentinel:// URL refuse proofs replayed across
// them; WAIT's cost is measured; then the master is killed, and while the
// sentinels promote the replica every call fails closed (an error
// wrapping dpop.ErrStoreUnavailable, never nil for a recorded proof) and
// service resumes by itself.
func TestSentinel(t *testing.T) {
	st, err := redistest.StartSentinel(t.TempDir())
	skipOrFatal(t, err)
	t.Cleanup(st.Close)
	a, b := urlStore(t, st.URL()), urlStore(t, st.URL())
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)

	var recorded []dpop.Replay
	for i := range 100 {
		r := dpop.NewReplay(fmt.Sprintf("jkt-%d", i%10), fmt.Sprintf("jti-%d", i), exp)
		if err := a.Use(ctx, r); err != nil {
			t.Fatalf("proof %d: %v", i, err)
		}
		if err := b.Use(ctx, r); !errors.Is(err, dpop.ErrReplay) {
			t.Fatalf("proof %d replayed at the other replica: %v, want ErrReplay", i, err)
		}
		recorded = append(recorded, r)
	}

	measureWait(t, st.URL())

	// Let the replica catch up, so every recorded proof survives the
	// failover (a record not yet replicated would be lost: see the
	// package documentation).
	waitReplicated(t, st)

	killed := time.Now()
	if err := st.Master.Kill(); err != nil {
		t.Fatal(err)
	}
	const bound = 15 * time.Second
	var firstErr, resumed time.Time
	errs := 0
	for i := 0; ; i++ {
		if time.Since(killed) > bound {
			t.Fatalf("service did not resume within %v of the master's death (%d calls failed)", bound, errs)
		}
		old := recorded[i%len(recorded)]
		for _, s := range []*Store{a, b} {
			if err := s.Use(ctx, old); err == nil {
				t.Fatalf("a recorded proof was accepted %v after the master died", time.Since(killed))
			} else if !errors.Is(err, dpop.ErrReplay) && !errors.Is(err, dpop.ErrStoreUnavailable) {
				t.Fatalf("recorded proof: %v", err)
			}
		}
		fresh := replayOf(newID(), exp)
		err := a.Use(ctx, fresh)
		if err == nil {
			resumed = time.Now()
			if err := b.Use(ctx, fresh); !errors.Is(err, dpop.ErrReplay) {
				t.Fatalf("after the failover, a proof replayed at the other replica: %v", err)
			}
			break
		}
		if !errors.Is(err, dpop.ErrStoreUnavailable) {
			t.Fatalf("during the failover: %v, want ErrStoreUnavailable", err)
		}
		if errs == 0 {
			firstErr = time.Now()
		}
		errs++
		time.Sleep(50 * time.Millisecond)
	}
	newMaster, _ := st.MasterAddr()
	if newMaster != st.Replica.Addr() {
		t.Fatalf("sentinels name %s as master, want the promoted replica %s", newMaster, st.Replica.Addr())
	}
	// Every proof recorded (and replicated) before the failover is still
	// refused, at both replicas.
	for i, r := range recorded {
		for _, s := range []*Store{a, b} {
			if err := s.Use(ctx, r); !errors.Is(err, dpop.ErrReplay) {
				t.Fatalf("recorded proof %d after the failover: %v, want ErrReplay", i, err)
			}
		}
	}
	if errs == 0 {
		t.Fatal("no call failed while the master was dead: the test proved nothing")
	}
	t.Logf("master killed; %d calls failed closed (first after %v); service resumed %v after the kill, on %s",
		errs, firstErr.Sub(killed).Round(time.Millisecond), resumed.Sub(killed).Round(time.Millisecond), newMaster)
}

// waitReplicated waits, bounded, until the replica has everything the
// master wrote.
func waitReplicated(t *testing.T, st *redistest.Sentinel) {
	t.Helper()
	offset := func(addr, field string) string {
		info, _ := redistest.Do(addr, "INFO", "replication")
		for _, l := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(l, field+":"); ok {
				return v
			}
		}
		return "?"
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, r := offset(st.Master.Addr(), "master_repl_offset"), offset(st.Replica.Addr(), "slave_repl_offset")
		if m == r && m != "?" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica at offset %s, master at %s, after 5s", r, m)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// measureWait times a SET alone and a SET followed by WAIT 1 100 (block
// until one replica acknowledges, at most 100 ms) through the Sentinel
// URL, and logs the medians and 99th percentiles.
func measureWait(t *testing.T, rawURL string) {
	t.Helper()
	c, err := redisurl.NewClient(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	const n = 500
	run := func(wait bool) (p50, p99 time.Duration, acked int) {
		ds := make([]time.Duration, 0, n)
		for i := range n {
			start := time.Now()
			if err := c.Set(ctx, "tokenguard:test:wait:"+strconv.Itoa(i), "1", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			if wait {
				k, err := c.Do(ctx, "WAIT", 1, 100).Int()
				if err != nil {
					t.Fatal(err)
				}
				acked += k
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[n/2], ds[n*99/100], acked
	}
	p50, p99, _ := run(false)
	w50, w99, acked := run(true)
	t.Logf("SET alone: p50 %v p99 %v; SET + WAIT 1 100: p50 %v p99 %v (%d/%d acknowledged by the replica)",
		p50, p99, w50, w99, acked, n)
}
