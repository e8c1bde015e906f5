package middleware

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRequirePolicy(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	legacy := newTestIssuer(t, "ES256", "legacy")
	clock := &fakeClock{t: time.Now()}
	cfg := Config{
		Audience: testAudience,
		Issuers:  []Issuer{is.config(), {Issuer: legacy.URL(), JWKSURI: legacy.jwksURI(), AllowLegacyTyp: true}},
		DPoP:     DPoPConfig{Mode: DPoPAllowed},
	}
	cfg.now = clock.Now
	g := newGuard(t, cfg)
	now := clock.Now()
	alice := newDPoPClient(t)
	bound := is.mint(t, "orders:read", map[string]any{"cnf": map[string]any{"jkt": alice.jkt}})
	noIat, err := legacy.SigningKey().Sign(map[string]any{"typ": "JWT"}, map[string]any{"iss": legacy.URL(), "aud": testAudience, "exp": now.Add(time.Hour).Unix(), "scope": "orders:read"})
	if err != nil {
		t.Fatal(err)
	}
	tok := func(scope string, extra map[string]any) string { return is.mint(t, scope, extra) }

	anyOf := g.RequirePolicy(Policy{Scopes: []string{"orders:read"}, AnyOf: [][]string{{"orders:admin"}, {"orders:write", "orders:audit"}}})(okHandler)
	dpopOnly := g.RequirePolicy(Policy{RequireDPoP: true})(okHandler)
	fresh := g.RequirePolicy(Policy{MaxTokenAge: 5 * time.Minute})(okHandler)
	acr := g.RequirePolicy(Policy{ACRValues: []string{"urn:example:gold", "urn:example:platinum"}})(okHandler)
	recent := g.RequirePolicy(Policy{MaxAuthAge: 10 * time.Minute})(okHandler)
	both := g.RequirePolicy(Policy{ACRValues: []string{"urn:example:gold"}, MaxAuthAge: 10 * time.Minute})(okHandler)

	tests := []struct {
		name      string
		h         http.Handler
		auth      string
		proof     string
		want      int
		wantCode  string
		wantParam map[string]string // challenge params of the scheme carrying the error
	}{
		{"any-of: first set", anyOf, "Bearer " + tok("orders:read orders:admin", nil), "", 200, "", nil},
		{"any-of: second set", anyOf, "Bearer " + tok("orders:read orders:write orders:audit", nil), "", 200, "", nil},
		{"any-of: half of the second set", anyOf, "Bearer " + tok("orders:read orders:write", nil), "", 403, CodeInsufficientScope, map[string]string{"scope": "orders:read orders:admin"}},
		{"any-of: the set but not Scopes", anyOf, "Bearer " + tok("orders:admin", nil), "", 403, CodeInsufficientScope, nil},

		{"DPoP-only route, DPoP", dpopOnly, "DPoP " + bound, alice.proof(t, "GET", "http://api.example.com/orders/1", bound), 200, "", nil},
		{"DPoP-only route, Bearer", dpopOnly, "Bearer " + tok("", nil), "", 401, CodeInvalidToken, map[string]string{"error_description": descDPoPRequired}},

		{"max token age: fresh", fresh, "Bearer " + tok("", map[string]any{"iat": now.Add(-time.Minute).Unix()}), "", 200, "", nil},
		{"max token age: old", fresh, "Bearer " + tok("", map[string]any{"iat": now.Add(-time.Hour).Unix()}), "", 401, CodeInvalidToken, map[string]string{"error_description": descTokenTooOld}},
		{"max token age: no iat", fresh, "Bearer " + noIat, "", 401, CodeInvalidToken, nil},

		{"acr: allowed value", acr, "Bearer " + tok("", map[string]any{"acr": "urn:example:platinum"}), "", 200, "", nil},
		{"acr: weaker value", acr, "Bearer " + tok("", map[string]any{"acr": "urn:example:silver"}), "", 401, CodeInsufficientUserAuthentication, map[string]string{"acr_values": "urn:example:gold urn:example:platinum"}},
		{"acr: absent", acr, "Bearer " + tok("", nil), "", 401, CodeInsufficientUserAuthentication, map[string]string{"acr_values": "urn:example:gold urn:example:platinum"}},
		{"auth age: recent", recent, "Bearer " + tok("", map[string]any{"auth_time": now.Add(-time.Minute).Unix()}), "", 200, "", nil},
		{"auth age: stale", recent, "Bearer " + tok("", map[string]any{"auth_time": now.Add(-time.Hour).Unix()}), "", 401, CodeInsufficientUserAuthentication, map[string]string{"max_age": "600"}},
		{"auth age: absent", recent, "Bearer " + tok("", nil), "", 401, CodeInsufficientUserAuthentication, map[string]string{"max_age": "600"}},
		{"acr and auth age: both named", both, "Bearer " + tok("", map[string]any{"acr": "urn:example:gold", "auth_time": now.Add(-time.Hour).Unix()}), "", 401, CodeInsufficientUserAuthentication, map[string]string{"acr_values": "urn:example:gold", "max_age": "600"}},
		{"acr and auth age: met", both, "Bearer " + tok("", map[string]any{"acr": "urn:example:gold", "auth_time": now.Add(-time.Minute).Unix()}), "", 200, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var proofs []string
			if tt.proof != "" {
				proofs = append(proofs, tt.proof)
			}
			rec := dpopRequest(tt.h, "http://api.example.com/orders/1", tt.auth, proofs...)
			if rec.Code != tt.want {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, tt.want)
			}
			if tt.want == 200 {
				return
			}
			scheme := "Bearer"
			if strings.HasPrefix(tt.auth, "DPoP") || tt.wantParam["error_description"] == descDPoPRequired {
				scheme = "DPoP"
			}
			params := challengeFor(t, rec, scheme)
			if params["error"] != tt.wantCode {
				t.Errorf("%s challenge %q: error %q, want %q", scheme, rec.Header().Get("WWW-Authenticate"), params["error"], tt.wantCode)
			}
			for k, v := range tt.wantParam {
				if params[k] != v {
					t.Errorf("%s=%q, want %q (challenge %q)", k, params[k], v, rec.Header().Get("WWW-Authenticate"))
				}
			}
			if tt.wantParam["error_description"] == descDPoPRequired && challengeFor(t, rec, "Bearer") != nil {
				t.Errorf("a DPoP-only route offers a Bearer challenge: %q", rec.Header().Get("WWW-Authenticate"))
			}
		})
	}

	md, _ := g.ResourceMetadata()
	for _, s := range []string{"orders:read", "orders:admin", "orders:write", "orders:audit"} {
		if !containsString(md.ScopesSupported, s) {
			t.Errorf("scopes_supported %v lacks %s", md.ScopesSupported, s)
		}
	}
}

func TestRequirePolicyPanicsOnMistakes(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}})
	for name, p := range map[string]Policy{
		"DPoP on a DPoP-disabled guard": {RequireDPoP: true},
		"negative token age":            {MaxTokenAge: -time.Second},
		"negative auth age":             {MaxAuthAge: -time.Second},
		"empty any-of set":              {AnyOf: [][]string{{}}},
		"scope with a space":            {Scopes: []string{"a b"}},
		"empty scope":                   {Scopes: []string{""}},
		"acr with a quote":              {ACRValues: []string{`a"b`}},
	} {
		if g.CheckPolicy(p) == nil {
			t.Errorf("%s: CheckPolicy accepted it", name)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: RequirePolicy did not panic", name)
				}
			}()
			g.RequirePolicy(p)
		}()
	}
}

// TestStepUpChallengeGolden pins the RFC 9470 and DPoP-only challenges.
func TestStepUpChallengeGolden(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, DPoP: DPoPConfig{Mode: DPoPAllowed}})
	tok := is.mint(t, "", map[string]any{"acr": "urn:example:silver", "auth_time": time.Now().Add(-time.Hour).Unix()})
	for name, p := range map[string]Policy{
		"step_up_acr":         {ACRValues: []string{"urn:example:gold"}},
		"step_up_max_age":     {MaxAuthAge: 5 * time.Minute},
		"step_up_acr_max_age": {ACRValues: []string{"urn:example:gold"}, MaxAuthAge: 5 * time.Minute},
		"dpop_only_route":     {RequireDPoP: true},
	} {
		t.Run(name, func(t *testing.T) {
			rec := do(g.RequirePolicy(p)(okHandler), "Bearer "+tok)
			got := rec.Header().Get("WWW-Authenticate") + "\n"
			path := filepath.Join("..", "testdata", "challenges", name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("WWW-Authenticate:\n got %s\nwant %s", got, want)
			}
		})
	}
}
