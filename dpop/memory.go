package dpop

import (
	"context"
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
type MemoryReplayStore struct {
	shards   [memoryShards]memoryShard
	perShard int
	refused  atomic.Uint64
	now      func() time.Time
}

type memoryShard struct {
	mu        sync.Mutex
	m         map[ReplayID]int64 // expiry, Unix nanoseconds
	nextSweep int64
	_         [40]byte // keep shards on separate cache lines
}

// NewMemoryReplayStore returns a store that holds at most maxEntries used
// proofs. The store is 64 shards of maxEntries/64 (rounded up) each; ids
// are hashes, so shards fill evenly, but the first shard to fill refuses
// proofs a little before the whole store holds maxEntries.
func NewMemoryReplayStore(maxEntries int) (*MemoryReplayStore, error) {
	if maxEntries <= 0 {
		return nil, fmt.Errorf("dpop: replay store size must be positive, got %d", maxEntries)
	}
	s := &MemoryReplayStore{perShard: (maxEntries + memoryShards - 1) / memoryShards, now: time.Now}
	for i := range s.shards {
		s.shards[i].m = make(map[ReplayID]int64)
	}
	return s, nil
}

// Use implements ReplayStore.
func (s *MemoryReplayStore) Use(_ context.Context, id ReplayID, expires time.Time) error {
	now := s.now().UnixNano()
	sh := &s.shards[id[0]%memoryShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if now >= sh.nextSweep {
		sh.sweep(now)
	}
	// A record is live up to and including its expiry instant: the
	// verifier accepts a proof at exactly iat+MaxAge, so must we refuse
	// its replay then.
	if exp, ok := sh.m[id]; ok && exp >= now {
		return ErrReplay
	}
	if len(sh.m) >= s.perShard {
		sh.sweep(now)
		if len(sh.m) >= s.perShard {
			s.refused.Add(1)
			return ErrStoreFull
		}
	}
	sh.m[id] = expires.UnixNano()
	return nil
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
