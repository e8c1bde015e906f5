package middleware

import (
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard/internal/httpauth"
	"github.com/tokenguard/tokenguard/internal/jose"
	"github.com/tokenguard/tokenguard/internal/tokencache"
	"github.com/tokenguard/tokenguard/jwks"
)

// Fixed, token-free descriptions sent in error_description.
const (
	descMultipleAuth    = "more than one Authorization header"
	descMalformedAuth   = "malformed Authorization header"
	descQueryToken      = "access tokens in the query string are not accepted"
	descTooLarge        = "token too large"
	descMalformed       = "malformed token"
	descUnsupportedAlg  = "unsupported signing algorithm"
	descType            = "not an access token"
	descUnknownIssuer   = "untrusted issuer"
	descUnknownKey      = "unknown signing key"
	descSignature       = "invalid signature"
	descExpired         = "token expired"
	descNotYetValid     = "token not yet valid"
	descAudience        = "token not intended for this resource"
	descMissingClaim    = "token lacks a required claim"
	descDPoPBound       = "DPoP-bound token presented as Bearer"
	descKeysUnavailable = "signing keys unavailable"
)

// authenticate extracts and verifies the request's access token. It returns
// the Principal, or the denial to send.
func (g *Guard) authenticate(r *http.Request) (*Principal, *denial) {
	tok, e := g.extract(r)
	if e != nil {
		return nil, e
	}
	now := g.cfg.now()

	var key tokencache.Key
	if g.cache != nil {
		key = sha256.Sum256([]byte(tok))
		if c, ok := g.cache.Get(key, now); ok {
			if snap := c.iss.keys.Snapshot(); snap != nil && snap.Key(c.kid) == c.key {
				return c.p, nil
			}
			// The key that verified it has left the JWKS: forget the
			// token and verify it afresh (it will most likely fail).
			g.cache.Remove(key)
		}
	}

	p, c, e := g.verifyJWT(r, tok, now)
	if e != nil {
		return nil, e
	}
	if g.cache != nil {
		g.cache.Add(key, c, c.expires, now)
	}
	return p, nil
}

// extract implements RFC 6750 §2.1: exactly one Authorization header with
// the Bearer scheme (case-insensitive) and a b64token. Tokens in the query
// string (§2.3) are refused; tokens in a form body (§2.2) are not looked
// for, so such a request is simply unauthenticated.
func (g *Guard) extract(r *http.Request) (string, *denial) {
	vals := r.Header.Values("Authorization")
	switch len(vals) {
	case 0:
		if r.URL != nil && strings.Contains(r.URL.RawQuery, "access_token") && r.URL.Query().Has("access_token") {
			return "", deny(http.StatusBadRequest, CodeInvalidRequest, ReasonMalformedRequest, descQueryToken, nil)
		}
		return "", deny(http.StatusUnauthorized, "", ReasonMissingToken, "", nil)
	case 1:
	default:
		return "", deny(http.StatusBadRequest, CodeInvalidRequest, ReasonMalformedRequest, descMultipleAuth, nil)
	}
	v := vals[0]
	// "DPoP " is the longest scheme we know (with its space): anything
	// longer than that plus the limit is too large, whatever it holds.
	if len(v) > g.cfg.MaxTokenSize+len("Bearer ") {
		return "", invalidToken(ReasonTokenTooLarge, descTooLarge, nil)
	}
	scheme, tok, err := httpauth.ParseAuthorization(v)
	switch {
	case errors.Is(err, httpauth.ErrMalformed):
		return "", deny(http.StatusBadRequest, CodeInvalidRequest, ReasonMalformedRequest, descMalformedAuth, err)
	case errors.Is(err, httpauth.ErrInvalidToken):
		if !strings.EqualFold(scheme, "Bearer") {
			return "", deny(http.StatusUnauthorized, "", ReasonUnsupportedScheme, "", nil)
		}
		return "", invalidToken(ReasonMalformedToken, descMalformed, err)
	case err != nil:
		return "", deny(http.StatusBadRequest, CodeInvalidRequest, ReasonMalformedRequest, descMalformedAuth, err)
	}
	if !strings.EqualFold(scheme, "Bearer") {
		// Includes "DPoP" while DPoP is disabled (RFC 9449 §7.1 leaves a
		// resource server free to support only Bearer): a plain
		// challenge tells the client which scheme we take.
		return "", deny(http.StatusUnauthorized, "", ReasonUnsupportedScheme, "", nil)
	}
	if len(tok) > g.cfg.MaxTokenSize {
		return "", invalidToken(ReasonTokenTooLarge, descTooLarge, nil)
	}
	return tok, nil
}

// verifyJWT checks a JWT access token per RFC 9068 §4 and RFC 8725: the
// signature with the issuer's key for the header's kid and an allow-listed
// alg bound to that key, the typ, and the iss, aud, exp, nbf and iat claims.
func (g *Guard) verifyJWT(r *http.Request, tok string, now time.Time) (*Principal, *cachedToken, *denial) {
	t, err := jose.Parse(tok)
	if err != nil {
		return nil, nil, invalidToken(ReasonMalformedToken, descMalformed, err)
	}
	alg, kid := t.Header.Alg, t.Header.Kid
	if !g.algs[alg] {
		e := invalidToken(ReasonUnsupportedAlg, descUnsupportedAlg, nil)
		e.alg = alg
		return nil, nil, e
	}
	var cl jose.Claims
	if err := jose.ParseClaims(t.Payload, &cl); err != nil {
		return nil, nil, invalidToken(ReasonMalformedToken, descMalformed, err)
	}
	// The unverified iss only chooses whose keys to try; nothing else is
	// believed before the signature checks out.
	is := g.issuers[cl.Issuer]
	if is == nil {
		e := invalidToken(ReasonUnknownIssuer, descUnknownIssuer, nil)
		e.iss = cl.Issuer
		return nil, nil, e
	}
	annotate := func(e *denial) *denial {
		e.iss, e.kid, e.alg = is.cfg.Issuer, kid, alg
		return e
	}
	if !typeOK(t.Header.Typ, is.cfg.AllowLegacyTyp) {
		return nil, nil, annotate(invalidToken(ReasonInvalidType, descType, nil))
	}
	key, err := is.keys.Lookup(r.Context(), kid)
	switch {
	case errors.Is(err, jwks.ErrUnknownKID):
		return nil, nil, annotate(invalidToken(ReasonUnknownKey, descUnknownKey, err))
	case err != nil:
		// Never loaded, or the caller gave up while waiting: we cannot
		// decide, so fail closed.
		return nil, nil, annotate(deny(http.StatusServiceUnavailable, "", ReasonKeysUnavailable, descKeysUnavailable, errors.Join(errKeysUnavailable, err)))
	}
	if !key.Allows(alg) {
		return nil, nil, annotate(invalidToken(ReasonInvalidSignature, descSignature, errors.New("middleware: alg not allowed for this key")))
	}
	if err := jose.VerifySignature(alg, key.Public, t.SigningInput, t.Signature); err != nil {
		return nil, nil, annotate(invalidToken(ReasonInvalidSignature, descSignature, err))
	}

	// Claims, now that they are known to come from the issuer.
	if !cl.ExpiresAt.Valid {
		return nil, nil, annotate(invalidToken(ReasonMissingClaim, descMissingClaim, errors.New("middleware: no exp")))
	}
	exp := cl.ExpiresAt.Time()
	leeway := g.cfg.Leeway
	if !now.Before(exp.Add(leeway)) {
		return nil, nil, annotate(invalidToken(ReasonExpired, descExpired, nil))
	}
	if cl.NotBefore.Valid && now.Add(leeway).Before(cl.NotBefore.Time()) {
		return nil, nil, annotate(invalidToken(ReasonNotYetValid, descNotYetValid, errors.New("middleware: nbf in the future")))
	}
	if cl.IssuedAt.Valid && now.Add(leeway).Before(cl.IssuedAt.Time()) {
		return nil, nil, annotate(invalidToken(ReasonNotYetValid, descNotYetValid, errors.New("middleware: iat in the future")))
	}
	if !containsString(cl.Audience, g.cfg.Audience) {
		return nil, nil, annotate(invalidToken(ReasonInvalidAudience, descAudience, nil))
	}
	if !isLegacyTyp(t.Header.Typ) {
		// RFC 9068 §2.2: an at+jwt carries all of these.
		if cl.Subject == "" || cl.ClientID == "" || !cl.IssuedAt.Valid || cl.JTI == "" {
			return nil, nil, annotate(invalidToken(ReasonMissingClaim, descMissingClaim, errors.New("middleware: RFC 9068 requires sub, client_id, iat and jti")))
		}
	}
	if cl.CNF != nil {
		// A sender-constrained token (RFC 9449 §7.1, RFC 8705 §3) must
		// never be accepted as a plain bearer token.
		return nil, nil, annotate(invalidToken(ReasonDPoPBound, descDPoPBound, nil))
	}

	p := &Principal{
		Issuer:    is.cfg.Issuer,
		Subject:   cl.Subject,
		ClientID:  cl.ClientID,
		Scopes:    scopesOf(&cl, is.cfg.ScpClaim),
		Audience:  cl.Audience,
		TokenID:   cl.JTI,
		ExpiresAt: exp,
		raw:       t.Payload,
	}
	if cl.IssuedAt.Valid {
		p.IssuedAt = cl.IssuedAt.Time()
	}
	return p, &cachedToken{p: p, iss: is, kid: kid, key: key, expires: exp}, nil
}

// typeOK implements RFC 9068 §4 step 1 (and RFC 8725 §3.11): the JOSE typ
// must be "at+jwt" or "application/at+jwt" (media types compare
// case-insensitively); legacy issuers may send "JWT" or nothing.
func typeOK(typ string, legacy bool) bool {
	if strings.EqualFold(typ, "at+jwt") || strings.EqualFold(typ, "application/at+jwt") {
		return true
	}
	return legacy && isLegacyTyp(typ)
}

func isLegacyTyp(typ string) bool {
	return typ == "" || strings.EqualFold(typ, "JWT") || strings.EqualFold(typ, "application/jwt")
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// scopesOf collects the granted scopes from "scope" and, when enabled,
// "scp", dropping duplicates.
func scopesOf(cl *jose.Claims, scp bool) []string {
	n := strings.Count(cl.Scope, " ") + 1
	if scp {
		n += len(cl.Scp)
	}
	out := make([]string, 0, n)
	add := func(s string) {
		if s != "" && !containsString(out, s) {
			out = append(out, s)
		}
	}
	for s := range strings.FieldsSeq(cl.Scope) {
		add(s)
	}
	if scp {
		for _, v := range cl.Scp {
			for s := range strings.FieldsSeq(v) {
				add(s)
			}
		}
	}
	return out
}
