package dpop

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// memoryShards spreads the store over independently locked maps, so
// concurrent requests rarely contend and reclaiming expired entries never
// stops the whole store.
const memoryShards = 64

// sweepInterval is how often each shard drops its expired entries.
const sweepInterval = 5 * time.Second

// MemoryReplayStore is the default ReplayStore: an in-process, sharded,
// memory-bounded set of used proofs. It does not share state between
// processes, so replicas behind one load balancer need a shared store
// (dpop/redisstore) instead.
//
// At its bound it refuses new proofs with ErrStoreFull rather than evict
// entries whose proofs could still be replayed. Expired entries are
// reclaimed shard by shard as the store is used.
//
// A per-key quota keeps one client from filling the store for everyone:
// a proof key records at most keyQuota proofs per window, a window being
// the lifetime of the first proof it records in it (the verifier's
// MaxAge, 5 minutes by default); beyond that Use returns ErrKeyQuota
// until the window ends. So one key holds at most twice its quota, and
// filling the store takes maxEntries/(2*keyQuota) keys, each with a
// token bound to it.
type MemoryReplayStore struct {
	shards   [memoryShards]memoryShard
	keys     [memoryShards]keyShard
	perShard int
	keyQuota atomic.Int64
	refused  atomic.Uint64
	now      func() time.Time
}

type memoryShard struct {
	mu        sync.Mutex
	m         map[ReplayID]int64 // expiry, Unix nanoseconds
	nextSweep int64
	_         [40]byte // keep shards on separate cache lines
}

// keyShard counts the proofs each key recorded in its current window.
type keyShard struct {
	mu        sync.Mutex
	m         map[uint64]keyWindow // by the first 8 bytes of the KeyID
	nextSweep int64
	_         [40]byte
}

type keyWindow struct {
	n   int32
	end int64 // Unix nanoseconds
}

// DefaultKeyQuota returns the per-key quota NewMemoryReplayStore gives a
// store of maxEntries: a sixteenth of it (65,536 for the default size,
// about 218 proofs a second from one key, sustained), at least one.
func DefaultKeyQuota(maxEntries int) int { return max(maxEntries/16, 1) }

// NewMemoryReplayStore returns a store that holds at most maxEntries used
// proofs, with the per-key quota DefaultKeyQuota(maxEntries). The store is
// 64 shards of maxEntries/64 (rounded up) each; ids are hashes, so shards
// fill evenly, but the first shard to fill refuses proofs a little before
// the whole store holds maxEntries.
func NewMemoryReplayStore(maxEntries int) (*MemoryReplayStore, error) {
	return NewMemoryReplayStoreQuota(maxEntries, DefaultKeyQuota(maxEntries))
}

// NewMemoryReplayStoreQuota is NewMemoryReplayStore with the per-key quota
// keyQuota: how many proofs one key may record per window, between 1 and
// maxEntries.
func NewMemoryReplayStoreQuota(maxEntries, keyQuota int) (*MemoryReplayStore, error) {
	if maxEntries <= 0 {
		return nil, fmt.Errorf("dpop: replay store size must be positive, got %d", maxEntries)
	}
	if keyQuota <= 0 || keyQuota > maxEntries {
		return nil, fmt.Errorf("dpop: replay store key quota must be between 1 and the size (%d), got %d", maxEntries, keyQuota)
	}
	s := &MemoryReplayStore{perShard: (maxEntries + memoryShards - 1) / memoryShards, now: time.Now}
	s.keyQuota.Store(int64(keyQuota))
	for i := range s.shards {
		s.shards[i].m = make(map[ReplayID]int64)
		s.keys[i].m = make(map[uint64]keyWindow)
	}
	return s, nil
}

// SetKeyQuota changes the per-key quota (between 1 and the store's size)
// from the next proof on; the proofs already recorded stay. The gateway
// uses it when a reloaded configuration changes replay_key_quota, so the
// store, and the proofs it knows, carry over.
func (s *MemoryReplayStore) SetKeyQuota(keyQuota int) error {
	if size := s.perShard * memoryShards; keyQuota <= 0 || keyQuota > size {
		return fmt.Errorf("dpop: replay store key quota must be between 1 and the size (%d), got %d", size, keyQuota)
	}
	s.keyQuota.Store(int64(keyQuota))
	return nil
}

// Use implements ReplayStore.
func (s *MemoryReplayStore) Use(_ context.Context, r Replay) error {
	now := s.now().UnixNano()
	sh := &s.shards[r.ID[0]%memoryShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if now >= sh.nextSweep {
		sh.sweep(now)
	}
	// A record is live up to and including its expiry instant: the
	// verifier accepts a proof at exactly iat+MaxAge, so must we refuse
	// its replay then.
	if exp, ok := sh.m[r.ID]; ok && exp >= now {
		return ErrReplay
	}
	if len(sh.m) >= s.perShard {
		sh.sweep(now)
		if len(sh.m) >= s.perShard {
			s.refused.Add(1)
			return ErrStoreFull
		}
	}
	if !s.count(r.Key, now, r.Expires.UnixNano()) {
		return ErrKeyQuota
	}
	sh.m[r.ID] = r.Expires.UnixNano()
	return nil
}

// count charges one proof to key, opening a window that ends at expires
// when the key has none open. It reports false, charging nothing, when the
// key's window is at the quota. Lock order: a memoryShard, then a keyShard.
func (s *MemoryReplayStore) count(key KeyID, now, expires int64) bool {
	k := binary.LittleEndian.Uint64(key[:8])
	ks := &s.keys[key[8]%memoryShards]
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if now >= ks.nextSweep {
		for id, w := range ks.m {
			if w.end < now {
				delete(ks.m, id)
			}
		}
		ks.nextSweep = now + int64(sweepInterval)
	}
	w, ok := ks.m[k]
	switch {
	case !ok || w.end < now:
		w = keyWindow{end: expires}
	case int64(w.n) >= s.keyQuota.Load():
		return false
	}
	w.n++
	ks.m[k] = w
	return true
}

// sweep drops expired entries. The caller holds sh.mu.
func (sh *memoryShard) sweep(now int64) {
	for id, exp := range sh.m {
		if exp < now {
			delete(sh.m, id)
		}
	}
	sh.nextSweep = now + int64(sweepInterval)
}

// Len returns the number of entries held, expired or not.
func (s *MemoryReplayStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// Refused returns how many proofs were refused because the store was full.
func (s *MemoryReplayStore) Refused() uint64 { return s.refused.Load() }
