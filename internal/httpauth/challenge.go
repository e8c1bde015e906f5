package httpauth

import (
	"errors"
	"strings"
)

// Param is one auth-param of a challenge.
type Param struct {
	Name  string
	Value string
}

// Challenge is one WWW-Authenticate challenge: a scheme and its auth-params
// in order.
type Challenge struct {
	Scheme string
	Params []Param
}

// ErrMalformedChallenge is returned by ParseChallenges for input that is not
// a list of "scheme [param=value *(, param=value)]" challenges.
var ErrMalformedChallenge = errors.New("httpauth: malformed WWW-Authenticate value")

// String formats c as RFC 9110 §11.6.1 does, with every value sent as a
// quoted-string: `Bearer realm="api", error="invalid_token"`.
func (c Challenge) String() string {
	var b strings.Builder
	c.appendTo(&b)
	return b.String()
}

func (c Challenge) appendTo(b *strings.Builder) {
	b.WriteString(c.Scheme)
	for i, p := range c.Params {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteString(", ")
		}
		b.WriteString(p.Name)
		b.WriteString(`="`)
		for j := 0; j < len(p.Value); j++ {
			ch := p.Value[j]
			switch {
			case ch == '"' || ch == '\\':
				b.WriteByte('\\')
				b.WriteByte(ch)
			case ch < 0x20 && ch != '\t' || ch == 0x7f:
				// Control characters cannot appear in a quoted-string;
				// drop them rather than emit an invalid header.
			default:
				b.WriteByte(ch)
			}
		}
		b.WriteByte('"')
	}
}

// FormatChallenges joins challenges into one header value.
func FormatChallenges(cs []Challenge) string {
	var b strings.Builder
	for i, c := range cs {
		if i > 0 {
			b.WriteString(", ")
		}
		c.appendTo(&b)
	}
	return b.String()
}

// maxChallengeLen bounds ParseChallenges' input.
const maxChallengeLen = 16 << 10

// ParseChallenges parses a WWW-Authenticate value made of challenges whose
// parameters are name=value pairs (token or quoted-string values). It does
// not accept the token68 form, which tokenguard never sends.
func ParseChallenges(v string) ([]Challenge, error) {
	if len(v) > maxChallengeLen {
		return nil, ErrMalformedChallenge
	}
	p := parser{s: v}
	var out []Challenge
	for {
		p.skipOWS()
		if p.done() {
			break
		}
		scheme := p.token()
		if scheme == "" {
			return nil, ErrMalformedChallenge
		}
		c := Challenge{Scheme: scheme}
		// A scheme is followed by end of input, a comma, or SP and params.
		if !p.done() && p.peek() == ' ' {
			p.skipOWS()
			for !p.done() && p.peek() != ',' {
				name := p.token()
				if name == "" {
					return nil, ErrMalformedChallenge
				}
				p.skipOWS()
				if p.done() || p.peek() != '=' {
					return nil, ErrMalformedChallenge
				}
				p.i++
				p.skipOWS()
				val, ok := p.value()
				if !ok {
					return nil, ErrMalformedChallenge
				}
				c.Params = append(c.Params, Param{Name: name, Value: val})
				p.skipOWS()
				if p.done() {
					break
				}
				if p.peek() != ',' {
					return nil, ErrMalformedChallenge
				}
				// After a comma: either another param of this challenge
				// (token followed by "=") or the next challenge's scheme.
				save := p.i
				p.i++
				p.skipOWS()
				for !p.done() && p.peek() == ',' {
					p.i++
					p.skipOWS()
				}
				if p.done() {
					break
				}
				tokStart := p.i
				if p.token() == "" {
					return nil, ErrMalformedChallenge
				}
				p.skipOWS()
				isParam := !p.done() && p.peek() == '='
				p.i = tokStart
				if !isParam {
					p.i = save
					break
				}
			}
		}
		out = append(out, c)
		p.skipOWS()
		if p.done() {
			break
		}
		if p.peek() != ',' {
			return nil, ErrMalformedChallenge
		}
		p.i++
	}
	if len(out) == 0 {
		return nil, ErrMalformedChallenge
	}
	return out, nil
}

type parser struct {
	s string
	i int
}

func (p *parser) done() bool { return p.i >= len(p.s) }
func (p *parser) peek() byte { return p.s[p.i] }

func (p *parser) skipOWS() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *parser) token() string {
	start := p.i
	for p.i < len(p.s) && tchar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

func (p *parser) value() (string, bool) {
	if p.done() {
		return "", false
	}
	if p.peek() != '"' {
		t := p.token()
		return t, t != ""
	}
	p.i++
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), true
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return "", false
			}
			b.WriteByte(p.s[p.i+1])
			p.i += 2
		case c < 0x20 && c != '\t' || c == 0x7f:
			return "", false
		default:
			b.WriteByte(c)
			p.i++
		}
	}
	return "", false
}
