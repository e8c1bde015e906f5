package grpcguard_test

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
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenguard/tokenguard/grpcguard"
	"github.com/tokenguard/tokenguard/internal/testkit"
	"github.com/tokenguard/tokenguard/middleware"
)

// selfSigned makes a self-signed certificate; ip, when set, is its
// subject alternative name (a server's).
func selfSigned(t *testing.T, cn string, ip net.IP) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	if ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func x5t(c tls.Certificate) string {
	sum := sha256.Sum256(c.Leaf.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestCertificateBound: a token bound to a client certificate (RFC 8705)
// passes the interceptor only on a TLS connection where the client
// presented that certificate.
func TestCertificateBound(t *testing.T) {
	is := testkit.StartIssuer(t)
	guard := newGuard(t, is, nil)
	server := selfSigned(t, "server", net.IPv4(127, 0, 0, 1))
	alice, mallory := selfSigned(t, "alice", nil), selfSigned(t, "mallory", nil)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &healthServer{}
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{server}, ClientAuth: tls.RequestClientCert})),
		grpc.UnaryInterceptor(grpcguard.UnaryServerInterceptor(guard, defaultRules)),
	)
	healthpb.RegisterHealthServer(srv, h)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	roots := x509.NewCertPool()
	roots.AddCert(server.Leaf)
	client := func(cert *tls.Certificate) healthpb.HealthClient {
		cfg := &tls.Config{RootCAs: roots}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return healthpb.NewHealthClient(conn)
	}

	bound := mint(t, is, "health:read", map[string]any{"cnf": map[string]any{"x5t#S256": x5t(alice)}})
	plain := mint(t, is, "health:read", nil)
	tests := []struct {
		name string
		cert *tls.Certificate
		tok  string
		want codes.Code
	}{
		{"right certificate", &alice, bound, codes.OK},
		{"another certificate", &mallory, bound, codes.Unauthenticated},
		{"no certificate", nil, bound, codes.Unauthenticated},
		{"unbound token with a certificate", &mallory, plain, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tt.tok)
			_, err := client(tt.cert).Check(ctx, &healthpb.HealthCheckRequest{})
			if got := status.Code(err); got != tt.want {
				t.Fatalf("status %v (%v), want %v", got, err, tt.want)
			}
			if tt.want != codes.OK {
				return
			}
			_, p := h.reached(methodCheck)
			want := middleware.ConfirmationNone
			if tt.tok == bound {
				want = middleware.ConfirmationMTLS
			}
			if p == nil || p.Confirmation != want {
				t.Errorf("Principal %+v, want Confirmation %q", p, want)
			}
		})
	}
}
