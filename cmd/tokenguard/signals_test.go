package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/testkit"
)

var built struct {
	once sync.Once
	bin  string
	err  error
	out  []byte
}

// buildBinary builds the command once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the binary with")
	}
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "tokenguard-bin")
		if err != nil {
			built.err = err
			return
		}
		built.bin = filepath.Join(dir, "tokenguard")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		built.out, built.err = exec.CommandContext(ctx, goCmd, "build", "-o", built.bin, ".").CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("go build: %v\n%s", built.err, built.out)
	}
	return built.bin
}

// TestSIGHUPBinary builds the gateway, serves TLS, replaces the
// certificate files and sends SIGHUP: the process must stay up and serve
// the new certificate.
func TestSIGHUPBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	is := testkit.StartIssuer(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(up.Close)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	one, two := testkit.NewCert(t, 1), testkit.NewCert(t, 2)
	one.Write(t, certFile, keyFile)
	cfgFile := filepath.Join(dir, "tokenguard.yaml")
	testkit.WriteAtomic(t, cfgFile, []byte(testkit.GatewayYAML(is.URL(), is.URL()+"/jwks", up.URL,
		fmt.Sprintf("tls:\n  cert_file: %s\n  key_file: %s\n  reload_interval: 1h\nshutdown_timeout: 2s\n", certFile, keyFile))))
	cmd := exec.CommandContext(ctx, bin, "-config", cfgFile)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(wait):
			cmd.Process.Kill()
		}
	})
	listen := make(chan string, 1)
	logs := &lockedBuffer{}
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`msg="tokenguard gateway started" listen=(\S+)`)
		for sc.Scan() {
			fmt.Fprintln(logs, sc.Text())
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				listen <- m[1]
			}
		}
		exited <- cmd.Wait()
	}()
	var addr string
	select {
	case addr = <-listen:
	case <-time.After(wait):
		t.Fatalf("the binary did not start:\n%s", logs)
	}

	// A client that trusts both certificates and opens a new connection
	// for every request, so each sees the certificate served at that
	// moment.
	pool := x509.NewCertPool()
	pool.AddCert(one.Cert)
	pool.AddCert(two.Cert)
	c := &http.Client{Timeout: wait, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
	serial := func() string {
		resp, err := c.Get("https://" + addr + "/nothing")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.TLS.PeerCertificates[0].SerialNumber.String()
	}
	if s := serial(); s != "1" {
		t.Fatalf("serial %s, want 1", s)
	}
	two.Write(t, certFile, keyFile)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	for serial() != "2" {
		select {
		case err := <-exited:
			t.Fatalf("SIGHUP ended the process (%v):\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the certificate did not change after SIGHUP:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// SIGHUP reloads the configuration: a new route answers 401 where
	// there was none (404).
	code := func() int {
		resp, err := c.Get("https://" + addr + "/nothing")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	base := testkit.GatewayYAML(is.URL(), is.URL()+"/jwks", up.URL,
		fmt.Sprintf("tls:\n  cert_file: %s\n  key_file: %s\n  reload_interval: 1h\nshutdown_timeout: 2s\n", certFile, keyFile))
	testkit.WriteAtomic(t, cfgFile, []byte(strings.Replace(base, "routes:\n", "routes:\n  - pattern: \"GET /nothing\"\n    scopes: [x]\n", 1)))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return code() == http.StatusUnauthorized }, "the reloaded route", logs)

	// A broken file keeps the running configuration, says why with the
	// line, and the certificate is still reloaded.
	one.Write(t, certFile, keyFile)
	testkit.WriteAtomic(t, cfgFile, []byte(base+"no_such_key: 1\n"))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return serial() == "1" }, "the certificate after a broken reload", logs)
	if code() != http.StatusUnauthorized {
		t.Errorf("a broken file changed the running configuration")
	}
	waitUntil(t, func() bool {
		return strings.Contains(logs.String(), "configuration reload failed; keeping the running configuration") &&
			strings.Contains(logs.String(), "no_such_key")
	}, "the failure in the log", logs)
}

// waitUntil polls cond for up to wait.
func waitUntil(t *testing.T, cond func() bool, what string, logs fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s:\n%s", what, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSIGTERMCutDrain: SIGTERM while a request outlasts shutdown_timeout
// ends the process with a non-zero exit status and a log line that says
// how many requests were cut, so an orchestrator can tell a clean drain
// from a cut one; a clean drain exits 0.
func TestSIGTERMCutDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	is := testkit.StartIssuer(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(up.Close)
	defer close(release)
	for _, tt := range []struct {
		name     string
		stuck    bool
		wantCode int
	}{
		{"clean drain", false, 0},
		{"cut drain", true, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfgFile := filepath.Join(t.TempDir(), "tokenguard.yaml")
			testkit.WriteAtomic(t, cfgFile, []byte(testkit.GatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "shutdown_timeout: 300ms\n")))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "-config", cfgFile)
			var stderr lockedBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			re := regexp.MustCompile(`msg="tokenguard gateway started" listen=(\S+)`)
			var addr string
			for deadline := time.Now().Add(wait); addr == ""; time.Sleep(10 * time.Millisecond) {
				if m := re.FindStringSubmatch(stderr.String()); m != nil {
					addr = m[1]
				} else if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("the binary did not start:\n%s", stderr.String())
				}
			}
			if tt.stuck {
				go func() {
					req, _ := http.NewRequest("GET", "http://"+addr+"/slow", nil)
					req.Header.Set("Authorization", "Bearer "+testkit.Mint(t, is, "orders:read"))
					if resp, err := client.Do(req); err == nil {
						resp.Body.Close()
					}
				}()
				select {
				case <-entered:
				case <-time.After(wait):
					t.Fatal("the slow request did not reach the upstream")
				}
			}
			cmd.Process.Signal(syscall.SIGTERM)
			err := cmd.Wait()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d:\n%s", code, tt.wantCode, stderr.String())
			}
			if tt.stuck && !strings.Contains(stderr.String(), "shutdown cut 1 request(s)") {
				t.Errorf("the log does not say what was cut:\n%s", stderr.String())
			}
		})
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.bin != "" {
		os.RemoveAll(filepath.Dir(built.bin))
	}
	os.Exit(code)
}
