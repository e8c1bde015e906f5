package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/testkit"
)

// runHealthcheck runs "tokenguard healthcheck args..." in process with
// env as the environment, and returns the exit code and stderr. It fails
// the test if the command writes to stdout or takes longer than wait.
func runHealthcheck(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr lockedBuffer
	c := &cli{stdout: &stdout, stderr: &stderr, getenv: envOf(env)}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	start := time.Now()
	code := c.run(ctx, append([]string{"healthcheck"}, args...))
	if d := time.Since(start); d > wait {
		t.Errorf("healthcheck took %v", d)
	}
	if stdout.String() != "" {
		t.Errorf("healthcheck wrote to stdout: %q", stdout.String())
	}
	return code, stderr.String()
}

// TestHealthcheckAnswers: only a 200 is ready; every other answer, or
// none within -timeout, exits 1 with one line saying why.
func TestHealthcheckAnswers(t *testing.T) {
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || r.Method != http.MethodGet {
			http.Error(w, "wrong request "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		fmt.Fprintln(w, "ready")
	}))
	t.Cleanup(ready.Close)
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/starting", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "starting", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/hostile", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, "bad\x1b[31m\tnews\r\nsecond line\n"+strings.Repeat("x", 10000))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, ready.URL+"/readyz", http.StatusFound)
	})
	mux.HandleFunc("/no-content", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	other := httptest.NewServer(mux)
	t.Cleanup(other.Close)
	t.Cleanup(func() { close(release) })
	closed := testkit.ClosedAddr(t)

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr []string // each must appear
		maxTime    time.Duration
	}{
		{"ready", []string{"-url", ready.URL + "/readyz"}, exitOK, nil, 0},
		{"503 with its reason", []string{"-url", other.URL + "/starting"}, exitError,
			[]string{"GET " + other.URL + "/starting: 503 Service Unavailable: starting"}, 0},
		{"another 2xx is not ready", []string{"-url", other.URL + "/no-content"}, exitError, []string{"204 No Content"}, 0},
		{"a redirect is not followed", []string{"-url", other.URL + "/redirect"}, exitError, []string{"302 Found"}, 0},
		{"the body cannot write lines or escapes", []string{"-url", other.URL + "/hostile"}, exitError,
			[]string{"500 Internal Server Error: bad?[31m?news"}, 0},
		{"nothing listens", []string{"-url", "http://" + closed + "/readyz"}, exitError, []string{"connection refused"}, 0},
		{"no answer within -timeout", []string{"-url", other.URL + "/hang", "-timeout", "300ms"}, exitError,
			[]string{other.URL + "/hang", "deadline exceeded"}, 2 * time.Second},
		{"the default timeout is 2s", []string{"-url", other.URL + "/hang"}, exitError,
			[]string{"deadline exceeded"}, healthcheckTimeout + time.Second},
		{"the password in -url is not printed", []string{"-url", "http://user:hunter2@" + closed + "/readyz"}, exitError,
			[]string{"connection refused"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			code, stderr := runHealthcheck(t, nil, tt.args...)
			elapsed := time.Since(start)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstderr: %s", code, tt.wantCode, stderr)
			}
			if tt.wantCode == exitOK && stderr != "" {
				t.Errorf("stderr %q, want nothing", stderr)
			}
			if tt.wantCode != exitOK && (strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "tokenguard healthcheck: ")) {
				t.Errorf("stderr %q: want one line starting with \"tokenguard healthcheck: \"", stderr)
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr %q lacks %q", stderr, want)
				}
			}
			if strings.Contains(stderr, "hunter2") || strings.Contains(stderr, "second line") {
				t.Errorf("stderr %q shows what it must not", stderr)
			}
			if tt.maxTime > 0 && elapsed > tt.maxTime {
				t.Errorf("took %v, want at most %v", elapsed, tt.maxTime)
			}
		})
	}
}

// TestHealthcheckConfig: the probe asks /readyz on the file's
// metrics_listen, on loopback when it names no particular host, reading
// nothing else from the file.
func TestHealthcheckConfig(t *testing.T) {
	var mu sync.Mutex
	var asked []string // local addresses of the connections srv accepted; guarded by mu
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "ready")
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			asked = append(asked, c.LocalAddr().String())
			mu.Unlock()
		}
	}
	srv.Start() // on 127.0.0.1
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	dir := t.TempDir()
	file := func(text string) string {
		f, err := os.CreateTemp(dir, "*.yaml")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(text); err != nil {
			t.Fatal(err)
		}
		return f.Name()
	}
	// A whole configuration whose secrets are not in the environment: the
	// probe needs none of them.
	full := file(testkit.GatewayYAML("https://issuer.example.com", "https://issuer.example.com/jwks", "http://127.0.0.1:1", "") +
		"replay_store: redis://:${REDIS_PASSWORD}@127.0.0.1:6379/0\n")
	full = rewrite(t, full, "metrics_listen: 127.0.0.1:0\n", "metrics_listen: 0.0.0.0:"+port+"\n")

	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"127.0.0.1", nil, []string{"-config", file("metrics_listen: 127.0.0.1:" + port + "\n")}, exitOK, ""},
		{"0.0.0.0 is asked on loopback", nil, []string{"-config", file("metrics_listen: 0.0.0.0:" + port + "\n")}, exitOK, ""},
		{"no host is asked on loopback", nil, []string{"-config", file(`metrics_listen: ":` + port + `"` + "\n")}, exitOK, ""},
		{"[::] is asked on loopback", nil, []string{"-config", file(`metrics_listen: "[::]:` + port + `"` + "\n")}, exitOK, ""},
		{"a full file without its secrets", nil, []string{"-config", full}, exitOK, ""},
		{"TOKENGUARD_CONFIG", map[string]string{"TOKENGUARD_CONFIG": full}, nil, exitOK, ""},
		{"-config wins over TOKENGUARD_CONFIG", map[string]string{"TOKENGUARD_CONFIG": filepath.Join(dir, "missing.yaml")},
			[]string{"-config", full}, exitOK, ""},
		{"-url ignores TOKENGUARD_CONFIG", map[string]string{"TOKENGUARD_CONFIG": filepath.Join(dir, "missing.yaml")},
			[]string{"-url", srv.URL + "/readyz"}, exitOK, ""},
		{"${NAME} is expanded", map[string]string{"METRICS_ADDR": "0.0.0.0:" + port},
			[]string{"-config", file("metrics_listen: ${METRICS_ADDR}\n")}, exitOK, ""},
		{"an unset variable", nil, []string{"-config", file("metrics_listen: ${METRICS_ADDR}\n")}, exitError,
			"environment variable METRICS_ADDR is not set"},
		{"$${ is literal", map[string]string{"X": "127.0.0.1:" + port}, []string{"-config", file("metrics_listen: $${X}\n")}, exitError,
			`metrics_listen "${X}" is not host:port`},
		{"a bad reference", nil, []string{"-config", file("metrics_listen: ${1X}\n")}, exitError, "${1X} is not a valid variable reference"},
		{"no metrics_listen", nil, []string{"-config", file("listen: 127.0.0.1:8080\n")}, exitError, "no metrics_listen"},
		{"port 0", nil, []string{"-config", file("metrics_listen: 127.0.0.1:0\n")}, exitError, "port 0 is chosen at start-up"},
		{"not host:port", nil, []string{"-config", file("metrics_listen: localhost\n")}, exitError, "is not host:port"},
		{"not YAML", nil, []string{"-config", file("metrics_listen: [\n")}, exitError, "yaml:"},
		{"missing file", nil, []string{"-config", filepath.Join(dir, "missing.yaml")}, exitError, "no such file"},
		{"too large", nil, []string{"-config", file("metrics_listen: 127.0.0.1:" + port + "\n#" + strings.Repeat("x", maxHealthcheckConfig))},
			exitError, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			asked = nil
			mu.Unlock()
			code, stderr := runHealthcheck(t, tt.env, tt.args...)
			mu.Lock()
			defer mu.Unlock()
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstderr: %s", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q lacks %q", stderr, tt.wantStderr)
			}
			if code == exitOK && (len(asked) != 1 || asked[0] != srv.Listener.Addr().String()) {
				t.Errorf("connections to %v, want one to %s", asked, srv.Listener.Addr())
			}
			if code != exitOK && len(asked) != 0 {
				t.Errorf("connections to %v, want none", asked)
			}
		})
	}
}

// rewrite replaces old in the file at name, which must contain it.
func rewrite(t *testing.T, name, old, new string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s lacks %q", name, old)
	}
	if err := os.WriteFile(name, []byte(strings.Replace(string(data), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestReadyzURL(t *testing.T) {
	tests := []struct {
		listen, want, wantErr string
	}{
		{"127.0.0.1:9090", "http://127.0.0.1:9090/readyz", ""},
		{"0.0.0.0:9090", "http://127.0.0.1:9090/readyz", ""},
		{":9090", "http://127.0.0.1:9090/readyz", ""},
		{"[::]:9090", "http://127.0.0.1:9090/readyz", ""},
		{"[::1]:9090", "http://[::1]:9090/readyz", ""},
		{"10.1.2.3:9090", "http://10.1.2.3:9090/readyz", ""},
		{"metrics.internal:9090", "http://metrics.internal:9090/readyz", ""},
		{"localhost:9090", "http://localhost:9090/readyz", ""},
		{"0.0.0.0:0", "", "port 0"},
		{"0.0.0.0:00", "", "port 0"},
		{"0.0.0.0:http", "", "port must be a number"},
		{"0.0.0.0:70000", "", "port must be a number"},
		{"9090", "", "not host:port"},
	}
	for _, tt := range tests {
		got, err := readyzURL(tt.listen)
		if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("readyzURL(%q) = %q, %v; want %q, %q", tt.listen, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestHealthcheckUsage: the help, and usage errors, which exit 1 (not 2:
// Docker reserves a HEALTHCHECK's exit status 2).
func TestHealthcheckUsage(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "tokenguard.yaml")
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"-h", nil, []string{"-h"}, exitOK, "Usage: tokenguard healthcheck"},
		{"-h shows the variable", nil, []string{"-h"}, exitOK, "$TOKENGUARD_CONFIG"},
		{"neither -config nor -url", nil, nil, exitError, "-config FILE is required (or set TOKENGUARD_CONFIG to the file's path), or -url URL"},
		{"both -config and -url", nil, []string{"-config", cfgFile, "-url", "http://127.0.0.1:1/readyz"}, exitError, "give one, not both"},
		{"-url not http", nil, []string{"-url", "ftp://127.0.0.1/readyz"}, exitError, "want an absolute http:// or https:// URL"},
		{"-url relative", nil, []string{"-url", "/readyz"}, exitError, "want an absolute http:// or https:// URL"},
		{"extra argument", nil, []string{"-config", cfgFile, "now"}, exitError, `unexpected argument "now"`},
		{"unknown flag", nil, []string{"-retries", "3"}, exitError, "flag provided but not defined"},
		{"-timeout 0", nil, []string{"-config", cfgFile, "-timeout", "0s"}, exitError, "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stderr := runHealthcheck(t, tt.env, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstderr: %s", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q lacks %q", stderr, tt.wantStderr)
			}
		})
	}

	var stdout lockedBuffer
	c := &cli{stdout: &stdout, stderr: &stdout, getenv: envOf(nil)}
	c.run(context.Background(), []string{"help"})
	if !strings.Contains(stdout.String(), "tokenguard healthcheck [-config FILE | -url URL]") {
		t.Errorf("help does not list healthcheck:\n%s", stdout.String())
	}
}

// TestHealthcheckBinary runs the built gateway and the built healthcheck
// against it, as a container runtime would: not ready while nothing
// listens, while it starts and while its issuer's keys are missing; ready
// once they load; not ready again as soon as SIGTERM starts the drain,
// and after it has exited.
func TestHealthcheckBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	is := testkit.StartIssuer(t)
	is.FailJWKS(http.StatusServiceUnavailable)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(up.Close)
	metrics := testkit.ClosedAddr(t)
	cfgFile := filepath.Join(t.TempDir(), "tokenguard.yaml")
	yml := testkit.GatewayYAML(is.URL(), is.URL()+"/jwks", up.URL,
		"drain_delay: 3s\nshutdown_timeout: 1s\njwks_min_refresh_interval: 1s\n")
	yml = strings.Replace(yml, "metrics_listen: 127.0.0.1:0\n", "metrics_listen: "+metrics+"\n", 1)
	yml = strings.Replace(yml, "startup_wait: 5s\n", "startup_wait: 1s\n", 1)
	testkit.WriteAtomic(t, cfgFile, []byte(yml))

	// healthcheck runs the binary's healthcheck, with the file from
	// TOKENGUARD_CONFIG as in the image, and returns its exit status and
	// stderr.
	healthcheck := func() (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "healthcheck")
		cmd.Env = append(os.Environ(), "TOKENGUARD_CONFIG="+cfgFile)
		out, err := cmd.Output()
		if len(out) > 0 {
			t.Errorf("healthcheck wrote to stdout: %q", out)
		}
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, ""
		case errors.As(err, &ee):
			return ee.ExitCode(), string(ee.Stderr)
		}
		t.Fatalf("healthcheck: %v", err)
		return -1, ""
	}
	expect := func(what string, wantCode int, wantStderr string) {
		t.Helper()
		code, stderr := healthcheck()
		if code != wantCode || !strings.Contains(stderr, wantStderr) {
			t.Errorf("%s: healthcheck exit %d, stderr %q; want %d and %q", what, code, stderr, wantCode, wantStderr)
		}
	}

	expect("before the gateway runs", exitError, "connection refused")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	gw := exec.CommandContext(ctx, bin, "serve", "-config", cfgFile)
	var logs lockedBuffer
	gw.Stderr = &logs
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	var exitErr error
	exited := make(chan struct{})
	go func() { exitErr = gw.Wait(); close(exited) }()
	t.Cleanup(func() {
		gw.Process.Kill()
		select {
		case <-exited:
		case <-time.After(wait):
		}
	})

	// Up, but not ready: starting, then without keys.
	waitUntil(t, func() bool {
		resp, err := client.Get("http://" + metrics + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, "the metrics listener", &logs)
	code, stderr := healthcheck()
	if code != exitError || !strings.Contains(stderr, "503 Service Unavailable") {
		t.Errorf("while the keys are missing: healthcheck exit %d, stderr %q; want 1 and a 503", code, stderr)
	}
	waitUntil(t, func() bool { return strings.Contains(logs.String(), "issuer keys not loaded yet") }, "the end of startup_wait", &logs)
	expect("past startup_wait, the keys missing", exitError, "503 Service Unavailable: issuer keys not loaded")

	// Ready once the keys load.
	is.FailJWKS(0)
	waitUntil(t, func() bool { code, _ := healthcheck(); return code == exitOK }, "a ready healthcheck", &logs)

	// Draining: not ready while the gateway still serves (drain_delay).
	if err := gw.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { code, _ := healthcheck(); return code != exitOK }, "an unready healthcheck after SIGTERM", &logs)
	expect("draining", exitError, "503 Service Unavailable: shutting down")

	select {
	case <-exited:
		if exitErr != nil {
			t.Errorf("the gateway exited with %v:\n%s", exitErr, logs.String())
		}
	case <-time.After(wait):
		t.Fatalf("the gateway did not exit after SIGTERM:\n%s", logs.String())
	}
	expect("after the gateway exited", exitError, "connection refused")
}
