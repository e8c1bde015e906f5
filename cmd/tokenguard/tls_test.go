package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testCert is a self-signed certificate for 127.0.0.1 with a chosen
// serial number, as PEM.
type testCert struct {
	certPEM, keyPEM []byte
	cert            *x509.Certificate
}

func newTestCert(t testing.TB, serial int64) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: "tokenguard test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}),
		cert:    cert,
	}
}

// write puts the certificate and key in place the way a certificate
// manager does: a new file renamed over the old one, so a reader never
// sees half a file.
func (c *testCert) write(t testing.TB, certFile, keyFile string) {
	t.Helper()
	writeAtomic(t, keyFile, c.keyPEM)
	writeAtomic(t, certFile, c.certPEM)
}

func writeAtomic(t testing.TB, name string, data []byte) {
	t.Helper()
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

// tlsClient trusts every certificate in certs, speaks HTTP/2 when offered,
// and opens a new connection for every request, so each one sees the
// certificate served at that moment.
func tlsClient(certs ...*testCert) *http.Client {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c.cert)
	}
	return &http.Client{Timeout: wait, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
		DisableKeepAlives: true,
	}}
}

// servedSerial does a request over TLS and returns the protocol's major
// version, the status and the serial of the certificate the server showed.
func servedSerial(t testing.TB, c *http.Client, url, token string) (proto, status int, serial string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.ProtoMajor, resp.StatusCode, resp.TLS.PeerCertificates[0].SerialNumber.String()
}

func tlsFiles(t testing.TB) (dir, certFile, keyFile string) {
	dir = t.TempDir()
	return dir, filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
}

func TestGatewayTLS(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	_, certFile, keyFile := tlsFiles(t)
	one, two, three := newTestCert(t, 1), newTestCert(t, 2), newTestCert(t, 3)
	one.write(t, certFile, keyFile)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL,
		fmt.Sprintf("tls:\n  cert_file: %s\n  key_file: %s\n  reload_interval: 1s\n", certFile, keyFile)))
	url := "https://" + g.gw.proxyAddr() + "/orders/1"
	c := tlsClient(one, two, three)
	tok := mint(t, is, "orders:read")

	proto, status, serial := servedSerial(t, c, url, tok)
	if proto != 2 || status != http.StatusOK || serial != "1" {
		t.Fatalf("HTTP/%d %d serial %s; want HTTP/2 200 serial 1", proto, status, serial)
	}
	if got := up.last(t).Header.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("X-Forwarded-Proto %q over TLS", got)
	}

	// TLS 1.1 is refused.
	old := &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}
	if conn, err := tls.Dial("tcp", g.gw.proxyAddr(), old); err == nil {
		conn.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
	// Plain HTTP to the TLS port gets no proxied answer.
	if resp, err := client.Get("http://" + g.gw.proxyAddr() + "/orders/1"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP on the TLS listener: %d", resp.StatusCode)
		}
	}

	// New files: picked up by polling.
	two.write(t, certFile, keyFile)
	waitFor(t, func() bool { _, _, s := servedSerial(t, c, url, tok); return s == "2" }, "the new certificate to be served")

	// A broken replacement (the key of another certificate, then not PEM
	// at all) keeps the current certificate.
	writeAtomic(t, keyFile, three.keyPEM)
	waitFor(t, func() bool { return strings.Contains(g.stderr.String(), "reload failed") }, "the failed reload to be logged")
	if _, _, s := servedSerial(t, c, url, tok); s != "2" {
		t.Fatalf("after a mismatched key the server shows serial %s, want 2", s)
	}
	if err := g.gw.reloadCertificate(); err == nil {
		t.Error("reloadCertificate with a mismatched key: no error")
	}
	writeAtomic(t, certFile, []byte("not PEM"))
	if err := g.gw.reloadCertificate(); err == nil {
		t.Error("reloadCertificate with a non-PEM certificate: no error")
	}
	os.Remove(certFile)
	if err := g.gw.reloadCertificate(); err == nil {
		t.Error("reloadCertificate with a missing file: no error")
	}
	time.Sleep(1500 * time.Millisecond) // a poll or two
	if _, _, s := servedSerial(t, c, url, tok); s != "2" {
		t.Fatalf("after broken files the server shows serial %s, want 2", s)
	}
	three.write(t, certFile, keyFile)
	waitFor(t, func() bool { _, _, s := servedSerial(t, c, url, tok); return s == "3" }, "recovery after broken files")

	// A replacement with the same sizes and modification times (cp -p,
	// coarse-mtime filesystems) is still noticed: the contents differ.
	ci, _ := os.Stat(certFile)
	ki, _ := os.Stat(keyFile)
	var four *testCert
	for range 200 { // ECDSA signatures vary in DER length: draw until one fits
		if four = newTestCert(t, 4); int64(len(four.certPEM)) == ci.Size() && int64(len(four.keyPEM)) == ki.Size() {
			break
		}
	}
	if int64(len(four.certPEM)) != ci.Size() || int64(len(four.keyPEM)) != ki.Size() {
		t.Fatalf("test setup: certificate 4 is not the same size as 3 (%d/%d vs %d/%d)", len(four.certPEM), len(four.keyPEM), ci.Size(), ki.Size())
	}
	four.write(t, certFile, keyFile)
	os.Chtimes(certFile, ci.ModTime(), ci.ModTime())
	os.Chtimes(keyFile, ki.ModTime(), ki.ModTime())
	c4 := tlsClient(three, four)
	waitFor(t, func() bool { _, _, s := servedSerial(t, c4, url, tok); return s == "4" }, "a same-size, same-mtime replacement to be served")
}

// TestGatewayTLSReloadOnRequest checks the SIGHUP path: with polling too
// slow to matter, the new files are served as soon as
// reloadCertificate (what the SIGHUP handler calls) returns.
func TestGatewayTLSReloadOnRequest(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	_, certFile, keyFile := tlsFiles(t)
	one, two := newTestCert(t, 1), newTestCert(t, 2)
	one.write(t, certFile, keyFile)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL,
		fmt.Sprintf("tls:\n  cert_file: %s\n  key_file: %s\n  reload_interval: 1h\n", certFile, keyFile)))
	url := "https://" + g.gw.proxyAddr() + "/healthz-not-proxied"
	c := tlsClient(one, two)
	two.write(t, certFile, keyFile)
	if _, _, s := servedSerial(t, c, url, ""); s != "1" {
		t.Fatalf("serial %s before the reload, want 1", s)
	}
	if err := g.gw.reloadCertificate(); err != nil {
		t.Fatal(err)
	}
	if _, _, s := servedSerial(t, c, url, ""); s != "2" {
		t.Fatalf("serial %s after the reload, want 2", s)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir, certFile, keyFile := tlsFiles(t)
	newTestCert(t, 1).write(t, certFile, keyFile)
	other := newTestCert(t, 2)
	otherKey := filepath.Join(dir, "other.key")
	writeAtomic(t, otherKey, other.keyPEM)
	tests := []struct {
		name, block, want string
	}{
		{"cert only", "tls:\n  cert_file: " + certFile + "\n", "line 20: tls.key_file: required with cert_file"},
		{"key only", "tls:\n  key_file: " + keyFile + "\n", "line 20: tls.cert_file: required with key_file"},
		{"missing file", "tls:\n  cert_file: " + filepath.Join(dir, "nope.crt") + "\n  key_file: " + keyFile + "\n", "line 21: tls.cert_file: open "},
		{"mismatched key", "tls:\n  cert_file: " + certFile + "\n  key_file: " + otherKey + "\n", "private key does not match public key"},
		{"not PEM", "tls:\n  cert_file: " + otherKey + "\n  key_file: " + otherKey + "\n", "line 21: tls.cert_file:"},
		{"bad interval", "tls:\n  cert_file: " + certFile + "\n  key_file: " + keyFile + "\n  reload_interval: 10ms\n", "line 23: tls.reload_interval: must be at least 1s"},
		{"zero interval", "tls:\n  cert_file: " + certFile + "\n  key_file: " + keyFile + "\n  reload_interval: 0s\n", "line 23: tls.reload_interval: must be more than zero"},
		{"unknown key", "tls:\n  cert_fil: x\n", "line 21: tls.cert_fil: unknown key (did you mean \"cert_file\"?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("t.yaml", []byte(validYAML+"log_level: info\nleeway: 30s\n"+tt.block))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "BEGIN") {
				t.Errorf("error quotes file contents: %v", err)
			}
		})
	}
}

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
	is := startIssuer(t)
	up := startUpstream(t)
	dir, certFile, keyFile := tlsFiles(t)
	one, two := newTestCert(t, 1), newTestCert(t, 2)
	one.write(t, certFile, keyFile)
	cfgFile := filepath.Join(dir, "tokenguard.yaml")
	writeAtomic(t, cfgFile, []byte(gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL,
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
	c := tlsClient(one, two)
	url := "https://" + addr + "/nothing"
	if _, _, s := servedSerial(t, c, url, ""); s != "1" {
		t.Fatalf("serial %s, want 1", s)
	}
	two.write(t, certFile, keyFile)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		select {
		case err := <-exited:
			t.Fatalf("SIGHUP ended the process (%v):\n%s", err, logs)
		default:
		}
		_, _, s := servedSerial(t, c, url, "")
		return s == "2"
	}, "the certificate to change after SIGHUP")
}
