package redisstore_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/bff/redisstore"
	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/testkit"
	"github.com/tokenguard/tokenguard/middleware"
)

// TestReplicasBackchannelLogout: two token handlers share one Redis; a
// logout token delivered to replica 2 ends the session made at replica 1
// (and revokes its refresh token), and only that one; and Redis holds no
// sid, subject or session id in the clear, in keys or in index members.
func TestReplicasBackchannelLogout(t *testing.T) {
	srv := startRedis(t)
	is := testkit.StartIssuer(t)
	const public = "https://app.example.com"
	const subject = "subject-in-the-clear"
	is.EnableLogin(devissuer.LoginConfig{
		Clients: []devissuer.Client{{ID: "spa", Secret: "secret", RedirectURIs: []string{public + "/bff/callback"}}},
		Subject: subject,
	})
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
			PublicURL: public, Store: st, SessionKey: key, BackchannelLogout: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Close() })
		api := h.Authenticate(g.Require("orders:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
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
	login := func() (*testkit.Browser, string) {
		b := testkit.NewBrowser(t)
		cb := b.StartLogin(r1.URL, "")
		if resp, body := b.Do("GET", strings.Replace(cb, public, r1.URL, 1)); resp.StatusCode != http.StatusFound {
			t.Fatalf("callback: %d %s", resp.StatusCode, body)
		}
		resp, body := b.Do("GET", r1.URL+"/bff/user", "X-CSRF: 1")
		var c struct{ Sid string }
		if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &c) != nil || c.Sid == "" {
			t.Fatalf("/user: %d %s", resp.StatusCode, body)
		}
		return b, c.Sid
	}
	b1, sid1 := login()
	b2, sid2 := login()
	api := func(b *testkit.Browser) int {
		resp, _ := b.Do("GET", r1.URL+"/orders", "X-CSRF: 1")
		return resp.StatusCode
	}

	// Nothing readable in Redis: keys and index members are hashes.
	raw := newClient(t, srv.Addr())
	keys, err := raw.Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{sid1, sid2, subject, b1.Cookies[bff.SessionCookie], b2.Cookies[bff.SessionCookie]}
	sets := 0
	for _, k := range keys {
		things := []string{k}
		if typ, _ := raw.Type(t.Context(), k).Result(); typ == "set" {
			sets++
			m, _ := raw.SMembers(t.Context(), k).Result()
			things = append(things, m...)
			if d, _ := raw.PTTL(t.Context(), k).Result(); d < 23*time.Hour {
				t.Errorf("index %s lives %v, less than the session lifetime", k, d)
			}
		}
		for _, th := range things {
			for _, s := range secrets {
				if strings.Contains(th, s) {
					t.Errorf("Redis holds %q in the clear (in %q)", s, th)
				}
			}
		}
	}
	if sets != 3 {
		t.Errorf("%d indexes in Redis, want 3 (two sids, one subject)", sets)
	}

	_, _, rev0 := is.Grants()
	claims := map[string]any{
		"iss": is.URL(), "aud": "spa", "iat": time.Now().Unix(), "jti": "jti-replicas",
		"sid": sid1, "events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}},
	}
	tok, err := is.SigningKey().Sign(map[string]any{"typ": "logout+jwt"}, claims)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.PostForm(r2.URL+"/bff/backchannel", url.Values{"logout_token": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("back-channel logout at replica 2: %d", resp.StatusCode)
	}
	if code := api(b1); code != http.StatusUnauthorized {
		t.Errorf("the ended session at replica 1: %d, want 401", code)
	}
	if code := api(b2); code != http.StatusOK {
		t.Errorf("the other session: %d, want 200", code)
	}
	if _, _, rev := is.Grants(); rev != rev0+1 {
		t.Errorf("revocations %d -> %d, want one", rev0, rev)
	}
	// The same token at replica 1: a replay.
	resp, err = http.PostForm(r1.URL+"/bff/backchannel", url.Values{"logout_token": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("the replay at the other replica: %d, want 400", resp.StatusCode)
	}
}
