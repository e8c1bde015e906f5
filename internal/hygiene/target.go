// Package hygiene decides whether a request can be read in only one way:
// whether its request-target means the same path to a router that matches
// it byte for byte (Go's ServeMux) and to an upstream that percent-decodes
// it, resolves dot segments, treats a backslash as a slash or folds
// look-alike characters (Spring, Tomcat, IIS, PHP and many Node and Python
// stacks do one or more of these); whether a header name means the same
// thing to Go and to an upstream that folds '_' into '-' (CGI, WSGI, PHP,
// Rack); and which protocol switch a request asks for.
//
// The checks refuse rather than normalise: a request whose meaning could
// change downstream is not repaired into one of its meanings. The model is
// Spring Security's StrictHttpFirewall and Envoy's path options
// (normalize_path, merge_slashes, path_with_escaped_slashes_action:
// REJECT_REQUEST, headers_with_underscores_action), and the CVEs that
// drove them.
//
// Every function is pure, bounded by the length of its input, and its
// errors never quote the input.
package hygiene

import (
	"errors"
	"unicode/utf8"
)

// Errors from CheckTarget. Each names a class of request-target that two
// readers can disagree on; none carries any part of the input.
var (
	// ErrNotOriginForm: the request-target is absolute-form
	// ("http://host/p"), authority-form ("host:443") or asterisk-form
	// ("*"), not a path (RFC 9112 §3.2). Only the origin-form has one
	// reading: the others make the client, not the route, name the host.
	ErrNotOriginForm = errors.New("hygiene: request-target is not in origin form")
	// ErrEncodedDelimiter: a percent-encoded '/', '\', '.', '%', ';', '?',
	// '#' or control character (NUL, CR, LF, ...). An upstream that
	// decodes the path sees a separator, a dot segment, a second escape,
	// a path parameter, the end of the path or a control character the
	// router never saw.
	ErrEncodedDelimiter = errors.New("hygiene: percent-encoded delimiter or control character in the path")
	// ErrDotSegment: a segment made only of dots ("." and "..", and
	// "..." which some Windows stacks also shorten). A router that
	// matches the raw path and an upstream that resolves it disagree.
	ErrDotSegment = errors.New("hygiene: dot segment in the path")
	// ErrSegmentEnd: a segment that ends in '.' or in an encoded space
	// ("/admin./", "/admin%20/"). Windows (IIS, Kestrel on Windows)
	// removes them, so "/admin." is "/admin" there.
	ErrSegmentEnd = errors.New("hygiene: path segment ends in a dot or a space")
	// ErrEmptySegment: "//" in the path. Some upstreams merge slashes,
	// some do not; nginx's merge_slashes exists for this.
	ErrEmptySegment = errors.New("hygiene: empty segment in the path")
	// ErrPathParameter: a ';' in the path. Tomcat, Jetty and Spring strip
	// ";params" from segments ("/admin;x/" is "/admin/" to them).
	ErrPathParameter = errors.New("hygiene: path parameter (';') in the path")
	// ErrBackslash: a '\' in the path, which IIS, Windows stacks and some
	// Node and Python routers read as '/'.
	ErrBackslash = errors.New("hygiene: backslash in the path")
	// ErrBadEscape: a '%' not followed by two hex digits ("%zz", "%2",
	// "%u002e"): decoders disagree on what it means.
	ErrBadEscape = errors.New("hygiene: invalid percent-encoding in the path")
	// ErrBadChar: a character RFC 3986 does not allow in a path, sent
	// raw: a space, '"', '<', '>', '#', '[', ']', '^', '`', '{', '|',
	// '}', a control character or a byte above 0x7e.
	ErrBadChar = errors.New("hygiene: character not allowed in a path")
	// ErrBadUTF8: the decoded path is not valid UTF-8: overlong forms
	// such as %c0%ae decode to '.' in old Tomcat and IIS.
	ErrBadUTF8 = errors.New("hygiene: percent-encoded path is not valid UTF-8")
	// ErrConfusable: the decoded path holds a character that Unicode
	// compatibility normalisation (NFKC) or Windows "best fit" mapping
	// turns into '.', '/', '\', ';', '%', '?' or '#' (fullwidth and small
	// forms, division and fraction slashes, leaders), or a line or
	// paragraph separator.
	ErrConfusable = errors.New("hygiene: character that normalises to a delimiter in the path")
)

// CheckTarget reports whether requestURI, the request-target exactly as
// the client sent it (http.Request.RequestURI on a server), has only one
// reading. It must be origin-form: an absolute path, optionally followed
// by "?" and a query, whose path
//
//   - contains only RFC 3986 path characters, raw or percent-encoded;
//   - has no '\', no ';', no empty segment, no segment made only of
//     dots and none that ends in a dot or an encoded space;
//   - encodes none of '/', '\', '.', '%', ';', '?', '#' or a control
//     character;
//   - decodes to valid UTF-8 with no character that normalises to a
//     delimiter.
//
// The query is not examined: routers do not match on it.
//
// A path that passes means the same to a router that matches it raw and to
// an upstream that decodes it once, twice or not at all, resolves dot
// segments, merges slashes, strips path parameters or reads '\' as '/':
// each of those leaves it unchanged, apart from decoding characters that
// are not delimiters.
//
// The asterisk-form ("*") is refused too; Go's server answers "OPTIONS *"
// itself before any handler runs.
func CheckTarget(requestURI string) error {
	path := requestURI
	for i := 0; i < len(path); i++ {
		if path[i] == '?' {
			path = path[:i]
			break
		}
	}
	if len(path) == 0 || path[0] != '/' {
		return ErrNotOriginForm
	}
	return CheckPath(path)
}

// CheckPath applies CheckTarget's rules to an escaped path (without a
// query), which must start with '/'.
func CheckPath(path string) error {
	if len(path) == 0 || path[0] != '/' {
		return ErrNotOriginForm
	}
	escaped := false // any percent-encoding: the decoded form needs a look
	segStart := 1    // index of the current segment's first byte
	for i := 1; i <= len(path); i++ {
		if i == len(path) || path[i] == '/' {
			if err := checkSegment(path[segStart:i], i == len(path)); err != nil {
				return err
			}
			segStart = i + 1
			continue
		}
		c := path[i]
		switch {
		case c == '%':
			if i+2 >= len(path) {
				return ErrBadEscape // fewer than two bytes after the '%'
			}
			hi, ok1 := unhex(path[i+1])
			lo, ok2 := unhex(path[i+2])
			if !ok1 || !ok2 {
				return ErrBadEscape
			}
			if encodedDelimiter(hi<<4 | lo) {
				return ErrEncodedDelimiter
			}
			escaped = true
			i += 2
		case c == '\\':
			return ErrBackslash
		case c == ';':
			return ErrPathParameter
		case !pathChar[c]:
			return ErrBadChar
		}
	}
	if escaped {
		return checkDecoded(path)
	}
	return nil
}

// checkSegment refuses an empty segment (except the last: "/orders/" ends
// in one), a segment made only of dots, and one that ends in a dot or an
// encoded space. seg is still encoded, but an encoded dot has been refused
// already, so only raw dots count.
func checkSegment(seg string, last bool) error {
	if seg == "" {
		if last {
			return nil
		}
		return ErrEmptySegment
	}
	for i := 0; i < len(seg); i++ {
		if seg[i] != '.' {
			if seg[len(seg)-1] == '.' || len(seg) >= 3 && seg[len(seg)-3:] == "%20" {
				return ErrSegmentEnd
			}
			return nil
		}
	}
	return ErrDotSegment
}

// checkDecoded decodes path (whose escapes are all valid) and checks the
// result: valid UTF-8, and no character that normalises to a delimiter.
// It decodes on the fly; nothing is allocated.
func checkDecoded(path string) error {
	var buf [utf8.UTFMax]byte
	n := 0 // bytes of a multi-byte sequence collected in buf
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c == '%' {
			hi, _ := unhex(path[i+1])
			lo, _ := unhex(path[i+2])
			c = hi<<4 | lo
			i += 2
		}
		if n == 0 && c < utf8.RuneSelf {
			continue
		}
		if n == 0 && !utf8.RuneStart(c) {
			return ErrBadUTF8
		}
		if n > 0 && utf8.RuneStart(c) {
			return ErrBadUTF8 // a new sequence before the last one ended
		}
		buf[n] = c
		n++
		if !utf8.FullRune(buf[:n]) {
			if n == len(buf) {
				return ErrBadUTF8
			}
			continue
		}
		r, size := utf8.DecodeRune(buf[:n])
		if r == utf8.RuneError || size != n {
			return ErrBadUTF8
		}
		if confusable(r) {
			return ErrConfusable
		}
		n = 0
	}
	if n != 0 {
		return ErrBadUTF8
	}
	return nil
}

// encodedDelimiter reports whether b, sent percent-encoded, would become a
// delimiter or a control character once an upstream decodes it.
func encodedDelimiter(b byte) bool {
	switch {
	case b == '/', b == '\\', b == '.', b == '%', b == ';', b == '?', b == '#':
		return true
	case b < 0x20, b == 0x7f:
		return true
	}
	return false
}

// confusable reports whether r is a character that NFKC normalisation or
// Windows "best fit" mapping turns into (a string holding) '.', '/', '\',
// ';', '%', '?' or '#', or a line or paragraph separator. The list was made
// from Unicode's NFKC data; the best-fit additions are the slashes IIS maps.
func confusable(r rune) bool {
	switch r {
	case 0x0085, 0x2028, 0x2029: // NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR
		return true
	case 0x037e, 0xfe14, 0xfe54, 0xff1b: // ; GREEK QUESTION MARK, vertical, small, fullwidth
		return true
	case 0x2024, 0x2025, 0x2026, 0xfe19, 0xfe30, 0xfe52, 0xff0e, 0x33c7: // . leaders, ellipses, small, fullwidth
		return true
	case 0x2047, 0x2048, 0x2049, 0xfe16, 0xfe56, 0xff1f: // ?
		return true
	case 0xfe5f, 0xff03: // #
		return true
	case 0xfe6a, 0xff05: // %
		return true
	case 0x2100, 0x2101, 0x2105, 0x2106, 0xff0f: // / in a/c, c/o, ...; fullwidth solidus
		return true
	case 0x2044, 0x2215, 0x29f8: // FRACTION SLASH, DIVISION SLASH, BIG SOLIDUS (best fit)
		return true
	case 0xfe68, 0xff3c, 0x2216, 0x29f5, 0x29f9: // \ small, fullwidth; SET MINUS, REVERSE SOLIDUS OPERATOR, BIG REVERSE SOLIDUS
		return true
	}
	return 0x2488 <= r && r <= 0x249b || r == 0x1f100 // "1." … "20.", "0."
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// pathChar is RFC 3986's pchar without pct-encoded (handled apart) and
// without ';' (a path parameter, refused apart): unreserved, the other
// sub-delims, ':' and '@'.
var pathChar = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			t[c] = true
		}
	}
	for _, c := range []byte("-._~!$&'()*+,=:@") {
		t[c] = true
	}
	return t
}()
