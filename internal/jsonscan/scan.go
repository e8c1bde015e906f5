// Package jsonscan is the strict, allocation-light JSON reader that
// tokenguard's token and introspection parsers share. It reads the one
// shape they need, a top-level object, member by member, without building
// a generic tree, and it is stricter than encoding/json where a security
// parser must be: RFC 8259 exactly (no comments, trailing commas, leading
// zeros or anything after the value), strings that are valid UTF-8, and at
// most MaxDepth levels of nesting. Strings without escapes are returned as
// substrings of the input; the rare string with escapes is decoded by
// encoding/json, so the two never disagree on what a string says.
//
// Callers embed Scanner in their own type and add readers for their typed
// members (dates, audiences, confirmation objects).
package jsonscan

import (
	"encoding/json"
	"errors"
	"math/bits"
	"unicode/utf8"
)

// MaxDepth bounds how deeply arrays and objects may nest. Real tokens and
// introspection responses nest two or three levels; the bound keeps a
// hostile input from costing more than its length.
const MaxDepth = 32

// Errors a Scanner returns. They name the rule broken, never the bytes.
var (
	ErrSyntax   = errors.New("malformed JSON")
	ErrType     = errors.New("wrong JSON type")
	ErrTooDeep  = errors.New("JSON nested too deeply")
	ErrUTF8     = errors.New("a string is not valid UTF-8")
	ErrTrailing = errors.New("data after the JSON value")
)

// Scanner reads JSON text. The zero value is not useful; use New.
type Scanner struct {
	s     string
	i     int
	depth int
}

// New returns a Scanner over s.
func New(s string) Scanner { return Scanner{s: s} }

// Pos is the offset of the next unread byte.
func (d *Scanner) Pos() int { return d.i }

// Since returns the input from offset start up to the next unread byte.
func (d *Scanner) Since(start int) string { return d.s[start:d.i] }

func (d *Scanner) ws() {
	// Most calls find no white space at all: one test for them.
	if d.i < len(d.s) && d.s[d.i] > ' ' {
		return
	}
	d.wsLoop()
}

func (d *Scanner) wsLoop() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// Peek returns the next non-space byte without consuming it, or 0 at the
// end of the input.
func (d *Scanner) Peek() byte {
	d.ws()
	if d.i < len(d.s) {
		return d.s[d.i]
	}
	return 0
}

// Eat consumes c if it is the next non-space byte.
func (d *Scanner) Eat(c byte) bool {
	if d.Peek() == c {
		d.i++
		return true
	}
	return false
}

// End checks that only white space follows the top-level value.
func (d *Scanner) End() error {
	d.ws()
	if d.i != len(d.s) {
		return ErrTrailing
	}
	return nil
}

// Object reads an object, calling member for each name with the scanner
// positioned at the value, which member must consume.
func (d *Scanner) Object(member func(name string) error) error {
	if !d.Eat('{') {
		return ErrSyntax
	}
	if d.depth++; d.depth > MaxDepth {
		return ErrTooDeep
	}
	if d.Eat('}') {
		d.depth--
		return nil
	}
	for {
		if d.Peek() != '"' {
			return ErrSyntax
		}
		name, err := d.str()
		if err != nil {
			return err
		}
		if !d.Eat(':') {
			return ErrSyntax
		}
		d.ws()
		if err := member(name); err != nil {
			return err
		}
		if d.Eat(',') {
			continue
		}
		if d.Eat('}') {
			d.depth--
			return nil
		}
		return ErrSyntax
	}
}

// Array reads an array, calling elem with the scanner at each element.
func (d *Scanner) Array(elem func() error) error {
	if !d.Eat('[') {
		return ErrSyntax
	}
	if d.depth++; d.depth > MaxDepth {
		return ErrTooDeep
	}
	if d.Eat(']') {
		d.depth--
		return nil
	}
	for {
		d.ws()
		if err := elem(); err != nil {
			return err
		}
		if d.Eat(',') {
			continue
		}
		if d.Eat(']') {
			d.depth--
			return nil
		}
		return ErrSyntax
	}
}

// Skip consumes any value.
func (d *Scanner) Skip() error {
	switch c := d.Peek(); {
	case c == '{':
		return d.Object(func(string) error { return d.Skip() })
	case c == '[':
		return d.Array(d.Skip)
	case c == '"':
		_, _, err := d.rawStr()
		return err
	case c == 't':
		return d.Lit("true")
	case c == 'f':
		return d.Lit("false")
	case c == 'n':
		return d.Lit("null")
	case c == '-' || c >= '0' && c <= '9':
		_, err := d.Num()
		return err
	}
	return ErrSyntax
}

// Lit consumes the literal word (true, false or null).
func (d *Scanner) Lit(word string) error {
	if len(d.s)-d.i < len(word) || d.s[d.i:d.i+len(word)] != word {
		return ErrSyntax
	}
	d.i += len(word)
	return nil
}

// Null consumes a null if one is next and reports whether it did.
func (d *Scanner) Null() bool {
	return d.Peek() == 'n' && d.Lit("null") == nil
}

// Boolean consumes true or false.
func (d *Scanner) Boolean() (bool, error) {
	switch d.Peek() {
	case 't':
		return true, d.Lit("true")
	case 'f':
		return false, d.Lit("false")
	}
	return false, ErrType
}

// rawStr consumes a string (the scanner at its opening quote) and returns
// it with its quotes, undecoded, and whether it holds escapes.
func (d *Scanner) rawStr() (raw string, escaped bool, err error) {
	start := d.i
	// The opening quote, checked by the caller, then the run of plain
	// ASCII characters that makes up most strings, in a tight loop.
	i, s := d.i+1, d.s
	// Eight bytes at a time while none of them needs a look: no quote,
	// backslash, control character or byte of a multi-byte sequence.
	for ; i+8 <= len(s); i += 8 {
		if m := special8(load8(s[i : i+8])); m != 0 {
			i += bits.TrailingZeros64(m) / 8 // the first such byte
			break
		}
	}
	for i < len(s) && plainChars[s[i]] {
		i++
	}
	if i < len(s) && s[i] == '"' {
		d.i = i + 1
		return s[start:d.i], false, nil
	}
	d.i = i
	ascii := true
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			raw = d.s[start:d.i]
			if !ascii && !utf8.ValidString(raw) {
				return "", false, ErrUTF8
			}
			return raw, escaped, nil
		case c == '\\':
			escaped = true
			if d.i+1 >= len(d.s) {
				return "", false, ErrSyntax
			}
			switch d.s[d.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i += 2
			case 'u':
				if d.i+6 > len(d.s) || !isHex4(d.s[d.i+2:d.i+6]) {
					return "", false, ErrSyntax
				}
				d.i += 6
			default:
				return "", false, ErrSyntax
			}
		case c < 0x20:
			return "", false, ErrSyntax
		default:
			ascii = ascii && c < utf8.RuneSelf
			d.i++
		}
	}
	return "", false, ErrSyntax
}

// load8 reads eight bytes of s, the first in the low byte.
func load8(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// special8 finds the bytes of the eight in x that are a quote, a
// backslash, below 0x20 or at least 0x80: it returns 0 when there are
// none, else a mask whose lowest set bit is the high bit of the first
// (lowest) of them. Bits above it may be set for bytes that are not: a
// borrow only ever runs upwards from a byte that is.
func special8(x uint64) uint64 {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	q := x ^ (ones * '"')  // zero where x has a quote
	b := x ^ (ones * '\\') // zero where x has a backslash
	// A byte below n (n ≤ 0x80) sets its high bit in (v - n·ones) &^ v;
	// a quote or backslash is below 1 after the XOR. Any byte with its
	// own high bit set is special too.
	return ((q-ones)&^q | (b-ones)&^b | (x-ones*0x20)&^x | x) & highs
}

// plainChars marks the bytes a string may hold as themselves that need no
// further look: printable ASCII but the quote and the backslash.
var plainChars = func() (t [256]bool) {
	for c := 0x20; c < 0x7F; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex4(s string) bool {
	for i := range 4 {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// Str consumes a string and returns its value; another type is ErrType.
func (d *Scanner) Str() (string, error) {
	if d.Peek() != '"' {
		return "", ErrType
	}
	return d.str()
}

// str is Str with the scanner at the opening quote.
func (d *Scanner) str() (string, error) {
	raw, escaped, err := d.rawStr()
	if err != nil {
		return "", err
	}
	if !escaped {
		return raw[1 : len(raw)-1], nil
	}
	var v string
	if json.Unmarshal([]byte(raw), &v) != nil {
		return "", ErrSyntax
	}
	return v, nil
}

// Num consumes a number (RFC 8259 §6) and returns its text.
func (d *Scanner) Num() (string, error) {
	text, _, _, err := d.NumInt()
	return text, err
}

// maxIntDigits bounds the digits NumInt reads into an integer: 15 digits
// are exact in an int64 and in a float64 alike.
const maxIntDigits = 15

// NumInt is Num that also returns the number's value when it is a plain
// non-negative integer (no sign, fraction or exponent) of at most 15
// digits, and whether it is: the usual timestamp, read in the same pass.
func (d *Scanner) NumInt() (text string, n int64, isInt bool, err error) {
	start, s := d.i, d.s
	end := min(len(s), start+maxIntDigits)
	i := start
	for ; i < end; i++ {
		c := s[i] - '0'
		if c > 9 {
			break
		}
		n = n*10 + int64(c)
	}
	if i > start && (i == len(s) || !isNumCont(s[i])) && (s[start] != '0' || i == start+1) {
		d.i = i
		return s[start:i], n, true, nil
	}
	text, err = d.num()
	return text, 0, false, err
}

// isNumCont reports whether c could continue a number's text.
func isNumCont(c byte) bool {
	return c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

func (d *Scanner) num() (string, error) {
	start := d.i
	if d.i < len(d.s) && d.s[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.s) && d.s[d.i] == '0':
		d.i++
	case d.digits() == 0:
		return "", ErrSyntax
	}
	if d.i < len(d.s) && d.s[d.i] == '.' {
		d.i++
		if d.digits() == 0 {
			return "", ErrSyntax
		}
	}
	if d.i < len(d.s) && (d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		d.i++
		if d.i < len(d.s) && (d.s[d.i] == '+' || d.s[d.i] == '-') {
			d.i++
		}
		if d.digits() == 0 {
			return "", ErrSyntax
		}
	}
	return d.s[start:d.i], nil
}

func (d *Scanner) digits() int {
	n := 0
	for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
		d.i++
		n++
	}
	return n
}
