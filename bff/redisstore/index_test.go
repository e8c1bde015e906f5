package redisstore_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/bff/redisstore"
)

// members returns the sorted members of an index.
func members(t *testing.T, s bff.Store, key string) []string {
	t.Helper()
	m, err := s.IndexMembers(t.Context(), key)
	if err != nil {
		t.Fatalf("IndexMembers(%s): %v", key, err)
	}
	slices.Sort(m)
	return m
}

// TestIndex is the index contract, for the Redis store and MemoryStore
// alike: add (idempotent), read, remove, an index gone with its last
// member, and a time to live that is extended, never shortened.
func TestIndex(t *testing.T) {
	for _, st := range stores(t) {
		t.Run(st.name, func(t *testing.T) {
			ctx := t.Context()
			if m := members(t, st.s, "i/none"); len(m) != 0 {
				t.Errorf("a missing index has members %q", m)
			}
			if err := st.s.IndexRemove(ctx, "i/none", "x"); err != nil {
				t.Errorf("IndexRemove from a missing index: %v", err)
			}
			for _, m := range []string{"b", "a", "c", "a"} {
				if err := st.s.IndexAdd(ctx, "i/x", m, time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			if m := members(t, st.s, "i/x"); !slices.Equal(m, []string{"a", "b", "c"}) {
				t.Errorf("members = %q, want [a b c]", m)
			}
			if err := st.s.IndexRemove(ctx, "i/x", "b"); err != nil {
				t.Fatal(err)
			}
			if err := st.s.IndexRemove(ctx, "i/x", "not-there"); err != nil {
				t.Errorf("IndexRemove of a missing member: %v", err)
			}
			if m := members(t, st.s, "i/x"); !slices.Equal(m, []string{"a", "c"}) {
				t.Errorf("members after a remove = %q, want [a c]", m)
			}
			_ = st.s.IndexRemove(ctx, "i/x", "a")
			_ = st.s.IndexRemove(ctx, "i/x", "c")
			if m := members(t, st.s, "i/x"); len(m) != 0 {
				t.Errorf("members after removing all = %q", m)
			}
			// Indexes are apart from each other and from values.
			_ = st.s.IndexAdd(ctx, "i/one", "m", time.Minute)
			if m := members(t, st.s, "i/two"); len(m) != 0 {
				t.Errorf("another index sees %q", m)
			}
			if _, err := st.s.Get(ctx, "i/two"); !errors.Is(err, bff.ErrNotFound) {
				t.Errorf("Get of a missing key = %v", err)
			}

			t.Run("expiry", func(t *testing.T) {
				const short = 100 * time.Millisecond
				if err := st.s.IndexAdd(ctx, "i/short", "a", short); err != nil {
					t.Fatal(err)
				}
				// A longer ttl extends it...
				if err := st.s.IndexAdd(ctx, "i/long", "a", short); err != nil {
					t.Fatal(err)
				}
				if err := st.s.IndexAdd(ctx, "i/long", "b", time.Minute); err != nil {
					t.Fatal(err)
				}
				// ...a shorter one does not shorten it.
				if err := st.s.IndexAdd(ctx, "i/kept", "a", time.Minute); err != nil {
					t.Fatal(err)
				}
				if err := st.s.IndexAdd(ctx, "i/kept", "b", short); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				for len(members(t, st.s, "i/short")) != 0 {
					if time.Since(start) > 2*time.Second {
						t.Fatal("the index is still there 2s after its ttl")
					}
					time.Sleep(10 * time.Millisecond)
				}
				time.Sleep(2 * short)
				if m := members(t, st.s, "i/long"); !slices.Equal(m, []string{"a", "b"}) {
					t.Errorf("extended index: %q, want [a b]", m)
				}
				if m := members(t, st.s, "i/kept"); !slices.Equal(m, []string{"a", "b"}) {
					t.Errorf("index given a shorter ttl: %q, want [a b]", m)
				}
				// An expired index starts afresh.
				if err := st.s.IndexAdd(ctx, "i/short", "c", time.Minute); err != nil {
					t.Fatal(err)
				}
				if m := members(t, st.s, "i/short"); !slices.Equal(m, []string{"c"}) {
					t.Errorf("an index made again after expiry: %q, want [c]", m)
				}
			})
			if err := st.s.IndexAdd(ctx, "i/x", "m", 0); err == nil {
				t.Error("IndexAdd with a zero ttl: no error")
			}
		})
	}
}

// TestIndexOnServer: an index is one Redis SET under the store's key
// layout, with a time to live always (PTTL never -1), extended to the
// longest ttl given, and holding exactly the members (the handler's
// hashes: nothing else).
func TestIndexOnServer(t *testing.T) {
	srv := startRedis(t)
	s, raw := newStore(t, srv, redisstore.Options{})
	ctx := t.Context()
	key := redisstore.DefaultPrefix + "{i/abc}"
	if err := s.IndexAdd(ctx, "i/abc", "m1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if typ, err := raw.Type(ctx, key).Result(); err != nil || typ != "set" {
		t.Fatalf("TYPE %s = %q, %v; want set", key, typ, err)
	}
	pttl := func() time.Duration {
		d, err := raw.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := pttl(); d <= 59*time.Second || d > time.Minute {
		t.Errorf("PTTL after the first add = %v, want about a minute", d)
	}
	_ = s.IndexAdd(ctx, "i/abc", "m2", time.Hour)
	if d := pttl(); d <= 59*time.Minute || d > time.Hour {
		t.Errorf("PTTL after an add with an hour = %v, want about an hour", d)
	}
	_ = s.IndexAdd(ctx, "i/abc", "m3", time.Second)
	if d := pttl(); d <= 59*time.Minute {
		t.Errorf("PTTL after an add with a second = %v: shortened", d)
	}
	got, err := raw.SMembers(ctx, key).Result()
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"m1", "m2", "m3"}) {
		t.Errorf("SMEMBERS = %q, %v", got, err)
	}
	keys, _ := raw.Keys(ctx, "*").Result()
	if len(keys) != 1 || keys[0] != key {
		t.Errorf("keys = %q, want [%q]", keys, key)
	}
	for _, m := range []string{"m1", "m2", "m3"} {
		_ = s.IndexRemove(ctx, "i/abc", m)
	}
	if n, _ := raw.Exists(ctx, key).Result(); n != 0 {
		t.Error("the set outlived its last member")
	}
	// A key of another kind is an error, not a silent overwrite.
	_ = s.Set(ctx, "s/value", []byte("v"), time.Minute)
	if err := s.IndexAdd(ctx, "s/value", "m", time.Minute); !errors.Is(err, bff.ErrStoreUnavailable) {
		t.Errorf("IndexAdd to a value = %v, want an error (WRONGTYPE)", err)
	}
	if got, err := s.Get(ctx, "s/value"); err != nil || string(got) != "v" {
		t.Errorf("the value after IndexAdd = %q, %v", got, err)
	}
}

// TestIndexReplicas: an index written through one store is read, and
// emptied, through another over the same Redis (two gateway replicas).
func TestIndexReplicas(t *testing.T) {
	srv := startRedis(t)
	a, _ := newStore(t, srv, redisstore.Options{})
	b, _ := newStore(t, srv, redisstore.Options{})
	ctx := t.Context()
	for i := range 5 {
		if err := a.IndexAdd(ctx, "i/user", "s"+strconv.Itoa(i), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if m := members(t, b, "i/user"); len(m) != 5 || !strings.HasPrefix(m[0], "s") {
		t.Fatalf("members at the other replica = %q", m)
	}
	for i := range 5 {
		_ = b.IndexRemove(ctx, "i/user", "s"+strconv.Itoa(i))
	}
	if m := members(t, a, "i/user"); len(m) != 0 {
		t.Errorf("members after the other replica removed them = %q", m)
	}
}
