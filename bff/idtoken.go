package bff

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tokenguard/tokenguard/internal/discovery"
	"github.com/tokenguard/tokenguard/internal/jose"
)

// idTokenLeeway is the clock skew allowed on exp and iat.
const idTokenLeeway = time.Minute

// idClaims are the ID token claims checked (OpenID Connect Core §3.1.3.7).
type idClaims struct {
	Issuer   string          `json:"iss"`
	Subject  string          `json:"sub"`
	Audience json.RawMessage `json:"aud"`
	AZP      string          `json:"azp"`
	Expires  *json.Number    `json:"exp"`
	IssuedAt *json.Number    `json:"iat"`
	Nonce    string          `json:"nonce"`
}

// verifyIDToken checks an ID token from the token response: signature with
// the issuer's keys (an allow-listed alg bound to the key), iss, aud =
// client_id (azp when there are several), exp, iat, nonce = the login's,
// and a sub. It returns the claims, a JSON object.
func (h *Handler) verifyIDToken(ctx context.Context, md *discovery.Metadata, raw, nonce string, now time.Time) (json.RawMessage, error) {
	if raw == "" {
		return nil, errors.New("bff: the token response has no id_token (is openid among the scopes?)")
	}
	if len(raw) > MaxTokenSize {
		return nil, errors.New("bff: id_token larger than MaxTokenSize")
	}
	t, err := jose.Parse(raw)
	if err != nil {
		return nil, err
	}
	set, err := h.keySet(ctx, md)
	if err != nil {
		return nil, fmt.Errorf("bff: the issuer's keys: %w", err)
	}
	key, err := set.Lookup(ctx, t.Header.Kid)
	if err != nil {
		return nil, err
	}
	if !key.Allows(t.Header.Alg) {
		return nil, fmt.Errorf("bff: id_token alg %q is not allowed for its key", t.Header.Alg)
	}
	if err := jose.VerifySignature(t.Header.Alg, key.Public, t.SigningInput, t.Signature); err != nil {
		return nil, err
	}
	payload := bytes.TrimSpace(t.Payload)
	if len(payload) == 0 || payload[0] != '{' {
		return nil, errors.New("bff: id_token claims are not a JSON object")
	}
	var c idClaims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("bff: id_token claims: %w", err)
	}
	aud, err := audiences(c.Audience)
	if err != nil {
		return nil, err
	}
	exp, errExp := unix(c.Expires)
	iat, errIat := unix(c.IssuedAt)
	switch {
	case c.Issuer != h.cfg.Issuer:
		return nil, fmt.Errorf("bff: id_token iss %q is not the issuer", c.Issuer)
	case !contains(aud, h.cfg.ClientID):
		return nil, errors.New("bff: id_token aud does not name this client")
	case len(aud) > 1 && c.AZP != "" && c.AZP != h.cfg.ClientID:
		return nil, errors.New("bff: id_token azp is another client")
	case errExp != nil || errIat != nil:
		return nil, errors.New("bff: id_token exp or iat is missing or not a number")
	case !now.Before(exp.Add(idTokenLeeway)):
		return nil, errors.New("bff: id_token expired")
	case iat.After(now.Add(idTokenLeeway)):
		return nil, errors.New("bff: id_token issued in the future")
	case c.Nonce == "" || c.Nonce != nonce:
		return nil, errors.New("bff: id_token nonce is not the login's")
	case c.Subject == "":
		return nil, errors.New("bff: id_token has no sub")
	}
	return json.RawMessage(bytes.Clone(payload)), nil
}

func audiences(raw json.RawMessage) ([]string, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errors.New("bff: id_token aud is neither a string nor an array of strings")
	}
	return many, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func unix(n *json.Number) (time.Time, error) {
	if n == nil {
		return time.Time{}, errors.New("missing")
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(int64(f), 0), nil
}

// jwtExpiry reads exp from an access token that is a JWT, only to know
// when to refresh it: nothing is trusted from it (the guard verifies the
// token on every request).
func jwtExpiry(tok string) int64 {
	t, err := jose.Parse(tok)
	if err != nil {
		return 0
	}
	var c jose.Claims
	if err := jose.ParseClaims(t.Payload, &c); err != nil || !c.ExpiresAt.Valid {
		return 0
	}
	return c.ExpiresAt.Time().Unix()
}
