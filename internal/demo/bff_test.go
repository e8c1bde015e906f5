package demo

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

// startBFF runs "tokenguard demo --bff" on free ports until the test
// ends, and returns it with what it printed.
func startBFF(t *testing.T) (*Demo, string) {
	t.Helper()
	var out strings.Builder
	var logs testkit.LockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	opts := Options{Issuer: "127.0.0.1:0", Upstream: "127.0.0.1:0", Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0", BFF: true}
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
	defer cancel()
	d, err := Start(ctx, opts, &out, log)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(testkit.Wait):
			t.Error("the demo did not stop")
		}
		if t.Failed() {
			t.Logf("demo log:\n%s", logs.String())
		}
	})
	return d, out.String()
}

var anyURL = regexp.MustCompile(`https?://[^\s'"]+`)

// "tokenguard demo --bff" prints one URL, whose page loads without a
// session, and the whole flow works behind it: login at the development
// issuer, the session cookie, the user, the API through the gateway's
// guard, logout with revocation and the issuer's logout back to the app.
func TestDemoBFF(t *testing.T) {
	d, out := startBFF(t)
	if urls := anyURL.FindAllString(out, -1); len(urls) != 1 || urls[0] != d.AppURL || d.AppURL != d.GatewayURL+"/" {
		t.Fatalf("printed URLs %q, want just the app's %q:\n%s", urls, d.AppURL, out)
	}
	for _, want := range []string{"DEVELOPMENT ONLY", "demo-user", "Ctrl-C"} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}

	b := testkit.NewBrowser(t)
	csrf := bff.CSRFHeader + ": 1"

	// The page and its script, without a session, under a strict CSP.
	resp, page := b.Do("GET", d.AppURL)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(page, `<script src="/app.js"`) || !strings.Contains(page, `id="result"`) || !strings.Contains(page, `id="login"`) {
		t.Fatalf("GET /: %d %v\n%s", resp.StatusCode, resp.Header, page)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, "style=") || strings.Contains(page, "http") {
		t.Errorf("the page has inline script or style, or an external resource:\n%s", page)
	}
	resp, js := b.Do("GET", d.GatewayURL+"/app.js")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" ||
		resp.Header.Get("Content-Security-Policy") == "" || !strings.Contains(js, `"X-CSRF": "1"`) {
		t.Fatalf("GET /app.js: %d %v", resp.StatusCode, resp.Header)
	}
	for _, path := range []string{"/bff/login?return_to=/", "/bff/user", "/api/orders", "/bff/logout"} {
		if !strings.Contains(js, `"`+path+`"`) {
			t.Errorf("app.js does not use %s", path)
		}
	}
	// Everything else is the gateway's: no route, no token.
	if resp, body := b.Do("GET", d.GatewayURL+"/index.html"); resp.StatusCode != 404 || !strings.Contains(body, "not_found") {
		t.Errorf("GET /index.html: %d %s", resp.StatusCode, body)
	}
	if resp, _ := b.Do("GET", d.GatewayURL+"/api/orders"); resp.StatusCode != 401 {
		t.Errorf("GET /api/orders without a session or a token: %d", resp.StatusCode)
	}
	if resp, body := b.Do("GET", d.GatewayURL+"/bff/user", csrf); resp.StatusCode != 401 || !strings.Contains(body, "login_required") {
		t.Errorf("GET /bff/user before login: %d %s", resp.StatusCode, body)
	}

	// Login, back to the page.
	if landed := b.Login(d.GatewayURL, "?return_to=/"); landed != "/" {
		t.Errorf("landed at %q after login, want /", landed)
	}
	var session *http.Cookie
	for _, c := range b.Seen {
		if c.Name == bff.SessionCookie && c.MaxAge >= 0 {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || !session.Secure || session.SameSite != http.SameSiteStrictMode || session.Path != "/" || session.Domain != "" {
		t.Errorf("session cookie = %+v", session)
	}

	resp, body := b.Do("GET", d.GatewayURL+"/bff/user", csrf)
	var user map[string]any
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &user) != nil || user["sub"] != "demo-user" || user["name"] != "Demo User" {
		t.Fatalf("GET /bff/user: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(body, "eyJ") {
		t.Errorf("/bff/user shows a token: %s", body)
	}

	// The API through the gateway, with the session's access token.
	resp, body = b.Do("GET", d.GatewayURL+"/api/orders", csrf)
	var echo struct {
		Method, Path string
		Headers      map[string]string
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &echo) != nil {
		t.Fatalf("GET /api/orders: %d %s", resp.StatusCode, body)
	}
	want := map[string]string{"X-Tokenguard-Subject": "demo-user", "X-Tokenguard-Client-Id": bffClientID, "X-Tokenguard-Scope": "orders:read"}
	if echo.Method != "GET" || echo.Path != "/api/orders" || len(echo.Headers) != len(want) {
		t.Errorf("upstream echo = %+v", echo)
	}
	for k, v := range want {
		if echo.Headers[k] != v {
			t.Errorf("upstream got %s %q, want %q", k, echo.Headers[k], v)
		}
	}
	if resp, body := b.Do("GET", d.GatewayURL+"/api/orders"); resp.StatusCode != 401 || !strings.Contains(body, "csrf_header_required") {
		t.Errorf("GET /api/orders without X-CSRF: %d %s", resp.StatusCode, body)
	}
	if resp, _ := b.Do("POST", d.GatewayURL+"/api/orders", csrf, "Origin: "+d.GatewayURL); resp.StatusCode != 403 {
		t.Errorf("POST /api/orders with orders:read only: %d, want 403", resp.StatusCode)
	}
	if resp, body := b.Do("GET", d.GatewayURL+"/api/orders", csrf, "Origin: http://evil.example"); resp.StatusCode != 403 || !strings.Contains(body, "origin_not_allowed") {
		t.Errorf("GET /api/orders from another origin: %d %s", resp.StatusCode, body)
	}

	// Logout: the session ends, and the issuer's logout comes back to
	// the app.
	resp, body = b.Do("POST", d.GatewayURL+"/bff/logout", csrf, "Origin: "+d.GatewayURL)
	var logout struct {
		LogoutURL string `json:"logout_url"`
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &logout) != nil || !strings.HasPrefix(logout.LogoutURL, d.IssuerURL+"/logout?") {
		t.Fatalf("POST /bff/logout: %d %s", resp.StatusCode, body)
	}
	if _, ok := b.Cookies[bff.SessionCookie]; ok {
		t.Error("the session cookie survived the logout")
	}
	if u, _ := url.Parse(logout.LogoutURL); u.Query().Get("post_logout_redirect_uri") != d.AppURL {
		t.Errorf("logout_url %q does not come back to the app", logout.LogoutURL)
	}
	if resp, _ := b.Do("GET", logout.LogoutURL); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != d.AppURL {
		t.Errorf("the issuer's logout: %d to %q, want 302 to %s", resp.StatusCode, resp.Header.Get("Location"), d.AppURL)
	}
	if resp, _ := b.Do("GET", d.GatewayURL+"/bff/user", csrf); resp.StatusCode != 401 {
		t.Errorf("GET /bff/user after logout: %d", resp.StatusCode)
	}

	// The gateway's metrics, and the demo's readiness for its handler.
	resp, err := http.Get(d.MetricsURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	ready, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(ready) != "ready\n" {
		t.Errorf("/readyz: %d %q", resp.StatusCode, ready)
	}
	resp, err = http.Get(d.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `tokenguard_bff_logins_total{result="success"} 1`) {
		t.Errorf("/metrics lacks one successful login:\n%s", metrics)
	}
}

// Without --bff, the demo prints no app and its issuer has no login.
func TestDemoWithoutBFF(t *testing.T) {
	var out strings.Builder
	opts := Options{Issuer: "127.0.0.1:0", Upstream: "127.0.0.1:0", Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0"}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := Start(ctx, opts, &out, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	if d.AppURL != "" || strings.Contains(out.String(), "/bff") || !strings.Contains(out.String(), "curl") {
		t.Errorf("AppURL %q; output:\n%s", d.AppURL, out.String())
	}
	resp, err := http.Get(d.IssuerURL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("the issuer has login without --bff: openid-configuration %d", resp.StatusCode)
	}
	resp, err = http.Get(d.GatewayURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET / without --bff: %d, want the gateway's 404", resp.StatusCode)
	}
}

// With login, the demo's token endpoint passes the authorization_code
// and refresh_token grants to the development issuer, which serves them;
// without, it answers every request as before.
func TestDemoTokenEndpointGrants(t *testing.T) {
	for _, login := range []bool{true, false} {
		srv := httptest.NewUnstartedServer(nil)
		key, err := devissuer.GenerateKey("ES256", "k1")
		if err != nil {
			t.Fatal(err)
		}
		is := devissuer.New("http://"+srv.Listener.Addr().String(), audience, key)
		redirect := "http://127.0.0.1:1/bff/callback"
		if login {
			is.EnableLogin(devissuer.LoginConfig{Clients: []devissuer.Client{{ID: "app", Secret: "s3cret", RedirectURIs: []string{redirect}}}})
		}
		h, err := newIssuerHandler(is, is.URL()+"/token", login)
		if err != nil {
			t.Fatal(err)
		}
		srv.Config.Handler = h
		srv.Start()
		defer srv.Close()
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		grant := func(form url.Values) (int, map[string]any) {
			t.Helper()
			req, _ := http.NewRequest("POST", is.URL()+"/token", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Accept", "application/json")
			req.SetBasicAuth("app", "s3cret")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			return resp.StatusCode, body
		}
		if !login {
			// As before: a token for anyone, whatever the grant_type.
			status, body := grant(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "scope": {"orders:read"}})
			if status != 200 || body["access_token"] == nil || body["refresh_token"] != nil {
				t.Errorf("without login: %d %v", status, body)
			}
			continue
		}
		verifier := strings.Repeat("v", 43)
		sum := sha256.Sum256([]byte(verifier))
		q := url.Values{
			"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {redirect}, "state": {"st"},
			"scope": {"openid offline_access orders:read"}, "code_challenge_method": {"S256"},
			"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		}
		resp, err := client.Get(is.URL() + "/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		code := loc.Query().Get("code")
		if resp.StatusCode != http.StatusFound || code == "" {
			t.Fatalf("/authorize: %d %s", resp.StatusCode, loc)
		}
		status, body := grant(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {verifier}})
		rt, _ := body["refresh_token"].(string)
		if status != 200 || body["id_token"] == nil || rt == "" {
			t.Fatalf("authorization_code: %d %v", status, body)
		}
		if sub := testkit.DecodeClaims(t, body["access_token"].(string))["sub"]; sub != "demo-user" {
			t.Errorf("access token sub %v", sub)
		}
		status, body = grant(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		if status != 200 || body["refresh_token"] == nil || body["refresh_token"] == rt {
			t.Errorf("refresh_token: %d %v", status, body)
		}
		if status, body = grant(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}); status != 400 || body["error"] != "invalid_grant" {
			t.Errorf("a spent refresh token: %d %v", status, body)
		}
		if code, refresh, _ := is.Grants(); code != 1 || refresh != 1 {
			t.Errorf("grants at the issuer: code %d, refresh %d", code, refresh)
		}
	}
}

// SetLoginRequired turns the issuer's provider session off and on: a
// silent login (prompt=none) then comes back to the app with
// login_required and no session, or logs demo-user in as usual. A login
// without prompt=none is not affected.
func TestDemoBFFSetLoginRequired(t *testing.T) {
	d, _ := startBFF(t)
	csrf := bff.CSRFHeader + ": 1"
	silent := "?prompt=none&return_to=" + url.QueryEscape("/x")

	d.SetLoginRequired(true)
	b := testkit.NewBrowser(t)
	callback := b.StartLogin(d.GatewayURL, silent)
	if u, err := url.Parse(callback); err != nil || u.Query().Get("error") != "login_required" || u.Query().Has("code") {
		t.Fatalf("silent login without a provider session: back to %q, want error=login_required", callback)
	}
	if resp, body := b.DoCrossSite("GET", callback); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/x" {
		t.Errorf("callback with login_required: %d to %q, want 302 to /x: %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if resp, _ := b.Do("GET", d.GatewayURL+"/bff/user", csrf); resp.StatusCode != 401 {
		t.Errorf("GET /bff/user after login_required: %d, want 401", resp.StatusCode)
	}
	if landed := testkit.NewBrowser(t).Login(d.GatewayURL, "?return_to=/y"); landed != "/y" {
		t.Errorf("a login without prompt=none landed at %q, want /y", landed)
	}

	d.SetLoginRequired(false)
	if landed := b.Login(d.GatewayURL, silent); landed != "/x" {
		t.Errorf("silent login with the provider session back: landed at %q, want /x", landed)
	}
	if resp, body := b.Do("GET", d.GatewayURL+"/bff/user", csrf); resp.StatusCode != 200 {
		t.Errorf("GET /bff/user after the silent login: %d %s", resp.StatusCode, body)
	}
}
