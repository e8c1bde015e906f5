package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/tokenguard/tokenguard/dpop"
)

// runCLI runs the command line in process and returns the exit code and
// what it wrote.
func runCLI(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut lockedBuffer
	c := &cli{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	code = c.run(ctx, args)
	return code, out.String(), errOut.String()
}

// keygen runs "tokenguard keygen -alg alg -out FILE" in a temporary
// directory and returns the file's path and the printed thumbprint.
func keygen(t testing.TB, alg string) (path, jkt string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "dpop.pem")
	code, stdout, stderr := runCLI(t, "keygen", "-alg", alg, "-out", path)
	if code != exitOK || stdout != "" {
		t.Fatalf("keygen -alg %s: exit %d, stdout %q, stderr %q", alg, code, stdout, stderr)
	}
	return path, printedJKT(t, stderr)
}

// printedJKT returns the thumbprint from keygen's "jkt: ..." line.
func printedJKT(t testing.TB, stderr string) string {
	t.Helper()
	for line := range strings.Lines(stderr) {
		if v, ok := strings.CutPrefix(line, "jkt: "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no jkt line in %q", stderr)
	return ""
}

// parsePKCS8PEM decodes exactly one PKCS#8 PEM private key.
func parsePKCS8PEM(t testing.TB, data []byte) crypto.Signer {
	t.Helper()
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" || len(block.Headers) != 0 || strings.TrimSpace(string(rest)) != "" {
		t.Fatalf("not a single PKCS#8 PEM block: %q", data)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}

func TestKeygen(t *testing.T) {
	for _, tc := range []struct {
		alg   string
		check func(crypto.Signer) bool
	}{
		{"ES256", func(k crypto.Signer) bool { e, ok := k.(*ecdsa.PrivateKey); return ok && e.Curve == elliptic.P256() }},
		{"ES384", func(k crypto.Signer) bool { e, ok := k.(*ecdsa.PrivateKey); return ok && e.Curve == elliptic.P384() }},
		{"EdDSA", func(k crypto.Signer) bool { _, ok := k.(ed25519.PrivateKey); return ok }},
		{"RS256", func(k crypto.Signer) bool { r, ok := k.(*rsa.PrivateKey); return ok && r.N.BitLen() >= 2048 }},
		{"PS256", func(k crypto.Signer) bool { r, ok := k.(*rsa.PrivateKey); return ok && r.N.BitLen() >= 2048 }},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			path, jkt := keygen(t, tc.alg)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			key := parsePKCS8PEM(t, data)
			if !tc.check(key) {
				t.Errorf("-alg %s made a %T", tc.alg, key)
			}
			want, err := dpop.Thumbprint(key.Public())
			if err != nil {
				t.Fatal(err)
			}
			if jkt != want {
				t.Errorf("printed jkt %q, want dpop.Thumbprint %q", jkt, want)
			}
		})
	}
}

func TestKeygenDefaultsAndStdout(t *testing.T) {
	for _, args := range [][]string{{"keygen"}, {"keygen", "-out", "-"}} {
		code, stdout, stderr := runCLI(t, args...)
		if code != exitOK {
			t.Fatalf("%q: exit %d: %s", args, code, stderr)
		}
		key := parsePKCS8PEM(t, []byte(stdout))
		if e, ok := key.(*ecdsa.PrivateKey); !ok || e.Curve != elliptic.P256() {
			t.Errorf("%q: default key is %T, want ES256 (P-256)", args, key)
		}
		if want, _ := dpop.Thumbprint(key.Public()); printedJKT(t, stderr) != want {
			t.Errorf("%q: printed jkt does not match the key", args)
		}
		if strings.Contains(stderr, "PRIVATE KEY") {
			t.Errorf("%q: stderr shows the private key", args)
		}
	}
	// Two runs make two different keys.
	_, a, _ := runCLI(t, "keygen")
	_, b, _ := runCLI(t, "keygen")
	if a == b {
		t.Error("two keygen runs printed the same key")
	}
}

// keygen never overwrites a file. A second run on a key keeps it, exits 0
// and prints that key's thumbprint (as the demo's instructions promise);
// anything else already there is an error and left alone.
func TestKeygenNeverOverwrites(t *testing.T) {
	path, jkt := keygen(t, "ES256")
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"keygen", "-out", path},
		{"keygen", "-alg", "ES256", "-out", path},
	} {
		code, stdout, stderr := runCLI(t, args...)
		if code != exitOK || stdout != "" || !strings.Contains(stderr, "kept the existing private key in "+path) {
			t.Errorf("%q on an existing key: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
		if got := printedJKT(t, stderr); got != jkt {
			t.Errorf("%q on an existing key printed jkt %q, want the kept key's %q", args, got, jkt)
		}
		if strings.Contains(stderr, "PRIVATE KEY") {
			t.Errorf("%q: stderr shows the private key", args)
		}
	}
	// An -alg the existing key cannot sign with is an error, not a new key.
	if code, _, stderr := runCLI(t, "keygen", "-alg", "EdDSA", "-out", path); code != exitError || !strings.Contains(stderr, "cannot sign EdDSA") || strings.Contains(stderr, "jkt:") {
		t.Errorf("keygen -alg EdDSA on an ES256 key: exit %d, stderr %q", code, stderr)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("keygen replaced an existing key")
	}

	// A symlink to a key is kept as well, and its target is untouched.
	link := filepath.Join(t.TempDir(), "link.pem")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, "keygen", "-out", link); code != exitOK || printedJKT(t, stderr) != jkt {
		t.Errorf("keygen -out a symlink to a key: exit %d, stderr %q", code, stderr)
	}

	// A file that is not a key is not replaced, nor a symlink's target,
	// nor a dangling symlink's.
	other := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(other, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	otherLink := filepath.Join(t.TempDir(), "other.pem")
	if err := os.Symlink(other, otherLink); err != nil {
		t.Fatal(err)
	}
	nowhere := filepath.Join(t.TempDir(), "nowhere.pem")
	dangling := filepath.Join(t.TempDir(), "dangling.pem")
	if err := os.Symlink(nowhere, dangling); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{other, otherLink, dangling} {
		if code, stdout, stderr := runCLI(t, "keygen", "-out", p); code != exitError || !strings.Contains(stderr, "already exists") || strings.Contains(stderr, "jkt:") || stdout != "" {
			t.Errorf("keygen -out %s: exit %d, stdout %q, stderr %q; want %d and no key", p, code, stdout, stderr, exitError)
		}
	}
	if b, _ := os.ReadFile(other); string(b) != "keep me" {
		t.Errorf("the existing file now holds %q", b)
	}
	if _, err := os.Lstat(nowhere); err == nil {
		t.Error("keygen wrote through a dangling symlink")
	}

	// A directory that does not exist is a plain error, and leaves nothing.
	missing := filepath.Join(t.TempDir(), "no", "such", "dir", "k.pem")
	if code, _, stderr := runCLI(t, "keygen", "-out", missing); code != exitError || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing directory: exit %d, stderr %q", code, stderr)
	}
}

// proofParts decodes a compact proof without verifying it.
func proofParts(t testing.TB, proof string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		t.Fatalf("proof has %d parts", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

// verifyWithHeaderKey checks the proof's signature with jwx, using the
// public key from its own jwk header (what RFC 9449 §4.3 step 6 does),
// and returns that key.
func verifyWithHeaderKey(t testing.TB, proof string) jwk.Key {
	t.Helper()
	msg, err := jws.Parse([]byte(proof))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	key, ok := h.JWK()
	if !ok {
		t.Fatal("proof has no jwk header")
	}
	if private, err := jwk.IsPrivateKey(key); err != nil || private {
		t.Fatalf("jwk header holds a private key (%v)", err)
	}
	alg, _ := h.Algorithm()
	if _, err := jws.Verify([]byte(proof), jws.WithKey(alg, key)); err != nil {
		t.Fatalf("jws.Verify with the header's key: %v", err)
	}
	return key
}

func TestProof(t *testing.T) {
	const token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
	for _, tc := range []struct{ keyAlg, flagAlg, wantAlg string }{
		{"ES256", "", "ES256"},
		{"ES384", "", "ES384"},
		{"EdDSA", "", "EdDSA"},
		{"PS256", "", "PS256"},
		{"RS256", "RS256", "RS256"},
	} {
		t.Run(tc.keyAlg+"/"+tc.wantAlg, func(t *testing.T) {
			path, jkt := keygen(t, tc.keyAlg)
			args := []string{"proof", "-method", "POST", "-url", "HTTPS://API.Example.com:443/orders/%7e42?page=2#frag",
				"-key", path, "-token", token, "-nonce", "n-1.2_3"}
			if tc.flagAlg != "" {
				args = append(args, "-alg", tc.flagAlg)
			}
			start := time.Now()
			code, stdout, stderr := runCLI(t, args...)
			if code != exitOK || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			proof, ok := strings.CutSuffix(stdout, "\n")
			if !ok || strings.ContainsAny(proof, "\r\n \t") {
				t.Fatalf("stdout is not one proof and a newline: %q", stdout)
			}

			header, claims := proofParts(t, proof)
			if header["typ"] != "dpop+jwt" || header["alg"] != tc.wantAlg {
				t.Errorf("header = %v", header)
			}
			if _, ok := header["kid"]; ok {
				t.Error("header has a kid")
			}
			for k, want := range map[string]any{
				"htm":   "POST",
				"htu":   "https://api.example.com/orders/~42",
				"ath":   dpop.AccessTokenHash(token),
				"nonce": "n-1.2_3",
			} {
				if claims[k] != want {
					t.Errorf("%s = %v, want %v", k, claims[k], want)
				}
			}
			if jti, _ := claims["jti"].(string); len(jti) < 16 {
				t.Errorf("jti = %v", claims["jti"])
			}
			iat, _ := claims["iat"].(float64)
			if d := time.Unix(int64(iat), 0).Sub(start); d < -2*time.Second || d > 5*time.Second {
				t.Errorf("iat %v is not now", iat)
			}

			// An independent check (jwx, with the key from the header) and
			// the guard's own verifier agree, and the key is keygen's.
			hk := verifyWithHeaderKey(t, proof)
			var pub any
			if err := jwk.Export(hk, &pub); err != nil {
				t.Fatal(err)
			}
			if tp, _ := dpop.Thumbprint(pub); tp != jkt {
				t.Errorf("proof key thumbprint %q, keygen printed %q", tp, jkt)
			}
			v, err := dpop.NewVerifier(dpop.Config{Algorithms: []string{tc.wantAlg}})
			if err != nil {
				t.Fatal(err)
			}
			p, err := v.Verify(context.Background(), dpop.Request{
				Proof: proof, Method: "POST", URL: "https://api.example.com/orders/~42", AccessToken: token, JKT: jkt,
			})
			if err != nil {
				t.Fatalf("dpop verifier: %v", err)
			}
			if p.JKT != jkt {
				t.Errorf("verified JKT %q, want %q", p.JKT, jkt)
			}
		})
	}

	t.Run("no token, no nonce: no ath, no nonce claim", func(t *testing.T) {
		path, _ := keygen(t, "ES256")
		code, stdout, stderr := runCLI(t, "proof", "-method", "GET", "-url", "http://127.0.0.1:7000/token", "-key", path)
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		_, claims := proofParts(t, strings.TrimSpace(stdout))
		if _, ok := claims["ath"]; ok {
			t.Error("ath without -token")
		}
		if _, ok := claims["nonce"]; ok {
			t.Error("nonce without -nonce")
		}
		if claims["htu"] != "http://127.0.0.1:7000/token" || claims["htm"] != "GET" {
			t.Errorf("claims = %v", claims)
		}
	})

	t.Run("every proof is new", func(t *testing.T) {
		path, _ := keygen(t, "EdDSA")
		args := []string{"proof", "-method", "GET", "-url", "https://api.example.com/", "-key", path}
		_, a, _ := runCLI(t, args...)
		_, b, _ := runCLI(t, args...)
		_, ca := proofParts(t, strings.TrimSpace(a))
		_, cb := proofParts(t, strings.TrimSpace(b))
		if ca["jti"] == cb["jti"] {
			t.Error("two proofs share a jti")
		}
	})

	t.Run("older PEM forms are read too", func(t *testing.T) {
		ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		sec1, _ := x509.MarshalECPrivateKey(ec)
		rk, _ := rsa.GenerateKey(rand.Reader, 2048)
		for typ, der := range map[string][]byte{"EC PRIVATE KEY": sec1, "RSA PRIVATE KEY": x509.MarshalPKCS1PrivateKey(rk)} {
			path := filepath.Join(t.TempDir(), "k.pem")
			if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runCLI(t, "proof", "-method", "GET", "-url", "https://api.example.com/", "-key", path)
			if code != exitOK {
				t.Errorf("%s: exit %d: %s", typ, code, stderr)
				continue
			}
			verifyWithHeaderKey(t, strings.TrimSpace(stdout))
		}
	})
}

func TestProofErrors(t *testing.T) {
	dir := t.TempDir()
	ecKey, _ := keygen(t, "ES256")
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pkix, _ := x509.MarshalPKIXPublicKey(ec.Public())
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ec)
	encrypted := write("encrypted.pem", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("0123456789abcdef")}))
	legacyEncrypted := write("legacy-encrypted.pem", pem.EncodeToMemory(&pem.Block{
		Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00112233445566778899AABBCCDDEEFF"},
		Bytes: []byte("0123456789abcdef"),
	}))
	public := write("public.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}))
	garbage := write("garbage.pem", []byte("not a key\n"))
	corrupt := write("corrupt.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8[:len(pkcs8)-7]}))
	huge := write("huge.pem", []byte(strings.Repeat("A", 64<<10+1)))
	unreadable := filepath.Join(dir, "no-such.pem")

	ok := []string{"-method", "GET", "-url", "https://api.example.com/orders/", "-key", ecKey}
	with := func(flag, value string) []string {
		args := append([]string{"proof"}, ok...)
		for i := 1; i < len(args); i += 2 {
			if args[i] == flag {
				if value == "" {
					return append(args[:i:i], args[i+2:]...)
				}
				args[i+1] = value
				return args
			}
		}
		return append(args, flag, value)
	}

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"no flags", []string{"proof"}, exitUsage, "-method, -url, -key required"},
		{"no -method", with("-method", ""), exitUsage, "-method required"},
		{"no -url", with("-url", ""), exitUsage, "-url required"},
		{"no -key", with("-key", ""), exitUsage, "-key required"},
		{"relative URL", with("-url", "/orders/"), exitUsage, `-url "/orders/"`},
		{"not http", with("-url", "ftp://api.example.com/"), exitUsage, "absolute http:// or https:// URL"},
		{"URL with credentials", with("-url", "https://u:p@api.example.com/"), exitUsage, "without credentials"},
		{"bad method", with("-method", "GET /"), exitUsage, "not an HTTP method"},
		{"token with scheme", with("-token", "Bearer abc"), exitUsage, `no scheme such as "Bearer "`},
		{"token with newline", with("-token", "abc\n"), exitUsage, "-token"},
		{"bad nonce", with("-nonce", `a"b`), exitUsage, "-nonce"},
		{"unknown alg", with("-alg", "HS256"), exitUsage, `-alg "HS256"`},
		{"none alg", with("-alg", "none"), exitUsage, `-alg "none"`},
		{"unknown flag", with("-bogus", "1"), exitUsage, "flag provided but not defined"},
		{"extra argument", append(with("-nonce", "x"), "extra"), exitUsage, `unexpected argument "extra"`},
		{"missing key file", with("-key", unreadable), exitError, "no such file"},
		{"key file is a directory", with("-key", dir), exitError, "tokenguard proof: key"},
		{"not PEM", with("-key", garbage), exitError, "no PEM block"},
		{"encrypted PKCS#8", with("-key", encrypted), exitError, "is encrypted"},
		{"encrypted legacy PEM", with("-key", legacyEncrypted), exitError, "is encrypted"},
		{"public key", with("-key", public), exitError, "not a private key"},
		{"corrupt key", with("-key", corrupt), exitError, "tokenguard proof: key"},
		{"huge file", with("-key", huge), exitError, "larger than"},
		{"alg for another key type", with("-alg", "EdDSA"), exitError, "use ES256"},
		{"alg for another curve", with("-alg", "ES384"), exitError, "P-256: use ES256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.wantCode, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing (a shell would paste it into a header)", stdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, stderr)
			}
		})
	}
}
