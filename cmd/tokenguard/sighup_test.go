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
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/testkit"
)

// TestSIGHUPBinary builds the gateway, serves TLS, replaces the
// certificate files and sends SIGHUP: the process must stay up and serve
// the new certificate.
func TestSIGHUPBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the binary with")
	}
	bin := filepath.Join(t.TempDir(), "tokenguard")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, goCmd, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
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
}
