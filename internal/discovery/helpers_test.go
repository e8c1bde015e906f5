package discovery

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// testAS is an httptest authorization server on 127.0.0.1 that serves
// documents by path and counts requests per path.
type testAS struct {
	srv *httptest.Server

	mu     sync.Mutex                  // guards the fields below
	routes map[string]http.HandlerFunc // path → handler; others get 404
	hits   map[string]int              // path → requests seen
}

func newTestAS(tb testing.TB) *testAS {
	tb.Helper()
	as := &testAS{routes: map[string]http.HandlerFunc{}, hits: map[string]int{}}
	as.srv = httptest.NewServer(http.HandlerFunc(as.serve))
	tb.Cleanup(as.srv.Close)
	return as
}

func (as *testAS) serve(w http.ResponseWriter, r *http.Request) {
	as.mu.Lock()
	as.hits[r.URL.Path]++
	h := as.routes[r.URL.Path]
	as.mu.Unlock()
	if h == nil {
		http.NotFound(w, r)
		return
	}
	h(w, r)
}

// handle sets the handler for path.
func (as *testAS) handle(path string, h http.HandlerFunc) {
	as.mu.Lock()
	defer as.mu.Unlock()
	as.routes[path] = h
}

// serveDoc makes path answer 200 with body.
func (as *testAS) serveDoc(path string, body []byte) {
	as.handle(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
}

func (as *testAS) hitCount(path string) int {
	as.mu.Lock()
	defer as.mu.Unlock()
	return as.hits[path]
}

func (as *testAS) totalHits() int {
	as.mu.Lock()
	defer as.mu.Unlock()
	n := 0
	for _, v := range as.hits {
		n += v
	}
	return n
}

// URL returns the server's base URL (http://127.0.0.1:port).
func (as *testAS) URL() string { return as.srv.URL }

// metaDoc renders a metadata document from members.
func metaDoc(tb testing.TB, members map[string]any) []byte {
	tb.Helper()
	b, err := json.Marshal(members)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// goodDoc is a typical document for issuer.
func goodDoc(tb testing.TB, issuer string) []byte {
	return metaDoc(tb, map[string]any{
		"issuer":                 issuer,
		"jwks_uri":               issuer + "/jwks",
		"introspection_endpoint": issuer + "/introspect",
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic", "private_key_jwt"},
		"token_endpoint":           issuer + "/token",
		"response_types_supported": []string{"code"},
	})
}

const (
	pathOAuth = "/.well-known/oauth-authorization-server"
	pathOIDC  = "/.well-known/openid-configuration"
)
