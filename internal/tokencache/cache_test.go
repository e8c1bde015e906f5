package tokencache

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

func key(i int) Key { return sha256.Sum256([]byte(fmt.Sprint(i))) }

var t0 = time.Unix(1_700_000_000, 0)

func TestGetAddExpiry(t *testing.T) {
	c, err := New[string](100)
	if err != nil {
		t.Fatal(err)
	}
	c.Add(key(1), "one", t0.Add(time.Minute), t0)
	tests := []struct {
		name string
		at   time.Time
		want bool
	}{
		{"before expiry", t0.Add(59 * time.Second), true},
		{"at expiry", t0.Add(time.Minute), false},
		{"after expiry", t0.Add(2 * time.Minute), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.Add(key(1), "one", t0.Add(time.Minute), t0)
			v, ok := c.Get(key(1), tt.at)
			if ok != tt.want || (ok && v != "one") {
				t.Errorf("Get = %q, %v; want hit=%v", v, ok, tt.want)
			}
		})
	}
	if _, ok := c.Get(key(2), t0); ok {
		t.Error("hit for a key never added")
	}
}

func TestAddExpiredIsNotStored(t *testing.T) {
	c, _ := New[int](16)
	c.Add(key(1), 1, t0, t0)
	c.Add(key(2), 2, t0.Add(-time.Second), t0)
	if n := c.Len(); n != 0 {
		t.Errorf("Len = %d after adding expired entries, want 0", n)
	}
}

func TestRemove(t *testing.T) {
	c, _ := New[int](16)
	c.Add(key(1), 1, t0.Add(time.Hour), t0)
	c.Remove(key(1))
	if _, ok := c.Get(key(1), t0); ok {
		t.Error("hit after Remove")
	}
}

func TestSizeBound(t *testing.T) {
	const size = 64
	c, _ := New[int](size)
	for i := range 10 * size {
		c.Add(key(i), i, t0.Add(time.Hour), t0)
	}
	if n := c.Len(); n > size {
		t.Fatalf("Len = %d, want at most %d", n, size)
	}
	// The newest entries survive; the oldest were evicted.
	if _, ok := c.Get(key(10*size-1), t0); !ok {
		t.Error("newest entry evicted")
	}
	if _, ok := c.Get(key(0), t0); ok {
		t.Error("oldest entry survived 10x overfill")
	}
}

func TestReAddDoesNotLeak(t *testing.T) {
	c, _ := New[int](3 * numShards) // room for 3 keys in one shard: placement is random
	for i := range 1000 {
		c.Add(key(i%3), i, t0.Add(time.Hour), t0)
	}
	if n := c.Len(); n != 3 {
		t.Errorf("Len = %d, want 3", n)
	}
	if v, ok := c.Get(key(0), t0); !ok || v != 999 {
		t.Errorf("Get = %d, %v; want the last value 999", v, ok)
	}
}

func TestNewRejectsBadSize(t *testing.T) {
	for _, n := range []int{0, -1} {
		if _, err := New[int](n); err == nil {
			t.Errorf("New(%d) succeeded", n)
		}
	}
}

func TestConcurrent(t *testing.T) {
	c, _ := New[int](128)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := key(g*10000 + i%300)
				c.Add(k, i, t0.Add(time.Hour), t0)
				c.Get(k, t0)
				if i%50 == 0 {
					c.Remove(k)
				}
			}
		}()
	}
	wg.Wait()
	if n := c.Len(); n > 128+numShards {
		t.Errorf("Len = %d over the bound", n)
	}
}

// model is the cache's specification, written the plain way: per shard,
// a map plus a ring of insertion order, oldest evicted first.
type model struct {
	per   int
	ring  [numShards][]Key
	next  [numShards]int
	live  map[Key]int // value
	slot  map[Key]int // ring position of the key's latest insertion
	shard func(*Key) int
}

func newModel(c *Cache[int], per int) *model {
	m := &model{per: per, live: map[Key]int{}, slot: map[Key]int{}}
	for i := range m.ring {
		m.ring[i] = make([]Key, per)
	}
	m.shard = func(k *Key) int {
		s, _ := c.place(k)
		for i := range c.shards {
			if s == &c.shards[i] {
				return i
			}
		}
		panic("no shard")
	}
	return m
}

func (m *model) add(k Key, v int) {
	si := m.shard(&k)
	pos := m.next[si]
	if old := m.ring[si][pos]; old != (Key{}) {
		if p, ok := m.slot[old]; ok && p == pos {
			delete(m.live, old)
			delete(m.slot, old)
		}
	}
	m.ring[si][pos] = k
	m.next[si] = (pos + 1) % m.per
	m.live[k], m.slot[k] = v, pos
}

func (m *model) remove(k Key) { delete(m.live, k); delete(m.slot, k) }

// TestMatchesModel drives a small cache (so slots collide and deletions
// shift runs of entries back) through random adds, removes and gets, and
// checks every answer and the table's invariants against the model.
func TestMatchesModel(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		const size = 64
		c, _ := New[int](size)
		m := newModel(c, size/numShards)
		keys := make([]Key, 200)
		for i := range keys {
			keys[i] = key(int(seed)*1000 + i)
		}
		for op := range 5000 {
			k := keys[rng.IntN(len(keys))]
			switch rng.IntN(4) {
			case 0, 1:
				c.Add(k, op, t0.Add(time.Hour), t0)
				m.add(k, op)
			case 2:
				c.Remove(k)
				m.remove(k)
			}
			got, ok := c.Get(k, t0)
			want, wantOK := m.live[k]
			if ok != wantOK || got != want {
				t.Fatalf("seed %d op %d: Get = %d, %v; model says %d, %v", seed, op, got, ok, want, wantOK)
			}
		}
		checkTable(t, c)
		if n := c.Len(); n != len(m.live) {
			t.Errorf("seed %d: Len = %d, model holds %d", seed, n, len(m.live))
		}
		for k, v := range m.live {
			if got, ok := c.Get(k, t0); !ok || got != v {
				t.Errorf("seed %d: Get(live key) = %d, %v; want %d", seed, got, ok, v)
			}
		}
	}
}

// checkTable checks each shard's invariants: at most half full, n counts
// the filled slots, and every entry is reachable from its home slot
// without crossing an empty one.
func checkTable(t *testing.T, c *Cache[int]) {
	t.Helper()
	for si := range c.shards {
		s := &c.shards[si]
		filled := 0
		for i := range s.slots {
			e := s.slots[i].Load()
			if e == nil {
				continue
			}
			filled++
			if e.hash != c.hash(&e.key) {
				t.Errorf("shard %d: entry in slot %d carries a wrong hash", si, i)
			}
			if _, found := s.lookup(&e.key, e.hash); found != e {
				t.Errorf("shard %d: entry in slot %d unreachable from its home %d", si, i, s.home(e.hash))
			}
		}
		if filled != s.n || 2*filled > len(s.slots) {
			t.Errorf("shard %d: %d filled slots of %d, n = %d", si, filled, len(s.slots), s.n)
		}
		// The ring holds exactly the live entries: nothing removed or
		// replaced is kept alive by it.
		inRing := 0
		for pos, e := range s.ring {
			if e == nil {
				continue
			}
			inRing++
			if _, found := s.lookup(&e.key, e.hash); e.pos != pos || found != e {
				t.Errorf("shard %d: ring[%d] holds an entry the table does not", si, pos)
			}
		}
		if inRing != s.n {
			t.Errorf("shard %d: ring holds %d entries, table %d", si, inRing, s.n)
		}
	}
}

// TestGetTakesNoLock holds every shard's writer lock and expects hits
// anyway: a hit must write nothing shared, or concurrent requests with
// the same token contend on one cache line.
func TestGetTakesNoLock(t *testing.T) {
	c, _ := New[int](64)
	c.Add(key(1), 1, t0.Add(time.Hour), t0)
	for i := range c.shards {
		c.shards[i].mu.Lock()
		defer c.shards[i].mu.Unlock()
	}
	done := make(chan bool, 1)
	go func() {
		v, ok := c.Get(key(1), t0)
		done <- ok && v == 1
	}()
	select {
	case ok := <-done:
		if !ok {
			t.Error("Get missed while the writer locks were held")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Get blocked on a writer lock")
	}
}

func TestGetHitAllocatesNothing(t *testing.T) {
	c, _ := New[int](64)
	k := key(1)
	c.Add(k, 1, t0.Add(time.Hour), t0)
	if n := testing.AllocsPerRun(100, func() { c.Get(k, t0) }); n != 0 {
		t.Errorf("Get hit: %v allocations, want 0", n)
	}
}

// TestExpiredIsReclaimed: a Get at or after the deadline removes the
// entry rather than leaving it until FIFO eviction reaches it.
func TestExpiredIsReclaimed(t *testing.T) {
	c, _ := New[int](64)
	c.Add(key(1), 1, t0.Add(time.Minute), t0)
	if _, ok := c.Get(key(1), t0.Add(time.Minute)); ok {
		t.Fatal("hit at the deadline")
	}
	if n := c.Len(); n != 0 {
		t.Errorf("Len = %d after Get of an expired entry, want 0", n)
	}
}

// TestPlacementIsMixed: keys that share their leading bytes, as keys
// chosen by an attacker who grinds token hashes could, still spread over
// every shard and many home slots: placement depends on a secret
// multiplier, not on the key's raw bits. The spread is checked with a
// fixed multiplier (a random one could, rarely, be a poor one for these
// particular keys); that New picks a fresh one is checked separately.
func TestPlacementIsMixed(t *testing.T) {
	c, _ := New[int](1 << 14)
	c.mix = 0x9E3779B97F4A7C15
	shards, homes := map[*shard[int]]bool{}, map[int]bool{}
	for i := range 4096 {
		var k Key
		k[4], k[5] = byte(i), byte(i>>8) // bytes 0-3 fixed at zero
		s, h := c.place(&k)
		shards[s] = true
		if s == &c.shards[0] {
			homes[s.home(h)] = true
		}
	}
	if len(shards) != numShards {
		t.Errorf("4096 keys with the same leading bytes used %d of %d shards", len(shards), numShards)
	}
	if len(homes) < 100 {
		t.Errorf("keys in shard 0 used only %d home slots", len(homes))
	}
	a, _ := New[int](16)
	if b, _ := New[int](16); a.mix == b.mix || a.mix%2 == 0 {
		t.Errorf("placement multipliers %#x and %#x: want two different odd ones", a.mix, b.mix)
	}
}

// TestConcurrentNeverMistakes: readers racing writers that add, replace,
// evict and remove entries (and so shift runs of slots) may miss, but
// must never get another key's value or an expired one.
func TestConcurrentNeverMistakes(t *testing.T) {
	c, _ := New[int](32) // small: constant eviction and back-shifting
	const nkeys = 256
	keys := make([]Key, nkeys)
	for i := range keys {
		keys[i] = key(i)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := (i*7 + w) % nkeys
				if i%5 == 0 {
					c.Remove(keys[k])
				} else {
					// The value is the key's number: a reader can tell
					// a mistake from a miss.
					c.Add(keys[k], k, t0.Add(time.Duration(1+k%2)*time.Minute), t0)
				}
			}
		}()
	}
	var bad sync.Map
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100_000 {
				k := (i + r*31) % nkeys
				at := t0.Add(90 * time.Second) // even keys expired at 1m, odd ones live until 2m
				if v, ok := c.Get(keys[k], at); ok && (v != k || k%2 == 0) {
					bad.Store(k, v)
				}
			}
		}()
	}
	go func() {
		defer close(stop)
		time.Sleep(500 * time.Millisecond)
	}()
	wg.Wait()
	bad.Range(func(k, v any) bool {
		t.Errorf("Get(key %v) = %v", k, v)
		return true
	})
	checkTable(t, c)
}

func BenchmarkGetHit(b *testing.B) {
	c, _ := New[int](1024)
	k := key(7)
	c.Add(k, 7, t0.Add(time.Hour), t0)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get(k, t0); !ok {
			b.Fatal("miss")
		}
	}
}

// TestKeyOf pins KeyOf to the SHA-256 of the token's bytes, so a cached
// entry can only ever be found with the exact token that was verified.
func TestKeyOf(t *testing.T) {
	for _, tok := range []string{"", "a", "eyJhbGciOiJFUzI1NiJ9.e30.sig", strings.Repeat("x", 9000)} {
		if got, want := KeyOf(tok), sha256.Sum256([]byte(tok)); got != want {
			t.Errorf("KeyOf(%.20q) = %x, want %x", tok, got, want)
		}
	}
	if KeyOf("abc") == KeyOf("abd") {
		t.Error("different tokens share a key")
	}
}
