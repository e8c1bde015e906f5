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
// The core type, fifo, is not safe for concurrent use; Cache shards the key
// space over independently locked fifos.
package tokencache

import (
	"crypto/sha256"
	"errors"
	"sync"
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

// numShards spreads lock contention; a power of two so the shard index is a
// mask of the key's first byte.
const numShards = 16

// Cache is a sharded, size-bounded, expiring cache. It is safe for
// concurrent use. The zero value is not usable; call New.
type Cache[V any] struct {
	shards [numShards]shard[V]
}

type shard[V any] struct {
	mu sync.Mutex // guards f
	f  fifo[V]
}

// New returns a cache that holds at most size entries (rounded up to a
// multiple of the shard count). size must be positive.
func New[V any](size int) (*Cache[V], error) {
	if size <= 0 {
		return nil, errors.New("tokencache: size must be positive")
	}
	per := (size + numShards - 1) / numShards
	c := &Cache[V]{}
	for i := range c.shards {
		c.shards[i].f = newFIFO[V](per)
	}
	return c, nil
}

func (c *Cache[V]) shard(k *Key) *shard[V] { return &c.shards[k[0]&(numShards-1)] }

// Get returns the value stored under k if it has not expired at now.
func (c *Cache[V]) Get(k Key, now time.Time) (V, bool) {
	s := c.shard(&k)
	s.mu.Lock()
	v, ok := s.f.get(k, now.UnixNano())
	s.mu.Unlock()
	return v, ok
}

// Add stores v under k until expires. An entry whose deadline has passed is
// not stored.
func (c *Cache[V]) Add(k Key, v V, expires time.Time, now time.Time) {
	if !expires.After(now) {
		return
	}
	s := c.shard(&k)
	s.mu.Lock()
	s.f.add(k, v, expires.UnixNano())
	s.mu.Unlock()
}

// Remove deletes the entry stored under k, if any.
func (c *Cache[V]) Remove(k Key) {
	s := c.shard(&k)
	s.mu.Lock()
	s.f.remove(k)
	s.mu.Unlock()
}

// Len reports the number of entries held, including expired ones not yet
// reclaimed.
func (c *Cache[V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.f.m)
		s.mu.Unlock()
	}
	return n
}

// fifo is a map plus a ring of insertion order. Not safe for concurrent use.
type fifo[V any] struct {
	m    map[Key]entry[V]
	ring []slot // insertion order; ring[next] is the oldest once full
	next int
	seq  uint64
}

type entry[V any] struct {
	val     V
	expires int64 // unix nanoseconds
	seq     uint64
}

type slot struct {
	key Key
	seq uint64 // 0: empty
}

func newFIFO[V any](capacity int) fifo[V] {
	return fifo[V]{m: make(map[Key]entry[V], capacity), ring: make([]slot, capacity)}
}

func (f *fifo[V]) get(k Key, now int64) (V, bool) {
	e, ok := f.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	if now >= e.expires {
		delete(f.m, k)
		var zero V
		return zero, false
	}
	return e.val, true
}

func (f *fifo[V]) add(k Key, v V, expires int64) {
	f.seq++
	// Evict whatever occupies the slot we are about to reuse, unless the
	// map entry has since been replaced by a newer insertion.
	old := f.ring[f.next]
	if old.seq != 0 {
		if e, ok := f.m[old.key]; ok && e.seq == old.seq {
			delete(f.m, old.key)
		}
	}
	f.ring[f.next] = slot{key: k, seq: f.seq}
	f.next = (f.next + 1) % len(f.ring)
	f.m[k] = entry[V]{val: v, expires: expires, seq: f.seq}
}

func (f *fifo[V]) remove(k Key) { delete(f.m, k) }
