package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tokenguard/tokenguard/internal/devissuer"
)

// publicYAML is a gateway with two guarded routes and two public ones.
func publicYAML(is *devissuer.Issuer, upstreamURL, extra string) string {
	return fmt.Sprintf(`listen: 127.0.0.1:0
metrics_listen: 127.0.0.1:0
upstream: %s
audience: %s
issuers:
  - issuer: %s
    jwks_uri: %s/jwks
routes:
  - pattern: "GET /orders/"
    scopes: [orders:read]
  - pattern: "POST /orders/"
    scopes: [orders:write]
  - pattern: "GET /status"
    public: true
  - pattern: "/public/"
    public: true
startup_wait: 5s
log_level: debug
%s`, upstreamURL, testAudience, is.URL(), is.URL(), extra)
}

// TestGatewayPublicRoute: a public route needs no token, and forwards no
// credential and no identity, whatever the client sends; hygiene still
// applies; other routes are still guarded.
func TestGatewayPublicRoute(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, publicYAML(is, up.URL, ""))

	t.Run("no token needed", func(t *testing.T) {
		resp, body := do(t, "GET", g.proxy+"/status", "", nil)
		if resp.StatusCode != http.StatusOK || body != "upstream saw GET /status" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		waitFor(t, func() bool { return strings.Contains(g.stderr.String(), "path=/status status=200 decision=public") }, "decision=public in the access log")
	})

	t.Run("no credential and no identity reach the upstream", func(t *testing.T) {
		forged := mint(t, is, "admin")
		resp, body := do(t, "POST", g.proxy+"/public/form", "", http.Header{
			"Authorization":        {"Bearer " + forged},
			"Dpop":                 {"eyJhbGciOiJub25lIn0.e30."},
			"X-Tokenguard-Subject": {"admin"},
			"x-tokenguard-scope":   {"admin"},
			"X_Tokenguard_Subject": {"admin"},
			"Cookie":               {"__Host-tokenguard-session=s3cret; theme=dark; __Host-tokenguard-login-abc=l"},
		})
		if resp.StatusCode != http.StatusOK || body != "upstream saw POST /public/form" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		r := up.last(t)
		if h := tokenguardHeaders(r.Header); len(h) != 0 {
			t.Errorf("identity headers reached the upstream: %v", h)
		}
		for k := range r.Header {
			if strings.EqualFold(k, "Authorization") || strings.EqualFold(k, "DPoP") || strings.Contains(strings.ToLower(k), "tokenguard") {
				t.Errorf("%s reached the upstream", k)
			}
		}
		if got := r.Header.Values("Cookie"); len(got) != 1 || got[0] != "theme=dark" {
			t.Errorf("Cookie %q, want only theme=dark", got)
		}
	})

	t.Run("hygiene still applies", func(t *testing.T) {
		before := up.count()
		resp, body := rawRequest(t, g.gw.Addr(), "GET /public/..%2Forders/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "invalid_path") {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		if up.count() != before {
			t.Error("forwarded")
		}
	})

	t.Run("the other routes are still guarded", func(t *testing.T) {
		before := up.count()
		if resp, _ := do(t, "GET", g.proxy+"/orders/1", "", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("got %d, want 401", resp.StatusCode)
		}
		if resp, _ := do(t, "GET", g.proxy+"/statusx", "", nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("got %d, want 404", resp.StatusCode)
		}
		if up.count() != before {
			t.Error("forwarded")
		}
	})

	t.Run("a token on a public route still reaches nothing", func(t *testing.T) {
		resp, _ := do(t, "GET", g.proxy+"/status", mint(t, is, "orders:read"), nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("got %d", resp.StatusCode)
		}
		if r := up.last(t); r.Header.Get("Authorization") != "" || len(tokenguardHeaders(r.Header)) != 0 {
			t.Errorf("the upstream saw a credential or an identity: %v", r.Header)
		}
	})
}
