// Package jose is tokenguard's per-request JWS path: it splits a compact
// JWS (RFC 7515 §7.1), reads its protected header and JWT claims set into
// small typed structs, and verifies the signature with crypto/ecdsa,
// crypto/rsa and crypto/ed25519 directly.
//
// It exists because the general-purpose path (jwx's jwt.Parse) costs about
// twice the bare signature check and hundreds of allocations per request.
// Everything slow, rare and subtle (fetching and vetting JWK sets) stays in
// jwx; this package only does what every request needs, and a
// differential fuzz test keeps its verdicts in line with jwx's jws.Verify.
//
// It is strict where RFC 7515 and RFC 8725 allow a choice: base64url
// without padding and with zero trailing bits, so each value has one
// encoding; JSON that is RFC 8259 exactly, valid UTF-8 and nested at most
// 32 deep; no duplicates of any header parameter or claim it reads; no
// "crit" extensions; no keys or key references in the header ("jwk",
// "jku", "x5u", "x5c"); and for each alg exactly one key type, curve and
// signature length. ParseProof relaxes exactly one rule, for DPoP proofs
// (RFC 9449), which must carry their public key as "jwk".
package jose

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/tokenguard/tokenguard/internal/jsonscan"
)

// Errors returned by this package. Each error it returns wraps exactly one
// of them, so callers can classify with errors.Is.
var (
	// ErrMalformed: the token is not a well-formed compact JWS, or its
	// header or claims are not the JSON this package accepts.
	ErrMalformed = errors.New("jose: malformed token")
	// ErrUnsupportedAlgorithm: the alg is none, HMAC or unknown.
	ErrUnsupportedAlgorithm = errors.New("jose: unsupported algorithm")
	// ErrKeyMismatch: the key's type, curve or size does not fit the alg.
	ErrKeyMismatch = errors.New("jose: key does not match algorithm")
	// ErrInvalidSignature: the signature does not verify.
	ErrInvalidSignature = errors.New("jose: invalid signature")
)

// Details wrapped in ErrMalformed.
var (
	errSyntax   = jsonscan.ErrSyntax
	errType     = jsonscan.ErrType
	errTooDeep  = jsonscan.ErrTooDeep
	errUTF8     = jsonscan.ErrUTF8
	errTrailing = jsonscan.ErrTrailing
	errRange    = errors.New("NumericDate out of range")
	errDup      = errors.New("duplicate member")
	errNoAlg    = errors.New(`no "alg"`)
	errCrit     = errors.New(`"crit" extensions are not supported`)
	errB64      = errors.New(`unencoded payloads ("b64": false) are not supported`)
	errKeyParam = errors.New(`keys and key references in the header ("jwk", "jku", "x5u", "x5c") are not accepted`)
	errNoJWK    = errors.New(`no "jwk"`)
	errPrivate  = errors.New(`"jwk" holds private or symmetric key material`)
	errTooMany  = errors.New("too many members")
	errSegments = errors.New("not three segments")
	errBase64   = errors.New("segment is not unpadded base64url")
	// errThumbprint: a "cnf"."x5t#S256" that no SHA-256 digest encodes to.
	errThumbprint = errors.New(`"x5t#S256" is not the base64url encoding of a SHA-256 digest`)
)

func malformed(where string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrMalformed, where, err)
}

// Header is the part of a JWS protected header a verifier acts on.
type Header struct {
	// Alg is "alg", one of this package's constant names when supported
	// (so comparing it is cheap), else the header's text.
	Alg string
	// Kid is "kid", "" when absent.
	Kid string
	// Typ is "typ", "" when absent.
	Typ string
}

// Token is a split and decoded compact JWS. Its byte slices share one
// buffer and its strings share the input's memory: treat all of them as
// read-only.
type Token struct {
	Header Header
	// SigningInput is the ASCII "header.payload" the signature covers
	// (RFC 7515 §5.2), a substring of the input.
	SigningInput string
	// Payload is the decoded payload: for a JWT, the JSON claims set.
	Payload []byte
	// Signature is the decoded signature.
	Signature []byte

	// derRoom is spare room after Signature, in the same buffer, for
	// Verify to build an ECDSA signature's DER in; empty when the
	// signature is too long to be one.
	derRoom []byte

	// For HeaderCache.Keep: the encoded header segment (a substring of
	// the token), the proof's "jwk" text, and whether the header came
	// from a HeaderCache.
	headerSeg string
	jwk       string
	proof     bool // read with ParseProof's rules
	cached    bool
	kept      any // what HeaderCache.KeepWith kept with the header
}

// Parse splits a compact JWS and decodes its three segments and its
// protected header. It verifies nothing: the header is a claim by the
// token's author until VerifySignature says otherwise.
func Parse(token string) (Token, error) {
	return parse(token, nil)
}

// ParseProof is Parse for a DPoP proof (RFC 9449 §4.2), whose header must
// carry the public key that signed it as "jwk". It returns the jwk's JSON
// text alongside the token. The jwk must be an object without duplicate
// members and without private or symmetric key material ("d", "p", "q",
// "dp", "dq", "qi", "oth", "k"); what it describes is for the caller to
// check. "jku", "x5u", "x5c" and "crit" are refused as in Parse.
func ParseProof(token string) (Token, string, error) {
	var jwk string
	t, err := parse(token, &jwk)
	if err == nil && jwk == "" {
		err = malformed("header", errNoJWK)
	}
	return t, jwk, err
}

func parse(token string, jwk *string) (Token, error) {
	return parseWith(token, jwk, nil)
}

// parseWith is parse, with the header from cache when it holds h's.
func parseWith(token string, jwk *string, cache *HeaderCache) (Token, error) {
	h, rest, ok1 := strings.Cut(token, ".")
	p, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return Token{}, malformed("compact serialization", errSegments)
	}
	// A third dot fails the signature's decoding ('.' is not base64url);
	// only then is it looked for, to name the right error.
	hn, pn, sn := decodedLen(len(h)), decodedLen(len(p)), decodedLen(len(s))
	known := cache.lookup(h, jwk != nil)
	if known != nil {
		hn = 0 // kept: nothing to decode
	}
	if hn < 0 || pn < 0 || sn < 0 {
		return Token{}, malformed("compact serialization", segmentsOr(s, errBase64))
	}
	// One buffer for all three: the header, then the payload, then the
	// signature.
	n := hn + pn + sn
	room := 0
	if sn <= maxECDSASignature {
		room = derLen(sn) // it may be an ECDSA signature: room for its DER
	}
	buf := make([]byte, n, n+room)
	if known == nil && !decodeInto(buf[:hn], h) || !decodeInto(buf[hn:hn+pn], p) || !decodeInto(buf[hn+pn:], s) {
		return Token{}, malformed("compact serialization", segmentsOr(s, errBase64))
	}
	var hdr Header
	var kept any
	if known != nil {
		hdr, kept = known.hdr, known.kept
		if jwk != nil {
			*jwk = known.jwk
		}
	} else {
		var err error
		if hdr, err = parseHeader(readOnlyString(buf[:hn]), jwk); err != nil {
			return Token{}, malformed("header", err)
		}
	}
	var jwkText string
	if jwk != nil {
		jwkText = *jwk
	}
	return Token{
		headerSeg:    h,
		jwk:          jwkText,
		proof:        jwk != nil,
		cached:       known != nil,
		kept:         kept,
		Header:       hdr,
		SigningInput: token[:len(h)+1+len(p)],
		Payload:      buf[hn : hn+pn : hn+pn],
		Signature:    buf[hn+pn : n : n],
		derRoom:      buf[n:n:cap(buf)],
	}, nil
}

// segmentsOr returns errSegments when the signature segment s holds a
// dot (the token has more than three segments), else err.
func segmentsOr(s string, err error) error {
	if strings.IndexByte(s, '.') >= 0 {
		return errSegments
	}
	return err
}

// readOnlyString views b as a string without copying. b must never be
// modified afterwards; this package only uses it on buffers it filled
// and then hands out read-only.
func readOnlyString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// readOnlyBytes views s as bytes without copying, for functions that only
// read their input (hashes, ed25519.Verify). The result must never be
// written to.
func readOnlyBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// Header members, one bit each, to find duplicates.
const (
	hAlg = 1 << iota
	hKid
	hTyp
	hCty
	hB64
	hX5t
	hX5tS256
	hJWK
)

// maxJWKMembers bounds the members of a proof's "jwk"; a public key has
// at most a handful.
const maxJWKMembers = 16

// publicJWK consumes a "jwk" object and returns its JSON text, refusing
// duplicate members and private or symmetric key material.
func (d *scanner) publicJWK() (string, error) {
	if d.Peek() != '{' {
		return "", errType
	}
	start := d.Pos()
	var names [maxJWKMembers]string
	n := 0
	err := d.Object(func(name string) error {
		switch name {
		case "d", "p", "q", "dp", "dq", "qi", "oth", "k":
			return errPrivate
		}
		if n == len(names) {
			return errTooMany
		}
		for _, seen := range names[:n] {
			if seen == name {
				return errDup
			}
		}
		names[n] = name
		n++
		return d.Skip()
	})
	return d.Since(start), err
}

// parseHeader reads a JOSE header (RFC 7515 §4) from its JSON text. When
// jwk is non-nil, a "jwk" member is accepted and its JSON text stored
// there; otherwise it is refused.
func parseHeader(js string, jwk *string) (Header, error) {
	var h Header
	var seen uint
	d := newScanner(js)
	once := func(bit uint) error {
		if seen&bit != 0 {
			return errDup
		}
		seen |= bit
		return nil
	}
	err := d.Object(func(name string) (err error) {
		switch name {
		case "alg":
			if err = once(hAlg); err == nil {
				h.Alg, err = d.Str()
				h.Alg = internAlg(h.Alg)
			}
		case "kid":
			if err = once(hKid); err == nil {
				h.Kid, err = d.Str()
			}
		case "typ":
			if err = once(hTyp); err == nil {
				h.Typ, err = d.Str()
			}
		case "cty", "x5t", "x5t#S256":
			// Not acted on, but they must have their registered
			// type, as any JOSE implementation checks.
			bit := uint(hCty)
			switch name {
			case "x5t":
				bit = hX5t
			case "x5t#S256":
				bit = hX5tS256
			}
			if err = once(bit); err == nil {
				_, err = d.Str()
			}
		case "b64":
			// RFC 7797: only the default, true, is accepted.
			var b bool
			if err = once(hB64); err == nil {
				if b, err = d.Boolean(); err == nil && !b {
					err = errB64
				}
			}
		case "crit":
			// RFC 7515 §4.1.11: we understand no extension, so a
			// token that lists one must be rejected.
			err = errCrit
		case "jwk":
			if jwk == nil {
				err = errKeyParam
			} else if err = once(hJWK); err == nil {
				*jwk, err = d.publicJWK()
			}
		case "jku", "x5u", "x5c":
			// RFC 8725 §3.10: keys come from the issuer's JWKS only.
			// A token naming its own key is either an attack or an
			// issuer we should not trust with our defaults.
			err = errKeyParam
		default:
			err = d.Skip()
		}
		return err
	})
	if err == nil {
		err = d.End()
	}
	if err == nil && seen&hAlg == 0 {
		err = errNoAlg
	}
	return h, err
}

// internAlg returns the package's constant for a supported alg name, so
// that a header's alg does not keep its buffer alive and compares fast.
func internAlg(s string) string {
	switch s {
	case RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA:
		for _, a := range supported {
			if a == s {
				return a
			}
		}
	}
	return s
}
