package gateway

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

// clientCert is a self-signed client certificate, as an RFC 8705 §2.2
// client makes one.
type clientCert struct {
	*testkit.Cert
	pair tls.Certificate
}

func newClientCert(t testing.TB, serial int64) *clientCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: fmt.Sprintf("tokenguard test client %d", serial)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
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
	c := &testkit.Cert{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}),
		Cert:    cert,
	}
	pair, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &clientCert{Cert: c, pair: pair}
}

// x5t is the RFC 8705 §3.1 thumbprint of c: base64url SHA-256 of its DER.
func (c *clientCert) x5t() string {
	sum := sha256.Sum256(c.Cert.Cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// header is c as RFC 9440's Client-Cert field value.
func (c *clientCert) header() string {
	return ":" + base64.StdEncoding.EncodeToString(c.Cert.Cert.Raw) + ":"
}

// mintBound mints a token bound to c (cnf."x5t#S256").
func mintBound(t testing.TB, is *devissuer.Issuer, scope string, c *clientCert) string {
	t.Helper()
	tok, err := is.Mint(scope, time.Hour, map[string]any{"cnf": map[string]any{"x5t#S256": c.x5t()}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// mtlsClient trusts server and presents cert (nil: none) when asked; a
// new connection per request, so each one is a new handshake.
func mtlsClient(server *testkit.Cert, cert *clientCert) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(server.Cert)
	cfg := &tls.Config{RootCAs: pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.pair}
	}
	return &http.Client{Timeout: wait, Transport: &http.Transport{
		TLSClientConfig: cfg, ForceAttemptHTTP2: true, DisableKeepAlives: true,
	}}
}

// call sends GET url with token and headers h on c and returns the
// response with its body read.
func call(t testing.TB, c *http.Client, url, token string, h http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// wantInvalidToken fails unless resp is the guard's 401 invalid_token.
func wantInvalidToken(t testing.TB, what string, resp *http.Response, body string) {
	t.Helper()
	want401(t, what, resp, body, "invalid_token")
}

// want401 fails unless resp is the guard's 401 with error code.
func want401(t testing.TB, what string, resp *http.Response, body, code string) {
	t.Helper()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("%s: %d %q, want 401", what, resp.StatusCode, body)
		return
	}
	if ch := strings.Join(resp.Header.Values("WWW-Authenticate"), ", "); !strings.Contains(ch, `error="`+code+`"`) {
		t.Errorf("%s: challenge %q, want %s", what, ch, code)
	}
}

// certMetadata reads tls_client_certificate_bound_access_tokens from the
// gateway's RFC 9728 metadata document (false when absent).
func certMetadata(t testing.TB, c *http.Client, base string) bool {
	t.Helper()
	resp, body := call(t, c, base+"/.well-known/oauth-protected-resource", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metadata: %d %q", resp.StatusCode, body)
	}
	var md struct {
		Bound bool `json:"tls_client_certificate_bound_access_tokens"`
	}
	if err := json.Unmarshal([]byte(body), &md); err != nil {
		t.Fatalf("metadata %q: %v", body, err)
	}
	return md.Bound
}

// noCertHeaders fails if the upstream's last request carries a client
// certificate header under any spelling.
func noCertHeaders(t testing.TB, up *upstream) {
	t.Helper()
	for k := range up.last(t).Header {
		if k := strings.ToLower(strings.ReplaceAll(k, "_", "-")); strings.HasPrefix(k, "client-cert") || k == "x-client-cert" {
			t.Errorf("the upstream got %s", k)
		}
	}
}

func tlsBlock(certFile, keyFile, clientCerts string) string {
	return fmt.Sprintf("tls:\n  cert_file: %s\n  key_file: %s\n  reload_interval: 1h\n  client_certs: %s\n", certFile, keyFile, clientCerts)
}

// TestGatewayClientCertsTLS: with tls.client_certs request the gateway
// asks every client for a certificate, verifies no chain (the clients'
// are self-signed), and a certificate-bound token passes only with its
// certificate; the server certificate still reloads, and a reload turns
// the request off and on.
func TestGatewayClientCertsTLS(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	_, certFile, keyFile := tlsFiles(t)
	srv1, srv2 := testkit.NewCert(t, 1), testkit.NewCert(t, 2)
	srv1.Write(t, certFile, keyFile)
	yamlOf := func(mode string) string {
		return gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, tlsBlock(certFile, keyFile, mode))
	}
	g := runGateway(t, yamlOf("request"))
	base := "https://" + g.gw.Addr()
	url := base + "/orders/1"
	alice, bob := newClientCert(t, 10), newClientCert(t, 11)
	bound := mintBound(t, is, "orders:read", alice)
	unbound := mint(t, is, "orders:read")
	asAlice, asBob, anonymous := mtlsClient(srv1, alice), mtlsClient(srv1, bob), mtlsClient(srv1, nil)

	tests := []struct {
		name   string
		c      *http.Client
		token  string
		status int
	}{
		{"bound token, its certificate", asAlice, bound, http.StatusOK},
		{"bound token, another certificate", asBob, bound, http.StatusUnauthorized},
		{"bound token, no certificate", anonymous, bound, http.StatusUnauthorized},
		{"unbound token, a certificate", asAlice, unbound, http.StatusOK},
		{"unbound token, no certificate", anonymous, unbound, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := call(t, tt.c, url, tt.token, nil)
			if resp.ProtoMajor != 2 {
				t.Errorf("HTTP/%d, want HTTP/2 (ALPN with client certificates asked for)", resp.ProtoMajor)
			}
			if tt.status == http.StatusUnauthorized {
				wantInvalidToken(t, tt.name, resp, body)
			} else if resp.StatusCode != tt.status {
				t.Errorf("%d %q, want %d", resp.StatusCode, body, tt.status)
			}
		})
	}

	t.Run("a client's own Client-Cert is no certificate and never forwarded", func(t *testing.T) {
		// No client_cert_header: the header is nobody's report.
		resp, body := call(t, anonymous, url, bound, http.Header{"Client-Cert": {alice.header()}})
		wantInvalidToken(t, "bound token with a Client-Cert header and no TLS certificate", resp, body)
		h := http.Header{"Client-Cert": {alice.header()}, "Client-Cert-Chain": {alice.header()}}
		if resp, body := call(t, asAlice, url, bound, h); resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		noCertHeaders(t, up)
	})

	if !certMetadata(t, anonymous, base) {
		t.Error("metadata: tls_client_certificate_bound_access_tokens is not true with client_certs request")
	}

	t.Run("the server certificate still reloads", func(t *testing.T) {
		srv2.Write(t, certFile, keyFile)
		if err := g.gw.ReloadCertificate(); err != nil {
			t.Fatal(err)
		}
		c := mtlsClient(srv2, alice)
		resp, body := call(t, c, url, bound, nil)
		if resp.StatusCode != http.StatusOK || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 2 || resp.ProtoMajor != 2 {
			t.Fatalf("HTTP/%d %d %q, serial %v; want HTTP/2 200 from serial 2", resp.ProtoMajor, resp.StatusCode, body, resp.TLS.PeerCertificates[0].SerialNumber)
		}
		resp, body = call(t, mtlsClient(srv2, bob), url, bound, nil)
		wantInvalidToken(t, "another certificate after the reload", resp, body)
	})

	t.Run("a reload turns client_certs off and on", func(t *testing.T) {
		if err := g.reload(t, yamlOf("off")); err != nil {
			t.Fatal(err)
		}
		asAlice := mtlsClient(srv2, alice)
		// Not asked: Alice's client sends no certificate.
		resp, body := call(t, asAlice, url, bound, nil)
		wantInvalidToken(t, "bound token, certificate not asked for", resp, body)
		if resp, body := call(t, asAlice, url, unbound, nil); resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Errorf("unbound token with client_certs off: HTTP/%d %d %q", resp.ProtoMajor, resp.StatusCode, body)
		}
		if certMetadata(t, asAlice, base) {
			t.Error("metadata: tls_client_certificate_bound_access_tokens with client_certs off")
		}
		if err := g.reload(t, yamlOf("request")); err != nil {
			t.Fatal(err)
		}
		if resp, body := call(t, asAlice, url, bound, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("client_certs request again: %d %q", resp.StatusCode, body)
		}
	})
}

// TestGatewayClientCertHeader: behind a TLS-terminating proxy, the
// client's certificate is what a peer inside trusted_proxies says in
// Client-Cert (RFC 9440), and nobody else's header counts; the header
// never reaches the upstream.
func TestGatewayClientCertHeader(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	yamlOf := func(trusted string) string {
		return gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "client_cert_header: Client-Cert\ntrusted_proxies: ["+trusted+"]\n")
	}
	g := runGateway(t, yamlOf("127.0.0.1/32"))
	url := g.proxy + "/orders/1"
	alice, bob := newClientCert(t, 10), newClientCert(t, 11)
	bound := mintBound(t, is, "orders:read", alice)
	unbound := mint(t, is, "orders:read")
	cc := func(v ...string) http.Header { return http.Header{"Client-Cert": v} }

	tests := []struct {
		name   string
		token  string
		h      http.Header
		status int
	}{
		{"bound token, its certificate", bound, cc(alice.header()), http.StatusOK},
		{"bound token, its certificate, header in lower case", bound, http.Header{"client-cert": {alice.header()}}, http.StatusOK},
		{"bound token, another certificate", bound, cc(bob.header()), http.StatusUnauthorized},
		{"bound token, no header", bound, nil, http.StatusUnauthorized},
		{"bound token, its certificate under another name", bound, http.Header{"X-Client-Cert": {alice.header()}}, http.StatusUnauthorized},
		{"bound token, its certificate as Client-Cert-Chain", bound, http.Header{"Client-Cert-Chain": {alice.header()}}, http.StatusUnauthorized},
		{"unbound token, a certificate", unbound, cc(alice.header()), http.StatusOK},
		{"unbound token, no header", unbound, nil, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.h.Clone()
			if h == nil {
				h = http.Header{}
			}
			h.Set("Client-Cert-Chain", alice.header()) // never read, never forwarded
			resp, body := do(t, "GET", url, tt.token, h)
			if tt.status == http.StatusUnauthorized {
				wantInvalidToken(t, tt.name, resp, body)
				return
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("%d %q, want %d", resp.StatusCode, body, tt.status)
			}
			noCertHeaders(t, up)
		})
	}

	// A report that is not one certificate is 401 invalid_request for
	// any token: the proxy said something, and it cannot be believed.
	for _, tt := range malformedCertHeaders(t, alice, bob) {
		t.Run("malformed: "+tt.name, func(t *testing.T) {
			for _, tok := range []string{bound, unbound} {
				resp, body := do(t, "GET", url, tok, http.Header{"Client-Cert": tt.vals})
				want401(t, tt.name, resp, body, "invalid_request")
			}
		})
	}
	if !certMetadata(t, client, g.proxy) {
		t.Error("metadata: tls_client_certificate_bound_access_tokens is not true with client_cert_header")
	}

	t.Run("from an untrusted peer the header is dropped", func(t *testing.T) {
		if err := g.reload(t, yamlOf("10.0.0.0/8")); err != nil {
			t.Fatal(err)
		}
		resp, body := do(t, "GET", url, bound, cc(alice.header()))
		wantInvalidToken(t, "bound token, its certificate from an untrusted peer", resp, body)
		for _, tt := range malformedCertHeaders(t, alice, bob) {
			// Not a report at all: an unbound token is unaffected.
			if resp, body := do(t, "GET", url, unbound, http.Header{"Client-Cert": tt.vals, "client_cert": tt.vals}); resp.StatusCode != http.StatusOK {
				t.Errorf("%s from an untrusted peer: %d %q, want 200", tt.name, resp.StatusCode, body)
			}
			noCertHeaders(t, up)
		}
	})
}

// TestGatewayClientCertHeaderName: another header name than Client-Cert
// (the format is RFC 9440's whatever the name) is read from a trusted
// proxy, and dropped before the upstream too.
func TestGatewayClientCertHeaderName(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "client_cert_header: x-client-cert\ntrusted_proxies: [127.0.0.1]\n"))
	alice := newClientCert(t, 10)
	bound := mintBound(t, is, "orders:read", alice)
	resp, body := do(t, "GET", g.proxy+"/orders/1", bound, http.Header{"X-Client-Cert": {alice.header()}, "X_Client_Cert": {"x"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	noCertHeaders(t, up)
	// Client-Cert is now nobody's report, and still never forwarded.
	resp, body = do(t, "GET", g.proxy+"/orders/1", bound, http.Header{"Client-Cert": {alice.header()}})
	wantInvalidToken(t, "bound token with Client-Cert when the configured header is X-Client-Cert", resp, body)
}

// TestGatewayClientCertHeaderOverTLS: when the gateway asks for client
// certificates and a trusted proxy reports one, the report is the only
// source for that proxy's requests: the certificate the proxy shows on
// its own connection is the proxy's, never the client's.
func TestGatewayClientCertHeaderOverTLS(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	_, certFile, keyFile := tlsFiles(t)
	srv := testkit.NewCert(t, 1)
	srv.Write(t, certFile, keyFile)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL,
		tlsBlock(certFile, keyFile, "request")+"client_cert_header: Client-Cert\ntrusted_proxies: [127.0.0.1]\n"))
	url := "https://" + g.gw.Addr() + "/orders/1"
	proxyCert, alice := newClientCert(t, 20), newClientCert(t, 21)
	asProxy := mtlsClient(srv, proxyCert)

	resp, body := call(t, asProxy, url, mintBound(t, is, "orders:read", proxyCert), nil)
	wantInvalidToken(t, "a token bound to the proxy's own certificate", resp, body)
	resp, body = call(t, asProxy, url, mintBound(t, is, "orders:read", alice), http.Header{"Client-Cert": {alice.header()}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the client's certificate reported by the proxy: %d %q", resp.StatusCode, body)
	}
	noCertHeaders(t, up)
}

// TestGatewayClientCertHeaderForwardAuth: client_cert_header cannot be
// used with forward_auth (an ingress copies its clients' own Client-Cert
// into the auth subrequest, where it would be believed); a client's
// Client-Cert on a subrequest is never believed.
func TestGatewayClientCertHeaderForwardAuth(t *testing.T) {
	is := startIssuer(t)
	_, err := ParseConfig("t.yaml", []byte(forwardAuthYAML(is, "", "127.0.0.1", "client_cert_header: Client-Cert\n")), noEnv)
	if err == nil || !strings.Contains(err.Error(), "client_cert_header: cannot be used with forward_auth") {
		t.Fatalf("client_cert_header with forward_auth: %v", err)
	}
	g := runGateway(t, forwardAuthYAML(is, "", "127.0.0.1", ""))
	alice, bob := newClientCert(t, 10), newClientCert(t, 11)
	bearer := http.Header{"Authorization": {"Bearer " + mintBound(t, is, "orders:read", alice)}}
	for _, tt := range []struct {
		name   string
		cert   *clientCert
		status int
	}{
		{"its certificate, claimed by the client", alice, http.StatusUnauthorized},
		{"another certificate", bob, http.StatusUnauthorized},
		{"none", nil, http.StatusUnauthorized},
	} {
		h := bearer.Clone()
		if tt.cert != nil {
			h.Set("Client-Cert", tt.cert.header())
		}
		if resp, body := askNginx(t, g, "GET", "/orders/1", h); resp.StatusCode != tt.status {
			t.Errorf("%s: %d %q, want %d", tt.name, resp.StatusCode, body, tt.status)
		}
	}
}

type malformedCert struct {
	name string
	vals []string
}

// malformedCertHeaders are Client-Cert values that are not one
// certificate as RFC 9440 writes it. Each must be refused.
func malformedCertHeaders(t testing.TB, a, b *clientCert) []malformedCert {
	t.Helper()
	der := a.Cert.Cert.Raw
	b64 := base64.StdEncoding.EncodeToString(der)
	pemOneLine := strings.ReplaceAll(strings.TrimSpace(string(a.CertPEM)), "\n", " ")
	big := make([]byte, maxClientCertDER+1)
	copy(big, der)
	return []malformedCert{
		{"empty", []string{""}},
		{"empty byte sequence", []string{"::"}},
		{"no colons", []string{b64}},
		{"one colon", []string{":" + b64}},
		{"PEM on one line", []string{pemOneLine}},
		{"PEM in colons", []string{":" + pemOneLine + ":"}},
		{"base64 of the PEM", []string{":" + base64.StdEncoding.EncodeToString(a.CertPEM) + ":"}},
		{"nginx $ssl_client_escaped_cert", []string{":" + url.QueryEscape(string(a.CertPEM)) + ":"}},
		{"base64url", []string{":" + base64.URLEncoding.EncodeToString(der) + ":"}},
		{"two field values", []string{a.header(), a.header()}},
		{"two items in one value", []string{a.header() + ", " + b.header()}},
		{"two certificates back to back", []string{":" + base64.StdEncoding.EncodeToString(append(bytes.Clone(der), b.Cert.Cert.Raw...)) + ":"}},
		{"trailing byte", []string{":" + base64.StdEncoding.EncodeToString(append(bytes.Clone(der), 0)) + ":"}},
		{"truncated", []string{":" + base64.StdEncoding.EncodeToString(der[:len(der)-1]) + ":"}},
		{"oversized", []string{":" + base64.StdEncoding.EncodeToString(big) + ":"}},
		{"bad base64 character", []string{":" + b64[:10] + "$" + b64[11:] + ":"}},
		{"space inside", []string{":" + b64[:10] + " " + b64[10:] + ":"}},
		{"space after the colon", []string{": " + b64 + ":"}},
		{"padding inside", []string{":" + b64[:8] + "=" + b64[9:] + ":"}},
		{"too much padding", []string{":" + strings.TrimRight(b64, "=") + "===:"}},
		{"a parameter", []string{a.header() + ";v=1"}},
		{"not a certificate", []string{":" + base64.StdEncoding.EncodeToString([]byte("hello, world")) + ":"}},
	}
}

// TestParseClientCertHeader: the parser alone, with each error.
func TestParseClientCertHeader(t *testing.T) {
	a, b := newClientCert(t, 1), newClientCert(t, 2)
	der := a.Cert.Cert.Raw
	b64 := base64.StdEncoding.EncodeToString(der)
	raw := base64.RawStdEncoding.EncodeToString(der)
	for _, tt := range []struct {
		name string
		vals []string
	}{
		{"padded", []string{":" + b64 + ":"}},
		{"padding left out (RFC 8941 §4.2.7)", []string{":" + raw + ":"}},
	} {
		cert, err := parseClientCertHeader(tt.vals)
		if err != nil || cert == nil || !bytes.Equal(cert.Raw, der) {
			t.Errorf("%s: %v, %v", tt.name, cert, err)
		}
	}
	if cert, err := parseClientCertHeader(nil); cert != nil || err != nil {
		t.Errorf("no header: %v, %v; want nil, nil", cert, err)
	}
	for _, tt := range malformedCertHeaders(t, a, b) {
		cert, err := parseClientCertHeader(tt.vals)
		if err == nil || cert != nil {
			t.Errorf("%s: %v, %v; want an error", tt.name, cert, err)
			continue
		}
		if strings.Contains(err.Error(), b64[:16]) {
			t.Errorf("%s: the error quotes the value: %v", tt.name, err)
		}
	}
	// What no HTTP client sends but a decoder would skip.
	for _, v := range []string{":" + b64[:10] + "\r\n" + b64[10:] + ":", ":" + b64[:10] + "\n" + b64[10:] + ":", ":" + b64 + "\x00:"} {
		if _, err := parseClientCertHeader([]string{v}); !errors.Is(err, errClientCertSyntax) {
			t.Errorf("%q: %v, want errClientCertSyntax", v[:8]+"…"+v[len(v)-4:], err)
		}
	}
	// One byte too many, even in base64 that is not too long.
	over := make([]byte, maxClientCertDER+1)
	copy(over, der)
	if _, err := parseClientCertHeader([]string{":" + base64.StdEncoding.EncodeToString(over) + ":"}); !errors.Is(err, errClientCertSize) {
		t.Errorf("%d bytes: %v, want errClientCertSize", len(over), err)
	}
	// A 1 MiB value: see TestParseClientCertHeaderSizeFirst.
	// Non-zero bits after the last byte: one certificate, one spelling.
	if len(raw)%4 != 0 {
		last := raw[len(raw)-1]
		alt := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", last) + 1
		odd := raw[:len(raw)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[alt%64])
		if _, err := parseClientCertHeader([]string{":" + odd + ":"}); err == nil {
			t.Error("non-zero pad bits accepted")
		}
	}
}

// TestParseClientCertHeaderSizeFirst: the size is checked before
// anything is decoded, so a 1 MiB value costs a length comparison, not a
// 768 KiB buffer for its base64. The check after decoding would give the
// same error; only the bytes allocated tell the two apart. The fewest bytes
// any of a few calls allocated is taken, so another goroutine allocating
// during one call does not count.
func TestParseClientCertHeaderSizeFirst(t *testing.T) {
	const limit = 64 << 10
	for _, tt := range []struct {
		name string
		v    string
	}{
		{"1 MiB of base64", ":" + strings.Repeat("A", 1<<20) + ":"},
		{"1 MiB of base64, padded", ":" + strings.Repeat("A", 1<<20-4) + "AA==:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vals := []string{tt.v}
			least := ^uint64(0)
			var ms runtime.MemStats
			for range 5 {
				runtime.ReadMemStats(&ms)
				before := ms.TotalAlloc
				_, err := parseClientCertHeader(vals)
				runtime.ReadMemStats(&ms)
				if !errors.Is(err, errClientCertSize) {
					t.Fatalf("%v, want errClientCertSize", err)
				}
				least = min(least, ms.TotalAlloc-before)
			}
			if least >= limit {
				t.Errorf("parsing a %d-byte value allocated %d bytes, want < %d: decoded before its size was checked", len(tt.v), least, limit)
			}
		})
	}
}

// FuzzClientCertHeader: no input panics; whatever is accepted is one
// certificate of at most maxClientCertDER bytes that the input spells
// exactly (standard base64, padded or not, between colons), and that
// x509 parses on its own.
func FuzzClientCertHeader(f *testing.F) {
	c := newClientCert(f, 1)
	der := c.Cert.Cert.Raw
	f.Add(c.header())                                                   // a certificate
	f.Add(":" + base64.RawStdEncoding.EncodeToString(der) + ":")        // without padding
	f.Add("")                                                           // empty
	f.Add("::")                                                         // empty byte sequence
	f.Add(":" + base64.StdEncoding.EncodeToString(der) + "\r\n:")       // CR LF, which base64 decoders skip
	f.Add(":" + base64.StdEncoding.EncodeToString(der[:len(der)/2]))    // truncated, one colon
	f.Add(":" + url.QueryEscape(string(c.CertPEM)) + ":")               // nginx's escaped PEM
	f.Add(":" + base64.StdEncoding.EncodeToString(append(der, der...))) // two certificates
	f.Add(c.header() + ";a=1")                                          // a parameter
	f.Add(":A===:")                                                     // padding only
	f.Fuzz(func(t *testing.T, v string) {
		cert, err := parseClientCertHeader([]string{v})
		if err != nil {
			if cert != nil {
				t.Fatal("a certificate and an error")
			}
			return
		}
		if cert == nil {
			t.Fatal("neither a certificate nor an error")
		}
		if len(cert.Raw) > maxClientCertDER {
			t.Fatalf("accepted %d bytes", len(cert.Raw))
		}
		inner := v[1 : len(v)-1]
		if want := base64.StdEncoding.EncodeToString(cert.Raw); inner != want && inner != strings.TrimRight(want, "=") {
			t.Fatalf("accepted %q, which is not the certificate's one spelling", v)
		}
		if _, err := x509.ParseCertificate(cert.Raw); err != nil {
			t.Fatalf("accepted bytes x509 refuses: %v", err)
		}
	})
}

// TestClientCertConfig: the keys' values, their errors with lines, the
// guard's metadata flag, and what check prints.
func TestClientCertConfig(t *testing.T) {
	_, certFile, keyFile := tlsFiles(t)
	testkit.NewCert(t, 1).Write(t, certFile, keyFile)
	tlsWith := func(mode string) string {
		return "tls:\n  cert_file: " + certFile + "\n  key_file: " + keyFile + "\n  client_certs: " + mode + "\n"
	}
	for _, tt := range []struct {
		name, extra string
		bound       bool   // tls_client_certificate_bound_access_tokens
		err         string // substring of the error
	}{
		{"neither", "", false, ""},
		{"tls without client_certs", "tls:\n  cert_file: " + certFile + "\n  key_file: " + keyFile + "\n", false, ""},
		{"client_certs off", tlsWith("off"), false, ""},
		{"client_certs request", tlsWith("request"), true, ""},
		{"client_cert_header", "client_cert_header: Client-Cert\ntrusted_proxies: [10.0.0.1]\n", true, ""},
		{"client_certs require", tlsWith("require"), false, `line 21: tls.client_certs: "require" is not one of off, request`},
		{"client_certs without files", "tls:\n  client_certs: request\n", false, "line 18: tls: cert_file and key_file are required"},
		{"header without trusted_proxies", "client_cert_header: Client-Cert\n", false, "line 18: client_cert_header: needs trusted_proxies"},
		{"header not a name", "client_cert_header: Client Cert\ntrusted_proxies: [10.0.0.1]\n", false, `line 18: client_cert_header: "Client Cert" is not a header name`},
		{"header with an underscore", "client_cert_header: Client_Cert\ntrusted_proxies: [10.0.0.1]\n", false, "is not a header name"},
		{"header Authorization", "client_cert_header: authorization\ntrusted_proxies: [10.0.0.1]\n", false, "line 18: client_cert_header: \"authorization\" is a header the gateway reads or sets"},
		{"header X-Forwarded-", "client_cert_header: X-Forwarded-Client-Cert\ntrusted_proxies: [10.0.0.1]\n", false, "reads or sets for another purpose"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig("t.yaml", []byte(validYAML+tt.extra))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.guardConfig(nil, nil).TLSClientCertificateBoundAccessTokens; got != tt.bound {
				t.Errorf("TLSClientCertificateBoundAccessTokens = %v, want %v", got, tt.bound)
			}
		})
	}

	c, err := parseConfig("t.yaml", []byte(validYAML+tlsWith("request")+"client_cert_header: client-cert\ntrusted_proxies: [10.0.0.1]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientCertHeader != "Client-Cert" || c.TLS.ClientCerts != "request" {
		t.Errorf("ClientCertHeader %q, ClientCerts %q", c.ClientCertHeader, c.TLS.ClientCerts)
	}
	out, err := (&Config{c}).EffectiveYAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\n  client_certs: request\n", "\nclient_cert_header: Client-Cert\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check's output lacks %q:\n%s", want, out)
		}
	}
	// What check prints loads again, with the same settings.
	again, err := parseConfig("effective.yaml", out)
	if err != nil {
		t.Fatalf("the effective configuration does not load: %v\n%s", err, out)
	}
	if again.ClientCertHeader != c.ClientCertHeader || again.TLS.ClientCerts != c.TLS.ClientCerts {
		t.Errorf("reloaded: %q %q", again.ClientCertHeader, again.TLS.ClientCerts)
	}
	// off, as check prints it, is the string off.
	c, err = parseConfig("t.yaml", []byte(validYAML+tlsWith("off")))
	if err != nil {
		t.Fatal(err)
	}
	out, _ = (&Config{c}).EffectiveYAML()
	if again, err := parseConfig("effective.yaml", out); err != nil || again.TLS.ClientCerts != "off" {
		t.Errorf("client_certs off printed as\n%s\nloads as %v, %v", out, again, err)
	}
}

// TestScrubClientCertHeaders: a client certificate header never reaches
// the upstream, under any spelling, configured or not.
func TestScrubClientCertHeaders(t *testing.T) {
	h := http.Header{
		"Client-Cert": {"a"}, "client-cert": {"b"}, "CLIENT_CERT": {"c"}, "Client-Cert-Chain": {"d"},
		"X-Ssl-Cert": {"e"}, "X_SSL_CERT": {"f"}, "Accept": {"g"},
	}
	scrubHeaders(h, true)
	dropClientCertHeader(h, "X-SSL-Cert")
	if len(h) != 1 || h.Get("Accept") != "g" {
		t.Errorf("left: %v", h)
	}
}
