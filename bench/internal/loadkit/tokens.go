package loadkit

import "strings"

// Tamper changes one character in the middle of a compact JWS's
// signature, so that it decodes to a signature of the right length that
// does not verify. (The last character is avoided: it may carry only
// padding bits, which a lenient decoder would ignore.)
func Tamper(jws string) string {
	dot := strings.LastIndexByte(jws, '.')
	i := dot + 1 + (len(jws)-dot-1)/2
	c := byte('A')
	if jws[i] == 'A' {
		c = 'B'
	}
	return jws[:i] + string(c) + jws[i+1:]
}
