package gateway

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretFiles: every secret key has a *_file twin whose file holds
// the value (trailing line break dropped); mistakes name the key and
// line, never the contents; check shows the path.
func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const secret = "s3cret-FROM-FILE"
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	secretFile := write("client-secret", secret+"\n")
	keyFile := write("session-key", key+"\r\n")
	prevKey := base64.StdEncoding.EncodeToString([]byte("previous-key-0123456789abcdef012"))
	prevFile := write("previous-session-key", prevKey+"\n")
	redisFile := write("redis-url", "redis://:pw-FROM-FILE@127.0.0.1:6379/0\n")
	base := `listen: 127.0.0.1:8080
upstream: http://127.0.0.1:9000
public_url: https://api.example.com
audience: https://api.example.com
issuers:
  - issuer: https://as.example.com
    jwks_uri: https://as.example.com/jwks
    introspection_endpoint: https://as.example.com/introspect
    client_id: rs
    client_secret_file: ` + secretFile + `
dpop:
  mode: allowed
  replay_store_file: ` + redisFile + `
routes:
  - pattern: GET /orders/
bff:
  issuer: https://as.example.com
  client_id: spa
  scopes: [openid]
  client_secret_file: ` + secretFile + `
  session_store_file: ` + redisFile + `
  session_key_file: ` + keyFile + `
  previous_session_key_file: ` + prevFile + `
`
	c, err := parseConfig("t.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuers[0].ClientSecret != secret || c.BFF.ClientSecret != secret {
		t.Errorf("client secrets %q, %q: want the file's contents without the line break", c.Issuers[0].ClientSecret, c.BFF.ClientSecret)
	}
	if c.ReplayStore != "redis://:pw-FROM-FILE@127.0.0.1:6379/0" || c.BFF.SessionStore != c.ReplayStore {
		t.Errorf("Redis URLs %q, %q", c.ReplayStore, c.BFF.SessionStore)
	}
	if string(c.BFF.SessionKey) != "0123456789abcdef0123456789abcdef" {
		t.Errorf("session key from file not decoded (CRLF dropped?)")
	}
	if string(c.BFF.PreviousSessionKey) != "previous-key-0123456789abcdef012" {
		t.Errorf("previous session key from file not decoded")
	}
	out, err := (&Config{c}).EffectiveYAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{secret, "pw-FROM-FILE", key, prevKey} {
		if strings.Contains(string(out), leak) {
			t.Errorf("check output shows a secret read from a file (%q):\n%s", leak, out)
		}
	}
	for _, want := range []string{"client_secret_file: " + secretFile, "replay_store_file: " + redisFile, "session_key_file: " + keyFile, "previous_session_key_file: " + prevFile, "session_store_file: " + redisFile} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	// What check prints loads again, to the same values.
	if c2, err := parseConfig("again.yaml", out); err != nil {
		t.Errorf("check's output does not load: %v", err)
	} else if c2.Issuers[0].ClientSecret != secret {
		t.Errorf("check's output loads another secret")
	}

	big := write("big", strings.Repeat("x", maxSecretFileSize+1))
	empty := write("empty", "\n")
	tests := []struct {
		name, old, new, want string
	}{
		{"both", "    client_secret_file: " + secretFile, "    client_secret: x\n    client_secret_file: " + secretFile, "line 11: issuers[0].client_secret_file: set client_secret or client_secret_file, not both"},
		{"missing", "  session_key_file: " + keyFile, "  session_key_file: " + dir + "/nope", "bff.session_key_file: stat " + dir + "/nope: no such file or directory"},
		{"empty", "  replay_store_file: " + redisFile, "  replay_store_file: " + empty, "line 13: dpop.replay_store_file: " + empty + " is empty"},
		{"a directory", "  replay_store_file: " + redisFile, "  replay_store_file: " + dir, "dpop.replay_store_file: " + dir + " is not a regular file"},
		{"too large", "  client_secret_file: " + secretFile + "\n  session_store", "  client_secret_file: " + big + "\n  session_store", "bff.client_secret_file: " + big + " is larger than 65536 bytes"},
		{"bad key in file", "  session_key_file: " + keyFile, "  session_key_file: " + secretFile, "bff.session_key: must be 32 random bytes in base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := strings.Replace(base, tt.old, tt.new, 1)
			if y == base {
				t.Fatal("the edit did not apply")
			}
			_, err := parseConfig("t.yaml", []byte(y))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("an error quotes a secret from a file: %v", err)
			}
		})
	}
}

// TestNonceSecretsFile: the nonce secrets may come from a file named by
// TOKENGUARD_DPOP_NONCE_SECRETS_FILE; not both.
func TestNonceSecretsFile(t *testing.T) {
	secret := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	p := filepath.Join(t.TempDir(), "nonce")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := "listen: 127.0.0.1:8080\nupstream: http://127.0.0.1:9000\naudience: a\nissuers:\n  - issuer: https://as.example.com\n    jwks_uri: https://as.example.com/jwks\nroutes:\n  - pattern: GET /\n"
	cfg, err := ParseConfig("t.yaml", []byte(y), envOf(map[string]string{NonceSecretsFileEnv: p}))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cfg.c.NonceSecrets); n != 1 {
		t.Errorf("%d nonce secrets from the file, want 1", n)
	}
	_, err = ParseConfig("t.yaml", []byte(y), envOf(map[string]string{NonceSecretsFileEnv: p, NonceSecretsEnv: secret}))
	if err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("both set: %v", err)
	}
}
