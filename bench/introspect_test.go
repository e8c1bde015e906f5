package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/middleware"
)

// introspectFixture is a guard whose issuer introspects opaque tokens at a
// local httptest server.
func introspectFixture(tb testing.TB) (http.Handler, *httptest.Server, func()) {
	tb.Helper()
	key, err := devissuer.GenerateKey("ES256", "k1")
	if err != nil {
		tb.Fatal(err)
	}
	var iss *devissuer.Issuer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { iss.Handler().ServeHTTP(w, r) }))
	iss = devissuer.New(srv.URL, audience, key)
	exp := time.Now().Add(24 * time.Hour).Unix()
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"active":true,"scope":"orders:read","client_id":"app","sub":"alice","exp":%d,"token":%q}`, exp, r.PostFormValue("token"))
	}))
	guard, err := middleware.New(context.Background(), middleware.Config{
		Audience: audience,
		Issuers: []middleware.Issuer{{Issuer: iss.URL(), JWKSURI: srv.URL + "/jwks",
			IntrospectionEndpoint: as.URL, ClientID: "rs", ClientSecret: "secret"}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	h := guard.Require("orders:read")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	return h, as, func() { guard.Close(); srv.Close(); as.Close() }
}

// BenchmarkIntrospected: an opaque token with a warm introspection cache,
// next to the same no-op handler without any guard, and a cache miss (a
// new token each time) against a local httptest server.
func BenchmarkIntrospected(b *testing.B) {
	noop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	b.Run("baseline", func(b *testing.B) {
		req, w := request("opaque-token-0123456789"), &discard{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			noop.ServeHTTP(w, req)
		}
	})
	b.Run("warm", func(b *testing.B) {
		h, _, done := introspectFixture(b)
		defer done()
		req, w := request("opaque-token-0123456789"), &discard{h: http.Header{}}
		h.ServeHTTP(w, req)
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(w, req)
		}
	})
	b.Run("miss", func(b *testing.B) {
		h, _, done := introspectFixture(b)
		defer done()
		w := &discard{h: http.Header{}}
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			i++
			h.ServeHTTP(w, request(fmt.Sprintf("opaque-token-%d", i)))
		}
	})
}
