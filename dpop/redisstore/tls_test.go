package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/redistest"
)

// The child process of TestTLSAndPassword reads its case from these.
const (
	tlsChildURL    = "REDISSTORE_TLS_CHILD_URL"    // the URL as a configuration writes it, with ${REDIS_PASSWORD}
	tlsChildResult = "REDISSTORE_TLS_CHILD_RESULT" // a file for "ok" or the error
)

// TestTLSAndPassword: a store made from
// rediss://:${REDIS_PASSWORD}@127.0.0.1:PORT/0, the password taken from
// the environment as the gateway's configuration takes it, works against
// a TLS-only redis-server with requirepass whose certificate a private CA
// signed, once that CA is trusted through SSL_CERT_FILE; verification
// stays on (no CA, or a name the certificate does not carry, fails), and
// a wrong or missing password fails. Failing means ErrStoreUnavailable
// (503), never an accepted proof, and no error quotes the password.
//
// Go reads SSL_CERT_FILE once per process, so each case runs in a child
// process of its own (TestTLSChild).
func TestTLSAndPassword(t *testing.T) {
	// Like `openssl rand -base64`: "/" and "+" must be percent-encoded
	// in a URL's user information.
	password := "tg/" + randomHex(12) + "+="
	srv, ca, err := redistest.StartTLS(t.TempDir(), password)
	skipOrFatal(t, err)
	t.Cleanup(func() { srv.Kill() })
	port := strconv.Itoa(srv.Port())
	encoded := url.UserPassword("", password).String()[1:] // what follows the ":"
	if !strings.Contains(encoded, "%2F") {
		t.Fatalf("encoded password %q: the test wants one with an escaped /", encoded)
	}
	const written = "rediss://:${REDIS_PASSWORD}@127.0.0.1:%s/0"
	for _, tc := range []struct {
		name    string
		url     string // as written in the configuration
		env     string // REDIS_PASSWORD
		trustCA bool   // SSL_CERT_FILE names the CA
		wantErr string // "" for a store that works, else part of its ErrStoreUnavailable
		badURL  bool   // wantErr is NewFromURL's instead
	}{
		{name: "CA trusted, password from the environment", url: written, env: encoded, trustCA: true},
		{name: "CA not trusted", url: written, env: encoded, wantErr: "certificate signed by unknown authority"},
		{name: "name not in the certificate", url: "rediss://:${REDIS_PASSWORD}@localhost:%s/0", env: encoded, trustCA: true,
			wantErr: "wanted to match localhost"},
		{name: "wrong password", url: written, env: "not-" + encoded, trustCA: true, wantErr: "WRONGPASS"},
		{name: "no password", url: "rediss://127.0.0.1:%s/0", trustCA: true, wantErr: "NOAUTH"},
		{name: "password not percent-encoded", url: written, env: password, trustCA: true,
			wantErr: "does not parse as a URL", badURL: true},
		{name: "plain text to the TLS port", url: "redis://:${REDIS_PASSWORD}@127.0.0.1:%s/0", env: encoded, trustCA: true,
			wantErr: dpop.ErrStoreUnavailable.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			result := filepath.Join(t.TempDir(), "result")
			env := append(withoutEnv(os.Environ(), "SSL_CERT_FILE", "SSL_CERT_DIR", "REDIS_PASSWORD"),
				tlsChildURL+"="+strings.Replace(tc.url, "%s", port, 1),
				tlsChildResult+"="+result)
			if tc.env != "" {
				env = append(env, "REDIS_PASSWORD="+tc.env)
			}
			if tc.trustCA {
				env = append(env, "SSL_CERT_FILE="+ca.CertFile)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestTLSChild$", "-test.count=1", "-test.v")
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			got, rerr := os.ReadFile(result)
			if err != nil || rerr != nil {
				t.Fatalf("child: %v, %v\n%s", err, rerr, out)
			}
			if strings.Contains(string(got), password) || strings.Contains(string(got), encoded) {
				t.Errorf("the result quotes the password: %s", got)
			}
			if tc.wantErr == "" {
				if string(got) != "ok" {
					t.Fatalf("store: %s, want it to work", got)
				}
				return
			}
			kind := "unavailable: "
			if tc.badURL {
				kind = "bad URL: "
			}
			if !strings.HasPrefix(string(got), kind) || !strings.Contains(string(got), tc.wantErr) {
				t.Fatalf("store: %s; want %s saying %q", got, kind, tc.wantErr)
			}
			t.Logf("store: %s", got)
		})
	}
}

// TestTLSChild is TestTLSAndPassword's child process: it expands
// ${REDIS_PASSWORD} in the URL (the gateway's ${NAME} expansion, see
// gateway/env.go), makes a store and records one proof and its replay,
// and writes "ok", "bad URL: <NewFromURL's error>", "unavailable:
// <error>" for an error wrapping dpop.ErrStoreUnavailable, or "other:
// <error>" to the result file.
func TestTLSChild(t *testing.T) {
	raw, result := os.Getenv(tlsChildURL), os.Getenv(tlsChildResult)
	if raw == "" || result == "" {
		t.Skip("run by TestTLSAndPassword")
	}
	write := func(s string) {
		if err := os.WriteFile(result, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// go-redis retries a failed dial five times, 100 ms apart: with the
	// default Timeout (500 ms) Use's error would say only "context
	// deadline exceeded", and the cause (an unknown authority, say)
	// would reach go-redis's log after it. A longer one lets the cause
	// through to the error.
	s, err := NewFromURL(os.Expand(raw, os.Getenv), Options{Timeout: 3 * time.Second})
	if err != nil {
		write("bad URL: " + err.Error())
		return
	}
	defer s.Close()
	r := replayOf(newID(), time.Now().Add(time.Minute))
	err = s.Use(t.Context(), r)
	if err == nil {
		if err = s.Use(t.Context(), r); errors.Is(err, dpop.ErrReplay) {
			write("ok")
			return
		}
		write("other: replay: " + fmtErr(err))
		return
	}
	if errors.Is(err, dpop.ErrStoreUnavailable) {
		write("unavailable: " + err.Error())
		return
	}
	write("other: " + err.Error())
}

func fmtErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// withoutEnv returns env without the variables named.
func withoutEnv(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || name == n
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
