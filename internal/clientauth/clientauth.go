// Package clientauth authenticates tokenguard to an authorization server
// as an OAuth 2.0 client, the same way wherever it is one: at the
// introspection endpoint (package introspect) and at the token and
// revocation endpoints of the token handler (package bff).
package clientauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// AssertionType is the RFC 7523 §2.2 client_assertion_type.
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// AssertionLifetime is the validity of a private_key_jwt client
// assertion: long enough for clock skew, short enough that a leaked one
// is soon useless.
const AssertionLifetime = 60 * time.Second

// assertionClaims is the client assertion payload (RFC 7523 §3).
type assertionClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  []string `json:"aud"`
	ID        string   `json:"jti"`
	IssuedAt  int64    `json:"iat"`
	ExpiresAt int64    `json:"exp"`
}

// Assertion signs a fresh client assertion (RFC 7523 §2.2, OpenID Connect
// Core §9 private_key_jwt): iss and sub are clientID, aud lists audiences
// (servers differ in whether they expect the issuer or the endpoint, so
// callers name both), jti is 128 random bits, and it expires after
// AssertionLifetime. kid, when set, goes in the header.
func Assertion(key crypto.Signer, alg jwa.SignatureAlgorithm, kid, clientID string, audiences []string, now time.Time) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	payload, err := json.Marshal(assertionClaims{
		Issuer:    clientID,
		Subject:   clientID,
		Audience:  audiences,
		ID:        base64.RawURLEncoding.EncodeToString(b[:]),
		IssuedAt:  now.Unix(),
		ExpiresAt: now.Add(AssertionLifetime).Unix(),
	})
	if err != nil {
		return "", err
	}
	hdrs := jws.NewHeaders()
	if err := hdrs.Set(jws.TypeKey, "JWT"); err != nil {
		return "", err
	}
	if kid != "" {
		if err := hdrs.Set(jws.KeyIDKey, kid); err != nil {
			return "", err
		}
	}
	out, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdrs)))
	if err != nil {
		return "", fmt.Errorf("signing client assertion: %w", err)
	}
	return string(out), nil
}

// BasicAuth sets RFC 6749 §2.3.1 client_secret_basic credentials on req:
// both parts form-urlencoded before being joined and base64-encoded, so a
// ':' or '%' in either survives.
func BasicAuth(req *http.Request, clientID, secret string) {
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
}

// Algorithm resolves and checks the client assertion algorithm for a
// public key: name, or the first one the key fits when name is "" (RS256, ES256/384/512 by curve, EdDSA).
func Algorithm(pub crypto.PublicKey, name string) (jwa.SignatureAlgorithm, error) {
	var allowed []string
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return jwa.SignatureAlgorithm{}, errors.New("RSA keys must have at least 2048 bits")
		}
		allowed = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case *ecdsa.PublicKey:
		switch k.Curve.Params().Name {
		case "P-256":
			allowed = []string{"ES256"}
		case "P-384":
			allowed = []string{"ES384"}
		case "P-521":
			allowed = []string{"ES512"}
		default:
			return jwa.SignatureAlgorithm{}, errors.New("unsupported ECDSA curve")
		}
	case ed25519.PublicKey:
		allowed = []string{"EdDSA"}
	default:
		return jwa.SignatureAlgorithm{}, fmt.Errorf("unsupported key type %T", pub)
	}
	if name == "" {
		name = allowed[0]
	}
	for _, a := range allowed {
		if a == name {
			alg, ok := jwa.LookupSignatureAlgorithm(name)
			if !ok {
				return jwa.SignatureAlgorithm{}, fmt.Errorf("%q is not supported", name)
			}
			return alg, nil
		}
	}
	return jwa.SignatureAlgorithm{}, fmt.Errorf("%q does not fit a %T key", name, pub)
}
