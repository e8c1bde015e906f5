// Package testkit holds the fixtures the gateway's tests and the command's
// tests share: a development issuer on loopback, a log buffer safe for
// concurrent writers, a self-signed certificate, an environment from a map
// and a complete gateway configuration to edit. It is not a test file so
// both packages can import it; nothing outside tests does.
package testkit

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/devissuer"
)

// Wait bounds every wait in the tests that use this package.
const Wait = 10 * time.Second

// Audience is the audience of every token StartIssuer's issuer mints.
const Audience = "https://api.example.com"

// LockedBuffer is an io.Writer safe for the concurrent writes of loggers.
type LockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartIssuer serves a development issuer (ES256, kid "k1") on 127.0.0.1
// until the test ends.
func StartIssuer(t testing.TB) *devissuer.Issuer {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	key, err := devissuer.GenerateKey("ES256", "k1")
	if err != nil {
		t.Fatal(err)
	}
	is := devissuer.New("http://"+srv.Listener.Addr().String(), Audience, key)
	srv.Config.Handler = is.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return is
}

// Mint returns a token from is granting scope, valid for an hour.
func Mint(t testing.TB, is *devissuer.Issuer, scope string) string {
	t.Helper()
	tok, err := is.Mint(scope, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// EnvOf returns a getenv that looks names up in m.
func EnvOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// ValidYAML is a complete gateway configuration; tests edit copies of it
// with Edit. Tests refer to its line numbers, so keep them stable.
const ValidYAML = `listen: 127.0.0.1:8080
metrics_listen: 127.0.0.1:9090
upstream: http://127.0.0.1:9000
public_url: http://127.0.0.1:8080
audience: https://api.example.com
issuers:
  - issuer: https://as.example.com
    jwks_uri: http://127.0.0.1:7000/jwks
dpop:
  mode: disabled
  nonce: false
  replay_store: memory
routes:
  - pattern: "GET /orders/"
    scopes: [orders:read]
  - pattern: "POST /orders/"
    scopes: [orders:write]
`

// Edit returns ValidYAML with old replaced by new, which must occur
// exactly once.
func Edit(t testing.TB, old, new string) string {
	t.Helper()
	if strings.Count(ValidYAML, old) != 1 {
		t.Fatalf("edit: %q does not occur exactly once", old)
	}
	return strings.Replace(ValidYAML, old, new, 1)
}

// Cert is a self-signed P-256 certificate for 127.0.0.1 and its key.
type Cert struct {
	CertPEM, KeyPEM []byte
	Cert            *x509.Certificate
}

// NewCert makes a certificate valid from an hour ago to an hour from now,
// with the given serial number (so tests can tell two apart).
func NewCert(t testing.TB, serial int64) *Cert {
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
	return &Cert{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}),
		Cert:    cert,
	}
}

// Write puts the certificate and key in place the way a certificate
// manager does: a new file renamed over the old one, so a reader never
// sees half a file.
func (c *Cert) Write(t testing.TB, certFile, keyFile string) {
	t.Helper()
	WriteAtomic(t, keyFile, c.KeyPEM)
	WriteAtomic(t, certFile, c.CertPEM)
}

// WriteAtomic writes data to name through a temporary file renamed over it.
func WriteAtomic(t testing.TB, name string, data []byte) {
	t.Helper()
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

// DecodeClaims returns a JWT's claims, unverified.
func DecodeClaims(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// GatewayYAML is a gateway configuration on ephemeral ports with routes
// GET /orders/ (orders:read), POST /orders/ (orders:write) and GET /slow
// (orders:read); extra is appended as more top-level keys. Tests refer to
// its line numbers, so keep them stable.
func GatewayYAML(issuer, jwksURI, upstreamURL, extra string) string {
	return fmt.Sprintf(`listen: 127.0.0.1:0
metrics_listen: 127.0.0.1:0
upstream: %s
audience: %s
issuers:
  - issuer: %s
    jwks_uri: %s
routes:
  - pattern: "GET /orders/"
    scopes: [orders:read]
  - pattern: "POST /orders/"
    scopes: [orders:write]
  - pattern: "GET /slow"
    scopes: [orders:read]
startup_wait: 5s
log_level: debug
%s`, upstreamURL, Audience, issuer, jwksURI, extra)
}

// TokenJKT returns a JWT's cnf.jkt claim, unverified; "" when it has none.
func TokenJKT(t testing.TB, tok string) string {
	t.Helper()
	cnf, _ := DecodeClaims(t, tok)["cnf"].(map[string]any)
	jkt, _ := cnf["jkt"].(string)
	return jkt
}

// ClosedAddr returns a 127.0.0.1 address nothing listens on (a port just
// bound and released), for a connection that must be refused.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
