package middleware

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"

	"github.com/tokenguard/tokenguard/internal/jose"
)

// Confirmation names the proofs of possession (RFC 7800 "cnf"
// confirmation methods) a token demands and the guard therefore checked
// before letting a request through: Principal.Confirmation. A token
// demands them on every request, so the value is the same on every
// request that carries it.
type Confirmation string

// The confirmations Principal.Confirmation takes.
const (
	// ConfirmationNone: a bearer token; holding it is enough.
	ConfirmationNone Confirmation = ""
	// ConfirmationDPoP: a DPoP proof signed by the key cnf.jkt names
	// (RFC 9449).
	ConfirmationDPoP Confirmation = "dpop"
	// ConfirmationMTLS: the TLS client certificate cnf."x5t#S256" names
	// (RFC 8705 §3).
	ConfirmationMTLS Confirmation = "mtls"
	// ConfirmationDPoPMTLS: both, for a token whose cnf has both.
	ConfirmationDPoPMTLS Confirmation = "dpop+mtls"
)

// DPoP reports whether a DPoP proof was checked.
func (c Confirmation) DPoP() bool { return c == ConfirmationDPoP || c == ConfirmationDPoPMTLS }

// MTLS reports whether the client certificate was checked.
func (c Confirmation) MTLS() bool { return c == ConfirmationMTLS || c == ConfirmationDPoPMTLS }

// Fixed descriptions of certificate denials.
const (
	descCertificateRequired  = "token is bound to a client certificate"
	descCertificateMismatch  = "client certificate does not match the token"
	descCertificateMalformed = "malformed client certificate"
)

// clientCertKey is the context key of a clientCertReport.
type clientCertKey struct{}

// clientCertReport is a client certificate as something other than this
// guard's own TLS connection reported it (ContextWithClientCertificate).
type clientCertReport struct {
	cert *x509.Certificate // nil: the client presented none
	err  error             // non-nil: the report was malformed
}

// ContextWithClientCertificate returns a copy of ctx carrying the client's
// TLS certificate as a trusted TLS-terminating proxy reported it (such as
// the RFC 9440 Client-Cert header, read only from such a proxy): the leaf
// the client presented, nil when it presented none. err is non-nil when
// the report was malformed (not decodable, several certificates, too
// large); the guard then refuses the request, whatever its token, with
// 401 error="invalid_request" (reason ReasonMalformedCertificate): the
// certificate a bound token needs cannot be known. The guard reads the
// report only to check certificate-bound tokens (RFC 8705 §3) and never
// verifies the certificate's chain, its dates or its names: the binding
// is to this exact certificate, self-signed or not (RFC 8705 §2.2).
//
// A report in the context is all Require and RequirePolicy believe: with
// one, even of no certificate, the request's own TLS connection
// (http.Request.TLS, which is the proxy's) is not consulted; without one
// the leaf of http.Request.TLS.PeerCertificates is used, which is right
// when the server terminates TLS itself (with tls.Config.ClientAuth set to
// request certificates). Check does the same: a report in the context
// comes first, then Request.ClientCertificate (which grpcguard fills from
// the peer's TLS connection).
//
// Never build the report from a header that did not come from such a
// proxy: any client can send one.
func ContextWithClientCertificate(ctx context.Context, cert *x509.Certificate, err error) context.Context {
	return context.WithValue(ctx, clientCertKey{}, &clientCertReport{cert: cert, err: err})
}

// clientCertReportFrom returns ctx's client certificate report, or nil.
func clientCertReportFrom(ctx context.Context) *clientCertReport {
	if ctx == nil {
		return nil
	}
	rep, _ := ctx.Value(clientCertKey{}).(*clientCertReport)
	return rep
}

// errMalformedCertificate is the cause of a refusal for a malformed
// certificate report; it wraps the report's error.
var errMalformedCertificate = errors.New("middleware: malformed client certificate report")

// refuseMalformedCertificate refuses a request whose certificate report
// was malformed, or returns nil.
func refuseMalformedCertificate(rep *clientCertReport) *Denial {
	if rep == nil || rep.err == nil {
		return nil
	}
	return deny(http.StatusUnauthorized, CodeInvalidRequest, ReasonMalformedCertificate, descCertificateMalformed,
		fmt.Errorf("%w: %w", errMalformedCertificate, rep.err))
}

// clientCertificate is the request's client certificate (see
// ContextWithClientCertificate for the order of the sources), or nil.
func (in *request) clientCertificate(rep *clientCertReport) *x509.Certificate {
	// A report comes first on every path: where a TLS-terminating proxy
	// reports the client's certificate, the connection's own certificate
	// is the proxy's (behind a proxy that re-encrypts with its own client
	// certificate, a token bound to the proxy must not pass for anyone).
	if rep != nil {
		return rep.cert
	}
	if in.hr == nil {
		return in.req.ClientCertificate
	}
	if cs := in.hr.TLS; cs != nil && len(cs.PeerCertificates) > 0 {
		return cs.PeerCertificates[0]
	}
	return nil
}

// checkCertificate implements RFC 8705 §3 for a token bound to a
// certificate (p.CertificateThumbprint set): the request's client
// certificate must be the one whose DER's SHA-256 the token names,
// compared in constant time. It runs on every request, after the
// verified-token cache: a cached token is checked like a fresh one.
func checkCertificate(in *request, rep *clientCertReport, p *Principal) *Denial {
	want, ok := jose.ThumbprintSHA256(p.CertificateThumbprint)
	if !ok {
		// The claims parsers refuse such a value; this is defence in
		// depth.
		return invalidToken(ReasonMalformedToken, descMalformed, errors.New(`middleware: cnf."x5t#S256" is not a SHA-256 thumbprint`))
	}
	cert := in.clientCertificate(rep)
	if cert == nil || len(cert.Raw) == 0 {
		return invalidToken(ReasonCertificateRequired, descCertificateRequired, nil)
	}
	got := sha256.Sum256(cert.Raw)
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return invalidToken(ReasonCertificateMismatch, descCertificateMismatch, nil)
	}
	return nil
}

// setBinding records how the token is bound (its "cnf", RFC 7800): jkt
// and x5t are cnf.jkt and cnf."x5t#S256" ("" when absent), and
// declaredDPoP says the token is declared a DPoP token (an introspection
// answer's token_type). It is called only for a token that has a cnf or
// is declared a DPoP token. A cnf with neither method names a binding no
// check here can prove: such a token needs DPoP without having a key for
// it, so no request can use it.
func (p *Principal) setBinding(jkt, x5t string, declaredDPoP bool) {
	p.JKT, p.CertificateThumbprint = jkt, x5t
	p.needsDPoP = jkt != "" || declaredDPoP || x5t == ""
	switch {
	case jkt != "" && x5t != "":
		p.Confirmation = ConfirmationDPoPMTLS
	case jkt != "":
		p.Confirmation = ConfirmationDPoP
	case x5t != "":
		p.Confirmation = ConfirmationMTLS
	}
}
