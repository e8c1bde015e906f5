package middleware

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeAS is an RFC 7662 endpoint on 127.0.0.1 answering from a table of
// opaque tokens.
type fakeAS struct {
	srv    *httptest.Server
	hits   atomic.Int64
	mu     sync.Mutex
	tokens map[string]map[string]any // token → response
	status int                       // when non-zero, every answer
}

func newFakeAS(t *testing.T) *fakeAS {
	as := &fakeAS{tokens: map[string]map[string]any{}}
	as.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		as.hits.Add(1)
		id, secret, ok := r.BasicAuth()
		if !ok || id != "rs" || secret != "s3cret" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		as.mu.Lock()
		status, resp := as.status, as.tokens[r.PostFormValue("token")]
		as.mu.Unlock()
		if status != 0 {
			http.Error(w, "unavailable", status)
			return
		}
		if resp == nil {
			resp = map[string]any{"active": false}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(as.srv.Close)
	return as
}

func (as *fakeAS) set(token string, resp map[string]any) {
	as.mu.Lock()
	as.tokens[token] = resp
	as.mu.Unlock()
}

func TestIntrospection(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	as := newFakeAS(t)
	alice := newDPoPClient(t)
	exp := time.Now().Add(time.Hour).Unix()
	as.set("opaque-active", map[string]any{"active": true, "iss": is.URL(), "aud": testAudience, "exp": exp, "sub": "alice", "client_id": "app", "scope": "orders:read profile"})
	as.set("opaque-no-sub", map[string]any{"active": true, "exp": exp, "client_id": "svc", "scope": "orders:read"})
	as.set("opaque-other-aud", map[string]any{"active": true, "aud": "https://other.example.com", "exp": exp, "scope": "orders:read"})
	as.set("opaque-bound", map[string]any{"active": true, "exp": exp, "client_id": "app", "scope": "orders:read", "cnf": map[string]any{"jkt": alice.jkt}})
	as.set("opaque-mtls", map[string]any{"active": true, "exp": exp, "client_id": "app", "scope": "orders:read", "cnf": map[string]any{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0"}})
	as.set("opaque-mtls-malformed", map[string]any{"active": true, "exp": exp, "client_id": "app", "scope": "orders:read", "cnf": map[string]any{"x5t#S256": "abc"}})
	as.set("opaque-read-only", map[string]any{"active": true, "exp": exp, "client_id": "app", "scope": "profile"})

	cfg := Config{
		Audience: testAudience,
		Issuers:  []Issuer{{Issuer: is.URL(), JWKSURI: is.jwksURI(), IntrospectionEndpoint: as.srv.URL, ClientID: "rs", ClientSecret: "s3cret"}},
		DPoP:     DPoPConfig{Mode: DPoPAllowed},
	}
	g := newGuard(t, cfg)
	var seen *Principal
	h := g.Require("orders:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = PrincipalFrom(r.Context())
	}))

	tests := []struct {
		name   string
		auth   string
		proof  string
		want   int
		reason string // substring of the challenge
	}{
		{"active opaque token", "Bearer opaque-active", "", 200, ""},
		{"client-credentials token without sub", "Bearer opaque-no-sub", "", 200, ""},
		{"inactive", "Bearer opaque-unknown", "", 401, `error="invalid_token"`},
		{"another audience", "Bearer opaque-other-aud", "", 401, `error="invalid_token"`},
		{"scope missing", "Bearer opaque-read-only", "", 403, `error="insufficient_scope"`},
		{"DPoP-bound opaque token as Bearer", "Bearer opaque-bound", "", 401, `error="invalid_token"`},
		{"mTLS-bound opaque token as Bearer without a certificate", "Bearer opaque-mtls", "", 401, `error="invalid_token"`},
		{"opaque token with a malformed x5t#S256", "Bearer opaque-mtls-malformed", "", 401, `error="invalid_token"`},
		{"DPoP-bound opaque token with its proof", "DPoP opaque-bound", alice.proof(t, "GET", dpopURL, "opaque-bound"), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen = nil
			var proofs []string
			if tt.proof != "" {
				proofs = append(proofs, tt.proof)
			}
			rec := dpopRequest(h, dpopURL, tt.auth, proofs...)
			if rec.Code != tt.want {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, tt.want)
			}
			if !strings.Contains(rec.Header().Get("WWW-Authenticate"), tt.reason) {
				t.Errorf("WWW-Authenticate %q lacks %s", rec.Header().Get("WWW-Authenticate"), tt.reason)
			}
		})
	}

	// The Principal carries what the server said.
	dpopRequest(h, dpopURL, "Bearer opaque-active")
	if seen == nil || seen.Issuer != is.URL() || seen.Subject != "alice" || seen.ClientID != "app" || !seen.HasScope("profile") {
		t.Fatalf("principal = %+v", seen)
	}
	var extra struct{ Sub string }
	if err := seen.Claims(&extra); err != nil || extra.Sub != "alice" {
		t.Errorf("Claims = %+v, %v", extra, err)
	}
	dpopRequest(h, dpopURL, "Bearer opaque-no-sub")
	if seen == nil || seen.Subject != "" || seen.ClientID != "svc" {
		t.Errorf("client-credentials principal = %+v", seen)
	}

	// A JWT is verified, never introspected, even when it fails.
	before := as.hits.Load()
	if rec := dpopRequest(h, dpopURL, "Bearer "+is.mint(t, "orders:read", nil)); rec.Code != 200 {
		t.Fatalf("JWT: %d", rec.Code)
	}
	if rec := dpopRequest(h, dpopURL, "Bearer "+tamper(t, is.mint(t, "orders:read", nil))); rec.Code != 401 {
		t.Fatalf("bad JWT: %d", rec.Code)
	}
	if d := as.hits.Load() - before; d != 0 {
		t.Errorf("JWTs caused %d introspection calls", d)
	}

	// A token outside the b64token alphabet (RFC 6750 §2.1) is refused
	// before anyone is asked about it: it never reaches the endpoint.
	before = as.hits.Load()
	for _, auth := range []string{"Bearer op!aque", "Bearer op,aque=", "Bearer opa=que", `DPoP op"aque`} {
		rec := dpopRequest(h, dpopURL, auth)
		if rec.Code != 401 || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s: %d %q, want 401 invalid_token", auth, rec.Code, rec.Header().Get("WWW-Authenticate"))
		}
	}
	if d := as.hits.Load() - before; d != 0 {
		t.Errorf("malformed tokens caused %d introspection calls", d)
	}

	// Cached: a repeated opaque token is not asked about again.
	before = as.hits.Load()
	for range 5 {
		dpopRequest(h, dpopURL, "Bearer opaque-active")
	}
	if d := as.hits.Load() - before; d != 0 {
		t.Errorf("cached token caused %d calls", d)
	}
	if n := testutil.ToFloat64(g.metrics.introspection.WithLabelValues("active")); n < 1 {
		t.Errorf("introspection metric active = %v", n)
	}

	// The endpoint failing: 503, never a 2xx, for tokens it must judge.
	as.mu.Lock()
	as.status = http.StatusInternalServerError
	as.mu.Unlock()
	rec := dpopRequest(h, dpopURL, "Bearer opaque-never-seen")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("WWW-Authenticate") != "" {
		t.Errorf("endpoint down: %d %q, want 503 without a challenge", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
}

func TestIntrospectPolicy(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	other := newTestIssuer(t, "ES256", "k2")
	as := newFakeAS(t)
	g := newGuard(t, Config{
		Audience: testAudience,
		Issuers: []Issuer{
			{Issuer: is.URL(), JWKSURI: is.jwksURI(), IntrospectionEndpoint: as.srv.URL, ClientID: "rs", ClientSecret: "s3cret"},
			other.config(),
		},
	})
	strict := g.RequirePolicy(Policy{Introspect: true})(okHandler)
	live, revoked := is.mint(t, "", nil), is.mint(t, "", nil)
	as.set(live, map[string]any{"active": true})
	if rec := do(strict, "Bearer "+live); rec.Code != 200 {
		t.Fatalf("active JWT on an introspecting route: %d %s", rec.Code, rec.Body)
	}
	if rec := do(strict, "Bearer "+revoked); rec.Code != 401 {
		t.Fatalf("revoked JWT on an introspecting route: %d", rec.Code)
	}
	before := as.hits.Load()
	if rec := do(strict, "Bearer "+other.mint(t, "", nil)); rec.Code != 401 {
		t.Fatalf("another issuer's JWT on an introspecting route: %d", rec.Code)
	}
	if as.hits.Load() != before {
		t.Error("another issuer's token was sent to this issuer's introspection endpoint")
	}
	// Without an introspecting issuer the policy cannot be enforced.
	plain := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{other.config()}})
	if plain.CheckPolicy(Policy{Introspect: true}) == nil {
		t.Error("Introspect accepted on a guard without an introspection endpoint")
	}
}

func TestIntrospectionConfig(t *testing.T) {
	good := Issuer{Issuer: "https://as.example.com", JWKSURI: "https://as.example.com/jwks"}
	two := []Issuer{
		{Issuer: "https://a.example.com", JWKSURI: "https://a.example.com/jwks", IntrospectionEndpoint: "https://a.example.com/i", ClientID: "rs"},
		{Issuer: "https://b.example.com", JWKSURI: "https://b.example.com/jwks", IntrospectionEndpoint: "https://b.example.com/i", ClientID: "rs"},
	}
	for name, tt := range map[string]struct {
		cfg  Config
		want string
	}{
		"two introspecting issuers": {Config{Audience: "a", Issuers: two}, "only one issuer may introspect"},
		"no client id":              {Config{Audience: "a", Issuers: []Issuer{{Issuer: good.Issuer, JWKSURI: good.JWKSURI, IntrospectionEndpoint: "https://as.example.com/i"}}}, "ClientID: required"},
		"http endpoint":             {Config{Audience: "a", Issuers: []Issuer{{Issuer: good.Issuer, JWKSURI: good.JWKSURI, IntrospectionEndpoint: "http://as.example.com/i", ClientID: "rs"}}}, "must use https"},
		"secret without client id":  {Config{Audience: "a", Issuers: []Issuer{{Issuer: good.Issuer, JWKSURI: good.JWKSURI, ClientSecret: "x"}}}, "ClientSecret: set only with ClientID"},
	} {
		if _, err := New(t.Context(), tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", name, err, tt.want)
		}
	}
}

func TestIntrospectionAuthMethods(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	clientKey := mustKey(t, "ES256", "client-1")
	pub, err := clientKey.PublicJWK()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		method string
		check  func(r *http.Request) bool
	}{
		{"client_secret_basic", func(r *http.Request) bool {
			id, secret, ok := r.BasicAuth()
			return ok && id == "rs" && secret == "s3cret" && r.PostFormValue("client_secret") == ""
		}},
		{"client_secret_post", func(r *http.Request) bool {
			_, _, basic := r.BasicAuth()
			return !basic && r.PostFormValue("client_id") == "rs" && r.PostFormValue("client_secret") == "s3cret"
		}},
		{"private_key_jwt", func(r *http.Request) bool {
			a := r.PostFormValue("client_assertion")
			if r.PostFormValue("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || a == "" {
				return false
			}
			_, err := jws.Verify([]byte(a), jws.WithKey(jwa.ES256(), pub))
			return err == nil
		}},
	} {
		t.Run(tt.method, func(t *testing.T) {
			var authed atomic.Bool
			as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !tt.check(r) {
					http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
					return
				}
				authed.Store(true)
				_, _ = w.Write([]byte(`{"active":true,"scope":"a"}`))
			}))
			t.Cleanup(as.Close)
			iss := Issuer{Issuer: is.URL(), JWKSURI: is.jwksURI(), IntrospectionEndpoint: as.URL, ClientID: "rs", IntrospectionAuthMethod: tt.method}
			if tt.method == "private_key_jwt" {
				iss.IntrospectionKey, iss.IntrospectionKeyID = clientKey.Private, "client-1"
			} else {
				iss.ClientSecret = "s3cret"
			}
			g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{iss}})
			if rec := do(g.Require("a")(okHandler), "Bearer opaque"); rec.Code != 200 || !authed.Load() {
				t.Fatalf("status %d, authenticated %v", rec.Code, authed.Load())
			}
		})
	}
	for name, iss := range map[string]Issuer{
		"unknown method":              {Issuer: is.URL(), JWKSURI: is.jwksURI(), IntrospectionEndpoint: "https://as.example.com/i", ClientID: "rs", IntrospectionAuthMethod: "tls_client_auth"},
		"private_key_jwt, no key":     {Issuer: is.URL(), JWKSURI: is.jwksURI(), IntrospectionEndpoint: "https://as.example.com/i", ClientID: "rs", IntrospectionAuthMethod: "private_key_jwt"},
		"key without private_key_jwt": {Issuer: is.URL(), JWKSURI: is.jwksURI(), IntrospectionEndpoint: "https://as.example.com/i", ClientID: "rs", ClientSecret: "x", IntrospectionKey: clientKey.Private},
	} {
		if _, err := New(t.Context(), Config{Audience: testAudience, Issuers: []Issuer{iss}}); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// TestIntrospectionHardening: redirects are never followed even with a
// caller's HTTP client; any cnf, or token_type DPoP, makes an opaque
// token unusable as Bearer; acr and auth_time reach step-up policies.
func TestIntrospectionHardening(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	var thief atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		thief.Add(1)
		_, _ = w.Write([]byte(`{"active":true,"sub":"mallory","scope":"a"}`))
	}))
	t.Cleanup(elsewhere.Close)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	g := newGuard(t, Config{
		Audience:   testAudience,
		HTTPClient: &http.Client{Timeout: 5 * time.Second}, // follows redirects by default
		Issuers: []Issuer{{Issuer: is.URL(), JWKSURI: is.jwksURI(), IntrospectionEndpoint: redirector.URL,
			ClientID: "rs", ClientSecret: "s3cret", IntrospectionAuthMethod: "client_secret_post"}},
	})
	if rec := do(g.Require("a")(okHandler), "Bearer opaque"); rec.Code != http.StatusServiceUnavailable || thief.Load() != 0 {
		t.Fatalf("redirected introspection: %d, %d requests elsewhere; want 503 and none", rec.Code, thief.Load())
	}

	as := newFakeAS(t)
	now := time.Now()
	as.set("escaped-cnf", map[string]any{"active": true, "scope": "a"})
	as.set("dpop-type", map[string]any{"active": true, "scope": "a", "token_type": "DPoP"})
	as.set("mfa", map[string]any{"active": true, "scope": "a", "acr": "mfa", "auth_time": now.Add(-time.Minute).Unix()})
	raw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.PostFormValue("token") == "escaped-cnf" {
			_, _ = w.Write([]byte(`{"active":true,"scope":"a","\u0063nf":{"x5t#S256":"abc"}}`))
			return
		}
		as.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(raw.Close)
	g2 := newGuard(t, Config{Audience: testAudience, DPoP: DPoPConfig{Mode: DPoPAllowed},
		Issuers: []Issuer{{Issuer: is.URL(), JWKSURI: is.jwksURI(), IntrospectionEndpoint: raw.URL, ClientID: "rs", ClientSecret: "s3cret"}}})
	bearer := g2.Require("a")(okHandler)
	for _, tok := range []string{"escaped-cnf", "dpop-type"} {
		if rec := do(bearer, "Bearer "+tok); rec.Code != 401 {
			t.Errorf("%s as Bearer: %d, want 401", tok, rec.Code)
		}
	}
	stepUp := g2.RequirePolicy(Policy{Scopes: []string{"a"}, ACRValues: []string{"mfa"}, MaxAuthAge: time.Hour})(okHandler)
	if rec := do(stepUp, "Bearer mfa"); rec.Code != 200 {
		t.Errorf("opaque token with acr and auth_time on a step-up route: %d %s", rec.Code, rec.Body)
	}
	if g2.CheckPolicy(Policy{MaxAuthAge: 1500 * time.Millisecond}) == nil {
		t.Error("sub-second MaxAuthAge accepted")
	}
}

// TestDiscoveredIntrospectionEndpoint: with a ClientID and no endpoint,
// the endpoint comes from the issuer's metadata; without one there,
// opaque tokens get 503.
func TestDiscoveredIntrospectionEndpoint(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	as := newFakeAS(t)
	as.set("opaque-1", map[string]any{"active": true, "scope": "a"})
	for _, tt := range []struct {
		name     string
		endpoint string // in the metadata; "" none
		want     int
	}{
		{"endpoint in metadata", as.srv.URL, 200},
		{"no endpoint in metadata", "", http.StatusServiceUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var meta *httptest.Server
			meta = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				doc := map[string]string{"issuer": meta.URL, "jwks_uri": is.jwksURI()}
				if tt.endpoint != "" {
					doc["introspection_endpoint"] = tt.endpoint
				}
				_ = json.NewEncoder(w).Encode(doc)
			}))
			t.Cleanup(meta.Close)
			g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{{Issuer: meta.URL, ClientID: "rs", ClientSecret: "s3cret"}}})
			h := g.Require("a")(okHandler)
			deadline := time.Now().Add(5 * time.Second)
			rec := do(h, "Bearer opaque-1")
			for rec.Code != tt.want && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
				rec = do(h, "Bearer opaque-1")
			}
			if rec.Code != tt.want {
				t.Fatalf("opaque token: %d %s, want %d", rec.Code, rec.Body, tt.want)
			}
		})
	}
}

// TestIntrospectionMaxAgePerRoute: a route's IntrospectionMaxAge makes a
// cached answer older than it be asked again; other routes reuse it up to
// the issuer's cache age.
func TestIntrospectionMaxAgePerRoute(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	as := newFakeAS(t)
	as.set("opaque-1", map[string]any{"active": true, "scope": "a"})
	clock := &fakeClock{t: time.Now()}
	cfg := Config{Audience: testAudience, Issuers: []Issuer{{Issuer: is.URL(), JWKSURI: is.jwksURI(), IntrospectionEndpoint: as.srv.URL, ClientID: "rs", ClientSecret: "s3cret"}}}
	cfg.now = clock.Now
	g := newGuard(t, cfg)
	relaxed := g.Require("a")(okHandler)
	strict := g.RequirePolicy(Policy{Scopes: []string{"a"}, IntrospectionMaxAge: 2 * time.Second})(okHandler)
	if rec := do(relaxed, "Bearer opaque-1"); rec.Code != 200 {
		t.Fatal(rec.Code)
	}
	clock.Add(5 * time.Second)
	hits := as.hits.Load()
	if rec := do(relaxed, "Bearer opaque-1"); rec.Code != 200 || as.hits.Load() != hits {
		t.Fatalf("relaxed route: %d, %d new calls; want 200 from the cache", rec.Code, as.hits.Load()-hits)
	}
	if rec := do(strict, "Bearer opaque-1"); rec.Code != 200 || as.hits.Load() != hits+1 {
		t.Fatalf("strict route: %d, %d new calls; want 200 after one fresh call", rec.Code, as.hits.Load()-hits)
	}
	// Revoked meanwhile: the strict route sees it once its answer is old.
	as.set("opaque-1", map[string]any{"active": false})
	clock.Add(3 * time.Second)
	if rec := do(strict, "Bearer opaque-1"); rec.Code != 401 {
		t.Fatalf("revoked token on the strict route: %d, want 401", rec.Code)
	}
	if g.CheckPolicy(Policy{IntrospectionMaxAge: -time.Second}) == nil {
		t.Error("negative IntrospectionMaxAge accepted")
	}
}
