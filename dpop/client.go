package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// ProofParams describe the request a client proof is for.
type ProofParams struct {
	// Method is the HTTP method ("htm").
	Method string
	// URL is the target URL ("htu"); its query and fragment are dropped.
	URL string
	// AccessToken, when set, is bound to the proof with "ath".
	AccessToken string
	// Nonce is the server's DPoP-Nonce, when it asked for one.
	Nonce string
	// IssuedAt is "iat"; the zero time means now.
	IssuedAt time.Time
	// JTI is the proof's identifier; "" means 128 random bits.
	JTI string
	// Alg is the JWS algorithm; "" means the natural one for the key:
	// ES256, ES384 or ES512 by curve, EdDSA, or PS256 for RSA.
	Alg string
}

// NewProof makes a DPoP proof JWT (RFC 9449 §4.2) signed with key, for
// clients, tests and the tokenguard proof command.
func NewProof(key crypto.Signer, p ProofParams) (string, error) {
	alg := p.Alg
	if alg == "" {
		var err error
		if alg, err = algFor(key.Public()); err != nil {
			return "", err
		}
	}
	ja, ok := jwa.LookupSignatureAlgorithm(alg)
	if !ok {
		return "", fmt.Errorf("dpop: unknown alg %q", alg)
	}
	pub, err := jwk.Import(key.Public())
	if err != nil {
		return "", fmt.Errorf("dpop: public key: %w", err)
	}
	htu, err := NormalizeHTU(p.URL)
	if err != nil {
		return "", err
	}
	jti := p.JTI
	if jti == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		jti = base64.RawURLEncoding.EncodeToString(b[:])
	}
	iat := p.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	claims := map[string]any{"jti": jti, "htm": p.Method, "htu": htu, "iat": iat.Unix()}
	if p.AccessToken != "" {
		claims["ath"] = AccessTokenHash(p.AccessToken)
	}
	if p.Nonce != "" {
		claims["nonce"] = p.Nonce
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	hdrs := jws.NewHeaders()
	if err := hdrs.Set(jws.TypeKey, "dpop+jwt"); err != nil {
		return "", err
	}
	if err := hdrs.Set(jws.JWKKey, pub); err != nil {
		return "", err
	}
	out, err := jws.Sign(payload, jws.WithKey(ja, key, jws.WithProtectedHeaders(hdrs)))
	if err != nil {
		return "", fmt.Errorf("dpop: signing proof: %w", err)
	}
	return string(out), nil
}

func algFor(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve.Params().Name {
		case "P-256":
			return "ES256", nil
		case "P-384":
			return "ES384", nil
		case "P-521":
			return "ES512", nil
		}
	case ed25519.PublicKey:
		return "EdDSA", nil
	case *rsa.PublicKey:
		return "PS256", nil
	}
	return "", fmt.Errorf("dpop: no JWS algorithm for a %T key", pub)
}

// Thumbprint returns the RFC 7638 SHA-256 JWK thumbprint of a public key,
// base64url-encoded: the value of "cnf.jkt" for tokens bound to it.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	k, err := jwk.Import(pub)
	if err != nil {
		return "", fmt.Errorf("dpop: thumbprint: %w", err)
	}
	if private, err := jwk.IsPrivateKey(k); err != nil || private {
		return "", errors.New("dpop: thumbprint: want a public key")
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("dpop: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// AccessTokenHash is the "ath" value for an access token (RFC 9449 §4.2):
// base64url(SHA-256(token)).
func AccessTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

var b64 = base64.RawURLEncoding
