package connectguard_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tokenguard/tokenguard/connectguard"
	"github.com/tokenguard/tokenguard/internal/testkit"
	"github.com/tokenguard/tokenguard/middleware"
)

// clientCertificate makes a self-signed client certificate and returns it
// with its RFC 8705 thumbprint.
func clientCertificate(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "client"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestCertificateBound follows the package documentation: the handler in
// front of the Connect handler hands the TLS client certificate over, and
// a certificate-bound token (RFC 8705) passes only with that certificate.
func TestCertificateBound(t *testing.T) {
	is := testkit.StartIssuer(t)
	guard := newGuard(t, is, nil)
	svc := &service{}
	who := connect.NewUnaryHandler(procWho,
		func(ctx context.Context, _ *connect.Request[whoRequest]) (*connect.Response[whoResponse], error) {
			return connect.NewResponse(svc.record(ctx, procWho)), nil
		},
		connect.WithCodec(jsonCodec{}), connect.WithInterceptors(connectguard.NewInterceptor(guard, defaultRules)))
	withCert := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var leaf *x509.Certificate
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			leaf = r.TLS.PeerCertificates[0]
		}
		who.ServeHTTP(w, r.WithContext(middleware.ContextWithClientCertificate(r.Context(), leaf, nil)))
	})
	srv := httptest.NewUnstartedServer(withCert)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	alice, aliceX5T := clientCertificate(t)
	mallory, _ := clientCertificate(t)
	bound := mint(t, is, "echo:read", map[string]any{"cnf": map[string]any{"x5t#S256": aliceX5T}})
	for _, tt := range []struct {
		name string
		cert *tls.Certificate
		want connect.Code // 0: allowed
	}{
		{"right certificate", &alice, 0},
		{"another certificate", &mallory, connect.CodeUnauthenticated},
		{"no certificate", nil, connect.CodeUnauthenticated},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := srv.Client().Transport.(*http.Transport).Clone()
			if tt.cert != nil {
				tr.TLSClientConfig.Certificates = []tls.Certificate{*tt.cert}
			}
			defer tr.CloseIdleConnections()
			c := connect.NewClient[whoRequest, whoResponse](&http.Client{Transport: tr}, srv.URL+procWho, connect.WithCodec(jsonCodec{}))
			req := connect.NewRequest(&whoRequest{N: 1})
			req.Header().Set("Authorization", "Bearer "+bound)
			ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
			defer cancel()
			_, err := c.CallUnary(ctx, req)
			if got := result(nil, err).code; got != tt.want {
				t.Fatalf("code %v (%v), want %v", got, err, tt.want)
			}
		})
	}
}
