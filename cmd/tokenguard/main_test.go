package main

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/gateway"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

func TestCLIUsage(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(cfgFile, []byte("listen: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"no arguments", nil, exitUsage, "", "Usage:"},
		{"unknown command", []string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{"-h", []string{"-h"}, exitOK, "tokenguard -config FILE", ""},
		{"help", []string{"help"}, exitOK, "tokenguard demo", ""},
		{"serve without -config", []string{"serve"}, exitUsage, "", "-config FILE is required"},
		{"serve with extra argument", []string{"serve", "-config", cfgFile, "extra"}, exitUsage, "", `unexpected argument "extra"`},
		{"unknown flag", []string{"-bogus"}, exitUsage, "", "flag provided but not defined"},
		{"serve -h", []string{"serve", "-h"}, exitOK, "", "-config file"},
		{"missing config file", []string{"-config", filepath.Join(t.TempDir(), "nope.yaml")}, exitError, "", "no such file"},
		{"bad config file", []string{"serve", "-config", cfgFile}, exitError, "", "line 1: listen:"},
		{"demo -h", []string{"demo", "-h"}, exitOK, "", "DEVELOPMENT ONLY"},
		{"demo with extra argument", []string{"demo", "now"}, exitUsage, "", `unexpected argument "now"`},
		{"demo beyond loopback", []string{"demo", "-listen", "0.0.0.0:0"}, exitError, "", "loopback only"},
		{"help lists keygen and proof", []string{"help"}, exitOK, "tokenguard proof -method M -url URL -key FILE", ""},
		{"keygen -h", []string{"keygen", "-h"}, exitOK, "", "PKCS#8"},
		{"keygen unknown alg", []string{"keygen", "-alg", "HS256"}, exitUsage, "", `-alg "HS256": want one of ES256, ES384, EdDSA, RS256, PS256`},
		{"keygen with extra argument", []string{"keygen", "key.pem"}, exitUsage, "", `unexpected argument "key.pem"`},
		{"keygen empty -out", []string{"keygen", "-out", ""}, exitUsage, "", "-out"},
		{"proof -h", []string{"proof", "-h"}, exitOK, "", "DPoP: $(tokenguard proof"},
		{"proof without flags", []string{"proof"}, exitUsage, "", "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr lockedBuffer
			c := &cli{stdout: &stdout, stderr: &stderr, getenv: envOf(nil)}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if code := c.run(ctx, tt.args); code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstderr: %s", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

// TOKENGUARD_CONFIG is the default for -config in serve and check; a
// -config flag wins over it, and with neither the usage error names both.
func TestConfigFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", validYAML)
	bad := write("bad.yaml", "listen: x\n")
	missing := filepath.Join(dir, "missing.yaml")
	tests := []struct {
		name       string
		env        string // TOKENGUARD_CONFIG
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"check reads the variable", good, []string{"check"}, exitOK, "# tokenguard check: " + good + " is valid", ""},
		{"check: the flag wins", missing, []string{"check", "-config", good}, exitOK, "# tokenguard check: " + good + " is valid", ""},
		{"check: the variable's file is invalid", bad, []string{"check"}, exitError, "", "line 1: listen:"},
		{"check: neither", "", []string{"check"}, exitUsage, "", "-config FILE is required (or set TOKENGUARD_CONFIG to the file's path)"},
		{"check: an empty flag is not the variable", good, []string{"check", "-config", ""}, exitUsage, "", "-config FILE is required"},
		{"serve reads the variable", bad, []string{"serve"}, exitError, "", "line 1: listen:"},
		{"serve: the flag wins", missing, []string{"serve", "-config", bad}, exitError, "", "line 1: listen:"},
		{"serve: neither", "", []string{"serve"}, exitUsage, "", "-config FILE is required (or set TOKENGUARD_CONFIG"},
		{"serve -h shows the variable", good, []string{"serve", "-h"}, exitOK, "", "$TOKENGUARD_CONFIG"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr lockedBuffer
			c := &cli{stdout: &stdout, stderr: &stderr, getenv: envOf(map[string]string{"TOKENGUARD_CONFIG": tt.env})}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if code := c.run(ctx, tt.args); code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstderr: %s", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.wantStderr)
			}
			if strings.Contains(stderr.String(), missing) {
				t.Errorf("the variable's file was read although -config was given: %s", stderr.String())
			}
		})
	}
}

// middleware.New has the last word on the guard's settings; its errors come
// back naming the YAML key and line, and settings it does not support yet
// are refused, never dropped.
func TestCLIGuardErrorsNameTheLine(t *testing.T) {
	is := testkit.StartIssuer(t)
	base := testkit.GatewayYAML(is.URL(), is.URL()+"/jwks", "http://127.0.0.1:9", "")
	tests := []struct {
		name       string
		yaml       string
		wantStderr []string
	}{
		{
			"plain http issuer beyond loopback",
			strings.Replace(base, "issuer: "+is.URL(), "issuer: http://as.example.com", 1),
			[]string{"line 6: issuers[0].issuer:", "insecure_allow_http"},
		},
		{
			"client secret without a client id",
			strings.Replace(base, "/jwks\n", "/jwks\n    client_secret: s3cret-value\n", 1),
			[]string{"line 8: issuers[0].client_secret:", "set only with client_id"},
		},
		{
			"public_url plain http beyond loopback",
			base + "public_url: http://api.example.com\ndpop:\n  mode: allowed\n",
			[]string{"line 17: public_url:", "insecure_allow_http"},
		},
		{
			"Redis URL the client refuses (and its password is not shown)",
			base + "dpop:\n  mode: allowed\n  replay_store: redis://:s3cret-value@127.0.0.1:6379/0?pool_size=lots\n",
			[]string{"line 19: dpop.replay_store:", "pool_size"},
		},
		{
			"leeway beyond what the guard accepts",
			base + "leeway: 10m\n",
			[]string{"line 17: leeway:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tokenguard.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			var stderr lockedBuffer
			c := &cli{stdout: &stderr, stderr: &stderr}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			start := time.Now()
			if code := c.run(ctx, []string{"-config", path}); code != exitError {
				t.Errorf("exit code %d, want %d", code, exitError)
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if strings.Contains(stderr.String(), "s3cret-value") {
				t.Error("stderr shows the client secret")
			}
			if time.Since(start) > 5*time.Second {
				t.Error("a configuration error took seconds to report")
			}
		})
	}
}

// TOKENGUARD_DPOP_NONCE_SECRETS is read at start; a bad value stops the
// gateway before it listens, names the variable and never shows the value.
func TestCLINonceSecretsEnv(t *testing.T) {
	is := testkit.StartIssuer(t)
	path := filepath.Join(t.TempDir(), "tokenguard.yaml")
	y := testkit.GatewayYAML(is.URL(), is.URL()+"/jwks", "http://127.0.0.1:9", "dpop:\n  mode: allowed\n  nonce: true\n")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"c2hvcnQtc2VjcmV0LXZhbHVl", "!!not-base64-secret-value!!", base64.StdEncoding.EncodeToString(make([]byte, 32)) + ",,"} {
		var stderr lockedBuffer
		c := &cli{stdout: &stderr, stderr: &stderr, getenv: func(name string) string {
			if name == gateway.NonceSecretsEnv {
				return bad
			}
			return ""
		}}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		code := c.run(ctx, []string{"-config", path})
		cancel()
		if code != exitError {
			t.Errorf("%q: exit code %d, want %d", bad, code, exitError)
		}
		if !strings.Contains(stderr.String(), gateway.NonceSecretsEnv+": secret ") {
			t.Errorf("%q: stderr does not name the variable and the entry:\n%s", bad, stderr.String())
		}
		if strings.Contains(stderr.String(), strings.TrimRight(bad, ",")[:12]) {
			t.Errorf("%q: stderr shows the secret:\n%s", bad, stderr.String())
		}
		if strings.Contains(stderr.String(), "gateway started") {
			t.Errorf("%q: the gateway started", bad)
		}
	}
}

func TestVersion(t *testing.T) {
	var stdout, stderr lockedBuffer
	c := &cli{stdout: &stdout, stderr: &stderr}
	if code := c.run(context.Background(), []string{"version"}); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if out := stdout.String(); !strings.HasPrefix(out, "tokenguard ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("version printed %q", out)
	}
	if code := c.run(context.Background(), []string{"version", "x"}); code != exitUsage {
		t.Errorf("version with an argument: exit %d", code)
	}
}

func TestVersionLine(t *testing.T) {
	tests := []struct {
		bi   debug.BuildInfo
		want string
	}{
		{debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}}, "tokenguard v1.2.3 go1.26.8"},
		{debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}, {Key: "vcs.time", Value: "2026-12-06T00:00:00Z"},
		}}, "tokenguard (devel) (revision abc123, modified, 2026-12-06T00:00:00Z) go1.26.8"},
		{debug.BuildInfo{GoVersion: "go1.26.8"}, "tokenguard (devel) go1.26.8"},
	}
	for _, tt := range tests {
		if got := versionLine(&tt.bi); got != tt.want {
			t.Errorf("versionLine = %q, want %q", got, tt.want)
		}
	}
}
