package bff_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

// Token endpoint failure modes of flakyTransport.
const (
	tokenOK = iota
	tokenConnError
	tokenServerError
)

// flakyTransport is the handler's way to the authorization server; it can
// make the token endpoint unreachable (or answer 503) while every other
// endpoint keeps working.
type flakyTransport struct {
	mode       atomic.Int32
	tokenCalls atomic.Int64 // token requests made while failing
}

func (t *flakyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path == "/token" {
		switch t.mode.Load() {
		case tokenConnError:
			t.tokenCalls.Add(1)
			if req.Body != nil {
				_ = req.Body.Close()
			}
			return nil, errors.New("dial tcp: connection refused (test)")
		case tokenServerError:
			t.tokenCalls.Add(1)
			if req.Body != nil {
				_ = req.Body.Close()
			}
			return &http.Response{
				StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable",
				Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header:  http.Header{"Content-Type": {"application/json"}, "Retry-After": {"5"}},
				Body:    io.NopCloser(strings.NewReader(`{"error":"temporarily_unavailable"}`)),
				Request: req,
			}, nil
		}
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestRefreshUnavailable: when the authorization server cannot refresh,
// a token that has not expired yet is still used; an expired one gives
// 503 and the session stays for when the server is back.
func TestRefreshUnavailable(t *testing.T) {
	for name, mode := range map[string]int32{"connection error": tokenConnError, "503 answer": tokenServerError} {
		t.Run(name, func(t *testing.T) {
			ft := &flakyTransport{}
			e := newEnv(t, func(c *bff.Config) {
				c.HTTPClient = &http.Client{Transport: ft, Timeout: testkit.Wait}
			})
			e.expireSoon(t) // 10 s access token, refresh margin 5 s
			b := newBrowser(t)
			b.login(e, "")
			e.is.SetAccessTokenTTL(time.Hour)
			before := e.upstreamAuth(t, b)
			_, grants0, _ := e.is.Grants()

			ft.mode.Store(mode)
			// Within the margin, not expired: the refresh fails, the
			// old token is still sent, and accepted.
			e.advance(6 * time.Second)
			if got := e.upstreamAuth(t, b); got != before {
				t.Error("within the margin, with the AS down, the token changed")
			}
			if ft.tokenCalls.Load() == 0 {
				t.Fatal("no refresh was attempted within the margin")
			}
			if n := counter(t, e.reg, "tokenguard_bff_refreshes_total", "unavailable"); n < 1 {
				t.Errorf("refreshes unavailable = %v", n)
			}

			// Expired by the handler's clock: 503, nothing forwarded,
			// the cookie kept.
			e.advance(5 * time.Second)
			n := e.upstream.count()
			resp, body := b.api(e)
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"error":"temporarily_unavailable"`) {
				t.Fatalf("api with an expired token and the AS down: %d %s", resp.StatusCode, body)
			}
			if e.upstream.count() != n {
				t.Error("a request was forwarded with an expired token")
			}
			for _, c := range resp.Cookies() {
				if c.Name == bff.SessionCookie {
					t.Errorf("the 503 touched the session cookie: %s", c)
				}
			}
			resp, body = b.do("GET", e.app.URL+"/bff/user", "X-CSRF: 1")
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("/bff/user with the AS down: %d %s", resp.StatusCode, body)
			}
			if _, ok := b.Cookies[bff.SessionCookie]; !ok {
				t.Fatal("the session cookie was dropped")
			}
			if _, g, _ := e.is.Grants(); g != grants0 {
				t.Errorf("refresh grants %d -> %d while the token endpoint was down", grants0, g)
			}

			// The AS is back: the same cookie works, with a new token.
			ft.mode.Store(tokenOK)
			after := e.upstreamAuth(t, b)
			if after == before {
				t.Error("the token was not refreshed once the AS was back")
			}
			if _, g, _ := e.is.Grants(); g != grants0+1 {
				t.Errorf("refresh grants %d -> %d, want one", grants0, g)
			}
		})
	}
}

// failingStore is a MemoryStore whose operations can be made to fail as
// a store across the network does.
type failingStore struct {
	*bff.MemoryStore
	failGet, failLock, failIndex atomic.Bool
	err                          error
}

func (s *failingStore) Get(ctx context.Context, key string) ([]byte, error) {
	if s.failGet.Load() {
		return nil, s.err
	}
	return s.MemoryStore.Get(ctx, key)
}

func (s *failingStore) Lock(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if s.failLock.Load() {
		return "", s.err
	}
	return s.MemoryStore.Lock(ctx, key, ttl)
}

// TestStoreUnavailable: a store that cannot be read fails closed: 503,
// nothing forwarded, the session cookie kept, and the session usable
// again when the store is back.
func TestStoreUnavailable(t *testing.T) {
	for name, storeErr := range map[string]error{
		"ErrStoreUnavailable": bff.ErrStoreUnavailable,
		"network error":       errors.New("dial tcp 10.0.0.1:6379: i/o timeout"),
	} {
		t.Run(name, func(t *testing.T) {
			mem, err := bff.NewMemoryStore(0)
			if err != nil {
				t.Fatal(err)
			}
			st := &failingStore{MemoryStore: mem, err: storeErr}
			e := newEnv(t, func(c *bff.Config) {
				c.Store = st
				c.SessionKey = make([]byte, bff.SessionKeySize)
			})
			b := newBrowser(t)
			b.login(e, "")
			if resp, body := b.api(e); resp.StatusCode != 200 {
				t.Fatalf("api: %d %s", resp.StatusCode, body)
			}

			st.failGet.Store(true)
			n := e.upstream.count()
			for _, hdr := range [][]string{nil, {"Origin: " + e.app.URL}} {
				resp, body := b.api(e, hdr...)
				if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "temporarily_unavailable") {
					t.Errorf("api with the store down: %d %s", resp.StatusCode, body)
				}
				for _, c := range resp.Cookies() {
					if c.Name == bff.SessionCookie {
						t.Errorf("the 503 touched the session cookie: %s", c)
					}
				}
			}
			if resp, body := b.do("GET", e.app.URL+"/bff/user", "X-CSRF: 1"); resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("/bff/user with the store down: %d %s", resp.StatusCode, body)
			}
			if e.upstream.count() != n {
				t.Error("a request was forwarded while the store was down")
			}
			// Without a session, the store is not asked: a request with
			// its own token still passes.
			tok := testkit.Mint(t, e.is, "orders:read")
			if resp, _ := b.do("GET", e.app.URL+"/orders", "Authorization: Bearer "+tok); resp.StatusCode != 200 {
				t.Errorf("a bearer request with the store down: %d", resp.StatusCode)
			}
			st.failGet.Store(false)
			if _, ok := b.Cookies[bff.SessionCookie]; !ok {
				t.Fatal("the session cookie was dropped")
			}
			if resp, body := b.api(e); resp.StatusCode != 200 {
				t.Fatalf("api once the store is back: %d %s", resp.StatusCode, body)
			}

			// A refresh that cannot take the session's lock: 503 once
			// expired, never a forwarded stale token.
			e.expireSoon(t)
			b2 := newBrowser(t)
			b2.login(e, "")
			st.failLock.Store(true)
			e.advance(11 * time.Second)
			n = e.upstream.count()
			if resp, body := b2.api(e); resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("api with an expired token and the store's lock down: %d %s", resp.StatusCode, body)
			}
			if e.upstream.count() != n {
				t.Error("a request was forwarded with an expired token")
			}
			st.failLock.Store(false)

			// The callback cannot mark its login used: 503, no
			// session.
			st.failLock.Store(true)
			b3 := newBrowser(t)
			cb := b3.startLogin(e, "")
			resp, body := b3.do("GET", cb)
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("callback with the store down: %d %s", resp.StatusCode, body)
			}
			if _, ok := b3.Cookies[bff.SessionCookie]; ok {
				t.Error("the callback made a session with the store down")
			}
		})
	}
}

// TestStoreUnavailableUserNoSlide: /bff/user?slide=false with the store
// down must not end the session in the browser either.
func TestStoreUnavailableUserNoSlide(t *testing.T) {
	mem, _ := bff.NewMemoryStore(0)
	st := &failingStore{MemoryStore: mem, err: bff.ErrStoreUnavailable}
	e := newEnv(t, func(c *bff.Config) {
		c.Store = st
		c.SessionKey = make([]byte, bff.SessionKeySize)
	})
	b := newBrowser(t)
	b.login(e, "")
	st.failGet.Store(true)
	resp, body := b.do("GET", e.app.URL+"/bff/user?slide=false", "X-CSRF: 1")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/bff/user?slide=false with the store down: %d %s", resp.StatusCode, body)
	}
	if _, ok := b.Cookies[bff.SessionCookie]; !ok {
		t.Error("the session cookie was expired because the store was down")
	}
}

// TestStoreUnavailableLogout: a logout the store cannot carry out is 503
// and says so, with the cookie kept, rather than a success that leaves
// the session and its refresh token alive.
func TestStoreUnavailableLogout(t *testing.T) {
	mem, _ := bff.NewMemoryStore(0)
	st := &failingStore{MemoryStore: mem, err: bff.ErrStoreUnavailable}
	e := newEnv(t, func(c *bff.Config) { c.Store = st; c.SessionKey = make([]byte, bff.SessionKeySize) })
	b := newBrowser(t)
	b.login(e, "")
	st.failGet.Store(true)
	resp, body := b.do("POST", e.app.URL+"/bff/logout", "X-CSRF: 1")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("logout with the store down: %d %s", resp.StatusCode, body)
	}
	if _, ok := b.Cookies[bff.SessionCookie]; !ok {
		t.Error("the cookie was expired although the session was not ended")
	}
	if _, _, rev := e.is.Grants(); rev != 0 {
		t.Errorf("revocations %d", rev)
	}
	st.failGet.Store(false)
	if resp, _ := b.do("POST", e.app.URL+"/bff/logout", "X-CSRF: 1"); resp.StatusCode != http.StatusOK {
		t.Errorf("logout once the store is back: %d", resp.StatusCode)
	}
}
