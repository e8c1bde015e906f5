package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckReportsEveryMistake: the checks beyond the file's own (key
// files, the guard's own rules), which ParseConfig and LoadConfig run too,
// report every mistake in one run, with its line, not the first one only.
func TestCheckReportsEveryMistake(t *testing.T) {
	dir := t.TempDir()
	notAKey := filepath.Join(dir, "not-a-key.pem")
	if err := os.WriteFile(notAKey, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := `listen: 127.0.0.1:8080
upstream: http://127.0.0.1:9000
audience: https://api.example.com
issuers:
  - issuer: https://as1.example.com
    jwks_uri: https://as1.example.com/jwks
    introspection_endpoint: https://as1.example.com/introspect
    client_id: rs
    client_auth_method: private_key_jwt
    client_key_file: ` + filepath.Join(dir, "missing.pem") + `
  - issuer: https://as2.example.com
    jwks_uri: https://as2.example.com/jwks
    introspection_endpoint: https://as2.example.com/introspect
    client_id: rs
    client_auth_method: private_key_jwt
    client_key_file: ` + notAKey + `
routes:
  - pattern: GET /orders/
`
	_, err := ParseConfig("t.yaml", []byte(y), noEnv)
	ce, ok := err.(*ConfigError)
	if !ok {
		t.Fatalf("ParseConfig = %v, want a *ConfigError", err)
	}
	var got []string
	for _, f := range ce.Fields {
		got = append(got, f.Key)
	}
	// Both key files (from loading them) and the guard's own rule (only
	// one issuer may introspect opaque tokens), in line order; not the
	// guard's "required with private_key_jwt" for the key that did not
	// load, which is the same mistake again.
	if want := "issuers[0].client_key_file issuers[1].introspection_endpoint issuers[1].client_key_file"; strings.Join(got, " ") != want {
		t.Errorf("ParseConfig reported %q, want %q:\n%v", got, want, err)
	}
}

// TestGuardErrorYAMLNames: the guard's messages reach a YAML user in YAML
// names, the Go field names they mention included.
func TestGuardErrorYAMLNames(t *testing.T) {
	c, err := parseConfig("t.yaml", []byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want string }{
		{"middleware: Issuers[0].ClientID: required with IntrospectionEndpoint", "issuers[0].client_id: required with introspection_endpoint"},
		{"middleware: Issuers[0].ClientSecret: set only with ClientID (for introspection)", "issuers[0].client_secret: set only with client_id (for introspection)"},
		{"middleware: PublicURL: must be https", "public_url: must be https"},
	}
	for _, tt := range tests {
		got := c.guardError(errors.New(tt.in)).Error()
		if !strings.Contains(got, tt.want) {
			t.Errorf("guardError(%q) = %q, want it to contain %q", tt.in, got, tt.want)
		}
	}
}
