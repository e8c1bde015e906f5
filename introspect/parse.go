package introspect

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/tokenguard/tokenguard/internal/jsonscan"
)

// maxDepth bounds how deeply arrays and objects may nest in a response
// (jsonscan.MaxDepth).
const maxDepth = jsonscan.MaxDepth

// maxNumericDate is the largest accepted "exp", "iat" or "nbf": the end of
// year 9999, far beyond any real token and well inside time.Time.
const maxNumericDate = 253402300799

// Errors of the parser. They name the rule broken, never the bytes that
// broke it, and are wrapped in ErrInvalidResponse by the caller.
var (
	errNotObject  = errors.New("response is not a JSON object")
	errSyntax     = jsonscan.ErrSyntax
	errTooDeep    = jsonscan.ErrTooDeep
	errDuplicate  = errors.New("duplicate member")
	errNoActive   = errors.New(`"active" missing`)
	errActiveType = errors.New(`"active" is not a JSON boolean`)
	errClaimType  = errors.New("a member has the wrong type")
	errNumber     = errors.New("a date member is not a valid NumericDate")
	errTrailing   = jsonscan.ErrTrailing
	errUTF8       = jsonscan.ErrUTF8
)

// Result is an active token's introspection response (RFC 7662 §2.2).
// Members absent from the response are zero. A Result may be shared by
// concurrent callers through the cache: treat it, its slices and Raw as
// read-only.
type Result struct {
	// Active is always true in a Result returned by Introspect.
	Active bool
	// Issuer is "iss".
	Issuer string
	// Subject is "sub".
	Subject string
	// ClientID is "client_id": the client the token was issued to.
	ClientID string
	// Scope is "scope": space-separated scope values.
	Scope string
	// Username is "username".
	Username string
	// TokenType is "token_type", e.g. "Bearer" or "DPoP".
	TokenType string
	// Audience is "aud", a single string becoming a one-element slice.
	Audience []string
	// ExpiresAt, IssuedAt and NotBefore are "exp", "iat" and "nbf".
	ExpiresAt, IssuedAt, NotBefore time.Time
	// JKT is "cnf.jkt" (RFC 9449 §6.2): the thumbprint of the DPoP key the
	// token is bound to; "" for an unbound token. Comparing it with the
	// proof's key is the caller's job.
	JKT string
	// Bound is true when the response has a "cnf" object (RFC 7800), by
	// any confirmation method: the token is sender-constrained and needs
	// its proof (a DPoP proof for jkt, the client certificate for
	// x5t#S256, as the guard reads Raw); it is never a plain bearer token.
	Bound bool
	// ACR and AuthTime are "acr" and "auth_time" (RFC 9470); JTI is
	// "jti".
	ACR      string
	AuthTime time.Time
	JTI      string
	// Raw is the response body, for members this type does not carry;
	// decode it with encoding/json. For a signed answer (ResponseJWT) it
	// is the verified "token_introspection" object.
	Raw json.RawMessage

	hasIssuer bool      // "iss" was present, possibly as ""
	fetched   time.Time // when the server gave this answer (set before caching)
}

// Claims decodes the raw response into v, which is what json.Unmarshal
// accepts, for members Result does not carry.
func (r *Result) Claims(v any) error { return json.Unmarshal(r.Raw, v) }

// parseResponse parses an introspection response strictly (see the
// package doc). It does not check iss, aud or times; Client.valid does.
// The returned Result keeps body as Raw, without copying.
func parseResponse(body []byte) (*Result, error) {
	d := scanner{jsonscan.New(string(body))}
	r := &Result{Raw: body}
	if d.Peek() != '{' {
		if err := d.Skip(); err != nil {
			return nil, err
		}
		if err := d.End(); err != nil {
			return nil, err
		}
		return nil, errNotObject
	}
	var seen uint16                // bits for the typed members
	var others map[string]struct{} // names of other members, for duplicates
	haveActive := false
	err := d.Object(func(name string) error {
		bit := memberBit(name)
		if bit != 0 {
			if seen&bit != 0 {
				return errDuplicate
			}
			seen |= bit
		} else {
			if _, dup := others[name]; dup {
				return errDuplicate
			}
			if others == nil {
				others = make(map[string]struct{})
			}
			others[name] = struct{}{}
		}
		switch name {
		case "active":
			switch d.Peek() {
			case 't':
				r.Active, haveActive = true, true
				return d.Lit("true")
			case 'f':
				haveActive = true
				return d.Lit("false")
			}
			if err := d.Skip(); err != nil {
				return err
			}
			return errActiveType
		case "iss":
			r.hasIssuer = true
			return d.typedStr(&r.Issuer)
		case "sub":
			return d.typedStr(&r.Subject)
		case "client_id":
			return d.typedStr(&r.ClientID)
		case "scope":
			return d.typedStr(&r.Scope)
		case "username":
			return d.typedStr(&r.Username)
		case "token_type":
			return d.typedStr(&r.TokenType)
		case "aud":
			return d.aud(&r.Audience)
		case "exp":
			return d.date(&r.ExpiresAt)
		case "iat":
			return d.date(&r.IssuedAt)
		case "nbf":
			return d.date(&r.NotBefore)
		case "cnf":
			r.Bound = true
			return d.cnf(&r.JKT)
		case "acr":
			return d.typedStr(&r.ACR)
		case "auth_time":
			return d.date(&r.AuthTime)
		case "jti":
			return d.typedStr(&r.JTI)
		}
		return d.Skip()
	})
	if err != nil {
		return nil, err
	}
	if err := d.End(); err != nil {
		return nil, err
	}
	if !haveActive {
		return nil, errNoActive
	}
	return r, nil
}

// memberBit numbers the members parseResponse gives a type to.
func memberBit(name string) uint16 {
	switch name {
	case "active":
		return 1 << 0
	case "iss":
		return 1 << 1
	case "sub":
		return 1 << 2
	case "client_id":
		return 1 << 3
	case "scope":
		return 1 << 4
	case "username":
		return 1 << 5
	case "token_type":
		return 1 << 6
	case "aud":
		return 1 << 7
	case "exp":
		return 1 << 8
	case "iat":
		return 1 << 9
	case "nbf":
		return 1 << 10
	case "cnf":
		return 1 << 11
	case "acr":
		return 1 << 12
	case "auth_time":
		return 1 << 13
	case "jti":
		return 1 << 14
	}
	return 0
}

// scanner reads a response: jsonscan's strict reader (RFC 8259 exactly,
// valid UTF-8, at most maxDepth levels) plus the typed readers an
// introspection response needs.
type scanner struct {
	jsonscan.Scanner
}

// typedStr reads a value that must be a string.
func (d *scanner) typedStr(dst *string) error {
	if d.Peek() != '"' {
		if err := d.Skip(); err != nil {
			return err
		}
		return errClaimType
	}
	s, err := d.Str()
	*dst = s
	return err
}

// aud reads a string or an array of strings.
func (d *scanner) aud(dst *[]string) error {
	switch d.Peek() {
	case '"':
		s, err := d.Str()
		*dst = []string{s}
		return err
	case '[':
		out := []string{}
		typeErr := false
		err := d.Array(func() error {
			if d.Peek() != '"' {
				typeErr = true
				return d.Skip()
			}
			s, err := d.Str()
			out = append(out, s)
			return err
		})
		if err != nil {
			return err
		}
		if typeErr {
			return errClaimType
		}
		*dst = out
		return nil
	}
	if err := d.Skip(); err != nil {
		return err
	}
	return errClaimType
}

// date reads a NumericDate (RFC 7519 §2): a non-negative JSON number of
// seconds, possibly fractional.
func (d *scanner) date(dst *time.Time) error {
	if c := d.Peek(); c != '-' && (c < '0' || c > '9') {
		if err := d.Skip(); err != nil {
			return err
		}
		return errClaimType
	}
	n, err := d.Num()
	if err != nil {
		return err
	}
	f, err := strconv.ParseFloat(n, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return errNumber
	}
	sec, frac := math.Modf(f)
	*dst = time.Unix(int64(sec), int64(frac*1e9))
	return nil
}

// cnf reads the confirmation object (RFC 7800) and sets dst to its "jkt";
// other confirmation methods are skipped.
func (d *scanner) cnf(dst *string) error {
	if d.Peek() != '{' {
		if err := d.Skip(); err != nil {
			return err
		}
		return errClaimType
	}
	var jktSeen bool
	var others map[string]struct{}
	return d.Object(func(name string) error {
		if name == "jkt" {
			if jktSeen {
				return errDuplicate
			}
			jktSeen = true
			return d.typedStr(dst)
		}
		if _, dup := others[name]; dup {
			return errDuplicate
		}
		if others == nil {
			others = make(map[string]struct{})
		}
		others[name] = struct{}{}
		return d.Skip()
	})
}
