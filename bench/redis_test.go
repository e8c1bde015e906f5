package bench

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/tokenguard/tokenguard/internal/redistest"
)

// The Redis replay-store benchmarks share one redis-server per test
// process (internal/redistest), started on first use on 127.0.0.1 without
// persistence and killed by TestMain.
var redisProc struct {
	once sync.Once
	srv  *redistest.Server
	err  error // why there is no server; redistest.ErrNotInstalled when not installed
	dir  string
}

func TestMain(m *testing.M) {
	code := m.Run()
	stopRedis()
	os.Exit(code)
}

// redisAddr returns the shared server's address, skipping tb when
// redis-server is not installed.
func redisAddr(tb testing.TB) string {
	tb.Helper()
	redisProc.once.Do(startRedis)
	if errors.Is(redisProc.err, redistest.ErrNotInstalled) {
		tb.Skip(redisProc.err)
	}
	if redisProc.err != nil {
		tb.Fatal(redisProc.err)
	}
	return redisProc.srv.Addr()
}

func startRedis() {
	dir, err := os.MkdirTemp("", "tokenguard-bench-redis-")
	if err != nil {
		redisProc.err = err
		return
	}
	redisProc.dir = dir
	redisProc.srv, redisProc.err = redistest.Start(dir)
}

func stopRedis() {
	if redisProc.srv != nil {
		if err := redisProc.srv.Kill(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	if redisProc.dir != "" {
		os.RemoveAll(redisProc.dir)
	}
}
