package interop_test

// TestBFFWithOIDCProvider runs the gateway's token handler (bff) against
// panva's oidc-provider, an OpenID Certified authorization server none of
// us wrote, through the whole life of a browser session: login (code flow
// with PKCE, RFC 8707 resource, RFC 9207 iss), /user, API calls, a
// forced expiry and the refresh it causes (with the refresh token
// rotated), a burst of concurrent requests needing a refresh (the AS
// counts exactly one grant), logout (the refresh token revoked, checked
// by introspection at the AS), and every refusal on the way.
//
// The AS runs as `node lib/provider.mjs --serve` (startProvider with its
// bff option); the gateway runs in this process. Everything binds
// 127.0.0.1 and every wait is bounded.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/gateway"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

const (
	bffAudience = "https://api.tokenguard.test"
	// bffAccessTTL is the lifetime, in seconds, of the access tokens the
	// AS gives the token handler: short, so that one comes due for
	// refresh within seconds. See refreshDue.
	bffAccessTTL  = 5
	sessionCookie = "__Host-tokenguard-session"
	// tokenDelay is how long the AS's token endpoint takes: long enough
	// that every request of a concurrent burst arrives while the one
	// refresh is in flight.
	tokenDelay = 300 * time.Millisecond
)

// refreshDue is how long after the last request that may have refreshed
// the session's access token that token is certainly due for refresh. The
// handler refreshes a token expiring within half its lifetime, counted in
// whole Unix seconds: a token received at t has expiry E = ⌊t⌋+TTL and
// issue time I = ⌊t⌋ or ⌊t⌋+1, so the margin (E-I)/2 is TTL/2 or
// (TTL-1)/2 (integer division), and the refresh is due once
// ⌊now⌋+margin ≥ E: certainly from t + TTL - (TTL-1)/2 (3 s for TTL 5),
// never before t+2 s, while the token is valid until t+TTL.
var refreshDue = time.Duration(bffAccessTTL-(bffAccessTTL-1)/2)*time.Second + 300*time.Millisecond

func TestBFFWithOIDCProvider(t *testing.T) {
	needNode(t)

	// The gateway's listener comes first: the AS must register the
	// redirect URI, public_url + /bff/callback, before it starts.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := "http://" + ln.Addr().String()
	as := startOIDCProvider(t, public)
	up := startRecordingUpstream(t)
	gw := startGatewayOn(t, ln, bffGatewayYAML(bffGateway{
		upstream: up.url, public: public, issuer: as.Issuer, clientID: as.Clients.BFF.ID,
		// The browser carries the whole authorization request, so this
		// flow checks every parameter of it; bff_round2_test.go pushes
		// it (PAR).
		bff: `  par: "off"` + "\n",
	}), map[string]string{"BFF_CLIENT_SECRET": as.Clients.BFF.Secret})

	b := testkit.NewBrowser(t)
	// lastUse is when the last request that could have refreshed the
	// session's token came back (see refreshDue).
	var lastUse time.Time
	call := func(b *testkit.Browser, method, path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		resp, body := b.Do(method, public+path, hdr...)
		lastUse = time.Now()
		return resp, body
	}
	origin := "Origin: " + public
	var (
		callbackURL string // the one login's callback, replayed later
		grantID     string // the AS's grant behind the session
		session     string // the session cookie
	)
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow() // every step builds on the ones before
		}
	}

	step("login", func(t *testing.T) {
		callbackURL = authorize(t, b, public, as, "?return_to=/orders/7")
		cb, _ := url.Parse(callbackURL)
		if cb.Query().Get("iss") != as.Issuer {
			t.Errorf("callback without RFC 9207 iss=%s: %s", as.Issuer, callbackURL)
		}
		resp, body := call(b, "GET", strings.TrimPrefix(callbackURL, public))
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/orders/7" {
			t.Fatalf("callback: %d, Location %q, %s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		session = b.Cookies[sessionCookie]
		if session == "" {
			t.Fatal("no session cookie after the callback")
		}
		st := as.state(t)
		if st.Grants["authorization_code"] != 1 || len(st.RefreshTokens) != 1 {
			t.Fatalf("the AS made %d code grants and %d refresh tokens, want 1 and 1", st.Grants["authorization_code"], len(st.RefreshTokens))
		}
		grantID = st.RefreshTokens[0].GrantID
		if !as.active(t, st.RefreshTokens[0].Value) {
			t.Error("the refresh token of the login is not active at the AS")
		}
	})

	step("user", func(t *testing.T) {
		resp, body := call(b, "GET", "/bff/user", "X-CSRF: 1", origin)
		if resp.StatusCode != 200 {
			t.Fatalf("/bff/user: %d %s", resp.StatusCode, body)
		}
		var u map[string]any
		if err := json.Unmarshal([]byte(body), &u); err != nil {
			t.Fatal(err)
		}
		if u["sub"] != as.User || u["iss"] != as.Issuer || !audIs(u["aud"], as.Clients.BFF.ID) {
			t.Errorf("/bff/user claims: %s", body)
		}
		if _, ok := u["nonce"]; ok {
			t.Error("/bff/user shows the nonce")
		}
		if s, _ := u["session"].(map[string]any); s["expires_at"] == nil || s["idle_expires_at"] == nil {
			t.Errorf("/bff/user has no session expiry: %s", body)
		}
		if strings.Contains(body, "eyJ") {
			t.Errorf("/bff/user shows a token: %s", body)
		}
	})

	step("api", func(t *testing.T) {
		b.Cookies["pref"] = "1"
		resp, body := call(b, "GET", "/orders/7", "X-CSRF: 1", origin)
		if resp.StatusCode != 200 {
			t.Fatalf("GET /orders/7: %d %s", resp.StatusCode, body)
		}
		got := up.last(t)
		tok, ok := strings.CutPrefix(got.Authorization, "Bearer ")
		if !ok {
			t.Fatalf("upstream Authorization %q", got.Authorization)
		}
		if h := jwtHeader(t, tok); h["typ"] != "at+jwt" {
			t.Errorf("access token typ %v, want at+jwt (RFC 9068)", h["typ"])
		}
		c := testkit.DecodeClaims(t, tok)
		if c["iss"] != as.Issuer || c["sub"] != as.User || c["client_id"] != as.Clients.BFF.ID || !audIs(c["aud"], bffAudience) {
			t.Errorf("access token claims %v", c)
		}
		if scope, _ := c["scope"].(string); !slices.Contains(strings.Fields(scope), "orders:read") || strings.Contains(scope, "orders:write") {
			t.Errorf("access token scope %q, want orders:read and not orders:write", scope)
		}
		if exp, iat := c["exp"].(float64), c["iat"].(float64); exp-iat != bffAccessTTL {
			t.Errorf("access token lifetime %v s, want %d", exp-iat, bffAccessTTL)
		}
		if got.Subject != as.User || got.ClientID != as.Clients.BFF.ID {
			t.Errorf("upstream identity: subject %q, client %q", got.Subject, got.ClientID)
		}
		if strings.Contains(got.Cookie, "__Host-tokenguard") || !strings.Contains(got.Cookie, "pref=1") {
			t.Errorf("upstream Cookie %q: ours must be gone, others kept", got.Cookie)
		}
		// The session's token carries only what the login asked for:
		// the route's scope rule applies to it as to any token.
		n := up.count()
		resp, body = call(b, "POST", "/orders/7", "X-CSRF: 1", origin)
		if resp.StatusCode != 403 || !strings.Contains(resp.Header.Get("WWW-Authenticate")+body, "insufficient_scope") {
			t.Errorf("POST /orders/7 (needs orders:write): %d %s %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
		if up.count() != n {
			t.Error("the POST reached the upstream")
		}
	})

	step("refusals", func(t *testing.T) {
		n := up.count()
		for _, tc := range []struct {
			method, path string
			hdr          []string
			status       int
			code         string
		}{
			{"GET", "/orders/7", nil, 401, "csrf_header_required"},
			{"GET", "/orders/7", []string{"X-CSRF: 0"}, 401, "csrf_header_required"},
			{"GET", "/orders/7", []string{"X-CSRF: 1", "Origin: https://evil.example"}, 403, "origin_not_allowed"},
			{"GET", "/orders/7", []string{"X-CSRF: 1", "Origin: " + strings.Replace(public, "127.0.0.1", "localhost", 1)}, 403, "origin_not_allowed"},
			{"GET", "/bff/user", nil, 401, "csrf_header_required"},
			{"GET", "/bff/user", []string{"X-CSRF: 1", "Origin: https://evil.example"}, 403, "origin_not_allowed"},
		} {
			resp, body := b.Do(tc.method, public+tc.path, tc.hdr...)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.code) {
				t.Errorf("%s %s %v: %d %s, want %d %s", tc.method, tc.path, tc.hdr, resp.StatusCode, body, tc.status, tc.code)
			}
		}
		if up.count() != n {
			t.Error("a refused request reached the upstream")
		}
		if b.Cookies[sessionCookie] != session {
			t.Error("a refusal ended the session")
		}
	})

	step("replayed callback", func(t *testing.T) {
		resp, body := b.Do("GET", callbackURL)
		if resp.StatusCode != 400 || !strings.Contains(body, "invalid_request") {
			t.Errorf("replayed callback: %d %s, want 400 invalid_request", resp.StatusCode, body)
		}
		// Refused before the code went to the AS: a second exchange
		// would have made oidc-provider revoke the grant.
		st := as.state(t)
		if st.Grants["authorization_code"] != 1 || len(st.GrantErrors) != 0 {
			t.Errorf("the AS saw code grants %d, errors %v", st.Grants["authorization_code"], st.GrantErrors)
		}
		if !as.active(t, lastRefreshToken(t, st, grantID)) {
			t.Error("the session's refresh token is no longer active")
		}
		if b.Cookies[sessionCookie] != session {
			t.Error("the replay changed the session cookie")
		}
	})

	step("cross-browser callback", func(t *testing.T) {
		// The same browser starts a second login; the AS knows it and
		// sends it straight back with a code. Other browsers use that
		// callback URL.
		cb := authorize(t, b, public, as, "?return_to=/orders/9")
		stranger := testkit.NewBrowser(t) // no login cookie at all
		if resp, body := stranger.Do("GET", cb); resp.StatusCode != 400 || !strings.Contains(body, "invalid_request") {
			t.Errorf("callback from a browser without a login cookie: %d %s", resp.StatusCode, body)
		}
		other := testkit.NewBrowser(t) // with a login of its own under way
		if resp, body := other.Do("GET", public+"/bff/login"); resp.StatusCode != http.StatusFound {
			t.Fatalf("other browser's login: %d %s", resp.StatusCode, body)
		}
		if resp, body := other.Do("GET", cb); resp.StatusCode != 400 || !strings.Contains(body, "invalid_request") {
			t.Errorf("callback from another browser with its own login cookie: %d %s", resp.StatusCode, body)
		}
		if _, ok := other.Cookies[sessionCookie]; ok {
			t.Error("the other browser got a session")
		}
		// Those attempts did not use up the login: it lives in its own
		// browser's login cookie (that the browser can still finish it is
		// bff's TestCallbackRefusals; here the session under test stays).
		kept := false
		for name := range b.Cookies {
			kept = kept || strings.HasPrefix(name, "__Host-tokenguard-login-")
		}
		if !kept {
			t.Error("the browser that started the login lost its login cookie")
		}
		if b.Cookies[sessionCookie] != session {
			t.Error("the session cookie changed")
		}
		if st := as.state(t); st.Grants["authorization_code"] != 1 {
			t.Errorf("the AS made %d code grants: a refused callback exchanged its code", st.Grants["authorization_code"])
		}
	})

	var refreshed string // the upstream Authorization after the forced refresh
	step("forced expiry refreshes once and rotates the refresh token", func(t *testing.T) {
		time.Sleep(time.Until(lastUse.Add(refreshDue)))
		st0 := as.state(t)
		old := lastRefreshToken(t, st0, grantID)
		before := up.last(t).Authorization
		m0 := gw.metric(t, "tokenguard_bff_refreshes_total", `result="success"`)

		resp, body := call(b, "GET", "/orders/8", "X-CSRF: 1", origin)
		if resp.StatusCode != 200 {
			t.Fatalf("GET /orders/8: %d %s", resp.StatusCode, body)
		}
		st1 := as.state(t)
		if d := st1.Grants["refresh_token"] - st0.Grants["refresh_token"]; d != 1 {
			t.Errorf("the AS made %d refresh grants, want 1", d)
		}
		if st1.Consumed-st0.Consumed != 1 || len(st1.RefreshTokens)-len(st0.RefreshTokens) != 1 {
			t.Errorf("refresh tokens consumed %d, issued %d; want 1 and 1", st1.Consumed-st0.Consumed, len(st1.RefreshTokens)-len(st0.RefreshTokens))
		}
		cur := lastRefreshToken(t, st1, grantID)
		if cur == old {
			t.Fatal("the refresh token did not rotate")
		}
		if as.active(t, old) {
			t.Error("the rotated-away refresh token is still active at the AS")
		}
		if !as.active(t, cur) {
			t.Error("the new refresh token is not active at the AS")
		}
		refreshed = up.last(t).Authorization
		if refreshed == before {
			t.Error("the upstream got the old access token")
		}
		if c := testkit.DecodeClaims(t, strings.TrimPrefix(refreshed, "Bearer ")); c["sub"] != as.User || !audIs(c["aud"], bffAudience) {
			t.Errorf("refreshed token claims %v", c)
		}
		if m := gw.metric(t, "tokenguard_bff_refreshes_total", `result="success"`); m-m0 != 1 {
			t.Errorf("tokenguard_bff_refreshes_total{result=success} +%v, want +1", m-m0)
		}
	})

	step("concurrent requests share one refresh", func(t *testing.T) {
		time.Sleep(time.Until(lastUse.Add(refreshDue)))
		st0 := as.state(t)
		n0 := up.count()
		const n = 16
		client := &http.Client{Timeout: testkit.Wait}
		start := make(chan struct{})
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				req, _ := http.NewRequest("GET", public+"/orders/9", nil)
				req.Header.Set("X-CSRF", "1")
				req.Header.Set("Origin", public)
				req.AddCookie(&http.Cookie{Name: sessionCookie, Value: session})
				<-start
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("%d %s", resp.StatusCode, body)
				}
			})
		}
		close(start)
		wg.Wait()
		lastUse = time.Now()
		close(errs)
		for err := range errs {
			t.Errorf("a concurrent request: %v", err)
		}
		st1 := as.state(t)
		if d := st1.Grants["refresh_token"] - st0.Grants["refresh_token"]; d != 1 {
			t.Errorf("%d concurrent requests made %d refresh grants at the AS, want 1", n, d)
		}
		if len(st1.GrantErrors) != 0 {
			t.Errorf("grant errors at the AS: %v", st1.GrantErrors)
		}
		// oidc-provider revokes the whole grant when a rotated refresh
		// token comes back: the newest one still being active shows that
		// none did.
		if !as.active(t, lastRefreshToken(t, st1, grantID)) {
			t.Error("the newest refresh token is not active")
		}
		reqs := up.since(n0)
		if len(reqs) != n {
			t.Fatalf("the upstream got %d requests, want %d", len(reqs), n)
		}
		for _, r := range reqs {
			if r.Authorization != reqs[0].Authorization || r.Authorization == refreshed {
				t.Fatal("the concurrent requests did not all carry the one new access token")
			}
		}
	})

	step("logout revokes the refresh token at the AS", func(t *testing.T) {
		for _, hdr := range [][]string{nil, {"X-CSRF: 1", "Origin: https://evil.example"}} {
			if resp, body := b.Do("POST", public+"/bff/logout", hdr...); resp.StatusCode == 200 || !strings.Contains(body, "csrf_header_required") && !strings.Contains(body, "origin_not_allowed") {
				t.Errorf("logout with %v: %d %s", hdr, resp.StatusCode, body)
			}
		}
		st0 := as.state(t)
		rt := lastRefreshToken(t, st0, grantID)
		if b.Cookies[sessionCookie] != session || !as.active(t, rt) {
			t.Fatal("a refused logout ended the session")
		}

		resp, body := b.Do("POST", public+"/bff/logout", "X-CSRF: 1", origin)
		if resp.StatusCode != 200 {
			t.Fatalf("logout: %d %s", resp.StatusCode, body)
		}
		if _, ok := b.Cookies[sessionCookie]; ok {
			t.Error("the session cookie was not expired")
		}
		if as.active(t, rt) {
			t.Error("the refresh token is still active at the AS after logout")
		}
		st1 := as.state(t)
		if st1.RevokedGrants-st0.RevokedGrants != 1 || st1.Destroyed <= st0.Destroyed {
			t.Errorf("at the AS: grants revoked +%d, refresh tokens destroyed +%d", st1.RevokedGrants-st0.RevokedGrants, st1.Destroyed-st0.Destroyed)
		}

		var out struct {
			LogoutURL string `json:"logout_url"`
		}
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatalf("logout body %s: %v", body, err)
		}
		lu, err := url.Parse(out.LogoutURL)
		if err != nil || !strings.HasPrefix(out.LogoutURL, as.meta.EndSessionEndpoint+"?") {
			t.Fatalf("logout_url %q is not at the end_session_endpoint %s", out.LogoutURL, as.meta.EndSessionEndpoint)
		}
		q := lu.Query()
		if q.Get("client_id") != as.Clients.BFF.ID || q.Get("post_logout_redirect_uri") != public+"/" {
			t.Errorf("logout_url query %v", q)
		}
		if c := testkit.DecodeClaims(t, q.Get("id_token_hint")); c["sub"] != as.User || !audIs(c["aud"], as.Clients.BFF.ID) {
			t.Errorf("id_token_hint claims %v", c)
		}
		// The AS accepts it: the hint verifies and the redirect URI is
		// registered (it answers an error page otherwise), and it asks
		// the user to confirm the logout.
		if resp, body := b.Do("GET", out.LogoutURL); resp.StatusCode != 200 || !strings.Contains(body, "<form") {
			t.Errorf("the AS's end_session_endpoint: %d %.300s", resp.StatusCode, body)
		}

		// The ended session's cookie is worth nothing.
		n := up.count()
		b.Cookies[sessionCookie] = session
		for _, path := range []string{"/orders/1", "/bff/user"} {
			if resp, body := b.Do("GET", public+path, "X-CSRF: 1", origin); resp.StatusCode != 401 || !strings.Contains(body, "login_required") {
				t.Errorf("%s with the old cookie: %d %s", path, resp.StatusCode, body)
			}
		}
		if up.count() != n {
			t.Error("the old cookie reached the upstream")
		}
	})

	step("metrics and log", func(t *testing.T) {
		for _, m := range []struct {
			name, labels string
			want         float64
		}{
			{"tokenguard_bff_logins_total", `result="success"`, 1},
			// the replay, and two tries of the cross-browser callback
			{"tokenguard_bff_logins_total", `result="invalid_state"`, 3},
			{"tokenguard_bff_refreshes_total", `result="invalid_grant"`, 0},
			{"tokenguard_bff_sessions", "", 0},
		} {
			if got := gw.metric(t, m.name, m.labels); got != m.want {
				t.Errorf("%s{%s} = %v, want %v", m.name, m.labels, got, m.want)
			}
		}
		log := gw.log.String()
		if !strings.Contains(log, "auth=session") {
			t.Error("no access line with auth=session")
		}
		for _, rt := range as.state(t).RefreshTokens {
			if strings.Contains(log, rt.Value) {
				t.Error("the gateway log holds a refresh token")
			}
			for _, c := range b.Seen {
				if strings.Contains(c.Value, rt.Value) {
					t.Errorf("cookie %s holds a refresh token", c.Name)
				}
			}
		}
		if strings.Contains(log, session) || strings.Contains(log, "eyJ") {
			t.Error("the gateway log holds the session id or a JWT")
		}
	})
}

// needNode skips the test with -short or without Node.js, and installs
// node_modules (npm ci) when it is missing.
func needNode(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: starts an authorization server (Node.js) and waits for token expiries (about 10 s)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not on PATH; this test needs Node.js >= 20.19 (.ci/run checks for it)")
	}
	if _, err := os.Stat("node_modules/oidc-provider"); err != nil {
		if _, err := exec.LookPath("npm"); err != nil {
			t.Skip("node_modules is missing and npm is not on PATH")
		}
		run(t, 5*time.Minute, nil, "npm", "ci", "--no-audit", "--no-fund")
	}
}

// oidcProvider is oidc-provider run by lib/provider.mjs --serve.
type oidcProvider struct {
	Issuer  string `json:"issuer"`
	User    string `json:"user"`
	Clients struct {
		BFF clientCreds `json:"bff"`
		RS  clientCreds `json:"rs"` // may introspect any token
		// With the bff options of bff_round2_test.go (providerOptions).
		OtherApp clientCreds `json:"otherApp"`
		BFFPAR   clientCreds `json:"bffPAR"`
		BFFDPoP  clientCreds `json:"bffDPoP"`
	} `json:"clients"`
	meta struct {
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		EndSessionEndpoint    string `json:"end_session_endpoint"`
		IntrospectionEndpoint string `json:"introspection_endpoint"`
		PAREndpoint           string `json:"pushed_authorization_request_endpoint"`
	}
}

type clientCreds struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

// asState is GET /__test/state: what the AS did for the token handler's
// client, from its own events (lib/provider.mjs, bffState).
type asState struct {
	Grants        map[string]int `json:"grants"`
	GrantErrors   map[string]int `json:"grantErrors"`
	RefreshTokens []struct {
		Value     string `json:"value"`
		GrantID   string `json:"grantId"`
		Rotations int    `json:"rotations"`
		ClientID  string `json:"clientId"`
	} `json:"refreshTokens"`
	Consumed      int `json:"consumed"`
	Destroyed     int `json:"destroyed"`
	RevokedGrants int `json:"revokedGrants"`
	// By client id, then grant_type.
	ClientGrants map[string]map[string]int `json:"clientGrants"`
	// Every POST /token of the token handler's clients, in order.
	TokenRequests []struct {
		ClientID    string `json:"clientId"`
		DPoP        bool   `json:"dpop"`  // with a proof
		Nonce       bool   `json:"nonce"` // the proof carried a nonce
		Status      int    `json:"status"`
		NonceDemand bool   `json:"nonceDemand"` // 400 use_dpop_nonce
	} `json:"tokenRequests"`
	// The back-channel logout tokens the AS sent.
	LogoutTokens []struct {
		URI    string `json:"uri"`
		Token  string `json:"token"`
		Status int    `json:"status"`
	} `json:"logoutTokens"`
}

// readyWriter collects a child's output and passes on the first line
// that starts with prefix.
type readyWriter struct {
	mu     sync.Mutex
	out    bytes.Buffer
	line   []byte
	prefix string
	ready  chan string // gets the line, once
	sent   bool
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.out.Write(p)
	for _, c := range p {
		if c != '\n' {
			w.line = append(w.line, c)
			continue
		}
		if !w.sent && strings.HasPrefix(string(w.line), w.prefix) {
			w.ready <- string(w.line) // buffered
			w.sent = true
		}
		w.line = w.line[:0]
	}
	return len(p), nil
}

func (w *readyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.String()
}

// startOIDCProvider runs the AS until the test ends, with the token
// handler's client registered for public.
func startOIDCProvider(t *testing.T, public string) *oidcProvider {
	t.Helper()
	return startOIDCProviderWith(t, map[string]any{
		"audience": bffAudience,
		"bff": map[string]any{
			"redirectURIs":           []string{public + "/bff/callback"},
			"postLogoutRedirectURIs": []string{public + "/"},
			"accessTokenTTL":         bffAccessTTL,
			"tokenDelay":             tokenDelay.Milliseconds(),
		},
	})
}

// startOIDCProviderWith runs the AS until the test ends, with options
// (startProvider's, lib/provider.mjs, as JSON: audience, bff, keys).
func startOIDCProviderWith(t *testing.T, options map[string]any) *oidcProvider {
	t.Helper()
	opts, err := json.Marshal(options)
	if err != nil {
		t.Fatal(err)
	}
	ctx, kill := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "node", "lib/provider.mjs", "--serve", string(opts))
	cmd.WaitDelay = 5 * time.Second
	out := &readyWriter{prefix: `{"issuer"`, ready: make(chan string, 1)}
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe() // closing it stops the AS
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		kill()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			kill()
			<-exited // bounded by WaitDelay
		}
		kill()
		if t.Failed() || os.Getenv("INTEROP_VERBOSE") != "" {
			t.Logf("oidc-provider output:\n%s", out)
		}
	})

	var line string
	select {
	case line = <-out.ready:
	case <-exited:
		t.Fatalf("oidc-provider exited during start:\n%s", out)
	case <-time.After(30 * time.Second):
		t.Fatalf("oidc-provider not ready after 30 s:\n%s", out)
	}
	as := &oidcProvider{}
	if err := json.Unmarshal([]byte(line), as); err != nil {
		t.Fatalf("oidc-provider's ready line %q: %v", line, err)
	}
	getJSON(t, as.Issuer+"/.well-known/openid-configuration", &as.meta)
	if as.meta.EndSessionEndpoint == "" || as.meta.IntrospectionEndpoint == "" {
		t.Fatalf("the AS's metadata lacks end_session_endpoint or introspection_endpoint: %+v", as.meta)
	}
	return as
}

func (as *oidcProvider) state(t *testing.T) *asState {
	t.Helper()
	var st asState
	getJSON(t, as.Issuer+"/__test/state", &st)
	return &st
}

// active asks the AS's introspection endpoint (RFC 7662), as the
// resource server's client, whether refresh token tok of the token
// handler's client is active.
func (as *oidcProvider) active(t *testing.T, tok string) bool {
	t.Helper()
	return as.activeFor(t, tok, as.Clients.BFF.ID)
}

// activeFor is active for a refresh token of client clientID.
func (as *oidcProvider) activeFor(t *testing.T, tok, clientID string) bool {
	t.Helper()
	out := as.introspect(t, tok, "refresh_token")
	if out.Active && out.ClientID != clientID {
		t.Fatalf("introspection: an active token of client %q, want %q", out.ClientID, clientID)
	}
	return out.Active
}

// introspection is what the AS's introspection endpoint says of a token.
type introspection struct {
	Active   bool   `json:"active"`
	ClientID string `json:"client_id"`
	Cnf      struct {
		JKT string `json:"jkt"`
	} `json:"cnf"`
}

// introspect asks the AS's introspection endpoint (RFC 7662), as the
// resource server's client, about tok (hint: its token_type_hint).
func (as *oidcProvider) introspect(t *testing.T, tok, hint string) introspection {
	t.Helper()
	form := url.Values{"token": {tok}, "token_type_hint": {hint}}
	req, _ := http.NewRequest("POST", as.meta.IntrospectionEndpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(as.Clients.RS.ID), url.QueryEscape(as.Clients.RS.Secret))
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	var out introspection
	if err == nil {
		err = json.Unmarshal(body, &out)
	}
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("introspection: %d %v %.300s", resp.StatusCode, err, body)
	}
	return out
}

// lastRefreshToken is the newest refresh token the AS issued in grant.
func lastRefreshToken(t *testing.T, st *asState, grant string) string {
	t.Helper()
	for i := len(st.RefreshTokens) - 1; i >= 0; i-- {
		if st.RefreshTokens[i].GrantID == grant {
			return st.RefreshTokens[i].Value
		}
	}
	t.Fatalf("no refresh token in grant %s", grant)
	return ""
}

// authorize starts a login at the gateway and takes the browser through
// the AS (authorization endpoint, the test interaction that logs alice
// in and consents, back to the authorization endpoint) until the AS
// sends it to the callback, whose URL it returns unvisited.
func authorize(t *testing.T, b *testkit.Browser, public string, as *oidcProvider, query string) string {
	t.Helper()
	loc := startLogin(t, b, public, as, query)
	u, _ := url.Parse(loc)
	q := u.Query()
	for k, want := range map[string]string{
		"response_type": "code", "client_id": as.Clients.BFF.ID, "redirect_uri": public + "/bff/callback",
		"code_challenge_method": "S256", "resource": bffAudience, "scope": "openid offline_access orders:read",
	} {
		if q.Get(k) != want {
			t.Errorf("authorization request %s=%q, want %q", k, q.Get(k), want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 43 {
			t.Errorf("authorization request %s=%q: not 256 bits", k, q.Get(k))
		}
	}
	return followAS(t, b, as, loc, public+"/bff/callback?")
}

// startLogin is GET /bff/login at the gateway: it returns the URL at
// the AS's authorization endpoint it redirects to.
func startLogin(t *testing.T, b *testkit.Browser, public string, as *oidcProvider, query string) string {
	t.Helper()
	resp, body := b.Do("GET", public+"/bff/login"+query)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	loc := resp.Header.Get("Location")
	if _, err := url.Parse(loc); err != nil || !strings.HasPrefix(loc, as.meta.AuthorizationEndpoint+"?") {
		t.Fatalf("login redirects to %q, not to the authorization endpoint %s", loc, as.meta.AuthorizationEndpoint)
	}
	return loc
}

// followAS takes the browser from loc through the AS's redirects (the
// test interaction logs alice in and consents) until the AS sends it to
// a URL starting with done, which it returns unvisited.
func followAS(t *testing.T, b *testkit.Browser, as *oidcProvider, loc, done string) string {
	t.Helper()
	for range 10 {
		if strings.HasPrefix(loc, done) {
			return loc
		}
		if !strings.HasPrefix(loc, as.Issuer+"/") {
			t.Fatalf("the AS sent the browser to %q", loc)
		}
		resp, body := b.Do("GET", loc)
		if resp.StatusCode < 300 || resp.StatusCode > 399 {
			t.Fatalf("GET %s: %d %.500s", loc, resp.StatusCode, body)
		}
		next, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		loc = next.String()
	}
	t.Fatalf("no callback after 10 redirects at the AS (last %s)", loc)
	return ""
}

// recordingUpstream is the API behind the gateway: 200 to everything,
// remembering what it got.
type recordingUpstream struct {
	url  string
	mu   sync.Mutex
	reqs []upstreamRequest
}

type upstreamRequest struct {
	Method, Path, Authorization, Cookie, Subject, ClientID string
	DPoP                                                   string
}

func startRecordingUpstream(t *testing.T) *recordingUpstream {
	u := &recordingUpstream{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.reqs = append(u.reqs, upstreamRequest{
			Method: r.Method, Path: r.URL.Path, Authorization: r.Header.Get("Authorization"), Cookie: r.Header.Get("Cookie"),
			Subject: r.Header.Get(gateway.HeaderSubject), ClientID: r.Header.Get(gateway.HeaderClientID),
			DPoP: r.Header.Get("DPoP"),
		})
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"upstream":true}`)
	}))
	t.Cleanup(srv.Close)
	u.url = srv.URL
	return u
}

func (u *recordingUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

func (u *recordingUpstream) since(n int) []upstreamRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.reqs[n:])
}

func (u *recordingUpstream) last(t *testing.T) upstreamRequest {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("the upstream got no request")
	}
	return u.reqs[len(u.reqs)-1]
}

// bffGateway is what bffGatewayYAML needs.
type bffGateway struct {
	upstream, public, issuer, clientID string
	// top is more top-level YAML (such as a dpop block); bff more lines
	// of the bff block, each indented by two spaces.
	top, bff string
}

// bffGatewayYAML is the configuration of a gateway whose token handler
// uses the AS at issuer as clientID (its secret is ${BFF_CLIENT_SECRET}),
// asking for openid, offline_access and orders:read, in front of
// upstream: GET /orders/ needs orders:read, POST /orders/ orders:write.
func bffGatewayYAML(g bffGateway) string {
	return fmt.Sprintf(`listen: 127.0.0.1:0
metrics_listen: 127.0.0.1:0
upstream: %s
public_url: %s
audience: %s
startup_wait: 10s
shutdown_timeout: 1s
log_level: info
issuers:
  - issuer: %s
%sbff:
  issuer: %s
  client_id: %s
  client_secret: ${BFF_CLIENT_SECRET}
  scopes: [openid, offline_access, orders:read]
  post_logout_redirect_uri: %s/
%sroutes:
  - pattern: "GET /orders/"
    scopes: [orders:read]
  - pattern: "POST /orders/"
    scopes: [orders:write]
`, g.upstream, g.public, bffAudience, g.issuer, g.top, g.issuer, g.clientID, g.public, g.bff)
}

// runningGateway is the gateway, in this process.
type runningGateway struct {
	metrics string
	log     *testkit.LockedBuffer
}

// startGatewayOn runs the gateway of yamlText on ln until the test ends.
func startGatewayOn(t *testing.T, ln net.Listener, yamlText string, env map[string]string) *runningGateway {
	t.Helper()
	cfg, err := gateway.ParseConfig("bff-interop.yaml", []byte(yamlText), testkit.EnvOf(env))
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	g := &runningGateway{log: &testkit.LockedBuffer{}}
	gw, err := gateway.New(cfg, gateway.Options{Logger: cfg.NewLogger(g.log), Listener: ln})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	startCtx, cancelStart := context.WithTimeout(ctx, 20*time.Second)
	defer cancelStart()
	if err := gw.Start(startCtx); err != nil {
		cancel()
		t.Fatalf("gateway did not start: %v\n%s", err, g.log)
	}
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(testkit.Wait):
			t.Errorf("gateway did not stop within %v", testkit.Wait)
		}
		if t.Failed() || os.Getenv("INTEROP_VERBOSE") != "" {
			t.Logf("gateway log:\n%s", g.log)
		}
	})
	g.metrics = "http://" + gw.MetricsAddr()
	return g
}

// metric returns the sum of the samples of name whose labels contain
// labels.
func (g *runningGateway) metric(t *testing.T, name, labels string) float64 {
	t.Helper()
	resp, err := httpClient.Get(g.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var sum float64
	for line := range strings.Lines(string(text)) {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') || !strings.Contains(rest, labels) {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(rest[strings.LastIndexByte(rest, ' ')+1:], &v); err == nil {
			sum += v
		}
	}
	return sum
}

var httpClient = &http.Client{Timeout: testkit.Wait}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := httpClient.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// jwtHeader returns a JWT's header, unverified.
func jwtHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(h)
	var out map[string]any
	if err == nil {
		err = json.Unmarshal(raw, &out)
	}
	if err != nil {
		t.Fatalf("JWT header: %v", err)
	}
	return out
}

// audIs reports whether a JWT aud claim (a string or an array) is
// exactly want.
func audIs(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		return len(a) == 1 && a[0] == want
	}
	return false
}
