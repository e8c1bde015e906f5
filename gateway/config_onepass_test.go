package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// onePassYAML has mistakes of every kind: an unknown key (line 4), a
// plain-http issuer only the guard refuses (6), a client key file only
// the offline checks read (11), a bad value (12) and a bad duration (15).
const onePassYAML = `listen: 127.0.0.1:8080
upstream: http://127.0.0.1:9000
audience: https://api.example.com
bogus: 1
issuers:
  - issuer: http://as.example.com
    jwks_uri: https://as.example.com/jwks
    introspection_endpoint: https://as.example.com/introspect
    client_id: rs
    client_auth_method: private_key_jwt
    client_key_file: ${KEY_DIR}/missing.pem
log_level: loud
routes:
  - pattern: GET /orders/
    max_token_age: soon
`

// TestLoadConfigReportsEveryMistakeInOnePass: LoadConfig and ParseConfig
// report the file's mistakes, the environment's and those the offline
// checks (Check) find, together: each once, naming its key and line, in
// line order. Before, an unknown key hid the guard's and the key files'
// mistakes until it was fixed.
func TestLoadConfigReportsEveryMistakeInOnePass(t *testing.T) {
	dir := t.TempDir()
	env := envOf(map[string]string{"KEY_DIR": dir, NonceSecretsEnv: "not base64!"})
	path := filepath.Join(dir, "tokenguard.yaml")
	if err := os.WriteFile(path, []byte(onePassYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		fieldAt
		msg string
	}{
		{fieldAt{0, ""}, NonceSecretsEnv + ": secret 1 of 1 is not valid base64"},
		{fieldAt{4, "bogus"}, "unknown key"},
		{fieldAt{6, "issuers[0].issuer"}, "must use https"},
		{fieldAt{11, "issuers[0].client_key_file"}, "${KEY_DIR}/missing.pem: no such file"}, // the path as written
		{fieldAt{12, "log_level"}, `"loud" is not one of debug, info, warn, error`},
		{fieldAt{15, "routes[0].max_token_age"}, `"soon" is not a duration`},
	}
	for _, load := range []struct {
		name string
		fn   func() (*Config, error)
	}{
		{"LoadConfig", func() (*Config, error) { return LoadConfig(path, env) }},
		{"ParseConfig", func() (*Config, error) { return ParseConfig(path, []byte(onePassYAML), env) }},
	} {
		t.Run(load.name, func(t *testing.T) {
			cfg, err := load.fn()
			if cfg != nil {
				t.Fatal("a Config from a file with mistakes")
			}
			ce, ok := errors.AsType[*ConfigError](err)
			if !ok {
				t.Fatalf("err = %v, want a *ConfigError", err)
			}
			var got, wantAt []fieldAt
			for _, f := range ce.Fields {
				got = append(got, fieldAt{f.Line, f.Key})
			}
			for _, w := range want {
				wantAt = append(wantAt, w.fieldAt)
			}
			if diff := cmp.Diff(wantAt, got); diff != "" {
				t.Fatalf("mistakes (-want +got):\n%s\nerror: %v", diff, err)
			}
			// The usual format: the file, then one "line N: key: message"
			// each.
			lines := strings.Split(err.Error(), "\n\t")
			if lines[0] != "tokenguard: config "+path+":" {
				t.Errorf("first line %q", lines[0])
			}
			for i, w := range want {
				if f := ce.Fields[i]; !strings.Contains(f.Msg, w.msg) {
					t.Errorf("%s: message %q, want it to contain %q", f.Key, f.Msg, w.msg)
				}
				if i+1 >= len(lines) || lines[i+1] != ce.Fields[i].Error() {
					t.Errorf("line %d of the error is not %q:\n%v", i+1, ce.Fields[i].Error(), err)
				}
			}
			if strings.Contains(err.Error(), filepath.Join(dir, "missing.pem")) {
				t.Errorf("the error shows a value from the environment:\n%v", err)
			}
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the key file's error is not reachable with errors.Is: %v", err)
			}
		})
	}
}

// TestLoadConfigAddsNothingToTheFilesMistakes: LoadConfig and ParseConfig
// run the offline checks on a file with mistakes too, as far as they can;
// for a mistake the file's own checks find, they must neither report it
// twice (bff.New checks some of the bff block again, and names the block)
// nor fail on what the mistake left out (the token handler without a
// public_url), and they do report the mistakes only they find.
func TestLoadConfigAddsNothingToTheFilesMistakes(t *testing.T) {
	// Mistakes only the guard finds, beside the case's own.
	alsoOffline := map[string][]fieldAt{
		"introspection_endpoint bad": {{7, "issuers[0].client_id"}}, // introspection needs client_id
	}
	cases := parseErrorCases(t)
	is := "https://as.example.com"
	bffBlock := "bff:\n  issuer: " + is + "\n  client_id: spa\n  client_secret: s\n  scopes: [openid]\n"
	withBFF := func(extra string) string { return edit(t, "public_url: http://127.0.0.1:8080\n", extra) + bffBlock }
	cases = append(cases,
		parseErrorCase{name: "bff without public_url", yaml: withBFF(""),
			want: []fieldAt{{1, "public_url"}}},
		parseErrorCase{name: "bff with a bad public_url", yaml: withBFF("public_url: ftp://x\n"),
			want: []fieldAt{{4, "public_url"}, {4, "public_url"}}},
		parseErrorCase{name: "bff scopes without openid", yaml: strings.Replace(withBFF("public_url: https://api.example.com\n"), "[openid]", "[orders:read]", 1),
			want: []fieldAt{{22, "bff.scopes"}}},
		parseErrorCase{name: "bff par unknown", yaml: withBFF("public_url: https://api.example.com\n") + "  par: sometimes\n",
			want: []fieldAt{{23, "bff.par"}}},
		parseErrorCase{name: "bff mistake and the guard's", yaml: strings.ReplaceAll(withBFF("public_url: https://api.example.com\n"), "https://as.", "http://as.") + "  par: sometimes\n",
			want: []fieldAt{{7, "issuers[0].issuer"}, {23, "bff.par"}}},
	)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("test.yaml", []byte(tt.yaml), noEnv)
			ce, ok := errors.AsType[*ConfigError](err)
			if !ok {
				t.Fatalf("err = %v, want a *ConfigError", err)
			}
			var got []fieldAt
			for _, f := range ce.Fields {
				got = append(got, fieldAt{f.Line, f.Key})
			}
			want := append(append([]fieldAt(nil), alsoOffline[tt.name]...), tt.want...)
			if diff := cmp.Diff(sortedFields(want), got); diff != "" {
				t.Errorf("errors (-want +got):\n%s\nerror: %v", diff, err)
			}
		})
	}
}

// sortedFields is fs in line order, as ConfigError keeps them.
func sortedFields(fs []fieldAt) []fieldAt {
	out := append([]fieldAt(nil), fs...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Line < out[j-1].Line; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// TestCheckAfterLoad: Check runs the offline checks again on a loaded
// Config, for files that changed since.
func TestCheckAfterLoad(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.pem")
	writeTestKey(t, keyFile)
	y := strings.ReplaceAll(onePassYAML, "${KEY_DIR}/missing.pem", keyFile)
	y = strings.NewReplacer("bogus: 1\n", "", "http://as.", "https://as.", "log_level: loud\n", "", "    max_token_age: soon\n", "").Replace(y)
	cfg, err := ParseConfig("t.yaml", []byte(y), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Check(); err != nil {
		t.Fatalf("Check of a valid Config: %v", err)
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), "line 10: issuers[0].client_key_file: ") {
		t.Errorf("Check after the key file went: %v", err)
	}
}

// writeTestKey writes a new P-256 key to path as PKCS#8 PEM.
func writeTestKey(t testing.TB, path string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// FuzzParseConfig: whatever the file, ParseConfig (which runs the offline
// checks on a partial configuration too) does not panic, its error is a
// *ConfigError naming the file, and a Config it returns passes Check.
func FuzzParseConfig(f *testing.F) {
	f.Add(validYAML)                               // valid
	f.Add(onePassYAML)                             // every kind of mistake
	f.Add(validYAML + "bff:\n  issuer: x\n")       // a token handler with mistakes
	f.Add(validYAML + "forward_auth: {path: x}\n") // forward auth with a bad path
	f.Add(validYAML + "cors: {allowed_origins: [x]}\n")
	f.Add(strings.Replace(validYAML, "public_url: http://127.0.0.1:8080\n", "", 1) + "bff:\n  issuer: https://as.example.com\n  client_id: spa\n  client_secret: s\n  scopes: [openid]\n") // bff without public_url
	f.Add(strings.Replace(validYAML, "  - pattern: \"POST /orders/\"", "  - pattern: \"POST orders\"", 1))                                                                                 // an invalid pattern
	f.Add(strings.Replace(validYAML, "mode: disabled", "mode: on", 1) + "dpop:\n  nonce: true\n")                                                                                          // a duplicate block
	f.Fuzz(func(t *testing.T, y string) {
		cfg, err := ParseConfig("fuzz.yaml", []byte(y), noEnv)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "tokenguard: config fuzz.yaml:") {
				t.Fatalf("error without the file: %v", err)
			}
			return
		}
		if err := cfg.Check(); err != nil {
			t.Fatalf("ParseConfig accepted what Check refuses: %v\n%s", err, y)
		}
	})
}
