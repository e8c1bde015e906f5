package bff

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tokenguard/tokenguard/internal/discovery"
	"github.com/tokenguard/tokenguard/internal/jose"
	"github.com/tokenguard/tokenguard/jwks"
)

// idTokenLeeway is the clock skew allowed on exp and iat.
const idTokenLeeway = time.Minute

// idExtra are the ID token claims jose.Claims does not read
// (OpenID Connect Core §2), as JSON strings only.
type idExtra struct {
	AZP   *string `json:"azp"`
	Nonce *string `json:"nonce"`
}

// errKeysUnavailable: the issuer's keys could not be had (never loaded,
// the key set could not be made, the caller gave up): the token was
// neither accepted nor refused.
var errKeysUnavailable = errors.New("bff: the issuer's keys are unavailable")

// verifyJWS parses a compact JWS from the issuer and checks its signature
// with the issuer's keys (from its jwks_uri): the key its kid names, an
// algorithm on the allow-list and bound to that key, no key or key
// reference taken from the header (jose.Parse). It is the part of the
// check ID tokens and logout tokens share. An error wrapping
// errKeysUnavailable means the keys were missing, not that the token is
// bad.
func (h *Handler) verifyJWS(ctx context.Context, md *discovery.Metadata, raw string) (jose.Token, error) {
	t, err := jose.Parse(raw)
	if err != nil {
		return jose.Token{}, err
	}
	set, err := h.keySet(ctx, md)
	if err != nil {
		return jose.Token{}, fmt.Errorf("%w: %w", errKeysUnavailable, err)
	}
	key, err := set.Lookup(ctx, t.Header.Kid)
	if err != nil {
		if !errors.Is(err, jwks.ErrUnknownKID) {
			err = fmt.Errorf("%w: %w", errKeysUnavailable, err)
		}
		return jose.Token{}, err
	}
	if !key.Allows(t.Header.Alg) {
		return jose.Token{}, errors.New("bff: the alg is not allowed for the key")
	}
	if err := jose.VerifySignature(t.Header.Alg, key.Public, t.SigningInput, t.Signature); err != nil {
		return jose.Token{}, err
	}
	return t, nil
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
	t, err := h.verifyJWS(ctx, md, raw)
	if err != nil {
		return nil, err
	}
	// The registered claims with the same strict reader as access
	// tokens: one object, no duplicate or trailing data, NumericDates
	// that are numbers in range; then azp and nonce, which must be
	// strings when present.
	var c jose.Claims
	if err := jose.ParseClaims(t.Payload, &c); err != nil {
		return nil, err
	}
	var x idExtra
	if err := json.Unmarshal(t.Payload, &x); err != nil {
		return nil, fmt.Errorf("bff: id_token azp or nonce: %w", err)
	}
	switch {
	case c.Issuer != h.cfg.Issuer:
		return nil, fmt.Errorf("bff: id_token iss %q is not the issuer", c.Issuer)
	case !slices.Contains(c.Audience, h.cfg.ClientID):
		return nil, errors.New("bff: id_token aud does not name this client")
	case x.AZP != nil && *x.AZP != h.cfg.ClientID:
		return nil, errors.New("bff: id_token azp is another client")
	case len(c.Audience) > 1 && x.AZP == nil:
		return nil, errors.New("bff: id_token has several audiences and no azp")
	case !c.ExpiresAt.Valid || !c.IssuedAt.Valid:
		return nil, errors.New("bff: id_token exp or iat is missing")
	case !now.Before(c.ExpiresAt.Time().Add(idTokenLeeway)):
		return nil, errors.New("bff: id_token expired")
	case c.IssuedAt.Time().After(now.Add(idTokenLeeway)):
		return nil, errors.New("bff: id_token issued in the future")
	case x.Nonce == nil || *x.Nonce == "" || *x.Nonce != nonce:
		return nil, errors.New("bff: id_token nonce is not the login's")
	case c.Subject == "":
		return nil, errors.New("bff: id_token has no sub")
	}
	payload := t.Payload
	return json.RawMessage(bytes.Clone(payload)), nil
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
