package bff

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Errors a Store returns.
var (
	// ErrNotFound: no value under the key (never stored, deleted or
	// expired).
	ErrNotFound = errors.New("bff: not found")
	// ErrStoreFull: the store is at its bound and refuses new entries
	// rather than drop live ones. The handler answers 503.
	ErrStoreFull = errors.New("bff: session store full")
	// ErrStoreUnavailable: the store could not be asked (network error,
	// timeout). The handler answers 503: it fails closed.
	ErrStoreUnavailable = errors.New("bff: session store unavailable")
)

// errWrongKind: a MemoryStore key holds a value where an index was asked
// for, or the other way round. The handler never mixes them (their keys
// have different prefixes).
var errWrongKind = errors.New("bff: the key holds another kind of entry")

// Store keeps the token handler's server-side state: sessions, their
// refresh locks and the states of completed logins, as opaque values the handler has already encoded (and, with a
// session key, encrypted); with back-channel logout, also the jti markers
// of logout tokens (as locks) and the indexes of sessions by sid and
// subject, whose names and members are hashes. Keys are short ASCII strings that never contain
// a cookie's value: a session's key is a hash of its id.
//
// Implementations must be safe for concurrent use, and Lock atomic: of
// concurrent Locks of one key, exactly one gets a token. MemoryStore is
// the in-process implementation; bff/redisstore shares state between
// replicas.
type Store interface {
	// Get returns the value under key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value under key for ttl (more than zero).
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Lock takes an exclusive lock named key for at most ttl and returns
	// its token, or "" when someone else holds it. Replicas use it so
	// that one session's refresh token is used by one of them at a time.
	Lock(ctx context.Context, key string, ttl time.Duration) (token string, err error)
	// Unlock releases a lock taken with token; a lock that expired or was
	// taken by someone else meanwhile is left alone.
	Unlock(ctx context.Context, key, token string) error

	// IndexAdd adds member (a short ASCII string) to the index named key,
	// a set, and keeps the index for at least ttl (more than zero) from
	// now: an index's time to live is extended, never shortened, so it
	// outlives every member added to it. Back-channel logout finds a
	// user's sessions through these indexes (Config.BackchannelLogout).
	IndexAdd(ctx context.Context, key, member string, ttl time.Duration) error
	// IndexMembers returns the members of the index named key, in no
	// particular order; none, and no error, when it does not exist or
	// has expired.
	IndexMembers(ctx context.Context, key string) ([]string, error)
	// IndexRemove removes member from the index named key; a missing
	// index or member is not an error. An index left without members
	// ceases to exist.
	IndexRemove(ctx context.Context, key, member string) error
}

// DefaultMaxEntries bounds a MemoryStore made with zero: sessions, locks,
// completed-login markers and index members together.
const DefaultMaxEntries = 100_000

// MaxValueSize bounds one stored value: a session holds an access, a
// refresh and an ID token of at most a few KiB each.
const MaxValueSize = 64 << 10

// MemoryStore is the in-process Store: bounded, with entries that expire.
// It is what a single instance needs; several replicas behind one load
// balancer need a shared store (bff/redisstore), or a session made on one
// is unknown to the others.
//
// Each value (a session, a lock, a marker) counts as one entry towards
// its bound, and so does each member of an index: with back-channel
// logout on, a session takes three (itself, and its place in the indexes
// of its sid and of its subject).
type MemoryStore struct {
	mu        sync.Mutex // guards m, extra and nextSweep
	m         map[string]memoryEntry
	extra     int // members of the indexes in m beyond the first of each: entries are len(m) + extra
	max       int
	nextSweep time.Time
	now       func() time.Time // read-only after NewMemoryStore
}

// memoryEntry is a value or, when members is not nil, an index (never
// empty: an index loses its entry with its last member).
type memoryEntry struct {
	value   []byte
	members map[string]struct{}
	expires time.Time
}

// NewMemoryStore returns a store of at most maxEntries entries (0 means
// DefaultMaxEntries). At its bound it refuses new entries with
// ErrStoreFull rather than drop live sessions. Nothing is stored before
// the authorization server has authenticated a user (a started login
// lives in its login cookie), so anonymous requests cannot fill it.
func NewMemoryStore(maxEntries int) (*MemoryStore, error) {
	if maxEntries < 0 {
		return nil, fmt.Errorf("bff: MemoryStore size must not be negative, got %d", maxEntries)
	}
	if maxEntries == 0 {
		maxEntries = DefaultMaxEntries
	}
	return &MemoryStore{m: make(map[string]memoryEntry), max: maxEntries, now: time.Now}, nil
}

// Get implements Store.
func (s *MemoryStore) Get(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok || !s.now().Before(e.expires) {
		return nil, ErrNotFound
	}
	if e.members != nil {
		return nil, errWrongKind
	}
	return bytes.Clone(e.value), nil
}

// Set implements Store.
func (s *MemoryStore) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if len(value) > MaxValueSize {
		return fmt.Errorf("bff: value of %d bytes is larger than %d", len(value), MaxValueSize)
	}
	if ttl <= 0 {
		return fmt.Errorf("bff: ttl %v must be more than zero", ttl)
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.m[key]; !exists && s.entries() >= s.max {
		s.sweep(now)
		if s.entries() >= s.max {
			return ErrStoreFull
		}
	} else if now.After(s.nextSweep) {
		s.sweep(now)
	}
	s.remove(key) // an index it replaces frees its members
	s.m[key] = memoryEntry{value: bytes.Clone(value), expires: now.Add(ttl)}
	return nil
}

// entries is how many entries count towards the bound; the caller holds
// s.mu.
func (s *MemoryStore) entries() int { return len(s.m) + s.extra }

// remove deletes key; the caller holds s.mu.
func (s *MemoryStore) remove(key string) {
	if e, ok := s.m[key]; ok && e.members != nil {
		s.extra -= len(e.members) - 1
	}
	delete(s.m, key)
}

// Delete implements Store.
func (s *MemoryStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	s.remove(key)
	s.mu.Unlock()
	return nil
}

// Lock implements Store.
func (s *MemoryStore) Lock(_ context.Context, key string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", fmt.Errorf("bff: lock ttl %v must be more than zero", ttl)
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if ok && now.Before(e.expires) {
		return "", nil
	}
	if !ok && s.entries() >= s.max {
		s.sweep(now)
		if s.entries() >= s.max {
			return "", ErrStoreFull
		}
	}
	tok := randomToken()
	s.remove(key) // an expired index under the same name
	s.m[key] = memoryEntry{value: []byte(tok), expires: now.Add(ttl)}
	return tok, nil
}

// Unlock implements Store.
func (s *MemoryStore) Unlock(_ context.Context, key, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok && e.members == nil && string(e.value) == token {
		s.remove(key)
	}
	return nil
}

// IndexAdd implements Store. A new member is refused with ErrStoreFull
// when the store is at its bound.
func (s *MemoryStore) IndexAdd(_ context.Context, key, member string, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("bff: index ttl %v must be more than zero", ttl)
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if ok && !now.Before(e.expires) {
		s.remove(key)
		ok = false
	}
	if ok && e.members == nil {
		return errWrongKind
	}
	if _, in := e.members[member]; !in {
		if s.entries() >= s.max {
			s.sweep(now)
			if s.entries() >= s.max {
				return ErrStoreFull
			}
		} else if now.After(s.nextSweep) {
			s.sweep(now)
		}
		if !ok {
			e = memoryEntry{members: map[string]struct{}{}}
		} else {
			s.extra++
		}
		e.members[member] = struct{}{}
	}
	if exp := now.Add(ttl); exp.After(e.expires) {
		e.expires = exp
	}
	s.m[key] = e
	return nil
}

// IndexMembers implements Store.
func (s *MemoryStore) IndexMembers(_ context.Context, key string) ([]string, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok || !now.Before(e.expires) {
		return nil, nil
	}
	if e.members == nil {
		return nil, errWrongKind
	}
	out := make([]string, 0, len(e.members))
	for m := range e.members {
		out = append(out, m)
	}
	return out, nil
}

// IndexRemove implements Store.
func (s *MemoryStore) IndexRemove(_ context.Context, key, member string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok || e.members == nil {
		return nil
	}
	if _, in := e.members[member]; !in {
		return nil
	}
	if len(e.members) == 1 {
		s.remove(key)
		return nil
	}
	delete(e.members, member)
	s.extra--
	return nil
}

// Count returns how many live keys start with prefix (an index counts
// once, whatever its members).
func (s *MemoryStore) Count(prefix string) int {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, e := range s.m {
		if strings.HasPrefix(k, prefix) && now.Before(e.expires) {
			n++
		}
	}
	return n
}

// sweep drops expired entries; the caller holds s.mu. It runs at most once
// a minute on Set, and whenever the store is full.
func (s *MemoryStore) sweep(now time.Time) {
	for k, e := range s.m {
		if !now.Before(e.expires) {
			s.remove(k)
		}
	}
	s.nextSweep = now.Add(time.Minute)
}

// randomToken returns 256 random bits, unpadded base64url.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Interface guards.
var _ Store = (*MemoryStore)(nil)
