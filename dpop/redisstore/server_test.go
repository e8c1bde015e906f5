package redisstore

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenguard/tokenguard/dpop"
)

// redisServer is a redis-server process of the test's own, listening on
// 127.0.0.1 only, with its data directory in a temporary directory.
type redisServer struct {
	tb    testing.TB
	bin   string
	dir   string
	port  int
	extra []string // further redis-server arguments

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// startRedis starts a redis-server without persistence, unless extra
// arguments turn it on, and stops it when the test ends. It skips the
// test if redis-server is not installed.
func startRedis(tb testing.TB, extra ...string) *redisServer {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Skip("redis-server not found in PATH; install it (apt-get install redis-server) to run the Redis replay store tests")
	}
	s := &redisServer{tb: tb, bin: bin, dir: tb.TempDir(), extra: extra}
	tb.Cleanup(s.stop)
	// The port is free when picked but could be taken before redis-server
	// binds it; a few attempts make that race harmless.
	for attempt := 1; ; attempt++ {
		s.port = freePort(tb)
		err := s.start()
		if err == nil {
			return s
		}
		if attempt == 3 {
			tb.Fatalf("redis-server did not start: %v\n%s", err, s.log())
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Addr returns the server's host:port.
func (s *redisServer) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL returns a redis:// URL for database db.
func (s *redisServer) URL(db int) string { return fmt.Sprintf("redis://%s/%d", s.Addr(), db) }

func (s *redisServer) logPath() string { return filepath.Join(s.dir, "redis.log") }

func (s *redisServer) log() string {
	b, _ := os.ReadFile(s.logPath())
	return string(b)
}

// start runs redis-server on s.port and waits until it answers PING.
func (s *redisServer) start() error {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", s.dir,
		"--logfile", s.logPath(),
	}
	cmd := exec.Command(s.bin, append(args, s.extra...)...)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := ping(s.Addr()); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("no answer on %s within 5s: %w", s.Addr(), err)
		}
		select {
		case <-done:
			return fmt.Errorf("exited: %v", cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ping sends one PING over a fresh connection, with short deadlines.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// stop kills the server (as a crash would) and waits for it to exit.
func (s *redisServer) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.tb.Errorf("redis-server (pid %d) did not exit within 5s of SIGKILL", s.cmd.Process.Pid)
	}
	s.cmd = nil
}

// restart starts the server again on the same port and data directory.
func (s *redisServer) restart() {
	s.tb.Helper()
	if err := s.start(); err != nil {
		s.tb.Fatalf("redis-server did not restart on port %d: %v\n%s", s.port, err, s.log())
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

// silentServer accepts TCP connections on 127.0.0.1 and never answers,
// like a hung Redis.
func silentServer(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var (
		mu     sync.Mutex // guards conns and closed
		conns  []net.Conn
		closed bool
		wg     sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				return
			}
			conns = append(conns, c)
			wg.Add(1)
			mu.Unlock()
			go func() {
				defer wg.Done()
				io.Copy(io.Discard, c) // read requests, answer none
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}
