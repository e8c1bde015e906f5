package gateway

import (
	"fmt"
	"strings"
)

// fieldError is one configuration mistake: the YAML line, the key path
// ("issuers[1].jwks_uri") and what is wrong with it.
type fieldError struct {
	Line int
	Key  string
	Msg  string
}

func (e *fieldError) Error() string {
	switch {
	case e.Line > 0 && e.Key != "":
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Key, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	case e.Key != "":
		return e.Key + ": " + e.Msg
	}
	return e.Msg
}

// configError is every mistake found in one configuration file, in line
// order. Errors use it so a user can fix the whole file in one go.
type configError struct {
	File   string
	Fields []*fieldError
	Err    error // the underlying error when it came from middleware.New; may be nil
}

// Unwrap returns the underlying error, if any.
func (e *configError) Unwrap() error { return e.Err }

func (e *configError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tokenguard: config %s:", e.File)
	if len(e.Fields) == 1 {
		b.WriteString(" " + e.Fields[0].Error())
		return b.String()
	}
	for _, f := range e.Fields {
		b.WriteString("\n\t" + f.Error())
	}
	return b.String()
}
