package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/devissuer"
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

// binaryProcess is a running gateway binary started by startBinary.
type binaryProcess struct {
	cmd     *exec.Cmd
	exited  chan error // receives cmd.Wait's result once stderr is closed
	logs    *lockedBuffer
	addr    string // listen
	metrics string // metrics_listen; "" without one
}

// startBinary runs bin -config cfgFile and waits (bounded) for its
// "started" log line; the test's cleanup sends SIGTERM, and kills the
// process if it has not exited within wait.
func startBinary(ctx context.Context, t *testing.T, bin, cfgFile string) *binaryProcess {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "-config", cfgFile)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &binaryProcess{cmd: cmd, exited: make(chan error, 1), logs: &lockedBuffer{}}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(wait):
			cmd.Process.Kill()
		}
	})
	started := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`msg="tokenguard gateway started" listen=(\S+)`)
		metrics := regexp.MustCompile(` metrics_listen=(\S+)`)
		for sc.Scan() {
			fmt.Fprintln(p.logs, sc.Text())
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				m = append(m, "")
				if mm := metrics.FindStringSubmatch(sc.Text()); mm != nil {
					m[2] = mm[1]
				}
				select {
				case started <- m:
				default:
				}
			}
		}
		p.exited <- cmd.Wait()
	}()
	select {
	case m := <-started:
		p.addr, p.metrics = m[1], m[2]
	case <-time.After(wait):
		t.Fatalf("the binary did not start:\n%s", p.logs)
	}
	return p
}

// TestSIGHUPBinary builds the gateway, serves TLS, replaces the
// certificate files and sends SIGHUP: the process must stay up and serve
// the new certificate.
func TestSIGHUPBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	tb := startTLSBinary(t, "")
	is, up, one, two, certFile, keyFile, cfgFile, p := tb.is, tb.up, tb.one, tb.two, tb.certFile, tb.keyFile, tb.cfgFile, tb.p
	cmd, exited, logs, addr := p.cmd, p.exited, p.logs, p.addr

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

// TestSIGHUPBinaryClientCerts: with tls.client_certs request, SIGHUP
// reloads the server certificate and the gateway still asks every client
// for a certificate: a token bound to a client certificate (cnf."x5t#S256",
// RFC 8705) passes with that certificate before and after the reload, and
// is refused without it (certificate_required).
func TestSIGHUPBinaryClientCerts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	tb := startTLSBinary(t, "  client_certs: request\n")
	is, one, two, certFile, keyFile, p := tb.is, tb.one, tb.two, tb.certFile, tb.keyFile, tb.p
	if p.metrics == "" {
		t.Fatalf("no metrics_listen in the start line:\n%s", p.logs)
	}

	// The clients' certificates are self-signed: the gateway verifies no
	// chain (RFC 8705 §2.2), so any certificate binds.
	alice, bob := testkit.NewCert(t, 10), testkit.NewCert(t, 11)
	sum := sha256.Sum256(alice.Cert.Raw)
	bound, err := is.Mint("orders:read", time.Hour, map[string]any{"cnf": map[string]any{"x5t#S256": base64.RawURLEncoding.EncodeToString(sum[:])}})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(one.Cert)
	pool.AddCert(two.Cert)
	// clientOf presents c (nil: none) when asked, on a new connection for
	// every request, so each is a new handshake.
	clientOf := func(c *testkit.Cert) *http.Client {
		cfg := &tls.Config{RootCAs: pool}
		if c != nil {
			pair, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Timeout: wait, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true, DisableKeepAlives: true}}
	}
	asAlice, asBob, anonymous := clientOf(alice), clientOf(bob), clientOf(nil)
	type answer struct {
		status    int
		serial    string
		challenge string
	}
	get := func(t *testing.T, c *http.Client) answer {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://"+p.addr+"/orders/1", nil)
		req.Header.Set("Authorization", "Bearer "+bound)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return answer{resp.StatusCode, resp.TLS.PeerCertificates[0].SerialNumber.String(), resp.Header.Get("WWW-Authenticate")}
	}
	// denied reads tokenguard_requests_total for a denial reason.
	denied := func(t *testing.T, reason string) int {
		t.Helper()
		resp, err := client.Get("http://" + p.metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`(?m)^tokenguard_requests_total\{reason="` + reason + `",result="denied"\} (\d+)$`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("no %s counter in /metrics", reason)
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	// check sends the bound token with each certificate and wants serial
	// from the server.
	check := func(t *testing.T, serial string) {
		if a := get(t, asAlice); a.status != http.StatusOK || a.serial != serial {
			t.Errorf("its certificate: %d from serial %s, want 200 from serial %s", a.status, a.serial, serial)
		}
		for _, tt := range []struct {
			name   string
			c      *http.Client
			reason string
		}{
			{"no certificate", anonymous, "certificate_required"},
			{"another certificate", asBob, "certificate_mismatch"},
		} {
			before := denied(t, tt.reason)
			a := get(t, tt.c)
			if a.status != http.StatusUnauthorized || !strings.Contains(a.challenge, `error="invalid_token"`) {
				t.Errorf("%s: %d %q, want 401 invalid_token", tt.name, a.status, a.challenge)
			}
			if after := denied(t, tt.reason); after != before+1 {
				t.Errorf("%s: %s went from %d to %d, want one more", tt.name, tt.reason, before, after)
			}
		}
	}
	t.Run("before SIGHUP", func(t *testing.T) { check(t, "1") })

	two.Write(t, certFile, keyFile)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool {
		select {
		case err := <-p.exited:
			t.Fatalf("SIGHUP ended the process (%v):\n%s", err, p.logs)
		default:
		}
		return get(t, anonymous).serial == "2"
	}, "the new certificate after SIGHUP", p.logs)
	t.Run("after SIGHUP", func(t *testing.T) { check(t, "2") })
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

// tlsBinary is the gateway binary serving TLS with certificate one (serial
// 1) from certFile and keyFile, two (serial 2) ready to replace it.
type tlsBinary struct {
	is                         *devissuer.Issuer
	up                         *httptest.Server
	one, two                   *testkit.Cert
	certFile, keyFile, cfgFile string
	p                          *binaryProcess
}

// startTLSBinary builds and starts the binary with a tls block, to which
// tlsExtra (indented YAML lines) is added.
func startTLSBinary(t *testing.T, tlsExtra string) *tlsBinary {
	t.Helper()
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	b := &tlsBinary{is: testkit.StartIssuer(t)}
	b.up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(b.up.Close)
	dir := t.TempDir()
	b.certFile, b.keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	b.one, b.two = testkit.NewCert(t, 1), testkit.NewCert(t, 2)
	b.one.Write(t, b.certFile, b.keyFile)
	b.cfgFile = filepath.Join(dir, "tokenguard.yaml")
	testkit.WriteAtomic(t, b.cfgFile, []byte(testkit.GatewayYAML(b.is.URL(), b.is.URL()+"/jwks", b.up.URL,
		fmt.Sprintf("tls:\n  cert_file: %s\n  key_file: %s\n  reload_interval: 1h\n%sshutdown_timeout: 2s\n", b.certFile, b.keyFile, tlsExtra))))
	b.p = startBinary(ctx, t, bin, b.cfgFile)
	return b
}
