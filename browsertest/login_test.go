package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

// bffPath is where the demo serves its token handler.
const bffPath = "/bff"

// landTimeout bounds the wait for a tab to land on a page and show it.
const landTimeout = 2 * testkit.Wait

// slideWait is how long after a login a use of the session moves its idle
// timeout: the token handler records a use at most once a minute (its
// unexported slideEvery), and its clock (bff.Config.Now) cannot be reached
// through the gateway that the demo composes. A second more, since the
// timestamps are whole Unix seconds.
const slideWait = time.Minute + time.Second

// TestBrowserTwoTabsLogIn starts a login in each of two tabs of one
// browser, so that both are pending at once (the authorization server has
// answered both and both callbacks are held before they reach the token
// handler), then lets the callbacks go in the opposite order. Both must
// complete: each tab lands on its own return_to, signed in, the later one
// wins the session cookie, and no page script can read it.
func TestBrowserTwoTabsLogIn(t *testing.T) {
	t.Parallel()
	exe := findBrowser(t)
	d := startDemo(t)
	b, tabA := startBrowser(t, exe, 2*flowTimeout)
	tabB := b.newTab(tabA, "b")
	ctxA, cancelA := context.WithTimeout(tabA, flowTimeout)
	defer cancelA()
	ctxB, cancelB := context.WithTimeout(tabB, flowTimeout)
	defer cancelB()
	trapA := trapCallbacks(t, ctxA, d.GatewayURL)
	trapB := trapCallbacks(t, ctxB, d.GatewayURL)

	act(t, ctxA, "open the app in tab A", chromedp.Navigate(d.AppURL), chromedp.WaitVisible(chromedp.CSS("#login")))
	act(t, ctxB, "open the app in tab B", chromedp.Navigate(d.AppURL), chromedp.WaitVisible(chromedp.CSS("#login")))

	// A first, then B: the issuer logs the user in at once, and each
	// callback is held in its tab.
	returnA, returnB := "/?tab=a", "/?tab=b"
	navigate(t, ctxA, bffPath+"/login?return_to="+url.QueryEscape(returnA))
	cbA := trapA.next(t, "tab A's callback")
	navigate(t, ctxB, bffPath+"/login?return_to="+url.QueryEscape(returnB))
	cbB := trapB.next(t, "tab B's callback")
	qA, qB := callbackQuery(t, cbA), callbackQuery(t, cbB)
	if qA.Get("code") == "" || qB.Get("code") == "" || qA.Get("state") == "" || qA.Get("state") == qB.Get("state") {
		t.Fatalf("the held callbacks are not two logins with a code and a state each:\n%s\n%s", cbA.Request.URL, cbB.Request.URL)
	}
	// Two pending logins: two login cookies, one per state, HttpOnly so
	// that no page script can read them.
	pending := loginCookies(browserCookies(t, ctxA, d.AppURL))
	if len(pending) != 2 {
		t.Fatalf("with two logins pending the browser keeps %d login cookies %v, want two, one per login", len(pending), slices.Sorted(maps.Keys(pending)))
	}
	for name, c := range pending {
		if !c.HTTPOnly || !c.Secure || c.SameSite != network.CookieSameSiteLax || c.Path != "/" {
			t.Errorf("login cookie %s: HttpOnly %v, Secure %v, SameSite %q, Path %q; want HttpOnly, Secure, Lax, /", name, c.HTTPOnly, c.Secure, c.SameSite, c.Path)
		}
	}
	if _, ok := browserCookies(t, ctxA, d.AppURL)[bff.SessionCookie]; ok {
		t.Fatal("a session cookie exists before any callback ran")
	}

	// B's callback first: B is signed in, and only A's login is pending.
	res := trapB.release(t, ctxB, cbB)
	if res.status != http.StatusFound || res.location != returnB {
		t.Fatalf("tab B's callback (the second login, finishing first): %d to %q, want 302 to %s; %s", res.status, res.location, returnB, res.body)
	}
	waitSignedIn(t, ctxB, d.GatewayURL+returnB)
	jar := browserCookies(t, ctxB, d.AppURL)
	sessionB := jar[bff.SessionCookie]
	if sessionB == nil {
		t.Fatal("no session cookie after tab B's callback")
	}
	left := loginCookies(jar)
	if len(left) != 1 || pending[firstKey(left)] == nil {
		t.Fatalf("after tab B's callback the login cookies are %v, want only one of %v (tab A's)", slices.Sorted(maps.Keys(left)), slices.Sorted(maps.Keys(pending)))
	}

	// Then A's, started first: it completes too, and its session is the
	// browser's from now on.
	res = trapA.release(t, ctxA, cbA)
	if res.status != http.StatusFound || res.location != returnA {
		t.Fatalf("tab A's callback (the first login, finishing second): %d to %q, want 302 to %s; %s", res.status, res.location, returnA, res.body)
	}
	waitSignedIn(t, ctxA, d.GatewayURL+returnA)
	jar = browserCookies(t, ctxA, d.AppURL)
	sessionA := jar[bff.SessionCookie]
	switch {
	case sessionA == nil:
		t.Fatal("no session cookie after tab A's callback")
	case sessionA.Value == sessionB.Value:
		t.Error("tab A's login, which finished last, did not replace the session cookie")
	case !sessionA.HTTPOnly || !sessionA.Secure || sessionA.SameSite != network.CookieSameSiteStrict:
		t.Errorf("%s: HttpOnly %v, Secure %v, SameSite %q", sessionA.Name, sessionA.HTTPOnly, sessionA.Secure, sessionA.SameSite)
	}
	if left := loginCookies(jar); len(left) != 0 {
		t.Errorf("both logins are over, but the browser keeps login cookies %v", slices.Sorted(maps.Keys(left)))
	}

	// Both tabs use the one session, and neither page can read it.
	for _, tab := range []struct {
		name string
		ctx  context.Context
	}{{"A", ctxA}, {"B", ctxB}} {
		if status, u := fetchUser(t, tab.ctx, ""); status != http.StatusOK || u.Sub != "demo-user" {
			t.Errorf("tab %s: /bff/user %d %+v, want 200 for demo-user", tab.name, status, u)
		}
		noTokens(t, tab.ctx, "tab "+tab.name+", signed in")
	}
	// The session tab B's login made was replaced: the token handler
	// ended it (the callback of A carried its cookie).
	if status := userStatusWithCookie(t, d.GatewayURL, sessionB.Value); status != http.StatusUnauthorized {
		t.Errorf("the replaced session (tab B's login): /bff/user %d, want 401", status)
	}
	captioned(t, ctxA, tabA, b.artifacts, "two-tabs-a.png", "tab A: its login started first, its callback was let go second")
	captioned(t, ctxB, tabB, b.artifacts, "two-tabs-b.png", "tab B: its login started second, its callback was let go first")
}

// TestBrowserSilentLogin runs a silent login (prompt=none) from the app,
// first with no session at the provider: the browser comes back to
// return_to signed out, with no session cookie and the login's cookie
// gone; then with the provider's session back, when the same silent login
// signs the user in.
func TestBrowserSilentLogin(t *testing.T) {
	t.Parallel()
	exe := findBrowser(t)
	d := startDemo(t)
	b, tab := startBrowser(t, exe, 2*flowTimeout)
	ctx, cancel := context.WithTimeout(tab, flowTimeout)
	defer cancel()
	trap := trapCallbacks(t, ctx, d.GatewayURL)
	act(t, ctx, "open the app", chromedp.Navigate(d.AppURL), chromedp.WaitVisible(chromedp.CSS("#login")))
	returnTo := "/?after=silent-login"
	silent := bffPath + "/login?prompt=none&return_to=" + url.QueryEscape(returnTo)

	// No session at the provider: it answers login_required.
	d.SetLoginRequired(true)
	navigate(t, ctx, silent)
	cb := trap.next(t, "the silent login's callback")
	if q := callbackQuery(t, cb); q.Get("error") != "login_required" || q.Has("code") || q.Get("state") == "" {
		t.Fatalf("the provider without a session answered %s, want error=login_required with the state", cb.Request.URL)
	}
	pending := loginCookies(browserCookies(t, ctx, d.AppURL))
	if len(pending) != 1 {
		t.Fatalf("with one login pending the browser keeps login cookies %v, want one", slices.Sorted(maps.Keys(pending)))
	}
	login := firstKey(pending)
	res := trap.release(t, ctx, cb)
	if res.status != http.StatusFound || res.location != returnTo {
		t.Fatalf("callback with error=login_required: %d to %q, want 302 to %s; %s", res.status, res.location, returnTo, res.body)
	}
	waitSignedOut(t, ctx, d.GatewayURL+returnTo)
	if status, u := fetchUser(t, ctx, ""); status != http.StatusUnauthorized {
		t.Errorf("/bff/user after login_required: %d %+v, want 401", status, u)
	}
	jar := browserCookies(t, ctx, d.AppURL)
	if c := jar[bff.SessionCookie]; c != nil {
		t.Errorf("after login_required the browser keeps a session cookie: %+v", c)
	}
	if c := jar[login]; c != nil {
		t.Errorf("the callback did not expire the login's cookie %s", login)
	}
	if left := loginCookies(jar); len(left) != 0 {
		t.Errorf("after the callback the browser keeps login cookies %v", slices.Sorted(maps.Keys(left)))
	}
	noTokens(t, ctx, "after login_required")
	captioned(t, ctx, tab, b.artifacts, "silent-login-signed-out.png", "silent login (prompt=none), the issuer answering login_required:\nback at return_to, /bff/user 401, no session cookie, no login cookie")

	// The provider's session back: the same silent login signs in.
	d.SetLoginRequired(false)
	navigate(t, ctx, silent)
	cb = trap.next(t, "the second silent login's callback")
	if q := callbackQuery(t, cb); q.Get("code") == "" || q.Has("error") {
		t.Fatalf("the provider with a session answered %s, want a code", cb.Request.URL)
	}
	pending = loginCookies(browserCookies(t, ctx, d.AppURL))
	if len(pending) != 1 {
		t.Fatalf("with one login pending the browser keeps login cookies %v, want one", slices.Sorted(maps.Keys(pending)))
	}
	login = firstKey(pending)
	before := time.Now().Unix()
	res = trap.release(t, ctx, cb)
	if res.status != http.StatusFound || res.location != returnTo {
		t.Fatalf("callback with a code: %d to %q, want 302 to %s; %s", res.status, res.location, returnTo, res.body)
	}
	waitSignedIn(t, ctx, d.GatewayURL+returnTo)
	status, u := fetchUser(t, ctx, "")
	switch {
	case status != http.StatusOK || u.Sub != "demo-user" || u.Session == nil:
		t.Fatalf("/bff/user after the silent login: %d %+v, want 200 for demo-user with its session", status, u)
	case u.Session.IdleExpiresAt > u.Session.ExpiresAt, u.Session.IdleExpiresAt <= before:
		t.Errorf("session: expires_at %d, idle_expires_at %d; want now (%d) < idle_expires_at <= expires_at",
			u.Session.ExpiresAt, u.Session.IdleExpiresAt, before)
	}
	jar = browserCookies(t, ctx, d.AppURL)
	if c := jar[bff.SessionCookie]; c == nil || !c.HTTPOnly || !c.Secure || c.SameSite != network.CookieSameSiteStrict {
		t.Errorf("the session cookie after the silent login: %+v, want HttpOnly, Secure, Strict", c)
	}
	if c := jar[login]; c != nil {
		t.Errorf("the callback did not expire the login's cookie %s", login)
	}
	if left := loginCookies(jar); len(left) != 0 {
		t.Errorf("after the callback the browser keeps login cookies %v", slices.Sorted(maps.Keys(left)))
	}
	noTokens(t, ctx, "after the silent login")
	captioned(t, ctx, tab, b.artifacts, "silent-login-signed-in.png", fmt.Sprintf("silent login (prompt=none) with a session at the issuer:\nback at return_to, /bff/user 200, session %+v", *u.Session))
}

// TestBrowserUserSlideFalse reads the session's expiry from the page with
// and without ?slide=false once a use would move the idle timeout (a
// minute after the login): slide=false leaves idle_expires_at where it
// was, a plain /bff/user moves it forward, and slide=false then reads the
// moved one.
func TestBrowserUserSlideFalse(t *testing.T) {
	t.Parallel()
	budget := flowTimeout + slideWait
	exe := findBrowser(t)
	d := startDemo(t)
	b, tab := startBrowser(t, exe, 2*budget)
	ctx, cancel := context.WithTimeout(tab, budget)
	defer cancel()

	act(t, ctx, "open the app", chromedp.Navigate(d.AppURL), chromedp.WaitVisible(chromedp.CSS("#login")))
	act(t, ctx, "log in", chromedp.Click(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("#session")))
	landed := time.Now()
	first := sessionNow(t, ctx, "?slide=false")
	if now := time.Now().Unix(); first.IdleExpiresAt <= now || first.IdleExpiresAt > first.ExpiresAt {
		t.Fatalf("session: expires_at %d, idle_expires_at %d; want now (%d) < idle_expires_at <= expires_at", first.ExpiresAt, first.IdleExpiresAt, now)
	}

	// The session's last use was at the callback, before landed: from
	// here on, a use counts. The page sends nothing meanwhile.
	act(t, ctx, "wait until a use moves the idle timeout", chromedp.Sleep(time.Until(landed.Add(slideWait))))
	if got := sessionNow(t, ctx, "?slide=false"); got != first {
		t.Errorf("/bff/user?slide=false a minute on moved the session: %+v, was %+v", got, first)
	}
	moved := sessionNow(t, ctx, "")
	if moved.IdleExpiresAt < first.IdleExpiresAt+int64(time.Minute/time.Second) || moved.IdleExpiresAt > moved.ExpiresAt || moved.ExpiresAt != first.ExpiresAt {
		t.Errorf("/bff/user a minute on: %+v, was %+v; want idle_expires_at a minute later or more, expires_at the same", moved, first)
	}
	if got := sessionNow(t, ctx, "?slide=false"); got != moved {
		t.Errorf("/bff/user?slide=false after a use: %+v, want %+v", got, moved)
	}
	captioned(t, ctx, tab, b.artifacts, "slide-false.png", fmt.Sprintf("/bff/user?slide=false after the login: %+v\n%v later, /bff/user?slide=false: the same\nthen /bff/user: %+v", first, slideWait, moved))
}

// captioned adds text, the tab's location and what document.cookie shows
// to the bottom of the page (marked as the test's), then screenshots it,
// when dir is set. Call it when the page's checks are done.
func captioned(t *testing.T, ctx, tab context.Context, dir, name, text string) {
	t.Helper()
	if dir == "" {
		return
	}
	js, _ := json.Marshal("[added by browsertest] " + text)
	run(t, ctx, "caption", chromedp.Evaluate[bool](`(() => {
		const p = document.createElement("pre");
		p.id = "browsertest-caption";
		p.textContent = `+string(js)+` + "\nlocation: " + location.href + "\ndocument.cookie: " + JSON.stringify(document.cookie);
		document.body.append(p);
		return true;
	})()`))
	screenshot(t, tab, dir, name)
}

// callbackTrap holds the token handler's callbacks in one tab: with the
// Fetch domain on for {gateway}/bff/callback, Chromium pauses each
// callback request before it is sent, and its response before the tab
// reads it, until the test lets them go.
type callbackTrap struct {
	paused chan fetch.EventRequestPaused
}

// trapCallbacks starts holding the callbacks in the tab of ctx.
func trapCallbacks(t *testing.T, ctx context.Context, gatewayURL string) *callbackTrap {
	t.Helper()
	c := &callbackTrap{paused: make(chan fetch.EventRequestPaused, 16)}
	events := chromedp.Events(ctx, fetch.RequestPaused) // subscribed before Fetch.enable
	go func() {
		for ev, err := range events {
			if err != nil {
				return
			}
			select {
			case c.paused <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	pattern := gatewayURL + bffPath + "/callback*"
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{
		{URLPattern: pattern, RequestStage: fetch.RequestStageRequest},
		{URLPattern: pattern, RequestStage: fetch.RequestStageResponse},
	}}); err != nil {
		t.Fatalf("Fetch.enable: %v", err)
	}
	return c
}

// next waits for the next held request or response.
func (c *callbackTrap) next(t *testing.T, what string) fetch.EventRequestPaused {
	t.Helper()
	select {
	case ev := <-c.paused:
		return ev
	case <-time.After(landTimeout):
		t.Fatalf("%s: nothing reached the callback within %v", what, landTimeout)
		return fetch.EventRequestPaused{}
	}
}

// callbackResult is the token handler's answer to a callback.
type callbackResult struct {
	status   int
	location string
	body     string // when it is not a redirect
}

// release sends the held callback request req, holds its response to read
// it, then lets it reach the tab.
func (c *callbackTrap) release(t *testing.T, ctx context.Context, req fetch.EventRequestPaused) callbackResult {
	t.Helper()
	if req.ResponseStatusCode != 0 || req.ResponseErrorReason != "" {
		t.Fatalf("release: %s is held at its response, not its request", req.Request.URL)
	}
	if _, err := chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: req.RequestID}); err != nil {
		t.Fatalf("Fetch.continueRequest: %v", err)
	}
	resp := c.next(t, "the callback's response")
	switch {
	case resp.ResponseErrorReason != "":
		t.Fatalf("the callback %s failed in the browser: %s", resp.Request.URL, resp.ResponseErrorReason)
	case resp.ResponseStatusCode == 0 || resp.Request.URL != req.Request.URL:
		t.Fatalf("held %s, want the response to %s", resp.Request.URL, req.Request.URL)
	}
	r := callbackResult{status: int(resp.ResponseStatusCode)}
	for _, h := range resp.ResponseHeaders {
		if strings.EqualFold(h.Name, "Location") {
			r.location = h.Value
		}
	}
	if r.status < 300 || r.status >= 400 {
		if body, err := chromedp.Call(ctx, fetch.GetResponseBody, fetch.GetResponseBodyParams{RequestID: resp.RequestID}); err == nil {
			r.body = string(body.Body)
		}
	}
	if _, err := chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: resp.RequestID}); err != nil {
		t.Fatalf("Fetch.continueRequest (response): %v", err)
	}
	return r
}

// callbackQuery is the query of a held callback.
func callbackQuery(t *testing.T, ev fetch.EventRequestPaused) url.Values {
	t.Helper()
	u, err := url.Parse(ev.Request.URL)
	if err != nil {
		t.Fatalf("callback URL %q: %v", ev.Request.URL, err)
	}
	return u.Query()
}

// navigate sends the tab to path on its origin, as the app's script
// would, without waiting for the page: its callback may be held.
func navigate(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	js, _ := json.Marshal(path)
	run(t, ctx, "go to "+path, chromedp.Evaluate[bool](`location.assign(`+string(js)+`), true`))
}

// waitSignedIn waits until the tab is at href with the app's page showing
// the user; waitSignedOut, showing the login button after the app found
// no session.
func waitSignedIn(t *testing.T, ctx context.Context, href string) {
	t.Helper()
	waitFor(t, ctx, "signed in at "+href, `!document.getElementById("session").hidden && document.getElementById("user").textContent === "Demo User (demo-user)"`, href)
}

func waitSignedOut(t *testing.T, ctx context.Context, href string) {
	t.Helper()
	waitFor(t, ctx, "signed out at "+href, `!document.getElementById("login").hidden && document.getElementById("status").textContent === "Not logged in."`, href)
}

// waitFor polls, for up to landTimeout, until the tab's document is at
// href and cond (a JavaScript expression) holds. It polls from here, not
// in the page: a navigation replaces the page.
func waitFor(t *testing.T, ctx context.Context, what, cond, href string) {
	t.Helper()
	h, _ := json.Marshal(href)
	expr := `location.href === ` + string(h) + ` && document.readyState === "complete" && (` + cond + `)`
	deadline := time.Now().Add(landTimeout)
	for {
		try, cancel := context.WithTimeout(ctx, time.Second)
		ok, err := chromedp.Run(try, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("%s: not within %v (the tab is at %q; last error %v)", what, landTimeout, loc, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// userInfo is the part of /bff/user the tests read.
type userInfo struct {
	Sub     string        `json:"sub"`
	Session *sessionTimes `json:"session"`
}

// sessionTimes is /bff/user's session member, in Unix seconds.
type sessionTimes struct {
	ExpiresAt     int64 `json:"expires_at"`
	IdleExpiresAt int64 `json:"idle_expires_at"`
}

// fetchUser calls /bff/user+query from the page, as the app does.
func fetchUser(t *testing.T, ctx context.Context, query string) (int, userInfo) {
	t.Helper()
	type answer struct {
		Status int
		Body   string
	}
	js, _ := json.Marshal(bffPath + "/user" + query)
	a := run(t, ctx, "fetch "+bffPath+"/user"+query, chromedp.Evaluate[answer](
		`fetch(`+string(js)+`, {headers: {"X-CSRF": "1"}}).then(async (r) => ({Status: r.status, Body: await r.text()}))`,
		chromedp.EvalAwaitPromise))
	var u userInfo
	if a.Status == http.StatusOK {
		if err := json.Unmarshal([]byte(a.Body), &u); err != nil {
			t.Fatalf("%s/user%s: %v: %s", bffPath, query, err, a.Body)
		}
		if strings.Contains(a.Body, "eyJ") {
			t.Errorf("%s/user%s shows something token-like: %s", bffPath, query, a.Body)
		}
	}
	return a.Status, u
}

// sessionNow is fetchUser's session, which must be there.
func sessionNow(t *testing.T, ctx context.Context, query string) sessionTimes {
	t.Helper()
	status, u := fetchUser(t, ctx, query)
	if status != http.StatusOK || u.Session == nil || u.Session.ExpiresAt == 0 || u.Session.IdleExpiresAt == 0 {
		t.Fatalf("%s/user%s: %d %+v, want 200 with the session's expiry", bffPath, query, status, u)
	}
	return *u.Session
}

// userStatusWithCookie asks /bff/user, from outside the browser, with
// session cookie value: how the token handler sees that session now.
func userStatusWithCookie(t *testing.T, gatewayURL, value string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, gatewayURL+bffPath+"/user", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(bff.CSRFHeader, "1")
	req.AddCookie(&http.Cookie{Name: bff.SessionCookie, Value: value})
	resp, err := (&http.Client{Timeout: testkit.Wait}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// loginCookies are the token handler's login cookies among cookies.
func loginCookies(cookies map[string]*network.Cookie) map[string]*network.Cookie {
	out := map[string]*network.Cookie{}
	for name, c := range cookies {
		if strings.HasPrefix(name, bff.LoginCookiePrefix) {
			out[name] = c
		}
	}
	return out
}

// firstKey is a key of m ("" when it is empty).
func firstKey[V any](m map[string]V) string {
	for k := range m {
		return k
	}
	return ""
}
