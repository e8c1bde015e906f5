package middleware

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/httpauth"
)

// craft builds a compact JWS from raw parts, for tokens no honest signer
// would produce (alg none, HMAC keyed with a public key).
func craft(t testing.TB, header, claims map[string]any, sign func(signingInput string) []byte) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := enc(header) + "." + enc(claims)
	var sig []byte
	if sign != nil {
		sig = sign(in)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestRequire(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	other := newTestIssuer(t, "ES256", "k1") // same kid, different key
	legacy := newTestIssuer(t, "RS256", "legacy-1")
	es512 := mustKey(t, "ES512", "k512")
	is.Publish(is.SigningKey(), es512)
	attacker := mustKey(t, "ES256", "k1")

	var logs syncBuffer
	g := newGuard(t, Config{
		Audience: testAudience,
		Logger:   slog.New(slog.NewJSONHandler(&logs, nil)),
		Issuers: []Issuer{
			is.config(),
			other.config(),
			{Issuer: legacy.URL(), JWKSURI: legacy.jwksURI(), AllowLegacyTyp: true, ScpClaim: true},
		},
		DisableTokenCache:    true,
		JWKSRefreshRateLimit: time.Hour, // unknown kids are answered from memory
	})
	h := g.Require("orders:read")(okHandler)

	now := time.Now()
	sign := func(k interface {
		Sign(map[string]any, map[string]any) (string, error)
	}, hdr, claims map[string]any) string {
		tok, err := k.Sign(hdr, claims)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	claims := func(over map[string]any) map[string]any {
		c := is.Claims("orders:read", time.Hour)
		for k, v := range over {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	atHdr := map[string]any{"typ": "at+jwt"}

	tests := []struct {
		name       string
		auth       []string
		wantStatus int
		wantCode   string
		wantReason Reason
	}{
		{name: "valid", auth: []string{"Bearer " + is.mint(t, "orders:read", nil)}, wantStatus: 200, wantReason: ReasonOK},
		{name: "scheme case-insensitive", auth: []string{"bEARER " + is.mint(t, "orders:read", nil)}, wantStatus: 200, wantReason: ReasonOK},
		{name: "extra scopes fine", auth: []string{"Bearer " + is.mint(t, "a orders:read b", nil)}, wantStatus: 200, wantReason: ReasonOK},
		{name: "application/at+jwt typ", auth: []string{"Bearer " + sign(is.SigningKey(), map[string]any{"typ": "application/at+jwt"}, claims(nil))}, wantStatus: 200, wantReason: ReasonOK},
		{name: "aud array", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"aud": []string{"x", testAudience}})}, wantStatus: 200, wantReason: ReasonOK},
		{name: "expired within leeway", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"exp": now.Add(-10 * time.Second).Unix()})}, wantStatus: 200, wantReason: ReasonOK},
		{name: "nbf within leeway", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"nbf": now.Add(10 * time.Second).Unix()})}, wantStatus: 200, wantReason: ReasonOK},
		{name: "legacy typ JWT on legacy issuer", auth: []string{"Bearer " + sign(legacy.SigningKey(), map[string]any{"typ": "JWT"}, map[string]any{"iss": legacy.URL(), "aud": testAudience, "exp": now.Add(time.Hour).Unix(), "scope": "orders:read"})}, wantStatus: 200, wantReason: ReasonOK},
		{name: "iat within leeway", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"iat": now.Add(10 * time.Second).Unix()})}, wantStatus: 200, wantReason: ReasonOK},
		{name: "scope as a JSON array", auth: []string{"Bearer " + is.mint(t, "", map[string]any{"scope": []string{"orders:write", "orders:read"}})}, wantStatus: 200, wantReason: ReasonOK},
		{name: "scp array on scp issuer", auth: []string{"Bearer " + sign(legacy.SigningKey(), atHdr, map[string]any{"iss": legacy.URL(), "aud": testAudience, "exp": now.Add(time.Hour).Unix(), "sub": "s", "client_id": "c", "iat": now.Unix(), "jti": "j", "scp": []string{"orders:read"}})}, wantStatus: 200, wantReason: ReasonOK},

		{name: "no credentials", wantStatus: 401, wantReason: ReasonMissingToken},
		{name: "two Authorization headers", auth: []string{"Bearer " + is.mint(t, "orders:read", nil), "Bearer x"}, wantStatus: 400, wantCode: CodeInvalidRequest, wantReason: ReasonMalformedRequest},
		{name: "scheme only", auth: []string{"Bearer"}, wantStatus: 400, wantCode: CodeInvalidRequest, wantReason: ReasonMalformedRequest},
		{name: "basic scheme", auth: []string{"Basic dXNlcjpwYXNz"}, wantStatus: 401, wantReason: ReasonUnsupportedScheme},
		// Any other scheme is a 401 with a challenge (RFC 6750 §3),
		// whatever characters spell it; none is taken for Bearer.
		{name: "Cyrillic look-alike scheme", auth: []string{"B\u0435\u0430r\u0435r " + is.mint(t, "orders:read", nil)}, wantStatus: 401, wantReason: ReasonUnsupportedScheme},
		{name: "Greek look-alike scheme", auth: []string{"\u0392earer " + is.mint(t, "orders:read", nil)}, wantStatus: 401, wantReason: ReasonUnsupportedScheme},
		{name: "fullwidth scheme", auth: []string{"\uff22\uff45\uff41\uff52\uff45\uff52 " + is.mint(t, "orders:read", nil)}, wantStatus: 401, wantReason: ReasonUnsupportedScheme},
		{name: "scheme with a Latin-1 letter", auth: []string{"B\u00e9arer x"}, wantStatus: 401, wantReason: ReasonUnsupportedScheme},
		{name: "scheme with a quote", auth: []string{`"Bearer" x`}, wantStatus: 401, wantReason: ReasonUnsupportedScheme},
		{name: "no-break space after the scheme", auth: []string{"Bearer\u00a0" + is.mint(t, "orders:read", nil)}, wantStatus: 401, wantReason: ReasonUnsupportedScheme},
		{name: "empty value", auth: []string{""}, wantStatus: 401, wantReason: ReasonUnsupportedScheme},
		{name: "tab after the scheme", auth: []string{"Bearer\t" + is.mint(t, "orders:read", nil)}, wantStatus: 400, wantCode: CodeInvalidRequest, wantReason: ReasonMalformedRequest},
		{name: "DPoP scheme while disabled", auth: []string{"DPoP " + is.mint(t, "orders:read", nil)}, wantStatus: 401, wantReason: ReasonUnsupportedScheme},
		{name: "token too large", auth: []string{"Bearer " + strings.Repeat("a", DefaultMaxTokenSize+1)}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonTokenTooLarge},
		{name: "not a b64token", auth: []string{"Bearer a,b"}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonMalformedToken},
		{name: "two segments", auth: []string{"Bearer abc.def"}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonMalformedToken},
		{name: "opaque token", auth: []string{"Bearer 2YotnFZFEjr1zCsicMWpAA"}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonMalformedToken},
		{name: "alg none", auth: []string{"Bearer " + craft(t, map[string]any{"alg": "none", "typ": "at+jwt"}, claims(nil), nil)}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonUnsupportedAlg},
		{name: "HS256 keyed with the public JWK", auth: []string{"Bearer " + craft(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "k1"}, claims(nil), hmacWith(publicJWKBytes(t, is)))}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonUnsupportedAlg},
		{name: "alg outside allow-list", auth: []string{"Bearer " + sign(es512, atHdr, claims(nil))}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonUnsupportedAlg},
		{name: "typ missing", auth: []string{"Bearer " + sign(is.SigningKey(), nil, claims(nil))}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonInvalidType},
		{name: "typ JWT (an ID token)", auth: []string{"Bearer " + sign(is.SigningKey(), map[string]any{"typ": "JWT"}, claims(nil))}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonInvalidType},
		{name: "unknown issuer", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"iss": "https://evil.example.com"})}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonUnknownIssuer},
		{name: "iss with a trailing slash", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"iss": is.URL() + "/"})}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonUnknownIssuer},
		{name: "iss in upper case", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"iss": strings.ToUpper(is.URL())})}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonUnknownIssuer},
		{name: "RSA key pinned to RS256, PS256 header", auth: []string{"Bearer " + craft(t, map[string]any{"alg": "PS256", "typ": "at+jwt", "kid": "legacy-1"}, map[string]any{"iss": legacy.URL(), "aud": testAudience, "exp": now.Add(time.Hour).Unix(), "sub": "s", "client_id": "c", "iat": now.Unix(), "jti": "j", "scope": "orders:read"}, ps256With(legacy.SigningKey()))}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonInvalidSignature},
		{name: "no iss", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"iss": nil})}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonUnknownIssuer},
		{name: "issuer A's key signing for issuer B", auth: []string{"Bearer " + sign(is.SigningKey(), atHdr, claims(map[string]any{"iss": other.URL()}))}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonInvalidSignature},
		{name: "unknown kid", auth: []string{"Bearer " + sign(mustKey(t, "ES256", "nope"), atHdr, claims(nil))}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonUnknownKey},
		{name: "attacker key with our kid", auth: []string{"Bearer " + sign(attacker, atHdr, claims(nil))}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonInvalidSignature},
		// Keys and key references in the header are refused outright
		// (RFC 8725 §3.10): neither the attacker's key nor ours helps.
		{name: "embedded jwk header (attacker key)", auth: []string{"Bearer " + sign(attacker, map[string]any{"typ": "at+jwt", "jwk": mustPublicJWK(t, attacker)}, claims(nil))}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonMalformedToken},
		{name: "embedded jwk header (our key)", auth: []string{"Bearer " + sign(is.SigningKey(), map[string]any{"typ": "at+jwt", "jwk": mustPublicJWK(t, is.SigningKey())}, claims(nil))}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonMalformedToken},
		{name: "jku header", auth: []string{"Bearer " + sign(attacker, map[string]any{"typ": "at+jwt", "jku": "http://127.0.0.1:1/attacker-jwks"}, claims(nil))}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonMalformedToken},
		{name: "x5u header", auth: []string{"Bearer " + sign(attacker, map[string]any{"typ": "at+jwt", "x5u": "http://127.0.0.1:1/cert"}, claims(nil))}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonMalformedToken},
		{name: "x5c header", auth: []string{"Bearer " + craft(t, map[string]any{"alg": "ES256", "kid": "k1", "typ": "at+jwt", "x5c": []string{"MIIB"}}, claims(nil), es256With(is.SigningKey()))}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonMalformedToken},
		{name: "crit header", auth: []string{"Bearer " + sign(is.SigningKey(), map[string]any{"typ": "at+jwt", "crit": []string{"exp"}, "exp": 1}, claims(nil))}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonMalformedToken},
		{name: "claims not JSON", auth: []string{"Bearer " + signRaw(t, is, `{"iss":`)}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonMalformedToken},
		{name: "exp as a string", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"exp": "9999999999"})}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonMalformedToken},
		{name: "ES256 key, RS256 header", auth: []string{"Bearer " + craft(t, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": "k1"}, claims(nil), func(string) []byte { return make([]byte, 256) })}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonInvalidSignature},
		{name: "tampered payload", auth: []string{"Bearer " + tamper(t, is.mint(t, "orders:read", nil))}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonInvalidSignature},
		{name: "exp missing", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"exp": nil})}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonMissingClaim},
		{name: "expired", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"exp": now.Add(-time.Minute).Unix()})}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonExpired},
		{name: "nbf in the future", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"nbf": now.Add(time.Minute).Unix()})}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonNotYetValid},
		{name: "iat in the future", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"iat": now.Add(time.Minute).Unix()})}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonNotYetValid},
		{name: "wrong audience", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"aud": "https://other.example.com"})}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonInvalidAudience},
		{name: "audience array without us", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"aud": []string{"a", "b"}})}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonInvalidAudience},
		{name: "audience with a suffix", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"aud": testAudience + "x"})}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonInvalidAudience},
		{name: "audience with a path", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"aud": testAudience + "/admin"})}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonInvalidAudience},
		{name: "scope array holding a space-delimited string", auth: []string{"Bearer " + is.mint(t, "", map[string]any{"scope": []string{"a orders:read"}})}, wantStatus: 403, wantCode: CodeInsufficientScope, wantReason: ReasonInsufficientScope},
		{name: "no aud", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"aud": nil})}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonInvalidAudience},
		{name: "at+jwt without sub", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"sub": nil})}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonMissingClaim},
		{name: "at+jwt without client_id", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"client_id": nil})}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonMissingClaim},
		{name: "at+jwt without jti", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"jti": nil})}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonMissingClaim},
		{name: "at+jwt without iat", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"iat": nil})}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonMissingClaim},
		{name: "DPoP-bound token as Bearer", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"cnf": map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}})}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonDPoPBound},
		{name: "legacy typ refused on strict issuer", auth: []string{"Bearer " + sign(is.SigningKey(), map[string]any{"typ": "JWT"}, claims(nil))}, wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonInvalidType},
		{name: "scp ignored without ScpClaim", auth: []string{"Bearer " + is.mint(t, "", map[string]any{"scp": []string{"orders:read"}})}, wantStatus: 403, wantCode: CodeInsufficientScope, wantReason: ReasonInsufficientScope},
		{name: "missing scope", auth: []string{"Bearer " + is.mint(t, "orders:write", nil)}, wantStatus: 403, wantCode: CodeInsufficientScope, wantReason: ReasonInsufficientScope},
		{name: "scope prefix is not the scope", auth: []string{"Bearer " + is.mint(t, "orders:rea orders:readx", nil)}, wantStatus: 403, wantCode: CodeInsufficientScope, wantReason: ReasonInsufficientScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs.Reset()
			rec := do(h, tt.auth...)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s; log %s", rec.Code, tt.wantStatus, rec.Body, logs.String())
			}
			if tt.wantStatus == 200 {
				return
			}
			if got := deniedReason(t, logs.String()); got != tt.wantReason {
				t.Errorf("logged reason = %q, want %q; log %s", got, tt.wantReason, logs.String())
			}
			cs, err := httpauth.ParseChallenges(rec.Header().Get("WWW-Authenticate"))
			if err != nil {
				t.Fatalf("WWW-Authenticate %q: %v", rec.Header().Get("WWW-Authenticate"), err)
			}
			params := map[string]string{}
			for _, p := range cs[0].Params {
				params[p.Name] = p.Value
			}
			if cs[0].Scheme != "Bearer" || params["realm"] != testAudience {
				t.Errorf("challenge = %+v", cs)
			}
			if params["error"] != tt.wantCode {
				t.Errorf("error = %q, want %q", params["error"], tt.wantCode)
			}
			var body struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Errorf("body %q: %v", rec.Body, err)
			}
			wantBody := tt.wantCode
			if wantBody == "" {
				wantBody = string(tt.wantReason)
			}
			if body.Error != wantBody {
				t.Errorf("body error = %q, want %q (reason %s)", body.Error, wantBody, tt.wantReason)
			}
			for _, a := range tt.auth {
				assertNoEcho(t, rec.Header(), rec.Body.String(), a)
				// Nor does any part of the token reach the log.
				for seg := range strings.SplitSeq(strings.TrimPrefix(a, "Bearer "), ".") {
					if len(seg) >= 16 && strings.Contains(logs.String(), seg) {
						t.Errorf("token segment %.20s… in the log", seg)
					}
				}
			}
		})
	}
}

// deniedReason returns the reason of the one "request denied" record in a
// JSON log.
func deniedReason(t testing.TB, log string) Reason {
	t.Helper()
	var reasons []Reason
	for line := range strings.Lines(log) {
		var e struct {
			Msg    string
			Reason Reason
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if e.Msg == "request denied" {
			reasons = append(reasons, e.Reason)
		}
	}
	if len(reasons) != 1 {
		t.Fatalf("want one denial logged, got %v", reasons)
	}
	return reasons[0]
}

// assertNoEcho fails if the response repeats any part of a credential.
func assertNoEcho(t *testing.T, h http.Header, body, auth string) {
	t.Helper()
	_, tok, _ := strings.Cut(auth, " ")
	var parts []string
	for _, p := range strings.Split(tok, ".") {
		if len(p) >= 8 {
			parts = append(parts, p)
		}
	}
	all := body
	for k, vs := range h {
		all += k + ": " + strings.Join(vs, ",") + "\n"
	}
	for _, p := range parts {
		if strings.Contains(all, p) {
			t.Errorf("response echoes token material %q", p[:8])
		}
	}
}

// es256With signs like an ES256 JWS signer (raw r||s) with k's private key.
func es256With(k *devissuer.Key) func(string) []byte {
	return func(in string) []byte {
		h := sha256.Sum256([]byte(in))
		r, s, err := ecdsa.Sign(rand.Reader, k.Private.(*ecdsa.PrivateKey), h[:])
		if err != nil {
			panic(err)
		}
		return append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	}
}

// ps256With signs with RSASSA-PSS (salt as long as the hash, RFC 7518
// §3.5) using an RSA issuer key.
func ps256With(k *devissuer.Key) func(string) []byte {
	return func(in string) []byte {
		h := sha256.Sum256([]byte(in))
		sig, err := rsa.SignPSS(rand.Reader, k.Private.(*rsa.PrivateKey), crypto.SHA256, h[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		if err != nil {
			panic(err)
		}
		return sig
	}
}

// signRaw signs raw claims bytes (not necessarily JSON) as an at+jwt with
// the issuer's key.
func signRaw(t testing.TB, is *testIssuer, claims string) string {
	t.Helper()
	tok, err := is.SigningKey().SignPayload(map[string]any{"typ": "at+jwt"}, []byte(claims))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func tamper(t testing.TB, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	payload = []byte(strings.Replace(string(payload), `"demo-user"`, `"root-user"`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

func hmacWith(secret []byte) func(string) []byte {
	return func(in string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(in))
		return m.Sum(nil)
	}
}

// publicJWKBytes returns the issuer's published JWKS: the bytes an
// algorithm-confusion attacker would use as an HMAC secret.
func publicJWKBytes(t testing.TB, is *testIssuer) []byte {
	t.Helper()
	b, err := is.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustPublicJWK(t testing.TB, k interface{ PublicJWK() (jwk.Key, error) }) jwk.Key {
	t.Helper()
	pub, err := k.PublicJWK()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}
