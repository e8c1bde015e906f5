package gateway

import (
	"encoding/base64"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tokenguard/tokenguard/middleware"
)

func dpopYAML(t *testing.T, mode, replayStore string) string {
	t.Helper()
	y := edit(t, "mode: disabled", "mode: "+mode)
	return strings.Replace(y, "replay_store: memory", "replay_store: "+replayStore, 1)
}

// fieldAt is a FieldError's place, for comparing lists of them.
type fieldAt struct {
	Line int
	Key  string
}

// parseErrorCase is a file with mistakes and where they are.
type parseErrorCase struct {
	name    string
	yaml    string
	want    []fieldAt
	wantMsg string // a substring of the first error
}

// parseErrorCases are files whose mistakes the file's own checks find
// (parseConfig), each with them all.
func parseErrorCases(t *testing.T) []parseErrorCase {
	type want = fieldAt
	return []parseErrorCase{
		{"empty file", "", []want{{1, ""}}, "empty"},
		{"not a mapping", "- a\n- b\n", []want{{1, ""}}, "mapping"},
		{"syntax error", "listen: 127.0.0.1:8080\nupstream: [\n", []want{{2, ""}}, ""},
		{"unknown top-level key", validYAML + "listne: x\n", []want{{18, "listne"}}, `unknown key (did you mean "listen"?)`},
		{"unknown issuer key", edit(t, "    jwks_uri:", "    jwks_url:"), []want{{8, "issuers[0].jwks_url"}}, `did you mean "jwks_uri"`},
		{"unknown dpop key", edit(t, "  nonce: false", "  nonces: false"), []want{{11, "dpop.nonces"}}, "unknown key"},
		{"unknown route key", edit(t, "    scopes: [orders:write]", "    scope: [orders:write]"), []want{{17, "routes[1].scope"}}, "unknown key"},
		{"duplicate key", validYAML + "listen: 127.0.0.1:8081\n", []want{{18, "listen"}}, "given twice (first on line 1)"},
		{"wrong type", edit(t, "scopes: [orders:read]", "scopes: orders:read"), []want{{15, ""}}, "cannot unmarshal"},
		{"size not a number", validYAML + "max_token_size: big\n", []want{{18, ""}}, "cannot unmarshal"},
		{"second document", validYAML + "---\nlisten: x\n", []want{{18, ""}}, "more than one YAML document"},
		{"listen missing", edit(t, "listen: 127.0.0.1:8080\n", ""), []want{{1, "listen"}}, "required"},
		{"listen without port", edit(t, "listen: 127.0.0.1:8080", "listen: localhost"), []want{{1, "listen"}}, "host:port"},
		{"listen bad port", edit(t, "listen: 127.0.0.1:8080", "listen: 127.0.0.1:http"), []want{{1, "listen"}}, "port must be a number"},
		{"metrics_listen bad", edit(t, "metrics_listen: 127.0.0.1:9090", "metrics_listen: 9090"), []want{{2, "metrics_listen"}}, "host:port"},
		{"metrics_listen same as listen", edit(t, "metrics_listen: 127.0.0.1:9090", "metrics_listen: 127.0.0.1:8080"), []want{{2, "metrics_listen"}}, "must differ"},
		{"upstream missing", edit(t, "upstream: http://127.0.0.1:9000\n", ""), []want{{1, "upstream"}}, "required"},
		{"upstream not http", edit(t, "upstream: http://127.0.0.1:9000", "upstream: ftp://127.0.0.1:9000"), []want{{3, "upstream"}}, "http:// or https://"},
		{"upstream relative", edit(t, "upstream: http://127.0.0.1:9000", "upstream: 127.0.0.1:9000"), []want{{3, "upstream"}}, ""},
		{"upstream with query", edit(t, "upstream: http://127.0.0.1:9000", "upstream: http://127.0.0.1:9000/?a=b"), []want{{3, "upstream"}}, "query"},
		{"upstream with credentials", edit(t, "upstream: http://127.0.0.1:9000", "upstream: http://u:p@127.0.0.1:9000"), []want{{3, "upstream"}}, "credentials"},
		{"public_url bad", edit(t, "public_url: http://127.0.0.1:8080", "public_url: /relative"), []want{{4, "public_url"}}, ""},
		{"audience missing", edit(t, "audience: https://api.example.com\n", ""), []want{{1, "audience"}}, "required"},
		{"issuers missing", edit(t, "issuers:\n  - issuer: https://as.example.com\n    jwks_uri: http://127.0.0.1:7000/jwks\n", ""), []want{{1, "issuers"}}, "at least one issuer"},
		{"issuers empty", edit(t, "issuers:\n  - issuer: https://as.example.com\n    jwks_uri: http://127.0.0.1:7000/jwks\n", "issuers: []\n"), []want{{6, "issuers"}}, "at least one issuer"},
		{"issuer missing", edit(t, "  - issuer: https://as.example.com\n    jwks_uri", "  - jwks_uri"), []want{{7, "issuers[0].issuer"}}, "required"},
		{"jwks_uri bad", edit(t, "jwks_uri: http://127.0.0.1:7000/jwks", "jwks_uri: http//127.0.0.1:7000/jwks"), []want{{8, "issuers[0].jwks_uri"}}, ""},
		{"introspection_endpoint bad", edit(t, "    jwks_uri: http://127.0.0.1:7000/jwks\n", "    jwks_uri: http://127.0.0.1:7000/jwks\n    introspection_endpoint: mailto:x@y\n"), []want{{9, "issuers[0].introspection_endpoint"}}, ""},
		{"dpop mode unknown", edit(t, "mode: disabled", "mode: sometimes"), []want{{10, "dpop.mode"}}, "not one of disabled, allowed, required"},
		{"route any_scopes empty set", edit(t, "    scopes: [orders:write]", "    scopes: [orders:write]\n    any_scopes: [[]]"), []want{{18, "routes[1].any_scopes[0]"}}, "empty scope set"},
		{"route any_scopes bad scope", edit(t, "    scopes: [orders:write]", "    scopes: [orders:write]\n    any_scopes: [[\"a b\"]]"), []want{{18, "routes[1].any_scopes[0][0]"}}, "not a valid scope"},
		{"route require_dpop with dpop disabled", edit(t, "    scopes: [orders:write]", "    scopes: [orders:write]\n    require_dpop: true"), []want{{18, "routes[1].require_dpop"}}, "needs dpop.mode"},
		{"route introspection_max_age without an endpoint", edit(t, "    scopes: [orders:write]", "    scopes: [orders:write]\n    introspection_max_age: 5s"), []want{{18, "routes[1].introspection_max_age"}}, "needs an issuer with introspection_endpoint"},
		{"route introspect without an endpoint", edit(t, "    scopes: [orders:write]", "    scopes: [orders:write]\n    introspect: true"), []want{{18, "routes[1].introspect"}}, "needs an issuer with introspection_endpoint"},
		{"route max_token_age bad", edit(t, "    scopes: [orders:write]", "    scopes: [orders:write]\n    max_token_age: soon"), []want{{18, "routes[1].max_token_age"}}, "not a duration"},
		{"route max_auth_age zero", edit(t, "    scopes: [orders:write]", "    scopes: [orders:write]\n    max_auth_age: 0s"), []want{{18, "routes[1].max_auth_age"}}, "more than zero"},
		{"route acr value bad", edit(t, "    scopes: [orders:write]", "    scopes: [orders:write]\n    acr_values: [\"\"]"), []want{{18, "routes[1].acr_values[0]"}}, "not a valid acr"},
		{"dpop nonce with dpop disabled", edit(t, "nonce: false", "nonce: true"), []want{{11, "dpop.nonce"}}, "nonces need dpop.mode allowed or required"},
		{"dpop redis with dpop disabled", edit(t, "replay_store: memory", "replay_store: redis://127.0.0.1:6379/0"), []want{{12, "dpop.replay_store"}}, "needs dpop.mode allowed or required"},
		{"dpop replay_store unknown", edit(t, "replay_store: memory", "replay_store: disk"), []want{{12, "dpop.replay_store"}}, "memory or a redis://, rediss://, redis+sentinel://"},
		{"dpop redis URL without host", dpopYAML(t, "allowed", "redis:///0"), []want{{12, "dpop.replay_store"}}, "no host"},
		{"dpop redis URL bad database", dpopYAML(t, "allowed", "redis://127.0.0.1:6379/orders"), []want{{12, "dpop.replay_store"}}, "database number"},
		{"dpop redis URL with fragment", dpopYAML(t, "required", "rediss://127.0.0.1:6379/0#x"), []want{{12, "dpop.replay_store"}}, "fragment"},
		{"dpop redis URL unparsable", dpopYAML(t, "allowed", "redis://[::1"), []want{{12, "dpop.replay_store"}}, "not a valid Redis URL"},
		{"leeway not a duration", validYAML + "leeway: 30\n", []want{{18, "leeway"}}, "not a duration"},
		{"leeway zero", validYAML + "leeway: 0s\n", []want{{18, "leeway"}}, "more than zero"},
		{"shutdown_timeout negative", validYAML + "shutdown_timeout: -5s\n", []want{{18, "shutdown_timeout"}}, "negative"},
		{"startup_wait bad", validYAML + "startup_wait: soon\n", []want{{18, "startup_wait"}}, "not a duration"},
		{"max_token_size negative", validYAML + "max_token_size: -1\n", []want{{18, "max_token_size"}}, "positive"},
		{"log_format unknown", validYAML + "log_format: xml\n", []want{{18, "log_format"}}, "text, json"},
		{"log_level unknown", validYAML + "log_level: loud\n", []want{{18, "log_level"}}, "debug, info"},
		{"routes missing", edit(t, "routes:\n  - pattern: \"GET /orders/\"\n    scopes: [orders:read]\n  - pattern: \"POST /orders/\"\n    scopes: [orders:write]\n", ""), []want{{1, "routes"}}, "at least one route"},
		{"pattern missing", edit(t, "  - pattern: \"POST /orders/\"\n    scopes", "  - scopes"), []want{{16, "routes[1].pattern"}}, "required"},
		{"pattern invalid", edit(t, `"POST /orders/"`, `"POST orders"`), []want{{16, "routes[1].pattern"}}, "invalid pattern"},
		{"pattern bad wildcard", edit(t, `"POST /orders/"`, `"POST /orders/{id"`), []want{{16, "routes[1].pattern"}}, "invalid pattern"},
		{"pattern duplicate", edit(t, `"POST /orders/"`, `"GET /orders/"`), []want{{16, "routes[1].pattern"}}, `duplicates routes[0].pattern on line 14`},
		{"pattern conflict", edit(t, `"GET /orders/"`, `"GET /{kind}/open"`) + "  - pattern: \"GET /orders/{id}\"\n", []want{{18, "routes[2].pattern"}}, `conflicts with "GET /{kind}/open" (routes[0].pattern on line 14)`},
		{"conflict after a route without pattern", edit(t, `  - pattern: "POST /orders/"`, `  - scopes: []
  - pattern: "GET /orders/"`), []want{{16, "routes[1].pattern"}, {17, "routes[2].pattern"}}, "required"},
		{"scope with space", edit(t, "scopes: [orders:read]", `scopes: ["orders read"]`), []want{{15, "routes[0].scopes[0]"}}, "not a valid scope"},
		{"several errors, in line order", edit(t, "mode: disabled", "mode: nope") + "leeway: x\nbogus: 1\n",
			[]want{{10, "dpop.mode"}, {18, "leeway"}, {19, "bogus"}}, "is not one of"}, // every pass runs: one run, every mistake
		{"several validation errors", edit(t, "listen: 127.0.0.1:8080", "listen: x") + "leeway: x\n",
			[]want{{1, "listen"}, {18, "leeway"}}, "host:port"},
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tt := range parseErrorCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("test.yaml", []byte(tt.yaml))
			ce, ok := errors.AsType[*ConfigError](err)
			if !ok {
				t.Fatalf("err = %v, want a *configError", err)
			}
			var got []fieldAt
			for _, f := range ce.Fields {
				got = append(got, fieldAt{f.Line, f.Key})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s\nerror: %v", diff, err)
			}
			if !strings.Contains(ce.Fields[0].Msg, tt.wantMsg) {
				t.Errorf("message %q does not contain %q", ce.Fields[0].Msg, tt.wantMsg)
			}
			if strings.Contains(err.Error(), "main.") {
				t.Errorf("error mentions a Go type: %v", err)
			}
			if !strings.Contains(err.Error(), "test.yaml") {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
}

func TestLoadConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokenguard.yaml")
	if err := os.WriteFile(path, []byte(validYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.File != path {
		t.Errorf("File = %q, want %q", c.File, path)
	}
	if _, err := loadConfig(filepath.Join(dir, "missing.yaml"), noEnv); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want os.ErrNotExist", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte(strings.Repeat("#", maxConfigSize+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(big, noEnv); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: err = %v", err)
	}
}

func TestConfigSecretNotInErrors(t *testing.T) {
	y := edit(t, "    jwks_uri: http://127.0.0.1:7000/jwks\n", "    jwks_uri: http://127.0.0.1:7000/jwks\n    client_secret: hunter2-secret\n") + "bogus: 1\n"
	_, err := parseConfig("test.yaml", []byte(y))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err = %v", err)
	}
}

// The example in DESIGN.md is the public contract: every key in it must
// parse. (middleware.New may still refuse settings it does not implement
// yet, such as introspection; that is TestCLIGuardErrorsNameTheLine.)
func TestDesignExample(t *testing.T) {
	c, err := loadConfig(filepath.Join("testdata", "design-example.yaml"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := []issuerConfig{{
		Issuer:                "https://as.example.com",
		JWKSURI:               "http://127.0.0.1:7000/jwks",
		IntrospectionEndpoint: "http://127.0.0.1:7000/introspect",
		ClientID:              "rs",
		ClientSecret:          "s3cret",
	}}
	if diff := cmp.Diff(want, c.Issuers); diff != "" {
		t.Errorf("issuers (-want +got):\n%s", diff)
	}
	if c.DPoPMode != "allowed" || c.DPoPNonce || c.ReplayStore != "" || len(c.Routes) != 2 || c.PublicURL.String() != "http://127.0.0.1:8080" {
		t.Errorf("dpop %q nonce %v replay store %q, routes %v, public_url %v", c.DPoPMode, c.DPoPNonce, c.ReplayStore, c.Routes, c.PublicURL)
	}
}

func TestParseConfigDPoP(t *testing.T) {
	y := strings.Replace(dpopYAML(t, "required", "rediss://:pw@redis.internal:6380/2"), "nonce: false", "nonce: true", 1)
	c, err := parseConfig("dpop.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if c.DPoPMode != "required" || !c.DPoPNonce || c.ReplayStore != "rediss://:pw@redis.internal:6380/2" {
		t.Errorf("mode %q, nonce %v, replay store %q", c.DPoPMode, c.DPoPNonce, c.ReplayStore)
	}
	for field, want := range map[string]keyPos{
		"DPoP.Nonce":           {Key: "dpop.nonce", Line: 11},
		"DPoP.ReplayStore":     {Key: "dpop.replay_store", Line: 12},
		"PublicURL":            {Key: "public_url", Line: 4},
		"DPoP.NonceSecrets":    {Key: NonceSecretsEnv},
		"DPoP.NonceSecrets[1]": {Key: NonceSecretsEnv},
	} {
		if got, ok := c.keyFor(field); !ok || got != want {
			t.Errorf("keyFor(%s) = %+v, %v; want %+v", field, got, ok, want)
		}
	}

	// "memory" and an absent key are both the in-memory store.
	for _, y := range []string{dpopYAML(t, "allowed", "memory"), edit(t, "  replay_store: memory\n", "")} {
		c, err := parseConfig("dpop.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		if c.ReplayStore != "" {
			t.Errorf("ReplayStore = %q, want the in-memory store", c.ReplayStore)
		}
	}
}

// A Redis URL may carry a password: no message may quote it.
func TestParseConfigRedisPasswordNotInErrors(t *testing.T) {
	for _, rs := range []string{
		"redis://:hunter2-secret@[::1/0",
		"redis://:hunter2-secret@127.0.0.1:6379/db",
		"redis://:hunter2-secret@127.0.0.1:6379/0#frag",
		"redis://:hunter2-secret@/0",
	} {
		_, err := parseConfig("test.yaml", []byte(dpopYAML(t, "allowed", rs)))
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: err = %v", rs, err)
		}
	}
}

func TestParseNonceSecrets(t *testing.T) {
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i*37 + 250)
	}
	raw[0], raw[1], raw[2] = 0xfb, 0xff, 0xbf // "+/+/": the characters that differ between the alphabets
	raw2 := append([]byte("another secret, longer than that"), 0xfb, 0xff)
	std, url := base64.StdEncoding.EncodeToString(raw), base64.URLEncoding.EncodeToString(raw)
	if !strings.HasPrefix(std, "+/+/") || !strings.HasPrefix(url, "-_-_") || !strings.HasSuffix(std, "=") {
		t.Fatalf("test vector does not exercise both alphabets and padding: %s %s", std, url)
	}
	good := []struct {
		name, v string
		want    [][]byte
	}{
		{"standard, padded", std, [][]byte{raw}},
		{"standard, unpadded", strings.TrimRight(std, "="), [][]byte{raw}},
		{"URL-safe, padded", url, [][]byte{raw}},
		{"URL-safe, unpadded", strings.TrimRight(url, "="), [][]byte{raw}},
		{"two, with spaces", std + " , " + base64.RawURLEncoding.EncodeToString(raw2), [][]byte{raw, raw2}},
	}
	for _, tt := range good {
		got, err := parseNonceSecrets(tt.v)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}

	short := base64.StdEncoding.EncodeToString([]byte("sixteen byte key"))
	bad := []struct{ name, v, wantMsg string }{
		{"too short", short, "secret 1 of 1 decodes to 16 bytes; at least 32"},
		{"second too short", std + "," + short, "secret 2 of 2 decodes to 16 bytes"},
		{"empty entry", std + ",," + std, "secret 2 of 3 is empty"},
		{"trailing comma", std + ",", "secret 2 of 2 is empty"},
		{"not base64", "this is not base64 at all, is it? no!!!!!!!!!!!!!!!!", "not valid base64"},
		{"mixed alphabets", strings.Replace(std, "+", "-", 1), "not valid base64"}, // "-/+/..."
		{"too much padding", strings.TrimRight(std, "=") + "===", "not valid base64"},
		{"hex is not base64", "0x" + strings.Repeat("ab", 32), "not valid base64"},
	}
	for _, tt := range bad {
		_, err := parseNonceSecrets(tt.v)
		if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.wantMsg)
			continue
		}
		for _, part := range strings.Split(tt.v, ",") {
			if len(part) > 8 && strings.Contains(err.Error(), strings.TrimSpace(part)[:8]) {
				t.Errorf("%s: the error shows the secret: %v", tt.name, err)
			}
		}
	}
}

func TestApplyEnv(t *testing.T) {
	secret := base64.StdEncoding.EncodeToString(make([]byte, 48))
	env := func(v string) func(string) string {
		return func(name string) string {
			if name == NonceSecretsEnv {
				return v
			}
			return ""
		}
	}
	c, err := parseConfig("t.yaml", []byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.applyEnv(env("")); err != nil || c.NonceSecrets != nil {
		t.Errorf("unset: %v, %d secrets", err, len(c.NonceSecrets))
	}
	if err := c.applyEnv(env(secret)); err != nil || len(c.NonceSecrets) != 1 || len(c.NonceSecrets[0]) != 48 {
		t.Errorf("set: %v, %d secrets", err, len(c.NonceSecrets))
	}
	err = c.applyEnv(env("c2hvcnQ="))
	if err == nil || !strings.Contains(err.Error(), NonceSecretsEnv) || strings.Contains(err.Error(), "c2hvcnQ") {
		t.Errorf("bad value: err = %v; want it to name %s and not show the value", err, NonceSecretsEnv)
	}
}

// Every DPoP setting reaches middleware.Config.
func TestGuardConfigDPoP(t *testing.T) {
	y := strings.Replace(dpopYAML(t, "required", "memory"), "nonce: false", "nonce: true", 1)
	c, err := parseConfig("t.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	c.NonceSecrets = [][]byte{[]byte(strings.Repeat("k", 32))}
	mc := c.guardConfig(slog.New(slog.DiscardHandler), nil)
	if mc.PublicURL != "http://127.0.0.1:8080" {
		t.Errorf("PublicURL = %q", mc.PublicURL)
	}
	if mc.DPoP.Mode != middleware.DPoPRequired || !mc.DPoP.Nonce || mc.DPoP.ReplayStore != nil {
		t.Errorf("DPoP = %+v", mc.DPoP)
	}
	if diff := cmp.Diff(c.NonceSecrets, mc.DPoP.NonceSecrets); diff != "" {
		t.Errorf("NonceSecrets (-want +got):\n%s", diff)
	}
	c2, _ := parseConfig("t.yaml", []byte(edit(t, "public_url: http://127.0.0.1:8080\n", "")))
	if mc := c2.guardConfig(slog.New(slog.DiscardHandler), nil); mc.PublicURL != "" || mc.DPoP.Mode != middleware.DPoPDisabled || mc.DPoP.Nonce {
		t.Errorf("defaults: PublicURL %q, DPoP %+v", mc.PublicURL, mc.DPoP)
	}
}
