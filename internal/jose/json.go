package jose

import (
	"strconv"

	"github.com/tokenguard/tokenguard/internal/jsonscan"
)

// maxDepth bounds how deeply arrays and objects may nest inside a header
// or claims set (jsonscan.MaxDepth).
const maxDepth = jsonscan.MaxDepth

// scanner reads a JOSE header or JWT claims set: jsonscan's strict reader
// plus the typed readers JWT claims need.
type scanner struct {
	jsonscan.Scanner
}

func newScanner(s string) scanner { return scanner{jsonscan.New(s)} }

// numericDate consumes a JSON number as an RFC 7519 NumericDate.
func (d *scanner) numericDate() (NumericDate, error) {
	c := d.Peek()
	if c != '-' && (c < '0' || c > '9') {
		return NumericDate{}, errType
	}
	text, n, isInt, err := d.NumInt()
	if err != nil {
		return NumericDate{}, err
	}
	if isInt {
		// The usual integer date, exactly what ParseFloat would return.
		if n > maxNumericDate {
			return NumericDate{}, errRange
		}
		return NumericDate{seconds: float64(n), Valid: true}, nil
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || f < 0 || f > maxNumericDate {
		return NumericDate{}, errRange
	}
	return NumericDate{seconds: f, Valid: true}, nil
}

// strings consumes a string or an array of strings, as "aud" and "scp"
// may be, appending them to dst (which may have room for them). A lone
// string is returned as a one-element slice.
func (d *scanner) strings(dst []string) ([]string, error) {
	switch d.Peek() {
	case '"':
		s, err := d.Str()
		if err != nil {
			return nil, err
		}
		if cap(dst) == 0 {
			return []string{s}, nil
		}
		return append(dst, s), nil
	case '[':
		out := dst
		if cap(out) == 0 {
			// Room for the usual few audiences or scopes in one allocation.
			out = make([]string, 0, 4)
		}
		err := d.Array(func() error {
			s, err := d.Str()
			out = append(out, s)
			return err
		})
		return out, err
	}
	return nil, errType
}
