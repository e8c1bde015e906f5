package bff_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/testkit"
	"github.com/tokenguard/tokenguard/middleware"
)

// dpopRequired makes the env's guard take DPoP tokens only.
func dpopRequired(g *middleware.Config) {
	g.DPoP = middleware.DPoPConfig{Mode: middleware.DPoPRequired}
}

// proofClaims returns a proof's payload, unverified.
func proofClaims(t *testing.T, proof string) map[string]any {
	t.Helper()
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		t.Fatalf("proof %q is not a compact JWS", proof)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkProof verifies a recorded proof with package dpop for method and
// url (and token when not empty) and returns its key's thumbprint.
func checkProof(t *testing.T, proof, method, url, token, jkt string) string {
	t.Helper()
	v, err := dpop.NewVerifier(dpop.Config{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(t.Context(), dpop.Request{Proof: proof, Method: method, URL: url, AccessToken: token, JKT: jkt})
	if err != nil {
		t.Fatalf("proof for %s %s: %v", method, url, err)
	}
	if typ := proofHeader(t, proof)["typ"]; typ != "dpop+jwt" {
		t.Errorf("proof typ %v", typ)
	}
	return p.JKT
}

func proofHeader(t *testing.T, proof string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(proof, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDPoPSessions: each session gets a key of its own, whose thumbprint
// is the authorization request's dpop_jkt; the code exchange and the
// refresh carry proofs by it; the API request carries Authorization:
// DPoP and a proof that a guard requiring DPoP accepts; and the key is
// nowhere but the session store: not in the login cookie, not in any
// answer, header, request to the issuer or log line.
func TestDPoPSessions(t *testing.T) {
	e, tp, logs := newTapEnvGuard(t, func(c *bff.Config) { c.DPoP = true; c.PAR = bff.PAROff }, dpopRequired)
	tokenURL := e.is.URL() + "/token"
	var seen []string // everything the browsers were sent
	rec := func(resp *http.Response, body string) *http.Response {
		var b strings.Builder
		_ = resp.Header.Write(&b)
		seen = append(seen, b.String(), body)
		return resp
	}
	var jkts []string
	var secrets [][]byte
	for range 2 {
		e.expireSoon(t)
		b := newBrowser(t)
		resp := rec(b.do("GET", e.app.URL+"/bff/login"))
		authz := query(t, resp.Header.Get("Location"))
		jkt, state := authz.Get("dpop_jkt"), authz.Get("state")
		if len(jkt) != 43 {
			t.Fatalf("dpop_jkt = %q", jkt)
		}
		jkts = append(jkts, jkt)
		// The login cookie holds the thumbprint, never the key.
		plain, err := bff.OpenLoginCookie(e.h, state, b.Cookies[bff.LoginCookieName(state)])
		if err != nil {
			t.Fatal(err)
		}
		var lc map[string]any
		if err := json.Unmarshal(plain, &lc); err != nil {
			t.Fatal(err)
		}
		for k := range lc {
			if !strings.Contains("v n r o e k", k) || len(k) != 1 {
				t.Errorf("login cookie member %q", k)
			}
		}
		if lc["k"] != jkt {
			t.Errorf("login cookie k = %v, want the dpop_jkt", lc["k"])
		}
		resp = rec(b.do("GET", resp.Header.Get("Location")))
		if resp = rec(b.DoCrossSite("GET", resp.Header.Get("Location"))); resp.StatusCode != http.StatusFound {
			t.Fatalf("callback: %d", resp.StatusCode)
		}

		// The code exchange: a proof by the key dpop_jkt named.
		tokens := tp.requests("/token")
		ex := tokens[len(tokens)-1]
		if ex.form.Get("grant_type") != "authorization_code" || len(ex.header.Values("DPoP")) != 1 {
			t.Fatalf("code exchange %v with DPoP %q", ex.form.Get("grant_type"), ex.header.Values("DPoP"))
		}
		if got := checkProof(t, ex.header.Get("DPoP"), "POST", tokenURL, "", ""); got != jkt {
			t.Errorf("code exchange proof key %s, want dpop_jkt %s", got, jkt)
		}
		if c := proofClaims(t, ex.header.Get("DPoP")); c["ath"] != nil || c["htu"] != tokenURL {
			t.Errorf("code exchange proof claims %v", c)
		}
		key, err := bff.SessionDPoPKeyOf(e.h, b.Cookies[bff.SessionCookie])
		if err != nil || len(key) != 32 {
			t.Fatalf("session key: %d bytes, %v", len(key), err)
		}
		secrets = append(secrets, key)
		priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), key)
		if err != nil {
			t.Fatal(err)
		}
		if tp, _ := dpop.Thumbprint(priv.Public()); tp != jkt {
			t.Errorf("the session keeps a key whose thumbprint %s is not dpop_jkt %s", tp, jkt)
		}

		// The API: DPoP, with a proof for this method and URL, bound to
		// this token; the guard (DPoP required) let it through.
		resp, body := b.api(e)
		if rec(resp, body).StatusCode != http.StatusOK {
			t.Fatalf("api: %d %s", resp.StatusCode, body)
		}
		up := e.upstream.last(t)
		scheme, tok, _ := strings.Cut(up.Header.Get("Authorization"), " ")
		if scheme != "DPoP" || testkit.TokenJKT(t, tok) != jkt {
			t.Fatalf("upstream Authorization %s, token bound to %q, want DPoP bound to %s", scheme, testkit.TokenJKT(t, tok), jkt)
		}
		checkProof(t, up.Header.Get("DPoP"), "GET", e.app.URL+"/orders", tok, jkt)

		// Refresh: by the same key, and the new token bound to it too.
		e.is.SetAccessTokenTTL(time.Hour)
		e.advance(6 * time.Second)
		if resp, body = b.api(e); rec(resp, body).StatusCode != http.StatusOK {
			t.Fatalf("api (refresh): %d %s", resp.StatusCode, body)
		}
		tokens = tp.requests("/token")
		rf := tokens[len(tokens)-1]
		if rf.form.Get("grant_type") != "refresh_token" {
			t.Fatalf("last token request is %q, want a refresh", rf.form.Get("grant_type"))
		}
		if got := checkProof(t, rf.header.Get("DPoP"), "POST", tokenURL, "", ""); got != jkt {
			t.Errorf("refresh proof key %s, want %s", got, jkt)
		}
		up = e.upstream.last(t)
		_, tok2, _ := strings.Cut(up.Header.Get("Authorization"), " ")
		if tok2 == tok || testkit.TokenJKT(t, tok2) != jkt {
			t.Errorf("refreshed token bound to %q (changed: %v)", testkit.TokenJKT(t, tok2), tok2 != tok)
		}
		e.advance(-6 * time.Second)

		// The same token without its proof, or as Bearer, is refused by
		// the guard: the proof above is what let it through.
		for _, hdr := range [][]string{{"Authorization: DPoP " + tok2}, {"Authorization: Bearer " + tok2}} {
			if resp, _ := newBrowser(t).do("GET", e.app.URL+"/orders", hdr...); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s without a proof: %d", strings.SplitN(hdr[0], " ", 3)[1], resp.StatusCode)
			}
		}
		if resp, body := b.do("GET", e.app.URL+"/bff/user", "X-CSRF: 1"); rec(resp, body).StatusCode != http.StatusOK {
			t.Errorf("/user: %d %s", resp.StatusCode, body)
		}
		rec(b.do("POST", e.app.URL+"/bff/logout", "X-CSRF: 1"))
		for _, c := range b.Seen {
			seen = append(seen, c.String())
		}
	}
	if jkts[0] == jkts[1] {
		t.Error("two sessions share a DPoP key")
	}

	// The keys are nowhere else.
	e.upstream.mu.Lock()
	for _, r := range e.upstream.reqs {
		var b strings.Builder
		_ = r.Header.Write(&b)
		seen = append(seen, b.String())
	}
	e.upstream.mu.Unlock()
	tp.mu.Lock()
	for _, r := range tp.reqs {
		var b strings.Builder
		_ = r.header.Write(&b)
		seen = append(seen, b.String(), r.form.Encode())
	}
	tp.mu.Unlock()
	seen = append(seen, logs.String())
	all := strings.Join(seen, "\n")
	for _, key := range secrets {
		for _, enc := range []string{
			base64.RawURLEncoding.EncodeToString(key), base64.StdEncoding.EncodeToString(key),
			hex.EncodeToString(key), string(key),
		} {
			if strings.Contains(all, enc) {
				t.Errorf("a session's DPoP key (as %q) left the store", enc)
			}
		}
	}
}

// TestDPoPNonceFromIssuer: the issuer's use_dpop_nonce gets exactly one
// retry with its nonce, which is remembered for later token requests; a
// second demand fails the request instead of looping, and at a refresh
// it does not end the session.
func TestDPoPNonceFromIssuer(t *testing.T) {
	e, tp, _ := newTapEnvGuard(t, func(c *bff.Config) { c.DPoP = true }, dpopRequired)
	e.is.SetDPoPNonce(devissuer.NonceRequired)
	e.expireSoon(t)
	b := newBrowser(t)
	b.login(e, "")
	tokens := tp.requests("/token")
	if len(tokens) != 2 || e.is.NonceDemands() != 1 {
		t.Fatalf("%d token requests, %d nonce demands; want 2 and 1", len(tokens), e.is.NonceDemands())
	}
	first, retry := proofClaims(t, tokens[0].header.Get("DPoP")), proofClaims(t, tokens[1].header.Get("DPoP"))
	if first["nonce"] != nil || retry["nonce"] == nil || retry["jti"] == first["jti"] || tokens[1].form.Get("code") != tokens[0].form.Get("code") {
		t.Errorf("first proof %v, retry %v", first, retry)
	}

	// The next token request uses the nonce it learned: no demand.
	e.advance(6 * time.Second)
	if resp, body := b.api(e); resp.StatusCode != http.StatusOK {
		t.Fatalf("api (refresh): %d %s", resp.StatusCode, body)
	}
	if n := len(tp.requests("/token")); n != 3 || e.is.NonceDemands() != 1 {
		t.Errorf("refresh: %d token requests, %d demands; want 3 and 1", n, e.is.NonceDemands())
	}
	if c := proofClaims(t, tp.requests("/token")[2].header.Get("DPoP")); c["nonce"] != retry["nonce"] {
		t.Errorf("refresh proof nonce %v, want the one learned: %v", c["nonce"], retry["nonce"])
	}

	// A server that demands a new nonce every time: one retry, then the
	// refusal.
	e.is.SetDPoPNonce(devissuer.NonceAlways)
	before, demands := len(tp.requests("/token")), e.is.NonceDemands()
	b.api(e) // within the margin again (the refreshed token lives 10 s, 6 s of it gone)
	e.advance(3 * time.Second)
	if resp, body := b.api(e); resp.StatusCode != http.StatusOK {
		t.Fatalf("api while the refresh fails: %d %s; the session must stay, its token is still valid", resp.StatusCode, body)
	}
	if n, d := len(tp.requests("/token"))-before, e.is.NonceDemands()-demands; n != 2 || d != 2 {
		t.Errorf("refresh against a server always demanding nonces: %d token requests, %d demands; want 2 and 2", n, d)
	}
	e.is.SetDPoPNonce(devissuer.NonceRequired)
	if resp, body := b.api(e); resp.StatusCode != http.StatusOK {
		t.Fatalf("api after the server is back: %d %s", resp.StatusCode, body)
	}

	e.is.SetDPoPNonce(devissuer.NonceAlways)
	before, demands = len(tp.requests("/token")), e.is.NonceDemands()
	b2 := newBrowser(t)
	if resp, body := b2.DoCrossSite("GET", b2.startLogin(e, "")); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("callback against a server always demanding nonces: %d %s", resp.StatusCode, body)
	}
	if n, d := len(tp.requests("/token"))-before, e.is.NonceDemands()-demands; n != 2 || d != 2 {
		t.Errorf("code exchange: %d token requests, %d demands; want 2 and 2", n, d)
	}
}

// rewriteTokenType makes the token endpoint's successful answers say
// token_type Bearer.
func rewriteTokenType(path string, resp *http.Response, err error) (*http.Response, error) {
	if path != "/token" || err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	var m map[string]any
	if json.Unmarshal(body, &m) == nil {
		m["token_type"] = "Bearer"
		body, _ = json.Marshal(m)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return resp, nil
}

// TestDPoPDowngradeRefused: a token response that says Bearer to a
// proved token request is refused: at the login no session is made, at
// a refresh the session ends.
func TestDPoPDowngradeRefused(t *testing.T) {
	t.Run("login", func(t *testing.T) {
		e, tp, logs := newTapEnv(t, func(c *bff.Config) { c.DPoP = true })
		tp.setEdit(rewriteTokenType)
		b := newBrowser(t)
		resp, body := b.DoCrossSite("GET", b.startLogin(e, ""))
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("callback: %d %s", resp.StatusCode, body)
		}
		if _, ok := b.Cookies[bff.SessionCookie]; ok {
			t.Error("a session was made")
		}
		if !strings.Contains(logs.String(), "not DPoP-bound") {
			t.Errorf("log: %s", logs.String())
		}
		if _, _, revoked := e.is.Grants(); revoked != 1 {
			t.Errorf("%d refresh tokens revoked; want the refused one", revoked)
		}
	})
	t.Run("refresh", func(t *testing.T) {
		e, tp, _ := newTapEnv(t, func(c *bff.Config) { c.DPoP = true })
		e.expireSoon(t)
		b := newBrowser(t)
		b.login(e, "")
		tp.setEdit(rewriteTokenType)
		e.advance(6 * time.Second)
		if resp, body := b.api(e); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "login_required") {
			t.Fatalf("api after a Bearer refresh: %d %s", resp.StatusCode, body)
		}
		if _, ok := b.Cookies[bff.SessionCookie]; ok {
			t.Error("the session cookie stays")
		}
		if _, _, revoked := e.is.Grants(); revoked != 1 {
			t.Errorf("%d refresh tokens revoked; want the refused one", revoked)
		}
	})
}

// TestDPoPResourceNonce: a guard that demands its nonces accepts the
// handler's proofs when Config.DPoPNonce gives them, and only then.
func TestDPoPResourceNonce(t *testing.T) {
	secret := make([]byte, dpop.MinNonceSecretSize)
	_, _ = rand.Read(secret)
	nonces, err := dpop.NewNonces([][]byte{secret}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, hook := range []bool{true, false} {
		t.Run(fmt.Sprint("hook ", hook), func(t *testing.T) {
			e, _, _ := newTapEnvGuard(t, func(c *bff.Config) {
				c.DPoP = true
				if hook {
					c.DPoPNonce = func() string { return nonces.Issue(time.Now()) }
				}
			}, func(g *middleware.Config) {
				g.DPoP = middleware.DPoPConfig{Mode: middleware.DPoPRequired, Nonce: true, NonceSecrets: [][]byte{secret}}
			})
			b := newBrowser(t)
			b.login(e, "")
			resp, body := b.api(e)
			switch {
			case hook && resp.StatusCode != http.StatusOK:
				t.Fatalf("api with the guard's nonce: %d %s", resp.StatusCode, body)
			case !hook && (resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "use_dpop_nonce")):
				t.Fatalf("api without a nonce: %d %s %q", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
			}
			if hook {
				up := e.upstream.last(t)
				if c := proofClaims(t, up.Header.Get("DPoP")); c["nonce"] == nil {
					t.Error("the proof has no nonce")
				}
			}
		})
	}
}

// TestDPoPConfig: the new fields' values are checked.
func TestDPoPConfig(t *testing.T) {
	base := bff.Config{
		Issuer: "https://as.example.com", ClientID: "c", ClientSecret: "s",
		Scopes: []string{"openid"}, PublicURL: "https://app.example.com",
	}
	tests := []struct {
		name   string
		change func(*bff.Config)
		want   string
	}{
		{"bad PAR", func(c *bff.Config) { c.PAR = "always" }, "PAR \"always\""},
		{"nonce hook without DPoP", func(c *bff.Config) { c.DPoPNonce = func() string { return "" } }, "DPoPNonce is set but DPoP is off"},
		{"fine", func(c *bff.Config) { c.PAR, c.DPoP = bff.PARRequired, true }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.change(&c)
			h, err := bff.New(c)
			if h != nil {
				_ = h.Close()
			}
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestDPoPWithPAR: with both, dpop_jkt is pushed with the rest, the
// browser carries only client_id and request_uri, and the code the
// pushed request leads to is exchanged with a proof by that key.
func TestDPoPWithPAR(t *testing.T) {
	e, tp, _ := newTapEnvGuard(t, func(c *bff.Config) { c.DPoP, c.PAR = true, bff.PARRequired }, dpopRequired)
	e.enableLogin(func(l *devissuer.LoginConfig) { l.PAR = true })
	b := newBrowser(t)
	resp, body := b.do("GET", e.app.URL+"/bff/login")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	if q := query(t, resp.Header.Get("Location")); len(q) != 2 || q.Get("dpop_jkt") != "" || q.Get("request_uri") == "" {
		t.Errorf("browser redirect carries %v", q)
	}
	pushes := tp.requests("/par")
	if len(pushes) != 1 {
		t.Fatalf("%d pushes", len(pushes))
	}
	jkt := pushes[0].form.Get("dpop_jkt")
	if len(jkt) != 43 {
		t.Fatalf("pushed dpop_jkt = %q", jkt)
	}
	resp, _ = b.do("GET", resp.Header.Get("Location"))
	if resp, body = b.DoCrossSite("GET", resp.Header.Get("Location")); resp.StatusCode != http.StatusFound {
		t.Fatalf("callback: %d %s", resp.StatusCode, body)
	}
	if got := checkProof(t, tp.requests("/token")[0].header.Get("DPoP"), "POST", e.is.URL()+"/token", "", ""); got != jkt {
		t.Errorf("code exchange proof key %s, want the pushed dpop_jkt %s", got, jkt)
	}
	if resp, body := b.api(e); resp.StatusCode != http.StatusOK {
		t.Fatalf("api: %d %s", resp.StatusCode, body)
	}
}
