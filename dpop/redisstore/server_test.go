package redisstore

import (
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/redistest"
)

// redisServer is a redis-server process of the test's own
// (internal/redistest), stopped when the test ends.
type redisServer struct {
	*redistest.Server
	tb testing.TB
}

// startRedis starts a redis-server without persistence, unless extra
// arguments turn it on, and stops it when the test ends. It skips the
// test if redis-server is not installed.
func startRedis(tb testing.TB, extra ...string) *redisServer {
	tb.Helper()
	srv, err := redistest.Start(tb.TempDir(), extra...)
	if errors.Is(err, redistest.ErrNotInstalled) {
		tb.Skip(err.Error() + " to run the Redis replay store tests")
	}
	if err != nil {
		tb.Fatal(err)
	}
	s := &redisServer{Server: srv, tb: tb}
	tb.Cleanup(s.stop)
	return s
}

// stop kills the server (as a crash would) and waits for it to exit.
func (s *redisServer) stop() {
	if err := s.Kill(); err != nil {
		s.tb.Error(err)
	}
}

// restart starts the server again on the same port and data directory.
func (s *redisServer) restart() {
	s.tb.Helper()
	if err := s.Restart(); err != nil {
		s.tb.Fatal(err)
	}
}

// newClient returns a client for addr, database db, that honours context
// deadlines, closed when the test ends.
func newClient(tb testing.TB, addr string, db int) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                  addr,
		DB:                    db,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		ContextTimeoutEnabled: true,
	})
	tb.Cleanup(func() { c.Close() })
	return c
}

// newStore returns a Store over a new client for srv.
func newStore(tb testing.TB, srv *redisServer, opts Options) (*Store, *redis.Client) {
	tb.Helper()
	c := newClient(tb, srv.Addr(), 0)
	s, err := New(c, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return s, c
}

// newID returns a random replay id.
func newID() dpop.ReplayID {
	var id dpop.ReplayID
	rand.Read(id[:])
	return id
}
