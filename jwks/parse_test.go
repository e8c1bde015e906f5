package jwks

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func build(tb testing.TB, doc []byte, allow algSet, prev *Snapshot) (*Snapshot, string, error) {
	tb.Helper()
	var logs bytes.Buffer
	snap, err := buildSnapshot(doc, &buildOptions{
		allowed: allow,
		maxKeys: 10,
		log:     slog.New(slog.NewTextHandler(&logs, nil)),
		url:     "https://as.example/jwks",
		prev:    prev,
		now:     time.Unix(1700000000, 0),
	})
	return snap, logs.String(), err
}

func defaultAllow() algSet {
	_, allow, err := Config{URL: "https://as.example/jwks"}.withDefaults()
	if err != nil {
		panic(err)
	}
	return allow
}

// TestKeyHygiene has one case per hygiene rule: the document holds a good
// key and the key under test, and only the good key may be published.
func TestKeyHygiene(t *testing.T) {
	k := testKeys()
	short, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := kEC(t)
	tests := []struct {
		name    string
		key     json.RawMessage
		allow   algSet // 0: the default allow-list
		usable  bool
		wantLog string
	}{
		{"plain RSA key", jwkJSON(t, &k.rsa1.PublicKey, map[string]any{"kid": "x"}), 0, true, ""},
		{"use sig", jwkJSON(t, &k.rsa1.PublicKey, map[string]any{"kid": "x", "use": "sig"}), 0, true, ""},
		{"use enc", jwkJSON(t, &k.rsa1.PublicKey, map[string]any{"kid": "x", "use": "enc"}), 0, false, `\"use\" is \"enc\"`},
		{"use unknown", jwkJSON(t, &k.rsa1.PublicKey, map[string]any{"kid": "x", "use": "tls"}), 0, false, "use"},
		{"key_ops verify", jwkJSON(t, &k.rsa1.PublicKey, map[string]any{"kid": "x", "key_ops": []string{"verify"}}), 0, true, ""},
		{"key_ops without verify", jwkJSON(t, &k.rsa1.PublicKey, map[string]any{"kid": "x", "key_ops": []string{"encrypt", "wrapKey"}}), 0, false, "key_ops"},
		{"alg on allow-list", jwkJSON(t, &k.rsa1.PublicKey, map[string]any{"kid": "x", "alg": "PS256"}), 0, true, ""},
		{"alg off allow-list", jwkJSON(t, &k.rsa1.PublicKey, map[string]any{"kid": "x", "alg": "RS512"}), 0, false, "allow-list"},
		{"alg none", jwkJSON(t, &k.rsa1.PublicKey, map[string]any{"kid": "x", "alg": "none"}), 0, false, "kid=x"},
		{"alg HS256 on RSA", jwkJSON(t, &k.rsa1.PublicKey, map[string]any{"kid": "x", "alg": "HS256"}), 0, false, "kid=x"},
		{"alg of another key type", jwkJSON(t, &k.rsa1.PublicKey, map[string]any{"kid": "x", "alg": "ES256"}), 0, false, "does not match"},
		{"ES384 alg on P-256", jwkJSON(t, &k.p256.PublicKey, map[string]any{"kid": "x", "alg": "ES384"}), 0, false, "does not match"},
		{"RSA 1024 bits", rsaJWK("x", &short.PublicKey), 0, false, "kid=x"},
		{"RSA modulus over 8192 bits", rsaJWK("x", &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 8200), E: 65537}), 0, false, "longer than 8192"},
		{"RSA private key", jwkJSON(t, k.rsa1, map[string]any{"kid": "x"}), 0, false, "level=ERROR"},
		{"RSA public with a private member", jwkJSON(t, &k.rsa1.PublicKey, map[string]any{"kid": "x", "p": "AQAB"}), 0, false, "level=ERROR"},
		{"EC private key", jwkJSON(t, k.p256, map[string]any{"kid": "x"}), 0, false, "level=ERROR"},
		{"Ed25519 private key", jwkJSON(t, k.ed, map[string]any{"kid": "x"}), 0, false, "level=ERROR"},
		{"symmetric key", json.RawMessage(`{"kty":"oct","kid":"x","alg":"HS256","k":"c2VjcmV0c2VjcmV0c2VjcmV0"}`), 0, false, "level=ERROR"},
		{"symmetric key without k", json.RawMessage(`{"kty":"oct","kid":"x"}`), 0, false, "symmetric"},
		{"unknown kty", json.RawMessage(`{"kty":"PQC","kid":"x","pub":"AAAA"}`), 0, false, "unsupported key type"},
		{"missing kty", json.RawMessage(`{"kid":"x","n":"AQAB","e":"AQAB"}`), 0, false, "unsupported key type"},
		{"X25519 (not a signature curve)", jwkJSON(t, x25519.PublicKey(), map[string]any{"kid": "x"}), 0, false, "unsupported"},
		{"secp256k1", json.RawMessage(`{"kty":"EC","crv":"secp256k1","kid":"x","x":"AAAA","y":"AAAA"}`), 0, false, "kid=x"},
		{"EC point off the curve", json.RawMessage(`{"kty":"EC","crv":"P-256","kid":"x","x":"AQ","y":"AQ"}`), 0, false, "kid=x"},
		{"no alg, no allow-listed alg for the type", jwkJSON(t, &k.p521.PublicKey, map[string]any{"kid": "x"}), 0, false, "no allowed algorithm"},
		{"P-521 when ES512 is allowed", jwkJSON(t, &k.p521.PublicKey, map[string]any{"kid": "x"}), algES256 | algES512, true, ""},
		{"Ed25519", jwkJSON(t, k.ed.Public(), map[string]any{"kid": "x"}), 0, true, ""},
		{"kid not a string", json.RawMessage(`{"kty":"RSA","kid":7}`), 0, false, "kid"},
		{"key not an object", json.RawMessage(`"RSA"`), 0, false, "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allow := tt.allow
			if allow == 0 {
				allow = defaultAllow()
			}
			snap, logs, err := build(t, jwksDoc(good, tt.key), allow, nil)
			if err != nil {
				t.Fatalf("buildSnapshot: %v", err)
			}
			if snap.Key("ec1") == nil {
				t.Errorf("the good key was not published")
			}
			got := snap.Key("x") != nil
			if got != tt.usable {
				t.Errorf("key published = %v, want %v; logs:\n%s", got, tt.usable, logs)
			}
			if tt.usable && snap.Len() != 2 || !tt.usable && snap.Len() != 1 {
				t.Errorf("Len() = %d", snap.Len())
			}
			if !strings.Contains(logs, tt.wantLog) {
				t.Errorf("logs do not mention %q:\n%s", tt.wantLog, logs)
			}
			if !tt.usable && (!strings.Contains(logs, "url=https://as.example/jwks") || !strings.Contains(logs, "reason=")) {
				t.Errorf("skip log lacks url or reason:\n%s", logs)
			}
			if strings.Contains(logs, `"n":`) || strings.Contains(logs, `"d":`) {
				t.Errorf("logs contain key material:\n%s", logs)
			}
		})
	}
}

// TestDuplicateKID: a kid that appears twice is ambiguous, so neither key
// is published, and it is logged.
func TestDuplicateKID(t *testing.T) {
	k := testKeys()
	doc := jwksDoc(
		jwkJSON(t, &k.rsa1.PublicKey, map[string]any{"kid": "dup"}),
		kEC(t),
		jwkJSON(t, &k.rsa2.PublicKey, map[string]any{"kid": "dup"}),
	)
	snap, logs, err := build(t, doc, defaultAllow(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Key("dup") != nil || snap.Len() != 1 {
		t.Errorf("duplicate kid published: Len=%d", snap.Len())
	}
	if !strings.Contains(logs, "more than once") {
		t.Errorf("duplicate kid not logged:\n%s", logs)
	}
}

// TestDocumentErrors covers documents refused as a whole.
func TestDocumentErrors(t *testing.T) {
	k := testKeys()
	oct := json.RawMessage(`{"kty":"oct","kid":"s","k":"c2VjcmV0"}`)
	many := make([]json.RawMessage, 11)
	for i := range many {
		many[i] = kEC(t)
	}
	tests := []struct {
		name string
		doc  string
		want error
	}{
		{"empty body", ``, errNotJSON},
		{"not JSON", `<html>oops</html>`, errNotJSON},
		{"truncated", string(jwksDoc(kEC(t)))[:40], errNotJSON},
		{"array", `[]`, errNoKeys},
		{"bare JWK", string(kEC(t)), errNoKeys},
		{"keys not an array", `{"keys":{}}`, errNoKeys},
		{"keys twice", `{"keys":[],"keys":[` + string(kEC(t)) + `]}`, errNoKeys},
		{"KEYS is not keys", `{"KEYS":[` + string(kEC(t)) + `]}`, errNoKeys},
		{"empty set", `{"keys":[]}`, errEmptySet},
		{"only unusable keys", string(jwksDoc(oct, jwkJSON(t, &k.rsa1.PublicKey, map[string]any{"use": "enc"}))), errNoUsable},
		{"more than MaxKeys", string(jwksDoc(many...)), errTooMany},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, logs, err := build(t, []byte(tt.doc), defaultAllow(), nil)
			if !errors.Is(err, tt.want) || snap != nil {
				t.Fatalf("got (%v, %v), want %v", snap, err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "jwks: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if tt.doc != "" && (strings.Contains(err.Error(), tt.doc) || strings.Contains(logs, "oops")) {
				t.Errorf("the document leaked into the error or logs")
			}
		})
	}
}

// TestKeyFields checks what a published key carries.
func TestKeyFields(t *testing.T) {
	k := testKeys()
	doc := jwksDoc(jwkJSON(t, &k.rsa1.PublicKey, map[string]any{"kid": "r", "alg": "RS256"}))
	snap, _, err := build(t, doc, defaultAllow(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := snap.Key("r")
	pub, ok := got.Public.(*rsa.PublicKey)
	if !ok || !pub.Equal(&k.rsa1.PublicKey) {
		t.Errorf("Public = %T, not the RSA key", got.Public)
	}
	// RFC 7638 §3.1: the thumbprint is over the required members only,
	// in lexicographic order; compute it independently.
	e := `{"e":"AQAB","kty":"RSA","n":"` + b64(k.rsa1.N.Bytes()) + `"}`
	if want := sha256b64(e); got.Thumbprint != want {
		t.Errorf("Thumbprint = %s, want %s", got.Thumbprint, want)
	}
	if got.ID != "r" || got.Algorithm != "RS256" {
		t.Errorf("ID, Algorithm = %q, %q", got.ID, got.Algorithm)
	}
	if !snap.FetchedAt().Equal(time.Unix(1700000000, 0)) {
		t.Errorf("FetchedAt = %v", snap.FetchedAt())
	}
}

// TestAllows checks the alg ↔ key binding.
func TestAllows(t *testing.T) {
	k := testKeys()
	doc := jwksDoc(
		jwkJSON(t, &k.rsa1.PublicKey, map[string]any{"kid": "rsa"}),
		jwkJSON(t, &k.rsa2.PublicKey, map[string]any{"kid": "rsa-ps", "alg": "PS256"}),
		jwkJSON(t, &k.p256.PublicKey, map[string]any{"kid": "p256"}),
		jwkJSON(t, &k.p384.PublicKey, map[string]any{"kid": "p384"}),
		jwkJSON(t, &k.p521.PublicKey, map[string]any{"kid": "p521"}),
		jwkJSON(t, k.ed.Public(), map[string]any{"kid": "ed"}),
	)
	allow := algRS256 | algPS256 | algES256 | algES384 | algES512 | algEdDSA
	snap, logs, err := build(t, doc, allow, nil)
	if err != nil || snap.Len() != 6 {
		t.Fatalf("build: %v\n%s", err, logs)
	}
	algs := []string{"RS256", "RS384", "PS256", "ES256", "ES384", "ES512", "EdDSA", "HS256", "none", "", "rs256"}
	want := map[string][]string{
		"rsa":    {"RS256", "PS256"}, // RS384 is not on the allow-list
		"rsa-ps": {"PS256"},          // the key's own alg
		"p256":   {"ES256"},
		"p384":   {"ES384"},
		"p521":   {"ES512"},
		"ed":     {"EdDSA"},
	}
	for kid, wantAlgs := range want {
		var got []string
		for _, a := range algs {
			if snap.Key(kid).Allows(a) {
				got = append(got, a)
			}
		}
		if diff := cmp.Diff(wantAlgs, got); diff != "" {
			t.Errorf("%s allows (-want +got):\n%s", kid, diff)
		}
	}
}

// TestSnapshotEmptyKID: a JWS without kid matches only a one-key set.
func TestSnapshotEmptyKID(t *testing.T) {
	k := testKeys()
	tests := []struct {
		name string
		doc  []byte
		want string // kid of the key Key("") returns; "-" for nil
	}{
		{"one key with kid", jwksDoc(kEC(t)), "ec1"},
		{"one key without kid", jwksDoc(jwkJSON(t, &k.rsa1.PublicKey, nil)), ""},
		{"two keys", jwksDoc(kEC(t), kRSA1(t)), "-"},
		{"two keys, one usable", jwksDoc(kEC(t), jwkJSON(t, &k.rsa1.PublicKey, map[string]any{"use": "enc"})), "ec1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, _, err := build(t, tt.doc, defaultAllow(), nil)
			if err != nil {
				t.Fatal(err)
			}
			got := "-"
			if k := snap.Key(""); k != nil {
				got = k.ID
			}
			if got != tt.want {
				t.Errorf("Key(\"\") = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestKeyReuse: an unchanged key keeps its *Key across snapshots; a
// changed one gets a new pointer.
func TestKeyReuse(t *testing.T) {
	k := testKeys()
	first, _, err := build(t, jwksDoc(kEC(t), kRSA1(t), jwkJSON(t, k.ed.Public(), nil)), defaultAllow(), nil)
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := build(t, jwksDoc(
		kEC(t), // unchanged
		jwkJSON(t, &k.rsa2.PublicKey, map[string]any{"kid": "rsa1"}), // same kid, new key material
		jwkJSON(t, k.ed.Public(), nil),                               // unchanged, no kid
	), defaultAllow(), first)
	if err != nil {
		t.Fatal(err)
	}
	if first.Key("ec1") != second.Key("ec1") {
		t.Errorf("unchanged key got a new pointer")
	}
	if first.Key("rsa1") == second.Key("rsa1") {
		t.Errorf("changed key kept its pointer")
	}
	if first.keys[2] != second.keys[2] {
		t.Errorf("unchanged kid-less key got a new pointer")
	}
	third, _, err := build(t, jwksDoc(jwkJSON(t, &k.p256.PublicKey, map[string]any{"kid": "ec1", "alg": "ES256"})), defaultAllow(), second)
	if err != nil {
		t.Fatal(err)
	}
	if third.Key("ec1") == second.Key("ec1") {
		t.Errorf("key whose alg changed kept its pointer")
	}
}
