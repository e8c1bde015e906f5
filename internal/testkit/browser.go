package testkit

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Browser is what a browser does with cookies and redirects, for token
// handler tests: it keeps cookies by name, Secure or not (test servers
// are plain http on loopback), remembers every Set-Cookie it saw, and
// follows redirects only when told to.
type Browser struct {
	t       testing.TB
	client  *http.Client
	Cookies map[string]string
	Seen    []*http.Cookie
	strict  map[string]bool // cookies set SameSite=Strict
}

// NewBrowser returns a Browser with no cookies.
func NewBrowser(t testing.TB) *Browser {
	return &Browser{
		t:       t,
		client:  &http.Client{Timeout: Wait, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		Cookies: map[string]string{},
		strict:  map[string]bool{},
	}
}

// Do sends one request with the browser's cookies and headers hdr
// ("Name: value"), keeps the cookies it is given, and returns the
// response with its body read.
func (b *Browser) Do(method, rawURL string, hdr ...string) (*http.Response, string) {
	b.t.Helper()
	return b.do(method, rawURL, false, hdr)
}

// DoCrossSite is Do for a navigation that comes from another site (a
// redirect from the authorization server): SameSite=Strict cookies stay
// behind, as browsers keep them.
func (b *Browser) DoCrossSite(method, rawURL string, hdr ...string) (*http.Response, string) {
	b.t.Helper()
	return b.do(method, rawURL, true, hdr)
}

func (b *Browser) do(method, rawURL string, crossSite bool, hdr []string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Add(k, v)
	}
	for k, v := range b.Cookies {
		if crossSite && b.strict[k] {
			continue
		}
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		b.Seen = append(b.Seen, c)
		if c.MaxAge < 0 {
			delete(b.Cookies, c.Name)
		} else {
			b.Cookies[c.Name] = c.Value
			b.strict[c.Name] = c.SameSite == http.SameSiteStrictMode
		}
	}
	return resp, string(body)
}

// StartLogin follows app's /bff/login (query appended) to the issuer and
// returns the callback URL the issuer sends the browser back to.
func (b *Browser) StartLogin(app, query string) string {
	b.t.Helper()
	resp, body := b.Do("GET", app+"/bff/login"+query)
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	resp, body = b.Do("GET", resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("authorize: %d %s", resp.StatusCode, body)
	}
	return resp.Header.Get("Location")
}

// Login runs the whole flow at app and returns where the browser landed.
// The callback is a cross-site navigation, as in a browser.
func (b *Browser) Login(app, query string) string {
	b.t.Helper()
	resp, body := b.DoCrossSite("GET", b.StartLogin(app, query))
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("callback: %d %s", resp.StatusCode, body)
	}
	if _, ok := b.Cookies["__Host-tokenguard-session"]; !ok {
		b.t.Fatal("no session cookie after the callback")
	}
	return resp.Header.Get("Location")
}
