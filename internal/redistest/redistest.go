// Package redistest runs a redis-server process of a test's own, on
// 127.0.0.1 only, for the tests and benchmarks that need a real Redis
// (dpop/redisstore, faulttest, bench). It is not a test file so those
// packages, and bench's separate module, can share it; nothing outside
// tests imports it.
package redistest

import (
	"bufio"
	"crypto/tls"
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
	password string     // sent with AUTH before PING and Do's command, or ""
	tls      *tlsServer // the server's TLS files and how to dial it, or nil (plain TCP)

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
	return startServer(&Server{dir: dir, conf: conf, extra: extra})
}

// startServer starts s, whose dir, conf, extra, password and tls are set.
func startServer(s *Server) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	s.bin = bin
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
	args := []string{"--port", strconv.Itoa(s.port)}
	if s.tls != nil {
		// TLS only: the plain port is off.
		args = []string{
			"--port", "0",
			"--tls-port", strconv.Itoa(s.port),
			"--tls-cert-file", s.tls.certFile,
			"--tls-key-file", s.tls.keyFile,
			"--tls-ca-cert-file", s.tls.caFile,
			// Clients need no certificate (the stores' URLs cannot
			// name one).
			"--tls-auth-clients", "no",
		}
	}
	args = append(args,
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", s.dir,
		"--logfile", s.logPath(),
	)
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
		if err := s.ping(); err == nil {
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

// signal sends sig to the server's process.
func (s *Server) signal(sig os.Signal) error {
	if s.cmd == nil {
		return errors.New("redistest: the server is not running")
	}
	return s.cmd.Process.Signal(sig)
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

// ping is Ping for s: over TLS and after AUTH when s has them.
func (s *Server) ping() error {
	line, err := s.do(200*time.Millisecond, "PING")
	if err == nil && line != "PONG" {
		err = fmt.Errorf("PING answered %q", line)
	}
	return err
}

// dial connects to s, over TLS (verifying its certificate against the
// test's CA) when it has TLS.
func (s *Server) dial(timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if s.tls != nil {
		return tls.DialWithDialer(d, "tcp", s.Addr(), s.tls.client)
	}
	return d.Dial("tcp", s.Addr())
}
