package middleware

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Context keys for TestJWKSRefreshContext: requestKey stands for any value
// of a request's context, chosenKey for the one JWKSRefreshContext picks.
type (
	requestKey struct{}
	chosenKey  struct{}
)

// TestJWKSRefreshContext: Config.JWKSRefreshContext reaches the guard's
// key sets: the JWKS refresh a token's unknown kid triggers carries what
// the hook picks from that request's context and no other value of it;
// without the hook, none.
func TestJWKSRefreshContext(t *testing.T) {
	for _, tt := range []struct {
		name                string
		hook                func(context.Context) context.Context
		wantValue, wantPick any // in the refresh's context, under requestKey and chosenKey
	}{
		{name: "no hook"},
		{
			name: "hook",
			hook: func(caller context.Context) context.Context {
				return context.WithValue(context.Background(), chosenKey{}, fmt.Sprint("from ", caller.Value(requestKey{})))
			},
			wantPick: "from request-1",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			is := newTestIssuer(t, "ES256", "k1")
			type seen struct{ value, pick any }
			var mu sync.Mutex
			var forced []seen
			g := newGuard(t, Config{
				Audience: testAudience,
				Issuers:  []Issuer{is.config()},
				WrapTransport: func(purpose string, rt http.RoundTripper) http.RoundTripper {
					return roundTripFunc(func(r *http.Request) (*http.Response, error) {
						if purpose == "jwks" && r.Header.Get("Cache-Control") == "no-cache" {
							mu.Lock()
							forced = append(forced, seen{r.Context().Value(requestKey{}), r.Context().Value(chosenKey{})})
							mu.Unlock()
						}
						return rt.RoundTrip(r)
					})
				},
				JWKSRefreshContext: tt.hook,
			})
			k2 := mustKey(t, "ES256", "k2")
			is.Publish(is.SigningKey(), k2)
			is.SetSigningKey(k2)

			req := httptest.NewRequest(http.MethodGet, "http://api.example.com/orders/1", nil)
			req = req.WithContext(context.WithValue(req.Context(), requestKey{}, "request-1"))
			req.Header.Set("Authorization", "Bearer "+is.mint(t, "a", nil))
			rec := httptest.NewRecorder()
			g.Require("a")(okHandler).ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("a token signed with the new key: %d %s", rec.Code, rec.Body)
			}
			mu.Lock()
			defer mu.Unlock()
			if want := (seen{tt.wantValue, tt.wantPick}); len(forced) != 1 || forced[0] != want {
				t.Errorf("forced JWKS fetches saw %+v, want one with %+v", forced, want)
			}
		})
	}
}
