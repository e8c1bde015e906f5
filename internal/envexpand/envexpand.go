// Package envexpand expands ${NAME} references in a configuration value
// by the gateway's rules (package gateway, env.go, says why each rule is
// there), for every part of the program that reads the configuration file.
package envexpand

import (
	"fmt"
	"strings"
)

// Expand expands s: "$${" is a literal "${", a lone "$" is literal, and
// an unset or empty variable, a bad name or a "${" without its "}" is an
// error. It returns the names it used; an error never includes a
// variable's value.
func Expand(s string, getenv func(string) string) (string, []string, error) {
	if !strings.Contains(s, "$") {
		return s, nil, nil
	}
	var b strings.Builder
	var names []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c != '$':
			b.WriteByte(c)
			i++
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", nil, fmt.Errorf("%q has no closing }", "${")
			}
			name := s[i+2 : i+2+end]
			if !ValidName(name) {
				return "", nil, fmt.Errorf("${%s} is not a valid variable reference (a name is letters, digits and _, not starting with a digit; write $${ for a literal ${)", QuoteName(name))
			}
			v := getenv(name)
			if v == "" {
				return "", nil, fmt.Errorf("environment variable %s is not set (or is empty)", name)
			}
			b.WriteString(v)
			names = append(names, name)
			i += 2 + end + 1
		default: // a lone "$"
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), names, nil
}

// ValidName reports whether s is a variable name: letters, digits and _,
// not starting with a digit.
func ValidName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// QuoteName shows an invalid name safely: it came from the file, not the
// environment, but may hold control characters.
func QuoteName(s string) string {
	q := fmt.Sprintf("%q", s)
	if len(q) > 66 {
		q = q[:60] + "…" + q[len(q)-1:]
	}
	return q[1 : len(q)-1]
}
