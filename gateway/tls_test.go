package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/testkit"
)

// tlsClient trusts every certificate in certs, speaks HTTP/2 when offered,
// and opens a new connection for every request, so each one sees the
// certificate served at that moment.
func tlsClient(certs ...*testkit.Cert) *http.Client {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c.Cert)
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
	one, two, three := testkit.NewCert(t, 1), testkit.NewCert(t, 2), testkit.NewCert(t, 3)
	one.Write(t, certFile, keyFile)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL,
		fmt.Sprintf("tls:\n  cert_file: %s\n  key_file: %s\n  reload_interval: 1s\n", certFile, keyFile)))
	url := "https://" + g.gw.Addr() + "/orders/1"
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
	if conn, err := tls.Dial("tcp", g.gw.Addr(), old); err == nil {
		conn.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
	// Plain HTTP to the TLS port gets no proxied answer.
	if resp, err := client.Get("http://" + g.gw.Addr() + "/orders/1"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP on the TLS listener: %d", resp.StatusCode)
		}
	}

	// New files: picked up by polling.
	two.Write(t, certFile, keyFile)
	waitFor(t, func() bool { _, _, s := servedSerial(t, c, url, tok); return s == "2" }, "the new certificate to be served")

	// A broken replacement (the key of another certificate, then not PEM
	// at all) keeps the current certificate.
	testkit.WriteAtomic(t, keyFile, three.KeyPEM)
	waitFor(t, func() bool { return strings.Contains(g.stderr.String(), "reload failed") }, "the failed reload to be logged")
	if _, _, s := servedSerial(t, c, url, tok); s != "2" {
		t.Fatalf("after a mismatched key the server shows serial %s, want 2", s)
	}
	if err := g.gw.ReloadCertificate(); err == nil {
		t.Error("reloadCertificate with a mismatched key: no error")
	}
	testkit.WriteAtomic(t, certFile, []byte("not PEM"))
	if err := g.gw.ReloadCertificate(); err == nil {
		t.Error("reloadCertificate with a non-PEM certificate: no error")
	}
	os.Remove(certFile)
	if err := g.gw.ReloadCertificate(); err == nil {
		t.Error("reloadCertificate with a missing file: no error")
	}
	time.Sleep(1500 * time.Millisecond) // a poll or two
	if _, _, s := servedSerial(t, c, url, tok); s != "2" {
		t.Fatalf("after broken files the server shows serial %s, want 2", s)
	}
	three.Write(t, certFile, keyFile)
	waitFor(t, func() bool { _, _, s := servedSerial(t, c, url, tok); return s == "3" }, "recovery after broken files")

	// A replacement with the same sizes and modification times (cp -p,
	// coarse-mtime filesystems) is still noticed: the contents differ.
	ci, _ := os.Stat(certFile)
	ki, _ := os.Stat(keyFile)
	var four *testkit.Cert
	for range 200 { // ECDSA signatures vary in DER length: draw until one fits
		if four = testkit.NewCert(t, 4); int64(len(four.CertPEM)) == ci.Size() && int64(len(four.KeyPEM)) == ki.Size() {
			break
		}
	}
	if int64(len(four.CertPEM)) != ci.Size() || int64(len(four.KeyPEM)) != ki.Size() {
		t.Fatalf("test setup: certificate 4 is not the same size as 3 (%d/%d vs %d/%d)", len(four.CertPEM), len(four.KeyPEM), ci.Size(), ki.Size())
	}
	four.Write(t, certFile, keyFile)
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
	one, two := testkit.NewCert(t, 1), testkit.NewCert(t, 2)
	one.Write(t, certFile, keyFile)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL,
		fmt.Sprintf("tls:\n  cert_file: %s\n  key_file: %s\n  reload_interval: 1h\n", certFile, keyFile)))
	url := "https://" + g.gw.Addr() + "/healthz-not-proxied"
	c := tlsClient(one, two)
	two.Write(t, certFile, keyFile)
	if _, _, s := servedSerial(t, c, url, ""); s != "1" {
		t.Fatalf("serial %s before the reload, want 1", s)
	}
	if err := g.gw.ReloadCertificate(); err != nil {
		t.Fatal(err)
	}
	if _, _, s := servedSerial(t, c, url, ""); s != "2" {
		t.Fatalf("serial %s after the reload, want 2", s)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir, certFile, keyFile := tlsFiles(t)
	testkit.NewCert(t, 1).Write(t, certFile, keyFile)
	other := testkit.NewCert(t, 2)
	otherKey := filepath.Join(dir, "other.key")
	testkit.WriteAtomic(t, otherKey, other.KeyPEM)
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
