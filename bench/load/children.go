package main

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
	buildTimeout   = 5 * time.Minute  // go build of the gateway, cold cache on a busy machine
	helperStartup  = 15 * time.Second // a helper prints its address
	gatewayStartup = 30 * time.Second // the gateway's /readyz answers 200 (it fetches the JWKS first)
	stopGrace      = 5 * time.Second  // a child exits after its lifeline closes or SIGINT
	childLogTail   = 16 << 10         // bytes of a child's output kept for error messages
)

// child is a process started by the load generator.
type child struct {
	name     string
	cmd      *exec.Cmd
	lifeline io.WriteCloser // the child's stdin; closing it asks a helper to exit
	out      *tailBuffer
	exited   chan struct{} // closed when the process has been waited for
	waitErr  error         // valid once exited is closed
	stopOnce sync.Once
}

// startChild starts bin with args; the first line it prints on stdout is
// sent on the returned channel.
func startChild(name, bin string, args ...string) (*child, <-chan string, error) {
	cmd := exec.Command(bin, args...)
	setDeathSignal(cmd)
	c := &child{name: name, cmd: cmd, out: &tailBuffer{max: childLogTail}, exited: make(chan struct{})}
	first := make(chan string, 1)
	cmd.Stdout = &firstLine{w: c.out, ch: first}
	cmd.Stderr = c.out
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

// startHelper starts "self name args..." and returns it with the address
// it listens on.
func startHelper(ctx context.Context, self, name string, args ...string) (*child, string, error) {
	c, first, err := startChild(name, self, append([]string{name}, args...)...)
	if err != nil {
		return nil, "", err
	}
	timer := time.NewTimer(helperStartup)
	defer timer.Stop()
	select {
	case line := <-first:
		addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
		if !ok {
			c.stop()
			return nil, "", fmt.Errorf("%s: unexpected first line %q", name, line)
		}
		return c, addr, nil
	case <-c.exited:
		return nil, "", fmt.Errorf("%s exited during startup (%v): %s", name, c.waitErr, c.out)
	case <-timer.C:
		err = fmt.Errorf("%s did not start within %v: %s", name, helperStartup, c.out)
	case <-ctx.Done():
		err = ctx.Err()
	}
	c.stop()
	return nil, "", err
}

// stop ends the child: its lifeline is closed (helpers exit), then it gets
// SIGINT (the gateway drains and exits), then, after stopGrace, SIGKILL.
// It returns once the process is gone, within 2·stopGrace.
func (c *child) stop() {
	c.stopOnce.Do(func() {
		_ = c.lifeline.Close()
		_ = c.cmd.Process.Signal(os.Interrupt)
		select {
		case <-c.exited:
			return
		case <-time.After(stopGrace):
		}
		_ = c.cmd.Process.Kill()
		select {
		case <-c.exited:
		case <-time.After(stopGrace):
			fmt.Fprintf(os.Stderr, "load: %s (pid %d) did not exit after SIGKILL\n", c.name, c.cmd.Process.Pid)
		}
	})
}

// running reports whether the child has not exited.
func (c *child) running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// gatewaySetup is what the gateway's configuration refers to.
type gatewaySetup struct {
	Listen, MetricsListen string // 127.0.0.1:port
	Upstream              string // http://127.0.0.1:port
	Issuer                string // http://127.0.0.1:port
}

// Gateway configuration constants.
const (
	gatewayAudience      = "https://api.load.test"
	gatewayStartAttempts = 3 // a free port can be taken between probing and binding
)

// gatewayConfig renders the gateway's YAML configuration.
func gatewayConfig(s gatewaySetup) string {
	return fmt.Sprintf(`# Written by bench/load for one run.
listen: %[1]s
metrics_listen: %[2]s
upstream: %[3]s
public_url: http://%[1]s
audience: %[4]s
issuers:
  - issuer: %[5]s
    jwks_uri: %[5]s/jwks
dpop:
  mode: allowed
  replay_store: memory
routes:
  - pattern: "GET /orders/"
    scopes: [%[6]s]
log_level: warn
startup_wait: 10s
shutdown_timeout: 2s
`, s.Listen, s.MetricsListen, s.Upstream, gatewayAudience, s.Issuer, routeScope)
}

// startGatewayProcess writes the gateway's configuration in dir, starts
// bin on it and waits until its /readyz answers 200. It returns the
// gateway's base URL (its public_url).
func startGatewayProcess(ctx context.Context, bin, dir, upstream, issuer string) (*child, string, error) {
	var lastErr error
	for range gatewayStartAttempts {
		listen, err := freeAddr()
		if err != nil {
			return nil, "", err
		}
		metrics, err := freeAddr()
		if err != nil {
			return nil, "", err
		}
		cfgPath := filepath.Join(dir, "gateway.yaml")
		cfg := gatewayConfig(gatewaySetup{Listen: listen, MetricsListen: metrics, Upstream: upstream, Issuer: issuer})
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			return nil, "", err
		}
		c, _, err := startChild("gateway", bin, "-config", cfgPath)
		if err != nil {
			return nil, "", err
		}
		err = waitReady(ctx, c, "http://"+metrics+"/readyz")
		if err == nil {
			return c, "http://" + listen, nil
		}
		c.stop()
		lastErr = err
		if !strings.Contains(c.out.String(), "address already in use") {
			break
		}
	}
	return nil, "", lastErr
}

// waitReady polls url until it answers 200, the child exits or
// gatewayStartup passes.
func waitReady(ctx context.Context, c *child, url string) error {
	ctx, cancel := context.WithTimeout(ctx, gatewayStartup)
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
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.exited:
			return fmt.Errorf("gateway exited during startup (%v): %s", c.waitErr, c.out)
		case <-ctx.Done():
			return fmt.Errorf("gateway not ready within %v: %w: %s", gatewayStartup, ctx.Err(), c.out)
		case <-tick.C:
		}
	}
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago. The gateway binds its own listeners from the configuration file, so
// the port must be chosen before it starts; the rare collision is retried
// by startGatewayProcess.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// buildGateway builds cmd/tokenguard into dir, in the main module (whose
// go.mod and go.sum, not the bench module's, list the gateway's
// dependencies), and returns the binary's path.
func buildGateway(ctx context.Context, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
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

// tailBuffer keeps the last max bytes written to it. It is safe for
// concurrent use.
type tailBuffer struct {
	max int
	mu  sync.Mutex // guards buf
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	if s == "" {
		return "(no output)"
	}
	return "\n" + s
}

// firstLine passes everything to w and sends the first complete line on
// ch (which must have room for one).
type firstLine struct {
	w    io.Writer
	ch   chan<- string
	line []byte
	done bool
}

func (f *firstLine) Write(p []byte) (int, error) {
	if !f.done {
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			f.ch <- string(append(f.line, p[:i]...))
			f.done, f.line = true, nil
		} else if len(f.line) < 4<<10 {
			f.line = append(f.line, p...)
		}
	}
	return f.w.Write(p)
}

// errChildExited reports a child that stopped during the measurement.
var errChildExited = errors.New("a child process exited during the run")
