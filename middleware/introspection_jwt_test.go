package middleware

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokenguard/tokenguard/internal/devissuer"
)

// signedAnswer describes how fakeSigningAS answers: the token_introspection
// object, and edits to the envelope and header it is signed in.
type signedAnswer struct {
	inner       map[string]any
	claims      map[string]any // envelope members to set; nil values remove
	header      map[string]any // header members to set; nil values remove
	key         *devissuer.Key // nil: the issuer's signing key
	unsigned    bool           // alg "none", empty signature
	contentType string         // "": application/token-introspection+jwt
}

// fakeSigningAS is an RFC 9701 introspection endpoint on 127.0.0.1 that
// signs its answers with an issuer's key.
type fakeSigningAS struct {
	srv     *httptest.Server
	is      *testIssuer
	hits    atomic.Int64
	accepts atomic.Value // the last Accept header
	mu      sync.Mutex   // guards answers
	answers map[string]signedAnswer
}

func newFakeSigningAS(t *testing.T, is *testIssuer) *fakeSigningAS {
	as := &fakeSigningAS{is: is, answers: map[string]signedAnswer{}}
	as.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		as.hits.Add(1)
		as.accepts.Store(r.Header.Get("Accept"))
		if id, secret, ok := r.BasicAuth(); !ok || id != "rs" || secret != "s3cret" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		as.mu.Lock()
		a, ok := as.answers[r.PostFormValue("token")]
		as.mu.Unlock()
		if !ok {
			a = signedAnswer{inner: map[string]any{"active": false}}
		}
		body := as.sign(t, a)
		ct := a.contentType
		if ct == "" {
			ct = "application/token-introspection+jwt"
		}
		w.Header().Set("Content-Type", ct)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(as.srv.Close)
	return as
}

func (as *fakeSigningAS) set(token string, a signedAnswer) {
	as.mu.Lock()
	as.answers[token] = a
	as.mu.Unlock()
}

// sign makes the answer's JWS: {iss, aud: the audience, iat: now,
// token_introspection}, typ token-introspection+jwt, as edited by a.
func (as *fakeSigningAS) sign(t *testing.T, a signedAnswer) string {
	claims := map[string]any{
		"iss":                 as.is.URL(),
		"aud":                 testAudience,
		"iat":                 time.Now().Unix(),
		"token_introspection": a.inner,
	}
	for k, v := range a.claims {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	// A nil value in header makes devissuer remove the member.
	header := map[string]any{"typ": "token-introspection+jwt"}
	for k, v := range a.header {
		header[k] = v
	}
	if a.unsigned {
		header["alg"] = "none"
		enc := func(v any) string {
			b, err := json.Marshal(v)
			if err != nil {
				t.Error(err)
			}
			return base64.RawURLEncoding.EncodeToString(b)
		}
		return enc(header) + "." + enc(claims) + "."
	}
	key := a.key
	if key == nil {
		key = as.is.SigningKey()
	}
	tok, err := key.Sign(header, claims)
	if err != nil {
		t.Error(err)
	}
	return tok
}

// TestSignedIntrospection: with IntrospectionResponse "jwt", the guard
// asks for RFC 9701 answers and believes only those signed by the
// issuer's key, typed, from the issuer and for this resource server; any
// other answer is a 503, never access and never a 401 (the token may be
// fine; the answer is what failed).
func TestSignedIntrospection(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	as := newFakeSigningAS(t, is)
	exp := time.Now().Add(time.Hour).Unix()
	active := map[string]any{"active": true, "iss": is.URL(), "aud": testAudience, "exp": exp, "sub": "alice", "client_id": "app", "scope": "orders:read"}
	forger := mustKey(t, "ES256", "k1") // the issuer's kid, another key

	answers := map[string]signedAnswer{
		"valid":                 {inner: active},
		"aud-client-id":         {inner: active, claims: map[string]any{"aud": "rs"}},
		"aud-audience-in-array": {inner: active, claims: map[string]any{"aud": []string{"https://other.example.com", testAudience}}},
		"inactive":              {inner: map[string]any{"active": false}},
		"inner-other-aud":       {inner: map[string]any{"active": true, "aud": "https://other.example.com", "scope": "orders:read"}},
		"wrong-key":             {inner: active, key: forger},
		"alg-none":              {inner: active, unsigned: true},
		"typ-missing":           {inner: active, header: map[string]any{"typ": nil}},
		"typ-jwt":               {inner: active, header: map[string]any{"typ": "JWT"}},
		"typ-at-jwt":            {inner: active, header: map[string]any{"typ": "at+jwt"}},
		"iss-wrong":             {inner: active, claims: map[string]any{"iss": "https://evil.example.com"}},
		"aud-wrong":             {inner: active, claims: map[string]any{"aud": "https://other.example.com"}},
		"aud-missing":           {inner: active, claims: map[string]any{"aud": nil}},
		"iat-missing":           {inner: active, claims: map[string]any{"iat": nil}},
		"iat-future":            {inner: active, claims: map[string]any{"iat": time.Now().Add(5 * time.Minute).Unix()}},
		"iat-stale":             {inner: active, claims: map[string]any{"iat": time.Now().Add(-10 * time.Minute).Unix()}},
		"json-content-type":     {inner: active, contentType: "application/json"},
		"no-introspection":      {inner: active, claims: map[string]any{"token_introspection": nil}},
	}
	for tok, a := range answers {
		as.set(tok, a)
	}

	g := newGuard(t, Config{
		Audience: testAudience,
		Issuers: []Issuer{{
			Issuer: is.URL(), JWKSURI: is.jwksURI(),
			IntrospectionEndpoint: as.srv.URL, ClientID: "rs", ClientSecret: "s3cret",
			IntrospectionResponse: "jwt",
		}},
	})
	var seen *Principal
	h := g.Require("orders:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = PrincipalFrom(r.Context())
	}))

	for _, tt := range []struct {
		token string
		want  int
	}{
		{"valid", 200},
		{"aud-client-id", 200},
		{"aud-audience-in-array", 200},
		{"inactive", 401},
		{"inner-other-aud", 401},
		{"unknown-token", 401}, // answered {"active":false}, signed
		{"wrong-key", 503},
		{"alg-none", 503},
		{"typ-missing", 503},
		{"typ-jwt", 503},
		{"typ-at-jwt", 503},
		{"iss-wrong", 503},
		{"aud-wrong", 503},
		{"aud-missing", 503},
		{"iat-missing", 503},
		{"iat-future", 503},
		{"iat-stale", 503},
		{"json-content-type", 503},
		{"no-introspection", 503},
	} {
		t.Run(tt.token, func(t *testing.T) {
			for i := range 2 { // the second time from the cache, or remembered as a failure
				rec := do(h, "Bearer "+tt.token)
				if rec.Code != tt.want {
					t.Fatalf("request %d: status %d (%s), want %d", i+1, rec.Code, rec.Body, tt.want)
				}
				challenge := rec.Header().Get("WWW-Authenticate")
				switch tt.want {
				case 401:
					if !strings.Contains(challenge, `error="invalid_token"`) {
						t.Errorf("WWW-Authenticate %q, want invalid_token", challenge)
					}
				case 503:
					if challenge != "" {
						t.Errorf("WWW-Authenticate %q on a 503", challenge)
					}
				}
			}
		})
	}
	if got, _ := as.accepts.Load().(string); got != "application/token-introspection+jwt" {
		t.Errorf("Accept %q, want application/token-introspection+jwt", got)
	}

	// The Principal carries what the signed answer said.
	seen = nil
	do(h, "Bearer valid")
	if seen == nil || seen.Issuer != is.URL() || seen.Subject != "alice" || seen.ClientID != "app" {
		t.Fatalf("principal = %+v", seen)
	}
	var extra struct{ Sub string }
	if err := seen.Claims(&extra); err != nil || extra.Sub != "alice" {
		t.Errorf("Claims = %+v, %v", extra, err)
	}

	// Cached like a JSON answer: a repeated token is not asked about again.
	before := as.hits.Load()
	for range 5 {
		if rec := do(h, "Bearer valid"); rec.Code != 200 {
			t.Fatalf("cached: %d", rec.Code)
		}
	}
	if d := as.hits.Load() - before; d != 0 {
		t.Errorf("cached token caused %d calls", d)
	}
	if n := testutil.ToFloat64(g.metrics.introspection.WithLabelValues("invalid")); n < 1 {
		t.Errorf("introspection metric invalid = %v", n)
	}
}

// TestSignedIntrospectionDiscoveredKeys: the answers are verified with the
// key set the issuer has in use, also when its jwks_uri is discovered.
func TestSignedIntrospectionDiscoveredKeys(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	as := newFakeSigningAS(t, is)
	as.set("valid", signedAnswer{inner: map[string]any{"active": true, "scope": "a"}})
	g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{{
		Issuer: is.URL(), IntrospectionEndpoint: as.srv.URL, ClientID: "rs", ClientSecret: "s3cret",
		IntrospectionResponse: "jwt",
	}}})
	h := g.Require("a")(okHandler)
	deadline := time.Now().Add(5 * time.Second)
	rec := do(h, "Bearer valid")
	for rec.Code != 200 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		// A failure is remembered for a second: ask about a new token.
		tok := "valid-" + time.Now().Format("150405.000000")
		as.set(tok, signedAnswer{inner: map[string]any{"active": true, "scope": "a"}})
		rec = do(h, "Bearer "+tok)
	}
	if rec.Code != 200 {
		t.Fatalf("status %d (%s), want 200 once the keys are discovered", rec.Code, rec.Body)
	}
}

func TestIntrospectionResponseConfig(t *testing.T) {
	base := Issuer{Issuer: "https://as.example.com", JWKSURI: "https://as.example.com/jwks", IntrospectionEndpoint: "https://as.example.com/i", ClientID: "rs", ClientSecret: "s"}
	for name, tt := range map[string]struct {
		edit func(*Issuer)
		want string // "" valid
	}{
		"json":                 {func(is *Issuer) { is.IntrospectionResponse = "json" }, ""},
		"jwt":                  {func(is *Issuer) { is.IntrospectionResponse = "jwt" }, ""},
		"unknown":              {func(is *Issuer) { is.IntrospectionResponse = "JWT" }, `Issuers[0].IntrospectionResponse: "JWT" is not json or jwt`},
		"jwt without ClientID": {func(is *Issuer) { *is = Issuer{Issuer: is.Issuer, JWKSURI: is.JWKSURI, IntrospectionResponse: "jwt"} }, "Issuers[0].IntrospectionResponse: set only with ClientID"},
	} {
		is := base
		tt.edit(&is)
		g, err := New(t.Context(), Config{Audience: "a", Issuers: []Issuer{is}, StartupWait: -1})
		if g != nil {
			g.Close()
		}
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: %v, want %q", name, err, tt.want)
		}
	}
}
