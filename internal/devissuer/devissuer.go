// Package devissuer is a minimal OAuth 2.0 authorization server for
// development and tests only: it holds private keys in memory, publishes
// their JWKS and RFC 8414 metadata, and mints RFC 9068 access tokens for
// whatever it is asked. It authenticates nobody. Never expose it beyond
// loopback and never use it to protect anything real.
//
// Tokens are signed with lestrrat-go/jwx, independently of tokenguard's own
// verifier, so tests exercise the verifier against a second implementation.
package devissuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"

	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// Key is a signing key with its JWS algorithm and key id.
type Key struct {
	KID     string
	Alg     string
	Private crypto.Signer
}

// GenerateKey makes a fresh key for alg (RS256/384/512 and PS256/384/512:
// RSA 2048; ES256: P-256; ES384: P-384; ES512: P-521; EdDSA: Ed25519).
func GenerateKey(alg, kid string) (*Key, error) {
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("devissuer: unsupported alg %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("devissuer: generating %s key: %w", alg, err)
	}
	return &Key{KID: kid, Alg: alg, Private: priv}, nil
}

// PublicJWK returns the key's public JWK with kid, alg and use=sig set.
func (k *Key) PublicJWK() (jwk.Key, error) {
	pub, err := jwk.PublicKeyOf(k.Private)
	if err != nil {
		return nil, fmt.Errorf("devissuer: public JWK: %w", err)
	}
	if k.KID != "" {
		if err := pub.Set(jwk.KeyIDKey, k.KID); err != nil {
			return nil, err
		}
	}
	alg, ok := jwa.LookupSignatureAlgorithm(k.Alg)
	if !ok {
		return nil, fmt.Errorf("devissuer: unknown alg %q", k.Alg)
	}
	if err := pub.Set(jwk.AlgorithmKey, alg); err != nil {
		return nil, err
	}
	if err := pub.Set(jwk.KeyUsageKey, "sig"); err != nil {
		return nil, err
	}
	return pub, nil
}

// Sign returns a compact JWS over the JSON encoding of claims. The
// protected header gets alg (unless header sets it, which signs with that
// algorithm name instead — for negative tests), kid when the key has one,
// and every member of header; a nil value in header removes a default
// member.
func (k *Key) Sign(header, claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("devissuer: claims: %w", err)
	}
	return k.SignPayload(header, payload)
}

// SignPayload is Sign for a ready-made payload.
func (k *Key) SignPayload(header map[string]any, payload []byte) (string, error) {
	hdrs := jws.NewHeaders()
	if k.KID != "" {
		if err := hdrs.Set(jws.KeyIDKey, k.KID); err != nil {
			return "", err
		}
	}
	for name, v := range header {
		if name == "alg" {
			continue
		}
		if v == nil {
			if err := hdrs.Remove(name); err != nil {
				return "", err
			}
			continue
		}
		if err := hdrs.Set(name, v); err != nil {
			return "", fmt.Errorf("devissuer: header %q: %w", name, err)
		}
	}
	alg, ok := jwa.LookupSignatureAlgorithm(k.Alg)
	if !ok {
		return "", fmt.Errorf("devissuer: unknown alg %q", k.Alg)
	}
	out, err := jws.Sign(payload, jws.WithKey(alg, k.Private, jws.WithProtectedHeaders(hdrs)))
	if err != nil {
		return "", fmt.Errorf("devissuer: signing: %w", err)
	}
	return string(out), nil
}

// Issuer is a development authorization server. Its zero value is not
// usable; call New. It is safe for concurrent use.
type Issuer struct {
	url      string
	audience string

	mu        sync.Mutex // guards the fields below
	signing   *Key
	published []*Key
	rawJWKS   []byte // when non-nil, served instead of published
	status    int    // when non-zero, /jwks answers with it
	header    http.Header
	login     *login // nil until EnableLogin

	jwksHits atomic.Int64
}

// New returns an issuer whose "iss" is url, which mints tokens for audience
// and signs them with signing (also published in its JWKS).
func New(url, audience string, signing *Key) *Issuer {
	return &Issuer{url: url, audience: audience, signing: signing, published: []*Key{signing}}
}

// URL returns the issuer identifier.
func (is *Issuer) URL() string { return is.url }

// SigningKey returns the key tokens are currently signed with.
func (is *Issuer) SigningKey() *Key {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.signing
}

// SetSigningKey changes the key Mint signs with (it is not published by
// this call).
func (is *Issuer) SetSigningKey(k *Key) {
	is.mu.Lock()
	is.signing = k
	is.mu.Unlock()
}

// Publish replaces the keys served at /jwks.
func (is *Issuer) Publish(keys ...*Key) {
	is.mu.Lock()
	is.published = append([]*Key(nil), keys...)
	is.rawJWKS = nil
	is.mu.Unlock()
}

// ServeRawJWKS makes /jwks serve body verbatim (nil restores the published
// keys); for tests of malformed documents.
func (is *Issuer) ServeRawJWKS(body []byte) {
	is.mu.Lock()
	is.rawJWKS = body
	is.mu.Unlock()
}

// FailJWKS makes /jwks answer with status (0 restores normal service).
func (is *Issuer) FailJWKS(status int) {
	is.mu.Lock()
	is.status = status
	is.mu.Unlock()
}

// SetJWKSHeader sets a response header on /jwks (e.g. Cache-Control).
func (is *Issuer) SetJWKSHeader(name, value string) {
	is.mu.Lock()
	if is.header == nil {
		is.header = http.Header{}
	}
	is.header.Set(name, value)
	is.mu.Unlock()
}

// JWKSHits reports how many times /jwks was requested.
func (is *Issuer) JWKSHits() int64 { return is.jwksHits.Load() }

// JWKS returns the JSON JWK Set of the published keys.
func (is *Issuer) JWKS() ([]byte, error) {
	is.mu.Lock()
	keys := is.published
	raw := is.rawJWKS
	is.mu.Unlock()
	if raw != nil {
		return raw, nil
	}
	set := jwk.NewSet()
	for _, k := range keys {
		pub, err := k.PublicJWK()
		if err != nil {
			return nil, err
		}
		if err := set.AddKey(pub); err != nil {
			return nil, err
		}
	}
	return json.Marshal(set)
}

// Claims returns the RFC 9068 claims Mint uses by default: iss, aud, sub,
// client_id, iat, exp (in ttl), jti and scope.
func (is *Issuer) Claims(scope string, ttl time.Duration) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss":       is.url,
		"aud":       is.audience,
		"sub":       "demo-user",
		"client_id": "demo-client",
		"iat":       now.Unix(),
		"exp":       now.Add(ttl).Unix(),
		"jti":       randomID(),
		"scope":     scope,
	}
}

// Mint signs an RFC 9068 access token (typ at+jwt) granting scope for ttl.
// Members of extra override or, when nil, remove default claims.
func (is *Issuer) Mint(scope string, ttl time.Duration, extra map[string]any) (string, error) {
	claims := is.Claims(scope, ttl)
	for k, v := range extra {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	return is.SigningKey().Sign(map[string]any{"typ": "at+jwt"}, claims)
}

// Handler serves the issuer's endpoints:
//
//	GET /jwks                                    the JWK Set
//	GET /.well-known/oauth-authorization-server  RFC 8414 metadata (and at
//	GET /.well-known/openid-configuration        when EnableLogin was called)
//	GET|POST /token?scope=a+b                    a fresh access token (text/plain), valid 1 h
//
// and, after EnableLogin, GET /authorize, the authorization_code and
// refresh_token grants at POST /token (with DPoP, RFC 9449), POST /revoke,
// GET /logout and, with LoginConfig.PAR, POST /par (RFC 9126).
//
// /token hands a token to anyone who asks: development only.
func (is *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		is.jwksHits.Add(1)
		is.mu.Lock()
		status := is.status
		for k, v := range is.header {
			w.Header()[k] = v
		}
		is.mu.Unlock()
		if status != 0 {
			http.Error(w, http.StatusText(status), status)
			return
		}
		body, err := is.JWKS()
		if err != nil {
			http.Error(w, "jwks unavailable", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(body)
	})
	metadata := func(w http.ResponseWriter, r *http.Request) {
		base := strings.TrimSuffix(is.url, "/")
		md := map[string]any{
			"issuer":                                is.url,
			"jwks_uri":                              base + "/jwks",
			"token_endpoint":                        base + "/token",
			"response_types_supported":              []string{},
			"grant_types_supported":                 []string{"client_credentials"},
			"token_endpoint_auth_methods_supported": []string{"none"},
			"service_documentation":                 "development issuer: tokens for anyone who asks; never use in production",
		}
		if is.loginState() != nil {
			md["authorization_endpoint"] = base + "/authorize"
			md["revocation_endpoint"] = base + "/revoke"
			md["end_session_endpoint"] = base + "/logout"
			md["response_types_supported"] = []string{"code"}
			md["grant_types_supported"] = []string{"authorization_code", "refresh_token", "client_credentials"}
			md["token_endpoint_auth_methods_supported"] = []string{"client_secret_basic", "client_secret_post"}
			md["code_challenge_methods_supported"] = []string{"S256"}
			md["id_token_signing_alg_values_supported"] = []string{is.SigningKey().Alg}
			md["subject_types_supported"] = []string{"public"}
			md["dpop_signing_alg_values_supported"] = []string{"ES256", "ES384", "EdDSA", "RS256", "PS256"}
			if l := is.loginState(); l.cfg.PAR {
				md["pushed_authorization_request_endpoint"] = base + "/par"
				if l.cfg.RequirePAR {
					md["require_pushed_authorization_requests"] = true
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(md)
	}
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", metadata)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		if is.loginState() == nil {
			http.NotFound(w, r)
			return
		}
		metadata(w, r)
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		if is.loginState() == nil {
			http.NotFound(w, r)
			return
		}
		is.authorize(w, r)
	})
	mux.HandleFunc("POST /par", func(w http.ResponseWriter, r *http.Request) {
		if l := is.loginState(); l == nil || !l.cfg.PAR {
			http.NotFound(w, r)
			return
		}
		is.par(w, r)
	})
	mux.HandleFunc("POST /revoke", func(w http.ResponseWriter, r *http.Request) {
		if is.loginState() == nil {
			http.NotFound(w, r)
			return
		}
		is.revoke(w, r)
	})
	mux.HandleFunc("GET /logout", func(w http.ResponseWriter, r *http.Request) {
		if is.loginState() == nil {
			http.NotFound(w, r)
			return
		}
		is.endSession(w, r)
	})
	mint := func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && is.tokenGrant(w, r) {
			return
		}
		scope := r.FormValue("scope")
		if len(scope) > 1024 {
			http.Error(w, "scope too long", http.StatusBadRequest)
			return
		}
		tok, err := is.Mint(scope, time.Hour, nil)
		if err != nil {
			http.Error(w, "cannot mint", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = fmt.Fprintln(w, tok)
	}
	mux.HandleFunc("GET /token", mint)
	mux.HandleFunc("POST /token", mint)
	return mux
}

var idCounter atomic.Uint64

func randomID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return strconv.FormatUint(idCounter.Add(1), 10)
	}
	return fmt.Sprintf("%x", b[:])
}
