package middleware

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestDiscoveredJWKS: an issuer without JWKSURI has its jwks_uri found in
// its RFC 8414 metadata, whose issuer must match exactly; until that works
// its tokens get 503.
func TestDiscoveredJWKS(t *testing.T) {
	t.Run("found", func(t *testing.T) {
		is := newTestIssuer(t, "ES256", "k1")
		g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{{Issuer: is.URL()}}})
		if !g.Ready() {
			t.Fatal("not ready after discovery")
		}
		if rec := do(g.Require()(okHandler), "Bearer "+is.mint(t, "", nil)); rec.Code != 200 {
			t.Fatalf("token of a discovered issuer: %d %s", rec.Code, rec.Body)
		}
	})

	t.Run("issuer mismatch", func(t *testing.T) {
		is := newTestIssuer(t, "ES256", "k1")
		// A metadata document that names another issuer (an attacker's
		// mix-up) but points at real keys.
		var hits atomic.Int64
		meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": is.URL(), "jwks_uri": is.jwksURI()})
		}))
		t.Cleanup(meta.Close)
		g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{{Issuer: meta.URL}}, StartupWait: 300 * time.Millisecond})
		if g.Ready() {
			t.Fatal("ready with a metadata document for another issuer")
		}
		tok := is.mint(t, "", map[string]any{"iss": meta.URL})
		if rec := do(g.Require()(okHandler), "Bearer "+tok); rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("token while discovery fails: %d, want 503", rec.Code)
		}
		if hits.Load() == 0 {
			t.Fatal("metadata never fetched")
		}
	})

	t.Run("down at start, then up", func(t *testing.T) {
		is := newTestIssuer(t, "ES256", "k1")
		var calls atomic.Int64
		var srv *httptest.Server
		srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/.well-known/oauth-authorization-server" && calls.Add(1) <= 2 {
				http.Error(w, "starting", http.StatusServiceUnavailable)
				return
			}
			if r.URL.Path == "/.well-known/oauth-authorization-server" {
				_ = json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL, "jwks_uri": is.jwksURI()})
				return
			}
			http.NotFound(w, r)
		}))
		t.Cleanup(srv.Close)
		g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{{Issuer: srv.URL}}, StartupWait: -1})
		tok := is.mint(t, "", map[string]any{"iss": srv.URL})
		h := g.Require()(okHandler)
		deadline := time.Now().Add(10 * time.Second)
		for !g.Ready() {
			if time.Now().After(deadline) {
				t.Fatal("never recovered")
			}
			if rec := do(h, "Bearer "+tok); rec.Code != http.StatusServiceUnavailable && !g.Ready() {
				t.Fatalf("before discovery: %d, want 503", rec.Code)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if rec := do(h, "Bearer "+tok); rec.Code != 200 {
			t.Fatalf("after discovery: %d %s", rec.Code, rec.Body)
		}
	})
}

// TestDiscoveryRefresh: a changed jwks_uri in the issuer's metadata is
// followed without a restart, once the new keys have loaded; a failed
// refetch keeps the last good metadata.
func TestDiscoveryRefresh(t *testing.T) {
	oldKeys := newTestIssuer(t, "ES256", "old")
	newKeys := newTestIssuer(t, "ES256", "new")
	var jwksURI atomic.Value
	jwksURI.Store(oldKeys.jwksURI())
	var failing atomic.Bool
	var meta *httptest.Server
	meta = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": meta.URL, "jwks_uri": jwksURI.Load().(string)})
	}))
	t.Cleanup(meta.Close)
	cfg := Config{Audience: testAudience, Issuers: []Issuer{{Issuer: meta.URL}}}
	cfg.discoveryRefresh = 50 * time.Millisecond
	g := newGuard(t, cfg)
	h := g.Require()(okHandler)
	oldTok := oldKeys.mint(t, "", map[string]any{"iss": meta.URL})
	newTok := newKeys.mint(t, "", map[string]any{"iss": meta.URL})
	if rec := do(h, "Bearer "+oldTok); rec.Code != 200 {
		t.Fatalf("old key before the change: %d", rec.Code)
	}
	// A failing refetch keeps the keys.
	failing.Store(true)
	time.Sleep(200 * time.Millisecond)
	if rec := do(h, "Bearer "+oldTok); rec.Code != 200 {
		t.Fatalf("old key while metadata refetches fail: %d", rec.Code)
	}
	failing.Store(false)
	jwksURI.Store(newKeys.jwksURI())
	deadline := time.Now().Add(10 * time.Second)
	for do(h, "Bearer "+newTok).Code != 200 {
		if time.Now().After(deadline) {
			t.Fatal("new jwks_uri never followed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rec := do(h, "Bearer "+oldTok); rec.Code != 401 {
		t.Fatalf("old key after the switch: %d, want 401", rec.Code)
	}
}
