package introspect

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/jwks"
)

// answerTyp is the JWS "typ" of a signed answer.
const answerTyp = "token-introspection+jwt"

// signingAS is an authorization server's signing side: a key, the JWKS
// that publishes it on 127.0.0.1, and a key set that fetched it.
type signingAS struct {
	key  *devissuer.Key
	iss  *devissuer.Issuer
	keys *jwks.Set
}

// newSigningAS publishes a fresh key of alg under kid "as-1" and loads it
// into a key set restricted to algs (nil: the default allow-list).
func newSigningAS(tb testing.TB, alg string, algs ...string) *signingAS {
	tb.Helper()
	key := mustDevKey(tb, alg, "as-1")
	srv := httptest.NewUnstartedServer(nil)
	url := "http://" + srv.Listener.Addr().String()
	as := &signingAS{key: key, iss: devissuer.New(url, testAudience, key)}
	srv.Config.Handler = as.iss.Handler()
	srv.Start()
	tb.Cleanup(srv.Close)
	set, err := jwks.New(bounded(tb, 10*time.Second), jwks.Config{URL: url + "/jwks", Algorithms: algs})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = set.Close() })
	if !set.Ready() {
		tb.Fatal("key set did not load")
	}
	as.keys = set
	return as
}

func mustDevKey(tb testing.TB, alg, kid string) *devissuer.Key {
	tb.Helper()
	k, err := devissuer.GenerateKey(alg, kid)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// envelope is a valid signed answer's claims set at t0 around inner.
func envelope(inner map[string]any) map[string]any {
	return map[string]any{
		"iss":                 testIssuer,
		"aud":                 testAudience,
		"iat":                 t0.Unix(),
		"token_introspection": inner,
	}
}

// sign signs claims with k as a signed answer; header adds to (or, with
// nil values, removes from) the default header {alg, kid, typ}.
func sign(tb testing.TB, k *devissuer.Key, header, claims map[string]any) string {
	tb.Helper()
	h := map[string]any{"typ": answerTyp}
	for name, v := range header {
		h[name] = v
	}
	tok, err := k.Sign(h, claims)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// signPayload is sign over a ready-made payload.
func signPayload(tb testing.TB, k *devissuer.Key, payload string) string {
	tb.Helper()
	tok, err := k.SignPayload(map[string]any{"typ": answerTyp}, []byte(payload))
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// unsigned builds a compact JWS with the given header and claims and an
// arbitrary signature, for algorithms no key may sign with.
func unsigned(tb testing.TB, header, claims map[string]any, sig []byte) string {
	tb.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			tb.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(header) + "." + enc(claims) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// respondSigned answers 200 with body as a signed answer, after checking
// that the request asked for one.
func respondSigned(tb testing.TB, body string) http.HandlerFunc {
	return respondAs(tb, mediaTypeJWT, body)
}

// respondAs answers 200 with body and Content-Type ct ("" for none).
func respondAs(tb testing.TB, ct, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Accept"); got != mediaTypeJWT {
			tb.Errorf("Accept %q, want %q", got, mediaTypeJWT)
		}
		if ct == "" {
			w.Header()["Content-Type"] = nil // no sniffing either
		} else {
			w.Header().Set("Content-Type", ct)
		}
		_, _ = w.Write([]byte(body))
	}
}

// jwtConfig is baseConfig asking for signed answers verified with as's keys.
func jwtConfig(s *server, clk *clock, as *signingAS) Config {
	cfg := baseConfig(s, clk)
	cfg.ResponseFormat = ResponseJWT
	cfg.Keys = as.keys
	return cfg
}

func TestSignedAnswerActive(t *testing.T) {
	as := newSigningAS(t, "ES256")
	inner := with(activeClaims(), "cnf", map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}, "ext", "x")
	s := newServer(t, respondSigned(t, sign(t, as.key, nil, envelope(inner))))
	var rec recorder
	cfg := jwtConfig(s, newClock(), as)
	cfg.OnRequest = rec.record
	c := mustNew(t, cfg)
	got, err := c.Introspect(bounded(t, 10*time.Second), testToken)
	if err != nil {
		t.Fatalf("Introspect: %v", err)
	}
	want := &Result{
		Active:    true,
		Issuer:    testIssuer,
		Subject:   "user-1",
		ClientID:  "app-1",
		Scope:     "orders:read orders:write",
		Audience:  []string{"other", testAudience},
		ExpiresAt: t0.Add(time.Hour),
		IssuedAt:  t0.Add(-time.Minute),
		NotBefore: t0.Add(-time.Minute),
		JKT:       "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
		Bound:     true,
	}
	if diff := cmp.Diff(want, got, cmp.FilterPath(func(p cmp.Path) bool {
		return p.String() == "Raw" || p.String() == "hasIssuer" || p.String() == "fetched"
	}, cmp.Ignore())); diff != "" {
		t.Errorf("Result mismatch (-want +got):\n%s", diff)
	}
	// Raw is the token_introspection object, not the envelope.
	var raw map[string]any
	if err := got.Claims(&raw); err != nil || raw["ext"] != "x" || raw["token_introspection"] != nil || raw["active"] != true {
		t.Errorf("Claims = %v, %v; want the token_introspection object", raw, err)
	}

	// Cached like a JSON answer: no second request.
	if _, err := c.Introspect(bounded(t, 10*time.Second), testToken); err != nil {
		t.Fatalf("second Introspect: %v", err)
	}
	if n := s.hits.Load(); n != 1 {
		t.Errorf("hits = %d, want 1 (the answer cached)", n)
	}
	if diff := cmp.Diff([]string{ResultActive}, rec.results()); diff != "" {
		t.Errorf("OnRequest results (-want +got):\n%s", diff)
	}
}

func TestSignedAnswerInactive(t *testing.T) {
	as := newSigningAS(t, "ES256")
	s := newServer(t, respondSigned(t, sign(t, as.key, nil, envelope(map[string]any{"active": false}))))
	c := mustNew(t, jwtConfig(s, newClock(), as))
	for range 2 {
		if r, err := c.Introspect(bounded(t, 10*time.Second), testToken); r != nil || !errors.Is(err, ErrInactive) {
			t.Fatalf("Introspect = %v, %v; want ErrInactive", r, err)
		}
	}
	if n := s.hits.Load(); n != 1 {
		t.Errorf("hits = %d, want 1 (the inactive answer cached)", n)
	}
}

// TestSignedAnswerAccepts: boundary cases that must pass.
func TestSignedAnswerAccepts(t *testing.T) {
	as := newSigningAS(t, "ES256")
	env := envelope(activeClaims())
	tests := []struct {
		name string
		ct   string
		body func(t *testing.T) string
	}{
		{"aud is the client_id", mediaTypeJWT, func(t *testing.T) string { return sign(t, as.key, nil, with(env, "aud", "rs")) }},
		{"aud is the audience, in an array", mediaTypeJWT, func(t *testing.T) string {
			return sign(t, as.key, nil, with(env, "aud", []string{"https://other.example.com", testAudience}))
		}},
		{"typ with application/ prefix", mediaTypeJWT, func(t *testing.T) string {
			return sign(t, as.key, map[string]any{"typ": "application/" + answerTyp}, env)
		}},
		{"typ in upper case", mediaTypeJWT, func(t *testing.T) string {
			return sign(t, as.key, map[string]any{"typ": "Token-Introspection+JWT"}, env)
		}},
		{"Content-Type with a parameter, in upper case", "Application/Token-Introspection+JWT; charset=utf-8", func(t *testing.T) string { return sign(t, as.key, nil, env) }},
		{"trailing newline", mediaTypeJWT, func(t *testing.T) string { return sign(t, as.key, nil, env) + "\r\n" }},
		{"iat at the leeway in the future", mediaTypeJWT, func(t *testing.T) string {
			return sign(t, as.key, nil, with(env, "iat", t0.Add(30*time.Second).Unix()))
		}},
		{"iat as old as allowed", mediaTypeJWT, func(t *testing.T) string {
			return sign(t, as.key, nil, with(env, "iat", t0.Add(-30*time.Second-maxAnswerAge).Unix()))
		}},
		{"exp and nbf in range", mediaTypeJWT, func(t *testing.T) string {
			return sign(t, as.key, nil, with(env, "exp", t0.Add(time.Minute).Unix(), "nbf", t0.Unix()))
		}},
		{"other claims", mediaTypeJWT, func(t *testing.T) string { return sign(t, as.key, nil, with(env, "jti", "a1", "x", []any{1, "y"})) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, respondAs(t, tt.ct, tt.body(t)))
			c := mustNew(t, jwtConfig(s, newClock(), as))
			if r, err := c.Introspect(bounded(t, 10*time.Second), testToken); err != nil || r == nil || !r.Active {
				t.Fatalf("Introspect = %+v, %v; want active", r, err)
			}
		})
	}
}

// TestSignedAnswerRejections: an answer that is not signed, signed by
// another key or under an algorithm the key does not allow, mis-typed,
// from another issuer, for someone else, stale or not an introspection
// answer is never believed: ErrInvalidResponse (a 503 for the guard),
// never ErrInactive, and not remembered as a verdict either.
func TestSignedAnswerRejections(t *testing.T) {
	as := newSigningAS(t, "ES256")
	other := mustDevKey(t, "ES256", "as-1") // same kid, another key
	unknown := mustDevKey(t, "ES256", "as-2")
	env := envelope(activeClaims())
	good := sign(t, as.key, nil, env)
	parts := strings.Split(good, ".")
	big := sign(t, as.key, nil, with(env, "pad", strings.Repeat("x", 70<<10)))

	tests := []struct {
		name       string
		ct         string
		body       func(t *testing.T) string
		wantErr    error
		wantResult string
	}{
		// The media type.
		{"plain JSON answer", "application/json", func(*testing.T) string { return `{"active":true}` }, ErrInvalidResponse, ResultInvalid},
		{"signed, but served as JSON", "application/json", func(*testing.T) string { return good }, ErrInvalidResponse, ResultInvalid},
		{"signed, served as application/jwt", "application/jwt", func(*testing.T) string { return good }, ErrInvalidResponse, ResultInvalid},
		{"signed, no Content-Type", "", func(*testing.T) string { return good }, ErrInvalidResponse, ResultInvalid},
		{"JSON served as a signed answer", mediaTypeJWT, func(*testing.T) string { return `{"active":true}` }, ErrInvalidResponse, ResultInvalid},

		// The signature and the key.
		{"signed by another key with the same kid", mediaTypeJWT, func(t *testing.T) string { return sign(t, other, nil, env) }, ErrInvalidResponse, ResultInvalid},
		{"signed by an unknown kid", mediaTypeJWT, func(t *testing.T) string { return sign(t, unknown, nil, env) }, ErrInvalidResponse, ResultInvalid},
		{"payload swapped", mediaTypeJWT, func(t *testing.T) string {
			forged := strings.Split(sign(t, other, nil, with(env, "aud", "rs")), ".")
			return parts[0] + "." + forged[1] + "." + parts[2]
		}, ErrInvalidResponse, ResultInvalid},
		{"signature stripped", mediaTypeJWT, func(*testing.T) string { return parts[0] + "." + parts[1] + "." }, ErrInvalidResponse, ResultInvalid},
		{"alg none", mediaTypeJWT, func(t *testing.T) string {
			return unsigned(t, map[string]any{"alg": "none", "kid": "as-1", "typ": answerTyp}, env, nil)
		}, ErrInvalidResponse, ResultInvalid},
		{"alg none without kid", mediaTypeJWT, func(t *testing.T) string {
			return unsigned(t, map[string]any{"alg": "none", "typ": answerTyp}, env, nil)
		}, ErrInvalidResponse, ResultInvalid},
		{"alg HS256", mediaTypeJWT, func(t *testing.T) string {
			return unsigned(t, map[string]any{"alg": "HS256", "kid": "as-1", "typ": answerTyp}, env, make([]byte, 32))
		}, ErrInvalidResponse, ResultInvalid},
		{"key in the header", mediaTypeJWT, func(t *testing.T) string {
			pub, err := other.PublicJWK()
			if err != nil {
				t.Fatal(err)
			}
			return sign(t, other, map[string]any{"jwk": pub}, env)
		}, ErrInvalidResponse, ResultInvalid},
		{"not a JWS", mediaTypeJWT, func(*testing.T) string { return "not-a-jws" }, ErrInvalidResponse, ResultInvalid},
		{"JWE", mediaTypeJWT, func(*testing.T) string { return "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d" }, ErrInvalidResponse, ResultInvalid},

		// typ.
		{"typ missing", mediaTypeJWT, func(t *testing.T) string { return sign(t, as.key, map[string]any{"typ": nil}, env) }, ErrInvalidResponse, ResultInvalid},
		{"typ JWT", mediaTypeJWT, func(t *testing.T) string { return sign(t, as.key, map[string]any{"typ": "JWT"}, env) }, ErrInvalidResponse, ResultInvalid},
		{"typ at+jwt", mediaTypeJWT, func(t *testing.T) string { return sign(t, as.key, map[string]any{"typ": "at+jwt"}, env) }, ErrInvalidResponse, ResultInvalid},
		{"typ with another prefix", mediaTypeJWT, func(t *testing.T) string {
			return sign(t, as.key, map[string]any{"typ": "text/" + answerTyp}, env)
		}, ErrInvalidResponse, ResultInvalid},

		// iss.
		{"iss another issuer", mediaTypeJWT, func(t *testing.T) string {
			return sign(t, as.key, nil, with(env, "iss", "https://evil.example.com"))
		}, ErrInvalidResponse, ResultInvalid},
		{"iss missing", mediaTypeJWT, func(t *testing.T) string { return sign(t, as.key, nil, with(env, "iss", nil)) }, ErrInvalidResponse, ResultInvalid},
		{"iss a prefix", mediaTypeJWT, func(t *testing.T) string { return sign(t, as.key, nil, with(env, "iss", testIssuer+"/")) }, ErrInvalidResponse, ResultInvalid},

		// aud.
		{"aud another resource", mediaTypeJWT, func(t *testing.T) string {
			return sign(t, as.key, nil, with(env, "aud", "https://other.example.com"))
		}, ErrInvalidResponse, ResultInvalid},
		{"aud another client", mediaTypeJWT, func(t *testing.T) string { return sign(t, as.key, nil, with(env, "aud", "app-1")) }, ErrInvalidResponse, ResultInvalid},
		{"aud missing", mediaTypeJWT, func(t *testing.T) string { return sign(t, as.key, nil, with(env, "aud", nil)) }, ErrInvalidResponse, ResultInvalid},
		{"aud empty array", mediaTypeJWT, func(t *testing.T) string { return sign(t, as.key, nil, with(env, "aud", []string{})) }, ErrInvalidResponse, ResultInvalid},

		// iat, exp, nbf.
		{"iat missing", mediaTypeJWT, func(t *testing.T) string { return sign(t, as.key, nil, with(env, "iat", nil)) }, ErrInvalidResponse, ResultInvalid},
		{"iat in the future beyond leeway", mediaTypeJWT, func(t *testing.T) string {
			return sign(t, as.key, nil, with(env, "iat", t0.Add(31*time.Second).Unix()))
		}, ErrInvalidResponse, ResultInvalid},
		{"iat too old", mediaTypeJWT, func(t *testing.T) string {
			return sign(t, as.key, nil, with(env, "iat", t0.Add(-31*time.Second-maxAnswerAge).Unix()))
		}, ErrInvalidResponse, ResultInvalid},
		{"iat zero", mediaTypeJWT, func(t *testing.T) string { return sign(t, as.key, nil, with(env, "iat", 0)) }, ErrInvalidResponse, ResultInvalid},
		{"iat a string", mediaTypeJWT, func(t *testing.T) string { return sign(t, as.key, nil, with(env, "iat", "now")) }, ErrInvalidResponse, ResultInvalid},
		{"exp passed", mediaTypeJWT, func(t *testing.T) string {
			return sign(t, as.key, nil, with(env, "exp", t0.Add(-31*time.Second).Unix()))
		}, ErrInvalidResponse, ResultInvalid},
		{"nbf in the future", mediaTypeJWT, func(t *testing.T) string {
			return sign(t, as.key, nil, with(env, "nbf", t0.Add(31*time.Second).Unix()))
		}, ErrInvalidResponse, ResultInvalid},

		// token_introspection.
		{"token_introspection missing", mediaTypeJWT, func(t *testing.T) string {
			return sign(t, as.key, nil, with(env, "token_introspection", nil))
		}, ErrInvalidResponse, ResultInvalid},
		{"token_introspection a string", mediaTypeJWT, func(t *testing.T) string {
			return sign(t, as.key, nil, with(env, "token_introspection", `{"active":true}`))
		}, ErrInvalidResponse, ResultInvalid},
		{"token_introspection active as a string", mediaTypeJWT, func(t *testing.T) string {
			return sign(t, as.key, nil, with(env, "token_introspection", map[string]any{"active": "true"}))
		}, ErrInvalidResponse, ResultInvalid},
		{"token_introspection without active", mediaTypeJWT, func(t *testing.T) string {
			return sign(t, as.key, nil, with(env, "token_introspection", map[string]any{"sub": "x"}))
		}, ErrInvalidResponse, ResultInvalid},
		{"envelope claims at the top, no token_introspection", mediaTypeJWT, func(t *testing.T) string {
			return sign(t, as.key, nil, with(activeClaims(), "iat", t0.Unix(), "aud", testAudience))
		}, ErrInvalidResponse, ResultInvalid},
		{"duplicate iss", mediaTypeJWT, func(t *testing.T) string {
			return signPayload(t, as.key, `{"iss":"https://evil.example.com","iss":"`+testIssuer+`","aud":"rs","iat":`+jsonNum(t0.Unix())+`,"token_introspection":{"active":true}}`)
		}, ErrInvalidResponse, ResultInvalid},
		{"duplicate token_introspection", mediaTypeJWT, func(t *testing.T) string {
			return signPayload(t, as.key, `{"iss":"`+testIssuer+`","aud":"rs","iat":`+jsonNum(t0.Unix())+`,"token_introspection":{"active":false},"token_introspection":{"active":true}}`)
		}, ErrInvalidResponse, ResultInvalid},
		{"data after the claims", mediaTypeJWT, func(t *testing.T) string {
			return signPayload(t, as.key, `{"iss":"`+testIssuer+`","aud":"rs","iat":`+jsonNum(t0.Unix())+`,"token_introspection":{"active":true}} {}`)
		}, ErrInvalidResponse, ResultInvalid},
		{"claims not an object", mediaTypeJWT, func(t *testing.T) string { return signPayload(t, as.key, `[1]`) }, ErrInvalidResponse, ResultInvalid},

		// Size: the JSON form's limit.
		{"oversize", mediaTypeJWT, func(*testing.T) string { return big }, ErrUnavailable, ResultInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, respondAs(t, tt.ct, tt.body(t)))
			var rec recorder
			cfg := jwtConfig(s, newClock(), as)
			cfg.OnRequest = rec.record
			c := mustNew(t, cfg)
			r, err := c.Introspect(bounded(t, 10*time.Second), testToken)
			if r != nil {
				t.Errorf("Result %+v returned with error %v", r, err)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			for _, other := range []error{ErrInactive, ErrUnavailable, ErrInvalidResponse} {
				if other != tt.wantErr && errors.Is(err, other) {
					t.Errorf("error %v also matches %v", err, other)
				}
			}
			if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), "evil") {
				t.Errorf("error %q leaks the token or the answer's bytes", err)
			}
			if diff := cmp.Diff([]string{tt.wantResult}, rec.results()); diff != "" {
				t.Errorf("OnRequest results (-want +got):\n%s", diff)
			}
			// Not remembered as a verdict: the next call is no
			// "inactive" either.
			if r, err := c.Introspect(bounded(t, 10*time.Second), testToken); r != nil || errors.Is(err, ErrInactive) || err == nil {
				t.Errorf("second call: %v, %v; want no verdict", r, err)
			}
		})
	}
}

func jsonNum(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestSignedAnswerAlgorithmBoundToKey: an RSA key published for RS256
// does not verify a PS256 signature by the same private key (the
// signature is valid; the algorithm is not the key's), and an algorithm
// off the key set's allow-list is refused.
func TestSignedAnswerAlgorithmBoundToKey(t *testing.T) {
	tests := []struct {
		name       string
		publish    string
		allowList  []string
		signWith   string
		wantAccept bool
	}{
		{"RS256 key, RS256 answer", "RS256", nil, "RS256", true},
		{"RS256 key, PS256 answer", "RS256", nil, "PS256", false},
		{"ES256 off the allow-list", "ES256", []string{"RS256"}, "ES256", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := mustDevKey(t, tt.publish, "as-1")
			srv := httptest.NewUnstartedServer(nil)
			url := "http://" + srv.Listener.Addr().String()
			is := devissuer.New(url, testAudience, key)
			is.Publish(key, mustDevKey(t, "RS256", "rsa-extra")) // so the set loads whatever the allow-list
			srv.Config.Handler = is.Handler()
			srv.Start()
			t.Cleanup(srv.Close)
			set, err := jwks.New(bounded(t, 10*time.Second), jwks.Config{URL: url + "/jwks", Algorithms: tt.allowList, InitialWait: -1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = set.Close() })
			waitFor(t, func() bool { return set.Snapshot() != nil })
			signer := &devissuer.Key{KID: key.KID, Alg: tt.signWith, Private: key.Private}
			s := newServer(t, respondSigned(t, sign(t, signer, nil, envelope(activeClaims()))))
			c := mustNew(t, jwtConfig(s, newClock(), &signingAS{keys: set}))
			r, err := c.Introspect(bounded(t, 10*time.Second), testToken)
			switch {
			case tt.wantAccept && err != nil:
				t.Fatalf("Introspect: %v", err)
			case !tt.wantAccept && (r != nil || !errors.Is(err, ErrInvalidResponse)):
				t.Fatalf("Introspect = %v, %v; want ErrInvalidResponse", r, err)
			}
		})
	}
}

// keySetFunc adapts a function to KeySet.
type keySetFunc func(ctx context.Context, kid string) (*jwks.Key, error)

func (f keySetFunc) Lookup(ctx context.Context, kid string) (*jwks.Key, error) { return f(ctx, kid) }

// TestSignedAnswerKeysUnavailable: without keys nothing is believed, and
// the failure is ErrUnavailable (the answer may be fine; we cannot tell).
func TestSignedAnswerKeysUnavailable(t *testing.T) {
	as := newSigningAS(t, "ES256")
	s := newServer(t, respondSigned(t, sign(t, as.key, nil, envelope(activeClaims()))))
	var rec recorder
	cfg := baseConfig(s, newClock())
	cfg.ResponseFormat, cfg.OnRequest = ResponseJWT, rec.record
	var asked []string
	cfg.Keys = keySetFunc(func(ctx context.Context, kid string) (*jwks.Key, error) {
		asked = append(asked, kid)
		return nil, jwks.ErrNotLoaded
	})
	c := mustNew(t, cfg)
	r, err := c.Introspect(bounded(t, 10*time.Second), testToken)
	if r != nil || !errors.Is(err, ErrUnavailable) || !errors.Is(err, jwks.ErrNotLoaded) || errors.Is(err, ErrInactive) {
		t.Fatalf("Introspect = %v, %v; want ErrUnavailable wrapping jwks.ErrNotLoaded", r, err)
	}
	if diff := cmp.Diff([]string{"as-1"}, asked); diff != "" {
		t.Errorf("kids looked up (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{ResultError}, rec.results()); diff != "" {
		t.Errorf("OnRequest results (-want +got):\n%s", diff)
	}
}

// TestSignedAnswerSameChecks: the token_introspection object is judged
// like a JSON answer: its own iss, aud, exp and nbf.
func TestSignedAnswerSameChecks(t *testing.T) {
	as := newSigningAS(t, "ES256")
	tests := []struct {
		name  string
		inner map[string]any
	}{
		{"inner iss mismatch", with(activeClaims(), "iss", "https://evil.example.com")},
		{"inner aud mismatch", with(activeClaims(), "aud", "https://other.example.com")},
		{"inner exp passed", with(activeClaims(), "exp", t0.Add(-31*time.Second).Unix())},
		{"inner nbf in the future", with(activeClaims(), "nbf", t0.Add(31*time.Second).Unix())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, respondSigned(t, sign(t, as.key, nil, envelope(tt.inner))))
			c := mustNew(t, jwtConfig(s, newClock(), as))
			if r, err := c.Introspect(bounded(t, 10*time.Second), testToken); r != nil || !errors.Is(err, ErrInactive) {
				t.Fatalf("Introspect = %v, %v; want ErrInactive", r, err)
			}
		})
	}
}

func TestResponseFormatConfig(t *testing.T) {
	as := newSigningAS(t, "ES256")
	valid := func() Config {
		return Config{Endpoint: "https://as.example.com/i", Issuer: testIssuer, Audience: testAudience, ClientID: "rs", ClientSecret: "s"}
	}
	tests := []struct {
		name string
		edit func(*Config)
		want string // substring of the error; "" means valid
	}{
		{"json", func(*Config) {}, ""},
		{"jwt with keys", func(c *Config) { c.ResponseFormat, c.Keys = ResponseJWT, as.keys }, ""},
		{"jwt without keys", func(c *Config) { c.ResponseFormat = ResponseJWT }, "introspect: Keys: required for ResponseFormat jwt"},
		{"keys with json", func(c *Config) { c.Keys = as.keys }, "introspect: Keys: set, but ResponseFormat is json"},
		{"jwt with a nil *jwks.Set", func(c *Config) { c.ResponseFormat, c.Keys = ResponseJWT, (*jwks.Set)(nil) }, "introspect: Keys: required for ResponseFormat jwt"},
		{"unknown format", func(c *Config) { c.ResponseFormat = 7 }, "introspect: ResponseFormat: unknown format 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.edit(&cfg)
			c, err := New(cfg)
			if c != nil {
				c.Close()
			}
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("New: %v; want %q", err, tt.want)
			}
		})
	}
	if got := ResponseJWT.String() + " " + ResponseJSON.String() + " " + ResponseFormat(9).String(); got != "jwt json ResponseFormat(9)" {
		t.Errorf("String: %q", got)
	}
}
