// Package redisurl makes the go-redis clients of tokenguard's Redis-backed
// stores (dpop/redisstore, bff/redisstore) from the URL a configuration
// names, with the same hardening for each: bounded timeouts, context
// deadlines honoured, TLS verification never off. It is a package of its
// own so only programs that use Redis link go-redis.
package redisurl

import (
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClientTimeout bounds dialling, each read and write and the wait for a
// pooled connection, unless the URL sets them.
const ClientTimeout = time.Second

// NewClient returns a client made from a URL that redis.ParseURL accepts:
//
//	redis://[user:password@]host[:port][/db]
//	rediss://[user:password@]host[:port][/db]   (TLS)
//	unix://[user:password@]/path/to/redis.sock[?db=N]
//
// Query parameters set client options as redis.ParseURL documents them
// (for example pool_size=20, dial_timeout=2s). Timeouts not set there are
// ClientTimeout each, the pool holds at most two connections per CPU, and
// ContextTimeoutEnabled is always on. skip_verify is refused. Errors never
// quote the URL, which may hold a password. The caller owns the client.
func NewClient(rawURL string) (redis.UniversalClient, error) {
	copts, err := redis.ParseURL(rawURL)
	if err != nil {
		// A *url.Error repeats the URL, which may hold a password.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("bad Redis URL: %w", err)
	}
	if copts.TLSConfig != nil && copts.TLSConfig.InsecureSkipVerify {
		// rediss://...?skip_verify=true: whoever sits between us and
		// Redis could answer anything.
		return nil, errors.New("skip_verify turns off TLS certificate verification; refused (use a CA the system trusts)")
	}
	for _, d := range []*time.Duration{&copts.DialTimeout, &copts.ReadTimeout, &copts.WriteTimeout, &copts.PoolTimeout} {
		if *d == 0 {
			*d = ClientTimeout
		}
	}
	if copts.PoolSize == 0 {
		copts.PoolSize = 2 * runtime.GOMAXPROCS(0)
	}
	copts.ContextTimeoutEnabled = true
	return redis.NewClient(copts), nil
}

// HonoursContext reports whether client is a type whose options can be
// inspected (known) and, if so, whether it honours context deadlines.
func HonoursContext(client redis.UniversalClient) (known, ok bool) {
	switch c := client.(type) {
	case *redis.Client:
		return true, c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return true, c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return true, c.Options().ContextTimeoutEnabled
	}
	return false, false
}
