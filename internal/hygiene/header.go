package hygiene

import (
	"errors"
	"net/http"
	"strings"
)

// ErrUpgrade is CheckUpgrade's refusal. It names no protocol: the value is
// the client's.
var ErrUpgrade = errors.New("hygiene: protocol upgrade refused")

// CheckUpgrade refuses a request that asks to switch protocols to anything
// but WebSocket, and WebSocket too unless allowWebSocket is set. A request
// with no Upgrade header passes.
//
// Only one Upgrade value, exactly the token "websocket" in any letter
// case, passes: a list ("websocket, h2c") could switch to its second
// protocol at an upstream that prefers it. Above all "h2c" must never
// reach an upstream: it answers 101 and hands the client a raw HTTP/2
// connection on which no later request is checked (h2c smuggling). An
// Upgrade header without "Connection: upgrade" is refused too: it switches
// nothing through Go's proxy, but has no honest use either.
func CheckUpgrade(h http.Header, allowWebSocket bool) error {
	vals := h.Values("Upgrade")
	if len(vals) == 0 {
		return nil
	}
	if !allowWebSocket || len(vals) != 1 || !strings.EqualFold(strings.TrimSpace(vals[0]), "websocket") {
		return ErrUpgrade
	}
	return nil
}

// FoldedHasPrefix reports whether the header name, as an upstream that
// folds names reads it (letter case ignored, '_' read as '-', surrounding
// spaces and tabs dropped), starts with prefix. prefix must be lower case
// and use '-'. CGI, WSGI, PHP and Rack turn both "X-Tokenguard-Subject"
// and "X_Tokenguard_Subject" into HTTP_X_TOKENGUARD_SUBJECT, so a proxy
// that sets the first must remove every spelling of it. It allocates
// nothing.
func FoldedHasPrefix(name, prefix string) bool {
	name = trimSpaceTab(name)
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if foldByte(name[i]) != prefix[i] {
			return false
		}
	}
	return true
}

// FoldedEqual is FoldedHasPrefix for a whole name: name folds to want
// (lower case, '-').
func FoldedEqual(name, want string) bool {
	return len(trimSpaceTab(name)) == len(want) && FoldedHasPrefix(name, want)
}

// AppendFolded appends to dst the header name as FoldedHasPrefix and
// FoldedEqual read it: surrounding spaces and tabs dropped, lower case,
// '_' as '-'. Comparing its result with a lower-case, '-' name is
// FoldedEqual, and with a prefix FoldedHasPrefix; folding a name once
// is cheaper than comparing it with many. With room in dst it allocates
// nothing.
func AppendFolded(dst []byte, name string) []byte {
	name = trimSpaceTab(name)
	for i := 0; i < len(name); i++ {
		dst = append(dst, foldByte(name[i]))
	}
	return dst
}

// trimSpaceTab is strings.Trim(s, " \t"), without building a cutset.
func trimSpaceTab(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func foldByte(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c + ('a' - 'A')
	case c == '_':
		return '-'
	}
	return c
}
