package redisstore_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/bff/redisstore"
	"github.com/tokenguard/tokenguard/internal/redistest"
)

// startRedis starts a redis-server of the test's own (internal/redistest)
// and kills it when the test ends. It skips the test if redis-server is
// not installed.
func startRedis(tb testing.TB) *redistest.Server {
	tb.Helper()
	srv, err := redistest.Start(tb.TempDir())
	if errors.Is(err, redistest.ErrNotInstalled) {
		tb.Skip(err.Error() + " to run the Redis session store tests")
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := srv.Kill(); err != nil {
			tb.Error(err)
		}
	})
	return srv
}

// newClient returns a raw client for addr, database 0, that honours
// context deadlines, closed when the test ends.
func newClient(tb testing.TB, addr string) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                  addr,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		ContextTimeoutEnabled: true,
	})
	tb.Cleanup(func() { c.Close() })
	return c
}

// newStore returns a Store over a new client for srv, and a raw client to
// look at what it wrote.
func newStore(tb testing.TB, srv *redistest.Server, opts redisstore.Options) (*redisstore.Store, *redis.Client) {
	tb.Helper()
	s, err := redisstore.New(newClient(tb, srv.Addr()), opts)
	if err != nil {
		tb.Fatal(err)
	}
	return s, newClient(tb, srv.Addr())
}

// namedStore is a bff.Store under test.
type namedStore struct {
	name string
	s    bff.Store
}

// stores returns the Redis store and, for comparison, bff.MemoryStore:
// the tests of the Store contract run against both, so the two behave
// alike.
func stores(t *testing.T) []namedStore {
	t.Helper()
	rs, _ := newStore(t, startRedis(t), redisstore.Options{})
	ms, err := bff.NewMemoryStore(0)
	if err != nil {
		t.Fatal(err)
	}
	return []namedStore{{"redis", rs}, {"memory", ms}}
}

// waitGone polls get until it returns bff.ErrNotFound, for at most 2s.
func waitGone(t *testing.T, what string, get func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := get()
		if errors.Is(err, bff.ErrNotFound) {
			return time.Since(start)
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("%s still there 2s later", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSetGet(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	tests := []struct {
		name  string
		key   string
		value []byte
	}{
		{"session", "s/" + strings.Repeat("A", 43), []byte("sealed session")},
		{"pending login", "p/" + strings.Repeat("B", 43), []byte("sealed pending")},
		{"every byte value", "s/bin", all},
		{"empty value", "s/empty", []byte{}},
		{"MaxValueSize", "s/max", bytes.Repeat([]byte{0xA5}, bff.MaxValueSize)},
		{"key with braces", "s/{x}y", []byte("v")},
	}
	for _, st := range stores(t) {
		t.Run(st.name, func(t *testing.T) {
			ctx := t.Context()
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if _, err := st.s.Get(ctx, tt.key); !errors.Is(err, bff.ErrNotFound) {
						t.Fatalf("Get before Set = %v, want ErrNotFound", err)
					}
					if err := st.s.Set(ctx, tt.key, tt.value, time.Minute); err != nil {
						t.Fatal(err)
					}
					got, err := st.s.Get(ctx, tt.key)
					if err != nil || !bytes.Equal(got, tt.value) {
						t.Fatalf("Get = %d bytes, %v; want the %d bytes set", len(got), err, len(tt.value))
					}
					// A second Get still sees it; Set again replaces it.
					if got, err := st.s.Get(ctx, tt.key); err != nil || !bytes.Equal(got, tt.value) {
						t.Fatalf("second Get = %d bytes, %v", len(got), err)
					}
					if err := st.s.Set(ctx, tt.key, []byte("replaced"), time.Minute); err != nil {
						t.Fatal(err)
					}
					if got, err := st.s.Get(ctx, tt.key); err != nil || string(got) != "replaced" {
						t.Fatalf("Get after second Set = %q, %v", got, err)
					}
					if err := st.s.Delete(ctx, tt.key); err != nil {
						t.Fatal(err)
					}
					if _, err := st.s.Get(ctx, tt.key); !errors.Is(err, bff.ErrNotFound) {
						t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
					}
					if err := st.s.Delete(ctx, tt.key); err != nil {
						t.Errorf("Delete of a missing key = %v, want nil", err)
					}
				})
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	const ttl = 50 * time.Millisecond
	for _, st := range stores(t) {
		t.Run(st.name, func(t *testing.T) {
			ctx := t.Context()
			t.Run("Set", func(t *testing.T) {
				if err := st.s.Set(ctx, "s/short", []byte("v"), ttl); err != nil {
					t.Fatal(err)
				}
				if err := st.s.Set(ctx, "s/long", []byte("v"), time.Minute); err != nil {
					t.Fatal(err)
				}
				waited := waitGone(t, "value", func() error { _, err := st.s.Get(ctx, "s/short"); return err })
				t.Logf("value gone after %v", waited)
				if _, err := st.s.Get(ctx, "s/short"); !errors.Is(err, bff.ErrNotFound) {
					t.Errorf("Get of an expired value = %v, want ErrNotFound", err)
				}
				if _, err := st.s.Get(ctx, "s/long"); err != nil {
					t.Errorf("value with a longer ttl: Get = %v", err)
				}
			})
			t.Run("Lock", func(t *testing.T) {
				tok, err := st.s.Lock(ctx, "l/short", ttl)
				if err != nil || tok == "" {
					t.Fatalf("Lock = %q, %v", tok, err)
				}
				if again, err := st.s.Lock(ctx, "l/short", ttl); err != nil || again != "" {
					t.Fatalf("Lock while held = %q, %v; want \"\"", again, err)
				}
				start := time.Now()
				for {
					next, err := st.s.Lock(ctx, "l/short", time.Minute)
					if err != nil {
						t.Fatal(err)
					}
					if next != "" {
						if next == tok {
							t.Error("a new lock has the old token")
						}
						break
					}
					if time.Since(start) > 2*time.Second {
						t.Fatal("lock still held 2s after its ttl")
					}
					time.Sleep(10 * time.Millisecond)
				}
			})
		})
	}
}

// TestTTLOnServer checks the time to live Redis holds: Set's and Lock's
// ttl in milliseconds, rounded up, never zero.
func TestTTLOnServer(t *testing.T) {
	srv := startRedis(t)
	s, raw := newStore(t, srv, redisstore.Options{})
	ctx := t.Context()
	tests := []struct {
		name    string
		ttl     time.Duration
		min     time.Duration // PTTL right after, at least
		maxPTTL time.Duration
	}{
		{"an hour", time.Hour, time.Hour - time.Second, time.Hour},
		{"1.5ms rounds up to 2ms", 1500 * time.Microsecond, 0, 2 * time.Millisecond},
		{"1ns is 1ms", time.Nanosecond, 0, time.Millisecond},
		{"2s", 2 * time.Second, time.Second, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, op := range []struct {
				name, key string
				do        func() error
			}{
				{"Set", "s/" + tt.name, func() error { return s.Set(ctx, "s/"+tt.name, []byte("v"), tt.ttl) }},
				{"Lock", "l/" + tt.name, func() error {
					tok, err := s.Lock(ctx, "l/"+tt.name, tt.ttl)
					if err == nil && tok == "" {
						err = errors.New(`Lock = ""`)
					}
					return err
				}},
			} {
				if err := op.do(); err != nil {
					t.Fatalf("%s: %v", op.name, err)
				}
				pttl, err := raw.PTTL(ctx, redisstore.DefaultPrefix+"{"+op.key+"}").Result()
				if err != nil {
					t.Fatal(err)
				}
				// -2: already expired (the 1ms cases), which is fine; -1
				// (no expiry) never is.
				if pttl == -1 || pttl > tt.maxPTTL || (pttl >= 0 && pttl < tt.min) {
					t.Errorf("%s: PTTL = %v, want in [%v, %v]", op.name, pttl, tt.min, tt.maxPTTL)
				}
			}
		})
	}
}

func TestLockExclusive(t *testing.T) {
	const (
		rounds  = 20
		lockers = 20
	)
	for _, st := range stores(t) {
		t.Run(st.name, func(t *testing.T) {
			ctx := t.Context()
			for round := range rounds {
				key := "l/" + string(rune('a'+round))
				var (
					wg     sync.WaitGroup
					mu     sync.Mutex // guards tokens
					tokens []string
					start  = make(chan struct{})
				)
				for range lockers {
					wg.Go(func() {
						<-start
						tok, err := st.s.Lock(ctx, key, time.Minute)
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
					t.Fatalf("round %d: %d of %d concurrent Locks got a token, want exactly one", round, len(tokens), lockers)
				}
				if b, err := base64.RawURLEncoding.DecodeString(tokens[0]); err != nil || len(b) != 32 {
					t.Errorf("token %q is not 32 bytes of unpadded base64url", tokens[0])
				}
			}
			// Locks of different keys are independent.
			a, err1 := st.s.Lock(ctx, "l/one", time.Minute)
			b, err2 := st.s.Lock(ctx, "l/two", time.Minute)
			if a == "" || b == "" || a == b || err1 != nil || err2 != nil {
				t.Errorf("locks of two keys = %q, %v and %q, %v; want two different tokens", a, err1, b, err2)
			}
		})
	}
}

func TestUnlock(t *testing.T) {
	for _, st := range stores(t) {
		t.Run(st.name, func(t *testing.T) {
			ctx := t.Context()
			tests := []struct {
				name string
				// token returns what to unlock with, given the lock's.
				token    func(held string) string
				wantFree bool
			}{
				{"right token frees it", func(held string) string { return held }, true},
				{"wrong token leaves it", func(string) string { return randomLikeToken() }, false},
				{"empty token leaves it", func(string) string { return "" }, false},
				{"token's prefix leaves it", func(held string) string { return held[:len(held)-1] }, false},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					key := "l/" + tt.name
					held, err := st.s.Lock(ctx, key, time.Minute)
					if err != nil || held == "" {
						t.Fatalf("Lock = %q, %v", held, err)
					}
					if err := st.s.Unlock(ctx, key, tt.token(held)); err != nil {
						t.Fatalf("Unlock = %v", err)
					}
					next, err := st.s.Lock(ctx, key, time.Minute)
					if err != nil {
						t.Fatal(err)
					}
					if free := next != ""; free != tt.wantFree {
						t.Errorf("after Unlock, Lock got a token: %v, want %v", free, tt.wantFree)
					}
				})
			}
			t.Run("expired lock taken by another is left alone", func(t *testing.T) {
				const key = "l/expired"
				old, err := st.s.Lock(ctx, key, 30*time.Millisecond)
				if err != nil || old == "" {
					t.Fatalf("Lock = %q, %v", old, err)
				}
				var cur string
				deadline := time.Now().Add(2 * time.Second)
				for cur == "" {
					if time.Now().After(deadline) {
						t.Fatal("lock not free 2s after its ttl")
					}
					time.Sleep(10 * time.Millisecond)
					if cur, err = st.s.Lock(ctx, key, time.Minute); err != nil {
						t.Fatal(err)
					}
				}
				if err := st.s.Unlock(ctx, key, old); err != nil {
					t.Fatal(err)
				}
				if tok, err := st.s.Lock(ctx, key, time.Minute); err != nil || tok != "" {
					t.Errorf("the old holder's Unlock freed the new lock: Lock = %q, %v", tok, err)
				}
			})
			t.Run("unlock of a missing lock", func(t *testing.T) {
				if err := st.s.Unlock(ctx, "l/never", randomLikeToken()); err != nil {
					t.Errorf("Unlock = %v, want nil", err)
				}
			})
		})
	}
}

// randomLikeToken returns a string shaped like a lock token that no Lock
// returned.
func randomLikeToken() string { return strings.Repeat("x", 43) }

func TestRefused(t *testing.T) {
	srv := startRedis(t)
	s, raw := newStore(t, srv, redisstore.Options{})
	ctx := t.Context()
	tests := []struct {
		name string
		do   func(key string) error
	}{
		{"value one byte too large", func(key string) error {
			return s.Set(ctx, key, make([]byte, bff.MaxValueSize+1), time.Minute)
		}},
		{"zero ttl", func(key string) error { return s.Set(ctx, key, []byte("v"), 0) }},
		{"negative ttl", func(key string) error { return s.Set(ctx, key, []byte("v"), -time.Second) }},
		{"lock with zero ttl", func(key string) error { _, err := s.Lock(ctx, key, 0); return err }},
		{"lock with negative ttl", func(key string) error { _, err := s.Lock(ctx, key, -time.Second); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "s/" + tt.name
			err := tt.do(key)
			if err == nil {
				t.Fatal("succeeded, want an error")
			}
			if errors.Is(err, bff.ErrStoreUnavailable) {
				t.Errorf("error %v is ErrStoreUnavailable; want a plain error (a caller's mistake, not an outage)", err)
			}
			if n, err := raw.Exists(ctx, redisstore.DefaultPrefix+"{"+key+"}").Result(); err != nil || n != 0 {
				t.Errorf("EXISTS = %d, %v; want nothing stored", n, err)
			}
		})
	}
}

func TestKeysOnServer(t *testing.T) {
	srv := startRedis(t)
	ctx := t.Context()
	value := []byte("\x00sealed\xffvalue\r\n")
	tests := []struct {
		name    string
		prefix  string
		wantKey string
	}{
		{"default prefix", "", "tokenguard:bff:{s/abc}"},
		{"own prefix", "app1:", "app1:{s/abc}"},
		{"prefix with its own hash tag", "{tg}:bff:", "{tg}:bff:{s/abc}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, raw := newStore(t, srv, redisstore.Options{Prefix: tt.prefix})
			if err := raw.FlushDB(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			if err := s.Set(ctx, "s/abc", value, time.Minute); err != nil {
				t.Fatal(err)
			}
			keys, err := raw.Keys(ctx, "*").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 1 || keys[0] != tt.wantKey {
				t.Fatalf("keys in Redis = %q, want [%q]", keys, tt.wantKey)
			}
			got, err := raw.Get(ctx, tt.wantKey).Bytes()
			if err != nil || !bytes.Equal(got, value) {
				t.Errorf("raw GET = %q, %v; want exactly %q", got, err, value)
			}
			// The store reads what another writer put under its layout.
			if err := raw.Set(ctx, tt.wantKey, "from elsewhere", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Get(ctx, "s/abc"); err != nil || string(got) != "from elsewhere" {
				t.Errorf("Get = %q, %v", got, err)
			}
		})
	}
	t.Run("two prefixes do not see each other", func(t *testing.T) {
		a, _ := newStore(t, srv, redisstore.Options{Prefix: "a:"})
		b, _ := newStore(t, srv, redisstore.Options{Prefix: "b:"})
		if err := a.Set(ctx, "s/shared", []byte("a"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Get(ctx, "s/shared"); !errors.Is(err, bff.ErrNotFound) {
			t.Errorf("Get under another prefix = %v, want ErrNotFound", err)
		}
	})
}

// ops returns one call of each of s's methods.
func ops(s *redisstore.Store) []struct {
	name string
	do   func(context.Context) error
} {
	return []struct {
		name string
		do   func(context.Context) error
	}{
		{"Get", func(ctx context.Context) error { _, err := s.Get(ctx, "s/k"); return err }},
		{"Set", func(ctx context.Context) error { return s.Set(ctx, "s/k", []byte("v"), time.Minute) }},
		{"Delete", func(ctx context.Context) error { return s.Delete(ctx, "s/k") }},
		{"Lock", func(ctx context.Context) error { _, err := s.Lock(ctx, "l/k", time.Minute); return err }},
		{"Unlock", func(ctx context.Context) error { return s.Unlock(ctx, "l/k", randomLikeToken()) }},
		{"IndexAdd", func(ctx context.Context) error { return s.IndexAdd(ctx, "i/k", "m", time.Minute) }},
		{"IndexMembers", func(ctx context.Context) error { _, err := s.IndexMembers(ctx, "i/k"); return err }},
		{"IndexRemove", func(ctx context.Context) error { return s.IndexRemove(ctx, "i/k", "m") }},
		{"Ping", s.Ping},
	}
}

func TestUnavailable(t *testing.T) {
	killed := startRedis(t)
	afterKill, _ := newStore(t, killed, redisstore.Options{})
	if err := afterKill.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := killed.Kill(); err != nil {
		t.Fatal(err)
	}
	closedPort, err := redisstore.NewFromURL("redis://user:hunter2@127.0.0.1:1/0", redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closedPort.Close() })
	const timeout = 300 * time.Millisecond
	silent, err := redisstore.NewFromURL("redis://user:hunter2@"+redistest.Silent(t)+"/0", redisstore.Options{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })

	tests := []struct {
		name string
		s    *redisstore.Store
	}{
		{"server killed", afterKill},
		{"closed port", closedPort},
		{"server that never answers", silent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, op := range ops(tt.s) {
				start := time.Now()
				err := op.do(t.Context())
				elapsed := time.Since(start)
				t.Logf("%s: %v after %v", op.name, err, elapsed)
				if !errors.Is(err, bff.ErrStoreUnavailable) {
					t.Errorf("%s = %v, want ErrStoreUnavailable", op.name, err)
				}
				if elapsed > 5*time.Second {
					t.Errorf("%s took %v, want under 5s", op.name, elapsed)
				}
				if tt.s == silent && elapsed > timeout+time.Second {
					t.Errorf("%s took %v, want about Options.Timeout (%v)", op.name, elapsed, timeout)
				}
				if err != nil && strings.Contains(err.Error(), "hunter2") {
					t.Errorf("%s error %q repeats the password", op.name, err)
				}
			}
		})
	}
}

func TestOutageAndRecovery(t *testing.T) {
	srv := startRedis(t)
	s, _ := newStore(t, srv, redisstore.Options{})
	ctx := t.Context()
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "s/k", []byte("v"), time.Minute); !errors.Is(err, bff.ErrStoreUnavailable) {
		t.Fatalf("Set during outage = %v, want ErrStoreUnavailable", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// The pool's connections died with the old process; the store must
	// recover on its own, without being rebuilt.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.Set(ctx, "s/k", []byte("v"), time.Minute)
		if err == nil {
			break
		}
		if !errors.Is(err, bff.ErrStoreUnavailable) || time.Now().After(deadline) {
			t.Fatalf("Set after restart = %v, want nil within 5s", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, err := s.Get(ctx, "s/k"); err != nil || string(got) != "v" {
		t.Errorf("Get after recovery = %q, %v", got, err)
	}
}

func TestCanceledContext(t *testing.T) {
	srv := startRedis(t)
	s, _ := newStore(t, srv, redisstore.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, op := range ops(s) {
		if err := op.do(ctx); !errors.Is(err, bff.ErrStoreUnavailable) || !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want ErrStoreUnavailable wrapping context.Canceled", op.name, err)
		}
	}
}

func TestNewFromURL(t *testing.T) {
	srv := startRedis(t)
	s, err := redisstore.NewFromURL(srv.URL(3), redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if err := s.Set(ctx, "s/k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	for db, want := range map[int]int64{0: 0, 3: 1} {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), DB: db})
		n, err := c.Exists(ctx, redisstore.DefaultPrefix+"{s/k}").Result()
		c.Close()
		if err != nil || n != want {
			t.Errorf("db %d: EXISTS = %d, %v; want %d", db, n, err, want)
		}
	}
	for _, raw := range []string{
		"",
		"http://127.0.0.1:6379",
		"redis://127.0.0.1:6379/notadb",
		"redis://user:hunter2@127.0.0.1:port/0",
		"rediss://user:hunter2@redis.invalid:6380/0?skip_verify=true",
	} {
		s, err := redisstore.NewFromURL(raw, redisstore.Options{})
		if err == nil {
			s.Close()
			t.Errorf("NewFromURL(%q) succeeded, want an error", raw)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("NewFromURL(%q) error %q repeats the password", raw, err)
		}
	}
}

func TestNewValidation(t *testing.T) {
	good := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	t.Cleanup(func() { good.Close() })
	deaf := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { deaf.Close() })
	tests := []struct {
		name    string
		client  redis.UniversalClient
		opts    redisstore.Options
		wantErr bool
	}{
		{"defaults", good, redisstore.Options{}, false},
		{"nil client", nil, redisstore.Options{}, true},
		{"negative timeout", good, redisstore.Options{Timeout: -time.Second}, true},
		{"client ignores context deadlines", deaf, redisstore.Options{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := redisstore.New(tt.client, tt.opts)
			if (err != nil) != tt.wantErr {
				t.Errorf("New = %v, want error %v", err, tt.wantErr)
			}
		})
	}
	if s, err := redisstore.NewFromURL("redis://127.0.0.1:1/0", redisstore.Options{Timeout: -1}); err == nil {
		s.Close()
		t.Error("NewFromURL with a negative timeout succeeded")
	}
}

func TestClose(t *testing.T) {
	srv := startRedis(t)
	ctx := t.Context()
	t.Run("NewFromURL closes its client", func(t *testing.T) {
		s, err := redisstore.NewFromURL(srv.URL(0), redisstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
		if err := s.Set(ctx, "s/k", []byte("v"), time.Minute); !errors.Is(err, bff.ErrStoreUnavailable) {
			t.Errorf("Set after Close = %v, want ErrStoreUnavailable", err)
		}
	})
	t.Run("New leaves the caller's client open", func(t *testing.T) {
		c := newClient(t, srv.Addr())
		s, err := redisstore.New(c, redisstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Ping(ctx).Err(); err != nil {
			t.Errorf("client after Store.Close: Ping = %v", err)
		}
	})
}
