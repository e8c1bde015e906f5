package bff_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

// TestLoginFloodStoresNothing: anonymous requests to /bff/login (no
// cookie, no CSRF header, no visit to the AS) store nothing, so a flood
// of them cannot keep anyone from logging in; HEAD is refused.
func TestLoginFloodStoresNothing(t *testing.T) {
	store, _ := bff.NewMemoryStore(10)
	e := newEnv(t, func(c *bff.Config) { c.Store = store })
	for i := range 50 {
		method := "GET"
		if i%2 == 1 {
			method = "HEAD"
		}
		req, _ := http.NewRequest(method, e.app.URL+"/bff/login", nil)
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[string]int{"GET": http.StatusFound, "HEAD": http.StatusMethodNotAllowed}[method]; resp.StatusCode != want {
			t.Fatalf("%s /bff/login: %d, want %d", method, resp.StatusCode, want)
		}
	}
	if n := store.Count(""); n != 0 {
		t.Errorf("%d store entries after anonymous logins, want 0", n)
	}
	b := newBrowser(t)
	b.login(e, "")
}

// TestReloginEndsOldSession: a browser does not send the SameSite=Strict
// session cookie on the cross-site redirect to /bff/callback, so the
// session it had is noted at /bff/login (a same-site navigation) and ended
// at the callback, its refresh token revoked.
func TestReloginEndsOldSession(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)
	b.login(e, "")
	first := b.Cookies[bff.SessionCookie]
	cb := b.startLogin(e, "") // same-site navigation: Strict cookie sent
	delete(b.Cookies, bff.SessionCookie)
	if resp, body := b.do("GET", cb); resp.StatusCode != http.StatusFound {
		t.Fatalf("callback: %d %s", resp.StatusCode, body)
	}
	old := newBrowser(t)
	old.Cookies[bff.SessionCookie] = first
	if resp, _ := old.api(e); resp.StatusCode != 401 {
		t.Errorf("the session replaced by a new login still works: %d", resp.StatusCode)
	}
	if _, _, rev := e.is.Grants(); rev != 1 {
		t.Errorf("revocations %d: the replaced session's refresh token was not revoked", rev)
	}
}

// refusingTransport answers every refresh grant 400 with an OAuth error
// other than invalid_grant.
type refusingTransport struct{ calls atomic.Int64 }

func (rt *refusingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path == "/token" && req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if strings.Contains(string(b), "grant_type=refresh_token") {
			rt.calls.Add(1)
			return &http.Response{StatusCode: 400, Status: "400 Bad Request", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header: http.Header{"Content-Type": {"application/json"}},
				Body:   io.NopCloser(strings.NewReader(`{"error":"unauthorized_client"}`)), Request: req}, nil
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(strings.NewReader(string(b)))
		req.ContentLength = int64(len(b))
	}
	return http.DefaultTransport.RoundTrip(req)
}

// the AS answers the refresh (400 unauthorized_client): it is not
// "down", yet the session is kept and every request makes another grant
// and gets 503, until the session's lifetime ends.
func TestRefreshRefusedOtherThanInvalidGrant(t *testing.T) {
	rt := &refusingTransport{}
	e := newEnv(t, func(c *bff.Config) { c.HTTPClient = &http.Client{Transport: rt, Timeout: testkit.Wait} })
	e.expireSoon(t)
	b := newBrowser(t)
	b.login(e, "")
	e.advance(11 * time.Second)
	var statuses []int
	for range 3 {
		resp, _ := b.api(e)
		statuses = append(statuses, resp.StatusCode)
	}
	if statuses[2] != 401 || rt.calls.Load() > 1 {
		t.Errorf("statuses %v after the AS refused the refresh, %d refresh grants; want 401 and one grant", statuses, rt.calls.Load())
	}
}

// doubleCodeTransport plays an authorization server that lets a code be
// exchanged twice: it answers a repeated authorization_code request with
// the first answer.
type doubleCodeTransport struct {
	mu     sync.Mutex
	byCode map[string][]byte
}

func (d *doubleCodeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/token") {
		return http.DefaultTransport.RoundTrip(req)
	}
	body, _ := io.ReadAll(req.Body)
	form, _ := url.ParseQuery(string(body))
	code := form.Get("code")
	d.mu.Lock()
	first, seen := d.byCode[code]
	d.mu.Unlock()
	if seen {
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(bytes.NewReader(first)), Request: req}, nil
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || form.Get("grant_type") != "authorization_code" {
		return resp, err
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d.mu.Lock()
	d.byCode[code] = answer
	d.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(answer))
	return resp, nil
}

// TestCallbackCompletesOnce: a captured callback (its URL and its login
// cookie) replayed creates nothing, even where the authorization server
// would exchange the code twice.
func TestCallbackCompletesOnce(t *testing.T) {
	e := newEnv(t, func(c *bff.Config) {
		c.HTTPClient = &http.Client{Transport: &doubleCodeTransport{byCode: map[string][]byte{}}}
	})
	b := newBrowser(t)
	cb := b.startLogin(e, "")
	captured := map[string]string{}
	for k, v := range b.Cookies {
		captured[k] = v
	}
	if resp, body := b.do("GET", cb); resp.StatusCode != http.StatusFound {
		t.Fatalf("callback: %d %s", resp.StatusCode, body)
	}
	attacker := newBrowser(t)
	attacker.Cookies = captured
	if resp, _ := attacker.do("GET", cb); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("replayed callback: %d, want 400", resp.StatusCode)
	}
	if _, ok := attacker.Cookies[bff.SessionCookie]; ok {
		t.Error("the replayed callback made a session")
	}
}

// TestDefaultOriginDropsDefaultPort: with PublicURL naming its scheme's
// default port, the allowed origin is what browsers send (no port).
func TestDefaultOriginDropsDefaultPort(t *testing.T) {
	for _, tc := range []struct{ public, origin string }{
		{"https://app.example.com:443", "https://app.example.com"},
		{"https://App.Example.com", "https://app.example.com"},
		{"https://app.example.com:8443", "https://app.example.com:8443"},
		{"http://127.0.0.1:80/base", "http://127.0.0.1"},
	} {
		h, err := bff.New(bff.Config{
			Issuer: "https://as.example.com", ClientID: "c", ClientSecret: "s",
			Scopes: []string{"openid"}, PublicURL: tc.public,
		})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("POST", "/bff/logout", nil)
		req.Header.Set("X-CSRF", "1")
		req.Header.Set("Origin", tc.origin)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		_ = h.Close()
		// Past the Origin rule, a request without a session is 401.
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s: Origin %s got %d, want 401 (allowed origin, no session)", tc.public, tc.origin, w.Code)
		}
	}
	_, err := bff.New(bff.Config{
		Issuer: "https://as.example.com", ClientID: "c", ClientSecret: "s", Scopes: []string{"openid"},
		PublicURL: "https://app.example.com", AllowedOrigins: []string{"https://app.example.com:443"},
	})
	if err == nil || !strings.Contains(err.Error(), "default port") {
		t.Errorf("AllowedOrigins with a default port: %v", err)
	}
}
