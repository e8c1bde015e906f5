package gateway

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenguard/tokenguard/dpop"
)

// replayHandover is how long a replaced replay store is still asked: the
// longest a proof it recorded can be accepted again (its maximum age,
// plus the clock skew allowed in the other direction).
const replayHandover = dpop.DefaultMaxAge + dpop.DefaultMaxClockSkew

// handoverAskTimeout bounds each question to a replaced replay store, so
// one that went away (the reason it was replaced, perhaps) slows no
// request for long.
const handoverAskTimeout = 250 * time.Millisecond

// storeSet decides when the Redis clients that generations share may
// close: when no open generation uses them any more and, for a replaced
// replay store, once the handover is over. It also keeps the list of
// replaced replay stores that every generation's store still asks.
type storeSet struct {
	mu      sync.Mutex
	entries map[io.Closer]*storeEntry
	timer   *time.Timer // the next sweep for a store held until later; nil if none
	closed  bool        // closeAll ran: everything is closed, nothing is added

	// retiring are the replay stores reloads replaced, each asked until
	// its proofs have expired. Read on every DPoP request: an atomic
	// pointer, replaced as a whole.
	retiring atomic.Pointer[[]retiringReplay]
}

type storeEntry struct {
	users     int       // open generations that use it
	holdUntil time.Time // not closed before: a replaced replay store during the handover
}

type retiringReplay struct {
	store dpop.ReplayStore
	until time.Time
}

func newStoreSet() *storeSet { return &storeSet{entries: map[io.Closer]*storeEntry{}} }

// use records that a generation, made current now, uses cs.
func (s *storeSet) use(cs []io.Closer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cs {
		e := s.entries[c]
		if e == nil {
			e = &storeEntry{}
			s.entries[c] = e
		}
		e.users++
	}
}

// release records that a generation using cs has closed, and closes what
// nothing needs any more.
func (s *storeSet) release(cs []io.Closer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cs {
		if e := s.entries[c]; e != nil {
			e.users--
		}
	}
	s.sweepLocked()
}

// replaced records, at the moment the current configuration stops using
// it, a replay store (in memory or Redis) that every later generation
// asks until its proofs have expired; a Redis one stays open that long.
func (s *storeSet) replaced(store dpop.ReplayStore, closer io.Closer) {
	now := time.Now()
	until := now.Add(replayHandover)
	s.mu.Lock()
	defer s.mu.Unlock()
	var list []retiringReplay
	if cur := s.retiring.Load(); cur != nil {
		for _, r := range *cur {
			if now.Before(r.until) && r.store != store {
				list = append(list, r)
			}
		}
	}
	list = append(list, retiringReplay{store: store, until: until})
	s.retiring.Store(&list)
	if e := s.entries[closer]; closer != nil && e != nil {
		e.holdUntil = until
	}
}

// sweepLocked closes the stores no generation uses whose hold is over,
// and sets a timer for the next hold to end.
func (s *storeSet) sweepLocked() {
	if s.closed {
		return
	}
	now := time.Now()
	var next time.Time
	for c, e := range s.entries {
		switch {
		case e.users > 0:
		case !now.Before(e.holdUntil):
			_ = c.Close()
			delete(s.entries, c)
		case next.IsZero() || e.holdUntil.Before(next):
			next = e.holdUntil
		}
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if !next.IsZero() {
		s.timer = time.AfterFunc(time.Until(next), func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.sweepLocked()
		})
	}
}

// closeAll closes every store, in use or held (Shutdown).
func (s *storeSet) closeAll() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	var errs []error
	for c := range s.entries {
		errs = append(errs, c.Close())
		delete(s.entries, c)
	}
	return errors.Join(errs...)
}

// handoverReplayStore records proofs in the store of its configuration
// and refuses those that a store a reload replaced already holds, until
// that store's proofs have expired: a reload that changes
// dpop.replay_store (or turns the Redis store on or off), once or several
// times, must not let a proof used before it be used again after it. A
// replaced store is asked on a best-effort basis, for at most
// handoverAskTimeout: when it cannot answer, the current store alone
// decides, as it would after a restart.
type handoverReplayStore struct {
	dpop.ReplayStore // the configuration's store
	set              *storeSet
}

func (h *handoverReplayStore) Use(ctx context.Context, r dpop.Replay) error {
	if list := h.set.retiring.Load(); list != nil && len(*list) > 0 {
		now := time.Now()
		for _, prev := range *list {
			if prev.store == h.ReplayStore || !now.Before(prev.until) {
				continue
			}
			actx, cancel := context.WithTimeout(ctx, handoverAskTimeout)
			err := prev.store.Use(actx, r)
			cancel()
			if errors.Is(err, dpop.ErrReplay) {
				return err
			}
		}
	}
	return h.ReplayStore.Use(ctx, r)
}
