package bench

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The Redis replay-store benchmarks share one redis-server per test
// process, started on first use on 127.0.0.1 without persistence and
// killed by TestMain.
var redisProc struct {
	once sync.Once
	addr string
	err  error // why there is no server; errNoRedis when not installed
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	dir  string
}

var errNoRedis = fmt.Errorf("redis-server not found in PATH (apt-get install redis-server)")

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
	if redisProc.err == errNoRedis {
		tb.Skip(redisProc.err)
	}
	if redisProc.err != nil {
		tb.Fatal(redisProc.err)
	}
	return redisProc.addr
}

func startRedis() {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		redisProc.err = errNoRedis
		return
	}
	dir, err := os.MkdirTemp("", "tokenguard-bench-redis-")
	if err != nil {
		redisProc.err = err
		return
	}
	redisProc.dir = dir
	// The port is free when picked but could be taken before
	// redis-server binds it; a few attempts make that race harmless.
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			redisProc.err = err
			return
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir,
			"--logfile", dir+"/redis.log")
		if err := cmd.Start(); err != nil {
			redisProc.err = err
			return
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if redisPing(addr) == nil {
				redisProc.addr, redisProc.cmd, redisProc.done = addr, cmd, exited
				return
			}
			select {
			case <-exited:
				deadline = time.Time{} // try another port
			case <-time.After(20 * time.Millisecond):
			}
		}
		cmd.Process.Kill()
		<-exited
	}
	redisProc.err = fmt.Errorf("redis-server did not answer PING on 127.0.0.1 (log in %s)", dir)
}

// redisPing sends one PING over a fresh connection, with short deadlines.
func redisPing(addr string) error {
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

func stopRedis() {
	if redisProc.cmd != nil {
		redisProc.cmd.Process.Kill()
		select {
		case <-redisProc.done:
		case <-time.After(5 * time.Second):
			fmt.Fprintf(os.Stderr, "redis-server (pid %d) did not exit within 5s of SIGKILL\n", redisProc.cmd.Process.Pid)
		}
	}
	if redisProc.dir != "" {
		os.RemoveAll(redisProc.dir)
	}
}
