package bff_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

func newStore(t *testing.T, max int) *bff.MemoryStore {
	t.Helper()
	s, err := bff.NewMemoryStore(max)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitExpired waits (bounded) until key is gone from s.
func waitExpired(t *testing.T, s *bff.MemoryStore, key string) {
	t.Helper()
	deadline := time.Now().Add(testkit.Wait)
	for {
		_, err := s.Get(context.Background(), key)
		if errors.Is(err, bff.ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not expire", key)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMemoryStoreBasics(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 0)
	if _, err := s.Get(ctx, "s/a"); !errors.Is(err, bff.ErrNotFound) {
		t.Fatalf("Get of a missing key: %v", err)
	}
	if err := s.Delete(ctx, "s/a"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}

	v := []byte("one")
	if err := s.Set(ctx, "s/a", v, time.Hour); err != nil {
		t.Fatal(err)
	}
	v[0] = 'X' // the store keeps its own copy
	got, err := s.Get(ctx, "s/a")
	if err != nil || string(got) != "one" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	got[0] = 'Y' // and hands out copies
	if got, _ := s.Get(ctx, "s/a"); string(got) != "one" {
		t.Fatalf("Get after mutating a previous result = %q", got)
	}
	// Get does not consume.
	if got, _ := s.Get(ctx, "s/a"); string(got) != "one" {
		t.Fatalf("second Get = %q", got)
	}
	// Set replaces.
	if err := s.Set(ctx, "s/a", []byte("two"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, "s/a"); string(got) != "two" {
		t.Fatalf("Get after overwrite = %q", got)
	}
	// Delete removes.
	_ = s.Set(ctx, "s/b", []byte("b"), time.Hour)
	if err := s.Delete(ctx, "s/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "s/b"); !errors.Is(err, bff.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	// Keys are distinct.
	_ = s.Set(ctx, "s/c", []byte("c"), time.Hour)
	if _, err := s.Get(ctx, "p/c"); !errors.Is(err, bff.ErrNotFound) {
		t.Fatalf("Get under another prefix: %v", err)
	}
}

func TestMemoryStoreRefusals(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 0)
	if err := s.Set(ctx, "s/big", make([]byte, bff.MaxValueSize+1), time.Hour); err == nil {
		t.Error("a value larger than MaxValueSize was stored")
	}
	if _, err := s.Get(ctx, "s/big"); !errors.Is(err, bff.ErrNotFound) {
		t.Errorf("the refused value is there: %v", err)
	}
	if err := s.Set(ctx, "s/max", make([]byte, bff.MaxValueSize), time.Hour); err != nil {
		t.Errorf("a value of MaxValueSize: %v", err)
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		if err := s.Set(ctx, "s/ttl", []byte("v"), ttl); err == nil {
			t.Errorf("ttl %v was accepted", ttl)
		}
		if _, err := s.Get(ctx, "s/ttl"); !errors.Is(err, bff.ErrNotFound) {
			t.Errorf("ttl %v: the value is there: %v", ttl, err)
		}
	}
	if _, err := bff.NewMemoryStore(-1); err == nil {
		t.Error("NewMemoryStore(-1) accepted")
	}
}

// TestMemoryStoreLock: one holder at a time, even under concurrency;
// Unlock needs the holder's token; an expired lock can be taken again and
// its old holder cannot release the new one.
func TestMemoryStoreLock(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 0)
	for round := range 20 {
		key := fmt.Sprintf("l/%d", round)
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			tokens []string
			start  = make(chan struct{})
		)
		for range 20 {
			wg.Go(func() {
				<-start
				tok, err := s.Lock(ctx, key, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if tok != "" {
					mu.Lock()
					tokens = append(tokens, tok)
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		if len(tokens) != 1 {
			t.Fatalf("round %d: %d holders of one lock", round, len(tokens))
		}
	}

	tok, err := s.Lock(ctx, "l/x", time.Minute)
	if err != nil || tok == "" {
		t.Fatalf("Lock: %q, %v", tok, err)
	}
	if len(tok) < 43 {
		t.Errorf("lock token %q is guessable", tok)
	}
	for _, wrong := range []string{"", "x", tok[:len(tok)-1], tok + "x"} {
		_ = s.Unlock(ctx, "l/x", wrong)
		if again, _ := s.Lock(ctx, "l/x", time.Minute); again != "" {
			t.Fatalf("Unlock with token %q released the lock", wrong)
		}
	}
	// Another lock name is independent.
	if other, _ := s.Lock(ctx, "l/y", time.Minute); other == "" {
		t.Error("a lock of another name is held")
	}
	if err := s.Unlock(ctx, "l/x", tok); err != nil {
		t.Fatal(err)
	}
	tok2, _ := s.Lock(ctx, "l/x", time.Minute)
	if tok2 == "" || tok2 == tok {
		t.Fatalf("Lock after Unlock: %q (first token %q)", tok2, tok)
	}

	// Expiry: a lock held past its ttl can be taken by someone else, and
	// the first holder's late Unlock leaves the new holder's lock alone.
	short, _ := s.Lock(ctx, "l/ttl", 50*time.Millisecond)
	if short == "" {
		t.Fatal("Lock l/ttl failed")
	}
	var next string
	deadline := time.Now().Add(testkit.Wait)
	for next == "" {
		if time.Now().After(deadline) {
			t.Fatal("an expired lock was never released")
		}
		time.Sleep(10 * time.Millisecond)
		next, _ = s.Lock(ctx, "l/ttl", time.Minute)
	}
	_ = s.Unlock(ctx, "l/ttl", short)
	if again, _ := s.Lock(ctx, "l/ttl", time.Minute); again != "" {
		t.Error("the expired holder's Unlock released the new holder's lock")
	}
}

func TestMemoryStoreExpiry(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 0)
	if err := s.Set(ctx, "s/short", []byte("v"), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "p/short", []byte("v"), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "s/long", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := s.Count("s/"); n != 2 {
		t.Errorf("Count(s/) = %d, want 2", n)
	}
	waitExpired(t, s, "s/short")
	if _, err := s.Get(ctx, "p/short"); !errors.Is(err, bff.ErrNotFound) {
		t.Errorf("Get of an expired key: %v", err)
	}
	if n := s.Count("s/"); n != 1 {
		t.Errorf("Count(s/) after expiry = %d, want 1", n)
	}
	if got, err := s.Get(ctx, "s/long"); err != nil || string(got) != "v" {
		t.Errorf("the long-lived entry: %q, %v", got, err)
	}
	// Set refreshes the ttl.
	_ = s.Set(ctx, "s/renew", []byte("v"), 50*time.Millisecond)
	_ = s.Set(ctx, "s/renew", []byte("v2"), time.Hour)
	time.Sleep(100 * time.Millisecond)
	if got, err := s.Get(ctx, "s/renew"); err != nil || string(got) != "v2" {
		t.Errorf("a re-set entry expired with its first ttl: %q, %v", got, err)
	}
}

func TestMemoryStoreCount(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 0)
	for i := range 3 {
		_ = s.Set(ctx, fmt.Sprintf("s/%d", i), []byte("v"), time.Hour)
	}
	_ = s.Set(ctx, "p/1", []byte("v"), time.Hour)
	_, _ = s.Lock(ctx, "l/1", time.Minute)
	for prefix, want := range map[string]int{"s/": 3, "p/": 1, "l/": 1, "": 5, "x/": 0, "s/1": 1} {
		if n := s.Count(prefix); n != want {
			t.Errorf("Count(%q) = %d, want %d", prefix, n, want)
		}
	}
	_ = s.Delete(ctx, "s/0")
	_ = s.Delete(ctx, "p/1")
	if n := s.Count(""); n != 3 {
		t.Errorf("Count after two Deletes = %d, want 3", n)
	}
}

// TestMemoryStoreFull: at its bound the store refuses new keys with
// ErrStoreFull and keeps the live ones; an existing key may still be
// rewritten; room comes back with deletes and expiry.
func TestMemoryStoreFull(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 5)
	for i := range 5 {
		if err := s.Set(ctx, fmt.Sprintf("s/%d", i), []byte("v"), time.Hour); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	if err := s.Set(ctx, "s/5", []byte("v"), time.Hour); !errors.Is(err, bff.ErrStoreFull) {
		t.Fatalf("6th entry: %v, want ErrStoreFull", err)
	}
	for i := range 5 {
		if _, err := s.Get(ctx, fmt.Sprintf("s/%d", i)); err != nil {
			t.Fatalf("a live entry was dropped: %v", err)
		}
	}
	if err := s.Set(ctx, "s/0", []byte("refreshed"), time.Hour); err != nil {
		t.Errorf("rewriting an existing key when full: %v", err)
	}
	_ = s.Delete(ctx, "s/1")
	if err := s.Set(ctx, "s/5", []byte("v"), time.Hour); err != nil {
		t.Errorf("after a Delete: %v", err)
	}
	// Expired entries make room.
	_ = s.Delete(ctx, "s/2")
	if err := s.Set(ctx, "s/short", []byte("v"), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "s/6", []byte("v"), time.Hour); !errors.Is(err, bff.ErrStoreFull) {
		t.Fatalf("when full again: %v", err)
	}
	waitExpired(t, s, "s/short")
	if err := s.Set(ctx, "s/6", []byte("v"), time.Hour); err != nil {
		t.Errorf("after an entry expired: %v", err)
	}
}

// TestMemoryStoreConcurrent: mixed operations from many goroutines keep
// the bound (run with -race).
func TestMemoryStoreConcurrent(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 100)
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored := 0
	for g := range 20 {
		wg.Go(func() {
			for i := range 50 {
				key := fmt.Sprintf("s/%d-%d", g, i)
				if i%2 == 0 {
					key = fmt.Sprintf("p/%d-%d", g, i)
				}
				err := s.Set(ctx, key, []byte("v"), time.Minute)
				switch {
				case err == nil:
					mu.Lock()
					stored++
					mu.Unlock()
				case !errors.Is(err, bff.ErrStoreFull):
					t.Error(err)
				}
				_, _ = s.Get(ctx, key)
				if i%5 == 0 {
					_ = s.Delete(ctx, key)
				}
			}
		})
	}
	wg.Wait()
	if n := s.Count(""); n > 100 {
		t.Errorf("%d entries in a store of 100", n)
	}
	if stored == 0 {
		t.Error("nothing was stored")
	}
}

// TestMemoryStoreIndexBound: each index member counts as an entry; a full
// store refuses a new member (not one already there), and removing
// members, or an index expiring, makes room again.
func TestMemoryStoreIndexBound(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 4)
	_ = s.Set(ctx, "s/1", []byte("v"), time.Hour)
	for _, m := range []string{"a", "b", "c"} {
		if err := s.IndexAdd(ctx, "i/x", m, time.Hour); err != nil {
			t.Fatalf("member %s: %v", m, err)
		}
	}
	if err := s.IndexAdd(ctx, "i/x", "d", time.Hour); !errors.Is(err, bff.ErrStoreFull) {
		t.Fatalf("a 5th entry as a member: %v, want ErrStoreFull", err)
	}
	if err := s.IndexAdd(ctx, "i/y", "a", time.Hour); !errors.Is(err, bff.ErrStoreFull) {
		t.Fatalf("a 5th entry as a new index: %v, want ErrStoreFull", err)
	}
	if err := s.Set(ctx, "s/2", []byte("v"), time.Hour); !errors.Is(err, bff.ErrStoreFull) {
		t.Fatalf("a 5th entry as a value: %v, want ErrStoreFull", err)
	}
	if err := s.IndexAdd(ctx, "i/x", "a", 2*time.Hour); err != nil {
		t.Errorf("re-adding a member when full: %v", err)
	}
	_ = s.IndexRemove(ctx, "i/x", "b")
	if err := s.Set(ctx, "s/2", []byte("v"), time.Hour); err != nil {
		t.Errorf("after a member was removed: %v", err)
	}
	// A whole index expiring frees all its members.
	_ = s.IndexRemove(ctx, "i/x", "a")
	_ = s.IndexRemove(ctx, "i/x", "c")
	for _, m := range []string{"a", "b"} {
		if err := s.IndexAdd(ctx, "i/short", m, 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Set(ctx, "s/3", []byte("v"), time.Hour); !errors.Is(err, bff.ErrStoreFull) {
		t.Fatalf("when full again: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	for i := range 2 {
		if err := s.Set(ctx, fmt.Sprintf("s/new%d", i), []byte("v"), time.Hour); err != nil {
			t.Errorf("after the index expired, entry %d: %v", i, err)
		}
	}
}

// TestMemoryStoreIndexKinds: a key holds a value or an index, and the
// other kind's operations do not read it as theirs.
func TestMemoryStoreIndexKinds(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 0)
	_ = s.Set(ctx, "k/value", []byte("v"), time.Hour)
	_ = s.IndexAdd(ctx, "k/index", "m", time.Hour)
	if _, err := s.IndexMembers(ctx, "k/value"); err == nil {
		t.Error("IndexMembers of a value: no error")
	}
	if err := s.IndexAdd(ctx, "k/value", "m", time.Hour); err == nil {
		t.Error("IndexAdd to a value: no error")
	}
	if _, err := s.Get(ctx, "k/index"); err == nil {
		t.Error("Get of an index: no error")
	}
	if tok, err := s.Lock(ctx, "k/index", time.Minute); err != nil || tok != "" {
		t.Errorf("Lock of an index = %q, %v; want held", tok, err)
	}
	if err := s.Unlock(ctx, "k/index", "m"); err != nil {
		t.Fatal(err)
	}
	if m, err := s.IndexMembers(ctx, "k/index"); err != nil || len(m) != 1 {
		t.Errorf("Unlock removed an index: %q, %v", m, err)
	}
	// Set replaces an index, and frees its members.
	_ = s.IndexAdd(ctx, "k/index", "m2", time.Hour)
	if err := s.Set(ctx, "k/index", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "k/index"); err != nil || string(got) != "v" {
		t.Errorf("Get after Set over an index = %q, %v", got, err)
	}
	if n := s.Count(""); n != 2 {
		t.Errorf("Count = %d, want 2", n)
	}
}
