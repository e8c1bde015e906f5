package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/internal/demo"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

// flowTimeout bounds the whole flow in the browser; the browser itself
// is killed after twice that, whatever happens.
const flowTimeout = 60 * time.Second

// findBrowser returns the path of a Chromium or Chrome binary, or skips
// the test.
func findBrowser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium, chromium-browser or google-chrome on PATH (.ci/run installs Debian's chromium)")
	return ""
}

// startDemo runs "tokenguard demo --bff" on free loopback ports until the
// test ends, and checks that it printed one URL, the app's.
func startDemo(t *testing.T) *demo.Demo {
	t.Helper()
	var logs testkit.LockedBuffer
	var out strings.Builder
	opts := demo.Options{Issuer: "127.0.0.1:0", Upstream: "127.0.0.1:0", Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0", BFF: true}
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
	defer cancel()
	d, err := demo.Start(ctx, opts, &out, slog.New(slog.NewTextHandler(&logs, nil)))
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
				t.Errorf("demo: %v", err)
			}
		case <-time.After(testkit.Wait):
			t.Error("the demo did not stop")
		}
		if t.Failed() {
			t.Logf("demo output:\n%s\ndemo log:\n%s", out.String(), logs.String())
		}
	})
	if urls := regexp.MustCompile(`https?://\S+`).FindAllString(out.String(), -1); len(urls) != 1 || urls[0] != d.AppURL {
		t.Fatalf("the demo printed %q, want one URL, the app's %q", urls, d.AppURL)
	}
	return d
}

// browser is one test's headless Chromium: one profile, so one cookie
// jar for all its tabs.
type browser struct {
	t         *testing.T
	artifacts string               // TOKENGUARD_ARTIFACTS: where screenshots go; "" keeps none
	log       testkit.LockedBuffer // chromedp's own errors
}

// startBrowser starts headless Chromium exe for the test and returns it
// with its first tab. The browser is killed after hard, whatever happens,
// and closed when the test ends; when the test has failed by then, every
// tab leaves a screenshot and its console in the log. Start the demo
// first: the browser then closes before it, and its connections (some
// opened ahead of use) do not hold up the demo's shutdown.
func startBrowser(t *testing.T, exe string, hard time.Duration) (*browser, context.Context) {
	t.Helper()
	b := &browser{t: t, artifacts: os.Getenv("TOKENGUARD_ARTIFACTS")}
	if b.artifacts == "" {
		t.Log("TOKENGUARD_ARTIFACTS is not set: screenshots are not kept")
	} else if err := os.MkdirAll(b.artifacts, 0o755); err != nil {
		t.Fatal(err)
	}

	hardCtx, cancelHard := context.WithTimeout(context.Background(), hard)
	alloc, cancelAlloc := chromedp.NewExecAllocator(hardCtx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // the tests may run as root
		chromedp.Flag("headless", true),
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1000, 800),
	)...)
	tab, cancelTab := chromedp.NewContext(alloc, chromedp.WithErrorf(b.errorf))
	t.Cleanup(func() {
		_ = chromedp.Cancel(tab) // closes the browser and waits for it
		cancelTab()
		cancelAlloc()
		cancelHard()
	})
	// The first action starts the browser, under the tab's own context:
	// a timeout on it would end the browser with it.
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	b.watch(tab, "")
	return b, tab
}

func (b *browser) errorf(format string, args ...any) {
	b.log.Write([]byte("chromedp: " + strings.TrimSpace(fmt.Sprintf(format, args...)) + "\n"))
}

// newTab opens another tab in the browser of tab: the same profile and
// cookie jar, as when a user opens the app twice. It is closed when the
// test ends; name tells its screenshots apart.
func (b *browser) newTab(tab context.Context, name string) context.Context {
	b.t.Helper()
	// chromedp's errors are the browser's, in b.log already. The tab
	// closes before the browser does: cleanups run last in, first out.
	other, cancel := chromedp.NewContext(tab)
	b.t.Cleanup(cancel)
	if err := chromedp.Do(other); err != nil {
		b.t.Fatalf("opening tab %s: %v", name, err)
	}
	b.watch(other, name)
	return other
}

// watch collects the console of tab (named name, "" for the first) and,
// when the test has failed by its end, keeps a screenshot of the tab and
// logs its console.
func (b *browser) watch(tab context.Context, name string) {
	console := collectConsole(tab)
	b.t.Cleanup(func() {
		t := b.t
		checkConsole(t, name, console)
		if !t.Failed() {
			return
		}
		shot, label := "failure.png", "browser console"
		if name != "" {
			shot, label = "failure-"+name+".png", "console of tab "+name
		}
		screenshot(t, tab, b.artifacts, shot)
		t.Logf("%s:\n%s\n%s", label, strings.Join(console.lines(), "\n"), b.log.String())
	})
}

// checkConsole fails the test on an uncaught exception or a Content
// Security Policy violation in a tab's console.
func checkConsole(t *testing.T, name string, console *consoleLog) {
	t.Helper()
	for _, line := range console.lines() {
		if strings.HasPrefix(line, string(chromedp.ConsoleException)) || strings.Contains(line, "Content Security Policy") {
			t.Errorf("browser console %s: %s", name, line)
		}
	}
}

// act runs steps in a tab, failing the test on error.
func act(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestBrowserLoginCallLogout opens the demo's app in headless Chromium,
// logs in, calls the API, and logs out, checking along the way that the
// page's scripts can reach no token and no session cookie.
func TestBrowserLoginCallLogout(t *testing.T) {
	exe := findBrowser(t)
	d := startDemo(t)
	b, tab := startBrowser(t, exe, 2*flowTimeout)
	artifacts := b.artifacts

	ctx, cancel := context.WithTimeout(tab, flowTimeout)
	defer cancel()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		act(t, ctx, what, steps...)
	}
	csrf := `{headers: {"X-CSRF": "1"}}`

	// The page loads without a session and offers to log in.
	do("open the app", chromedp.Navigate(d.AppURL), chromedp.WaitVisible(chromedp.CSS("#login")))
	if visible := run(t, ctx, "the session part", chromedp.Evaluate[bool](`!document.getElementById("session").hidden`)); visible {
		t.Error("the page shows a session before login")
	}
	noTokens(t, ctx, "before login")

	// Log in: through /bff/login, the issuer and /bff/callback, back to
	// the page, which now shows the user.
	do("log in", chromedp.Click(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("#session")))
	if loc := run(t, ctx, "location", chromedp.Location()); loc != d.AppURL {
		t.Errorf("after login the browser is at %q, want %q", loc, d.AppURL)
	}
	if user := run(t, ctx, "user", chromedp.TextContent(chromedp.CSS("#user"))); user != "Demo User (demo-user)" {
		t.Errorf("the page shows the user as %q", user)
	}
	if !run(t, ctx, "login button", chromedp.Evaluate[bool](`document.getElementById("login").hidden`)) {
		t.Error("the login button is still shown after login")
	}

	// Call the API: the gateway turns the session into a verified token
	// and the upstream says who called it.
	do("call the API", chromedp.Click(chromedp.CSS("#call")),
		chromedp.Poll[chromedp.Void](`document.getElementById("result").dataset.status !== undefined`, chromedp.WithPollingTimeout(flowTimeout)))
	status := run(t, ctx, "API status", chromedp.Evaluate[string](`document.getElementById("result").dataset.status`))
	result := run(t, ctx, "API result", chromedp.TextContent(chromedp.CSS("#result")))
	var echo struct {
		Message, Method, Path string
		Headers               map[string]string
	}
	if err := json.Unmarshal([]byte(result), &echo); err != nil || status != "200" {
		t.Fatalf("#result after Call API: status %s, %q (%v)", status, result, err)
	}
	if echo.Method != "GET" || echo.Path != "/api/orders" || echo.Headers["X-Tokenguard-Subject"] != "demo-user" || echo.Headers["X-Tokenguard-Scope"] != "orders:read" {
		t.Errorf("the API answered %+v", echo)
	}
	// From the page, without the CSRF header the session is not used.
	if got := run(t, ctx, "fetch without X-CSRF", chromedp.Evaluate[int](`fetch("/api/orders").then(r => r.status)`, chromedp.EvalAwaitPromise)); got != 401 {
		t.Errorf("fetch('/api/orders') without X-CSRF: %d, want 401", got)
	}
	noTokens(t, ctx, "logged in")

	// The session cookie, as the browser keeps it.
	cookies := browserCookies(t, ctx, d.AppURL)
	s := cookies[bff.SessionCookie]
	switch {
	case s == nil:
		t.Fatalf("the browser keeps no %s cookie for %s: %v", bff.SessionCookie, d.AppURL, cookies)
	case !s.HTTPOnly, !s.Secure, s.SameSite != network.CookieSameSiteStrict, s.Path != "/", s.Domain != "127.0.0.1":
		t.Errorf("%s: HttpOnly %v, Secure %v, SameSite %q, Path %q, Domain %q; want HttpOnly, Secure, Strict, /, host-only 127.0.0.1",
			s.Name, s.HTTPOnly, s.Secure, s.SameSite, s.Path, s.Domain)
	case strings.Contains(s.Value, "eyJ") || strings.Count(s.Value, ".") >= 2:
		t.Errorf("the session cookie looks like a token: %q", s.Value)
	}
	for name, c := range cookies {
		if strings.Contains(name, "tokenguard") && (!c.HTTPOnly || !c.Secure) {
			t.Errorf("cookie %s: HttpOnly %v, Secure %v", name, c.HTTPOnly, c.Secure)
		}
	}
	screenshot(t, tab, artifacts, "logged-in.png")

	// Log out: the token handler ends the session, the issuer's logout
	// brings the browser back to the page, which offers to log in again.
	do("log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login")))
	if loc := run(t, ctx, "location", chromedp.Location()); loc != d.AppURL {
		t.Errorf("after logout the browser is at %q, want %q", loc, d.AppURL)
	}
	if got := run(t, ctx, "/bff/user after logout", chromedp.Evaluate[int](`fetch("/bff/user", `+csrf+`).then(r => r.status)`, chromedp.EvalAwaitPromise)); got != 401 {
		t.Errorf("/bff/user after logout: %d, want 401", got)
	}
	if c := browserCookies(t, ctx, d.AppURL)[bff.SessionCookie]; c != nil {
		t.Errorf("the browser still keeps %s after logout", c.Name)
	}
	noTokens(t, ctx, "after logout")
}

// noTokens checks, from inside the page, that its scripts can read no
// tokenguard cookie, and that nothing token-like ("eyJ", the start of a
// JWT) is in the page, its URL, localStorage, sessionStorage, IndexedDB or
// the Cache API; the app uses none of these stores, so they must be empty.
func noTokens(t *testing.T, ctx context.Context, when string) {
	t.Helper()
	type view struct {
		Cookie, Local, Session, IndexedDB, HTML, Href string
		Databases, Caches                             int
	}
	v := run(t, ctx, "page storage "+when, chromedp.Evaluate[view](`(async () => {
		const dump = (s) => { const o = {}; for (let i = 0; i < s.length; i++) { const k = s.key(i); o[k] = s.getItem(k); } return JSON.stringify(o); };
		const req = (r) => new Promise((ok, fail) => { r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error); });
		const dbs = await indexedDB.databases();
		const idb = [];
		for (const info of dbs) {
			const db = await req(indexedDB.open(info.name));
			for (const store of db.objectStoreNames) {
				idb.push({db: info.name, store, values: await req(db.transaction(store).objectStore(store).getAll())});
			}
			db.close();
		}
		return {
			Cookie: document.cookie, Local: dump(localStorage), Session: dump(sessionStorage),
			IndexedDB: JSON.stringify(idb), Databases: dbs.length,
			Caches: "caches" in self ? (await caches.keys()).length : 0,
			HTML: document.documentElement.outerHTML, Href: location.href,
		};
	})()`, chromedp.EvalAwaitPromise))
	if strings.Contains(v.Cookie, "tokenguard") {
		t.Errorf("%s: document.cookie shows a tokenguard cookie: %q", when, v.Cookie)
	}
	for name, s := range map[string]string{"document.cookie": v.Cookie, "localStorage": v.Local, "sessionStorage": v.Session, "IndexedDB": v.IndexedDB, "the page": v.HTML, "the URL": v.Href} {
		if strings.Contains(s, "eyJ") {
			t.Errorf("%s: %s holds something token-like: %q", when, name, s)
		}
	}
	if v.Local != "{}" || v.Session != "{}" || v.Databases != 0 || v.Caches != 0 {
		t.Errorf("%s: the app's storage is not empty: localStorage %s, sessionStorage %s, %d IndexedDB databases, %d caches",
			when, v.Local, v.Session, v.Databases, v.Caches)
	}
}

// browserCookies returns the cookies the browser would send to url, by
// name, as DevTools sees them (HttpOnly ones included).
func browserCookies(t *testing.T, ctx context.Context, url string) map[string]*network.Cookie {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
	if err != nil {
		t.Fatalf("Network.getCookies: %v", err)
	}
	out := map[string]*network.Cookie{}
	for _, c := range res.Cookies {
		out[c.Name] = c
	}
	return out
}

// run runs one action and returns its value, failing the test on error.
func run[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// screenshot writes a PNG of the whole page to dir/browser-name, when
// dir is set.
func screenshot(t *testing.T, tab context.Context, dir, name string) {
	t.Helper()
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(dir, "browser-"+name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	t.Logf("screenshot: %s", path)
}

// consoleLog is what the page wrote to its console, and the browser's log.
type consoleLog struct {
	mu   sync.Mutex
	msgs []string
}

func collectConsole(tab context.Context) *consoleLog {
	c := &consoleLog{}
	messages := chromedp.Console(tab)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, m.String())
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *consoleLog) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.msgs...)
}
