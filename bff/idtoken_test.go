package bff

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/discovery"
	"github.com/tokenguard/tokenguard/internal/jose"
	"github.com/tokenguard/tokenguard/internal/testkit"
	"github.com/tokenguard/tokenguard/jwks"
)

const idtClient = "orders-spa"

// idTokenHandler returns a Handler for a development issuer (ES256, kid
// "k1", its JWKS served over httptest) and the issuer's metadata.
func idTokenHandler(t *testing.T) (*Handler, *discovery.Metadata, *devissuer.Issuer) {
	t.Helper()
	is := testkit.StartIssuer(t)
	is.EnableLogin(devissuer.LoginConfig{Clients: []devissuer.Client{{
		ID: idtClient, Secret: "s", RedirectURIs: []string{"http://127.0.0.1:1/bff/callback"},
	}}})
	h, err := New(Config{
		Issuer: is.URL(), ClientID: idtClient, ClientSecret: "s",
		Scopes: []string{"openid"}, PublicURL: "http://127.0.0.1:1",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	md, err := h.endpoints(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return h, md, is
}

// unsignedJWS builds a compact JWS with the given header and claims and
// the given signature function over the signing input.
func unsignedJWS(t *testing.T, header, claims map[string]any, sign func(input string) []byte) string {
	t.Helper()
	hj, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	cj, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(hj) + "." + base64.RawURLEncoding.EncodeToString(cj)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign(input))
}

// TestVerifyIDToken: each row differs from a valid ID token by one thing
// and must be refused; removing the check it covers makes it pass.
func TestVerifyIDToken(t *testing.T) {
	h, md, is := idTokenHandler(t)
	const nonce = "n-0S6_WzA2Mj"
	now := time.Now()
	valid := func() map[string]any {
		return map[string]any{
			"iss": is.URL(), "sub": "alice", "aud": idtClient,
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "nonce": nonce,
			"name": "Alice",
		}
	}
	signWith := func(k *devissuer.Key, header, claims map[string]any) string {
		t.Helper()
		tok, err := k.Sign(header, claims)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	sign := func(claims map[string]any) string {
		return signWith(is.SigningKey(), map[string]any{"typ": "JWT"}, claims)
	}
	with := func(change func(map[string]any)) string {
		c := valid()
		change(c)
		return sign(c)
	}
	otherKey, err := devissuer.GenerateKey("ES256", "k1") // same kid, not published
	if err != nil {
		t.Fatal(err)
	}
	unknownKey, err := devissuer.GenerateKey("ES256", "k-unknown")
	if err != nil {
		t.Fatal(err)
	}
	tamper := func(tok string) string {
		// Flip one bit of the payload's first byte: still base64url,
		// still three segments, the signature no longer matches.
		parts := strings.Split(tok, ".")
		p, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var c map[string]any
		_ = json.Unmarshal(p, &c)
		c["sub"] = "mallory"
		p, _ = json.Marshal(c)
		parts[1] = base64.RawURLEncoding.EncodeToString(p)
		return strings.Join(parts, ".")
	}
	// An RSA key published for RS256 only: the same key's PS256
	// signatures, valid as signatures, are refused (the alg is bound to
	// the key by its JWK "alg").
	rsaKey, err := devissuer.GenerateKey("RS256", "r1")
	if err != nil {
		t.Fatal(err)
	}
	is.Publish(is.SigningKey(), rsaKey)
	signPS256 := func(in string) []byte {
		d := sha256.Sum256([]byte(in))
		sig, err := rsa.SignPSS(rand.Reader, rsaKey.Private.(*rsa.PrivateKey), crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	// The classic confusion: HMAC keyed with the public key's bytes.
	pubDER, err := x509.MarshalPKIXPublicKey(is.SigningKey().Private.Public())
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		token string
		nonce string // "" means nonce
		ok    bool
		want  string // a fragment of the error, or "" for any error
		is    error  // errors.Is target, or nil
	}{
		{name: "valid", token: sign(valid()), ok: true},
		{name: "valid, exp within leeway", token: with(func(c map[string]any) { c["exp"] = now.Add(-30 * time.Second).Unix() }), ok: true},
		{name: "valid, iat slightly ahead", token: with(func(c map[string]any) { c["iat"] = now.Add(30 * time.Second).Unix() }), ok: true},
		{name: "valid, aud array with azp us", token: with(func(c map[string]any) { c["aud"] = []string{"other", idtClient}; c["azp"] = idtClient }), ok: true},

		{name: "wrong iss", token: with(func(c map[string]any) { c["iss"] = "https://evil.example" }), want: "iss"},
		{name: "iss with trailing slash", token: with(func(c map[string]any) { c["iss"] = is.URL() + "/" }), want: "iss"},
		{name: "no iss", token: with(func(c map[string]any) { delete(c, "iss") }), want: "iss"},
		{name: "aud another client (string)", token: with(func(c map[string]any) { c["aud"] = "other-client" }), want: "aud"},
		{name: "aud another client (array)", token: with(func(c map[string]any) { c["aud"] = []string{"other-client", "third"} }), want: "aud"},
		{name: "aud empty array", token: with(func(c map[string]any) { c["aud"] = []string{} }), want: "aud"},
		{name: "no aud", token: with(func(c map[string]any) { delete(c, "aud") }), want: "aud"},
		{name: "aud not a string", token: with(func(c map[string]any) { c["aud"] = 42 }), want: "wrong JSON type"},
		{name: "aud differs in case", token: with(func(c map[string]any) { c["aud"] = strings.ToUpper(idtClient) }), want: "aud"},
		{name: "several aud, no azp", token: with(func(c map[string]any) { c["aud"] = []string{idtClient, "other-client"} }), want: "no azp"},
		{name: "one aud, azp another client", token: with(func(c map[string]any) { c["azp"] = "other-client" }), want: "azp"},
		{name: "azp not a string", token: with(func(c map[string]any) { c["azp"] = 7 }), want: "azp or nonce"},
		{name: "exp a string", token: with(func(c map[string]any) { c["exp"] = "9999999999" }), want: "wrong JSON type"},
		{name: "iat out of range", token: with(func(c map[string]any) { c["iat"] = 1e300 }), want: "claims"},
		{name: "nonce not a string", token: with(func(c map[string]any) { c["nonce"] = 1 }), want: "azp or nonce"},
		{name: "duplicate iss", token: func() string {
			tok, err := is.SigningKey().SignPayload(map[string]any{"typ": "JWT"}, []byte(`{"iss":"https://evil.example","iss":"`+is.URL()+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}(), want: "claims"},
		{name: "trailing data after the claims", token: func() string {
			tok, err := is.SigningKey().SignPayload(map[string]any{"typ": "JWT"}, append(mustJSON(t, valid()), []byte(` {}`)...))
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}(), want: "claims"},
		{name: "several aud, azp another client", token: with(func(c map[string]any) { c["aud"] = []string{idtClient, "other-client"}; c["azp"] = "other-client" }), want: "azp"},
		{name: "expired beyond leeway", token: with(func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() }), want: "expired"},
		{name: "expired long ago", token: with(func(c map[string]any) { c["exp"] = 1 }), want: "expired"},
		{name: "no exp", token: with(func(c map[string]any) { delete(c, "exp") }), want: "exp or iat"},
		{name: "exp not a number", token: with(func(c map[string]any) { c["exp"] = true }), want: ""},
		{name: "no iat", token: with(func(c map[string]any) { delete(c, "iat") }), want: "exp or iat"},
		{name: "iat far in the future", token: with(func(c map[string]any) { c["iat"] = now.Add(time.Hour).Unix() }), want: "future"},
		{name: "iat beyond leeway", token: with(func(c map[string]any) { c["iat"] = now.Add(2 * time.Minute).Unix() }), want: "future"},
		{name: "nonce missing", token: with(func(c map[string]any) { delete(c, "nonce") }), want: "nonce"},
		{name: "nonce missing, none expected", token: with(func(c map[string]any) { delete(c, "nonce") }), nonce: "-", want: "nonce"},
		{name: "nonce empty, none expected", token: with(func(c map[string]any) { c["nonce"] = "" }), nonce: "-", want: "nonce"},
		{name: "nonce different", token: with(func(c map[string]any) { c["nonce"] = "another-login" }), want: "nonce"},
		{name: "nonce prefix", token: with(func(c map[string]any) { c["nonce"] = nonce[:5] }), want: "nonce"},
		{name: "no sub", token: with(func(c map[string]any) { delete(c, "sub") }), want: "sub"},
		{name: "empty sub", token: with(func(c map[string]any) { c["sub"] = "" }), want: "sub"},

		{name: "signature tampered (payload changed)", token: tamper(sign(valid())), is: jose.ErrInvalidSignature},
		{name: "signature bytes flipped", token: func() string {
			tok := sign(valid())
			i := strings.LastIndexByte(tok, '.') + 5
			b := []byte(tok)
			if b[i] == 'A' {
				b[i] = 'B'
			} else {
				b[i] = 'A'
			}
			return string(b)
		}(), want: ""},
		{name: "signature stripped", token: func() string { tok := sign(valid()); return tok[:strings.LastIndexByte(tok, '.')+1] }(), want: ""},
		{name: "signed by another key with the published kid", token: signWith(otherKey, map[string]any{"typ": "JWT"}, valid()), is: jose.ErrInvalidSignature},
		{name: "signed by a key not in the JWKS (unknown kid)", token: signWith(unknownKey, map[string]any{"typ": "JWT"}, valid()), is: jwks.ErrUnknownKID},
		{name: "alg none", token: unsignedJWS(t, map[string]any{"alg": "none", "kid": "k1", "typ": "JWT"}, valid(), func(string) []byte { return nil }), want: "alg"},
		{name: "alg none, no kid", token: unsignedJWS(t, map[string]any{"alg": "none", "typ": "JWT"}, valid(), func(string) []byte { return nil }), want: ""},
		{name: "alg HS256 keyed with the public key", token: unsignedJWS(t, map[string]any{"alg": "HS256", "kid": "k1", "typ": "JWT"}, valid(), func(in string) []byte {
			m := hmac.New(sha256.New, pubDER)
			m.Write([]byte(in))
			return m.Sum(nil)
		}), want: "alg"},
		{name: "valid, RS256 on the RSA key", token: signWith(rsaKey, map[string]any{"typ": "JWT"}, valid()), ok: true},
		{name: "alg PS256 on the RS256-only key", token: unsignedJWS(t, map[string]any{"alg": "PS256", "kid": "r1", "typ": "JWT"}, valid(), signPS256), want: "alg"},
		{name: "alg ES384 on the ES256 key", token: unsignedJWS(t, map[string]any{"alg": "ES384", "kid": "k1", "typ": "JWT"}, valid(), func(string) []byte { return make([]byte, 96) }), want: "alg"},
		{name: "oversized", token: with(func(c map[string]any) { c["pad"] = strings.Repeat("x", MaxTokenSize) }), want: "MaxTokenSize"},
		{name: "payload an array", token: func() string {
			tok, err := is.SigningKey().SignPayload(map[string]any{"typ": "JWT"}, []byte(`["alice"]`))
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}(), want: "malformed JSON"},
		{name: "payload null", token: func() string {
			tok, err := is.SigningKey().SignPayload(map[string]any{"typ": "JWT"}, []byte(`null`))
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}(), want: "malformed JSON"},
		{name: "payload not JSON", token: func() string {
			tok, err := is.SigningKey().SignPayload(map[string]any{"typ": "JWT"}, []byte(`alice`))
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}(), want: ""},
		{name: "empty", token: "", want: "no id_token"},
		{name: "not a JWS", token: "not.a.jws", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := nonce
			switch tc.nonce {
			case "":
			case "-":
				n = ""
			default:
				n = tc.nonce
			}
			claims, err := h.verifyIDToken(t.Context(), md, tc.token, n, now)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				var c map[string]any
				if err := json.Unmarshal(claims, &c); err != nil {
					t.Fatalf("claims %s: %v", claims, err)
				}
				if c["sub"] != "alice" || c["name"] != "Alice" {
					t.Errorf("claims = %s", claims)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, claims %s", claims)
			}
			if claims != nil {
				t.Errorf("claims returned with an error: %s", claims)
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
		})
	}
}

// TestVerifyIDTokenUsesNow: the time checks use the now passed in (the
// handler's clock), not the wall clock.
func TestVerifyIDTokenUsesNow(t *testing.T) {
	h, md, is := idTokenHandler(t)
	iat := time.Now()
	tok, err := is.SigningKey().Sign(nil, map[string]any{
		"iss": is.URL(), "sub": "alice", "aud": idtClient, "nonce": "n",
		"iat": iat.Unix(), "exp": iat.Add(5 * time.Minute).Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.verifyIDToken(t.Context(), md, tok, "n", iat); err != nil {
		t.Fatalf("at iat: %v", err)
	}
	if _, err := h.verifyIDToken(t.Context(), md, tok, "n", iat.Add(7*time.Minute)); err == nil {
		t.Error("accepted 7 minutes later: exp + leeway passed")
	}
	if _, err := h.verifyIDToken(t.Context(), md, tok, "n", iat.Add(-2*time.Minute)); err == nil {
		t.Error("accepted 2 minutes before its iat")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
