package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
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
	claims := struct {
		JTI   string `json:"jti"`
		HTM   string `json:"htm"`
		HTU   string `json:"htu"`
		IAT   int64  `json:"iat"`
		ATH   string `json:"ath,omitempty"`
		Nonce string `json:"nonce,omitempty"`
	}{JTI: jti, HTM: p.Method, HTU: htu, IAT: iat.Unix(), Nonce: p.Nonce}
	if p.AccessToken != "" {
		claims.ATH = AccessTokenHash(p.AccessToken)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	if k, ok := key.(*ecdsa.PrivateKey); ok && alg == "ES256" && k.Curve == elliptic.P256() {
		return signES256Proof(k, payload)
	}
	pub, err := jwk.Import(key.Public())
	if err != nil {
		return "", fmt.Errorf("dpop: public key: %w", err)
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

// signES256Proof signs a proof's payload with a P-256 key directly: the
// header is three fixed members, the signature ES256's fixed-width r||s.
// It is the common case (the token handler signs one proof per session
// request with it), and jwx's generic JWS path cost about 100
// allocations a proof.
func signES256Proof(k *ecdsa.PrivateKey, payload []byte) (string, error) {
	point, err := k.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil || len(point) != 65 {
		return "", errors.New("dpop: signing proof: not a P-256 key")
	}
	b64 := base64.RawURLEncoding
	hdr := make([]byte, 0, 160)
	hdr = append(hdr, `{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":"`...)
	hdr = b64.AppendEncode(hdr, point[1:33])
	hdr = append(hdr, `","y":"`...)
	hdr = b64.AppendEncode(hdr, point[33:])
	hdr = append(hdr, `"}}`...)
	out := make([]byte, 0, b64.EncodedLen(len(hdr))+b64.EncodedLen(len(payload))+2+b64.EncodedLen(64))
	out = b64.AppendEncode(out, hdr)
	out = append(out, '.')
	out = b64.AppendEncode(out, payload)
	digest := sha256.Sum256(out)
	r, s, err := ecdsa.Sign(rand.Reader, k, digest[:])
	if err != nil {
		return "", fmt.Errorf("dpop: signing proof: %w", err)
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	out = append(out, '.')
	out = b64.AppendEncode(out, sig[:])
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
