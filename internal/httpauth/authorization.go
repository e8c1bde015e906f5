// Package httpauth parses the HTTP authentication headers tokenguard reads
// and writes: Authorization (RFC 9110 §11.6.2 with the RFC 6750 §2.1
// b64token syntax) and WWW-Authenticate challenges (RFC 9110 §11.6.1).
//
// The parsers are strict, allocation-light and bounded by the length of
// their input; they never return a value that echoes a credential in an
// error.
package httpauth

import (
	"errors"
	"strings"
)

// Errors returned by ParseAuthorization. They carry no part of the input.
var (
	// ErrMalformed means the header is not "scheme SP credentials".
	ErrMalformed = errors.New("httpauth: malformed Authorization header")
	// ErrInvalidToken means the credentials are not a valid b64token.
	ErrInvalidToken = errors.New("httpauth: credentials are not a b64token")
)

// ParseAuthorization splits an Authorization header value into its scheme and
// credentials. The scheme is returned as sent (compare it with
// strings.EqualFold, RFC 9110 §11.1). Credentials must be a single
// RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" )
// *"=". One or more spaces may separate scheme and credentials; trailing
// whitespace is not accepted.
//
// A header with only a scheme, or with auth-params instead of a token,
// returns ErrMalformed; a token with characters outside b64token returns
// ErrInvalidToken.
func ParseAuthorization(v string) (scheme, token string, err error) {
	scheme, token, err = SplitAuthorization(v)
	if err != nil {
		return "", "", err
	}
	if !IsB64Token(token) {
		return scheme, "", ErrInvalidToken
	}
	return scheme, token, nil
}

// SplitAuthorization is ParseAuthorization without the b64token check of
// the credentials, for a caller that checks them later with IsB64Token
// and may skip the check for credentials it has already seen valid
// byte for byte (the verified-token cache does: it is keyed by a SHA-256
// of the exact token).
func SplitAuthorization(v string) (scheme, token string, err error) {
	sp := strings.IndexByte(v, ' ')
	if sp <= 0 {
		return "", "", ErrMalformed
	}
	scheme = v[:sp]
	if !IsToken(scheme) {
		return "", "", ErrMalformed
	}
	rest := v[sp+1:]
	for len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	if rest == "" {
		return "", "", ErrMalformed
	}
	return scheme, rest, nil
}

// SchemeOf returns what stands in v's scheme position, whatever its
// characters: v up to the first space or tab. It never fails, so a caller
// can tell "a scheme we do not take" (any spelling, including look-alike
// letters from other scripts) from "our scheme, malformed".
func SchemeOf(v string) string {
	for i := 0; i < len(v); i++ {
		if v[i] == ' ' || v[i] == '\t' {
			return v[:i]
		}
	}
	return v
}

// EqualFoldASCII reports whether s equals ascii (which must be ASCII)
// ignoring the case of ASCII letters only. Unlike strings.EqualFold it
// never matches a non-ASCII character: the Kelvin sign is not a "k",
// and a scheme spelled with fullwidth or Cyrillic letters is not ours.
func EqualFoldASCII(s, ascii string) bool {
	if len(s) != len(ascii) {
		return false
	}
	for i := 0; i < len(s); i++ {
		a, b := s[i], ascii[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// IsB64Token reports whether s matches the RFC 6750 b64token production.
func IsB64Token(s string) bool {
	i := 0
	for i < len(s) && b64tokenChar(s[i]) {
		i++
	}
	if i == 0 {
		return false
	}
	for i < len(s) && s[i] == '=' {
		i++
	}
	return i == len(s)
}

func b64tokenChar(c byte) bool { return b64tokenChars[c] }

// b64tokenChars is the b64token alphabet (RFC 6750 §2.1) as a table: a
// token is checked byte by byte on every request, and a lookup is several
// times cheaper than the range comparisons it replaces.
var b64tokenChars = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			t[c] = true
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
			t[c] = true
		}
	}
	return t
}()

// IsToken reports whether s is an RFC 9110 token (the syntax of a scheme or
// a parameter name).
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tchar(s[i]) {
			return false
		}
	}
	return true
}

func tchar(c byte) bool { return tchars[c] }

// tchars is the RFC 9110 tchar alphabet as a table, read for every
// character of every scheme.
var tchars = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			t[c] = true
		default:
			t[c] = strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0
		}
	}
	return t
}()
