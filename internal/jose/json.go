package jose

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// maxDepth bounds how deeply arrays and objects may nest inside a header
// or claims set. Real tokens nest two or three levels; the bound keeps a
// hostile token from costing more than its length.
const maxDepth = 32

// scanner is a strict, allocation-light reader for the one JSON shape a
// JOSE header or JWT claims set has: a single object. It follows RFC 8259
// exactly (no comments, no trailing commas, no leading zeros, nothing
// after the object) and reads the members the caller asks for without
// building a generic tree. Strings without escapes are returned as
// substrings of the input; the rare string with escapes is decoded by
// encoding/json so the two never disagree on what a string says.
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

// object reads an object, calling member for each name with the scanner
// positioned at the value, which member must consume (with value, or one
// of the typed readers).
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
		d.ws()
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

// end checks that only white space follows the top-level value.
func (d *scanner) end() error {
	d.ws()
	if d.i != len(d.s) {
		return errSyntax
	}
	return nil
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
		d.ws()
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

func (d *scanner) lit(word string) error {
	if len(d.s)-d.i < len(word) || d.s[d.i:d.i+len(word)] != word {
		return errSyntax
	}
	d.i += len(word)
	return nil
}

// null consumes a null if one is next and reports whether it did.
func (d *scanner) null() bool {
	return d.peek() == 'n' && d.lit("null") == nil
}

// rawStr consumes a string and returns it with its quotes, undecoded, and
// whether it holds escapes. A string that is not valid UTF-8 is an error
// (RFC 8259 §8.1), not something to repair.
func (d *scanner) rawStr() (raw string, escaped bool, err error) {
	start := d.i
	d.i++ // the opening quote, checked by the caller
	ascii := true
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			raw = d.s[start:d.i]
			if !ascii && !utf8.ValidString(raw) {
				return "", false, errSyntax
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
			ascii = ascii && c < utf8.RuneSelf
			d.i++
		}
	}
	return "", false, errSyntax
}

func isHex4(s string) bool {
	for i := range 4 {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// str consumes a string and returns its value.
func (d *scanner) str() (string, error) {
	if d.peek() != '"' {
		return "", errType
	}
	raw, escaped, err := d.rawStr()
	if err != nil {
		return "", err
	}
	if !escaped {
		return raw[1 : len(raw)-1], nil
	}
	var v string
	if json.Unmarshal([]byte(raw), &v) != nil {
		return "", errSyntax
	}
	return v, nil
}

// num consumes a number (RFC 8259 §6) and returns its text.
func (d *scanner) num() (string, error) {
	start := d.i
	if d.i < len(d.s) && d.s[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.s) && d.s[d.i] == '0':
		d.i++
	case d.digits() == 0:
		return "", errSyntax
	}
	if d.i < len(d.s) && d.s[d.i] == '.' {
		d.i++
		if d.digits() == 0 {
			return "", errSyntax
		}
	}
	if d.i < len(d.s) && (d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		d.i++
		if d.i < len(d.s) && (d.s[d.i] == '+' || d.s[d.i] == '-') {
			d.i++
		}
		if d.digits() == 0 {
			return "", errSyntax
		}
	}
	return d.s[start:d.i], nil
}

func (d *scanner) digits() int {
	n := 0
	for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
		d.i++
		n++
	}
	return n
}

// boolean consumes true or false.
func (d *scanner) boolean() (bool, error) {
	switch d.peek() {
	case 't':
		return true, d.lit("true")
	case 'f':
		return false, d.lit("false")
	}
	return false, errType
}

// numericDate consumes a JSON number as an RFC 7519 NumericDate.
func (d *scanner) numericDate() (NumericDate, error) {
	c := d.peek()
	if c != '-' && (c < '0' || c > '9') {
		return NumericDate{}, errType
	}
	text, err := d.num()
	if err != nil {
		return NumericDate{}, err
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || f < 0 || f > maxNumericDate {
		return NumericDate{}, errRange
	}
	return NumericDate{seconds: f, Valid: true}, nil
}

// strings consumes a string or an array of strings, as "aud" and "scp"
// may be. A lone string is returned as a one-element slice.
func (d *scanner) strings() ([]string, error) {
	switch d.peek() {
	case '"':
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		return []string{s}, nil
	case '[':
		// Room for the usual few audiences or scopes in one allocation.
		out := make([]string, 0, 4)
		err := d.array(func() error {
			s, err := d.str()
			out = append(out, s)
			return err
		})
		return out, err
	}
	return nil, errType
}
