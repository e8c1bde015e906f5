package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// Regression tests for ways past the guard a review of the ingress
// features found (each failed before its fix).

// TestForwardAuthNoPreflightPass: with forward_auth and cors, a described
// preflight is decided like any request: a 204 would tell the ingress to
// forward an unauthenticated OPTIONS anyone can send.
func TestForwardAuthNoPreflightPass(t *testing.T) {
	is := startIssuer(t)
	g := runGateway(t, forwardAuthYAML(is, "", "127.0.0.1", "cors:\n  allowed_origins: [https://app.example.com]\n"))
	h := http.Header{"Origin": {"https://app.example.com"}, "Access-Control-Request-Method": {"DELETE"}}
	resp, body := askNginx(t, g, "OPTIONS", "/orders/1", h)
	if resp.StatusCode < 400 {
		t.Errorf("a described preflight without a token got %d %q: the ingress would forward it", resp.StatusCode, body)
	}
}

// TestForwardAuthRefusesOverrides: a described request carrying a method
// or URL override is refused; the ingress would pass the header on and the
// API could act on another method than the one decided.
func TestForwardAuthRefusesOverrides(t *testing.T) {
	is := startIssuer(t)
	g := runGateway(t, forwardAuthYAML(is, "", "127.0.0.1", ""))
	write := http.Header{"Authorization": {"Bearer " + mint(t, is, "orders:write")}}
	if resp, body := askNginx(t, g, "POST", "/orders/1", write); resp.StatusCode != 200 {
		t.Fatalf("the plain POST: %d %q", resp.StatusCode, body)
	}
	for _, k := range []string{"X-HTTP-Method-Override", "X-Method-Override", "X-Original-URL", "X-Rewrite-URL", "X-Forwarded-Prefix"} {
		h := write.Clone()
		h.Set(k, "DELETE")
		if resp, _ := askNginx(t, g, "POST", "/orders/1", h); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("with %s: %d, want 400", k, resp.StatusCode)
		}
	}
}

// TestGatewayLetterCase: a path that selects a guarded route only in
// lower case is refused; the host is matched in lower case without a
// trailing dot, so a host route is not skipped by spelling it otherwise.
func TestGatewayLetterCase(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	y := fmt.Sprintf(`listen: 127.0.0.1:0
metrics_listen: 127.0.0.1:0
upstream: %s
audience: %s
issuers:
  - issuer: %s
    jwks_uri: %s/jwks
routes:
  - pattern: "api.example.com/"
    scopes: [admin]
  - pattern: "GET /admin/"
    scopes: [admin]
  - pattern: "GET /Reports/"
    scopes: [orders:read]
  - pattern: "GET /"
    public: true
startup_wait: 5s
`, up.URL, testAudience, is.URL(), is.URL())
	g := runGateway(t, y)
	read := mint(t, is, "orders:read")
	for _, tt := range []struct {
		name, host, path, token string
		want                    int
	}{
		{"public", "other.example", "/anything", "", 200},
		{"guarded path", "other.example", "/admin/users", "", 401},
		{"guarded path, other case", "other.example", "/Admin/users", "", 400},
		{"guarded path, other case, percent-encoded", "other.example", "/ADMIN/x%20y", "", 400},
		{"a route written in upper case", "other.example", "/Reports/1", read, 200},
		{"guarded host", "api.example.com", "/x", "", 401},
		{"guarded host, upper case", "API.example.com", "/x", "", 401},
		{"guarded host, trailing dot", "api.example.com.", "/x", "", 401},
		{"guarded host, trailing dot and port", "Api.Example.Com.:443", "/x", "", 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := up.count()
			req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", tt.path, tt.host)
			if tt.token != "" {
				req += "Authorization: Bearer " + tt.token + "\r\n"
			}
			resp, body := rawRequest(t, g.gw.Addr(), req+"\r\n")
			if resp.StatusCode != tt.want {
				t.Errorf("%d %q, want %d", resp.StatusCode, body, tt.want)
			}
			if tt.want >= 400 && up.count() != before {
				t.Error("the upstream saw a refused request")
			}
		})
	}
}

// TestGatewayQueryTokenEverywhere: a token in the query is refused on a
// public route and beside a valid Authorization header: an upstream that
// reads the query would act on a token nobody checked.
func TestGatewayQueryTokenEverywhere(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	y := strings.Replace(gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, ""), "routes:\n", "routes:\n  - pattern: \"GET /status\"\n    public: true\n", 1)
	g := runGateway(t, y)
	read := mint(t, is, "orders:read")
	if resp, _ := do(t, "GET", g.proxy+"/status?access_token=forged", "", nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("public route with a query token: %d, want 400", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", g.proxy+"/orders/1?access_token=forged", read, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a valid header and a forged query token: %d, want 400", resp.StatusCode)
	}
	if up.count() != 0 {
		t.Error("the upstream saw a request with a query token")
	}
}

// TestGatewayPublicQueryTokenLogged: the refusal of a query token on a
// public route is logged as a reject with its reason, not as public.
func TestGatewayPublicQueryTokenLogged(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	y := strings.Replace(gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, ""), "routes:\n", "routes:\n  - pattern: \"GET /status\"\n    public: true\n", 1)
	g := runGateway(t, y)
	do(t, "GET", g.proxy+"/status?access_token=forged", "", nil)
	waitFor(t, func() bool { return strings.Contains(g.stderr.String(), "reason=query_token") }, "the access line")
	if line := grepLines(g.stderr.String(), "reason=query_token"); !strings.Contains(line, "decision=reject") {
		t.Errorf("access line %q, want decision=reject", line)
	}
}
