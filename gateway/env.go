package gateway

import (
	"encoding/base64"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/envexpand"
)

// Environment expansion. ${NAME} in a string value of the YAML file is
// replaced by the environment variable NAME, so secrets such as a Redis
// password or an introspection client secret need not be written in the
// file:
//
//	replay_store: redis://:${REDIS_PASSWORD}@redis:6379/0
//
// The rules, chosen so that a file means one thing and a variable can only
// ever become part of one value:
//   - Expansion happens after the YAML is parsed, on string values only:
//     keys are never expanded, and a variable's value can never add keys,
//     items or documents, whatever characters it holds.
//   - NAME matches [A-Za-z_][A-Za-z0-9_]*; anything else after "${" is an
//     error, as is a "${" without its "}".
//   - An unset or empty variable is an error naming the variable, the key
//     and the line: a missing secret must stop the gateway, not become "".
//   - "$${" is a literal "${". A "$" not followed by "{" is literal.
//   - A value that comes from the environment is never printed: not in
//     errors, and "tokenguard check" shows it as written (${NAME}).
//   - Only keys whose value is a string (or a list of strings) are
//     expanded; "${...}" in a number or boolean key is an error.

// expander expands every string value of a document in place.
type expander struct {
	getenv func(string) string
	// fromEnv maps the display key ("issuers[0].client_secret") of each
	// value that used a variable to the value as written, so it can be
	// shown without its secret.
	fromEnv map[string]string
	// value is the expanded value for each key of fromEnv, so that
	// messages about it can show the value as written instead.
	value map[string]string
	// written is the value as written of each expanded node; an alias
	// reaches the same node again under another key.
	written map[*yaml.Node]string
	seen    map[*yaml.Node]bool // guards against alias cycles
}

func newExpander(getenv func(string) string) *expander {
	return &expander{getenv: getenv, fromEnv: map[string]string{}, value: map[string]string{}, written: map[*yaml.Node]string{}, seen: map[*yaml.Node]bool{}}
}

// expand walks n, which decodes into type t, at key path path. It
// returns an error for each reference that could not be expanded.
func (x *expander) expand(n *yaml.Node, t reflect.Type, path string) []*FieldError {
	n = resolve(n)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if w, ok := x.written[n]; ok {
		// An expanded scalar reached again through an alias: it is
		// from the environment under this key too, and must be a
		// string here as well.
		if t.Kind() != reflect.String {
			return []*FieldError{{Line: n.Line, Key: path, Msg: "environment variables (${...}) are expanded only in string values"}}
		}
		x.fromEnv[path], x.value[path] = w, n.Value
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		// Mappings and sequences shared through aliases or merge keys
		// are walked under every key that uses them (so each key's
		// values are known to be from the environment); seen only
		// guards against a node that contains itself.
		if x.seen[n] {
			return nil
		}
		x.seen[n] = true
		defer delete(x.seen, n)
	}
	var errs []*FieldError
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" {
				errs = append(errs, x.expand(v, t, path)...)
				continue
			}
			if ft, ok := fields[k.Value]; ok {
				errs = append(errs, x.expand(v, ft, joinKey(path, k.Value))...)
			}
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, e := range n.Content {
			errs = append(errs, x.expand(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	case n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${"):
		if t.Kind() != reflect.String || n.ShortTag() != "!!str" {
			return []*FieldError{{Line: n.Line, Key: path, Msg: "environment variables (${...}) are expanded only in string values"}}
		}
		v, names, err := envexpand.Expand(n.Value, x.getenv)
		if err != nil {
			return []*FieldError{{Line: n.Line, Key: path, Msg: err.Error()}}
		}
		if len(names) > 0 {
			x.fromEnv[path], x.value[path] = n.Value, v
			x.written[n] = n.Value
		}
		n.Value = v
	}
	return errs
}

// scrub rewrites every message to show values that came from the
// environment as written ("${UPSTREAM}") rather than as expanded,
// whichever key the message is about, in raw and in quoted (%q) form, so
// that no error can print an expanded value.
func (x *expander) scrub(errs []*FieldError) {
	for _, e := range errs {
		for key, v := range x.value {
			if v == "" {
				continue
			}
			w := x.fromEnv[key]
			e.Msg = strings.ReplaceAll(e.Msg, v, w)
			if q := strconv.Quote(v); q[1:len(q)-1] != v {
				e.Msg = strings.ReplaceAll(e.Msg, q[1:len(q)-1], w)
			}
		}
	}
}

// nonceSecretsEnv names the environment variable with the DPoP nonce
// secrets: comma-separated, each the base64 (standard or URL alphabet,
// padded or not) of at least dpop.MinNonceSecretSize (32) random bytes.
// The first makes nonces and all are accepted, so a secret is rotated by
// putting the new one first. Replicas given the same value accept each
// other's nonces. Secrets stay out of the YAML file so that it can be
// shared and committed.
const NonceSecretsEnv = "TOKENGUARD_DPOP_NONCE_SECRETS"

// NonceSecretsFileEnv names a file holding what NonceSecretsEnv would
// (a mounted Secret); not both.
const NonceSecretsFileEnv = NonceSecretsEnv + "_FILE"

// applyEnv reads the settings that come from the environment rather than
// the file.
func (c *config) applyEnv(getenv func(string) string) error {
	v := getenv(NonceSecretsEnv)
	if path := getenv(NonceSecretsFileEnv); path != "" {
		if v != "" {
			return fmt.Errorf("tokenguard: set %s or %s, not both", NonceSecretsEnv, NonceSecretsFileEnv)
		}
		var err error
		if v, err = readSecretFile(path); err != nil {
			return fmt.Errorf("tokenguard: %s: %w", NonceSecretsFileEnv, err)
		}
	}
	if v == "" {
		return nil
	}
	secrets, err := parseNonceSecrets(v)
	if err != nil {
		return fmt.Errorf("tokenguard: %s: %w", NonceSecretsEnv, err)
	}
	c.NonceSecrets = secrets
	return nil
}

// parseNonceSecrets decodes the value of nonceSecretsEnv. Its errors say
// which entry is wrong and how, never what it holds.
func parseNonceSecrets(v string) ([][]byte, error) {
	parts := strings.Split(v, ",")
	out := make([][]byte, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		n := i + 1
		if p == "" {
			return nil, fmt.Errorf("secret %d of %d is empty (the value is a comma-separated list of base64 secrets)", n, len(parts))
		}
		b, ok := decodeBase64(p)
		switch {
		case !ok:
			return nil, fmt.Errorf("secret %d of %d is not valid base64", n, len(parts))
		case len(b) < dpop.MinNonceSecretSize:
			return nil, fmt.Errorf("secret %d of %d decodes to %d bytes; at least %d random bytes are required (for example: openssl rand -base64 32)", n, len(parts), len(b), dpop.MinNonceSecretSize)
		}
		out = append(out, b)
	}
	return out, nil
}

// decodeBase64 accepts the standard and the URL-safe alphabet, with or
// without padding.
func decodeBase64(s string) ([]byte, bool) {
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	raw := strings.TrimRight(s, "=")
	if pad := len(s) - len(raw); pad > 0 && (pad > 2 || len(s)%4 != 0) {
		return nil, false
	}
	b, err := enc.Strict().DecodeString(raw)
	return b, err == nil
}
