package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/middleware"
)

// opaqueToken is not a compact JWS, so the guard introspects it.
const opaqueToken = "opaque-token-0123456789"

// newIntrospectingGuard is a guard whose issuer introspects opaque tokens
// at a local httptest server that calls every token active.
func newIntrospectingGuard(tb testing.TB) http.Handler {
	tb.Helper()
	env := newEnv(tb, "ES256")
	exp := time.Now().Add(24 * time.Hour).Unix()
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"active":true,"scope":%q,"client_id":"app","sub":"alice","exp":%d}`, scope, exp)
	}))
	tb.Cleanup(as.Close)
	guard, err := middleware.New(context.Background(), middleware.Config{
		Audience: audience,
		Issuers: []middleware.Issuer{{Issuer: env.iss.URL(), JWKSURI: env.jwksURL,
			IntrospectionEndpoint: as.URL, ClientID: "rs", ClientSecret: "secret",
			// The miss benchmark sends a new token each iteration, as fast
			// as the loopback endpoint answers: far above the default
			// limit of 200 a second, which protects a real AS.
			IntrospectionRateLimit: 1e9}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { guard.Close() })
	return guard.Require(scope)(noop)
}

// introspectWarmCase measures an opaque token whose introspection answer
// is cached (the warm-up request fills the cache).
func introspectWarmCase(parallel bool) func(*testing.B) {
	return func(b *testing.B) {
		h := newIntrospectingGuard(b)
		if parallel {
			benchServeParallel(b, h, opaqueToken)
		} else {
			benchServe(b, h, opaqueToken)
		}
	}
}

// BenchmarkIntrospected: an opaque token with a warm introspection cache,
// next to the same no-op handler without any guard (the baseline), and a
// cache miss (a new token each time) against a local httptest server.
func BenchmarkIntrospected(b *testing.B) {
	b.Run("baseline", func(b *testing.B) { benchServe(b, noop, opaqueToken) })
	b.Run("baseline/parallel", func(b *testing.B) { benchServeParallel(b, noop, opaqueToken) })
	b.Run("warm", introspectWarmCase(false))
	b.Run("warm/parallel", introspectWarmCase(true))
	b.Run("miss", func(b *testing.B) {
		h := newIntrospectingGuard(b)
		w := newDiscard()
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			i++
			h.ServeHTTP(w, request(fmt.Sprintf("opaque-token-%d", i)))
		}
	})
}
