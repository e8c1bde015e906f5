package middleware

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
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// clientCert is a self-signed TLS client certificate (RFC 8705 §2.2).
type clientCert struct {
	tls  tls.Certificate
	leaf *x509.Certificate
	x5t  string // base64url(SHA-256(DER)): what a token bound to it carries
}

// newClientCert makes a self-signed client certificate for cn.
func newClientCert(t testing.TB, cn string) *clientCert {
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
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return &clientCert{
		tls:  tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		leaf: leaf,
		x5t:  base64.RawURLEncoding.EncodeToString(sum[:]),
	}
}

// mtlsServer is a guarded API behind a real TLS listener that asks every
// client for a certificate without verifying it (RFC 8705 §2.2), as the
// gateway's tls.client_certs: request does.
type mtlsServer struct {
	srv    *httptest.Server
	reason atomic.Value // Reason: the last decision (requests are sequential)
	// report, when set, is put in each request's context with
	// ContextWithClientCertificate before the guard sees it, as a
	// gateway does for a trusted proxy's Client-Cert header.
	report atomic.Pointer[clientCertReport]
}

func newMTLSServer(t *testing.T, cfg Config) *mtlsServer {
	t.Helper()
	s := &mtlsServer{}
	cfg.OnDecision = func(_ *http.Request, r Reason) { s.reason.Store(r) }
	g := newGuard(t, cfg)
	guarded := g.Require("orders:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := PrincipalFrom(r.Context())
		_ = json.NewEncoder(w).Encode(map[string]string{
			"confirmation": string(p.Confirmation), "x5t": p.CertificateThumbprint, "jkt": p.JKT,
		})
	}))
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rep := s.report.Load(); rep != nil {
			r = r.WithContext(ContextWithClientCertificate(r.Context(), rep.cert, rep.err))
		}
		guarded.ServeHTTP(w, r)
	}))
	s.srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

// client returns an HTTPS client of s presenting cert (none when nil).
// Each has its own connections: a certificate belongs to a connection.
func (s *mtlsServer) client(t *testing.T, cert *clientCert) *http.Client {
	t.Helper()
	tr := s.srv.Client().Transport.(*http.Transport).Clone()
	if cert != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{cert.tls}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// TestCertificateBoundTokens drives RFC 8705 §3 over real TLS: a token
// with cnf."x5t#S256" is accepted only with that certificate, on any
// scheme, with and without the verified-token cache.
func TestCertificateBoundTokens(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	alice, mallory := newClientCert(t, "alice"), newClientCert(t, "mallory")
	dpopKey := newDPoPClient(t)
	cnf := func(m map[string]any) map[string]any { return map[string]any{"cnf": m} }
	certBound := is.mint(t, "orders:read", cnf(map[string]any{"x5t#S256": alice.x5t}))
	bothBound := is.mint(t, "orders:read", cnf(map[string]any{"jkt": dpopKey.jkt, "x5t#S256": alice.x5t}))
	withUnknown := is.mint(t, "orders:read", cnf(map[string]any{"x5t#S256": alice.x5t, "x5t": "ignored", "kid": 7}))
	plain := is.mint(t, "orders:read", nil)
	// A digest of another length, or another encoding of it: never a
	// SHA-256 thumbprint, whatever certificate comes with it.
	malformed := map[string]string{
		"x5t#S256 a number":          is.mint(t, "orders:read", cnf(map[string]any{"x5t#S256": 42})),
		"x5t#S256 an array":          is.mint(t, "orders:read", cnf(map[string]any{"x5t#S256": []string{alice.x5t}})),
		"x5t#S256 too short":         is.mint(t, "orders:read", cnf(map[string]any{"x5t#S256": alice.x5t[:42]})),
		"x5t#S256 padded":            is.mint(t, "orders:read", cnf(map[string]any{"x5t#S256": alice.x5t + "="})),
		"x5t#S256 standard base64":   is.mint(t, "orders:read", cnf(map[string]any{"x5t#S256": base64.StdEncoding.EncodeToString(mustDigest(alice.leaf.Raw))})),
		"x5t#S256 hex":               is.mint(t, "orders:read", cnf(map[string]any{"x5t#S256": hexDigest(alice.leaf.Raw)})),
		"x5t#S256 of another digest": is.mint(t, "orders:read", cnf(map[string]any{"x5t#S256": base64.RawURLEncoding.EncodeToString(mustDigest(alice.leaf.Raw)[:20])})),
		"cnf a string":               is.mint(t, "orders:read", map[string]any{"cnf": alice.x5t}),
	}

	type tc struct {
		name      string
		auth      string
		cert      *clientCert
		proof     bool // send a DPoP proof by dpopKey
		report    *clientCertReport
		want      int
		reason    Reason
		code      string       // the challenge's error
		scheme    string       // whose challenge carries it
		confirmed Confirmation // for a 200
	}
	tests := []tc{
		// The first request caches the token; the ones after it must
		// still prove the certificate.
		{name: "right certificate", auth: "Bearer " + certBound, cert: alice, want: 200, reason: ReasonOK, confirmed: ConfirmationMTLS},
		{name: "no certificate", auth: "Bearer " + certBound, want: 401, reason: ReasonCertificateRequired, code: CodeInvalidToken, scheme: "Bearer"},
		{name: "another certificate", auth: "Bearer " + certBound, cert: mallory, want: 401, reason: ReasonCertificateMismatch, code: CodeInvalidToken, scheme: "Bearer"},
		{name: "right certificate again", auth: "Bearer " + certBound, cert: alice, want: 200, reason: ReasonOK, confirmed: ConfirmationMTLS},
		{name: "unknown confirmation members ignored", auth: "Bearer " + withUnknown, cert: alice, want: 200, reason: ReasonOK, confirmed: ConfirmationMTLS},
		{name: "unknown confirmation members, another certificate", auth: "Bearer " + withUnknown, cert: mallory, want: 401, reason: ReasonCertificateMismatch, code: CodeInvalidToken, scheme: "Bearer"},
		{name: "unbound token with a certificate", auth: "Bearer " + plain, cert: mallory, want: 200, reason: ReasonOK, confirmed: ConfirmationNone},
		{name: "unbound token without a certificate", auth: "Bearer " + plain, want: 200, reason: ReasonOK, confirmed: ConfirmationNone},

		// A certificate-bound token is not a DPoP-bound one.
		{name: "certificate-bound token as DPoP", auth: "DPoP " + certBound, cert: alice, proof: true, want: 401, reason: ReasonNotBound, code: CodeInvalidToken, scheme: "DPoP"},

		// cnf with jkt and x5t#S256: both proofs, every time.
		{name: "both bound: proof and certificate", auth: "DPoP " + bothBound, cert: alice, proof: true, want: 200, reason: ReasonOK, confirmed: ConfirmationDPoPMTLS},
		{name: "both bound: proof, no certificate", auth: "DPoP " + bothBound, proof: true, want: 401, reason: ReasonCertificateRequired, code: CodeInvalidToken, scheme: "DPoP"},
		{name: "both bound: proof, another certificate", auth: "DPoP " + bothBound, cert: mallory, proof: true, want: 401, reason: ReasonCertificateMismatch, code: CodeInvalidToken, scheme: "DPoP"},
		{name: "both bound: certificate, no proof", auth: "DPoP " + bothBound, cert: alice, want: 401, reason: ReasonInvalidProof, code: CodeInvalidDPoPProof, scheme: "DPoP"},
		{name: "both bound: certificate, as Bearer", auth: "Bearer " + bothBound, cert: alice, want: 401, reason: ReasonDPoPBound, code: CodeInvalidToken, scheme: "Bearer"},

		// A certificate reported by a trusted proxy is the one that
		// counts: the connection's own (the proxy's) is not consulted.
		{name: "reported certificate", auth: "Bearer " + certBound, cert: mallory, report: &clientCertReport{cert: alice.leaf}, want: 200, reason: ReasonOK, confirmed: ConfirmationMTLS},
		{name: "reported certificate, none on the connection", auth: "Bearer " + certBound, report: &clientCertReport{cert: alice.leaf}, want: 200, reason: ReasonOK, confirmed: ConfirmationMTLS},
		{name: "reported other certificate", auth: "Bearer " + certBound, cert: alice, report: &clientCertReport{cert: mallory.leaf}, want: 401, reason: ReasonCertificateMismatch, code: CodeInvalidToken, scheme: "Bearer"},
		{name: "reported no certificate", auth: "Bearer " + certBound, cert: alice, report: &clientCertReport{}, want: 401, reason: ReasonCertificateRequired, code: CodeInvalidToken, scheme: "Bearer"},
		{name: "malformed report, bound token", auth: "Bearer " + certBound, cert: alice, report: &clientCertReport{err: errors.New("bad header")}, want: 401, reason: ReasonMalformedCertificate, code: CodeInvalidRequest, scheme: "Bearer"},
		{name: "malformed report, unbound token", auth: "Bearer " + plain, report: &clientCertReport{err: errors.New("bad header")}, want: 401, reason: ReasonMalformedCertificate, code: CodeInvalidRequest, scheme: "Bearer"},
		{name: "malformed report, DPoP", auth: "DPoP " + bothBound, proof: true, report: &clientCertReport{err: errors.New("bad header")}, want: 401, reason: ReasonMalformedCertificate, code: CodeInvalidRequest, scheme: "DPoP"},
		{name: "reported certificate, unbound token", auth: "Bearer " + plain, report: &clientCertReport{cert: mallory.leaf}, want: 200, reason: ReasonOK, confirmed: ConfirmationNone},
	}
	for name, tok := range malformed {
		tests = append(tests, tc{name: "malformed cnf: " + name, auth: "Bearer " + tok, cert: alice, want: 401, reason: ReasonMalformedToken, code: CodeInvalidToken, scheme: "Bearer"})
	}

	for _, cache := range []bool{true, false} {
		t.Run(cacheLabel(cache), func(t *testing.T) {
			s := newMTLSServer(t, Config{
				Audience: testAudience, Issuers: []Issuer{is.config()},
				DPoP: DPoPConfig{Mode: DPoPAllowed}, DisableTokenCache: !cache,
			})
			clients := map[*clientCert]*http.Client{nil: s.client(t, nil), alice: s.client(t, alice), mallory: s.client(t, mallory)}
			url := s.srv.URL + "/orders/1"
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					s.report.Store(tt.report)
					req, err := http.NewRequest(http.MethodGet, url, nil)
					if err != nil {
						t.Fatal(err)
					}
					req.Header.Set("Authorization", tt.auth)
					if tt.proof {
						_, tok, _ := strings.Cut(tt.auth, " ")
						req.Header.Set("DPoP", dpopKey.proof(t, http.MethodGet, url, tok))
					}
					resp, err := clients[tt.cert].Do(req)
					if err != nil {
						t.Fatal(err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != tt.want {
						t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
					}
					if got, _ := s.reason.Load().(Reason); got != tt.reason {
						t.Errorf("reason %q, want %q", got, tt.reason)
					}
					if tt.want == 200 {
						var got map[string]string
						if err := json.Unmarshal(body, &got); err != nil {
							t.Fatal(err)
						}
						if Confirmation(got["confirmation"]) != tt.confirmed {
							t.Errorf("Principal.Confirmation %q, want %q", got["confirmation"], tt.confirmed)
						}
						if tt.confirmed.MTLS() != (got["x5t"] == alice.x5t) {
							t.Errorf("Principal.CertificateThumbprint %q", got["x5t"])
						}
						return
					}
					rec := httptest.NewRecorder()
					rec.Header().Set("WWW-Authenticate", resp.Header.Get("WWW-Authenticate"))
					ch := challengeFor(t, rec, tt.scheme)
					if ch == nil || ch["error"] != tt.code {
						t.Errorf("WWW-Authenticate %q: want error=%q in the %s challenge", resp.Header.Get("WWW-Authenticate"), tt.code, tt.scheme)
					}
					if strings.Contains(string(body), alice.x5t) || strings.Contains(resp.Header.Get("WWW-Authenticate"), alice.x5t) {
						t.Error("the response echoes the thumbprint")
					}
				})
			}
		})
	}
}

func cacheLabel(on bool) string {
	if on {
		return "cache"
	}
	return "no_cache"
}

func mustDigest(b []byte) []byte {
	sum := sha256.Sum256(b)
	return sum[:]
}

func hexDigest(b []byte) string {
	const hexDigits = "0123456789abcdef"
	var sb strings.Builder
	for _, c := range mustDigest(b) {
		sb.WriteByte(hexDigits[c>>4])
		sb.WriteByte(hexDigits[c&15])
	}
	return sb.String()
}

// TestCertificateBoundCheck: Check takes the peer's leaf in
// Request.ClientCertificate (gRPC, Connect), else the context's report.
func TestCertificateBoundCheck(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	alice, mallory := newClientCert(t, "alice"), newClientCert(t, "mallory")
	reg := prometheus.NewRegistry()
	g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, Registerer: reg})
	certBound := is.mint(t, "orders:read", map[string]any{"cnf": map[string]any{"x5t#S256": alice.x5t}})
	plain := is.mint(t, "orders:read", nil)
	bg := context.Background()
	malformedReport := ContextWithClientCertificate(bg, nil, errors.New("bad header"))

	tests := []struct {
		name   string
		ctx    context.Context
		req    Request
		reason Reason // ReasonOK: allowed
	}{
		{"peer certificate", bg, Request{Authorization: "Bearer " + certBound, ClientCertificate: alice.leaf}, ReasonOK},
		{"no certificate", bg, Request{Authorization: "Bearer " + certBound}, ReasonCertificateRequired},
		{"another certificate", bg, Request{Authorization: "Bearer " + certBound, ClientCertificate: mallory.leaf}, ReasonCertificateMismatch},
		{"a certificate without its DER", bg, Request{Authorization: "Bearer " + certBound, ClientCertificate: &x509.Certificate{}}, ReasonCertificateRequired},
		{"context certificate", ContextWithClientCertificate(bg, alice.leaf, nil), Request{Authorization: "Bearer " + certBound}, ReasonOK},
		// A proxy's report about its client beats the connection's own
		// certificate, which is the proxy's (as in Require).
		{"the context's report before the peer certificate", ContextWithClientCertificate(bg, mallory.leaf, nil), Request{Authorization: "Bearer " + certBound, ClientCertificate: alice.leaf}, ReasonCertificateMismatch},
		{"a report of no certificate before the peer certificate", ContextWithClientCertificate(bg, nil, nil), Request{Authorization: "Bearer " + certBound, ClientCertificate: alice.leaf}, ReasonCertificateRequired},
		{"malformed context report", malformedReport, Request{Authorization: "Bearer " + certBound, ClientCertificate: alice.leaf}, ReasonMalformedCertificate},
		{"malformed context report, unbound token", malformedReport, Request{Authorization: "Bearer " + plain}, ReasonMalformedCertificate},
		{"unbound token with a certificate", bg, Request{Authorization: "Bearer " + plain, ClientCertificate: mallory.leaf}, ReasonOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := g.Check(tt.ctx, tt.req, "orders:read")
			if tt.reason == ReasonOK {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				wantConf := ConfirmationNone
				if strings.Contains(tt.req.Authorization, certBound) {
					wantConf = ConfirmationMTLS
				}
				if p.Confirmation != wantConf {
					t.Errorf("Confirmation %q, want %q", p.Confirmation, wantConf)
				}
				return
			}
			var d *Denial
			if !errors.As(err, &d) {
				t.Fatalf("Check: %v, want a *Denial", err)
			}
			if d.Reason != tt.reason || d.Status != http.StatusUnauthorized {
				t.Errorf("denial %d %q, want 401 %q", d.Status, d.Reason, tt.reason)
			}
			wantCode := CodeInvalidToken
			if tt.reason == ReasonMalformedCertificate {
				wantCode = CodeInvalidRequest
				if !errors.Is(err, errMalformedCertificate) {
					t.Errorf("denial %v does not wrap the report's error", err)
				}
			}
			if d.Code != wantCode || len(d.Challenges) == 0 || !strings.Contains(d.Challenges[0], `error="`+wantCode+`"`) {
				t.Errorf("code %q, challenges %q; want %s", d.Code, d.Challenges, wantCode)
			}
		})
	}
	// Each reason is its own label of tokenguard_requests_total.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "tokenguard_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					counted[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	for _, r := range []Reason{ReasonCertificateRequired, ReasonCertificateMismatch, ReasonMalformedCertificate} {
		if counted[string(r)] == 0 {
			t.Errorf("tokenguard_requests_total{reason=%q} = %v, want > 0", r, counted[string(r)])
		}
	}
}

// TestCertificateBoundIntrospection: an introspection answer's
// cnf."x5t#S256" binds an opaque token as a JWT's does.
func TestCertificateBoundIntrospection(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	alice, mallory := newClientCert(t, "alice"), newClientCert(t, "mallory")
	dpopKey := newDPoPClient(t)
	as := newFakeAS(t)
	exp := time.Now().Add(time.Hour).Unix()
	active := func(cnf map[string]any) map[string]any {
		return map[string]any{"active": true, "exp": exp, "client_id": "app", "scope": "orders:read", "cnf": cnf}
	}
	as.set("opaque-mtls", active(map[string]any{"x5t#S256": alice.x5t}))
	as.set("opaque-both", active(map[string]any{"x5t#S256": alice.x5t, "jkt": dpopKey.jkt}))
	as.set("opaque-bad-x5t", active(map[string]any{"x5t#S256": alice.x5t + "A"}))
	as.set("opaque-x5t-number", active(map[string]any{"x5t#S256": 1}))
	g := newGuard(t, Config{
		Audience: testAudience, DPoP: DPoPConfig{Mode: DPoPAllowed},
		Issuers: []Issuer{{Issuer: is.URL(), JWKSURI: is.jwksURI(), IntrospectionEndpoint: as.srv.URL, ClientID: "rs", ClientSecret: "s3cret"}},
	})
	const url = "https://api.example.com/orders/1"
	proof := func(tok string) string { return dpopKey.proof(t, http.MethodGet, url, tok) }
	tests := []struct {
		name   string
		req    Request
		reason Reason
	}{
		{"right certificate", Request{Authorization: "Bearer opaque-mtls", ClientCertificate: alice.leaf}, ReasonOK},
		{"right certificate again (cached answer)", Request{Authorization: "Bearer opaque-mtls", ClientCertificate: alice.leaf}, ReasonOK},
		{"no certificate", Request{Authorization: "Bearer opaque-mtls"}, ReasonCertificateRequired},
		{"another certificate", Request{Authorization: "Bearer opaque-mtls", ClientCertificate: mallory.leaf}, ReasonCertificateMismatch},
		{"both: proof and certificate", Request{Authorization: "DPoP opaque-both", DPoP: proof("opaque-both"), Method: "GET", URL: url, ClientCertificate: alice.leaf}, ReasonOK},
		{"both: proof only", Request{Authorization: "DPoP opaque-both", DPoP: proof("opaque-both"), Method: "GET", URL: url}, ReasonCertificateRequired},
		{"both: certificate only, as Bearer", Request{Authorization: "Bearer opaque-both", ClientCertificate: alice.leaf}, ReasonDPoPBound},
		{"malformed x5t#S256", Request{Authorization: "Bearer opaque-bad-x5t", ClientCertificate: alice.leaf}, ReasonMalformedToken},
		{"x5t#S256 not a string", Request{Authorization: "Bearer opaque-x5t-number", ClientCertificate: alice.leaf}, ReasonMalformedToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := g.Check(context.Background(), tt.req, "orders:read")
			var d *Denial
			switch {
			case tt.reason == ReasonOK && err != nil:
				t.Fatalf("Check: %v", err)
			case tt.reason == ReasonOK:
				if !p.Confirmation.MTLS() || p.CertificateThumbprint != alice.x5t {
					t.Errorf("Principal: Confirmation %q, CertificateThumbprint %q", p.Confirmation, p.CertificateThumbprint)
				}
			case !errors.As(err, &d):
				t.Fatalf("Check: %v, want a *Denial", err)
			case d.Reason != tt.reason || d.Status != 401 || d.Code != CodeInvalidToken:
				t.Errorf("denial %d %q %q, want 401 invalid_token %q", d.Status, d.Code, d.Reason, tt.reason)
			}
		})
	}
}

// TestConfirmation pins the Confirmation helpers.
func TestConfirmation(t *testing.T) {
	for _, tt := range []struct {
		c          Confirmation
		dpop, mtls bool
	}{
		{ConfirmationNone, false, false},
		{ConfirmationDPoP, true, false},
		{ConfirmationMTLS, false, true},
		{ConfirmationDPoPMTLS, true, true},
	} {
		if tt.c.DPoP() != tt.dpop || tt.c.MTLS() != tt.mtls {
			t.Errorf("%q: DPoP() %v, MTLS() %v", tt.c, tt.c.DPoP(), tt.c.MTLS())
		}
	}
}

// TestCertificateReportConcurrent: reports in different contexts never
// mix (the race detector watches the shared guard).
func TestCertificateReportConcurrent(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}})
	certs := []*clientCert{newClientCert(t, "a"), newClientCert(t, "b")}
	toks := []string{
		is.mint(t, "orders:read", map[string]any{"cnf": map[string]any{"x5t#S256": certs[0].x5t}}),
		is.mint(t, "orders:read", map[string]any{"cnf": map[string]any{"x5t#S256": certs[1].x5t}}),
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				tok, cert := toks[(i+j)%2], certs[(i+j+i%2)%2]
				ctx := ContextWithClientCertificate(context.Background(), cert.leaf, nil)
				_, err := g.Check(ctx, Request{Authorization: "Bearer " + tok}, "orders:read")
				if match := (i+j)%2 == (i+j+i%2)%2; match != (err == nil) {
					t.Errorf("token %d, certificate %d: %v", (i+j)%2, (i+j+i%2)%2, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
