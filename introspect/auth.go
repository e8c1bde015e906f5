package introspect

import (
	"net/http"
	"net/url"

	"github.com/tokenguard/tokenguard/internal/clientauth"
)

// clientAssertionType is the RFC 7523 §2.2 client_assertion_type.
const clientAssertionType = clientauth.AssertionType

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
		clientauth.BasicAuth(req, c.cfg.ClientID, c.cfg.ClientSecret)
	}
	return nil
}

// assertion signs a fresh client assertion whose aud names both the
// issuer and the introspection endpoint (servers differ in which they
// expect).
func (c *Client) assertion() (string, error) {
	return clientauth.Assertion(c.cfg.PrivateKey, c.alg, c.cfg.KeyID, c.cfg.ClientID, []string{c.cfg.Issuer, c.cfg.Endpoint}, c.cfg.Now())
}
