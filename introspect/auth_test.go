package introspect

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

var testKeys = sync.OnceValue(func() (k struct {
	rsa  *rsa.PrivateKey
	p256 *ecdsa.PrivateKey
	p384 *ecdsa.PrivateKey
	ed   ed25519.PrivateKey
}) {
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.p256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if k.p384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	return k
})

// checkCommon verifies what every introspection request must carry and
// returns the parsed form.
func checkCommon(r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		return nil, fmt.Errorf("method %s", r.Method)
	}
	if got := r.Header.Get("Content-Type"); got != "application/x-www-form-urlencoded" {
		return nil, fmt.Errorf("Content-Type %q", got)
	}
	if got := r.Header.Get("Accept"); got != "application/json" {
		return nil, fmt.Errorf("Accept %q", got)
	}
	if r.URL.RawQuery != "" {
		return nil, fmt.Errorf("query %q: the token must travel in the body", r.URL.RawQuery)
	}
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	if got := r.PostForm.Get("token"); got != testToken {
		return nil, fmt.Errorf("token %q", got)
	}
	if got := r.PostForm.Get("token_type_hint"); got != "access_token" {
		return nil, fmt.Errorf("token_type_hint %q", got)
	}
	return r.PostForm, nil
}

// decodeBasic decodes an RFC 6749 §2.3.1 Basic header: base64, split at
// the first ':', then form-urldecode each half.
func decodeBasic(h string) (id, secret string, err error) {
	b64, ok := strings.CutPrefix(h, "Basic ")
	if !ok {
		return "", "", errors.New("not Basic")
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", "", err
	}
	eid, esecret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", errors.New("no colon")
	}
	if id, err = url.QueryUnescape(eid); err != nil {
		return "", "", err
	}
	if secret, err = url.QueryUnescape(esecret); err != nil {
		return "", "", err
	}
	return id, secret, nil
}

func TestClientSecretBasic(t *testing.T) {
	// Characters that break naive Basic encoding: ':' splits id from
	// secret, '%' and '+' change meaning under form decoding, and
	// non-ASCII must survive as UTF-8.
	const id, secret = "rs:1 é%+&/=", "s3:cr%et+ /=ü"
	var checkErr error
	var mu sync.Mutex
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		err := func() error {
			form, err := checkCommon(r)
			if err != nil {
				return err
			}
			if form.Has("client_id") || form.Has("client_secret") || form.Has("client_assertion") {
				return errors.New("credentials in the form as well")
			}
			gotID, gotSecret, err := decodeBasic(r.Header.Get("Authorization"))
			if err != nil {
				return err
			}
			if gotID != id || gotSecret != secret {
				return fmt.Errorf("credentials %q:%q", gotID, gotSecret)
			}
			// The raw header must hold the form-encoded forms.
			raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.Header.Get("Authorization"), "Basic "))
			if want := url.QueryEscape(id) + ":" + url.QueryEscape(secret); string(raw) != want {
				return fmt.Errorf("raw credentials %q, want %q", raw, want)
			}
			return nil
		}()
		mu.Lock()
		checkErr = err
		mu.Unlock()
		respondJSON(t, activeClaims())(w, r)
	})
	cfg := baseConfig(s, newClock())
	cfg.ClientID, cfg.ClientSecret = id, secret
	c := mustNew(t, cfg)
	if _, err := c.Introspect(bounded(t, 10*time.Second), testToken); err != nil {
		t.Fatalf("Introspect: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if checkErr != nil {
		t.Error(checkErr)
	}
}

func TestClientSecretPost(t *testing.T) {
	const id, secret = "rs 1&x=y", "s3cr%et+&="
	var checkErr error
	var mu sync.Mutex
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		err := func() error {
			form, err := checkCommon(r)
			if err != nil {
				return err
			}
			if r.Header.Get("Authorization") != "" {
				return errors.New("Authorization header sent with client_secret_post")
			}
			if got := form.Get("client_id"); got != id {
				return fmt.Errorf("client_id %q", got)
			}
			if got := form.Get("client_secret"); got != secret {
				return fmt.Errorf("client_secret %q", got)
			}
			return nil
		}()
		mu.Lock()
		checkErr = err
		mu.Unlock()
		respondJSON(t, activeClaims())(w, r)
	})
	cfg := baseConfig(s, newClock())
	cfg.ClientID, cfg.ClientSecret, cfg.AuthMethod = id, secret, ClientSecretPost
	c := mustNew(t, cfg)
	if _, err := c.Introspect(bounded(t, 10*time.Second), testToken); err != nil {
		t.Fatalf("Introspect: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if checkErr != nil {
		t.Error(checkErr)
	}
}

func TestPrivateKeyJWT(t *testing.T) {
	k := testKeys()
	tests := []struct {
		name    string
		key     crypto.Signer
		alg     string // Config.Algorithm
		wantAlg jwa.SignatureAlgorithm
		kid     string
	}{
		{"RSA default RS256", k.rsa, "", jwa.RS256(), "rsa-1"},
		{"RSA PS256", k.rsa, "PS256", jwa.PS256(), ""},
		{"P-256 default ES256", k.p256, "", jwa.ES256(), "ec-1"},
		{"P-384 default ES384", k.p384, "", jwa.ES384(), ""},
		{"Ed25519 default EdDSA", k.ed, "", jwa.EdDSA(), "ed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			var checkErr error
			var mu sync.Mutex
			var endpoint string
			s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				err := func() error {
					form, err := checkCommon(r)
					if err != nil {
						return err
					}
					if r.Header.Get("Authorization") != "" || form.Has("client_secret") {
						return errors.New("secret-based credentials sent with private_key_jwt")
					}
					if got := form.Get("client_assertion_type"); got != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
						return fmt.Errorf("client_assertion_type %q", got)
					}
					if got := form.Get("client_id"); got != "rs" {
						return fmt.Errorf("client_id %q", got)
					}
					a := form.Get("client_assertion")
					payload, err := jws.Verify([]byte(a), jws.WithKey(tt.wantAlg, tt.key.Public()))
					if err != nil {
						return fmt.Errorf("assertion does not verify with %v: %w", tt.wantAlg, err)
					}
					msg, err := jws.Parse([]byte(a))
					if err != nil {
						return err
					}
					h := msg.Signatures()[0].ProtectedHeaders()
					if kid, _ := h.KeyID(); kid != tt.kid {
						return fmt.Errorf("kid %q, want %q", kid, tt.kid)
					}
					var cl struct {
						Iss, Sub, Jti string
						Aud           []string
						Iat, Exp      int64
					}
					if err := json.Unmarshal(payload, &cl); err != nil {
						return err
					}
					if cl.Iss != "rs" || cl.Sub != "rs" {
						return fmt.Errorf("iss %q sub %q", cl.Iss, cl.Sub)
					}
					if !slices.Contains(cl.Aud, endpoint) || !slices.Contains(cl.Aud, testIssuer) {
						return fmt.Errorf("aud %q", cl.Aud)
					}
					if len(cl.Jti) < 16 {
						return fmt.Errorf("jti %q too short", cl.Jti)
					}
					if cl.Iat != t0.Unix() || cl.Exp <= cl.Iat || cl.Exp-cl.Iat > 300 {
						return fmt.Errorf("iat %d exp %d", cl.Iat, cl.Exp)
					}
					return nil
				}()
				mu.Lock()
				checkErr = err
				mu.Unlock()
				respondJSON(t, activeClaims())(w, r)
			})
			endpoint = s.endpoint()
			cfg := baseConfig(s, clk)
			cfg.ClientSecret = ""
			cfg.AuthMethod = PrivateKeyJWT
			cfg.PrivateKey, cfg.Algorithm, cfg.KeyID = tt.key, tt.alg, tt.kid
			c := mustNew(t, cfg)
			if _, err := c.Introspect(bounded(t, 10*time.Second), testToken); err != nil {
				t.Fatalf("Introspect: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if checkErr != nil {
				t.Error(checkErr)
			}
		})
	}
}

// TestAssertionJTIUnique: two assertions never share a jti.
func TestAssertionJTIUnique(t *testing.T) {
	s := newServer(t, respond(`{"active":false}`))
	cfg := baseConfig(s, newClock())
	cfg.ClientSecret, cfg.AuthMethod, cfg.PrivateKey = "", PrivateKeyJWT, testKeys().p256
	c := mustNew(t, cfg)
	seen := map[string]bool{}
	for range 20 {
		a, err := c.assertion()
		if err != nil {
			t.Fatal(err)
		}
		payload, err := jws.Verify([]byte(a), jws.WithKey(jwa.ES256(), testKeys().p256.Public()))
		if err != nil {
			t.Fatal(err)
		}
		var cl struct{ Jti string }
		if err := json.Unmarshal(payload, &cl); err != nil {
			t.Fatal(err)
		}
		if seen[cl.Jti] {
			t.Fatalf("jti %q repeated", cl.Jti)
		}
		seen[cl.Jti] = true
	}
}
