package redisstore_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/bff/redisstore"
	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/testkit"
	"github.com/tokenguard/tokenguard/middleware"
)

// TestReplicasRefreshOnce: two token handlers share sessions through one
// Redis; when the session's access token is due, concurrent requests at
// both replicas cause exactly one refresh grant (the store's lock), and
// both go on with the rotated tokens.
func TestReplicasRefreshOnce(t *testing.T) {
	srv := startRedis(t)
	is := testkit.StartIssuer(t)
	const public = "https://app.example.com" // the load balancer's origin
	is.EnableLogin(devissuer.LoginConfig{
		Clients: []devissuer.Client{{ID: "spa", Secret: "secret", RedirectURIs: []string{public + "/bff/callback"}}},
	})
	var skew atomic.Int64
	key := make([]byte, bff.SessionKeySize)
	g, err := middleware.New(t.Context(), middleware.Config{Audience: testkit.Audience, Issuers: []middleware.Issuer{{Issuer: is.URL()}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	replica := func() *httptest.Server {
		st, err := redisstore.NewFromURL(srv.URL(0), redisstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		h, err := bff.New(bff.Config{
			Issuer: is.URL(), ClientID: "spa", ClientSecret: "secret",
			Scopes: []string{"openid", "offline_access", "orders:read"}, Resource: testkit.Audience,
			PublicURL: public, Store: st, SessionKey: key,
			Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Close() })
		api := h.Authenticate(g.Require("orders:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(r.Header.Get("Authorization")))
		})))
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if h.Owns(r) {
				h.ServeHTTP(w, r)
				return
			}
			api.ServeHTTP(w, r)
		}))
		t.Cleanup(s.Close)
		return s
	}
	r1, r2 := replica(), replica()

	// Log in through replica 1 (the issuer sends the browser to the
	// public origin; the test delivers it to r1).
	is.SetAccessTokenTTL(10 * time.Second) // the login's token: due after 5 s
	b := testkit.NewBrowser(t)
	cb := b.StartLogin(r1.URL, "")
	if resp, body := b.Do("GET", strings.Replace(cb, public, r1.URL, 1)); resp.StatusCode != http.StatusFound {
		t.Fatalf("callback: %d %s", resp.StatusCode, body)
	}
	is.SetAccessTokenTTL(time.Hour) // the refreshed ones: not due again
	skew.Store(int64(6 * time.Second))
	_, before, _ := is.Grants()

	cookie := b.Cookies[bff.SessionCookie]
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]int{}
	for i := range 20 {
		base := r1.URL
		if i%2 == 1 {
			base = r2.URL
		}
		wg.Go(func() {
			req, _ := http.NewRequest("GET", base+"/orders", nil)
			req.Header.Set("X-CSRF", "1")
			req.AddCookie(&http.Cookie{Name: bff.SessionCookie, Value: cookie})
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status %d: %s", resp.StatusCode, body)
				return
			}
			mu.Lock()
			seen[string(body)]++
			mu.Unlock()
		})
	}
	wg.Wait()
	_, after, _ := is.Grants()
	if after-before != 1 {
		t.Errorf("%d refresh grants across two replicas, want 1", after-before)
	}
	if len(seen) != 1 {
		t.Errorf("requests went on with %d different tokens, want the one refreshed token", len(seen))
	}
}
