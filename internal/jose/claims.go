package jose

import (
	"crypto/sha256"
	"math"
	"time"
)

// maxNumericDate is the latest NumericDate accepted: 9999-12-31T23:59:59Z.
// Anything later is nonsense that would overflow time arithmetic.
const maxNumericDate = 253402300799

// NumericDate is an RFC 7519 §2 NumericDate: seconds since the epoch,
// possibly fractional.
type NumericDate struct {
	seconds float64
	// Valid is false when the claim was absent (or null).
	Valid bool
}

// Time returns d as a time.Time, or the zero time when d is not Valid.
func (d NumericDate) Time() time.Time {
	if !d.Valid {
		return time.Time{}
	}
	if sec := int64(d.seconds); float64(sec) == d.seconds {
		return time.Unix(sec, 0) // a whole number of seconds, as dates usually are
	}
	sec, frac := math.Modf(d.seconds)
	return time.Unix(int64(sec), int64(frac*1e9))
}

// Confirmation is the "cnf" claim (RFC 7800): how the token is bound to a
// key its holder must prove. Members other than "jkt" and "x5t#S256" are
// skipped (RFC 7519 §4: what is not understood is ignored); whether a
// binding nobody here can check is acceptable is the caller's decision.
type Confirmation struct {
	// JKT is "cnf.jkt", the RFC 7638 thumbprint of the DPoP key (RFC 9449
	// §6.1); "" when absent.
	JKT string
	// X5TS256 is "cnf"."x5t#S256" (RFC 8705 §3.1), the base64url SHA-256
	// thumbprint of the client certificate's DER; "" when absent. When
	// present it is the unpadded, canonical base64url encoding of 32
	// bytes (ThumbprintSHA256 decodes it), or the claims are malformed.
	X5TS256 string
}

// ThumbprintSHA256 decodes an "x5t#S256" value: 43 characters of the
// base64url alphabet, unpadded, whose unused trailing bits are zero, so
// that each SHA-256 digest has exactly one accepted encoding.
func ThumbprintSHA256(s string) (sum [sha256.Size]byte, ok bool) {
	if len(s) != 43 {
		return sum, false
	}
	b, ok := decodeSegment(sum[:0], s)
	if !ok || len(b) != sha256.Size {
		return [sha256.Size]byte{}, false
	}
	return sum, true
}

// Claims are the JWT claims (RFC 7519 §4, RFC 9068 §2.2) a resource server
// acts on. Its strings share memory with the payload they were read from.
type Claims struct {
	Issuer    string   // "iss"
	Subject   string   // "sub"
	Audience  []string // "aud": a string or an array of strings
	ExpiresAt NumericDate
	NotBefore NumericDate
	IssuedAt  NumericDate
	JTI       string // "jti"
	ClientID  string // "client_id"
	// Scope is "scope" when it is a space-delimited string (RFC 9068 §2.2.3).
	Scope string
	// ScopeList is "scope" when an issuer sends it as an array of
	// strings instead, as some do.
	ScopeList []string
	// Scp is "scp" (string or array), the claim Azure AD and Okta use.
	Scp []string
	// CNF is "cnf", nil when absent: a non-nil CNF means the token is
	// sender-constrained.
	CNF      *Confirmation
	ACR      string      // "acr" (RFC 9470)
	AuthTime NumericDate // "auth_time" (RFC 9470)

	// AudienceRoom, when it has capacity, is where ParseClaims stores
	// Audience (in its backing array, while the audiences fit), so that
	// a caller can allocate it together with what will hold on to it.
	// ParseClaims only writes to it.
	AudienceRoom []string
}

// Claim members, one bit each, to find duplicates.
const (
	cIss = 1 << iota
	cSub
	cAud
	cExp
	cNbf
	cIat
	cJti
	cClientID
	cScope
	cScp
	cCnf
	cAcr
	cAuthTime
)

// ParseClaims reads a JWT claims set into c. A claim of the wrong JSON type
// is an error, as is a duplicate claim, rather than something to guess
// about; null counts as absent. The strings in c share payload's memory,
// so payload must not be modified while c is in use.
func ParseClaims(payload []byte, c *Claims) error {
	d := newScanner(readOnlyString(payload))
	var seen uint
	err := d.Object(func(name string) error {
		switch name {
		case "iss":
			return d.strMember(&seen, cIss, &c.Issuer)
		case "sub":
			return d.strMember(&seen, cSub, &c.Subject)
		case "aud":
			return d.listMember(&seen, cAud, &c.Audience, c.AudienceRoom)
		case "exp":
			return d.dateMember(&seen, cExp, &c.ExpiresAt)
		case "nbf":
			return d.dateMember(&seen, cNbf, &c.NotBefore)
		case "iat":
			return d.dateMember(&seen, cIat, &c.IssuedAt)
		case "jti":
			return d.strMember(&seen, cJti, &c.JTI)
		case "client_id":
			return d.strMember(&seen, cClientID, &c.ClientID)
		case "scope":
			if d.Peek() == '[' {
				return d.listMember(&seen, cScope, &c.ScopeList, nil)
			}
			return d.strMember(&seen, cScope, &c.Scope)
		case "scp":
			return d.listMember(&seen, cScp, &c.Scp, nil)
		case "acr":
			return d.strMember(&seen, cAcr, &c.ACR)
		case "auth_time":
			return d.dateMember(&seen, cAuthTime, &c.AuthTime)
		case "cnf":
			return member(&d, &seen, cCnf, &c.CNF, d.confirmation)
		}
		return d.Skip()
	})
	if err == nil {
		err = d.End()
	}
	if err != nil {
		return malformed("claims", err)
	}
	return nil
}

// strMember, dateMember and listMember are member for the claims every
// token has, without the indirect call.
func (d *scanner) strMember(seen *uint, bit uint, dst *string) error {
	if *seen&bit != 0 {
		return errDup
	}
	*seen |= bit
	if d.Null() {
		return nil
	}
	v, err := d.Str()
	*dst = v
	return err
}

func (d *scanner) dateMember(seen *uint, bit uint, dst *NumericDate) error {
	if *seen&bit != 0 {
		return errDup
	}
	*seen |= bit
	if d.Null() {
		return nil
	}
	v, err := d.numericDate()
	*dst = v
	return err
}

// listMember reads a string or an array of strings into dst, in room's
// backing array while it fits.
func (d *scanner) listMember(seen *uint, bit uint, dst *[]string, room []string) error {
	if *seen&bit != 0 {
		return errDup
	}
	*seen |= bit
	if d.Null() {
		return nil
	}
	v, err := d.strings(room[:0])
	*dst = v
	return err
}

// member reads one claim into dst with read, unless it is null (absent).
// bit marks the claim in seen, so a second occurrence is an error.
func member[T any](d *scanner, seen *uint, bit uint, dst *T, read func() (T, error)) error {
	if *seen&bit != 0 {
		return errDup
	}
	*seen |= bit
	if d.Null() {
		return nil
	}
	v, err := read()
	*dst = v
	return err
}

// confirmation reads a "cnf" object (RFC 7800 §3.1).
func (d *scanner) confirmation() (*Confirmation, error) {
	if d.Peek() != '{' {
		return nil, errType
	}
	cnf := new(Confirmation)
	var seen uint
	err := d.Object(func(name string) error {
		switch name {
		case "jkt":
			return member(d, &seen, 1, &cnf.JKT, d.Str)
		case "x5t#S256":
			return member(d, &seen, 2, &cnf.X5TS256, d.thumbprintSHA256)
		}
		return d.Skip()
	})
	return cnf, err
}

// thumbprintSHA256 reads an "x5t#S256" value: a string ThumbprintSHA256
// accepts.
func (d *scanner) thumbprintSHA256() (string, error) {
	s, err := d.Str()
	if err != nil {
		return "", err
	}
	if _, ok := ThumbprintSHA256(s); !ok {
		return "", errThumbprint
	}
	return s, nil
}

// ParseConfirmation reads the "cnf" member of a JSON object, such as an
// RFC 7662 introspection response, with ParseClaims's rules for it; the
// other members are only checked to be JSON. It returns nil when there is
// no "cnf" (or it is null).
func ParseConfirmation(payload []byte) (*Confirmation, error) {
	d := newScanner(readOnlyString(payload))
	var cnf *Confirmation
	var seen uint
	err := d.Object(func(name string) error {
		if name != "cnf" {
			return d.Skip()
		}
		return member(&d, &seen, cCnf, &cnf, d.confirmation)
	})
	if err == nil {
		err = d.End()
	}
	if err != nil {
		return nil, malformed("confirmation", err)
	}
	return cnf, nil
}

// ProofClaims are the claims of a DPoP proof JWT (RFC 9449 §4.2). Its
// strings share memory with the payload they were read from.
type ProofClaims struct {
	JTI      string // "jti"
	HTM      string // "htm"
	HTU      string // "htu"
	IssuedAt NumericDate
	ATH      string // "ath"
	Nonce    string // "nonce"
}

// ParseProofClaims reads a DPoP proof's claims into c, with the rules of
// ParseClaims: wrong types and duplicates are errors, null is absent.
func ParseProofClaims(payload []byte, c *ProofClaims) error {
	d := newScanner(readOnlyString(payload))
	var seen uint
	str := func(bit uint, dst *string) error { return member(&d, &seen, bit, dst, d.Str) }
	err := d.Object(func(name string) error {
		switch name {
		case "jti":
			return str(1<<0, &c.JTI)
		case "htm":
			return str(1<<1, &c.HTM)
		case "htu":
			return str(1<<2, &c.HTU)
		case "iat":
			return member(&d, &seen, 1<<3, &c.IssuedAt, d.numericDate)
		case "ath":
			return str(1<<4, &c.ATH)
		case "nonce":
			return str(1<<5, &c.Nonce)
		}
		return d.Skip()
	})
	if err == nil {
		err = d.End()
	}
	if err != nil {
		return malformed("proof claims", err)
	}
	return nil
}
