package middleware

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestPrincipal(t *testing.T) {
	is := newTestIssuer(t, "EdDSA", "ed-1")
	g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}})
	now := time.Now().Truncate(time.Second)
	tok := is.mint(t, "orders:read orders:write orders:read", map[string]any{
		"sub": "alice", "client_id": "web", "jti": "id-1", "tid": "tenant-9",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	var got *Principal
	h := g.Require()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = PrincipalFrom(r.Context())
	}))
	if rec := do(h, "Bearer "+tok); rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	want := &Principal{
		Issuer: is.URL(), Subject: "alice", ClientID: "web",
		Scopes:   []string{"orders:read", "orders:write"},
		Audience: []string{testAudience}, TokenID: "id-1",
		ExpiresAt: now.Add(time.Hour), IssuedAt: now,
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(Principal{})); diff != "" {
		t.Errorf("principal (-want +got):\n%s", diff)
	}
	var extra struct {
		Tenant string `json:"tid"`
	}
	if err := got.Claims(&extra); err != nil || extra.Tenant != "tenant-9" {
		t.Errorf("Claims = %+v, %v", extra, err)
	}
	if _, ok := PrincipalFrom(context.Background()); ok {
		t.Error("PrincipalFrom found a principal in an empty context")
	}
}

func TestKeyRotation(t *testing.T) {
	for _, cache := range []bool{false, true} {
		t.Run(map[bool]string{false: "cache off", true: "cache on"}[cache], func(t *testing.T) {
			is := newTestIssuer(t, "ES256", "old")
			g := newGuard(t, Config{
				Audience: testAudience, Issuers: []Issuer{is.config()},
				DisableTokenCache:    !cache,
				JWKSRefreshRateLimit: 20 * time.Millisecond,
			})
			h := g.Require()(okHandler)
			oldTok := is.mint(t, "", nil)
			if rec := do(h, "Bearer "+oldTok); rec.Code != 200 {
				t.Fatalf("old token before rotation: %d", rec.Code)
			}
			hits := is.JWKSHits()

			// The issuer starts signing with a new key and publishes both.
			oldKey := is.SigningKey()
			newKey := mustKey(t, "ES256", "new")
			is.Publish(oldKey, newKey)
			is.SetSigningKey(newKey)
			newTok := is.mint(t, "", nil)
			if rec := do(h, "Bearer "+newTok); rec.Code != 200 {
				t.Fatalf("new kid not picked up: %d %s", rec.Code, rec.Body)
			}
			if d := is.JWKSHits() - hits; d != 1 {
				t.Errorf("new kid cost %d fetches, want 1", d)
			}

			// The old key is withdrawn. A token with another unknown
			// kid makes the guard refetch; afterwards the old token,
			// even if cached, is refused.
			is.Publish(newKey)
			time.Sleep(30 * time.Millisecond) // past the rate limit
			stranger := mustKey(t, "ES256", "stranger")
			tok, _ := stranger.Sign(map[string]any{"typ": "at+jwt"}, is.Claims("", time.Hour))
			if rec := do(h, "Bearer "+tok); rec.Code != 401 {
				t.Fatalf("stranger: %d", rec.Code)
			}
			if rec := do(h, "Bearer "+oldTok); rec.Code != 401 {
				t.Fatalf("old token after its key left the JWKS: %d, want 401", rec.Code)
			}
			if rec := do(h, "Bearer "+newTok); rec.Code != 200 {
				t.Fatalf("new token after rotation: %d", rec.Code)
			}
		})
	}
}

// TestKeyReplacedUnderSameKid: an issuer that replaces a key but keeps its
// kid must not leave tokens of the old key valid through the cache.
func TestKeyReplacedUnderSameKid(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, JWKSRefreshRateLimit: 20 * time.Millisecond})
	h := g.Require()(okHandler)
	oldTok := is.mint(t, "", nil)
	if rec := do(h, "Bearer "+oldTok); rec.Code != 200 {
		t.Fatalf("before: %d", rec.Code)
	}
	replacement := mustKey(t, "ES256", "k1")
	is.Publish(replacement)
	is.SetSigningKey(replacement)
	time.Sleep(30 * time.Millisecond) // past the rate limit
	stranger, _ := mustKey(t, "ES256", "stranger").Sign(map[string]any{"typ": "at+jwt"}, is.Claims("", time.Hour))
	do(h, "Bearer "+stranger) // makes the guard refetch
	if rec := do(h, "Bearer "+oldTok); rec.Code != 401 {
		t.Fatalf("old key's token after the kid got a new key: %d, want 401", rec.Code)
	}
	if rec := do(h, "Bearer "+is.mint(t, "", nil)); rec.Code != 200 {
		t.Fatalf("new key's token: %d", rec.Code)
	}
}

// TestCacheNeedsTheSignature: the cache is keyed by the whole token, so a
// cached token's header and payload with another signature are verified,
// not served from the cache.
func TestCacheNeedsTheSignature(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}})
	h := g.Require()(okHandler)
	tok := is.mint(t, "", nil)
	if rec := do(h, "Bearer "+tok); rec.Code != 200 {
		t.Fatalf("valid: %d", rec.Code)
	}
	i := strings.LastIndexByte(tok, '.') + 10
	forged := tok[:i] + map[bool]string{true: "B", false: "A"}[tok[i] == 'A'] + tok[i+1:]
	if rec := do(h, "Bearer "+forged); rec.Code != 401 {
		t.Fatalf("cached token with another signature: %d, want 401", rec.Code)
	}
}

// TestTokenSizeLimit pins the limit in bytes, and that MaxTokenSize moves
// it both ways.
func TestTokenSizeLimit(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	var logs syncBuffer
	newH := func(max int) http.Handler {
		return newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, MaxTokenSize: max,
			Logger: slog.New(slog.NewJSONHandler(&logs, nil))}).Require()(okHandler)
	}
	def, small, big := newH(0), newH(64), newH(16384)
	tok := is.mint(t, "", nil)
	for _, tt := range []struct {
		name string
		h    http.Handler
		cred string
		want Reason
	}{
		{"8192 bytes, default", def, strings.Repeat("a", 8192), ReasonMalformedToken},
		{"8193 bytes, default", def, strings.Repeat("a", 8193), ReasonTokenTooLarge},
		{"real token over a 64-byte limit", small, tok, ReasonTokenTooLarge},
		{"10 KiB under a 16 KiB limit", big, strings.Repeat("a", 10<<10), ReasonMalformedToken},
		{"16385 bytes over a 16 KiB limit", big, strings.Repeat("a", 16385), ReasonTokenTooLarge},
	} {
		logs.Reset()
		if rec := do(tt.h, "Bearer "+tt.cred); rec.Code != 401 {
			t.Errorf("%s: %d", tt.name, rec.Code)
		}
		if got := deniedReason(t, logs.String()); got != tt.want {
			t.Errorf("%s: reason %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestExpiryBoundary pins exp + leeway as the first instant a token is
// refused, and iat's leeway.
func TestExpiryBoundary(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	cfg := Config{Audience: testAudience, Issuers: []Issuer{is.config()}, DisableTokenCache: true}
	cfg.now = clock.Now
	h := newGuard(t, cfg).Require()(okHandler)
	now := clock.Now()
	for _, tt := range []struct {
		name  string
		extra map[string]any
		want  int
	}{
		{"exp one second inside the leeway", map[string]any{"exp": now.Add(-DefaultLeeway + time.Second).Unix(), "iat": now.Add(-time.Hour).Unix()}, 200},
		{"exp exactly at the leeway", map[string]any{"exp": now.Add(-DefaultLeeway).Unix(), "iat": now.Add(-time.Hour).Unix()}, 401},
		{"iat 10 s ahead, inside the leeway", map[string]any{"exp": now.Add(time.Hour).Unix(), "iat": now.Add(10 * time.Second).Unix()}, 200},
		{"iat 31 s ahead", map[string]any{"exp": now.Add(time.Hour).Unix(), "iat": now.Add(31 * time.Second).Unix()}, 401},
	} {
		if rec := do(h, "Bearer "+is.mint(t, "", tt.extra)); rec.Code != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, rec.Code, tt.want)
		}
	}
}

// TestAlgorithmsReachTheKeyCache: a non-default allow-list is applied to
// the JWKS too, so an ES512 key is usable when ES512 is allowed.
func TestAlgorithmsReachTheKeyCache(t *testing.T) {
	is := newTestIssuer(t, "ES512", "k512")
	h := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, Algorithms: []string{"ES512"}}).Require()(okHandler)
	if rec := do(h, "Bearer "+is.mint(t, "", nil)); rec.Code != 200 {
		t.Fatalf("ES512 token with ES512 allowed: %d %s", rec.Code, rec.Body)
	}
}

func TestMultiIssuerIsolation(t *testing.T) {
	a := newTestIssuer(t, "ES256", "a-1")
	b := newTestIssuer(t, "ES256", "b-1")
	g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{a.config(), b.config()}, JWKSRefreshRateLimit: time.Hour})
	h := g.Require()(okHandler)
	for _, tc := range []struct {
		name string
		tok  string
		want int
	}{
		{"a for a", a.mint(t, "", nil), 200},
		{"b for b", b.mint(t, "", nil), 200},
		{"a's key claims b", a.mint(t, "", map[string]any{"iss": b.URL()}), 401},
		{"b's key claims a", b.mint(t, "", map[string]any{"iss": a.URL()}), 401},
	} {
		if rec := do(h, "Bearer "+tc.tok); rec.Code != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, rec.Code, tc.want)
		}
	}
}

func TestKeysNeverLoaded(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	is.FailJWKS(http.StatusInternalServerError)
	reg := prometheus.NewRegistry()
	g := newGuard(t, Config{
		Audience: testAudience, Issuers: []Issuer{is.config()},
		StartupWait: 50 * time.Millisecond, Registerer: reg,
	})
	if g.Ready() {
		t.Fatal("Ready with no keys")
	}
	h := g.Require()(okHandler)
	rec := do(h, "Bearer "+is.mint(t, "", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", rec.Code)
	}
	if rec.Header().Get("WWW-Authenticate") != "" {
		t.Error("503 carries a challenge")
	}
	if n := g.metrics.requests.value(ReasonKeysUnavailable); n != 1 {
		t.Errorf("keys_unavailable count = %v", n)
	}
	if n := testutil.ToFloat64(g.metrics.jwksRefresh.WithLabelValues("http_error")); n < 1 {
		t.Errorf("jwks http_error count = %v, want >= 1", n)
	}
	// A token from an issuer we don't know is still a plain 401.
	if rec := do(h, "Bearer "+is.mint(t, "", map[string]any{"iss": "https://x.example"})); rec.Code != 401 {
		t.Errorf("unknown issuer while keys missing: %d", rec.Code)
	}

	// The issuer recovers; the guard becomes ready by itself.
	is.FailJWKS(0)
	deadline := time.Now().Add(10 * time.Second)
	for !g.Ready() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !g.Ready() {
		t.Fatal("not ready 10 s after the issuer recovered")
	}
	if rec := do(h, "Bearer "+is.mint(t, "", nil)); rec.Code != 200 {
		t.Errorf("after recovery: %d", rec.Code)
	}
}

func TestTokenCache(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	clock := &fakeClock{t: time.Now()}
	cfg := Config{Audience: testAudience, Issuers: []Issuer{is.config()}, TokenCacheSize: 32}
	cfg.now = clock.Now
	g := newGuard(t, cfg)
	var seen []*Principal
	var mu sync.Mutex
	h := g.Require()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := PrincipalFrom(r.Context())
		mu.Lock()
		seen = append(seen, p)
		mu.Unlock()
	}))

	t.Run("hit", func(t *testing.T) {
		seen = nil
		tok := is.mint(t, "", nil)
		for range 3 {
			if rec := do(h, "Bearer "+tok); rec.Code != 200 {
				t.Fatal(rec.Code)
			}
		}
		if seen[0] != seen[1] || seen[1] != seen[2] {
			t.Error("repeated token verified again instead of served from the cache")
		}
	})
	t.Run("expiry at exp", func(t *testing.T) {
		exp := clock.Now().Add(2 * time.Minute)
		tok := is.mint(t, "", map[string]any{"exp": exp.Unix()})
		if rec := do(h, "Bearer "+tok); rec.Code != 200 {
			t.Fatal(rec.Code)
		}
		clock.Add(2*time.Minute + DefaultLeeway + time.Second)
		if rec := do(h, "Bearer "+tok); rec.Code != 401 {
			t.Fatalf("expired cached token: %d, want 401", rec.Code)
		}
	})
	t.Run("size bound", func(t *testing.T) {
		for range 100 {
			if rec := do(h, "Bearer "+is.mint(t, "", map[string]any{"exp": clock.Now().Add(time.Hour).Unix(), "iat": clock.Now().Unix()})); rec.Code != 200 {
				t.Fatal(rec.Code)
			}
		}
		if n := g.cache.Len(); n > 32 {
			t.Errorf("cache holds %d entries, bound 32", n)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		g2 := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, DisableTokenCache: true})
		if g2.cache != nil {
			t.Fatal("cache allocated while disabled")
		}
		seen = nil
		h2 := g2.Require()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := PrincipalFrom(r.Context())
			seen = append(seen, p)
		}))
		tok := is.mint(t, "", nil)
		do(h2, "Bearer "+tok)
		do(h2, "Bearer "+tok)
		if len(seen) != 2 || seen[0] == seen[1] {
			t.Error("token served from a cache that is disabled")
		}
	})
}

func TestMetrics(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	reg := prometheus.NewRegistry()
	g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, Registerer: reg})
	h := g.Require("a")(okHandler)
	tok := is.mint(t, "a", map[string]any{"sub": "secret-subject"})
	do(h, "Bearer "+tok)
	do(h)
	do(h, "Bearer "+is.mint(t, "b", nil))
	for reason, n := range map[Reason]uint64{ReasonOK: 1, ReasonMissingToken: 1, ReasonInsufficientScope: 1, ReasonExpired: 0} {
		if got := g.metrics.requests.value(reason); got != n {
			t.Errorf("%s = %v, want %v", reason, got, n)
		}
	}
	if n := testutil.CollectAndCount(g.metrics.verify); n != 1 {
		t.Errorf("histogram series = %d", n)
	}
	if got := testutil.ToFloat64(g.metrics.jwksRefresh.WithLabelValues("success")); got < 1 {
		t.Errorf("jwks success = %v", got)
	}
	// Every contract metric is registered, and no label carries request data.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "secret-subject") || strings.Contains(tok, l.GetValue()) && len(l.GetValue()) > 8 {
					t.Errorf("label %s=%q carries request data", l.GetName(), l.GetValue())
				}
			}
		}
	}
	for _, n := range []string{"tokenguard_requests_total", "tokenguard_verify_duration_seconds", "tokenguard_jwks_refresh_total"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
	// Two guards may share nothing: with no Registerer both work.
	newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}})
	newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}})

	// A guard replacing another on the same registry (a reload) counts
	// on into the same series, and the old one's late requests count too.
	g2 := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, Registerer: reg})
	do(g2.Require("a")(okHandler), "Bearer "+tok)
	do(h, "Bearer "+tok)
	if got := g2.metrics.requests.value(ReasonOK); got != 3 {
		t.Errorf("allowed after the second guard = %v, want 3 (1 before, 1 each since)", got)
	}
	if _, err := reg.Gather(); err != nil {
		t.Errorf("gathering two guards' metrics: %v", err)
	}
}

func TestNewValidation(t *testing.T) {
	good := Issuer{Issuer: "https://as.example.com", JWKSURI: "https://as.example.com/jwks"}
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the joined error
	}{
		{"empty", Config{}, []string{"middleware: Audience: required", "middleware: Issuers: at least one"}},
		{"relative issuer", Config{Audience: "a", Issuers: []Issuer{{Issuer: "as.example.com", JWKSURI: good.JWKSURI}}}, []string{"Issuers[0].Issuer: must be an absolute URL"}},
		{"http issuer", Config{Audience: "a", Issuers: []Issuer{{Issuer: "http://as.example.com", JWKSURI: good.JWKSURI}}}, []string{"Issuers[0].Issuer: must use https"}},
		{"http jwks", Config{Audience: "a", Issuers: []Issuer{{Issuer: good.Issuer, JWKSURI: "http://as.example.com/jwks"}}}, []string{"Issuers[0].JWKSURI: must use https"}},
		{"duplicate issuer", Config{Audience: "a", Issuers: []Issuer{good, good}}, []string{"Issuers[1].Issuer: duplicates Issuers[0]"}},
		{"introspection without client", Config{Audience: "a", Issuers: []Issuer{{Issuer: good.Issuer, JWKSURI: good.JWKSURI, IntrospectionEndpoint: "https://as.example.com/i"}}}, []string{"Issuers[0].ClientID: required with IntrospectionEndpoint"}},
		{"dpop mode unknown", Config{Audience: "a", Issuers: []Issuer{good}, DPoP: DPoPConfig{Mode: 7}}, []string{"DPoP.Mode: unknown mode 7"}},
		{"dpop alg HS256", Config{Audience: "a", Issuers: []Issuer{good}, DPoP: DPoPConfig{Mode: DPoPAllowed, Algorithms: []string{"HS256"}}}, []string{`dpop: Algorithms: "HS256" is not`}},
		{"dpop empty algs", Config{Audience: "a", Issuers: []Issuer{good}, DPoP: DPoPConfig{Mode: DPoPAllowed, Algorithms: []string{}}}, []string{"Algorithms: empty"}},
		{"dpop short nonce secret", Config{Audience: "a", Issuers: []Issuer{good}, DPoP: DPoPConfig{Mode: DPoPAllowed, Nonce: true, NonceSecrets: [][]byte{[]byte("short")}}}, []string{"nonce secret 0 has 5 bytes"}},
		{"dpop nonce secrets without nonce", Config{Audience: "a", Issuers: []Issuer{good}, DPoP: DPoPConfig{Mode: DPoPAllowed, NonceSecrets: [][]byte{make([]byte, 32)}}}, []string{"set DPoP.Nonce"}},
		{"dpop proof age", Config{Audience: "a", Issuers: []Issuer{good}, DPoP: DPoPConfig{Mode: DPoPAllowed, MaxProofAge: -time.Second}}, []string{"MaxAge"}},
		{"dpop bad host", Config{Audience: "a", Issuers: []Issuer{good}, DPoP: DPoPConfig{Mode: DPoPAllowed, AllowedHosts: []string{"https://api.example.com"}}}, []string{"DPoP.AllowedHosts[0]"}},
		{"dpop negative store", Config{Audience: "a", Issuers: []Issuer{good}, DPoP: DPoPConfig{Mode: DPoPAllowed, ReplayStoreSize: -1}}, []string{"DPoP.ReplayStoreSize"}},
		{"public url relative", Config{Audience: "a", Issuers: []Issuer{good}, PublicURL: "/api"}, []string{"PublicURL: must be an absolute URL"}},
		{"public url http", Config{Audience: "a", Issuers: []Issuer{good}, PublicURL: "http://api.example.com"}, []string{"PublicURL: must use https"}},
		{"public url query", Config{Audience: "a", Issuers: []Issuer{good}, PublicURL: "https://api.example.com/?x=1"}, []string{"PublicURL: must not contain a query"}},
		{"resource not a URL", Config{Audience: "a", Issuers: []Issuer{good}, Resource: "orders-api"}, []string{"Resource: must be an absolute URL"}},
		{"resource http", Config{Audience: "a", Issuers: []Issuer{good}, Resource: "http://api.example.com"}, []string{"Resource: must use https"}},
		{"alg none", Config{Audience: "a", Issuers: []Issuer{good}, Algorithms: []string{"none"}}, []string{`Algorithms: "none" is not`}},
		{"alg HS256", Config{Audience: "a", Issuers: []Issuer{good}, Algorithms: []string{"HS256"}}, []string{`"HS256" is not`}},
		{"empty algs", Config{Audience: "a", Issuers: []Issuer{good}, Algorithms: []string{}}, []string{"Algorithms: empty"}},
		{"TLS verification off", Config{Audience: "a", Issuers: []Issuer{good}, HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}, []string{"HTTPClient: TLS certificate verification must stay on"}},
		{"negative leeway", Config{Audience: "a", Issuers: []Issuer{good}, Leeway: -time.Second}, []string{"Leeway"}},
		{"negative cache", Config{Audience: "a", Issuers: []Issuer{good}, TokenCacheSize: -1}, []string{"TokenCacheSize"}},
		{"bad token size", Config{Audience: "a", Issuers: []Issuer{good}, MaxTokenSize: -5}, []string{"MaxTokenSize"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := New(context.Background(), tt.cfg)
			if err == nil {
				g.Close()
				t.Fatal("New succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestNewCopiesConfig(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	cfg := Config{Audience: testAudience, Issuers: []Issuer{is.config()}, Algorithms: []string{"ES256"}}
	g := newGuard(t, cfg)
	cfg.Issuers[0].Issuer = "https://evil.example.com"
	cfg.Algorithms[0] = "RS256"
	if rec := do(g.Require()(okHandler), "Bearer "+is.mint(t, "", nil)); rec.Code != 200 {
		t.Errorf("changing the caller's Config after New changed the guard: %d", rec.Code)
	}
}

func TestCloseIdempotent(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	g, err := New(context.Background(), Config{Audience: testAudience, Issuers: []Issuer{is.config()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestQueryAndFormTokens(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}})
	h := g.Require()(okHandler)
	tok := is.mint(t, "", nil)

	req := httptest.NewRequest("GET", "http://api.example.com/x?access_token="+tok, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 400 {
		t.Errorf("query token: %d, want 400", rec.Code)
	}
	assertNoEcho(t, rec.Header(), rec.Body.String(), "Bearer "+tok)

	// The parameter name percent-encoded is the same parameter.
	req = httptest.NewRequest("GET", "http://api.example.com/x?a=1&access%5Ftoken="+tok, nil)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 400 {
		t.Errorf("query token with an encoded name: %d, want 400", rec.Code)
	}

	req = httptest.NewRequest("POST", "http://api.example.com/x", strings.NewReader("access_token="+tok))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Errorf("form token: %d, want 401", rec.Code)
	}
}
