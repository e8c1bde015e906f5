package redisstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/redistest"
	"github.com/tokenguard/tokenguard/internal/redisurl"
)

func TestRecordTTL(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		expires time.Time
		want    time.Duration
	}{
		{"well ahead", now.Add(5 * time.Minute), 5 * time.Minute},
		{"whole milliseconds kept", now.Add(1500 * time.Millisecond), 1500 * time.Millisecond},
		{"part of a millisecond rounds up", now.Add(1500*time.Millisecond + time.Nanosecond), 1501 * time.Millisecond},
		{"one nanosecond left", now.Add(time.Nanosecond), time.Millisecond},
		{"expires now", now, pastExpiryTTL},
		{"already past", now.Add(-time.Hour), pastExpiryTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := recordTTL(now, tt.expires); got != tt.want {
				t.Errorf("recordTTL = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUse(t *testing.T) {
	srv := startRedis(t)
	s, _ := newStore(t, srv, Options{})
	a, b := newID(), newID()
	expires := time.Now().Add(time.Minute)
	steps := []struct {
		name string
		id   dpop.ReplayID
		want error
	}{
		{"first use", a, nil},
		{"second use is a replay", a, dpop.ErrReplay},
		{"third use is still a replay", a, dpop.ErrReplay},
		{"another id is new", b, nil},
		{"and then a replay", b, dpop.ErrReplay},
	}
	for _, st := range steps {
		err := s.Use(t.Context(), replayOf(st.id, expires))
		if !errors.Is(err, st.want) || (st.want == nil && err != nil) {
			t.Fatalf("%s: Use = %v, want %v", st.name, err, st.want)
		}
	}
}

func TestUseTTL(t *testing.T) {
	srv := startRedis(t)
	now := time.Now()
	s, c := newStore(t, srv, Options{Now: func() time.Time { return now }})
	tests := []struct {
		name    string
		expires time.Time
		want    time.Duration // PTTL right after Use is at most this, and close to it
	}{
		{"five minutes", now.Add(5 * time.Minute), 5 * time.Minute},
		{"ten seconds", now.Add(10 * time.Second), 10 * time.Second},
		{"sub-second", now.Add(800*time.Millisecond + 300*time.Microsecond), 801 * time.Millisecond},
		{"already expired: kept one second", now.Add(-time.Minute), pastExpiryTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := newID()
			if err := s.Use(t.Context(), replayOf(id, tt.expires)); err != nil {
				t.Fatal(err)
			}
			record, _ := s.keys(replayOf(id, tt.expires))
			got, err := c.PTTL(t.Context(), record).Result()
			if err != nil {
				t.Fatal(err)
			}
			if got > tt.want || got < tt.want-500*time.Millisecond {
				t.Errorf("PTTL = %v, want close to %v", got, tt.want)
			}
		})
	}
}

func TestUseExpiry(t *testing.T) {
	srv := startRedis(t)
	s, _ := newStore(t, srv, Options{})
	id := newID()
	start := time.Now()
	if err := s.Use(t.Context(), replayOf(id, start.Add(200*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	if err := s.Use(t.Context(), replayOf(id, start.Add(200*time.Millisecond))); !errors.Is(err, dpop.ErrReplay) {
		t.Fatalf("immediate reuse: Use = %v, want ErrReplay", err)
	}
	// Once the record expires the id is new again (a verifier would
	// refuse the proof itself by then; the store only has to forget).
	deadline := start.Add(3 * time.Second)
	for {
		err := s.Use(t.Context(), replayOf(id, time.Now().Add(time.Minute)))
		if err == nil {
			break
		}
		if !errors.Is(err, dpop.ErrReplay) {
			t.Fatalf("Use = %v, want nil or ErrReplay", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("record with a 200ms expiry still present after 3s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if elapsed := time.Since(start); elapsed < 150*time.Millisecond {
		t.Errorf("record gone after %v, want it kept about 200ms", elapsed)
	}
}

func TestPrefix(t *testing.T) {
	srv := startRedis(t)
	c := newClient(t, srv.Addr(), 0)
	id := newID()
	enc := base64.RawURLEncoding.EncodeToString(id[:])
	expires := time.Now().Add(time.Minute)
	tests := []struct {
		name    string
		prefix  string
		wantKey string
	}{
		// The record, and the key's quota counter beside it.
		{"default", "", DefaultPrefix + "{" + enc + "}" + enc},
		{"custom a", "tenant-a:", "tenant-a:{" + enc + "}" + enc},
		{"custom b", "tenant-b:", "tenant-b:{" + enc + "}" + enc},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(c, Options{Prefix: tt.prefix})
			if err != nil {
				t.Fatal(err)
			}
			// The same id under another prefix is another record.
			if err := s.Use(t.Context(), replayOf(id, expires)); err != nil {
				t.Fatalf("first Use under %q = %v, want nil", tt.prefix, err)
			}
			if err := s.Use(t.Context(), replayOf(id, expires)); !errors.Is(err, dpop.ErrReplay) {
				t.Fatalf("second Use under %q = %v, want ErrReplay", tt.prefix, err)
			}
			for _, k := range []string{tt.wantKey, tt.wantKey[:len(tt.wantKey)-len(enc)] + "q"} {
				if n, err := c.Exists(t.Context(), k).Result(); err != nil || n != 1 {
					t.Errorf("key %q: EXISTS = %d, %v; want 1", k, n, err)
				}
			}
		})
	}
	keys, err := c.Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2*len(tests) {
		t.Errorf("Redis holds keys %q, want exactly a record and a counter per prefix", keys)
	}
}

func TestConcurrentUse(t *testing.T) {
	srv := startRedis(t)
	s, _ := newStore(t, srv, Options{})
	const n = 50
	id := newID()
	expires := time.Now().Add(time.Minute)
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.Use(t.Context(), replayOf(id, expires))
		})
	}
	close(start)
	wg.Wait()
	accepted := 0
	for i, err := range errs {
		switch {
		case err == nil:
			accepted++
		case !errors.Is(err, dpop.ErrReplay):
			t.Errorf("goroutine %d: Use = %v, want nil or ErrReplay", i, err)
		}
	}
	if accepted != 1 {
		t.Errorf("%d of %d concurrent uses accepted, want exactly 1", accepted, n)
	}
}

func TestReplicas(t *testing.T) {
	srv := startRedis(t)
	// Two replicas of the API: each its own client and store.
	r1, _ := newStore(t, srv, Options{})
	r2, _ := newStore(t, srv, Options{})
	expires := time.Now().Add(time.Minute)
	a, b := newID(), newID()
	steps := []struct {
		name    string
		replica *Store
		id      dpop.ReplayID
		want    error
	}{
		{"a at replica 1", r1, a, nil},
		{"a replayed at replica 2", r2, a, dpop.ErrReplay},
		{"b at replica 2", r2, b, nil},
		{"b replayed at replica 1", r1, b, dpop.ErrReplay},
	}
	for _, st := range steps {
		err := st.replica.Use(t.Context(), replayOf(st.id, expires))
		if !errors.Is(err, st.want) || (st.want == nil && err != nil) {
			t.Fatalf("%s: Use = %v, want %v", st.name, err, st.want)
		}
	}
}

// TestOutageAndRecovery stops Redis under a store and starts it again on
// the same port. The server runs without persistence, so the restarted
// Redis is empty: a proof used before the restart is accepted once more
// within its window. The package doc states this and recommends
// appendonly; TestRestartWithAppendOnly shows that it closes the gap.
func TestOutageAndRecovery(t *testing.T) {
	srv := startRedis(t)
	s, _ := newStore(t, srv, Options{})
	expires := time.Now().Add(time.Minute)
	before := newID()
	if err := s.Use(t.Context(), replayOf(before, expires)); err != nil {
		t.Fatal(err)
	}

	srv.stop()
	// During the outage nothing is accepted, neither new proofs nor used
	// ones, and every call gives up within a bounded time.
	for i, id := range []dpop.ReplayID{newID(), before, newID()} {
		start := time.Now()
		err := s.Use(t.Context(), replayOf(id, expires))
		elapsed := time.Since(start)
		t.Logf("call %d during outage: %v after %v", i, err, elapsed)
		if elapsed > 3*time.Second {
			t.Errorf("call %d during outage took %v, want under 3s", i, elapsed)
		}
		if !errors.Is(err, dpop.ErrStoreUnavailable) {
			t.Fatalf("call %d during outage: Use = %v, want ErrStoreUnavailable", i, err)
		}
	}
	if err := s.Ping(t.Context()); !errors.Is(err, dpop.ErrStoreUnavailable) {
		t.Errorf("Ping during outage = %v, want ErrStoreUnavailable", err)
	}

	srv.restart()
	// The pool's connections died with the old process; the store must
	// recover on its own, without being rebuilt.
	after := newID()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.Use(t.Context(), replayOf(after, expires))
		if err == nil {
			break
		}
		if !errors.Is(err, dpop.ErrStoreUnavailable) {
			t.Fatalf("Use after restart = %v, want nil or (briefly) ErrStoreUnavailable", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover within 5s of the restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.Use(t.Context(), replayOf(after, expires)); !errors.Is(err, dpop.ErrReplay) {
		t.Errorf("replay after recovery: Use = %v, want ErrReplay", err)
	}
	// The documented cost of running without persistence.
	if err := s.Use(t.Context(), replayOf(before, expires)); err != nil {
		t.Errorf("proof from before the restart: Use = %v; want nil, as the package doc says (no persistence)", err)
	}
	if err := s.Use(t.Context(), replayOf(before, expires)); !errors.Is(err, dpop.ErrReplay) {
		t.Errorf("proof from before the restart, used again: Use = %v, want ErrReplay", err)
	}
}

// TestRestartWithAppendOnly shows the configuration the package doc
// recommends: with appendonly and appendfsync always, a record survives a
// crash of Redis, so a proof cannot be replayed across the restart.
func TestRestartWithAppendOnly(t *testing.T) {
	srv := startRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	s, _ := newStore(t, srv, Options{})
	id := newID()
	expires := time.Now().Add(time.Minute)
	if err := s.Use(t.Context(), replayOf(id, expires)); err != nil {
		t.Fatal(err)
	}
	srv.stop() // SIGKILL: a crash, not a clean shutdown
	srv.restart()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.Use(t.Context(), replayOf(id, expires))
		if errors.Is(err, dpop.ErrReplay) {
			break
		}
		if !errors.Is(err, dpop.ErrStoreUnavailable) {
			t.Fatalf("Use after restart = %v, want ErrReplay", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover within 5s of the restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUnresponsiveServer points stores at a server that accepts
// connections and never answers: Use must give up after Options.Timeout
// however patient the client's own timeouts are.
func TestUnresponsiveServer(t *testing.T) {
	addr := redistest.Silent(t)
	const timeout = 300 * time.Millisecond
	patient := redis.NewClient(&redis.Options{
		Addr:                  addr,
		DialTimeout:           10 * time.Second,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          10 * time.Second,
		ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { patient.Close() })
	fromClient, err := New(patient, Options{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	fromURL, err := NewFromURL("redis://"+addr+"/0", Options{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fromURL.Close() })

	tests := []struct {
		name string
		s    *Store
	}{
		{"New with slow client timeouts", fromClient},
		{"NewFromURL", fromURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, call := range []struct {
				name string
				do   func(context.Context) error
			}{
				{"Use", func(ctx context.Context) error { return tt.s.Use(ctx, replayOf(newID(), time.Now().Add(time.Minute))) }},
				{"Ping", tt.s.Ping},
			} {
				start := time.Now()
				err := call.do(t.Context())
				elapsed := time.Since(start)
				t.Logf("%s: %v after %v", call.name, err, elapsed)
				if !errors.Is(err, dpop.ErrStoreUnavailable) {
					t.Errorf("%s = %v, want ErrStoreUnavailable", call.name, err)
				}
				if elapsed < timeout*9/10 || elapsed > timeout+time.Second {
					t.Errorf("%s returned after %v, want about %v", call.name, elapsed, timeout)
				}
			}
		})
	}
}

func TestCanceledContext(t *testing.T) {
	srv := startRedis(t)
	s, _ := newStore(t, srv, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := s.Use(ctx, replayOf(newID(), time.Now().Add(time.Minute)))
	if !errors.Is(err, dpop.ErrStoreUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("Use with a cancelled context = %v, want ErrStoreUnavailable wrapping context.Canceled", err)
	}
}

func TestNewFromURL(t *testing.T) {
	srv := startRedis(t)
	t.Run("redis with a database number", func(t *testing.T) {
		s, err := NewFromURL(srv.URL(3), Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		id := newID()
		if err := s.Use(t.Context(), replayOf(id, time.Now().Add(time.Minute))); err != nil {
			t.Fatal(err)
		}
		if err := s.Use(t.Context(), replayOf(id, time.Now().Add(time.Minute))); !errors.Is(err, dpop.ErrReplay) {
			t.Fatalf("second Use = %v, want ErrReplay", err)
		}
		for db, want := range map[int]int64{0: 0, 3: 1} {
			record, _ := s.keys(replayOf(id, time.Time{}))
			n, err := newClient(t, srv.Addr(), db).Exists(t.Context(), record).Result()
			if err != nil || n != want {
				t.Errorf("db %d: EXISTS = %d, %v; want %d", db, n, err, want)
			}
		}
		if err := s.Ping(t.Context()); err != nil {
			t.Errorf("Ping = %v", err)
		}
	})
	t.Run("client options", func(t *testing.T) {
		tests := []struct {
			name       string
			url        string
			wantTLS    bool
			wantDial   time.Duration
			wantPoolSz int // 0: the package default
		}{
			{"defaults filled in", "redis://127.0.0.1:1/0", false, redisurl.ClientTimeout, 0},
			// rediss only needs to parse: clients connect lazily.
			{"rediss", "rediss://user:pw@redis.invalid:6380/2", true, redisurl.ClientTimeout, 0},
			{"query parameters win", "redis://127.0.0.1:1?dial_timeout=3s&pool_size=7", false, 3 * time.Second, 7},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, err := NewFromURL(tt.url, Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				o := s.client.(*redis.Client).Options()
				if (o.TLSConfig != nil) != tt.wantTLS {
					t.Errorf("TLSConfig = %v, want TLS %v", o.TLSConfig, tt.wantTLS)
				}
				if o.DialTimeout != tt.wantDial || o.ReadTimeout != redisurl.ClientTimeout || o.WriteTimeout != redisurl.ClientTimeout {
					t.Errorf("timeouts dial %v read %v write %v", o.DialTimeout, o.ReadTimeout, o.WriteTimeout)
				}
				if tt.wantPoolSz != 0 && o.PoolSize != tt.wantPoolSz {
					t.Errorf("PoolSize = %d, want %d", o.PoolSize, tt.wantPoolSz)
				}
				if !o.ContextTimeoutEnabled {
					t.Error("ContextTimeoutEnabled is off")
				}
			})
		}
	})
	t.Run("bad URLs", func(t *testing.T) {
		for _, raw := range []string{
			"",
			"http://127.0.0.1:6379",
			"redis://127.0.0.1:6379/notadb",
			"redis://127.0.0.1:6379/1/2",
			"redis://127.0.0.1:6379?no_such_option=1",
			"redis://user:hunter2@127.0.0.1:port/0",
			"redis://user:hunter2@[::1/0",
			"rediss://user:hunter2@redis.invalid:6380/0?skip_verify=true", // no TLS verification
		} {
			s, err := NewFromURL(raw, Options{})
			if err == nil {
				s.Close()
				t.Errorf("NewFromURL(%q) succeeded, want an error", raw)
				continue
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("NewFromURL(%q) error %q repeats the password", raw, err)
			}
		}
	})
}

func TestNewValidation(t *testing.T) {
	good := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	t.Cleanup(func() { good.Close() })
	deaf := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { deaf.Close() })
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, ContextTimeoutEnabled: true})
	t.Cleanup(func() { cluster.Close() })
	deafCluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	t.Cleanup(func() { deafCluster.Close() })

	tests := []struct {
		name    string
		client  redis.UniversalClient
		opts    Options
		wantErr string // "" means success
	}{
		{"zero options", good, Options{}, ""},
		{"all set", good, Options{Prefix: "p:", Timeout: time.Second, Now: time.Now}, ""},
		{"cluster client", cluster, Options{}, ""},
		{"nil client", nil, Options{}, "nil client"},
		{"negative timeout", good, Options{Timeout: -time.Second}, "Options.Timeout"},
		{"client ignores context deadlines", deaf, Options{}, "ContextTimeoutEnabled"},
		{"cluster client ignores context deadlines", deafCluster, Options{}, "ContextTimeoutEnabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.client, tt.opts)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New = %v, want success", err)
				}
				if s.prefix == "" || s.timeout <= 0 || s.now == nil {
					t.Errorf("defaults not filled in: prefix %q timeout %v", s.prefix, s.timeout)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "redisstore: ") {
				t.Errorf("New = %v, want an error about %q", err, tt.wantErr)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		s, err := New(good, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if s.prefix != DefaultPrefix || s.timeout != DefaultTimeout {
			t.Errorf("prefix %q timeout %v, want %q %v", s.prefix, s.timeout, DefaultPrefix, DefaultTimeout)
		}
	})
	t.Run("NewFromURL checks options", func(t *testing.T) {
		if s, err := NewFromURL("redis://127.0.0.1:1/0", Options{Timeout: -1}); err == nil {
			s.Close()
			t.Error("NewFromURL with a negative timeout succeeded")
		}
	})
}

func TestClose(t *testing.T) {
	srv := startRedis(t)
	expires := time.Now().Add(time.Minute)

	t.Run("owned client is closed", func(t *testing.T) {
		s, err := NewFromURL(srv.URL(0), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Use(t.Context(), replayOf(newID(), expires)); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
		if err := s.Use(t.Context(), replayOf(newID(), expires)); !errors.Is(err, dpop.ErrStoreUnavailable) {
			t.Errorf("Use after Close = %v, want ErrStoreUnavailable", err)
		}
	})
	t.Run("caller's client stays open", func(t *testing.T) {
		s, c := newStore(t, srv, Options{})
		if err := s.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
		if err := c.Ping(t.Context()).Err(); err != nil {
			t.Errorf("client closed by Store.Close: %v", err)
		}
		if err := s.Use(t.Context(), replayOf(newID(), expires)); err != nil {
			t.Errorf("Use after Close of a borrowed client = %v, want nil", err)
		}
	})
}

func BenchmarkUse(b *testing.B) {
	srv := startRedis(b)
	s, _ := newStore(b, srv, Options{})
	ids := make([]dpop.ReplayID, b.N)
	for i := range ids {
		ids[i] = newID()
	}
	expires := time.Now().Add(time.Hour)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := s.Use(ctx, replayOf(ids[i], expires)); err != nil {
			b.Fatal(err)
		}
	}
}

// replayOf is the Replay of id, its own proof key (so no quota is shared
// between ids), expiring at expires.
func replayOf(id dpop.ReplayID, expires time.Time) dpop.Replay {
	return dpop.Replay{ID: id, Key: dpop.KeyID(id), Expires: expires}
}

// TestKeyQuota: one key records at most Options.KeyQuota proofs per
// window, shared by every replica using the Redis (two Stores here), and
// other keys are unaffected; the window is the first proof's lifetime.
func TestKeyQuota(t *testing.T) {
	srv := startRedis(t)
	a, _ := newStore(t, srv, Options{KeyQuota: 5})
	b, _ := newStore(t, srv, Options{KeyQuota: 5})
	exp := time.Now().Add(400 * time.Millisecond)
	for i := range 5 {
		s := []*Store{a, b}[i%2] // two replicas share the count
		if err := s.Use(t.Context(), dpop.NewReplay("greedy", fmt.Sprint(i), exp)); err != nil {
			t.Fatalf("proof %d: %v", i, err)
		}
	}
	if err := a.Use(t.Context(), dpop.NewReplay("greedy", "5", exp)); !errors.Is(err, dpop.ErrKeyQuota) {
		t.Fatalf("over the quota = %v, want ErrKeyQuota", err)
	}
	if err := b.Use(t.Context(), dpop.NewReplay("greedy", "1", exp)); !errors.Is(err, dpop.ErrReplay) {
		t.Fatalf("replay over the quota = %v, want ErrReplay", err)
	}
	if err := b.Use(t.Context(), dpop.NewReplay("other", "0", exp)); err != nil {
		t.Fatalf("another key: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := a.Use(t.Context(), dpop.NewReplay("greedy", "6", time.Now().Add(time.Minute)))
		if err == nil {
			break
		}
		if !errors.Is(err, dpop.ErrKeyQuota) || time.Now().After(deadline) {
			t.Fatalf("after the window: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := New(newClient(t, srv.Addr(), 0), Options{KeyQuota: -1}); err == nil {
		t.Error("a negative KeyQuota was accepted")
	}
}

// TestLegacyRecordRefused: a proof recorded by a replica of the previous
// version (the record key without the quota's hash tag) is a replay here,
// so a rolling upgrade cannot be used to replay proofs.
func TestLegacyRecordRefused(t *testing.T) {
	srv := startRedis(t)
	s, c := newStore(t, srv, Options{})
	r := dpop.NewReplay("k", "j", time.Now().Add(time.Minute))
	if err := c.Set(t.Context(), DefaultPrefix+base64.RawURLEncoding.EncodeToString(r.ID[:]), "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Use(t.Context(), r); !errors.Is(err, dpop.ErrReplay) {
		t.Fatalf("Use of a proof an older replica recorded = %v, want ErrReplay", err)
	}
}

// TestMemoryPerRecord measures Redis memory per recorded proof, the
// figure doc.go and README.md quote: 20,000 proofs from 200 keys.
func TestMemoryPerRecord(t *testing.T) {
	srv := startRedis(t)
	s, c := newStore(t, srv, Options{})
	used := func() int64 {
		info, err := c.Info(t.Context(), "memory").Result()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		t.Fatal("no used_memory in INFO")
		return 0
	}
	before := used()
	const n = 20000
	exp := time.Now().Add(5 * time.Minute)
	for i := range n {
		if err := s.Use(t.Context(), dpop.NewReplay(fmt.Sprint("key-", i%200), fmt.Sprint(i), exp)); err != nil {
			t.Fatal(err)
		}
	}
	per := float64(used()-before) / n
	t.Logf("%.0f bytes of Redis memory per recorded proof (%d proofs, 200 keys)", per, n)
	if per > 300 {
		t.Errorf("%.0f bytes per proof; doc.go and README.md say about 220", per)
	}
}
