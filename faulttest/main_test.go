package faulttest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	loadFlag    = flag.Duration("faulttest.load", 0, "duration of the plain load run (0: $FAULTTEST_LOAD, else 30s)")
	workersFlag = flag.Int("faulttest.workers", 12, "concurrent clients in load runs")
)

// gatewayBin is the tokenguard binary TestMain built.
var gatewayBin string

// loadDuration is the plain load run's length: the flag, else
// FAULTTEST_LOAD, else 30 s.
func loadDuration(tb testing.TB) time.Duration {
	if *loadFlag > 0 {
		return *loadFlag
	}
	if v := os.Getenv("FAULTTEST_LOAD"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			tb.Fatalf("FAULTTEST_LOAD=%q is not a positive duration", v)
		}
		return d
	}
	return 30 * time.Second
}

// TestMain builds the gateway once for every test. Under -race the gateway
// is built with -race too, so its own data races surface under load (they
// make the process print "WARNING: DATA RACE", which stopGateway turns into
// a test failure).
func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "faulttest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faulttest:", err)
		os.Exit(1)
	}
	gatewayBin = filepath.Join(dir, "tokenguard")
	args := []string{"build", "-o", gatewayBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/tokenguard/tokenguard/cmd/tokenguard")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	out, err := exec.CommandContext(ctx, goTool, args...).CombinedOutput()
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "faulttest: go %s: %v\n%s", strings.Join(args, " "), err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	if testing.Verbose() {
		fmt.Printf("faulttest: built the gateway (race=%v) in %v\n", raceEnabled, time.Since(start).Round(time.Millisecond))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago. The
// gateway cannot report the port it bound to ":0", so the test picks one;
// startGateway retries if another process takes it first.
func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe for one writer (the exec copier) and
// concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex // guards b
	b   bytes.Buffer
	max int // bytes kept; older output is dropped
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Write(p)
	if s.max > 0 && s.b.Len() > s.max {
		s.b.Next(s.b.Len() - s.max/2)
	}
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// gwConfig is what a test wants from the gateway; startGateway turns it
// into YAML with the ports it picked.
type gwConfig struct {
	Issuers     []gwIssuer
	DPoPMode    string // "" means disabled
	ReplayStore string // "" means memory
	StartupWait string // "" means 2s
	LogLevel    string // "" means warn
	// Extra is YAML appended at the top level verbatim.
	Extra string
}

type gwIssuer struct {
	Issuer, JWKSURI       string
	IntrospectionEndpoint string
	ClientID              string
	ClientSecret          string
	IntrospectionMaxAge   string // introspection_cache_max_age
}

// audience is the resource every test token is minted for.
const audience = "https://api.faulttest.example"

// yaml renders the configuration. Refresh intervals of 1 s make "down
// later", recovery and rotation observable within seconds.
func (c gwConfig) yaml(port, metricsPort int, upstream string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:%d\nmetrics_listen: 127.0.0.1:%d\n", port, metricsPort)
	fmt.Fprintf(&b, "upstream: %s\npublic_url: http://127.0.0.1:%d\naudience: %s\n", upstream, port, audience)
	fmt.Fprintf(&b, "startup_wait: %s\nshutdown_timeout: 2s\nlog_level: %s\n", cmpOr(c.StartupWait, "2s"), cmpOr(c.LogLevel, "warn"))
	b.WriteString("jwks_min_refresh_interval: 1s\njwks_max_refresh_interval: 1s\njwks_refresh_rate_limit: 1s\n")
	b.WriteString("issuers:\n")
	for _, is := range c.Issuers {
		fmt.Fprintf(&b, "  - issuer: %s\n", is.Issuer)
		if is.JWKSURI != "" {
			fmt.Fprintf(&b, "    jwks_uri: %s\n", is.JWKSURI)
		}
		if is.IntrospectionEndpoint != "" {
			fmt.Fprintf(&b, "    introspection_endpoint: %s\n    client_id: %s\n    client_secret: %s\n",
				is.IntrospectionEndpoint, is.ClientID, is.ClientSecret)
		}
		if is.IntrospectionMaxAge != "" {
			fmt.Fprintf(&b, "    introspection_cache_max_age: %s\n", is.IntrospectionMaxAge)
		}
	}
	fmt.Fprintf(&b, "dpop:\n  mode: %s\n", cmpOr(c.DPoPMode, "disabled"))
	if c.ReplayStore != "" {
		fmt.Fprintf(&b, "  replay_store: %s\n", c.ReplayStore)
	}
	b.WriteString("routes:\n  - pattern: \"GET /api/\"\n    scopes: [api:read]\n")
	b.WriteString(c.Extra)
	return b.String()
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// gatewayProc is a running gateway process.
type gatewayProc struct {
	URL, MetricsURL string
	cmd             *exec.Cmd
	stderr          *syncBuffer
	done            chan struct{} // closed when the process has exited
	stopOnce        sync.Once
}

// startGateway writes cfg to a file in t.TempDir, starts the gateway as a
// child process in its own process group and waits (bounded) until
// /healthz answers. It does not wait for /readyz: some tests start it with
// its issuer down. The process is stopped when the test ends, and its
// stderr is printed if the test failed.
func startGateway(t *testing.T, cfg gwConfig, upstream string) *gatewayProc {
	t.Helper()
	dir := t.TempDir()
	for attempt := 1; ; attempt++ {
		port, mport := freePort(t), freePort(t)
		if port == mport {
			continue
		}
		path := filepath.Join(dir, fmt.Sprintf("gateway-%d.yaml", attempt))
		if err := os.WriteFile(path, []byte(cfg.yaml(port, mport, upstream)), 0o600); err != nil {
			t.Fatal(err)
		}
		g := &gatewayProc{
			URL:        fmt.Sprintf("http://127.0.0.1:%d", port),
			MetricsURL: fmt.Sprintf("http://127.0.0.1:%d", mport),
			stderr:     &syncBuffer{max: 4 << 20},
			done:       make(chan struct{}),
		}
		g.cmd = exec.Command(gatewayBin, "-config", path)
		g.cmd.Stderr = g.stderr
		g.cmd.Stdout = g.stderr
		g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := g.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { g.cmd.Wait(); close(g.done) }()
		t.Cleanup(func() {
			g.stop(t)
			if t.Failed() {
				t.Logf("gateway stderr (last 64 KiB):\n%s", tail(g.stderr.String(), 64<<10))
			}
		})
		err := g.waitHealthy(t, 30*time.Second)
		if err == nil {
			return g
		}
		g.stop(t)
		if attempt < 3 && strings.Contains(g.stderr.String(), "address already in use") {
			continue
		}
		t.Fatalf("gateway did not come up: %v\nconfig:\n%s\nstderr:\n%s", err, cfg.yaml(port, mport, upstream), g.stderr.String())
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

var probeClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// waitHealthy polls /healthz until it answers 200, the process exits, or
// timeout passes.
func (g *gatewayProc) waitHealthy(t *testing.T, timeout time.Duration) error {
	deadline := time.Now().Add(boundedWait(t, timeout))
	for {
		select {
		case <-g.done:
			return errors.New("the gateway exited")
		default:
		}
		if code, _ := g.get("/healthz"); code == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("/healthz not 200 within %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReady polls /readyz until it answers 200; it fails the test after
// timeout.
func (g *gatewayProc) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	if err := waitFor(t, timeout, func() bool {
		code, _ := g.get("/readyz")
		return code == http.StatusOK
	}); err != nil {
		_, body := g.get("/readyz")
		t.Fatalf("/readyz: %v (last answer %q)", err, body)
	}
}

// get fetches a path on the metrics listener.
func (g *gatewayProc) get(path string) (int, string) {
	res, err := probeClient.Get(g.MetricsURL + path)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 8<<20))
	return res.StatusCode, string(b)
}

// stop sends SIGTERM to the gateway's process group, then SIGKILL if it
// has not exited within a bound. A data race the -race gateway reported
// fails the test.
func (g *gatewayProc) stop(t *testing.T) {
	g.stopOnce.Do(func() {
		pid := g.cmd.Process.Pid
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-g.done:
		case <-time.After(10 * time.Second):
			t.Errorf("gateway (pid %d) still running 10s after SIGTERM; killing it", pid)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			select {
			case <-g.done:
			case <-time.After(5 * time.Second):
				t.Errorf("gateway (pid %d) still running 5s after SIGKILL", pid)
			}
		}
		if strings.Contains(g.stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("the gateway reported a data race:\n%s", g.stderr.String())
		}
		if strings.Contains(g.stderr.String(), "panic:") {
			t.Errorf("the gateway panicked:\n%s", g.stderr.String())
		}
	})
}

// assertNoLeak fails the test if the gateway's output so far contains any
// of secrets (tokens, their signatures, client secrets): logs must never
// carry them.
func (g *gatewayProc) assertNoLeak(t *testing.T, secrets ...string) {
	t.Helper()
	out := g.stderr.String()
	if len(out) == 0 {
		t.Error("the gateway logged nothing; the leak check needs its logs")
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		sig := s[strings.LastIndexByte(s, '.')+1:] // a JWT's signature, or an opaque token whole
		if strings.Contains(out, s) || len(sig) >= 16 && strings.Contains(out, sig) {
			t.Errorf("the gateway's log contains a secret (%d bytes, starting %.8q)", len(s), s)
		}
	}
}

// boundedWait shortens d so that it ends before the test's deadline.
func boundedWait(t *testing.T, d time.Duration) time.Duration {
	if dl, ok := t.Deadline(); ok {
		if left := time.Until(dl) - 5*time.Second; left < d {
			return max(left, time.Second)
		}
	}
	return d
}

// waitFor polls cond every 50 ms until it holds or timeout (bounded by the
// test's deadline) passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(boundedWait(t, timeout))
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// metrics scrapes /metrics.
func (g *gatewayProc) metrics(t *testing.T) promSamples {
	t.Helper()
	code, body := g.get("/metrics")
	if code != http.StatusOK {
		// Not Fatalf: fault scripts scrape from their own goroutine.
		t.Errorf("/metrics: %d %s", code, tail(body, 200))
		return nil
	}
	var out promSamples
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		s := sample{name: line[:sp], labels: map[string]string{}, value: v}
		if i := strings.IndexByte(s.name, '{'); i >= 0 {
			for _, kv := range strings.Split(strings.TrimSuffix(s.name[i+1:], "}"), ",") {
				k, v, ok := strings.Cut(kv, "=")
				if ok {
					s.labels[k] = strings.Trim(v, `"`)
				}
			}
			s.name = s.name[:i]
		}
		out = append(out, s)
	}
	return out
}

type promSamples []sample

// sum adds the values of every sample called name whose labels include
// each "key=value" in match.
func (ps promSamples) sum(name string, match ...string) float64 {
	var total float64
next:
	for _, s := range ps {
		if s.name != name {
			continue
		}
		for _, m := range match {
			k, v, _ := strings.Cut(m, "=")
			if s.labels[k] != v {
				continue next
			}
		}
		total += s.value
	}
	return total
}
