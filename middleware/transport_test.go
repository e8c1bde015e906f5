package middleware

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"
)

// transportSpy is a Config.WrapTransport that records what it was asked
// to wrap and every request that went through the RoundTrippers it
// returned.
type transportSpy struct {
	mu       sync.Mutex // guards the fields below
	wrapped  []string   // purposes WrapTransport was called with
	notTrans []string   // purposes whose rt was not an *http.Transport
	requests []string   // "purpose METHOD host/path"
}

func (s *transportSpy) wrap(purpose string, rt http.RoundTripper) http.RoundTripper {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wrapped = append(s.wrapped, purpose)
	if _, ok := rt.(*http.Transport); !ok {
		s.notTrans = append(s.notTrans, purpose)
	}
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		s.mu.Lock()
		s.requests = append(s.requests, purpose+" "+req.Method+" "+req.URL.Host+req.URL.Path)
		s.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

func (s *transportSpy) seen() (wrapped, notTrans, requests []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.wrapped), slices.Clone(s.notTrans), slices.Clone(s.requests)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// TestWrapTransport: Config.WrapTransport wraps the Transport of every
// client the guard builds (discovery, jwks, introspection), each with its
// purpose, and the guard's requests go through what it returns; it is not
// applied to a client passed in HTTPClient.
func TestWrapTransport(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	as := newFakeAS(t)
	as.set("opaque-1", map[string]any{"active": true, "scope": "a"})
	var meta *httptest.Server
	meta = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer": meta.URL, "jwks_uri": is.jwksURI(), "introspection_endpoint": as.srv.URL + "/introspect",
		})
	}))
	t.Cleanup(meta.Close)
	host := func(s string) string {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u.Host
	}

	for _, tt := range []struct {
		name       string
		httpClient *http.Client
		want       []string // purposes wrapped, sorted, duplicates removed
	}{
		{"default clients", nil, []string{"discovery", "introspection", "jwks"}},
		{"HTTPClient set", &http.Client{Timeout: 5 * time.Second}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spy := &transportSpy{}
			g := newGuard(t, Config{
				Audience:      testAudience,
				Issuers:       []Issuer{{Issuer: meta.URL, ClientID: "rs", ClientSecret: "s3cret"}},
				HTTPClient:    tt.httpClient,
				WrapTransport: spy.wrap,
			})
			h := g.Require("a")(okHandler)
			jwt := is.mint(t, "a", map[string]any{"iss": meta.URL})
			deadline := time.Now().Add(5 * time.Second)
			for _, auth := range []string{"Bearer " + jwt, "Bearer opaque-1"} {
				rec := do(h, auth)
				for rec.Code != http.StatusOK && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
					rec = do(h, auth)
				}
				if rec.Code != http.StatusOK {
					t.Fatalf("%.12s…: %d %s", auth, rec.Code, rec.Body)
				}
			}

			wrapped, notTrans, requests := spy.seen()
			got := slices.Compact(slices.Sorted(slices.Values(wrapped)))
			if !slices.Equal(got, tt.want) {
				t.Errorf("WrapTransport called for %q, want %q", wrapped, tt.want)
			}
			if len(notTrans) > 0 {
				t.Errorf("WrapTransport got a RoundTripper other than the default client's *http.Transport for %q", notTrans)
			}
			var want []string
			if tt.httpClient == nil {
				want = []string{
					"discovery GET " + host(meta.URL) + "/.well-known/oauth-authorization-server",
					"jwks GET " + host(is.jwksURI()) + "/jwks",
					"introspection POST " + host(as.srv.URL) + "/introspect",
				}
			}
			for _, w := range want {
				if !slices.Contains(requests, w) {
					t.Errorf("no request %q went through the wrapper; saw %q", w, requests)
				}
			}
			if tt.httpClient != nil && len(requests) > 0 {
				t.Errorf("requests went through WrapTransport although HTTPClient is set: %q", requests)
			}
		})
	}
}
