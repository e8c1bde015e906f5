package introspect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"slices"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard/internal/jose"
	"github.com/tokenguard/tokenguard/internal/jsonscan"
	"github.com/tokenguard/tokenguard/jwks"
)

// RFC 9701 names.
const (
	// mediaTypeJWT is the Accept value of a request for a signed answer
	// and the Content-Type of the answer (RFC 9701 §4, §5).
	mediaTypeJWT = "application/token-introspection+jwt"
	// typJWT is the answer's JWS "typ" (RFC 9701 §5), which RFC 7515
	// §4.1.9 lets a sender also write with the "application/" prefix.
	typJWT = "token-introspection+jwt"
)

// maxAnswerAge bounds how old a signed answer may be, beyond Leeway: its
// "iat" may be at most this long before now. RFC 9701 sets no bound, but
// an answer is made for our request, within Timeout; an older one is a
// replay or an authorization server handing out stale answers.
const maxAnswerAge = time.Minute

// KeySet finds the authorization server's key for a signed answer.
// *jwks.Set implements it.
type KeySet interface {
	// Lookup returns the key whose "kid" is kid ("" for a JWS without
	// one). An error means there is no such key, or none could be had
	// (jwks.ErrUnknownKID, jwks.ErrNotLoaded, ctx ending): the answer is
	// then not believed. Lookup is called from the goroutine that made
	// the introspection request, with its context, and may be called
	// concurrently; the Client only reads the returned Key.
	Lookup(ctx context.Context, kid string) (*jwks.Key, error)
}

// Errors of signed answers, wrapped in ErrInvalidResponse (or, for keys
// that could not be had, ErrUnavailable). Like the parser's, they name the
// rule broken, never the bytes that broke it.
var (
	errContentType    = errors.New("Content-Type is not " + mediaTypeJWT)
	errTyp            = errors.New(`JWS "typ" is not ` + typJWT)
	errAlg            = errors.New("JWS alg not allowed for the signing key")
	errSignature      = errors.New("invalid signature")
	errUnknownKey     = errors.New("signed by a key not in the issuer's key set")
	errNoKeys         = errors.New("the issuer's keys are unavailable")
	errIssuer         = errors.New(`"iss" missing or not the issuer`)
	errAudience       = errors.New(`"aud" missing or naming neither ClientID nor Audience`)
	errIssuedAt       = errors.New(`"iat" missing, in the future or too old`)
	errAnswerExpired  = errors.New(`"exp" has passed or "nbf" has not`)
	errNoIntrospect   = errors.New(`"token_introspection" missing`)
	errIntrospectType = errors.New(`"token_introspection" is not a JSON object`)
)

// signedAnswer is the claims set of a signed answer (RFC 9701 §5), before
// its checks.
type signedAnswer struct {
	issuer        string
	audience      []string
	issuedAt      time.Time
	expiresAt     time.Time
	notBefore     time.Time
	introspection []byte // the "token_introspection" object's JSON text; nil when absent
}

// verifySigned checks a signed answer (RFC 9701) and returns its
// "token_introspection" member parsed by parseResponse, exactly as a JSON
// answer would be, with the OnRequest label for a failure. It checks, in
// order: the Content-Type; the compact JWS and its "typ"; the key for its
// "kid" in cfg.Keys, that the key allows the "alg", and the signature;
// then "iss" (the issuer), "aud" (our ClientID or Audience), "iat"
// (present, not after now+Leeway, not before now-Leeway-maxAnswerAge),
// "exp" and "nbf" when present. Whether the token is active, and its own
// claims, are judged by the caller, as for a JSON answer.
func (c *Client) verifySigned(ctx context.Context, contentType string, body []byte) (*Result, string, error) {
	invalid := func(err error) (*Result, string, error) {
		return nil, ResultInvalid, fmt.Errorf("%w: signed answer: %w", ErrInvalidResponse, err)
	}
	if mt, _, err := mime.ParseMediaType(contentType); err != nil || mt != mediaTypeJWT {
		return invalid(errContentType)
	}
	t, err := jose.Parse(string(bytes.TrimSpace(body)))
	if err != nil {
		return invalid(err) // jose's errors carry no token bytes
	}
	if !typeOK(t.Header.Typ) {
		return invalid(errTyp)
	}
	key, err := c.cfg.Keys.Lookup(ctx, t.Header.Kid)
	switch {
	case errors.Is(err, jwks.ErrUnknownKID):
		return invalid(errUnknownKey)
	case err != nil:
		return nil, ResultError, fmt.Errorf("%w: %w: %w", ErrUnavailable, errNoKeys, err)
	case key == nil:
		return invalid(errUnknownKey)
	}
	// Allows refuses "none", HMAC and anything off the set's allow-list
	// or not matching the key, so VerifySignature only ever sees one of
	// its own algorithm names.
	if !key.Allows(t.Header.Alg) {
		return invalid(errAlg)
	}
	if err := jose.VerifySignature(t.Header.Alg, key.Public, t.SigningInput, t.Signature); err != nil {
		return invalid(fmt.Errorf("%w: %w", errSignature, err))
	}

	// The claims, now that they are known to come from the issuer.
	a, err := parseSignedAnswer(t.Payload)
	if err != nil {
		return invalid(err)
	}
	now := c.cfg.Now()
	leeway := c.cfg.Leeway
	switch {
	case a.issuer != c.cfg.Issuer: // never "": Issuer is required
		return invalid(errIssuer)
	case !slices.Contains(a.audience, c.cfg.ClientID) && !slices.Contains(a.audience, c.cfg.Audience):
		return invalid(errAudience)
	case a.issuedAt.After(now.Add(leeway)), a.issuedAt.Before(now.Add(-leeway - maxAnswerAge)):
		// A missing "iat" is the zero time, long before the bound.
		return invalid(errIssuedAt)
	case !a.expiresAt.IsZero() && !now.Before(a.expiresAt.Add(leeway)),
		!a.notBefore.IsZero() && now.Add(leeway).Before(a.notBefore):
		return invalid(errAnswerExpired)
	case a.introspection == nil:
		return invalid(errNoIntrospect)
	}
	r, err := parseResponse(a.introspection)
	if err != nil {
		return invalid(err)
	}
	return r, "", nil
}

// typeOK reports whether a JWS "typ" names a signed introspection answer:
// "token-introspection+jwt", or the same with the "application/" prefix
// (RFC 7515 §4.1.9), in any case (media types are case-insensitive).
func typeOK(typ string) bool {
	if len(typ) > len("application/") && strings.EqualFold(typ[:len("application/")], "application/") {
		typ = typ[len("application/"):]
	}
	return strings.EqualFold(typ, typJWT)
}

// parseSignedAnswer reads the claims set of a signed answer as strictly as
// parseResponse reads a JSON answer: RFC 8259 exactly, no member twice,
// "iss" a string, "aud" a string or an array of strings, "iat", "exp" and
// "nbf" NumericDates, "token_introspection" an object (kept as its JSON
// text, without copying payload). It checks no values.
func parseSignedAnswer(payload []byte) (signedAnswer, error) {
	var a signedAnswer
	js := string(payload)
	d := scanner{jsonscan.New(js)}
	if d.Peek() != '{' {
		if err := d.Skip(); err != nil {
			return a, err
		}
		if err := d.End(); err != nil {
			return a, err
		}
		return a, errNotObject
	}
	seen := map[string]struct{}{}
	err := d.Object(func(name string) error {
		if _, dup := seen[name]; dup {
			return errDuplicate
		}
		seen[name] = struct{}{}
		switch name {
		case "iss":
			return d.typedStr(&a.issuer)
		case "aud":
			return d.aud(&a.audience)
		case "iat":
			return d.date(&a.issuedAt)
		case "exp":
			return d.date(&a.expiresAt)
		case "nbf":
			return d.date(&a.notBefore)
		case "token_introspection":
			if d.Peek() != '{' {
				if err := d.Skip(); err != nil {
					return err
				}
				return errIntrospectType
			}
			start := d.Pos() // at the '{': Peek skipped the white space
			if err := d.Skip(); err != nil {
				return err
			}
			end := d.Pos()
			a.introspection = payload[start:end:end]
			return nil
		}
		return d.Skip()
	})
	if err == nil {
		err = d.End()
	}
	return a, err
}

// Interface guards.
var _ KeySet = (*jwks.Set)(nil)
