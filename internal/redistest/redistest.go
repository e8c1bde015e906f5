// Package redistest runs a redis-server process of a test's own, on
// 127.0.0.1 only, for the tests and benchmarks that need a real Redis
// (dpop/redisstore, faulttest, bench). It is not a test file so those
// packages, and bench's separate module, can share it; nothing outside
// tests imports it.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// ErrNotInstalled means redis-server is not in PATH: callers skip.
var ErrNotInstalled = errors.New("redis-server not found in PATH; install it (apt-get install redis-server)")

// startWait bounds how long Start and Restart wait for PONG; killWait how
// long Kill waits for the process to exit.
const (
	startWait = 5 * time.Second
	killWait  = 5 * time.Second
)

// Server is one redis-server process. Its methods are not safe for
// concurrent use.
type Server struct {
	bin, dir string
	conf     string // a config file to name first (sentinels), or ""
	port     int
	extra    []string

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start runs redis-server with its data and log in dir, without
// persistence unless extra arguments (which come last, so they win) turn
// it on, and waits until it answers PING. The port is picked free but
// could be taken before redis-server binds it, so Start tries three.
func Start(dir string, extra ...string) (*Server, error) {
	return startConf(dir, "", extra...)
}

// startConf is Start with a config file named before every other
// argument, as redis-server wants it (a sentinel needs one it can write).
func startConf(dir, conf string, extra ...string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	s := &Server{bin: bin, dir: dir, conf: conf, extra: extra}
	for attempt := 1; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		err = s.start()
		if err == nil {
			return s, nil
		}
		if attempt == 3 {
			return nil, fmt.Errorf("redis-server did not start: %w\n%s", err, s.Log())
		}
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Port returns the server's port.
func (s *Server) Port() int { return s.port }

// Addr returns the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL returns a redis:// URL for database db.
func (s *Server) URL(db int) string { return fmt.Sprintf("redis://%s/%d", s.Addr(), db) }

func (s *Server) logPath() string { return filepath.Join(s.dir, "redis.log") }

// Log returns what the server has logged, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath())
	return string(b)
}

func (s *Server) start() error {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", s.dir,
		"--logfile", s.logPath(),
	}
	if s.conf != "" {
		args = append([]string{s.conf}, args...)
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

	deadline := time.Now().Add(startWait)
	for {
		if err := Ping(s.Addr()); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("no answer on %s within %v: %w", s.Addr(), startWait, err)
		}
		select {
		case <-done:
			return fmt.Errorf("exited: %v", cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Restart starts the server again on the same port and data directory
// (after Kill: with appendonly on, the data survives).
func (s *Server) Restart() error {
	if err := s.start(); err != nil {
		return fmt.Errorf("redis-server did not restart on port %d: %w\n%s", s.port, err, s.Log())
	}
	return nil
}

// Kill sends SIGKILL (a crash, not a clean shutdown) and waits for the
// process to exit. It is a no-op when the server is not running.
func (s *Server) Kill() error {
	if s.cmd == nil {
		return nil
	}
	pid := s.cmd.Process.Pid
	s.cmd.Process.Kill()
	s.cmd = nil
	select {
	case <-s.done:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("redis-server (pid %d) did not exit within %v of SIGKILL", pid, killWait)
	}
}

// Ping sends one PING to addr over a fresh connection, with short
// deadlines, and wants +PONG.
func Ping(addr string) error {
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
