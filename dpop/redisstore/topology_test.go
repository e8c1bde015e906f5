package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
	// failover (a record not yet replicated would be lost:
	// TestSentinelUnreplicatedRecords).
	if err := st.WaitReplicated(); err != nil {
		t.Fatal(err)
	}

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

// measureWait times a SET alone and a SET pipelined with WAIT 1 100
// (block until one replica acknowledges, at most 100 ms), each on one
// connection through the Sentinel URL as a store that waited would send
// them, and logs the medians and 99th percentiles.
func measureWait(t *testing.T, rawURL string) {
	t.Helper()
	c, err := redisurl.NewClient(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	conn := c.(*redis.Client).Conn()
	defer conn.Close()
	const n = 500
	run := func(wait bool) (p50, p99 time.Duration, acked int) {
		ds := make([]time.Duration, 0, n)
		for i := range n {
			key := "tokenguard:test:wait:" + strconv.Itoa(i)
			start := time.Now()
			var w *redis.Cmd
			_, err := conn.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, "1", time.Minute)
				if wait {
					w = p.Do(ctx, "WAIT", 1, 100)
				}
				return nil
			})
			ds = append(ds, time.Since(start))
			if err != nil {
				t.Fatal(err)
			}
			if wait {
				k, _ := w.Int()
				acked += k
			}
		}
		slices.Sort(ds)
		return ds[n/2], ds[n*99/100], acked
	}
	p50, p99, _ := run(false)
	w50, w99, acked := run(true)
	t.Logf("SET alone: p50 %v p99 %v; SET + WAIT 1 100: p50 %v p99 %v (%d/%d acknowledged by the replica)",
		p50, p99, w50, w99, acked, n)
}

// TestClusterAsk: while a slot migrates (CLUSTER SETSLOT IMPORTING on the
// target, MIGRATING on the source), a proof whose record has already
// moved is refused as a replay through the source's ASK redirection; a
// new proof in that slot fails closed, because Redis answers TRYAGAIN to
// a multi-key script whose keys are not all on one node (the record and
// the key's counter); once the slot has moved, new proofs are recorded
// on the target and refused at the other replica.
func TestClusterAsk(t *testing.T) {
	c, err := redistest.StartCluster(t.TempDir(), 3)
	skipOrFatal(t, err)
	t.Cleanup(c.Close)
	a, b := urlStore(t, c.URL()), urlStore(t, c.URL())
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)

	moved := replayOf(newID(), exp)
	if err := a.Use(ctx, moved); err != nil {
		t.Fatal(err)
	}
	if err := b.Use(ctx, replayOf(newID(), exp)); err != nil { // b learns the slot map
		t.Fatal(err)
	}
	record, counter := a.keys(moved)
	slotText, err := redistest.Do(c.Nodes[0].Addr(), "CLUSTER", "KEYSLOT", record)
	if err != nil {
		t.Fatal(err)
	}
	slot, _ := strconv.Atoi(slotText)
	src := c.Nodes[slot*3/16384]
	dst := c.Nodes[(slot*3/16384+1)%3]
	srcID, err1 := redistest.Do(src.Addr(), "CLUSTER", "MYID")
	dstID, err2 := redistest.Do(dst.Addr(), "CLUSTER", "MYID")
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []struct {
		node *redistest.Server
		args []string
	}{
		{dst, []string{"CLUSTER", "SETSLOT", slotText, "IMPORTING", srcID}},
		{src, []string{"CLUSTER", "SETSLOT", slotText, "MIGRATING", dstID}},
		{src, []string{"MIGRATE", "127.0.0.1", strconv.Itoa(dst.Port()), "", "0", "1000", "KEYS", record, counter}},
	} {
		if _, err := redistest.Do(cmd.node.Addr(), cmd.args...); err != nil {
			t.Fatalf("%v on %s: %v", cmd.args, cmd.node.Addr(), err)
		}
	}
	keysIn := func(n *redistest.Server) string {
		v, _ := redistest.Do(n.Addr(), "CLUSTER", "COUNTKEYSINSLOT", slotText)
		return v
	}
	if s, d := keysIn(src), keysIn(dst); s != "0" || d != "2" {
		t.Fatalf("keys in slot %d: %s on the source, %s on the target; want 0 and 2", slot, s, d)
	}

	// The source answers ASK (the keys are gone from it); the target
	// serves the script after ASKING.
	if err := b.Use(ctx, moved); !errors.Is(err, dpop.ErrReplay) {
		t.Fatalf("replay of a migrated record, through ASK: %v, want ErrReplay", err)
	}
	// A new proof of the same key: the source has none of its keys and
	// answers ASK; the target has the counter but not the record, and
	// answers TRYAGAIN. go-redis retries, then gives up: 503, not 2xx.
	fresh := dpop.Replay{ID: newID(), Key: moved.Key, Expires: exp}
	start := time.Now()
	err = a.Use(ctx, fresh)
	if !errors.Is(err, dpop.ErrStoreUnavailable) || !strings.Contains(err.Error(), "TRYAGAIN") {
		t.Fatalf("a new proof in the migrating slot: %v, want ErrStoreUnavailable (TRYAGAIN)", err)
	}
	t.Logf("a new proof in the migrating slot: %v after %v", err, time.Since(start).Round(time.Millisecond))

	// The migration ends: the target owns the slot (as in TestCluster's
	// MOVED step).
	if _, err := redistest.Do(dst.Addr(), "CLUSTER", "SETSLOT", slotText, "NODE", dstID); err != nil {
		t.Fatal(err)
	}
	if _, err := redistest.Do(dst.Addr(), "CLUSTER", "BUMPEPOCH"); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		if _, err := redistest.Do(n.Addr(), "CLUSTER", "SETSLOT", slotText, "NODE", dstID); err != nil {
			t.Fatalf("SETSLOT on %s: %v", n.Addr(), err)
		}
	}
	if err := a.Use(ctx, fresh); err != nil {
		t.Fatalf("a new proof after the slot moved: %v", err)
	}
	for _, r := range []dpop.Replay{fresh, moved} {
		if err := b.Use(ctx, r); !errors.Is(err, dpop.ErrReplay) {
			t.Fatalf("replay at the other replica after the slot moved: %v, want ErrReplay", err)
		}
	}
	freshRecord, _ := a.keys(fresh)
	if n, _ := redistest.Do(dst.Addr(), "EXISTS", freshRecord); n != "1" {
		t.Fatalf("the new record is not on the target (EXISTS = %q)", n)
	}
	if s, d := keysIn(src), keysIn(dst); s != "0" || d != "3" {
		t.Fatalf("keys in slot %d: %s on the source, %s on the target; want 0 and 3", slot, s, d)
	}
}

// TestSentinelCredentials: with a password on the sentinels and another
// on the master and replica, a redis+sentinel:// URL carries the
// sentinels' in its authority and the master's as password=; each is
// needed where it belongs, and a store whose credentials are wrong fails
// closed without quoting either.
func TestSentinelCredentials(t *testing.T) {
	o := redistest.SentinelOptions{
		MasterPassword:   "master/" + randomHex(8),
		SentinelPassword: "sentinel/" + randomHex(8),
	}
	st, err := redistest.StartSentinelWith(t.TempDir(), o)
	skipOrFatal(t, err)
	t.Cleanup(st.Close)
	sentinelURL := func(sentinelPW, masterPW string) string {
		q := url.Values{"master_name": {redistest.MasterName}}
		if masterPW != "" {
			q.Set("password", masterPW)
		}
		for _, s := range st.Sentinels[1:] {
			q.Add("addr", s.Addr())
		}
		u := url.URL{Scheme: "redis+sentinel", Host: st.Sentinels[0].Addr(), RawQuery: q.Encode()}
		if sentinelPW != "" {
			u.User = url.UserPassword("", sentinelPW)
		}
		return u.String()
	}
	exp := time.Now().Add(time.Minute)
	for _, tc := range []struct {
		name                 string
		sentinelPW, masterPW string
		want                 string // "" for a store that works, else part of its ErrStoreUnavailable
	}{
		{"both right", o.SentinelPassword, o.MasterPassword, ""},
		{"master password wrong", o.SentinelPassword, "wrong", "WRONGPASS"},
		{"master password missing", o.SentinelPassword, "", "NOAUTH"},
		{"sentinel password wrong", "wrong", o.MasterPassword, "WRONGPASS"},
		{"sentinel password missing", "", o.MasterPassword, "NOAUTH"},
		{"passwords swapped", o.MasterPassword, o.SentinelPassword, "WRONGPASS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := sentinelURL(tc.sentinelPW, tc.masterPW)
			if tc.name == "both right" && raw != st.URL() {
				t.Fatalf("URL %s, redistest's %s", raw, st.URL())
			}
			a, b := urlStore(t, raw), urlStore(t, raw)
			r := replayOf(newID(), exp)
			err := a.Use(t.Context(), r)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := b.Use(t.Context(), r); !errors.Is(err, dpop.ErrReplay) {
					t.Fatalf("replay at the other replica: %v, want ErrReplay", err)
				}
				return
			}
			if !errors.Is(err, dpop.ErrStoreUnavailable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Use = %v, want ErrStoreUnavailable saying %s", err, tc.want)
			}
			for _, pw := range []string{o.MasterPassword, o.SentinelPassword} {
				if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), url.QueryEscape(pw)) {
					t.Fatalf("the error quotes a password: %v", err)
				}
			}
		})
	}
}

// TestSentinelUnreplicatedRecords measures what "a proof is accepted
// once" (RFC 9449, section 11.1) means when the replay store is a Redis
// master whose replica, behind Sentinel, is written asynchronously.
//
// Proofs are recorded and replicated; then the replica's link is cut (the
// replica is paused, so it cannot reconnect, and the master drops its
// connection), more proofs are offered, the master dies and the sentinels
// promote the replica. Throughout, no call succeeds unless the replica
// has become the master: the store fails closed (503) while there is
// none. Proofs replicated before the cut are refused after the failover.
//
//   - With asynchronous replication (Redis's default), every proof
//     acknowledged after the cut is accepted a second time after the
//     failover: the replay window the package documentation describes.
//     WAIT 1 100 after each write returns 0 (no replica acknowledged)
//     after its full 100 ms.
//   - With min-replicas-to-write 1 and min-replicas-max-lag 1 on the
//     master, it refuses writes once no replica is connected and
//     acknowledging: the proofs after the cut get 503 and none is lost.
//     A replica that goes silent without its connection closing
//     (paused: a hung host or a partition) stops writes within about
//     max-lag plus one second; the writes accepted in between are the
//     window.
func TestSentinelUnreplicatedRecords(t *testing.T) {
	for _, tc := range []struct {
		name        string
		minReplicas bool
	}{
		{"asynchronous replication", false},
		{"min-replicas-to-write 1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, err := redistest.StartSentinel(t.TempDir())
			skipOrFatal(t, err)
			t.Cleanup(st.Close)
			if tc.minReplicas {
				// On the master only: a promoted replica with the same
				// setting would refuse writes until a replica attaches to
				// it (here, the old master restarted, which Sentinel
				// reconfigures only after some 10 s).
				if _, err := st.Master.Do("CONFIG", "SET", "min-replicas-to-write", "1", "min-replicas-max-lag", "1"); err != nil {
					t.Fatal(err)
				}
			}
			a, b := urlStore(t, st.URL()), urlStore(t, st.URL())
			ctx := t.Context()
			exp := time.Now().Add(time.Minute)

			var before []dpop.Replay
			for i := range 20 {
				r := dpop.NewReplay("jkt", fmt.Sprintf("before-%d", i), exp)
				if err := a.Use(ctx, r); err != nil {
					t.Fatal(err)
				}
				before = append(before, r)
			}
			if err := st.WaitReplicated(); err != nil {
				t.Fatal(err)
			}
			if tc.minReplicas {
				silentReplica(t, st, a, before[0])
				if err := st.WaitReplicated(); err != nil {
					t.Fatal(err)
				}
			}

			// Cut the link: the paused replica cannot reconnect, so
			// nothing the master writes from now on reaches it.
			if err := st.Replica.Pause(); errors.Is(err, errors.ErrUnsupported) {
				t.Skip("needs SIGSTOP")
			} else if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Master.Do("CLIENT", "KILL", "TYPE", "replica"); err != nil {
				t.Fatal(err)
			}
			waitInfo(t, st.Master, "connected_slaves", "0")
			if !tc.minReplicas {
				waitWithoutReplica(t, st)
			}

			var acked, refused []dpop.Replay
			var refusal error
			for i := range 20 {
				r := dpop.NewReplay("jkt", fmt.Sprintf("after-%d", i), exp)
				switch err := a.Use(ctx, r); {
				case err == nil:
					acked = append(acked, r)
				case errors.Is(err, dpop.ErrStoreUnavailable):
					refused, refusal = append(refused, r), err
				default:
					t.Fatalf("proof %d after the cut: %v", i, err)
				}
			}
			switch {
			case !tc.minReplicas && len(acked) != 20:
				t.Fatalf("%d of 20 proofs acknowledged after the cut, want all (last refusal: %v)", len(acked), refusal)
			case tc.minReplicas && (len(refused) != 20 || !strings.Contains(refusal.Error(), "NOREPLICAS")):
				t.Fatalf("%d of 20 proofs refused after the cut (%v), want all, with NOREPLICAS", len(refused), refusal)
			}

			killed := time.Now()
			if err := st.Master.Kill(); err != nil {
				t.Fatal(err)
			}
			if err := st.Replica.Resume(); err != nil {
				t.Fatal(err)
			}
			var promoted, resumed time.Duration
			failed := 0
			for i := 0; ; i++ {
				if time.Since(killed) > 20*time.Second {
					t.Fatalf("service did not resume within 20s of the master's death (%d calls failed closed)", failed)
				}
				old := before[i%len(before)]
				if err := b.Use(ctx, old); err == nil {
					t.Fatalf("a replicated proof was accepted again %v after the master died", time.Since(killed))
				} else if !errors.Is(err, dpop.ErrReplay) && !errors.Is(err, dpop.ErrStoreUnavailable) {
					t.Fatalf("replicated proof: %v", err)
				}
				err := a.Use(ctx, replayOf(newID(), exp))
				if promoted == 0 && st.Replica.Replication("role") == "master" {
					promoted = time.Since(killed)
				}
				if err == nil {
					// Only the promoted replica can have recorded it: the
					// old master is dead, and a replica refuses writes.
					if st.Replica.Replication("role") != "master" {
						t.Fatalf("a proof was accepted %v after the master died, with no master (the replica's role: %s)",
							time.Since(killed), st.Replica.Replication("role"))
					}
					resumed = time.Since(killed)
					break
				}
				if !errors.Is(err, dpop.ErrStoreUnavailable) {
					t.Fatalf("during the failover: %v, want ErrStoreUnavailable", err)
				}
				failed++
				time.Sleep(50 * time.Millisecond)
			}
			if failed == 0 {
				t.Fatal("no call failed while there was no master: the test proved nothing")
			}
			waitStore(t, b) // b learns the new master too
			if m, _ := st.MasterAddr(); m != st.Replica.Addr() {
				t.Fatalf("sentinels name %s as master, want the promoted replica %s", m, st.Replica.Addr())
			}
			for i, r := range before {
				if err := b.Use(ctx, r); !errors.Is(err, dpop.ErrReplay) {
					t.Fatalf("proof %d, replicated before the cut, after the failover: %v, want ErrReplay", i, err)
				}
			}
			lost := 0
			for _, r := range acked {
				if err := b.Use(ctx, r); err == nil {
					lost++
					if err := b.Use(ctx, r); !errors.Is(err, dpop.ErrReplay) {
						t.Fatalf("a lost proof, used a third time: %v, want ErrReplay", err)
					}
				} else if !errors.Is(err, dpop.ErrReplay) {
					t.Fatal(err)
				}
			}
			if lost != len(acked) {
				t.Fatalf("%d of the %d proofs acknowledged after the cut were accepted again; the replica never had them", lost, len(acked))
			}
			t.Logf("after the cut: %d proofs acknowledged, %d refused (503); failover: %d calls failed closed, replica promoted %v and service resumed %v after the master was killed; "+
				"accepted again after the failover: %d (lost records), of the %d replicated before the cut: 0",
				len(acked), len(refused), failed, promoted.Round(time.Millisecond), resumed.Round(time.Millisecond), lost, len(before))
		})
	}
}

// silentReplica pauses the replica without closing its connection (a
// hung host, or a partition that drops packets) and measures how long,
// and for how many proofs, a master with min-replicas-to-write keeps
// accepting writes: until the replica's last acknowledgement is older
// than min-replicas-max-lag. Those proofs could be lost in a failover.
// Then a recorded proof must still be refused (never accepted), and once
// the replica runs again writes must resume.
func silentReplica(t *testing.T, st *redistest.Sentinel, s *Store, recorded dpop.Replay) {
	t.Helper()
	ctx := t.Context()
	exp := time.Now().Add(time.Minute)
	paused := time.Now()
	if err := st.Replica.Pause(); errors.Is(err, errors.ErrUnsupported) {
		t.Skip("needs SIGSTOP")
	} else if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	var refusal error
	for refusal == nil {
		if time.Since(paused) > 6*time.Second {
			t.Fatalf("%d writes accepted over 6s with the replica silent: min-replicas-max-lag 1 did not stop them", accepted)
		}
		switch err := s.Use(ctx, replayOf(newID(), exp)); {
		case err == nil:
			accepted++
			time.Sleep(10 * time.Millisecond)
		case errors.Is(err, dpop.ErrStoreUnavailable) && strings.Contains(err.Error(), "NOREPLICAS"):
			refusal = err
		default:
			t.Fatalf("with the replica silent: %v, want nil or ErrStoreUnavailable (NOREPLICAS)", err)
		}
	}
	window := time.Since(paused)
	if err := s.Use(ctx, recorded); err == nil {
		t.Fatal("a recorded proof was accepted while the master refused writes")
	} else if !errors.Is(err, dpop.ErrReplay) && !errors.Is(err, dpop.ErrStoreUnavailable) {
		t.Fatal(err)
	}
	if err := st.Replica.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	deadline := resumed.Add(5 * time.Second)
	for s.Use(ctx, replayOf(newID(), exp)) != nil {
		if time.Now().After(deadline) {
			t.Fatal("writes did not resume within 5s of the replica's return")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("replica silent, min-replicas-max-lag 1: %d proofs accepted over %v, then writes refused (%v); writes resumed %v after the replica did",
		accepted, window.Round(time.Millisecond), refusal, time.Since(resumed).Round(time.Millisecond))
}

// waitWithoutReplica measures what WAIT 1 100 does with no replica
// connected: after each write, on the connection that made it, it
// returns 0 (no replica acknowledged) once its timeout passes. A store
// that refused a proof on 0 would fail closed, after 100 ms, for every
// proof while no replica is connected.
func waitWithoutReplica(t *testing.T, st *redistest.Sentinel) {
	t.Helper()
	c, err := redisurl.NewClient(st.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := t.Context()
	conn := c.(*redis.Client).Conn()
	defer conn.Close()
	const n = 5
	var slowest, fastest time.Duration
	for i := range n {
		start := time.Now()
		var wait *redis.Cmd
		_, err := conn.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "tokenguard:test:nowait:"+strconv.Itoa(i), "1", time.Minute)
			wait = p.Do(ctx, "WAIT", 1, 100)
			return nil
		})
		d := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if k, _ := wait.Int(); k != 0 {
			t.Fatalf("WAIT 1 100 with the replica cut off: %d acknowledged, want 0", k)
		}
		if d < 100*time.Millisecond {
			t.Fatalf("WAIT 1 100 returned after %v, before its timeout", d)
		}
		if fastest == 0 || d < fastest {
			fastest = d
		}
		slowest = max(slowest, d)
	}
	t.Logf("SET + WAIT 1 100 with the replica cut off: 0 replicas acknowledged, each of %d after %v to %v", n,
		fastest.Round(time.Millisecond), slowest.Round(time.Millisecond))
}

// waitStore waits, bounded, until s records a new proof.
func waitStore(t *testing.T, s *Store) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.Use(t.Context(), replayOf(newID(), time.Now().Add(time.Minute)))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store does not record proofs 5s on: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitInfo waits, bounded, until s's INFO replication reports field as
// want.
func waitInfo(t *testing.T, s *redistest.Server, field, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := s.Replication(field)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s is %s after 5s, want %s", s.Addr(), field, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
