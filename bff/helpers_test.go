package bff_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/testkit"
	"github.com/tokenguard/tokenguard/middleware"
)

const (
	clientID     = "orders-spa"
	clientSecret = "s3cret:with%odd chars"
)

// env is a token handler in front of a guarded API, with its issuer.
type env struct {
	is       *devissuer.Issuer
	h        *bff.Handler
	app      *httptest.Server // /bff/* to h, everything else Authenticate(guard(upstream))
	reg      *prometheus.Registry
	upstream *recorder
	skew     atomic.Int64 // nanoseconds the handler's clock is ahead
	login    devissuer.LoginConfig
}

// enableLogin changes the issuer's login configuration (as newEnv set
// it up); earlier grants are forgotten.
func (e *env) enableLogin(change func(*devissuer.LoginConfig)) {
	cfg := e.login
	cfg.Clients = append([]devissuer.Client(nil), cfg.Clients...)
	change(&cfg)
	e.is.EnableLogin(cfg)
}

// advance moves the handler's clock (not the issuer's, not the guard's).
func (e *env) advance(d time.Duration) { e.skew.Add(int64(d)) }

// expireSoon makes the next login's access token short (10 s, so its
// refresh margin is 5 s) and the refreshed ones long: after a login,
// advance(6 * time.Second) puts the token within its margin.
func (e *env) expireSoon(t testing.TB) {
	t.Helper()
	e.is.SetAccessTokenTTL(10 * time.Second)
}

// recorder is the upstream: it remembers what it was sent.
type recorder struct {
	mu      sync.Mutex
	reqs    []*http.Request
	discard bool // benchmarks: remember nothing
}

func (u *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	if !u.discard {
		u.reqs = append(u.reqs, r.Clone(context.Background()))
	}
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	p, _ := middleware.PrincipalFrom(r.Context())
	_ = json.NewEncoder(w).Encode(map[string]any{"subject": p.Subject, "session": bff.FromSession(r.Context())})
}

func (u *recorder) last(t testing.TB) *http.Request {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("the upstream got no request")
	}
	return u.reqs[len(u.reqs)-1]
}

func (u *recorder) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// newEnv starts an issuer with login, a guard and a token handler;
// change edits the handler's Config before New.
func newEnv(t testing.TB, change func(*bff.Config)) *env {
	t.Helper()
	return newEnvGuard(t, change, nil)
}

// newEnvGuard is newEnv whose guard's Config guardChange edits.
func newEnvGuard(t testing.TB, change func(*bff.Config), guardChange func(*middleware.Config)) *env {
	t.Helper()
	e := &env{is: testkit.StartIssuer(t), reg: prometheus.NewRegistry(), upstream: &recorder{}}
	app := httptest.NewUnstartedServer(nil)
	public := "http://" + app.Listener.Addr().String()
	e.login = devissuer.LoginConfig{
		Clients: []devissuer.Client{{
			ID: clientID, Secret: clientSecret,
			RedirectURIs:           []string{public + "/bff/callback"},
			PostLogoutRedirectURIs: []string{public + "/"},
		}},
		Subject: "alice",
		Claims:  map[string]any{"name": "Alice", "email": "alice@example.com"},
	}
	e.is.EnableLogin(e.login)
	cfg := bff.Config{
		Issuer: e.is.URL(), ClientID: clientID, ClientSecret: clientSecret,
		Scopes:    []string{"openid", "offline_access", "orders:read"},
		Resource:  testkit.Audience,
		PublicURL: public, PostLogoutRedirectURL: public + "/",
		Registerer: e.reg,
		Now:        func() time.Time { return time.Now().Add(time.Duration(e.skew.Load())) },
	}
	if change != nil {
		change(&cfg)
	}
	h, err := bff.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	e.h = h
	gc := middleware.Config{
		Audience: testkit.Audience,
		Issuers:  []middleware.Issuer{{Issuer: e.is.URL()}},
	}
	if guardChange != nil {
		guardChange(&gc)
	}
	g, err := middleware.New(t.Context(), gc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	api := h.Authenticate(g.Require("orders:read")(e.upstream))
	app.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.Owns(r) {
			h.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
	app.Start()
	t.Cleanup(app.Close)
	e.app = app
	return e
}

// browser is testkit.Browser with the token handler's shortcuts.
type browser struct{ *testkit.Browser }

func newBrowser(t *testing.T) *browser { return &browser{testkit.NewBrowser(t)} }

func (b *browser) startLogin(e *env, query string) string { return b.StartLogin(e.app.URL, query) }
func (b *browser) login(e *env, query string) string      { return b.Login(e.app.URL, query) }

func (b *browser) do(method, rawURL string, hdr ...string) (*http.Response, string) {
	return b.Do(method, rawURL, hdr...)
}

// api calls the guarded API as the SPA does.
func (b *browser) api(e *env, hdr ...string) (*http.Response, string) {
	return b.do("GET", e.app.URL+"/orders", append([]string{"X-CSRF: 1"}, hdr...)...)
}

func counter(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
			if result == "" && m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// query returns a URL's query.
func query(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// eventually waits (bounded) until cond holds.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testkit.Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
