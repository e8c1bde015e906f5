package discovery_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/tokenguard/tokenguard/internal/discovery"
)

// An issuer with a path: its RFC 8414 metadata lives at
// /.well-known/oauth-authorization-server/tenant1.
func ExampleFetch() {
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux) // on 127.0.0.1, where plain http is allowed
	defer srv.Close()
	issuer := srv.URL + "/tenant1"
	mux.HandleFunc("GET /.well-known/oauth-authorization-server/tenant1", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, issuer, issuer+"/jwks")
	})

	md, err := discovery.Fetch(context.Background(), discovery.Config{Issuer: issuer})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.TrimPrefix(md.JWKSURI, srv.URL))
	fmt.Println(strings.TrimPrefix(md.Source, srv.URL))
	// Output:
	// /tenant1/jwks
	// /.well-known/oauth-authorization-server/tenant1
}
