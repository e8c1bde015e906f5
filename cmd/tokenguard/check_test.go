package main

import (
	"context"
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenguard/tokenguard/internal/testkit"
)

var update = flag.Bool("update", false, "rewrite testdata/check/*.golden")

// runCheck runs "tokenguard check" in process with the environment env.
func runCheck(t testing.TB, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut lockedBuffer
	c := &cli{stdout: &out, stderr: &errOut, getenv: envOf(env)}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	code = c.run(ctx, append([]string{"check"}, args...))
	return code, out.String(), errOut.String()
}

// Secret values given to the examples; none may ever be printed.
var checkSecrets = map[string]string{
	"REDIS_PASSWORD":                "redis-pw-NEVER-PRINTED",
	"INTROSPECTION_CLIENT_SECRET":   "introspection-secret-NEVER-PRINTED",
	"TOKENGUARD_DPOP_NONCE_SECRETS": base64.StdEncoding.EncodeToString([]byte("nonce-secret-NEVER-PRINTED-32-bytes!")) + "," + base64.StdEncoding.EncodeToString([]byte("second-nonce-secret-NEVER-PRINTED-32")),
}

// exampleEnv is the environment an examples/ file is checked with: the
// secrets it names (from checkSecrets), and TLS_DIR with a fresh
// self-signed pair in it. examples_test.go checks that each file's
// header names all it needs, and that its documented check command works
// as written. The directory is returned too; golden output shows it as
// $DIR.
func exampleEnv(t *testing.T, secrets ...string) (env map[string]string, dir string) {
	t.Helper()
	dir = t.TempDir()
	testkit.NewCert(t, 1).Write(t, filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem"))
	env = map[string]string{"TLS_DIR": dir}
	for _, name := range secrets {
		env[name] = checkSecrets[name]
	}
	return env, dir
}

// TestCheckGolden runs check on the design example and every example
// configuration (so they never rot) and compares the effective
// configuration with testdata/check/*.golden (go test -run CheckGolden
// -update rewrites them).
func TestCheckGolden(t *testing.T) {
	tests := []struct {
		name, file string
		example    bool
		secrets    []string // names in checkSecrets
	}{
		{"design-example", filepath.Join("..", "..", "gateway", "testdata", "design-example.yaml"), false, nil},
		{"single", "single.yaml", true, nil},
		{"replicas-redis", "replicas-redis.yaml", true, []string{"INTROSPECTION_CLIENT_SECRET", "REDIS_PASSWORD", "TOKENGUARD_DPOP_NONCE_SECRETS"}},
		{"mcp", "mcp.yaml", true, nil},
	}
	configs, _ := filepath.Glob(filepath.Join("..", "..", "examples", "*.yaml"))
	if len(configs) != 3 {
		t.Errorf("examples/ has %d configurations; add new ones to this test", len(configs))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, dir, env := tt.file, "", map[string]string(nil)
			if tt.example {
				path = filepath.Join("..", "..", "examples", tt.file)
				env, dir = exampleEnv(t, tt.secrets...)
			}
			code, stdout, stderr := runCheck(t, env, "-config", path)
			if code != exitOK || stderr != "" {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr)
			}
			got := stdout
			if dir != "" {
				got = strings.ReplaceAll(got, dir, "$DIR")
			}
			golden := filepath.Join("testdata", "check", tt.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("check output differs from %s:\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
			assertNoSecrets(t, stdout+stderr)

			// The output is itself a configuration that check accepts.
			again := filepath.Join(t.TempDir(), "effective.yaml")
			if err := os.WriteFile(again, []byte(stdout), 0o600); err != nil {
				t.Fatal(err)
			}
			if code, _, stderr := runCheck(t, env, "-config", again); code != exitOK {
				t.Errorf("check rejects its own output: %s", stderr)
			}
		})
	}
}

func assertNoSecrets(t *testing.T, out string) {
	t.Helper()
	for name, v := range checkSecrets {
		for part := range strings.SplitSeq(v, ",") {
			if strings.Contains(out, part) {
				t.Errorf("output contains the value of %s", name)
			}
		}
	}
	for _, s := range []string{"NEVER-PRINTED", "s3cret", "hunter2"} {
		if strings.Contains(out, s) {
			t.Errorf("output contains %q", s)
		}
	}
}

func TestCheckRedactsSecretsWrittenInTheFile(t *testing.T) {
	yml := edit(t, "    jwks_uri: http://127.0.0.1:7000/jwks\n",
		"    jwks_uri: http://127.0.0.1:7000/jwks\n    introspection_endpoint: http://127.0.0.1:7000/introspect\n    client_id: rs\n    client_secret: hunter2\n")
	yml = edit(t, "  mode: disabled\n  nonce: false\n  replay_store: memory\n", "  mode: allowed\n  nonce: true\n  replay_store: redis://admin:s3cret@127.0.0.1:6379/0\n")
	yml = strings.Replace(yml, "    jwks_uri: http://127.0.0.1:7000/jwks\n",
		"    jwks_uri: http://127.0.0.1:7000/jwks\n    introspection_endpoint: http://127.0.0.1:7000/introspect\n    client_id: rs\n    client_secret: hunter2\n", 1)
	path := filepath.Join(t.TempDir(), "t.yaml")
	os.WriteFile(path, []byte(yml), 0o600)
	code, stdout, stderr := runCheck(t, checkSecrets, "-config", path)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	assertNoSecrets(t, stdout)
	for _, want := range []string{"client_secret: '[redacted]'", "replay_store: redis://REDACTED@127.0.0.1:6379/0", "TOKENGUARD_DPOP_NONCE_SECRETS: 2 secret(s) set (not shown)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestCheckErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o600)
		return p
	}
	keyFile := write("k.yaml", edit(t, "    jwks_uri: http://127.0.0.1:7000/jwks\n",
		"    jwks_uri: http://127.0.0.1:7000/jwks\n    introspection_endpoint: http://127.0.0.1:7000/introspect\n    client_id: rs\n    client_auth_method: private_key_jwt\n    client_key_file: "+filepath.Join(dir, "missing.pem")+"\n"))
	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		err  string
	}{
		{"no -config", nil, nil, exitUsage, "-config FILE is required"},
		{"extra argument", []string{"-config", "x", "y"}, nil, exitUsage, `unexpected argument "y"`},
		{"bad flag", []string{"-nope"}, nil, exitUsage, "flag provided but not defined"},
		{"missing file", []string{"-config", filepath.Join(dir, "none.yaml")}, nil, exitError, "no such file"},
		{"invalid, with lines", []string{"-config", write("bad.yaml", validYAML+"leeway: soon\nupstream_timeout: -1s\n")}, nil, exitError,
			"line 18: leeway: \"soon\" is not a duration (write it like 30s, 5m or 1h30m)\n\tline 19: upstream_timeout: must not be negative"},
		{"unset variable", []string{"-config", write("env.yaml", validYAML+"realm: ${REALM}\n")}, nil, exitError, "line 18: realm: environment variable REALM is not set"},
		{"client key file read", []string{"-config", keyFile}, nil, exitError, "line 12: issuers[0].client_key_file:"},
		// middleware.New's own rules apply, with lines: a plain http
		// issuer beyond loopback.
		{"guard validation", []string{"-config", write("http.yaml", strings.Replace(validYAML, "issuer: https://as.example.com", "issuer: http://as.example.com", 1))}, nil, exitError,
			"line 7: issuers[0].issuer: must use https"},
		{"bad nonce secrets", []string{"-config", write("ok.yaml", validYAML)}, map[string]string{"TOKENGUARD_DPOP_NONCE_SECRETS": "short"}, exitError, "TOKENGUARD_DPOP_NONCE_SECRETS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCheck(t, tt.env, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.err) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.err)
			}
			if stdout != "" {
				t.Errorf("stdout on failure: %q", stdout)
			}
		})
	}
}

// TestCheckShowsEnvValuesAsWritten: a value from the environment is shown
// as written, never expanded, even under another key through a YAML alias;
// literal secrets mixed with references are still redacted.
func TestCheckShowsEnvValuesAsWritten(t *testing.T) {
	yml := strings.Replace(validYAML, "upstream: http://127.0.0.1:9000", "upstream: &up ${UPSTREAM_URL}", 1)
	yml = strings.Replace(yml, "public_url: http://127.0.0.1:8080", "public_url: *up", 1)
	yml = strings.Replace(yml, "  mode: disabled\n  nonce: false\n  replay_store: memory\n", "  mode: allowed\n  replay_store: redis://:hunter2@${REDIS_HOST}:6379/0\n", 1)
	yml = strings.Replace(yml, "    jwks_uri: http://127.0.0.1:7000/jwks\n",
		"    jwks_uri: http://127.0.0.1:7000/jwks\n    introspection_endpoint: http://127.0.0.1:7000/introspect\n    client_id: rs\n    client_secret: s3cret-${SUFFIX}\n", 1)
	path := filepath.Join(t.TempDir(), "t.yaml")
	os.WriteFile(path, []byte(yml), 0o600)
	env := map[string]string{"UPSTREAM_URL": "https://10.9.8.7:9000", "REDIS_HOST": "10.1.1.1", "SUFFIX": "tail-NEVER-PRINTED"}
	code, stdout, stderr := runCheck(t, env, "-config", path)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	assertNoSecrets(t, stdout)
	for _, v := range env {
		if strings.Contains(stdout, v) {
			t.Errorf("output contains the environment value %q", v)
		}
	}
	for _, want := range []string{
		`upstream: "${UPSTREAM_URL}" # from the environment`,
		`public_url: "${UPSTREAM_URL}" # from the environment`,
		`replay_store: "redis://REDACTED@${REDIS_HOST}:6379/0" # from the environment`,
		`client_secret: "[redacted]" # from the environment`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %s:\n%s", want, stdout)
		}
	}
}

// TestEnvValuesNeverPrinted covers the ways a value from the environment
// could still reach check's output or an error: quoted (%q) in a message,
// an alias into a non-string key, a mapping shared by an alias or merge
// key, and a value nested in a list of lists.
func TestEnvValuesNeverPrinted(t *testing.T) {
	const secret = "SECRETPART"
	issuers := "issuers:\n  - issuer: https://as.example.com\n    jwks_uri: http://127.0.0.1:7000/jwks\n"
	tests := []struct {
		name   string
		edit   func(string) string
		env    string // the value of $V
		wantOK bool
	}{
		{"quoted in an error", func(y string) string {
			return strings.Replace(y, "upstream: http://127.0.0.1:9000", "upstream: ${V}", 1)
		}, `http://x"` + secret + ` y`, false},
		{"alias into a number", func(y string) string {
			return y + "realm: &s ${V}\nmax_token_size: *s\n"
		}, secret, false},
		{"shared mapping (merge key)", func(y string) string {
			return strings.Replace(y, issuers, "issuers:\n  - &is\n    issuer: https://as.example.com\n    jwks_uri: \"http://127.0.0.1:7000/jwks?k=${V}\"\n  - <<: *is\n    issuer: https://other.example.com\n", 1)
		}, secret, true},
		{"list of lists", func(y string) string {
			return strings.Replace(y, "    scopes: [orders:read]", "    any_scopes: [[admin], [a, \"orders:${V}\"]]", 1)
		}, secret, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.yaml")
			if err := os.WriteFile(path, []byte(tt.edit(validYAML)), 0o600); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runCheck(t, map[string]string{"V": tt.env}, "-config", path)
			if ok := code == exitOK; ok != tt.wantOK {
				t.Fatalf("exit %d, want ok=%v\n%s%s", code, tt.wantOK, stdout, stderr)
			}
			if strings.Contains(stdout+stderr, secret) {
				t.Errorf("the value from the environment was printed:\n%s%s", stdout, stderr)
			}
			if tt.wantOK {
				// The output is a configuration check accepts again.
				again := filepath.Join(t.TempDir(), "again.yaml")
				os.WriteFile(again, []byte(stdout), 0o600)
				if code, _, stderr := runCheck(t, map[string]string{"V": tt.env}, "-config", again); code != exitOK {
					t.Errorf("output does not check again: %s\n%s", stderr, stdout)
				}
			}
		})
	}
}

// TestCheckBFF: check shows the bff block with its defaults, the values
// from the environment as written, and never a secret, including the
// session key written literally in the file.
func TestCheckBFF(t *testing.T) {
	const literalKey = "c2Vzc2lvbi1rZXktbGl0ZXJhbC0zMi1ieXRlcyEhISE="
	yml := validYAML + `bff:
  issuer: https://as.example.com
  client_id: spa
  client_secret: ${BFF_SECRET}
  scopes: [openid, offline_access]
  session_store: redis://:${REDIS_PW}@127.0.0.1:6379/0
  session_key: ${BFF_KEY}
  previous_session_key: ` + literalKey + "\n"
	path := filepath.Join(t.TempDir(), "t.yaml")
	os.WriteFile(path, []byte(yml), 0o600)
	env := map[string]string{"BFF_SECRET": "bff-NEVER-PRINTED", "REDIS_PW": "redis-NEVER-PRINTED", "BFF_KEY": "bmV2ZXItcHJpbnRlZC1zZXNzaW9uLWtleS0zMmJ5dGU="}
	code, stdout, stderr := runCheck(t, env, "-config", path)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, v := range append([]string{literalKey}, env["BFF_SECRET"], env["REDIS_PW"], env["BFF_KEY"]) {
		if strings.Contains(stdout, v) {
			t.Errorf("output contains the secret %q", v)
		}
	}
	for _, want := range []string{
		`client_secret: "${BFF_SECRET}" # from the environment`,
		`session_key: "${BFF_KEY}" # from the environment`,
		`previous_session_key: '[redacted]'`,
		"path: /bff",
		"session_idle_timeout: 8h0m0s",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %s:\n%s", want, stdout)
		}
	}
}
