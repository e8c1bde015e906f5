package redisstore

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/redisurl"
)

// Defaults used for zero-valued Options fields and by NewFromURL.
const (
	// DefaultPrefix namespaces the store's keys.
	DefaultPrefix = "tokenguard:dpop:jti:"
	// DefaultTimeout bounds one call to Redis. Redis answers a SET in well
	// under a millisecond on a LAN; a call that takes longer than this is
	// treated as an outage and the request fails closed.
	DefaultTimeout = 500 * time.Millisecond

	// pastExpiryTTL is how long a record whose expiry has already passed
	// is kept: the verifier has judged the proof's window already, and a
	// short record still stops concurrent duplicates.
	pastExpiryTTL = time.Second

	// DefaultKeyQuota is how many proofs one key may record per window
	// (the lifetime of the first proof it records in it: 5 minutes with
	// the verifier's defaults), as in dpop.DefaultKeyQuota for a store of
	// dpop.DefaultReplayStoreSize: about 218 proofs a second from one
	// key, sustained.
	DefaultKeyQuota = 65536
)

// Options configures a Store. Every zero value is a documented default.
type Options struct {
	// Prefix is prepended to every key, so the store can share a Redis
	// database with other data, or two deployments can share one Redis
	// without seeing each other's proofs. Empty means DefaultPrefix.
	Prefix string

	// Timeout bounds each call to Redis, on top of the caller's context
	// deadline. Zero means DefaultTimeout; negative is an error.
	Timeout time.Duration

	// KeyQuota is how many proofs one key may record per window, so one
	// client cannot fill a Redis that every replica needs; beyond it Use
	// returns dpop.ErrKeyQuota until the window ends. Zero means
	// DefaultKeyQuota; negative is an error.
	KeyQuota int

	// Now returns the current time, used to turn a proof's expiry into a
	// time to live. nil means time.Now. For tests.
	Now func() time.Time
}

// Store is a dpop.ReplayStore kept in Redis. Make one with New or
// NewFromURL. It is safe for concurrent use.
type Store struct {
	client   redis.UniversalClient
	prefix   string
	timeout  time.Duration
	keyQuota int
	now      func() time.Time
	// legacy: also refuse proofs recorded under the key format of
	// versions before the per-key quota (prefix + id), so a rolling
	// upgrade cannot replay them. Off for Cluster and Ring clients, which
	// could not have used it (the two keys may live on different nodes).
	legacy bool

	owned     bool // client was made by NewFromURL and is closed by Close
	closeOnce sync.Once
	closeErr  error // written once, under closeOnce
}

// New returns a Store that records proofs through client: a single node
// (redis.NewClient), Sentinel (redis.NewFailoverClient) or Cluster
// (redis.NewClusterClient). The caller keeps ownership of client and
// closes it after the Store is no longer used; Store.Close leaves it open.
//
// Options.Timeout can only bound a call if the client honours context
// deadlines, so New refuses a *redis.Client, *redis.ClusterClient or
// *redis.Ring whose options leave ContextTimeoutEnabled false. Other
// implementations of redis.UniversalClient are taken on trust.
//
// New does not contact Redis: an unreachable server is not a
// configuration error, and shows up as ErrStoreUnavailable from Use and
// Ping.
func New(client redis.UniversalClient, opts Options) (*Store, error) {
	errs := redisurl.CheckClient("redisstore", client, opts.Timeout)
	if client != nil && opts.KeyQuota < 0 {
		errs = append(errs, fmt.Errorf("redisstore: Options.KeyQuota: must not be negative, got %d", opts.KeyQuota))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &Store{
		client:   client,
		prefix:   opts.Prefix,
		timeout:  opts.Timeout,
		keyQuota: cmp.Or(opts.KeyQuota, DefaultKeyQuota),
		now:      opts.Now,
	}
	switch client.(type) {
	case *redis.ClusterClient, *redis.Ring:
	default:
		s.legacy = true
	}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.now == nil {
		s.now = time.Now
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

// useScript records a proof and charges its key, atomically.
//
//	KEYS[1] the proof's record, KEYS[2] its key's counter for the window,
//	KEYS[3] (when given) the proof's record in the older key format
//	ARGV[1] the record's time to live in ms, ARGV[2] the key's quota
//
// It returns 1 (recorded), 0 (already recorded: a replay) or -1 (the key
// is at its quota; nothing recorded). The counter lives as long as the
// first proof of its window, so a key records at most its quota per
// proof lifetime and holds at most twice that.
var useScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local n = redis.call('INCR', KEYS[2])
if n == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
if n > tonumber(ARGV[2]) then return -1 end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
return 1
`)

// Use implements dpop.ReplayStore with one atomic script round trip. It
// returns nil if the proof was not recorded (or its record expired) and
// is now recorded until r.Expires, dpop.ErrReplay if it was recorded,
// dpop.ErrKeyQuota if r.Key is at its quota, and an error wrapping
// dpop.ErrStoreUnavailable and the cause (a timeout, the caller's
// cancelled context, a network or Redis error) otherwise.
//
// An expiry already past is recorded for one second rather than refused:
// the verifier has judged the proof's window already.
func (s *Store) Use(ctx context.Context, r dpop.Replay) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// In whole milliseconds rounded up, so the record never expires
	// before the proof does.
	ttl := recordTTL(s.now(), r.Expires)
	record, counter := s.keys(r)
	keys := []string{record, counter}
	if s.legacy {
		keys = append(keys, s.legacyKey(r.ID))
	}
	res, err := useScript.Run(ctx, s.client, keys, ttl.Milliseconds(), s.keyQuota).Int()
	if err != nil {
		return fmt.Errorf("%w: %w", dpop.ErrStoreUnavailable, err)
	}
	switch res {
	case 1:
		return nil
	case 0:
		return dpop.ErrReplay
	case -1:
		return dpop.ErrKeyQuota
	}
	return fmt.Errorf("%w: unexpected script result %d", dpop.ErrStoreUnavailable, res)
}

// Ping checks that Redis answers within Options.Timeout, for readiness
// probes. Its error wraps dpop.ErrStoreUnavailable and the cause.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: %w", dpop.ErrStoreUnavailable, err)
	}
	return nil
}

// Close closes the client if NewFromURL made it, and does nothing for a
// client passed to New, which stays the caller's to close. Once the
// client is closed, Use fails with dpop.ErrStoreUnavailable. Close may be
// called more than once; later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.owned {
			s.closeErr = s.client.Close()
		}
	})
	return s.closeErr
}

// keys returns the Redis keys of a proof's record and of its key's quota
// counter: the prefix, the key's id in braces (a Cluster hash tag, so a
// key's record and counter share a slot and one script can touch both,
// while different keys spread over the slots), then the proof's id or
// "q". Ids are unpadded base64url. Changing the format would let proofs
// recorded by older replicas be replayed at newer ones during an upgrade
// (legacyKey covers the one change so far).
func (s *Store) keys(r dpop.Replay) (record, counter string) {
	var key [encodedIDLen]byte
	base64.RawURLEncoding.Encode(key[:], r.Key[:])
	var id [encodedIDLen]byte
	base64.RawURLEncoding.Encode(id[:], r.ID[:])
	var b strings.Builder
	b.Grow(len(s.prefix) + 2 + 2*encodedIDLen)
	b.WriteString(s.prefix)
	b.WriteByte('{')
	b.Write(key[:])
	b.WriteByte('}')
	base := b.String()
	return base + string(id[:]), base + "q"
}

// legacyKey is a proof's record key before the per-key quota: the prefix
// and the proof's id.
func (s *Store) legacyKey(id dpop.ReplayID) string {
	var enc [encodedIDLen]byte
	base64.RawURLEncoding.Encode(enc[:], id[:])
	return s.prefix + string(enc[:])
}

// encodedIDLen is the length of a ReplayID or KeyID in unpadded base64url.
const encodedIDLen = (len(dpop.ReplayID{})*8 + 5) / 6

// recordTTL returns how long to keep a record of a proof that expires at
// expires: the time left, rounded up to a whole millisecond, or
// pastExpiryTTL if none is left.
func recordTTL(now, expires time.Time) time.Duration {
	d := expires.Sub(now)
	if d <= 0 {
		return pastExpiryTTL
	}
	return (d + time.Millisecond - 1).Truncate(time.Millisecond)
}

// Interface guards.
var _ dpop.ReplayStore = (*Store)(nil)
