package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/internal/redisurl"
)

// Defaults used for zero-valued Options fields and by NewFromURL.
const (
	// DefaultPrefix namespaces the store's keys.
	DefaultPrefix = "tokenguard:bff:"
	// DefaultTimeout bounds one call to Redis. Redis answers a GET or SET
	// of a few KiB in well under a millisecond on a LAN; a call that takes
	// longer than this is treated as an outage and the request fails
	// closed.
	DefaultTimeout = 500 * time.Millisecond
)

// Options configures a Store. Every zero value is a documented default.
type Options struct {
	// Prefix is prepended to every key, so the store can share a Redis
	// database with other data (dpop/redisstore's records, say), or two
	// deployments can share one Redis without seeing each other's
	// sessions. Empty means DefaultPrefix.
	Prefix string

	// Timeout bounds each call to Redis, on top of the caller's context
	// deadline. Zero means DefaultTimeout; negative is an error.
	Timeout time.Duration
}

// Store is a bff.Store kept in Redis. Make one with New or NewFromURL. It
// is safe for concurrent use.
type Store struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration

	owned     bool // client was made by NewFromURL and is closed by Close
	closeOnce sync.Once
	closeErr  error // written once, under closeOnce
}

// New returns a Store that keeps its entries through client: a single
// node (redis.NewClient), Sentinel (redis.NewFailoverClient) or Cluster
// (redis.NewClusterClient). The caller keeps ownership of client and
// closes it after the Store is no longer used; Store.Close leaves it open.
//
// Options.Timeout can only bound a call if the client honours context
// deadlines, so New refuses a *redis.Client, *redis.ClusterClient or
// *redis.Ring whose options leave ContextTimeoutEnabled false. Other
// implementations of redis.UniversalClient are taken on trust.
//
// New does not contact Redis: an unreachable server is not a
// configuration error, and shows up as bff.ErrStoreUnavailable from the
// Store's methods and Ping.
func New(client redis.UniversalClient, opts Options) (*Store, error) {
	if err := errors.Join(redisurl.CheckClient("redisstore", client, opts.Timeout)...); err != nil {
		return nil, err
	}
	s := &Store{client: client, prefix: opts.Prefix, timeout: opts.Timeout}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	return s, nil
}

// NewFromURL returns a Store with its own client, made from a URL whose
// scheme names the topology (internal/redisurl.NewClient; the rest is
// go-redis's own URL grammar):
//
//	redis://[user:password@]host[:port][/db]              single node (redis.ParseURL)
//	rediss://…                                            the same over TLS
//	redis+sentinel://[user:password@]s1:26379[/db]?master_name=mymaster&addr=s2:26379&addr=s3:26379
//	                                                      Sentinel (redis.ParseFailoverURL): the hosts
//	                                                      are sentinels, user:password authenticates to
//	                                                      them, username= and password= to the master
//	redis+cluster://[user:password@]n1:7000?addr=n2:7001&addr=n3:7002
//	                                                      Cluster seed nodes (redis.ParseClusterURL)
//
// and rediss+sentinel://, rediss+cluster:// for TLS (unix:// too).
// Query parameters set client options as go-redis documents them (for
// example pool_size=20, dial_timeout=2s). Dial, read, write and pool
// timeouts not set there are one second each, and the pool holds at most
// two connections per CPU (per node); ContextTimeoutEnabled is always on;
// skip_verify and options that send commands to replicas are refused.
// Errors never quote the URL, which may hold a password. The Store owns
// this client: call Close when done.
func NewFromURL(rawURL string, opts Options) (*Store, error) {
	client, err := redisurl.NewClient(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	s, err := New(client, opts)
	if err != nil {
		client.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
}

// Get implements bff.Store with GET. It returns bff.ErrNotFound for a
// missing or expired key.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	v, err := s.client.Get(ctx, s.key(key)).Bytes()
	if err != nil {
		return nil, lookupError(err)
	}
	return v, nil
}

// Set implements bff.Store with SET PX: ttl is rounded up to a whole
// millisecond. It refuses a value larger than bff.MaxValueSize and a ttl
// that is not more than zero, without contacting Redis.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if len(value) > bff.MaxValueSize {
		return fmt.Errorf("redisstore: value of %d bytes is larger than %d", len(value), bff.MaxValueSize)
	}
	if ttl <= 0 {
		return fmt.Errorf("redisstore: ttl %v must be more than zero", ttl)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.client.Set(ctx, s.key(key), value, wholeMillis(ttl)).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Delete implements bff.Store with DEL; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.client.Del(ctx, s.key(key)).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Lock implements bff.Store with SET NX PX: it stores a new random token
// (256 bits, unpadded base64url) under key for ttl, rounded up to a whole
// millisecond, and returns it, or returns "" if the key exists (someone
// holds the lock). It refuses a ttl that is not more than zero, as a lock
// that never expires would outlive a crashed holder.
func (s *Store) Lock(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", fmt.Errorf("redisstore: lock ttl %v must be more than zero", ttl)
	}
	tok := randomToken()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ok, err := s.client.SetNX(ctx, s.key(key), tok, wholeMillis(ttl)).Result()
	if err != nil {
		return "", unavailable(err)
	}
	if !ok {
		return "", nil
	}
	return tok, nil
}

// unlockScript deletes KEYS[1] if it holds ARGV[1], the token of the
// caller's lock, and returns how many keys it deleted. A lock that expired
// and was taken by someone else meanwhile holds another token and stays.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// Unlock implements bff.Store with one script (EVALSHA, or EVAL the first
// time a Redis sees it) that deletes the lock only if it still holds
// token. An empty token, which Lock never returns, does nothing.
func (s *Store) Unlock(ctx context.Context, key, token string) error {
	if token == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := unlockScript.Run(ctx, s.client, []string{s.key(key)}, token).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// indexAddScript adds ARGV[1] to the set KEYS[1] and makes the set live
// at least ARGV[2] milliseconds from now: its time to live is extended,
// never shortened (PTTL is -1 for the set just made, which has none).
// One script, so a set never exists without a time to live, on Redis
// versions before 7 too (PEXPIRE GT is 7.0+).
var indexAddScript = redis.NewScript(`
redis.call('SADD', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < ttl then
	redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
`)

// IndexAdd implements bff.Store with one script: SADD, then PEXPIRE when
// the set's time to live (PTTL) is shorter than ttl, rounded up to a
// whole millisecond. It refuses a ttl that is not more than zero without
// contacting Redis.
func (s *Store) IndexAdd(ctx context.Context, key, member string, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("redisstore: index ttl %v must be more than zero", ttl)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := indexAddScript.Run(ctx, s.client, []string{s.key(key)}, member, wholeMillis(ttl).Milliseconds()).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// IndexMembers implements bff.Store with SMEMBERS; a missing or expired
// set has no members.
func (s *Store) IndexMembers(ctx context.Context, key string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	m, err := s.client.SMembers(ctx, s.key(key)).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	return m, nil
}

// IndexRemove implements bff.Store with SREM; Redis deletes a set with
// its last member.
func (s *Store) IndexRemove(ctx context.Context, key, member string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.client.SRem(ctx, s.key(key), member).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Ping checks that Redis answers within Options.Timeout, for readiness
// probes. Its error wraps bff.ErrStoreUnavailable and the cause.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.client.Ping(ctx).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Close closes the client if NewFromURL made it, and does nothing for a
// client passed to New, which stays the caller's to close. Once the
// client is closed, every call fails with bff.ErrStoreUnavailable. Close
// may be called more than once; later calls return the first call's
// result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.owned {
			s.closeErr = s.client.Close()
		}
	})
	return s.closeErr
}

// key returns the Redis key of a store key: the prefix, then the key in
// braces, a Cluster hash tag. Every operation touches one key, so the tag
// is not needed to avoid CROSSSLOT; it keeps the prefix out of the slot
// (a prefix with a tag of its own still wins, as Redis uses the first).
// Changing the format would lose every session at a rolling upgrade.
func (s *Store) key(key string) string {
	var b strings.Builder
	b.Grow(len(s.prefix) + len(key) + 2)
	b.WriteString(s.prefix)
	b.WriteByte('{')
	b.WriteString(key)
	b.WriteByte('}')
	return b.String()
}

// lookupError maps the error of a GET: redis.Nil (no such key)
// is bff.ErrNotFound, anything else unavailable.
func lookupError(err error) error {
	if errors.Is(err, redis.Nil) {
		return bff.ErrNotFound
	}
	return unavailable(err)
}

// unavailable wraps a failed call's cause (a timeout, the caller's
// cancelled context, a network or Redis error) with
// bff.ErrStoreUnavailable. go-redis's errors name the server's address at
// most, never the URL's password.
func unavailable(err error) error {
	return fmt.Errorf("%w: %w", bff.ErrStoreUnavailable, err)
}

// wholeMillis rounds d, more than zero, up to a whole millisecond: Redis
// keeps a key for whole milliseconds, and one must not expire early.
func wholeMillis(d time.Duration) time.Duration {
	return (d + time.Millisecond - 1).Truncate(time.Millisecond)
}

// randomToken returns 256 random bits, unpadded base64url.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Interface guards.
var _ bff.Store = (*Store)(nil)
