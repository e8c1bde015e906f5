package bff_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/internal/devissuer"
)

// TestClientAuthMethods: login, refresh and revocation each authenticate
// the client at the AS, with each method; the issuer refuses anything
// else (a wrong secret, an assertion signed by another key).
func TestClientAuthMethods(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tests := []struct {
		name       string
		change     func(*bff.Config)
		registered *ecdsa.PublicKey // the key the AS knows, for private_key_jwt
		works      bool
	}{
		{"client_secret_basic", func(c *bff.Config) {}, nil, true},
		{"client_secret_post", func(c *bff.Config) { c.ClientAuthMethod = bff.ClientSecretPost }, nil, true},
		{"wrong secret", func(c *bff.Config) { c.ClientSecret = "nope" }, nil, false},
		{"private_key_jwt", func(c *bff.Config) { c.ClientSecret, c.ClientKey = "", key }, &key.PublicKey, true},
		{"private_key_jwt, another key", func(c *bff.Config) { c.ClientSecret, c.ClientKey = "", other }, &key.PublicKey, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.change)
			if tc.registered != nil {
				e.is.EnableLogin(devissuer.LoginConfig{Clients: []devissuer.Client{{
					ID: clientID, PublicKey: tc.registered,
					RedirectURIs: []string{e.app.URL + "/bff/callback"},
				}}})
			}
			e.expireSoon(t)
			b := newBrowser(t)
			resp, body := b.do("GET", b.startLogin(e, ""))
			if !tc.works {
				if resp.StatusCode != 400 {
					t.Fatalf("callback with a client the AS refuses: %d %s", resp.StatusCode, body)
				}
				return
			}
			if resp.StatusCode != 302 {
				t.Fatalf("callback: %d %s", resp.StatusCode, body)
			}
			e.is.SetAccessTokenTTL(time.Hour)
			e.advance(6 * time.Second)
			if resp, body := b.api(e); resp.StatusCode != 200 {
				t.Fatalf("api (refresh): %d %s", resp.StatusCode, body)
			}
			if resp, _ := b.do("POST", e.app.URL+"/bff/logout", "X-CSRF: 1"); resp.StatusCode != 200 {
				t.Fatalf("logout: %d", resp.StatusCode)
			}
			code, refresh, revoked := e.is.Grants()
			if code != 1 || refresh != 1 || revoked != 1 {
				t.Errorf("grants: code %d, refresh %d, revocations %d; want 1, 1, 1", code, refresh, revoked)
			}
		})
	}
}
