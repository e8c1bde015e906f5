package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a private certificate authority made for one test. Nothing
// trusts it unless the test says so: its certificate is CertFile (PEM),
// for SSL_CERT_FILE or a tls.Config's RootCAs (Pool).
type CA struct {
	CertFile string
	Pool     *x509.CertPool

	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a CA (ECDSA P-256, valid for a day) and writes its
// certificate to dir/ca.pem.
func NewCA(dir string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "redistest CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{CertFile: filepath.Join(dir, "ca.pem"), Pool: x509.NewCertPool(), cert: cert, key: key}
	ca.Pool.AddCert(cert)
	if err := writePEM(ca.CertFile, "CERTIFICATE", der); err != nil {
		return nil, err
	}
	return ca, nil
}

// Issue writes a server certificate for ips, signed by ca, and its key
// to dir/name.pem and dir/name-key.pem, and returns their paths.
func (ca *CA) Issue(dir, name string, ips ...net.IP) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
		return "", "", err
	}
	if err := writePEM(keyFile, "PRIVATE KEY", keyDER); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// tlsServer is a TLS server's files, and how ping and Do dial it.
type tlsServer struct {
	certFile, keyFile, caFile string
	client                    *tls.Config
}

// StartTLS starts a redis-server that listens on TLS only (no plain
// port), with a certificate for 127.0.0.1 (an IP address, no DNS name)
// signed by a new private CA in dir, and requirepass password. Clients
// need no certificate of their own (tls-auth-clients no). The Server's
// Port and Addr are its TLS port's; its Do and its readiness check use
// TLS, trusting only the CA, and AUTH. The caller calls Kill.
func StartTLS(dir, password string) (*Server, *CA, error) {
	ca, err := NewCA(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("redistest: CA: %w", err)
	}
	certFile, keyFile, err := ca.Issue(dir, "redis", net.IPv4(127, 0, 0, 1))
	if err != nil {
		return nil, nil, fmt.Errorf("redistest: server certificate: %w", err)
	}
	s, err := startServer(&Server{
		dir:      dir,
		extra:    []string{"--requirepass", password},
		password: password,
		tls: &tlsServer{
			certFile: certFile, keyFile: keyFile, caFile: ca.CertFile,
			client: &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
		},
	})
	if err != nil {
		return nil, nil, err
	}
	return s, ca, nil
}
