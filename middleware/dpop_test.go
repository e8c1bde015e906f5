package middleware

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/dpoptest"
	"github.com/tokenguard/tokenguard/internal/httpauth"
)

const dpopURL = "http://api.example.com/orders/1"

// dpopClient is a client holding a DPoP key.
type dpopClient struct {
	key *ecdsa.PrivateKey
	jkt string
}

func newDPoPClient(t testing.TB) *dpopClient {
	t.Helper()
	k, jkt := dpoptest.NewKey(t)
	return &dpopClient{key: k, jkt: jkt}
}

// proof makes a proof for method and url bound to token; edit may change
// the parameters first.
func (c *dpopClient) proof(t testing.TB, method, url, token string, edit ...func(*dpop.ProofParams)) string {
	t.Helper()
	p := dpop.ProofParams{Method: method, URL: url, AccessToken: token}
	for _, e := range edit {
		e(&p)
	}
	proof, err := dpop.NewProof(c.key, p)
	if err != nil {
		t.Fatal(err)
	}
	return proof
}

// jktHandler answers 200 with the principal's JKT.
var jktHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	p, ok := PrincipalFrom(r.Context())
	if !ok {
		http.Error(w, "no principal", http.StatusInternalServerError)
		return
	}
	_, _ = w.Write([]byte("jkt=" + p.JKT))
})

// dpopRequest sends a GET for url with one Authorization value and the
// given DPoP header values.
func dpopRequest(h http.Handler, url, auth string, proofs ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// challengeFor returns the params of scheme's challenge in rec, or nil.
func challengeFor(t testing.TB, rec *httptest.ResponseRecorder, scheme string) map[string]string {
	t.Helper()
	cs, err := httpauth.ParseChallenges(rec.Header().Get("WWW-Authenticate"))
	if err != nil {
		t.Fatalf("WWW-Authenticate %q: %v", rec.Header().Get("WWW-Authenticate"), err)
	}
	for _, c := range cs {
		if strings.EqualFold(c.Scheme, scheme) {
			m := map[string]string{}
			for _, p := range c.Params {
				m[p.Name] = p.Value
			}
			return m
		}
	}
	return nil
}

func TestDPoP(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	alice, mallory := newDPoPClient(t), newDPoPClient(t)
	bound := is.mint(t, "orders:read", map[string]any{"cnf": map[string]any{"jkt": alice.jkt}})
	mtlsBound := is.mint(t, "orders:read", map[string]any{"cnf": map[string]any{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0"}})
	plain := is.mint(t, "orders:read", nil)
	var logs syncBuffer
	g := newGuard(t, Config{
		Audience: testAudience,
		Issuers:  []Issuer{is.config()},
		DPoP:     DPoPConfig{Mode: DPoPAllowed},
		Logger:   slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	h := g.Require("orders:read")(jktHandler)
	replayed := alice.proof(t, "GET", dpopURL, bound)
	if rec := dpopRequest(h, dpopURL, "DPoP "+bound, replayed); rec.Code != http.StatusOK {
		t.Fatalf("first use: %d %s", rec.Code, rec.Body)
	}

	tests := []struct {
		name       string
		auth       string
		proofs     []string
		url        string // "" means dpopURL
		wantStatus int
		wantScheme string // challenge carrying the error
		wantCode   string
		wantReason Reason
	}{
		{"bound token with proof", "DPoP " + bound, []string{alice.proof(t, "GET", dpopURL, bound)}, "", 200, "", "", ReasonOK},
		{"scheme is case-insensitive", "dpop " + bound, []string{alice.proof(t, "GET", dpopURL, bound)}, "", 200, "", "", ReasonOK},
		{"cached token, fresh proof", "DPoP " + bound, []string{alice.proof(t, "GET", dpopURL, bound)}, "", 200, "", "", ReasonOK},
		{"proof query ignored", "DPoP " + bound, []string{alice.proof(t, "GET", dpopURL, bound)}, dpopURL + "?page=2", 200, "", "", ReasonOK},
		{"unbound token as Bearer", "Bearer " + plain, nil, "", 200, "", "", ReasonOK},

		{"replayed proof", "DPoP " + bound, []string{replayed}, "", 401, "DPoP", CodeInvalidDPoPProof, ReasonReplay},
		{"bound token as Bearer", "Bearer " + bound, nil, "", 401, "Bearer", CodeInvalidToken, ReasonDPoPBound},
		{"bound token as Bearer with proof", "Bearer " + bound, []string{alice.proof(t, "GET", dpopURL, bound)}, "", 401, "Bearer", CodeInvalidToken, ReasonDPoPBound},
		{"mTLS-bound token as Bearer without a certificate", "Bearer " + mtlsBound, nil, "", 401, "Bearer", CodeInvalidToken, ReasonCertificateRequired},
		{"mTLS-bound token as DPoP", "DPoP " + mtlsBound, []string{alice.proof(t, "GET", dpopURL, mtlsBound)}, "", 401, "DPoP", CodeInvalidToken, ReasonNotBound},
		{"unbound token as DPoP", "DPoP " + plain, []string{alice.proof(t, "GET", dpopURL, plain)}, "", 401, "DPoP", CodeInvalidToken, ReasonNotBound},
		{"no proof", "DPoP " + bound, nil, "", 401, "DPoP", CodeInvalidDPoPProof, ReasonInvalidProof},
		{"two proofs", "DPoP " + bound, []string{alice.proof(t, "GET", dpopURL, bound), alice.proof(t, "GET", dpopURL, bound)}, "", 401, "DPoP", CodeInvalidDPoPProof, ReasonInvalidProof},
		{"empty proof", "DPoP " + bound, []string{""}, "", 401, "DPoP", CodeInvalidDPoPProof, ReasonInvalidProof},
		{"another key's proof", "DPoP " + bound, []string{mallory.proof(t, "GET", dpopURL, bound)}, "", 401, "DPoP", CodeInvalidToken, ReasonKeyBinding},
		{"proof for another URL", "DPoP " + bound, []string{alice.proof(t, "GET", "http://api.example.com/orders/2", bound)}, "", 401, "DPoP", CodeInvalidDPoPProof, ReasonInvalidProof},
		{"proof for another host", "DPoP " + bound, []string{alice.proof(t, "GET", "http://evil.example.com/orders/1", bound)}, "", 401, "DPoP", CodeInvalidDPoPProof, ReasonInvalidProof},
		{"proof for another method", "DPoP " + bound, []string{alice.proof(t, "POST", dpopURL, bound)}, "", 401, "DPoP", CodeInvalidDPoPProof, ReasonInvalidProof},
		{"proof without ath", "DPoP " + bound, []string{alice.proof(t, "GET", dpopURL, "")}, "", 401, "DPoP", CodeInvalidDPoPProof, ReasonInvalidProof},
		{"proof for another token", "DPoP " + bound, []string{alice.proof(t, "GET", dpopURL, plain)}, "", 401, "DPoP", CodeInvalidDPoPProof, ReasonInvalidProof},
		{"stale proof", "DPoP " + bound, []string{alice.proof(t, "GET", dpopURL, bound, func(p *dpop.ProofParams) { p.IssuedAt = time.Now().Add(-time.Hour) })}, "", 401, "DPoP", CodeInvalidDPoPProof, ReasonInvalidProof},
		{"malformed token with DPoP", "DPoP " + bound + "!", []string{alice.proof(t, "GET", dpopURL, bound)}, "", 401, "DPoP", CodeInvalidToken, ReasonMalformedToken},
		{"oversized token with DPoP", "DPoP " + strings.Repeat("a", DefaultMaxTokenSize+1), nil, "", 401, "DPoP", CodeInvalidToken, ReasonTokenTooLarge},
		{"oversized token as Bearer", "Bearer " + strings.Repeat("a", DefaultMaxTokenSize+1), nil, "", 401, "Bearer", CodeInvalidToken, ReasonTokenTooLarge},
		{"invalid token with DPoP", "DPoP " + bound[:len(bound)-4] + "AAAA", []string{alice.proof(t, "GET", dpopURL, bound)}, "", 401, "DPoP", CodeInvalidToken, ReasonInvalidSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs.Reset()
			url := tt.url
			if url == "" {
				url = dpopURL
			}
			rec := dpopRequest(h, url, tt.auth, tt.proofs...)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, tt.wantStatus)
			}
			if tt.wantStatus == 200 {
				if tt.auth[:1] != "B" && rec.Body.String() != "jkt="+alice.jkt {
					t.Errorf("principal %s, want jkt=%s", rec.Body, alice.jkt)
				}
				return
			}
			if got := deniedReason(t, logs.String()); got != tt.wantReason {
				t.Errorf("reason %q, want %q", got, tt.wantReason)
			}
			bearer, dp := challengeFor(t, rec, "Bearer"), challengeFor(t, rec, "DPoP")
			if bearer == nil || dp == nil {
				t.Fatalf("want both challenges, got %q", rec.Header().Get("WWW-Authenticate"))
			}
			if dp["algs"] != "ES256 ES384 EdDSA RS256 PS256" {
				t.Errorf("DPoP algs=%q", dp["algs"])
			}
			with, without := dp, bearer
			if tt.wantScheme == "Bearer" {
				with, without = bearer, dp
			}
			if with["error"] != tt.wantCode || without["error"] != "" {
				t.Errorf("WWW-Authenticate %q: want error=%s on %s only", rec.Header().Get("WWW-Authenticate"), tt.wantCode, tt.wantScheme)
			}
			if strings.Contains(rec.Body.String(), bound) || strings.Contains(logs.String(), bound) {
				t.Error("the token leaked into the response or the log")
			}
		})
	}
	if n := testutil.ToFloat64(g.metrics.dpopReplays); n != 1 {
		t.Errorf("tokenguard_dpop_replays_total = %v, want 1", n)
	}
}

func TestDPoPModes(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	alice := newDPoPClient(t)
	bound := is.mint(t, "", map[string]any{"cnf": map[string]any{"jkt": alice.jkt}})
	plain := is.mint(t, "", nil)
	disabled := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}}).Require()(okHandler)
	required := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, DPoP: DPoPConfig{Mode: DPoPRequired, Algorithms: []string{"ES256"}}}).Require()(okHandler)

	// Disabled: the DPoP scheme is not taken, and a bound token is not
	// downgraded to Bearer.
	rec := dpopRequest(disabled, dpopURL, "DPoP "+bound, alice.proof(t, "GET", dpopURL, bound))
	if rec.Code != 401 || challengeFor(t, rec, "DPoP") != nil || challengeFor(t, rec, "Bearer")["error"] != "" {
		t.Errorf("disabled, DPoP scheme: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	if rec := dpopRequest(disabled, dpopURL, "Bearer "+bound); rec.Code != 401 || challengeFor(t, rec, "Bearer")["error"] != CodeInvalidToken {
		t.Errorf("disabled, bound token as Bearer: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	if rec := dpopRequest(disabled, dpopURL, "Bearer "+plain); rec.Code != 200 {
		t.Errorf("disabled, Bearer: %d", rec.Code)
	}

	// Required: Bearer is not taken; only the DPoP challenge is sent.
	rec = dpopRequest(required, dpopURL, "Bearer "+plain)
	if rec.Code != 401 || challengeFor(t, rec, "Bearer") != nil || challengeFor(t, rec, "DPoP")["algs"] != "ES256" {
		t.Errorf("required, Bearer: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	// A request error in required mode goes in the DPoP challenge, the
	// only one there is.
	rec = do(required, "DPoP "+bound, "DPoP "+bound)
	if rec.Code != 400 || challengeFor(t, rec, "DPoP")["error"] != CodeInvalidRequest {
		t.Errorf("required, two Authorization headers: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	if rec := dpopRequest(required, dpopURL, "DPoP "+bound, alice.proof(t, "GET", dpopURL, bound)); rec.Code != 200 {
		t.Errorf("required, DPoP: %d %s", rec.Code, rec.Body)
	}
	// The proof alg allow-list is enforced.
	ed := newDPoPClient(t)
	edProof := ed.proof(t, "GET", dpopURL, bound, func(p *dpop.ProofParams) { p.Alg = "ES384" })
	if rec := dpopRequest(required, dpopURL, "DPoP "+bound, edProof); rec.Code != 401 {
		t.Errorf("required, proof alg outside the allow-list: %d", rec.Code)
	}
}

func TestDPoPRequestURL(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	alice := newDPoPClient(t)
	bound := is.mint(t, "", map[string]any{"cnf": map[string]any{"jkt": alice.jkt}})
	behindProxy := newGuard(t, Config{
		Audience: testAudience, Issuers: []Issuer{is.config()},
		PublicURL: "https://api.example.com/v1/",
		DPoP:      DPoPConfig{Mode: DPoPAllowed},
	}).Require()(okHandler)
	hosts := newGuard(t, Config{
		Audience: testAudience, Issuers: []Issuer{is.config()},
		DPoP: DPoPConfig{Mode: DPoPAllowed, AllowedHosts: []string{"API.example.com"}},
	}).Require()(okHandler)
	const internal = "http://10.0.0.7:8080/orders/1"
	tests := []struct {
		name    string
		h       http.Handler
		url     string // what the server receives
		htu     string // what the client signed
		forward bool   // add X-Forwarded-* naming the htu's host
		want    int
	}{
		{"public URL", behindProxy, internal, "https://api.example.com/v1/orders/1", false, 200},
		{"public URL, proof for the internal URL", behindProxy, internal, internal, false, 401},
		{"public URL, proof without the path prefix", behindProxy, internal, "https://api.example.com/orders/1", false, 401},
		{"allowed host", hosts, dpopURL, dpopURL, false, 200},
		{"forged host", hosts, "http://evil.example.com/orders/1", "http://evil.example.com/orders/1", false, 401},
		{"X-Forwarded-* ignored", hosts, "http://evil.example.com/orders/1", dpopURL, true, 401},
		{"X-Forwarded-Proto does not make http https", hosts, dpopURL, "https://api.example.com/orders/1", true, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tt.url, nil)
			req.Header.Set("Authorization", "DPoP "+bound)
			req.Header.Set("DPoP", alice.proof(t, "GET", tt.htu, bound))
			if tt.forward {
				req.Header.Set("X-Forwarded-Host", "api.example.com")
				req.Header.Set("X-Forwarded-Proto", "https")
			}
			rec := httptest.NewRecorder()
			tt.h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, tt.want)
			}
		})
	}
}

// TestDPoPOverTLS: without PublicURL, a TLS request's htu is https.
func TestDPoPOverTLS(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	alice := newDPoPClient(t)
	bound := is.mint(t, "", map[string]any{"cnf": map[string]any{"jkt": alice.jkt}})
	h := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, DPoP: DPoPConfig{Mode: DPoPAllowed}}).Require()(okHandler)
	for _, tt := range []struct {
		htu  string
		want int
	}{
		{"https://api.example.com/orders/1", 200},
		{"http://api.example.com/orders/1", 401},
	} {
		req := httptest.NewRequest(http.MethodGet, "https://api.example.com/orders/1", nil)
		req.TLS = &tls.ConnectionState{}
		req.Header.Set("Authorization", "DPoP "+bound)
		req.Header.Set("DPoP", alice.proof(t, "GET", tt.htu, bound))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("TLS request, proof for %s: %d, want %d", tt.htu, rec.Code, tt.want)
		}
	}
}

// TestDPoPClockSkewConfig: DPoPConfig.MaxClockSkew reaches the verifier.
func TestDPoPClockSkewConfig(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	alice := newDPoPClient(t)
	bound := is.mint(t, "", map[string]any{"cnf": map[string]any{"jkt": alice.jkt}})
	h := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, DPoP: DPoPConfig{Mode: DPoPAllowed, MaxClockSkew: time.Minute}}).Require()(okHandler)
	ahead := alice.proof(t, "GET", dpopURL, bound, func(p *dpop.ProofParams) { p.IssuedAt = time.Now().Add(30 * time.Second) })
	if rec := dpopRequest(h, dpopURL, "DPoP "+bound, ahead); rec.Code != 200 {
		t.Fatalf("proof 30 s ahead with a 1 min skew allowed: %d %s", rec.Code, rec.Body)
	}
}

func TestDPoPNonce(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	alice := newDPoPClient(t)
	bound := is.mint(t, "", map[string]any{"cnf": map[string]any{"jkt": alice.jkt}})
	secret := []byte(strings.Repeat("k", 32))
	clock := &fakeClock{t: time.Now()}
	cfg := Config{
		Audience: testAudience, Issuers: []Issuer{is.config()},
		DPoP: DPoPConfig{Mode: DPoPAllowed, Nonce: true, NonceSecrets: [][]byte{secret}, NonceLifetime: time.Minute, MaxProofAge: time.Hour},
	}
	cfg.now = clock.Now
	h := newGuard(t, cfg).Require()(okHandler)
	replica := newGuard(t, cfg).Require()(okHandler)

	withJTI := func(jti, nonce string) func(*dpop.ProofParams) {
		return func(p *dpop.ProofParams) { p.JTI, p.Nonce, p.IssuedAt = jti, nonce, clock.Now() }
	}
	rec := dpopRequest(h, dpopURL, "DPoP "+bound, alice.proof(t, "GET", dpopURL, bound, withJTI("j1", "")))
	nonce := rec.Header().Get("DPoP-Nonce")
	if rec.Code != 401 || challengeFor(t, rec, "DPoP")["error"] != CodeUseDPoPNonce || nonce == "" {
		t.Fatalf("no nonce: %d %q nonce %q", rec.Code, rec.Header().Get("WWW-Authenticate"), nonce)
	}
	// The refused proof did not use up its jti.
	if rec := dpopRequest(h, dpopURL, "DPoP "+bound, alice.proof(t, "GET", dpopURL, bound, withJTI("j1", nonce))); rec.Code != 200 || rec.Header().Get("DPoP-Nonce") != "" {
		t.Fatalf("with nonce: %d %s nonce %q", rec.Code, rec.Body, rec.Header().Get("DPoP-Nonce"))
	}
	// A replica sharing the secret accepts the nonce.
	if rec := dpopRequest(replica, dpopURL, "DPoP "+bound, alice.proof(t, "GET", dpopURL, bound, withJTI("j2", nonce))); rec.Code != 200 {
		t.Fatalf("replica: %d %s", rec.Code, rec.Body)
	}
	if rec := dpopRequest(h, dpopURL, "DPoP "+bound, alice.proof(t, "GET", dpopURL, bound, withJTI("j3", "forged-nonce"))); rec.Code != 401 || rec.Header().Get("DPoP-Nonce") == "" {
		t.Fatalf("forged nonce: %d", rec.Code)
	}
	// Near the end of its life the nonce still works, and the response
	// carries a fresh one.
	clock.Add(time.Minute)
	rec = dpopRequest(h, dpopURL, "DPoP "+bound, alice.proof(t, "GET", dpopURL, bound, withJTI("j4", nonce)))
	if fresh := rec.Header().Get("DPoP-Nonce"); rec.Code != 200 || fresh == "" || fresh == nonce {
		t.Fatalf("ageing nonce: %d, DPoP-Nonce %q", rec.Code, fresh)
	}
	clock.Add(time.Minute)
	if rec := dpopRequest(h, dpopURL, "DPoP "+bound, alice.proof(t, "GET", dpopURL, bound, withJTI("j5", nonce))); rec.Code != 401 {
		t.Fatalf("expired nonce: %d", rec.Code)
	}
}

// failingStore fails every Use with err.
type failingStore struct{ err error }

func (s failingStore) Use(context.Context, dpop.Replay) error { return s.err }

func TestDPoPReplayStoreFailuresFailClosed(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	alice := newDPoPClient(t)
	bound := is.mint(t, "", map[string]any{"cnf": map[string]any{"jkt": alice.jkt}})
	for _, tt := range []struct {
		err    error
		reason Reason
	}{
		{dpop.ErrStoreUnavailable, ReasonReplayStoreUnavailable},
		{dpop.ErrStoreFull, ReasonReplayStoreFull},
		{errors.New("connection reset"), ReasonReplayStoreUnavailable},
	} {
		g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, DPoP: DPoPConfig{Mode: DPoPAllowed, ReplayStore: failingStore{tt.err}}})
		rec := dpopRequest(g.Require()(okHandler), dpopURL, "DPoP "+bound, alice.proof(t, "GET", dpopURL, bound))
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("WWW-Authenticate") != "" {
			t.Errorf("store error %v: %d %q", tt.err, rec.Code, rec.Header().Get("WWW-Authenticate"))
		}
		if n := g.metrics.requests.value(tt.reason); n != 1 {
			t.Errorf("store error %v: %s counted %v times", tt.err, tt.reason, n)
		}
	}
	// The in-memory store at its bound refuses rather than evicts.
	g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, DPoP: DPoPConfig{Mode: DPoPAllowed, ReplayStoreSize: 64, ReplayKeyQuota: 64}})
	h := g.Require()(okHandler)
	codes := map[int]int{}
	for range 200 {
		codes[dpopRequest(h, dpopURL, "DPoP "+bound, alice.proof(t, "GET", dpopURL, bound)).Code]++
	}
	if codes[200] == 0 || codes[503] == 0 || codes[200]+codes[503] != 200 || codes[200] > 64 {
		t.Errorf("1-entry-per-shard store over 200 proofs: %v", codes)
	}
}

// countingStore counts the proofs it is asked to record, and records
// nothing.
type countingStore struct{ n atomic.Int64 }

func (s *countingStore) Use(context.Context, dpop.Replay) error { s.n.Add(1); return nil }

// TestDPoPProofRecordedOnlyWhenAuthorized: a request refused for its
// scope, its policy or its step-up never takes a replay-store entry, so a
// client with any bound token cannot fill the store with requests that are
// refused anyway.
func TestDPoPProofRecordedOnlyWhenAuthorized(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	alice := newDPoPClient(t)
	bound := is.mint(t, "orders:read", map[string]any{"cnf": map[string]any{"jkt": alice.jkt}})
	store := &countingStore{}
	g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, DPoP: DPoPConfig{Mode: DPoPAllowed, ReplayStore: store}})
	for _, h := range []http.Handler{
		g.Require("admin")(okHandler),
		g.RequirePolicy(Policy{ACRValues: []string{"gold"}})(okHandler),
		g.RequirePolicy(Policy{AnyOf: [][]string{{"admin"}, {"orders:write"}}})(okHandler),
	} {
		for range 10 {
			if rec := dpopRequest(h, dpopURL, "DPoP "+bound, alice.proof(t, "GET", dpopURL, bound)); rec.Code == http.StatusOK {
				t.Fatal("a refused route served the request")
			}
		}
	}
	if n := store.n.Load(); n != 0 {
		t.Fatalf("refused requests recorded %d proofs", n)
	}
	if rec := dpopRequest(g.Require("orders:read")(okHandler), dpopURL, "DPoP "+bound, alice.proof(t, "GET", dpopURL, bound)); rec.Code != http.StatusOK {
		t.Fatalf("allowed request: %d", rec.Code)
	}
	if n := store.n.Load(); n != 1 {
		t.Fatalf("an allowed request recorded %d proofs, want 1", n)
	}
}

// TestDPoPKeyQuota: one key past its quota gets 429 with Retry-After and
// no challenge (its credentials were good), counted as dpop_key_quota;
// another key is served.
func TestDPoPKeyQuota(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	alice, bob := newDPoPClient(t), newDPoPClient(t)
	aliceTok := is.mint(t, "", map[string]any{"cnf": map[string]any{"jkt": alice.jkt}})
	bobTok := is.mint(t, "", map[string]any{"cnf": map[string]any{"jkt": bob.jkt}})
	g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, DPoP: DPoPConfig{Mode: DPoPAllowed, ReplayStoreSize: 1000, ReplayKeyQuota: 3}})
	h := g.Require()(okHandler)
	for i := range 3 {
		if rec := dpopRequest(h, dpopURL, "DPoP "+aliceTok, alice.proof(t, "GET", dpopURL, aliceTok)); rec.Code != http.StatusOK {
			t.Fatalf("request %d within the quota: %d", i, rec.Code)
		}
	}
	rec := dpopRequest(h, dpopURL, "DPoP "+aliceTok, alice.proof(t, "GET", dpopURL, aliceTok))
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" || rec.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("over the quota: %d, Retry-After %q, WWW-Authenticate %q", rec.Code, rec.Header().Get("Retry-After"), rec.Header().Get("WWW-Authenticate"))
	}
	if n := g.metrics.requests.value(ReasonDPoPKeyQuota); n != 1 {
		t.Errorf("dpop_key_quota counted %d times", n)
	}
	if rec := dpopRequest(h, dpopURL, "DPoP "+bobTok, bob.proof(t, "GET", dpopURL, bobTok)); rec.Code != http.StatusOK {
		t.Errorf("another key: %d", rec.Code)
	}
	for _, bad := range []DPoPConfig{
		{Mode: DPoPAllowed, ReplayStoreSize: 10, ReplayKeyQuota: 11},
		{Mode: DPoPAllowed, ReplayKeyQuota: -1},
		{Mode: DPoPAllowed, ReplayKeyQuota: 5, ReplayStore: &countingStore{}},
	} {
		if _, err := New(context.Background(), Config{Audience: testAudience, Issuers: []Issuer{is.config()}, DPoP: bad, StartupWait: -1}); err == nil {
			t.Errorf("New accepted %+v", bad)
		}
	}
}
