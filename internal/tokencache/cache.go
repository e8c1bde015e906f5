// Package tokencache is the bounded, expiring map behind the guard's
// verified-token cache.
//
// Keys are SHA-256 digests (of a token), values are whatever the caller
// verified. Each entry carries its own deadline; an entry is never returned
// at or after it. The cache holds at most its configured number of entries:
// when a shard is full the oldest insertion in that shard is evicted (FIFO),
// which for tokens, which mostly arrive once and then repeat for a while, is
// as good as LRU without the per-hit bookkeeping.
//
// A hit writes nothing shared: Get takes no lock and only loads atomic
// pointers to immutable entries, so concurrent requests carrying the same
// token (the common case) do not pass a cache line back and forth between
// cores. Writers (Add, Remove, reclaiming an expired entry) are serialised
// per shard by a mutex. A Get that races a writer may miss an entry that
// is being moved (the caller then verifies the token afresh); it can never
// return another key's value.
package tokencache

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Key is the SHA-256 digest an entry is stored under.
type Key = [32]byte

// KeyOf returns the Key of a token: the SHA-256 of its exact bytes. It
// hashes the string in place: []byte(tok) would copy the whole token to
// the heap on every request (it escapes into the hash), and crypto/sha256
// only reads its input.
func KeyOf(tok string) Key {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(tok), len(tok)))
}

// numShards spreads writers over independent locks.
const (
	shardBits = 4
	numShards = 1 << shardBits
)

// Cache is a sharded, size-bounded, expiring cache. It is safe for
// concurrent use. The zero value is not usable; call New.
type Cache[V any] struct {
	// mix is a random odd multiplier: keys are placed by (first eight
	// bytes × mix), so a caller who can choose keys (the introspection
	// cache also holds "inactive" verdicts for tokens anyone can send)
	// cannot aim them at one shard or one run of slots without knowing
	// it, short of grinding keys whose first eight bytes are equal (about
	// 2^32 hashes for a pair, 2^43 for three: clusters stay tiny, and a
	// probe never passes more than the shard's entries).
	mix    uint64
	_      [64]byte // keeps the shards' writes off the line every Get reads mix from
	shards [numShards]shard[V]
}

// shard is an open-addressed table (linear probing, never more than half
// full) of pointers to immutable entries, plus the ring of insertion order
// that FIFO eviction walks.
//
// The fields a Get reads and the fields writers change are kept on
// separate cache lines (the padding), so a miss being added to one shard
// does not evict the line that hits in it or in its neighbour read.
type shard[V any] struct {
	slots []atomic.Pointer[entry[V]] // len a power of two ≥ 2 × len(ring); read without a lock
	shift uint                       // 64 - log2(len(slots))
	_     [64]byte

	mu   sync.Mutex  // serialises writers; guards ring, next, n and every Store to slots
	ring []*entry[V] // live entries in insertion order; ring[next] is the oldest once full, nil where an entry was removed
	next int
	n    int // entries in slots
	_    [64]byte
}

type entry[V any] struct {
	key     Key
	hash    uint64 // Cache.hash(key): where it lives
	val     V
	expires int64 // unix nanoseconds
	pos     int   // its index in ring
}

// New returns a cache that holds at most size entries (rounded up to a
// multiple of the shard count). size must be positive.
func New[V any](size int) (*Cache[V], error) {
	if size <= 0 {
		return nil, errors.New("tokencache: size must be positive")
	}
	per := (size + numShards - 1) / numShards
	n := 1 << bits.Len(uint(2*per-1)) // the power of two ≥ 2 × per
	c := &Cache[V]{mix: rand.Uint64() | 1}
	for i := range c.shards {
		s := &c.shards[i]
		s.slots = make([]atomic.Pointer[entry[V]], n)
		s.shift = uint(64 - bits.TrailingZeros(uint(n)))
		s.ring = make([]*entry[V], per)
	}
	return c, nil
}

// hash mixes k's first eight bytes. Its top bits pick the shard, the bits
// below them the home slot there.
func (c *Cache[V]) hash(k *Key) uint64 { return binary.LittleEndian.Uint64(k[:8]) * c.mix }

// place returns k's shard and hash.
func (c *Cache[V]) place(k *Key) (*shard[V], uint64) {
	h := c.hash(k)
	return &c.shards[h>>(64-shardBits)], h
}

// home returns the slot where the probe sequence for hash h starts.
func (s *shard[V]) home(h uint64) int { return int((h << shardBits) >> s.shift) }

// Get returns the value stored under k if it has not expired at now.
func (c *Cache[V]) Get(k Key, now time.Time) (V, bool) {
	s, h := c.place(&k)
	if _, e := s.lookup(&k, h); e != nil {
		if now.UnixNano() < e.expires {
			return e.val, true
		}
		// Expired: reclaim it now rather than when FIFO reaches it.
		s.mu.Lock()
		if i, cur := s.lookup(&k, h); cur == e {
			s.delete(i)
		}
		s.mu.Unlock()
	}
	var zero V
	return zero, false
}

// Add stores v under k until expires. An entry whose deadline has passed is
// not stored.
func (c *Cache[V]) Add(k Key, v V, expires time.Time, now time.Time) {
	if !expires.After(now) {
		return
	}
	s, h := c.place(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Evict the oldest entry if the ring slot we are about to reuse
	// still holds it.
	if old := s.ring[s.next]; old != nil {
		if i, cur := s.lookup(&old.key, old.hash); cur == old {
			s.delete(i)
		}
	}
	e := &entry[V]{key: k, hash: h, val: v, expires: expires.UnixNano(), pos: s.next}
	s.ring[s.next] = e
	s.next = (s.next + 1) % len(s.ring)
	if i, cur := s.lookup(&k, h); cur != nil {
		s.forget(cur)
		s.slots[i].Store(e)
		return
	}
	// The table is never more than half full, so an empty slot is near;
	// the bound only keeps a broken invariant from becoming a hang.
	mask := len(s.slots) - 1
	for i, n := s.home(h), 0; n < len(s.slots); i, n = (i+1)&mask, n+1 {
		if s.slots[i].Load() == nil {
			s.slots[i].Store(e)
			s.n++
			return
		}
	}
}

// Remove deletes the entry stored under k, if any.
func (c *Cache[V]) Remove(k Key) {
	s, h := c.place(&k)
	s.mu.Lock()
	if i, e := s.lookup(&k, h); e != nil {
		s.delete(i)
	}
	s.mu.Unlock()
}

// Len reports the number of entries held, including expired ones not yet
// reclaimed.
func (c *Cache[V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += s.n
		s.mu.Unlock()
	}
	return n
}

// lookup returns the entry stored under k (whose hash is h) and its slot,
// or -1 and nil, probing from the home slot to the first empty one. It
// takes no lock: with a writer moving entries it may miss, never mistake.
// A caller that holds mu gets the table as it is.
func (s *shard[V]) lookup(k *Key, h uint64) (int, *entry[V]) {
	mask := len(s.slots) - 1
	for i, n := s.home(h), 0; n < len(s.slots); i, n = (i+1)&mask, n+1 {
		e := s.slots[i].Load()
		if e == nil {
			return -1, nil
		}
		if e.key == *k {
			return i, e
		}
	}
	return -1, nil
}

// forget clears e's ring position, so the ring keeps no value alive that
// the table no longer holds. The caller holds mu.
func (s *shard[V]) forget(e *entry[V]) {
	if e != nil && s.ring[e.pos] == e {
		s.ring[e.pos] = nil
	}
}

// delete empties slot i and shifts back the entries after it that would
// otherwise be cut off from their home slot (Knuth's algorithm R), so no
// tombstones build up. The caller holds mu. Each moved entry is stored at
// its new slot before its old one is overwritten: a concurrent find sees
// it at one of the two, or, having passed the new slot already, misses it.
func (s *shard[V]) delete(i int) {
	s.forget(s.slots[i].Load())
	mask := len(s.slots) - 1
	for j, n := (i+1)&mask, 1; n < len(s.slots); j, n = (j+1)&mask, n+1 {
		e := s.slots[j].Load()
		if e == nil {
			break
		}
		// e may fill the hole at i unless its home lies cyclically in
		// (i, j], where a probe for it would stop at the hole.
		h := s.home(e.hash)
		if (i < j && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			s.slots[i].Store(e)
			i = j
		}
	}
	s.slots[i].Store(nil)
	s.n--
}
