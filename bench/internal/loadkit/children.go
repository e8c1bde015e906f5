package loadkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Bounds on waiting for child processes.
const (
	BuildTimeout  = 5 * time.Minute  // go build of the gateway, cold cache on a busy machine
	HelperStartup = 15 * time.Second // a helper prints its address
	StopGrace     = 5 * time.Second  // a child exits after its lifeline closes or SIGINT
	childLogTail  = 16 << 10         // bytes of a child's output kept for error messages
)

// Child is a process started by a load generator.
type Child struct {
	Name     string
	Cmd      *exec.Cmd
	Out      *TailBuffer    // the end of its stdout and stderr
	lifeline io.WriteCloser // the child's stdin; closing it asks a helper to exit
	group    bool           // the child leads its own process group
	exited   chan struct{}  // closed when the process has been waited for
	waitErr  error          // valid once exited is closed
	stopOnce sync.Once
}

// StartChild starts bin with args; the first line it prints on stdout is
// sent on the returned channel.
func StartChild(name, bin string, args ...string) (*Child, <-chan string, error) {
	return StartCmd(name, exec.Command(bin, args...), false)
}

// StartCmd starts cmd (whose Stdin, Stdout, Stderr and SysProcAttr it
// sets); the first line it prints on stdout is sent on the returned
// channel. With group, the child leads a new process group, and [Child.Stop]
// kills the whole group at the end (servers that fork workers).
func StartCmd(name string, cmd *exec.Cmd, group bool) (*Child, <-chan string, error) {
	SetDeathSignal(cmd, group)
	c := &Child{Name: name, Cmd: cmd, Out: &TailBuffer{Max: childLogTail}, group: group, exited: make(chan struct{})}
	first := make(chan string, 1)
	cmd.Stdout = &FirstLine{W: c.Out, C: first}
	cmd.Stderr = c.Out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	c.lifeline = stdin
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	return c, first, nil
}

// Pid returns the child's process id.
func (c *Child) Pid() int { return c.Cmd.Process.Pid }

// Exited is closed once the child has exited.
func (c *Child) Exited() <-chan struct{} { return c.exited }

// Err describes how the child ended, with the end of its output; call it
// once Exited is closed.
func (c *Child) Err() error {
	return fmt.Errorf("%w: %s (%v): %s", ErrChildExited, c.Name, c.waitErr, c.Out)
}

// StartHelper starts "self name args..." and returns it with the address
// it listens on (the helper prints "listening ADDR" first).
func StartHelper(ctx context.Context, self, name string, args ...string) (*Child, string, error) {
	c, first, err := StartChild(name, self, append([]string{name}, args...)...)
	if err != nil {
		return nil, "", err
	}
	timer := time.NewTimer(HelperStartup)
	defer timer.Stop()
	select {
	case line := <-first:
		addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
		if !ok {
			c.Stop()
			return nil, "", fmt.Errorf("%s: unexpected first line %q", name, line)
		}
		return c, addr, nil
	case <-c.exited:
		return nil, "", fmt.Errorf("%s exited during startup (%v): %s", name, c.waitErr, c.Out)
	case <-timer.C:
		err = fmt.Errorf("%s did not start within %v: %s", name, HelperStartup, c.Out)
	case <-ctx.Done():
		err = ctx.Err()
	}
	c.Stop()
	return nil, "", err
}

// Stop ends the child: its lifeline is closed (helpers exit), then it gets
// SIGINT (the gateway drains and exits) or, when it leads a process group
// (a server with workers: nginx, Apache, HAProxy), the whole group gets
// SIGTERM, their "stop now"; after StopGrace, SIGKILL (to the whole group
// for a leader). It returns once the process is gone and its output
// closed, within 2·StopGrace.
func (c *Child) Stop() {
	c.stopOnce.Do(func() {
		pid := c.Cmd.Process.Pid
		_ = c.lifeline.Close()
		if c.group {
			TermGroup(pid)
		} else {
			_ = c.Cmd.Process.Signal(os.Interrupt)
		}
		select {
		case <-c.exited:
			if c.group {
				KillGroup(pid) // any worker that outlived its master
			}
			return
		case <-time.After(StopGrace):
		}
		if c.group {
			KillGroup(pid)
		} else {
			_ = c.Cmd.Process.Kill()
		}
		select {
		case <-c.exited:
		case <-time.After(StopGrace):
			fmt.Fprintf(os.Stderr, "loadkit: %s (pid %d) did not exit after SIGKILL\n", c.Name, pid)
		}
	})
}

// Running reports whether the child has not exited.
func (c *Child) Running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// WaitHTTP polls url until accept(status) holds for its answer, the child
// exits, ctx ends or timeout passes.
func WaitHTTP(ctx context.Context, c *Child, url string, timeout time.Duration, accept func(status int) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
			resp.Body.Close()
			if accept(resp.StatusCode) {
				return nil
			}
		}
		select {
		case <-c.exited:
			return fmt.Errorf("%s exited during startup (%v): %s", c.Name, c.waitErr, c.Out)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %v: %w: %s", c.Name, timeout, ctx.Err(), c.Out)
		case <-tick.C:
		}
	}
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago, for servers that bind their own listeners from a configuration
// file. The rare collision is the caller's to retry.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// BuildGateway builds cmd/tokenguard into dir, in the main module (whose
// go.mod and go.sum, not the bench module's, list the gateway's
// dependencies), and returns the binary's path. It must run from within
// the bench module.
func BuildGateway(ctx context.Context, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, BuildTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/tokenguard/tokenguard").Output()
	if err != nil {
		return "", fmt.Errorf("locating the main module (run from bench/, or pass -gateway): %w", err)
	}
	root := strings.TrimSpace(string(out))
	bin := filepath.Join(dir, "tokenguard")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/tokenguard")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/tokenguard in %s: %w\n%s", root, err, out)
	}
	return bin, nil
}

// TailBuffer keeps the last Max bytes written to it. It is safe for
// concurrent use.
type TailBuffer struct {
	Max int
	mu  sync.Mutex // guards buf
	buf []byte
}

func (t *TailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.Max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// String returns the kept bytes, trimmed, after a newline, or "(no output)".
func (t *TailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	if s == "" {
		return "(no output)"
	}
	return "\n" + s
}

// FirstLine passes everything to W and sends the first complete line on
// C (which must have room for one).
type FirstLine struct {
	W    io.Writer
	C    chan<- string
	line []byte
	done bool
}

func (f *FirstLine) Write(p []byte) (int, error) {
	if !f.done {
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			f.C <- string(append(f.line, p[:i]...))
			f.done, f.line = true, nil
		} else if len(f.line) < 4<<10 {
			f.line = append(f.line, p...)
		}
	}
	return f.W.Write(p)
}

// ErrChildExited reports a child that stopped during the measurement.
var ErrChildExited = errors.New("a child process exited during the run")
