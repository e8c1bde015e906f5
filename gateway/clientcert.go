package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/tokenguard/tokenguard/internal/hygiene"
	"github.com/tokenguard/tokenguard/middleware"
)

// Certificate-bound access tokens (RFC 8705) at the gateway: where the
// client's certificate comes from. The guard compares it with a token's
// cnf."x5t#S256"; the gateway only decides which certificate, if any, is
// the client's.
//
//   - TLS at the gateway (tls.client_certs: request): every client is asked
//     for a certificate during the handshake, and its chain is not
//     verified (RFC 8705 §2.2: a self-signed certificate binds as well as
//     any); the guard reads it from the request's TLS state.
//   - TLS at a proxy in front (client_cert_header, RFC 9440): a peer inside
//     trusted_proxies reports the certificate its client presented in
//     that header, and that report is the only source for its requests:
//     the header present is the certificate; the header absent is no
//     certificate, even when the proxy showed a certificate of its own on
//     its connection to the gateway (that one is the proxy's, not the
//     client's); the header malformed is a 401 from the guard. From any
//     other peer the header is ignored, and a certificate that peer
//     presented on its own TLS connection (client_certs: request) is its
//     own and counts.
//
// Whatever the peer, the header never reaches the upstream, nor does
// Client-Cert-Chain (which the gateway never reads: binding is to the
// leaf): scrubHeaders drops both, and the configured name, under every
// spelling.

// The values of tls.client_certs.
const (
	clientCertsOff     = "off"
	clientCertsRequest = "request"
)

// maxClientCertDER bounds the certificate in a client certificate header:
// a leaf certificate is one or two KiB, a very large one (long SAN lists,
// an RSA-8192 key) under 8 KiB.
const maxClientCertDER = 16 << 10

// Errors of parseClientCertHeader: a trusted proxy's report that is not
// one certificate. None quotes the header's value, and the guard answers
// each with the same 401.
var (
	errClientCertRepeated = errors.New("gateway: client certificate header: more than one field value")
	errClientCertSyntax   = errors.New("gateway: client certificate header: not an RFC 9440 byte sequence (:base64 of the DER:)")
	errClientCertSize     = errors.New("gateway: client certificate header: larger than 16 KiB")
	errClientCertDER      = errors.New("gateway: client certificate header: not one DER certificate")
)

// parseClientCertHeader reads an RFC 9440 Client-Cert field: vals are the
// request's values of the header (http.Header.Values). No value is no
// certificate (nil, nil).
//
// It is strict on purpose; what a proxy sends is a machine's output, and
// anything else is refused rather than guessed at:
//
//   - exactly one field value (a second line, or a list, is an error);
//   - an RFC 8941 Byte Sequence (§3.3.5) and nothing else: ':', standard
//     base64 (A-Z a-z 0-9 + /, '=' only as padding at the end; padding
//     may be left out, as RFC 8941 §4.2.7 asks parsers to accept), ':'.
//     No whitespace inside (Go's decoder would skip CR and LF), no
//     parameters, no URL-encoding, no PEM;
//   - at most maxClientCertDER bytes once decoded, checked before decoding;
//   - exactly one DER certificate (x509.ParseCertificate refuses trailing
//     data, so two certificates back to back are an error). The chain
//     (Client-Cert-Chain) is another header, never read.
func parseClientCertHeader(vals []string) (*x509.Certificate, error) {
	switch len(vals) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, errClientCertRepeated
	}
	v := vals[0]
	if len(v) < 2 || v[0] != ':' || v[len(v)-1] != ':' {
		return nil, errClientCertSyntax
	}
	b64 := v[1 : len(v)-1]
	if len(b64) > base64.StdEncoding.EncodedLen(maxClientCertDER) {
		return nil, errClientCertSize
	}
	data := strings.TrimRight(b64, "=")
	pad := len(b64) - len(data)
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/':
		default:
			return nil, errClientCertSyntax
		}
	}
	// Strict: the bits past the last byte must be zero, so each
	// certificate has one spelling.
	der, err := base64.RawStdEncoding.Strict().DecodeString(data)
	if err != nil {
		return nil, errClientCertSyntax
	}
	if pad > 0 && base64.StdEncoding.EncodedLen(len(der)) != len(b64) {
		return nil, errClientCertSyntax // padding, but not the right amount
	}
	switch {
	case len(der) == 0:
		return nil, errClientCertDER
	case len(der) > maxClientCertDER:
		return nil, errClientCertSize
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, errClientCertDER
	}
	return cert, nil
}

// clientCertHeader puts in front of next the reading of
// client_cert_header (see the comment at the top of this file): for a
// request from a trusted proxy, next gets the proxy's report of its
// client's certificate in its context
// (middleware.ContextWithClientCertificate). Without client_cert_header
// it is next itself. The request is not mutated; the header stays in it for
// scrubHeaders to drop.
func (c *config) clientCertHeader(next http.Handler) http.Handler {
	name := c.ClientCertHeader
	if name == "" {
		return next
	}
	trusted := c.TrustedProxies
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !trustedPeer(trusted, r.RemoteAddr) {
			next.ServeHTTP(w, r) // the header is the client's own claim: ignored
			return
		}
		// A report, even of no certificate, is all the guard believes:
		// a certificate on the proxy's own TLS connection is the
		// proxy's, never its client's.
		cert, err := parseClientCertHeader(r.Header.Values(name))
		next.ServeHTTP(w, r.WithContext(middleware.ContextWithClientCertificate(r.Context(), cert, err)))
	})
}

// dropClientCertHeader removes the configured client certificate header
// from a request about to be forwarded, under every spelling an upstream
// might fold to it. Client-Cert and Client-Cert-Chain are among
// clientOverrideHeaders, dropped whatever the configuration.
func dropClientCertHeader(h http.Header, name string) {
	if name == "" {
		return
	}
	want := strings.ToLower(name)
	for k := range h {
		if hygiene.FoldedEqual(k, want) {
			delete(h, k)
		}
	}
}

// reservedCertHeaders are header names client_cert_header may not take:
// those the gateway reads or sets for another purpose, or that say how a
// message is framed. Lower case, as hygiene.FoldedEqual compares them.
var reservedCertHeaders = []string{
	"authorization", "proxy-authorization", "dpop", "cookie", "host", "forwarded",
	"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "content-length",
	"client-cert-chain", "x-request-id", "origin",
}

// validateClientCerts checks tls.client_certs and client_cert_header; the
// tls block and trusted_proxies are checked already.
func (fc *fileConfig) validateClientCerts(c *config, pos positions, bad func(keyPos, string, ...any)) {
	switch v := fc.TLS.ClientCerts; v {
	case "", clientCertsOff, clientCertsRequest:
		if c.TLS != nil {
			c.TLS.ClientCerts = cmpOr(v, clientCertsOff)
		}
	default:
		bad(pos.at("tls", "client_certs"), "%q is not one of off, request (a certificate is asked for, never required, and its chain is not verified: a token's binding to it is what the guard checks)", v)
	}
	h := fc.ClientCertHeader
	if h == "" {
		return
	}
	at := pos.at("client_cert_header")
	folded := strings.ToLower(h)
	switch {
	case !isToken(h) || strings.IndexByte(h, '_') >= 0:
		bad(at, "%q is not a header name (letters, digits and '-'; RFC 9440's is Client-Cert)", h)
		return
	case hygiene.FoldedHasPrefix(folded, "x-tokenguard-") || hygiene.FoldedHasPrefix(folded, "x-forwarded-") || hygiene.FoldedHasPrefix(folded, "x-original-"):
		bad(at, "%q is a header the gateway reads or sets for another purpose", h)
		return
	}
	for _, r := range reservedCertHeaders {
		if folded == r {
			bad(at, "%q is a header the gateway reads or sets for another purpose", h)
			return
		}
	}
	if len(c.TrustedProxies) == 0 {
		bad(at, "needs trusted_proxies: the addresses of the TLS-terminating proxy that sets it (from any other peer it is dropped)")
	}
	c.ClientCertHeader = http.CanonicalHeaderKey(h)
}

// requestsClientCerts reports whether the gateway learns clients'
// certificates (a TLS handshake asks for one, or a trusted proxy reports
// it): then the metadata document says tls_client_certificate_bound_access_tokens.
func (c *config) requestsClientCerts() bool {
	return c.TLS != nil && c.TLS.ClientCerts == clientCertsRequest || c.ClientCertHeader != ""
}

// serverTLSConfig is the TLS configuration of Start's proxy server. The
// certificate comes from g.certs at each handshake, so a reload (of the
// files, or of the configuration) changes it for the next connection.
// tls.client_certs is read at each handshake too, from the current
// configuration: a reload that turns it on or off applies to new
// connections (those already open keep what they were asked).
func (g *Gateway) serverTLSConfig() *tls.Config {
	getCert := func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		return g.certs.Load().getCertificate(h)
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCert}
	// The configuration of a handshake that asks for a certificate. A
	// config from GetConfigForClient is used as it is, so it names the
	// protocols ServeTLS would add to the server's own (HTTP/2 first);
	// session tickets still use the server's keys (crypto/tls).
	request := base.Clone()
	request.ClientAuth = tls.RequestClientCert
	request.NextProtos = []string{"h2", "http/1.1"}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		if t := g.gen.Load().cfg.TLS; t != nil && t.ClientCerts == clientCertsRequest {
			return request, nil
		}
		return nil, nil // the server's own: no certificate asked for
	}
	return base
}
