package middleware

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/httpauth"
)

var update = flag.Bool("update", false, "rewrite golden files in ../testdata/challenges")

// TestChallengeGolden pins the WWW-Authenticate value of every kind of
// denial. Review changes to testdata/challenges/*.golden in diffs; rewrite
// them with go test ./middleware -run TestChallengeGolden -update.
func TestChallengeGolden(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	plain := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, Realm: "orders-api"})
	withMeta := newGuard(t, Config{
		Audience: testAudience, Issuers: []Issuer{is.config()},
		ResourceMetadataURL: "https://docs.example.com/orders/resource.json",
	})
	advertised := newGuard(t, Config{
		Audience: testAudience, Issuers: []Issuer{is.config()}, DPoP: DPoPConfig{Mode: DPoPAllowed},
		AdvertiseResourceMetadata: true,
	})
	expired := is.mint(t, "orders:read", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})
	readOnly := is.mint(t, "orders:read", nil)
	allowed := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, DPoP: DPoPConfig{Mode: DPoPAllowed}})
	required := newGuard(t, Config{
		Audience: testAudience, Issuers: []Issuer{is.config()}, DPoP: DPoPConfig{Mode: DPoPRequired},
		ResourceMetadataURL: "https://api.example.com/.well-known/oauth-protected-resource",
	})
	nonces := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, DPoP: DPoPConfig{Mode: DPoPAllowed, Nonce: true}})
	alice := newDPoPClient(t)
	bound := is.mint(t, "orders:read", map[string]any{"cnf": map[string]any{"jkt": alice.jkt}})
	proof := alice.proof(t, "GET", "http://api.example.com/orders/1", bound)
	aliceCert, malloryCert := newClientCert(t, "alice"), newClientCert(t, "mallory")
	certBound := is.mint(t, "orders:read", map[string]any{"cnf": map[string]any{"x5t#S256": aliceCert.x5t}})
	bothBound := is.mint(t, "orders:read", map[string]any{"cnf": map[string]any{"jkt": alice.jkt, "x5t#S256": aliceCert.x5t}})
	bothProof := alice.proof(t, "GET", "http://api.example.com/orders/1", bothBound)

	tests := []struct {
		name   string
		g      *Guard
		scopes []string
		auth   []string
		dpop   string            // DPoP header, if any
		cert   *x509.Certificate // the TLS client certificate, if any
		report error             // a malformed certificate report (ContextWithClientCertificate), if any
	}{
		{name: "missing", g: plain},
		{name: "missing_resource_metadata", g: withMeta},
		{name: "missing_advertised", g: advertised},
		{name: "invalid_token_advertised", g: advertised, auth: []string{"Bearer " + expired}},
		{name: "dpop_insufficient_scope_advertised", g: advertised, scopes: []string{"orders:write"}, auth: []string{"DPoP " + bound}, dpop: proof},
		{name: "unsupported_scheme", g: plain, auth: []string{"Basic dXNlcjpwYXNz"}},
		{name: "invalid_request_two_headers", g: plain, auth: []string{"Bearer a", "Bearer b"}},
		{name: "invalid_token_expired", g: plain, auth: []string{"Bearer " + expired}},
		{name: "invalid_token_resource_metadata", g: withMeta, auth: []string{"Bearer " + expired}},
		{name: "insufficient_scope", g: plain, scopes: []string{"orders:read", "orders:write"}, auth: []string{"Bearer " + readOnly}},
		{name: "dpop_allowed_missing", g: allowed},
		{name: "dpop_allowed_bearer_expired", g: allowed, auth: []string{"Bearer " + expired}},
		{name: "dpop_bound_token_as_bearer", g: allowed, auth: []string{"Bearer " + bound}},
		{name: "dpop_invalid_proof", g: allowed, auth: []string{"DPoP " + bound}},
		{name: "dpop_insufficient_scope", g: allowed, scopes: []string{"orders:write"}, auth: []string{"DPoP " + bound}, dpop: proof},
		{name: "dpop_use_nonce", g: nonces, auth: []string{"DPoP " + bound}, dpop: proof},
		{name: "dpop_required_missing", g: required},
		{name: "dpop_required_bearer", g: required, auth: []string{"Bearer " + readOnly}},
		{name: "certificate_required", g: plain, auth: []string{"Bearer " + certBound}},
		{name: "certificate_mismatch", g: plain, auth: []string{"Bearer " + certBound}, cert: malloryCert.leaf},
		{name: "certificate_malformed_report", g: plain, auth: []string{"Bearer " + readOnly}, report: errors.New("not base64")},
		{name: "dpop_certificate_required", g: allowed, auth: []string{"DPoP " + bothBound}, dpop: bothProof},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "http://api.example.com/orders/1", nil)
			for _, a := range tt.auth {
				req.Header.Add("Authorization", a)
			}
			if tt.dpop != "" {
				req.Header.Set("DPoP", tt.dpop)
			}
			if tt.cert != nil {
				req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{tt.cert}}
			}
			if tt.report != nil {
				req = req.WithContext(ContextWithClientCertificate(req.Context(), nil, tt.report))
			}
			rec := httptest.NewRecorder()
			tt.g.Require(tt.scopes...)(okHandler).ServeHTTP(rec, req)
			got := rec.Header().Get("WWW-Authenticate") + "\n"
			path := filepath.Join("..", "testdata", "challenges", tt.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("WWW-Authenticate:\n got %s\nwant %s", got, want)
			}
			// Every golden value is a well-formed challenge list.
			if _, err := httpauth.ParseChallenges(got[:len(got)-1]); err != nil {
				t.Errorf("golden value does not parse: %v", err)
			}
		})
	}
}
