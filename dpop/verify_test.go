package dpop

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

// The RFC 9449 §4.1 (Figure 2) example proof and the thumbprint §6.1
// (Figure 9) gives for its key.
const (
	rfc9449Proof = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
	rfc9449JKT   = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
)

func TestRFC9449ExampleProof(t *testing.T) {
	iat := time.Unix(1562262616, 0)
	v := newTestVerifier(t, Config{Now: func() time.Time { return iat.Add(time.Second) }})
	req := Request{Proof: rfc9449Proof, Method: "POST", URL: "https://server.example.com/token"}
	p, err := v.Verify(context.Background(), req)
	if err != nil {
		t.Fatalf("Verify(RFC 9449 example) = %v", err)
	}
	if p.JKT != rfc9449JKT || p.JTI != "-BwC3ESc6acc2lTc" || !p.IssuedAt.Equal(iat) {
		t.Errorf("proof = %+v, want jkt %s, jti -BwC3ESc6acc2lTc, iat %v", p, rfc9449JKT, iat)
	}
	// The same proof again is a replay; bound to its thumbprint it is a
	// binding failure first.
	if _, err := v.Verify(context.Background(), req); !errors.Is(err, ErrReplay) {
		t.Errorf("second Verify = %v, want ErrReplay", err)
	}
	req.JKT = "something-else"
	if _, err := v.Verify(context.Background(), req); !errors.Is(err, ErrTokenBinding) {
		t.Errorf("Verify with another cnf.jkt = %v, want ErrTokenBinding", err)
	}
	// A day later it is too old.
	late := newTestVerifier(t, Config{Now: func() time.Time { return iat.Add(24 * time.Hour) }})
	if _, err := late.Verify(context.Background(), Request{Proof: rfc9449Proof, Method: "POST", URL: "https://server.example.com/token"}); !errors.Is(err, ErrInvalidProof) {
		t.Errorf("Verify a day later = %v, want ErrInvalidProof", err)
	}
}

// TestThumbprintRFC7638 checks the RFC 7638 §3.1 example.
func TestThumbprintRFC7638(t *testing.T) {
	raw, err := b64.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Thumbprint(&rsa.PublicKey{N: new(big.Int).SetBytes(raw), E: 65537})
	if err != nil {
		t.Fatal(err)
	}
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Errorf("Thumbprint = %s, want %s", got, want)
	}
	if _, err := Thumbprint(newECKey(t)); err == nil {
		t.Error("Thumbprint of a private key succeeded")
	}
}

func TestVerify(t *testing.T) {
	key := newECKey(t)
	other := newECKey(t)
	jkt, err := Thumbprint(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	with := func(m map[string]any, kv ...any) map[string]any {
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
			} else {
				out[kv[i].(string)] = kv[i+1]
			}
		}
		return out
	}
	hdr := proofHeader(t, key)
	privateJWK := jwkOf(t, key)
	octJWK := map[string]any{"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mustProof := func(p string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	params := ProofParams{Method: "GET", URL: testURL, AccessToken: testToken, IssuedAt: testNow}

	tests := []struct {
		name  string
		proof string
		req   func(*Request)
		want  error // nil: accepted
	}{
		{"valid", signES256(t, key, hdr, validClaims("a1")), nil, nil},
		{"valid with cnf.jkt", signES256(t, key, hdr, validClaims("a2")), func(r *Request) { r.JKT = jkt }, nil},
		{"valid, typ as media type", signES256(t, key, with(hdr, "typ", "application/DPoP+JWT"), validClaims("a3")), nil, nil},
		{"valid, htu with query and fragment", signES256(t, key, hdr, with(validClaims("a4"), "htu", testURL+"?x=1#f")), nil, nil},
		{"valid, htu needs normalising", signES256(t, key, hdr, with(validClaims("a5"), "htu", "HTTPS://API.Example.COM:443/orders/%31")), nil, nil},
		{"valid, iat within clock skew", signES256(t, key, hdr, with(validClaims("a6"), "iat", testNow.Add(4*time.Second).Unix())), nil, nil},
		{"valid, iat at max age", signES256(t, key, hdr, with(validClaims("a7"), "iat", testNow.Add(-DefaultMaxAge).Unix())), nil, nil},
		{"valid, no token, no ath", signES256(t, key, hdr, with(validClaims("a8"), "ath", nil)), func(r *Request) { r.AccessToken = "" }, nil},
		{"valid, token digest given", signES256(t, key, hdr, validClaims("a9")), func(r *Request) { r.accessTokenSHA256 = sha256.Sum256([]byte(testToken)) }, nil},
		{"valid EdDSA via NewProof", mustProof(NewProof(edKey, with2(params, "b1"))), nil, nil},
		{"valid PS256 via NewProof", mustProof(NewProof(rsaKey, with2(params, "b2"))), nil, nil},
		{"valid RS256 via NewProof", mustProof(NewProof(rsaKey, with3(params, "b3", "RS256"))), nil, nil},

		{"empty", "", nil, ErrInvalidProof},
		{"not a JWS", "not-a-jws", nil, ErrInvalidProof},
		{"too large", signES256(t, key, hdr, with(validClaims("c1"), "pad", strings.Repeat("x", DefaultMaxProofSize))), nil, ErrInvalidProof},
		{"no typ", signES256(t, key, with(hdr, "typ", nil), validClaims("c2")), nil, ErrInvalidProof},
		{"typ JWT", signES256(t, key, with(hdr, "typ", "JWT"), validClaims("c3")), nil, ErrInvalidProof},
		{"typ at+jwt", signES256(t, key, with(hdr, "typ", "at+jwt"), validClaims("c4")), nil, ErrInvalidProof},
		{"typ with a prefix", signES256(t, key, with(hdr, "typ", "x-dpop+jwt"), validClaims("c4a")), nil, ErrInvalidProof},
		{"typ with another media type prefix", signES256(t, key, with(hdr, "typ", "foo/dpop+jwt"), validClaims("c4b")), nil, ErrInvalidProof},
		{"alg ES512 not allowed", signES256(t, key, with(hdr, "alg", "ES512"), validClaims("c5")), nil, ErrInvalidProof},
		{"alg none", signES256(t, key, with(hdr, "alg", "none"), validClaims("c6")), nil, ErrInvalidProof},
		{"alg HS256", signES256(t, key, with(hdr, "alg", "HS256"), validClaims("c7")), nil, ErrInvalidProof},
		{"no jwk", signES256(t, key, with(hdr, "jwk", nil), validClaims("c8")), nil, ErrInvalidProof},
		{"jwk not an object", signES256(t, key, with(hdr, "jwk", "key"), validClaims("c9")), nil, ErrInvalidProof},
		{"private jwk", signES256(t, key, with(hdr, "jwk", privateJWK), validClaims("c10")), nil, ErrInvalidProof},
		{"symmetric jwk", signES256(t, key, with(hdr, "jwk", octJWK), validClaims("c11")), nil, ErrInvalidProof},
		{"jwk of another key", signES256(t, key, with(hdr, "jwk", jwkOf(t, other.Public())), validClaims("c12")), nil, ErrInvalidProof},
		{"jwk RSA, alg ES256", signES256(t, key, with(hdr, "jwk", jwkOf(t, rsaKey.Public())), validClaims("c13")), nil, ErrInvalidProof},
		{"jku in header", signES256(t, key, with(hdr, "jku", "https://attacker.example/jwks"), validClaims("c14")), nil, ErrInvalidProof},
		{"x5c in header", signES256(t, key, with(hdr, "x5c", []string{"MIIB"}), validClaims("c15")), nil, ErrInvalidProof},
		{"crit in header", signES256(t, key, with(hdr, "crit", []string{"exp"}, "exp", 1), validClaims("c16")), nil, ErrInvalidProof},
		{"bad signature", signES256(t, key, hdr, validClaims("c17"))[:10] + "A" + signES256(t, key, hdr, validClaims("c17"))[11:], nil, ErrInvalidProof},
		{"no jti", signES256(t, key, hdr, with(validClaims(""), "jti", nil)), nil, ErrInvalidProof},
		{"empty jti", signES256(t, key, hdr, validClaims("")), nil, ErrInvalidProof},
		{"jti too long", signES256(t, key, hdr, validClaims(strings.Repeat("j", DefaultMaxJTILength+1))), nil, ErrInvalidProof},
		{"jti a number", signES256(t, key, hdr, with(validClaims(""), "jti", 42)), nil, ErrInvalidProof},
		{"no htm", signES256(t, key, hdr, with(validClaims("d1"), "htm", nil)), nil, ErrInvalidProof},
		{"htm other method", signES256(t, key, hdr, with(validClaims("d2"), "htm", "POST")), nil, ErrInvalidProof},
		{"htm lower case", signES256(t, key, hdr, with(validClaims("d3"), "htm", "get")), nil, ErrInvalidProof},
		{"no htu", signES256(t, key, hdr, with(validClaims("d4"), "htu", nil)), nil, ErrInvalidProof},
		{"htu other path", signES256(t, key, hdr, with(validClaims("d5"), "htu", "https://api.example.com/orders/2")), nil, ErrInvalidProof},
		{"htu other host", signES256(t, key, hdr, with(validClaims("d6"), "htu", "https://evil.example.com/orders/1")), nil, ErrInvalidProof},
		{"htu http", signES256(t, key, hdr, with(validClaims("d7"), "htu", "http://api.example.com/orders/1")), nil, ErrInvalidProof},
		{"htu other port", signES256(t, key, hdr, with(validClaims("d8"), "htu", "https://api.example.com:8443/orders/1")), nil, ErrInvalidProof},
		{"htu relative", signES256(t, key, hdr, with(validClaims("d9"), "htu", "/orders/1")), nil, ErrInvalidProof},
		{"htu encoded slash", signES256(t, key, hdr, with(validClaims("d10"), "htu", "https://api.example.com/orders%2F1")), nil, ErrInvalidProof},
		{"no iat", signES256(t, key, hdr, with(validClaims("e1"), "iat", nil)), nil, ErrInvalidProof},
		{"iat as string", signES256(t, key, hdr, with(validClaims("e2"), "iat", "1700000000")), nil, ErrInvalidProof},
		{"iat too old", signES256(t, key, hdr, with(validClaims("e3"), "iat", testNow.Add(-DefaultMaxAge-time.Second).Unix())), nil, ErrInvalidProof},
		{"iat in the future", signES256(t, key, hdr, with(validClaims("e4"), "iat", testNow.Add(DefaultMaxClockSkew+time.Second).Unix())), nil, ErrInvalidProof},
		{"no ath with a token", signES256(t, key, hdr, with(validClaims("f1"), "ath", nil)), nil, ErrInvalidProof},
		{"ath of another token", signES256(t, key, hdr, with(validClaims("f2"), "ath", AccessTokenHash("another-token"))), nil, ErrInvalidProof},
		{"digest given of another token", signES256(t, key, hdr, validClaims("f3")), func(r *Request) { r.accessTokenSHA256 = sha256.Sum256([]byte("another-token")) }, ErrInvalidProof},
		{"ath padded", signES256(t, key, hdr, with(validClaims("f4"), "ath", AccessTokenHash(testToken)+"=")), nil, ErrInvalidProof},
		{"ath not canonical", signES256(t, key, hdr, with(validClaims("f5"), "ath", nonCanonical(AccessTokenHash(testToken)))), nil, ErrInvalidProof},
		{"ath of the token, not hashed", signES256(t, key, hdr, with(validClaims("f3"), "ath", testToken)), nil, ErrInvalidProof},
		{"wrong method in request", signES256(t, key, hdr, validClaims("f4")), func(r *Request) { r.Method = "DELETE" }, ErrInvalidProof},
		{"cnf.jkt of another key", signES256(t, key, hdr, validClaims("g1")), func(r *Request) { r.JKT = rfc9449JKT }, ErrTokenBinding},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &recordingStore{}
			v := newTestVerifier(t, Config{ReplayStore: store})
			req := testRequest(tt.proof)
			if tt.req != nil {
				tt.req(&req)
			}
			p, err := v.Verify(context.Background(), req)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Verify = %v, want %v", err, tt.want)
				}
				if len(store.ids) != 0 {
					t.Errorf("a refused proof reached the replay store")
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify = %v", err)
			}
			if len(store.ids) != 1 {
				t.Fatalf("replay store asked %d times, want once", len(store.ids))
			}
			if store.ids[0] != NewReplayID(p.JKT, p.JTI) {
				t.Errorf("replay id is not NewReplayID(jkt, jti)")
			}
			if want := p.IssuedAt.Add(DefaultMaxAge); !store.expires[0].Equal(want) {
				t.Errorf("replay record expires %v, want iat+MaxAge %v", store.expires[0], want)
			}
		})
	}
}

func with2(p ProofParams, jti string) ProofParams { p.JTI = jti; return p }

// nonCanonical returns the 43-character base64url encoding of a SHA-256
// digest with its unused trailing bits set: it decodes, leniently, to the
// same digest, and a strict decoder refuses it.
func nonCanonical(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[last|0x03])
}

func with3(p ProofParams, jti, alg string) ProofParams { p.JTI, p.Alg = jti, alg; return p }

// TestVerifyAlgorithmAllowList: a correctly signed proof with an alg
// outside the allow-list is refused.
func TestVerifyAlgorithmAllowList(t *testing.T) {
	key := newECKey(t) // P-256: ES256
	proof, err := NewProof(key, ProofParams{Method: "GET", URL: testURL, AccessToken: testToken, IssuedAt: testNow})
	if err != nil {
		t.Fatal(err)
	}
	only384 := newTestVerifier(t, Config{Algorithms: []string{"ES384"}})
	if _, err := only384.Verify(context.Background(), testRequest(proof)); !errors.Is(err, ErrInvalidProof) {
		t.Fatalf("ES256 proof with only ES384 allowed: %v", err)
	}
	def := newTestVerifier(t, Config{})
	if _, err := def.Verify(context.Background(), testRequest(proof)); err != nil {
		t.Fatalf("ES256 proof with the default list: %v", err)
	}
}

func TestVerifyReplay(t *testing.T) {
	key, other := newECKey(t), newECKey(t)
	v := newTestVerifier(t, Config{})
	ctx := context.Background()
	proof := signES256(t, key, proofHeader(t, key), validClaims("once"))
	if _, err := v.Verify(ctx, testRequest(proof)); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if _, err := v.Verify(ctx, testRequest(proof)); !errors.Is(err, ErrReplay) {
		t.Fatalf("second use = %v, want ErrReplay", err)
	}
	// A fresh proof with the same jti from the same key is a replay too.
	again := signES256(t, key, proofHeader(t, key), validClaims("once"))
	if _, err := v.Verify(ctx, testRequest(again)); !errors.Is(err, ErrReplay) {
		t.Fatalf("same key, same jti = %v, want ErrReplay", err)
	}
	// Another client's key may use the same jti: ids are per key.
	theirs := signES256(t, other, proofHeader(t, other), validClaims("once"))
	if _, err := v.Verify(ctx, testRequest(theirs)); err != nil {
		t.Fatalf("other key, same jti: %v", err)
	}
}

// TestVerifyReplayAtTheEdgeOfTheWindow: at exactly iat+MaxAge the proof is
// still acceptable, so its replay must still be caught.
func TestVerifyReplayAtTheEdgeOfTheWindow(t *testing.T) {
	key := newECKey(t)
	edge := testNow.Add(DefaultMaxAge)
	v := newTestVerifier(t, Config{Now: func() time.Time { return edge }})
	proof := signES256(t, key, proofHeader(t, key), validClaims("edge"))
	if _, err := v.Verify(context.Background(), testRequest(proof)); err != nil {
		t.Fatalf("first use at iat+MaxAge: %v", err)
	}
	if _, err := v.Verify(context.Background(), testRequest(proof)); !errors.Is(err, ErrReplay) {
		t.Fatalf("second use at iat+MaxAge = %v, want ErrReplay", err)
	}
}

func TestVerifyStoreFailuresFailClosed(t *testing.T) {
	key := newECKey(t)
	tests := []struct {
		name  string
		store ReplayStore
		want  error
	}{
		{"unavailable", funcStore(func(context.Context, Replay) error { return ErrStoreUnavailable }), ErrStoreUnavailable},
		{"full", funcStore(func(context.Context, Replay) error { return ErrStoreFull }), ErrStoreFull},
		{"replay", funcStore(func(context.Context, Replay) error { return ErrReplay }), ErrReplay},
		{"quota", funcStore(func(context.Context, Replay) error { return ErrKeyQuota }), ErrKeyQuota},
		{"contract-breaking error", funcStore(func(context.Context, Replay) error { return errors.New("disk on fire") }), ErrStoreUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestVerifier(t, Config{ReplayStore: tt.store})
			p, err := v.Verify(context.Background(), testRequest(signES256(t, key, proofHeader(t, key), validClaims("x"))))
			if !errors.Is(err, tt.want) || p != nil {
				t.Fatalf("Verify = %v, %v; want %v", p, err, tt.want)
			}
		})
	}
}

func TestVerifyNonces(t *testing.T) {
	key := newECKey(t)
	secret := []byte(strings.Repeat("s", 32))
	nonces, err := NewNonces([][]byte{secret}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := NewNonces([][]byte{[]byte(strings.Repeat("f", 32))}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	current := nonces.Issue(testNow)
	previous := nonces.Issue(testNow.Add(-time.Minute))
	tooOld := nonces.Issue(testNow.Add(-2 * time.Minute))
	tests := []struct {
		name      string
		nonce     any
		want      error
		wantRenew bool
	}{
		{"current", current, nil, false},
		{"previous step: accepted, renewed", previous, nil, true},
		{"missing", nil, ErrUseNonce, false},
		{"empty", "", ErrUseNonce, false},
		{"two steps old", tooOld, ErrUseNonce, false},
		{"from the future", nonces.Issue(testNow.Add(time.Minute)), ErrUseNonce, false},
		{"another server's secret", foreign.Issue(testNow), ErrUseNonce, false},
		{"garbage", "not-a-nonce", ErrUseNonce, false},
		{"tampered", current[:len(current)-2] + "AA", ErrUseNonce, false},
		{"a number", 42, ErrInvalidProof, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestVerifier(t, Config{Nonces: nonces})
			claims := validClaims("n" + string(rune('a'+i)))
			if tt.nonce != nil {
				claims["nonce"] = tt.nonce
			}
			p, err := v.Verify(context.Background(), testRequest(signES256(t, key, proofHeader(t, key), claims)))
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Verify = %v, want %v", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify = %v", err)
			}
			if p.RenewNonce != tt.wantRenew {
				t.Errorf("RenewNonce = %v, want %v", p.RenewNonce, tt.wantRenew)
			}
		})
	}
}

func TestNoncesRotationAndValidation(t *testing.T) {
	oldSecret, newSecret := []byte(strings.Repeat("o", 32)), []byte(strings.Repeat("n", 32))
	before, err := NewNonces([][]byte{oldSecret}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	after, err := NewNonces([][]byte{newSecret, oldSecret}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := after.Check(before.Issue(testNow), testNow); !ok {
		t.Error("a nonce made with the old secret is refused during rotation")
	}
	if ok, _ := before.Check(after.Issue(testNow), testNow); ok {
		t.Error("a server without the new secret accepts its nonces")
	}
	// Replicas sharing a secret accept each other's nonces.
	replica, err := NewNonces([][]byte{oldSecret}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := replica.Check(before.Issue(testNow), testNow); !ok {
		t.Error("a replica with the same secret refuses the nonce")
	}
	// Without secrets, each source is on its own.
	a, _ := NewNonces(nil, 0)
	b, _ := NewNonces(nil, 0)
	if ok, _ := b.Check(a.Issue(testNow), testNow); ok {
		t.Error("two random-secret sources accept each other's nonces")
	}
	for _, bad := range []struct {
		secrets  [][]byte
		lifetime time.Duration
	}{
		{[][]byte{[]byte("short")}, time.Minute},
		{nil, time.Millisecond},
		{nil, 48 * time.Hour},
	} {
		if _, err := NewNonces(bad.secrets, bad.lifetime); err == nil {
			t.Errorf("NewNonces(%d secrets, %v) succeeded", len(bad.secrets), bad.lifetime)
		}
	}
}

func TestNewVerifierValidation(t *testing.T) {
	for _, cfg := range []Config{
		{Algorithms: []string{}},
		{Algorithms: []string{"HS256"}},
		{Algorithms: []string{"none"}},
		{MaxAge: -time.Second},
		{MaxAge: 2 * time.Hour},
		{MaxClockSkew: -1},
		{MaxProofSize: -1},
		{MaxJTILength: 1 << 20},
	} {
		if _, err := NewVerifier(cfg); err == nil {
			t.Errorf("NewVerifier(%+v) succeeded", cfg)
		}
	}
}
