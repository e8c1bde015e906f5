package bff_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

// TestFlow is the whole contract with the development issuer: login, the
// cookie, /user, an API call, refresh with rotation, logout with
// revocation.
func TestFlow(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)

	// Login: PKCE S256, state, nonce, resource and the exact redirect URI.
	resp, _ := b.do("GET", e.app.URL+"/bff/login?return_to=/orders/42?tab=items")
	authz := query(t, resp.Header.Get("Location"))
	for k, want := range map[string]string{
		"response_type": "code", "client_id": clientID, "code_challenge_method": "S256",
		"redirect_uri": e.app.URL + "/bff/callback", "resource": testkit.Audience,
		"scope": "openid offline_access orders:read",
	} {
		if got := authz.Get(k); got != want {
			t.Errorf("authorization request %s = %q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(authz.Get(k)) < 43 {
			t.Errorf("authorization request %s = %q: too short to be unguessable", k, authz.Get(k))
		}
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("login Cache-Control = %q", cc)
	}
	resp, _ = b.do("GET", resp.Header.Get("Location"))
	resp, body := b.do("GET", resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/orders/42?tab=items" {
		t.Fatalf("callback: %d to %q (%s)", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	checkCookieAttributes(t, b.Seen)
	if n := counter(t, e.reg, "tokenguard_bff_logins_total", "success"); n != 1 {
		t.Errorf("logins success = %v", n)
	}
	if n := counter(t, e.reg, "tokenguard_bff_sessions", ""); n != 1 {
		t.Errorf("sessions gauge = %v", n)
	}

	// /user: the claims and the expiry, no token.
	resp, body = b.do("GET", e.app.URL+"/bff/user", "X-CSRF: 1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/user: %d %s", resp.StatusCode, body)
	}
	var user struct {
		Sub, Name, Email string
		Session          struct {
			ExpiresAt     int64 `json:"expires_at"`
			IdleExpiresAt int64 `json:"idle_expires_at"`
		}
	}
	if err := json.Unmarshal([]byte(body), &user); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	if user.Sub != "alice" || user.Name != "Alice" || user.Session.ExpiresAt < now+23*3600 || user.Session.IdleExpiresAt < now+7*3600 {
		t.Errorf("/user = %s", body)
	}
	assertNoToken(t, body)

	// The API: the session becomes a verified Bearer token; our cookies
	// never reach the upstream, others do.
	b.Cookies["theme"] = "dark"
	resp, body = b.api(e)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"subject":"alice"`) || !strings.Contains(body, `"session":true`) {
		t.Fatalf("api: %d %s", resp.StatusCode, body)
	}
	up := e.upstream.last(t)
	if !strings.HasPrefix(up.Header.Get("Authorization"), "Bearer ey") {
		t.Errorf("upstream Authorization = %q", up.Header.Get("Authorization"))
	}
	if c := strings.Join(up.Header.Values("Cookie"), ";"); strings.Contains(c, "tokenguard") || !strings.Contains(c, "theme=dark") {
		t.Errorf("upstream Cookie = %q", c)
	}

	// Refresh: an access token about to expire is refreshed, rotated.
	e.expireSoon(t)
	resp, _ = b.do("POST", e.app.URL+"/bff/logout", "X-CSRF: 1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	b.login(e, "")
	e.is.SetAccessTokenTTL(time.Hour)
	before := e.upstreamAuth(t, b)
	_, refreshes, _ := e.is.Grants()
	e.advance(6 * time.Second)
	after := e.upstreamAuth(t, b)
	if _, r2, _ := e.is.Grants(); r2 != refreshes+1 || after == before {
		t.Errorf("refresh grants %d -> %d; token changed: %v", refreshes, r2, after != before)
	}
	if n := counter(t, e.reg, "tokenguard_bff_refreshes_total", "success"); n < 1 {
		t.Errorf("refreshes success = %v", n)
	}

	// Logout: revoked at the AS, the session gone, the cookie expired,
	// and the end-session URL with the hint and the redirect.
	resp, body = b.do("POST", e.app.URL+"/bff/logout", "X-CSRF: 1", "Origin: "+e.app.URL)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("logout: %d %s", resp.StatusCode, body)
	}
	var out struct {
		LogoutURL string `json:"logout_url"`
	}
	_ = json.Unmarshal([]byte(body), &out)
	lq := query(t, out.LogoutURL)
	if !strings.HasPrefix(out.LogoutURL, e.is.URL()+"/logout?") || lq.Get("client_id") != clientID ||
		lq.Get("post_logout_redirect_uri") != e.app.URL+"/" || lq.Get("id_token_hint") == "" {
		t.Errorf("logout_url = %q", out.LogoutURL)
	}
	if _, _, rev := e.is.Grants(); rev != 2 {
		t.Errorf("revocations = %d, want 2 (one per logout)", rev)
	}
	if _, ok := b.Cookies[bff.SessionCookie]; ok {
		t.Error("the session cookie was not expired")
	}
	if n := counter(t, e.reg, "tokenguard_bff_sessions", ""); n != 0 {
		t.Errorf("sessions gauge after logout = %v", n)
	}
}

// upstreamAuth makes one API call and returns the Authorization header
// the upstream got.
func (e *env) upstreamAuth(t *testing.T, b *browser) string {
	t.Helper()
	resp, body := b.api(e)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("api: %d %s", resp.StatusCode, body)
	}
	return e.upstream.last(t).Header.Get("Authorization")
}

// checkCookieAttributes fails unless every cookie the handler set has
// the attributes DESIGN.md fixes.
func checkCookieAttributes(t *testing.T, seen []*http.Cookie) {
	t.Helper()
	var session, login bool
	for _, c := range seen {
		switch {
		case c.Name == bff.SessionCookie:
			session = true
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" || len(c.Value) != 43 {
				t.Errorf("session cookie %q", c.String())
			}
		case strings.HasPrefix(c.Name, bff.LoginCookiePrefix):
			login = true
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" || c.MaxAge > 600 {
				t.Errorf("login cookie %q", c.String())
			}
		default:
			t.Errorf("unexpected cookie %q", c.Name)
		}
	}
	if !session || !login {
		t.Errorf("cookies seen: session %v, login %v", session, login)
	}
}

// assertNoToken fails if s holds anything shaped like a JWT.
func assertNoToken(t *testing.T, s string) {
	t.Helper()
	if strings.Contains(s, "eyJ") {
		t.Errorf("a token reached the browser: %s", s)
	}
}

// TestSessionRule: CSRF header and Origin on every session-authenticated
// request, WebSocket upgrades need an Origin, and nothing is forwarded
// when a check fails.
func TestSessionRule(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)
	b.login(e, "")
	origin := e.app.URL
	tests := []struct {
		name   string
		hdr    []string
		status int
	}{
		{"ok", []string{"X-CSRF: 1"}, 200},
		{"ok with our origin", []string{"X-CSRF: 1", "Origin: " + origin}, 200},
		{"no csrf header", nil, 401},
		{"csrf header not 1", []string{"X-CSRF: true"}, 401},
		{"two csrf headers", []string{"X-CSRF: 1", "X-CSRF: 1"}, 401},
		{"other origin", []string{"X-CSRF: 1", "Origin: https://evil.example"}, 403},
		{"null origin", []string{"X-CSRF: 1", "Origin: null"}, 403},
		{"origin differs in case", []string{"X-CSRF: 1", "Origin: " + strings.ToUpper(origin)}, 403},
		{"two origins", []string{"X-CSRF: 1", "Origin: " + origin, "Origin: " + origin}, 403},
		{"websocket without origin", []string{"X-CSRF: 1", "Connection: Upgrade", "Upgrade: websocket"}, 403},
		{"websocket without origin or csrf header", []string{"Connection: Upgrade", "Upgrade: websocket"}, 403},
		{"websocket from another origin", []string{"Connection: Upgrade", "Upgrade: websocket", "Origin: https://evil.example"}, 403},
		// A browser cannot add X-CSRF to a handshake: the Origin is the rule.
		{"websocket from our origin", []string{"Connection: Upgrade", "Upgrade: WebSocket", "Origin: " + origin}, 200},
		{"other upgrade from our origin, no csrf header", []string{"Connection: Upgrade", "Upgrade: h2c", "Origin: " + origin}, 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := e.upstream.count()
			resp, body := b.do("GET", e.app.URL+"/orders", tc.hdr...)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			if forwarded := e.upstream.count() > n; forwarded != (tc.status == 200) {
				t.Errorf("forwarded = %v", forwarded)
			}
			for _, path := range []string{"/bff/user", "/bff/logout"} {
				if tc.status == 200 || strings.Contains(strings.Join(tc.hdr, "\n"), "Upgrade:") {
					continue // the endpoints are no WebSockets
				}
				method := "GET"
				if path == "/bff/logout" {
					method = "POST"
				}
				if resp, _ := b.do(method, e.app.URL+path, tc.hdr...); resp.StatusCode != tc.status {
					t.Errorf("%s %s: %d, want %d", method, path, resp.StatusCode, tc.status)
				}
			}
		})
	}
	// A request with its own Authorization is handled as before: the
	// session is not used, and its cookies are still not forwarded.
	tok := testkit.Mint(t, e.is, "orders:read")
	resp, _ := b.do("GET", e.app.URL+"/orders", "Authorization: Bearer "+tok)
	if resp.StatusCode != 200 || e.upstream.last(t).Header.Get("Authorization") != "Bearer "+tok || strings.Contains(e.upstream.last(t).Header.Get("Cookie"), "tokenguard") {
		t.Errorf("Authorization beside a session: %d", resp.StatusCode)
	}
	resp, _ = b.do("GET", e.app.URL+"/orders", "Authorization: Bearer garbage")
	if resp.StatusCode != 401 {
		t.Errorf("a bad Authorization beside a session: %d, want 401 (the session must not rescue it)", resp.StatusCode)
	}
	// No session: 401, login_required.
	nb := newBrowser(t)
	nb.Cookies[bff.SessionCookie] = strings.Repeat("A", 43)
	if resp, body := nb.api(e); resp.StatusCode != 401 || !strings.Contains(body, "login_required") {
		t.Errorf("unknown session: %d %s", resp.StatusCode, body)
	}
}

// TestCallbackRefusals: a callback creates a session only once, only in
// the browser that started the login, only with the right state.
func TestCallbackRefusals(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)
	cb := b.startLogin(e, "")

	other := newBrowser(t)
	other.startLogin(e, "") // has a login cookie of its own
	if resp, _ := other.do("GET", cb); resp.StatusCode != 400 {
		t.Errorf("cross-browser callback: %d, want 400", resp.StatusCode)
	}
	if _, ok := other.Cookies[bff.SessionCookie]; ok {
		t.Error("cross-browser callback created a session")
	}
	// That attempt did not use up the real browser's login: it lives in
	// the browser's own cookie.
	if resp, body := b.do("GET", cb); resp.StatusCode != 302 {
		t.Fatalf("callback: %d %s", resp.StatusCode, body)
	}
	first := b.Cookies[bff.SessionCookie]
	if resp, _ := b.do("GET", cb); resp.StatusCode != 400 || b.Cookies[bff.SessionCookie] != first {
		t.Errorf("replayed callback: %d", resp.StatusCode)
	}

	cases := map[string]func(string) string{
		"forged state":    func(u string) string { return replaceParam(t, u, "state", strings.Repeat("x", 43)) },
		"no state":        func(u string) string { return replaceParam(t, u, "state", "") },
		"other issuer":    func(u string) string { return replaceParam(t, u, "iss", "https://evil.example") },
		"code of another": func(u string) string { return replaceParam(t, u, "code", "nope") },
	}
	for name, mangle := range cases {
		t.Run(name, func(t *testing.T) {
			fresh := newBrowser(t)
			cb := fresh.startLogin(e, "")
			if resp, _ := fresh.do("GET", mangle(cb)); resp.StatusCode != 400 {
				t.Errorf("%s: %d, want 400", name, resp.StatusCode)
			}
			if _, ok := fresh.Cookies[bff.SessionCookie]; ok {
				t.Errorf("%s created a session", name)
			}
		})
	}
	// No login cookie at all.
	fresh := newBrowser(t)
	cb = fresh.startLogin(e, "")
	for name := range fresh.Cookies {
		if strings.HasPrefix(name, bff.LoginCookiePrefix) {
			delete(fresh.Cookies, name)
		}
	}
	if resp, _ := fresh.do("GET", cb); resp.StatusCode != 400 {
		t.Errorf("callback without the login cookie: %d", resp.StatusCode)
	}
}

func replaceParam(t *testing.T, raw, k, v string) string {
	t.Helper()
	base, _, _ := strings.Cut(raw, "?")
	q := query(t, raw)
	q.Set(k, v)
	return base + "?" + q.Encode()
}

// TestFixation: every login makes a new session id, and the old one ends.
func TestFixation(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)
	b.login(e, "")
	first := b.Cookies[bff.SessionCookie]
	b.login(e, "")
	if b.Cookies[bff.SessionCookie] == first {
		t.Fatal("the session id did not change at login")
	}
	old := newBrowser(t)
	old.Cookies[bff.SessionCookie] = first
	if resp, _ := old.api(e); resp.StatusCode != 401 {
		t.Errorf("the replaced session still works: %d", resp.StatusCode)
	}
}

// TestConcurrentRefresh: many requests of one session at once cause one
// refresh grant.
func TestConcurrentRefresh(t *testing.T) {
	e := newEnv(t, nil)
	e.expireSoon(t)
	b := newBrowser(t)
	b.login(e, "")
	e.is.SetAccessTokenTTL(time.Hour)
	e.advance(6 * time.Second)
	_, before, _ := e.is.Grants()
	var wg sync.WaitGroup
	statuses := make(chan int, 20)
	for range 20 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", e.app.URL+"/orders", nil)
			req.Header.Set("X-CSRF", "1")
			req.AddCookie(&http.Cookie{Name: bff.SessionCookie, Value: b.Cookies[bff.SessionCookie]})
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Errorf("status %d", s)
		}
	}
	if _, after, _ := e.is.Grants(); after-before != 1 {
		t.Errorf("%d refresh grants for one session, want 1", after-before)
	}
}

// TestRefreshRefused: a refresh token the AS refuses ends the session
// with 401, once: no loop, no retry.
func TestRefreshRefused(t *testing.T) {
	e := newEnv(t, nil)
	e.expireSoon(t)
	b := newBrowser(t)
	b.login(e, "")
	resp, body := b.do("GET", e.app.URL+"/bff/user", "X-CSRF: 1")
	if resp.StatusCode != 200 {
		t.Fatalf("/user %d %s", resp.StatusCode, body)
	}
	// Revoke the refresh token behind the handler's back.
	e.is.RevokeAllRefreshTokens()
	e.advance(6 * time.Second)
	_, r0, _ := e.is.Grants()
	resp, body = b.api(e)
	if resp.StatusCode != 401 || !strings.Contains(body, "login_required") {
		t.Fatalf("api after revocation: %d %s", resp.StatusCode, body)
	}
	if _, ok := b.Cookies[bff.SessionCookie]; ok {
		t.Error("the cookie of the ended session was not expired")
	}
	if n := counter(t, e.reg, "tokenguard_bff_refreshes_total", "invalid_grant"); n != 1 {
		t.Errorf("refreshes invalid_grant = %v", n)
	}
	if _, r1, _ := e.is.Grants(); r1 != r0 {
		t.Errorf("refresh grants went %d -> %d", r0, r1)
	}
}
