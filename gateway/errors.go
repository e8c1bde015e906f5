package gateway

import (
	"fmt"
	"strings"
)

// FieldError is one configuration mistake: the YAML line, the key path
// ("issuers[1].jwks_uri") and what is wrong with it. Line is 0 and Key ""
// when the mistake has no place in the file (an environment variable).
// Msg never quotes a value that came from the environment.
type FieldError struct {
	Line int
	Key  string
	Msg  string
}

// Error is "line N: key: message".
func (e *FieldError) Error() string {
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

// ConfigError is every mistake found in one configuration file, in line
// order, so a user can fix the whole file in one go. LoadConfig,
// ParseConfig, Config.Check and New return it for mistakes in the file.
type ConfigError struct {
	File   string        // the file's path, or ParseConfig's name
	Fields []*FieldError // in line order
	Err    error         // the underlying error (from middleware.New, reading a key file, ...); may be nil
}

// Unwrap returns the underlying error, if any.
func (e *ConfigError) Unwrap() error { return e.Err }

// Error is "tokenguard: config FILE:" and the fields, one per line when
// there are several.
func (e *ConfigError) Error() string {
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
