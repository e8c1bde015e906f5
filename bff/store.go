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

// Store keeps the token handler's server-side state: sessions, their
// refresh locks and the states of completed logins, as opaque values the handler has already encoded (and, with a
// session key, encrypted). Keys are short ASCII strings that never contain
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
}

// DefaultMaxEntries bounds a MemoryStore made with zero: sessions, locks
// and completed-login markers together.
const DefaultMaxEntries = 100_000

// MaxValueSize bounds one stored value: a session holds an access, a
// refresh and an ID token of at most a few KiB each.
const MaxValueSize = 64 << 10

// MemoryStore is the in-process Store: bounded, with entries that expire.
// It is what a single instance needs; several replicas behind one load
// balancer need a shared store (bff/redisstore), or a session made on one
// is unknown to the others.
type MemoryStore struct {
	mu        sync.Mutex // guards m and nextSweep
	m         map[string]memoryEntry
	max       int
	nextSweep time.Time
	now       func() time.Time // read-only after NewMemoryStore
}

type memoryEntry struct {
	value   []byte
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
	if _, exists := s.m[key]; !exists && len(s.m) >= s.max {
		s.sweep(now)
		if len(s.m) >= s.max {
			return ErrStoreFull
		}
	} else if now.After(s.nextSweep) {
		s.sweep(now)
	}
	s.m[key] = memoryEntry{value: bytes.Clone(value), expires: now.Add(ttl)}
	return nil
}

// remove deletes key; the caller holds s.mu.
func (s *MemoryStore) remove(key string) { delete(s.m, key) }

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
	if !ok && len(s.m) >= s.max {
		s.sweep(now)
		if len(s.m) >= s.max {
			return "", ErrStoreFull
		}
	}
	tok := randomToken()
	s.m[key] = memoryEntry{value: []byte(tok), expires: now.Add(ttl)}
	return tok, nil
}

// Unlock implements Store.
func (s *MemoryStore) Unlock(_ context.Context, key, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok && string(e.value) == token {
		s.remove(key)
	}
	return nil
}

// Count returns how many live entries have keys starting with prefix.
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
