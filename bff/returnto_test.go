package bff_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

// openRedirects all end at "/".
var openRedirects = []string{
	"",
	"relative",
	"orders/42",
	"//evil.com",
	"///evil.com",
	"//evil.com/path",
	"/\\evil.com",
	"\\\\evil.com",
	"\\/evil.com",
	"/%2F/evil.com",
	"/%2f%2fevil.com",
	"/%2F%2Fevil.com",
	"/%5Cevil.com",
	"/%5cevil.com",
	"/%252F%252Fevil.com",
	"/%252f/evil.com",
	"/%255Cevil.com",
	"https://evil.com",
	"http://evil.com/",
	"HTTPS://evil.com",
	"javascript:alert(1)",
	"data:text/html,<script>alert(1)</script>",
	"/\t/evil.com",
	"/\n/evil.com",
	"/\r/evil.com",
	"/%09/evil.com",
	"/%0A/evil.com",
	"/%0d%0aSet-Cookie:x=y",
	"/ /evil",
	"/\x00",
	"/a\x00b",
	"/%00",
	"/a\\b",
	"/a\x7f",
	"/" + strings.Repeat("a", 3000),
	"/caf\xc3\xa9",
	"/\xff",
	"/\u2215\u2215evil.com", // division slashes, raw
	"/\uff0f\uff0fevil.com", // fullwidth solidus, raw
	"/a\"onmouseover=x",
	"/<script>",
	"/%",
	"/%zz",
	"/%2",
}

func TestSafeReturnTo(t *testing.T) {
	for _, ok := range []string{
		"/",
		"/a/b?x=1#frag",
		"/orders/42?tab=items",
		"/%E2%9C%93",
		"/orders/%2Fnot-a-host", // an encoded slash after the first segment is a path
		"/search?q=%2F%2Fevil.com",
		"/a//b",
		"/" + strings.Repeat("a", 2047),
	} {
		if got := bff.SafeReturnTo(ok); got != ok {
			t.Errorf("SafeReturnTo(%q) = %q, want it unchanged", ok, got)
		}
	}
	for _, bad := range openRedirects {
		if got := bff.SafeReturnTo(bad); got != "/" {
			t.Errorf("SafeReturnTo(%q) = %q, want /", bad, got)
		}
	}
}

// checkReturnTo fails unless out is what SafeReturnTo may return for in.
func checkReturnTo(t *testing.T, in, out string) {
	t.Helper()
	if out != "/" && out != in {
		t.Fatalf("SafeReturnTo(%q) = %q: neither / nor the input", in, out)
	}
	u, err := url.Parse(out)
	if err != nil {
		t.Fatalf("SafeReturnTo(%q) = %q does not parse: %v", in, out, err)
	}
	if u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		t.Fatalf("SafeReturnTo(%q) = %q has scheme %q host %q", in, out, u.Scheme, u.Host)
	}
	if !strings.HasPrefix(out, "/") {
		t.Fatalf("SafeReturnTo(%q) = %q is not a path", in, out)
	}
	dec := out
	for round := 0; round <= 2; round++ {
		if strings.HasPrefix(dec, "//") || strings.HasPrefix(dec, "/\\") {
			t.Fatalf("SafeReturnTo(%q) = %q reads as another host after %d decodings: %q", in, out, round, dec)
		}
		for _, c := range []byte(dec) {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("SafeReturnTo(%q) = %q has a control character after %d decodings", in, out, round)
			}
		}
		if round == 0 && strings.ContainsAny(dec, " \\") {
			t.Fatalf("SafeReturnTo(%q) = %q has a space or a backslash", in, out)
		}
		d, err := url.PathUnescape(dec)
		if err != nil {
			break
		}
		dec = d
	}
	// What a browser does with the Location: resolved against our
	// origin, it stays on our origin.
	base, _ := url.Parse("https://app.example/bff/callback")
	if r := base.ResolveReference(u); r.Host != "app.example" || r.Scheme != "https" {
		t.Fatalf("SafeReturnTo(%q) = %q resolves to %s", in, out, r)
	}
}

func FuzzSafeReturnTo(f *testing.F) {
	for _, s := range openRedirects {
		f.Add(s)
	}
	for _, s := range []string{"/", "/a/b?x=1#frag", "/%E2%9C%93", "/%25%32%46", "/%2525252F", "/?a=//b", "/#//evil"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		checkReturnTo(t, in, bff.SafeReturnTo(in))
	})
}

// TestLoginReturnTo: return_to goes through SafeReturnTo end to end: the
// callback redirects to it only when it is safe.
func TestLoginReturnTo(t *testing.T) {
	e := newEnv(t, nil)
	for in, want := range map[string]string{
		"//evil.com":           "/",
		"/\\evil.com":          "/",
		"/%2F/evil.com":        "/",
		"/%252F%252Fevil.com":  "/",
		"https://evil.com":     "/",
		"javascript:alert(1)":  "/",
		"/\t/evil.com":         "/",
		"/orders/42?tab=items": "/orders/42?tab=items",
	} {
		t.Run(in, func(t *testing.T) {
			b := newBrowser(t)
			if got := b.login(e, "?return_to="+url.QueryEscape(in)); got != want {
				t.Errorf("return_to %q: the callback redirects to %q, want %q", in, got, want)
			}
		})
	}
	// Unencoded in the query, as a careless link would have it.
	b := newBrowser(t)
	if got := b.login(e, "?return_to=//evil.com"); got != "/" {
		t.Errorf("return_to=//evil.com: the callback redirects to %q", got)
	}
	// A denied login goes back to the (safe) return_to too.
	b = newBrowser(t)
	cb := b.startLogin(e, "?return_to="+url.QueryEscape("//evil.com"))
	q := query(t, cb)
	resp, _ := b.do("GET", e.app.URL+"/bff/callback?"+url.Values{"state": {q.Get("state")}, "error": {"access_denied"}}.Encode())
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/" {
		t.Errorf("denied login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// fuzzEnv is a token handler for a development issuer, called directly
// (a panic fails the fuzz target instead of being recovered by a server).
type fuzzEnv struct {
	is *devissuer.Issuer
	h  *bff.Handler
}

func newFuzzEnv(tb testing.TB) *fuzzEnv {
	tb.Helper()
	is := testkit.StartIssuer(tb)
	const public = "http://127.0.0.1:8443"
	is.EnableLogin(devissuer.LoginConfig{
		Clients: []devissuer.Client{{ID: clientID, Secret: clientSecret, RedirectURIs: []string{public + "/bff/callback"}}},
		Subject: "alice",
	})
	store, err := bff.NewMemoryStore(0)
	if err != nil {
		tb.Fatal(err)
	}
	h, err := bff.New(bff.Config{
		Issuer: is.URL(), ClientID: clientID, ClientSecret: clientSecret,
		Scopes: []string{"openid", "offline_access"}, PublicURL: public, Store: store,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = h.Close() })
	return &fuzzEnv{is: is, h: h}
}

// serve sends one GET to the handler with the given raw query and Cookie
// header.
func (e *fuzzEnv) serve(path, rawQuery, cookie string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", path, nil)
	req.URL.RawQuery = rawQuery
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

// startLogin starts a login and returns its state and the login cookie.
func (e *fuzzEnv) startLogin(t *testing.T) (state, cookie string) {
	t.Helper()
	rec := e.serve("/bff/login", "", "")
	if rec.Code != http.StatusFound {
		t.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	u, err := url.Parse(rec.Header().Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rec.Result().Cookies() {
		if strings.HasPrefix(c.Name, bff.LoginCookiePrefix) {
			cookie = c.Name + "=" + c.Value
		}
	}
	return u.Query().Get("state"), cookie
}

// FuzzCallback sends arbitrary queries (and cookies) to the callback:
// never a session, never a 5xx other than 503, never a panic, and a
// redirect only to a safe path.
func FuzzCallback(f *testing.F) {
	e := newFuzzEnv(f)
	for _, s := range []struct {
		query  string
		mode   uint8
		cookie string
	}{
		{"", 0, ""},
		{"code=abc&state=xyz", 0, ""},
		{"code=abc&state=xyz", 1, ""},
		{"code=abc", 2, ""},
		{"error=access_denied", 2, ""},
		{"error=login_required&iss=http%3A%2F%2Fevil", 2, ""},
		{"code=abc&iss=x&iss=y", 2, ""},
		{"code=" + strings.Repeat("a", 20000), 2, ""},
		{"state=%ZZ&code=;;;", 1, ""},
		{"code=a&state=b", 3, bff.LoginCookiePrefix + "0123456789abcdef=" + strings.Repeat("A", 43) + "; " + bff.SessionCookie + "=x"},
		{"state=" + strings.Repeat("s", 65), 3, bff.LoginCookiePrefix + "x=\x00\xff"},
	} {
		f.Add(s.query, s.mode, s.cookie)
	}
	f.Fuzz(func(t *testing.T, rawQuery string, mode uint8, cookie string) {
		switch mode % 4 {
		case 0: // no cookie
			cookie = ""
		case 1: // a login cookie for the query's state that we never sealed
			st, _ := url.ParseQuery(rawQuery)
			cookie = bff.LoginCookieName(st.Get("state")) + "=" + strings.Repeat("B", 43)
		case 2: // a real pending login of this browser: its state first
			state, c := e.startLogin(t)
			cookie = c
			rawQuery = "state=" + state + "&" + rawQuery
		case 3: // whatever Cookie header
		}
		rec := e.serve("/bff/callback", rawQuery, cookie)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		switch rec.Code {
		case http.StatusFound:
			loc := rec.Header().Get("Location")
			if mode%4 != 2 || loc != "/" {
				t.Fatalf("302 to %q in mode %d", loc, mode%4)
			}
		case http.StatusBadRequest, http.StatusServiceUnavailable:
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		for _, c := range rec.Result().Cookies() {
			if c.Name == bff.SessionCookie && c.MaxAge >= 0 {
				t.Fatalf("the callback set a session cookie (status %d)", rec.Code)
			}
		}
		if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("Cache-Control %q", cc)
		}
	})
}
