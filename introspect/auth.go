package introspect

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/lestrrat-go/jwx/v3/jws"
)

// clientAssertionType is the RFC 7523 §2.2 client_assertion_type.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// authenticate adds client authentication to req or form.
func (c *Client) authenticate(req *http.Request, form url.Values) error {
	switch c.cfg.AuthMethod {
	case ClientSecretPost:
		form.Set("client_id", c.cfg.ClientID)
		form.Set("client_secret", c.cfg.ClientSecret)
	case PrivateKeyJWT:
		a, err := c.assertion()
		if err != nil {
			return err
		}
		form.Set("client_id", c.cfg.ClientID)
		form.Set("client_assertion_type", clientAssertionType)
		form.Set("client_assertion", a)
	default: // ClientSecretBasic
		// RFC 6749 §2.3.1: both parts are form-urlencoded before being
		// joined and base64-encoded, so a ':' or '%' in either survives.
		req.SetBasicAuth(url.QueryEscape(c.cfg.ClientID), url.QueryEscape(c.cfg.ClientSecret))
	}
	return nil
}

// assertionClaims is the client assertion payload (RFC 7523 §3).
type assertionClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  []string `json:"aud"`
	ID        string   `json:"jti"`
	IssuedAt  int64    `json:"iat"`
	ExpiresAt int64    `json:"exp"`
}

// assertion signs a fresh client assertion: iss and sub are the client
// ID, aud names both the issuer and the introspection endpoint (servers
// differ in which they expect), jti is 128 random bits, and it expires
// after assertionLifetime.
func (c *Client) assertion() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	now := c.cfg.Now()
	payload, err := json.Marshal(assertionClaims{
		Issuer:    c.cfg.ClientID,
		Subject:   c.cfg.ClientID,
		Audience:  []string{c.cfg.Issuer, c.cfg.Endpoint},
		ID:        base64.RawURLEncoding.EncodeToString(b[:]),
		IssuedAt:  now.Unix(),
		ExpiresAt: now.Add(assertionLifetime).Unix(),
	})
	if err != nil {
		return "", err
	}
	hdrs := jws.NewHeaders()
	if err := hdrs.Set(jws.TypeKey, "JWT"); err != nil {
		return "", err
	}
	if c.cfg.KeyID != "" {
		if err := hdrs.Set(jws.KeyIDKey, c.cfg.KeyID); err != nil {
			return "", err
		}
	}
	out, err := jws.Sign(payload, jws.WithKey(c.alg, c.cfg.PrivateKey, jws.WithProtectedHeaders(hdrs)))
	if err != nil {
		return "", fmt.Errorf("signing client assertion: %w", err)
	}
	return string(out), nil
}
