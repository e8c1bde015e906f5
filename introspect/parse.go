package introspect

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// maxDepth bounds how deeply arrays and objects may nest in a response.
// Real responses nest two or three levels.
const maxDepth = 32

// maxNumericDate is the largest accepted "exp", "iat" or "nbf": the end of
// year 9999, far beyond any real token and well inside time.Time.
const maxNumericDate = 253402300799

// Errors of the parser. They name the rule broken, never the bytes that
// broke it, and are wrapped in ErrInvalidResponse by the caller.
var (
	errNotObject  = errors.New("response is not a JSON object")
	errSyntax     = errors.New("malformed JSON")
	errTooDeep    = errors.New("JSON nested too deeply")
	errDuplicate  = errors.New("duplicate member")
	errNoActive   = errors.New(`"active" missing`)
	errActiveType = errors.New(`"active" is not a JSON boolean`)
	errClaimType  = errors.New("a member has the wrong type")
	errNumber     = errors.New("a date member is not a valid NumericDate")
	errTrailing   = errors.New("data after the JSON object")
	errUTF8       = errors.New("a string is not valid UTF-8")
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
	// any confirmation method: the token is sender-constrained and must
	// not be accepted as a bearer token, even when JKT is "".
	Bound bool
	// ACR and AuthTime are "acr" and "auth_time" (RFC 9470); JTI is
	// "jti".
	ACR      string
	AuthTime time.Time
	JTI      string
	// Raw is the response body, for members this type does not carry;
	// decode it with encoding/json.
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
	d := scanner{s: string(body)}
	r := &Result{Raw: body}
	if d.peek() != '{' {
		if err := d.skip(); err != nil {
			return nil, err
		}
		if err := d.end(); err != nil {
			return nil, err
		}
		return nil, errNotObject
	}
	var seen uint16                // bits for the typed members
	var others map[string]struct{} // names of other members, for duplicates
	haveActive := false
	err := d.object(func(name string) error {
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
			switch d.peek() {
			case 't':
				r.Active, haveActive = true, true
				return d.lit("true")
			case 'f':
				haveActive = true
				return d.lit("false")
			}
			if err := d.skip(); err != nil {
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
		return d.skip()
	})
	if err != nil {
		return nil, err
	}
	if err := d.end(); err != nil {
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

// scanner is a strict reader for RFC 8259 JSON: no comments, no trailing
// commas, no leading zeros, no control characters or invalid UTF-8 in
// strings, nothing after the top-level value, at most maxDepth levels.
// Strings without escapes are substrings of the input; a string with
// escapes is decoded by encoding/json so the two never disagree on what
// a string says.
type scanner struct {
	s     string
	i     int
	depth int
}

func (d *scanner) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte without consuming it, or 0 at the
// end of the input.
func (d *scanner) peek() byte {
	d.ws()
	if d.i < len(d.s) {
		return d.s[d.i]
	}
	return 0
}

func (d *scanner) eat(c byte) bool {
	if d.peek() == c {
		d.i++
		return true
	}
	return false
}

// end checks that only white space follows the top-level value.
func (d *scanner) end() error {
	if d.peek() != 0 || d.i != len(d.s) {
		return errTrailing
	}
	return nil
}

func (d *scanner) lit(word string) error {
	if len(d.s)-d.i < len(word) || d.s[d.i:d.i+len(word)] != word {
		return errSyntax
	}
	d.i += len(word)
	return nil
}

// object reads an object, calling member for each name with the scanner
// at the value, which member must consume.
func (d *scanner) object(member func(name string) error) error {
	if !d.eat('{') {
		return errSyntax
	}
	if d.depth++; d.depth > maxDepth {
		return errTooDeep
	}
	if d.eat('}') {
		d.depth--
		return nil
	}
	for {
		if d.peek() != '"' {
			return errSyntax
		}
		name, err := d.str()
		if err != nil {
			return err
		}
		if !d.eat(':') {
			return errSyntax
		}
		if err := member(name); err != nil {
			return err
		}
		if d.eat(',') {
			continue
		}
		if d.eat('}') {
			d.depth--
			return nil
		}
		return errSyntax
	}
}

// array reads an array, calling elem with the scanner at each element.
func (d *scanner) array(elem func() error) error {
	if !d.eat('[') {
		return errSyntax
	}
	if d.depth++; d.depth > maxDepth {
		return errTooDeep
	}
	if d.eat(']') {
		d.depth--
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		if d.eat(',') {
			continue
		}
		if d.eat(']') {
			d.depth--
			return nil
		}
		return errSyntax
	}
}

// skip consumes any value.
func (d *scanner) skip() error {
	switch c := d.peek(); {
	case c == '{':
		return d.object(func(string) error { return d.skip() })
	case c == '[':
		return d.array(d.skip)
	case c == '"':
		_, _, err := d.rawStr()
		return err
	case c == 't':
		return d.lit("true")
	case c == 'f':
		return d.lit("false")
	case c == 'n':
		return d.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		_, err := d.num()
		return err
	}
	return errSyntax
}

// rawStr consumes a string (the scanner at its opening quote) and returns
// it with its quotes, undecoded, and whether it holds escapes.
func (d *scanner) rawStr() (raw string, escaped bool, err error) {
	start := d.i
	d.i++ // the opening quote
	ascii := true
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			raw = d.s[start:d.i]
			if !ascii && !utf8.ValidString(raw) {
				return "", false, errUTF8
			}
			return raw, escaped, nil
		case c == '\\':
			escaped = true
			if d.i+1 >= len(d.s) {
				return "", false, errSyntax
			}
			switch d.s[d.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i += 2
			case 'u':
				if d.i+6 > len(d.s) || !isHex4(d.s[d.i+2:d.i+6]) {
					return "", false, errSyntax
				}
				d.i += 6
			default:
				return "", false, errSyntax
			}
		case c < 0x20:
			return "", false, errSyntax
		default:
			if c >= 0x80 {
				ascii = false
			}
			d.i++
		}
	}
	return "", false, errSyntax
}

func isHex4(s string) bool {
	for i := 0; i < 4; i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// str consumes a string and returns its decoded value.
func (d *scanner) str() (string, error) {
	raw, escaped, err := d.rawStr()
	if err != nil {
		return "", err
	}
	if !escaped {
		return raw[1 : len(raw)-1], nil
	}
	var s string
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return "", errSyntax
	}
	return s, nil
}

// typedStr reads a value that must be a string.
func (d *scanner) typedStr(dst *string) error {
	if d.peek() != '"' {
		if err := d.skip(); err != nil {
			return err
		}
		return errClaimType
	}
	s, err := d.str()
	*dst = s
	return err
}

// num consumes a number, checking the RFC 8259 grammar, and returns it.
func (d *scanner) num() (string, error) {
	start := d.i
	digits := func() int {
		n := 0
		for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.i < len(d.s) && d.s[d.i] == '-' {
		d.i++
	}
	if d.i < len(d.s) && d.s[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		return "", errSyntax
	}
	if d.i < len(d.s) && d.s[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return "", errSyntax
		}
	}
	if d.i < len(d.s) && (d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		d.i++
		if d.i < len(d.s) && (d.s[d.i] == '+' || d.s[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return "", errSyntax
		}
	}
	return d.s[start:d.i], nil
}

// aud reads a string or an array of strings.
func (d *scanner) aud(dst *[]string) error {
	switch d.peek() {
	case '"':
		s, err := d.str()
		*dst = []string{s}
		return err
	case '[':
		out := []string{}
		typeErr := false
		err := d.array(func() error {
			if d.peek() != '"' {
				typeErr = true
				return d.skip()
			}
			s, err := d.str()
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
	if err := d.skip(); err != nil {
		return err
	}
	return errClaimType
}

// date reads a NumericDate (RFC 7519 §2): a non-negative JSON number of
// seconds, possibly fractional.
func (d *scanner) date(dst *time.Time) error {
	if c := d.peek(); c != '-' && (c < '0' || c > '9') {
		if err := d.skip(); err != nil {
			return err
		}
		return errClaimType
	}
	n, err := d.num()
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
	if d.peek() != '{' {
		if err := d.skip(); err != nil {
			return err
		}
		return errClaimType
	}
	var jktSeen bool
	var others map[string]struct{}
	return d.object(func(name string) error {
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
		return d.skip()
	})
}
