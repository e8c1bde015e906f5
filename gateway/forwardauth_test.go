package gateway

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tokenguard/tokenguard/internal/devissuer"
)

// forwardAuthYAML is a gateway in forward-auth mode: no upstream unless
// upstreamURL is set, the routes of publicYAML, DPoP allowed, subrequests
// believed from trusted.
func forwardAuthYAML(is *devissuer.Issuer, upstreamURL, trusted, extra string) string {
	up := ""
	if upstreamURL != "" {
		up = "upstream: " + upstreamURL + "\n"
	}
	return fmt.Sprintf(`listen: 127.0.0.1:0
metrics_listen: 127.0.0.1:0
%saudience: %s
issuers:
  - issuer: %s
    jwks_uri: %s/jwks
dpop:
  mode: allowed
routes:
  - pattern: "GET /orders/"
    scopes: [orders:read]
  - pattern: "POST /orders/"
    scopes: [orders:write]
  - pattern: "GET /status"
    public: true
forward_auth:
trusted_proxies: [%s]
startup_wait: 5s
log_format: json
%s`, up, testAudience, is.URL(), is.URL(), trusted, extra)
}

// askNginx sends the auth subrequest nginx's auth_request sends (see the
// README) for method and uri, with the client's headers h.
func askNginx(t testing.TB, g *running, method, uri string, h http.Header) (*http.Response, string) {
	t.Helper()
	sub := h.Clone()
	if sub == nil {
		sub = http.Header{}
	}
	sub.Set("X-Original-Method", method)
	sub.Set("X-Original-URI", uri)
	if sub.Get("X-Forwarded-Host") == "" {
		sub.Set("X-Forwarded-Host", strings.TrimPrefix(g.proxy, "http://")) // nginx's $host: the client called the gateway's address
	}
	return do(t, "GET", g.proxy+"/tokenguard/auth", "", sub)
}

// TestGatewayForwardAuth: the decision for a request an ingress describes,
// from a trusted peer only, with the identity headers to copy.
func TestGatewayForwardAuth(t *testing.T) {
	is := startIssuer(t)
	g := runGateway(t, forwardAuthYAML(is, "", "127.0.0.1", ""))
	read := mint(t, is, "orders:read profile")
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

	t.Run("allowed: 200 with the identity headers", func(t *testing.T) {
		h := bearer(read)
		h.Set("X-Tokenguard-Subject", "admin") // the client's own copy
		resp, body := askNginx(t, g, "GET", "/orders/42?page=2", h)
		if resp.StatusCode != http.StatusOK || body != "" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		want := map[string][]string{
			"X-Tokenguard-Subject":   {"demo-user"},
			"X-Tokenguard-Client-Id": {"demo-client"},
			"X-Tokenguard-Scope":     {"orders:read profile"},
		}
		if diff := cmp.Diff(want, tokenguardHeaders(resp.Header)); diff != "" {
			t.Errorf("answer's identity headers (-want +got):\n%s", diff)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
		}
		waitFor(t, func() bool {
			for _, l := range accessLines(t, g.stderr.String()) {
				if l["forwarded_path"] == "/orders/42" && l["forwarded_method"] == "GET" && l["decision"] == "allow" && l["path"] == "/tokenguard/auth" {
					return true
				}
			}
			return false
		}, "the decision and the described request in the access log")
	})

	t.Run("Traefik's and Caddy's headers, and POST", func(t *testing.T) {
		h := bearer(read)
		h.Set("X-Forwarded-Method", "GET")
		h.Set("X-Forwarded-Proto", "https")
		h.Set("X-Forwarded-Host", "api.example.com")
		h.Set("X-Forwarded-Uri", "/orders/7")
		resp, _ := do(t, "POST", g.proxy+"/tokenguard/auth", "", h)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Tokenguard-Subject") != "demo-user" {
			t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
		}
	})

	t.Run("public route: allowed, identity headers empty", func(t *testing.T) {
		// Empty, not absent: an ingress that copies them replaces the
		// client's copies and never makes one up.
		resp, _ := askNginx(t, g, "GET", "/status", http.Header{"X-Tokenguard-Subject": {"admin"}})
		want := map[string][]string{"X-Tokenguard-Subject": {""}, "X-Tokenguard-Client-Id": {""}, "X-Tokenguard-Scope": {""}}
		if diff := cmp.Diff(want, tokenguardHeaders(resp.Header)); resp.StatusCode != http.StatusOK || diff != "" {
			t.Fatalf("got %d, identity headers (-want +got):\n%s", resp.StatusCode, diff)
		}
		waitFor(t, func() bool {
			for _, l := range accessLines(t, g.stderr.String()) {
				if l["forwarded_path"] == "/status" && l["decision"] == "public" {
					return true
				}
			}
			return false
		}, "decision=public in the access log")
	})

	t.Run("DPoP htu is the forwarded scheme, host and path", func(t *testing.T) {
		key := newDPoPKey(t)
		bound := key.mintBound(t, is, "orders:read")
		ask := func(proofURL, fwdHost string) int {
			h := http.Header{"Authorization": {"DPoP " + bound}}
			h.Set("DPoP", key.proof(t, "GET", proofURL, bound, ""))
			h.Set("X-Forwarded-Proto", "https")
			h.Set("X-Forwarded-Host", fwdHost)
			resp, _ := askNginx(t, g, "GET", "/orders/9?x=1", h)
			return resp.StatusCode
		}
		if got := ask("https://api.example.com/orders/9", "api.example.com"); got != http.StatusOK {
			t.Errorf("proof for the described URL: %d, want 200", got)
		}
		if got := ask("https://api.example.com/orders/9", "other.example.com"); got != http.StatusUnauthorized {
			t.Errorf("proof for another host: %d, want 401", got)
		}
		if got := ask(g.proxy+"/tokenguard/auth", "api.example.com"); got != http.StatusUnauthorized {
			t.Errorf("proof for the subrequest's own URL: %d, want 401", got)
		}
		if got := ask("https://api.example.com/orders/10", "api.example.com"); got != http.StatusUnauthorized {
			t.Errorf("proof for another path: %d, want 401", got)
		}
	})

	t.Run("a bypass path is refused as in proxy mode", func(t *testing.T) {
		for _, uri := range []string{"/orders/..%2Fadmin", "/orders/..%2fadmin", "/orders/%2e%2e/admin", "/orders/../admin", "/orders//admin", "/orders/;x/../admin", "/orders/%252e%252e/admin"} {
			resp, body := askNginx(t, g, "GET", uri, bearer(read))
			if resp.StatusCode != http.StatusBadRequest || body != `{"error":"invalid_path"}`+"\n" {
				t.Errorf("%s: got %d %q, want 400 invalid_path", uri, resp.StatusCode, body)
			}
		}
	})

	t.Run("malformed descriptions", func(t *testing.T) {
		for name, h := range map[string]http.Header{
			"nothing":       {},
			"absolute-form": {"X-Original-Method": {"GET"}, "X-Original-Uri": {"http://evil.example/orders/1"}},
			"disagreeing":   {"X-Original-Method": {"GET"}, "X-Original-Uri": {"/orders/1"}, "X-Forwarded-Uri": {"/admin"}},
			"twice":         {"X-Original-Method": {"GET"}, "X-Original-Uri": {"/status", "/orders/1"}},
		} {
			resp, body := do(t, "GET", g.proxy+"/tokenguard/auth", read, h)
			if resp.StatusCode != http.StatusBadRequest || body != `{"error":"invalid_request"}`+"\n" {
				t.Errorf("%s: got %d %q, want 400 invalid_request", name, resp.StatusCode, body)
			}
		}
		resp, _ := do(t, "DELETE", g.proxy+"/tokenguard/auth", read, http.Header{"X-Original-Method": {"GET"}, "X-Original-Uri": {"/orders/1"}})
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, POST" {
			t.Errorf("DELETE: got %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})

	t.Run("without an upstream nothing else is served", func(t *testing.T) {
		resp, body := do(t, "GET", g.proxy+"/orders/1", read, nil)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "not_found") {
			t.Errorf("a request to proxy: got %d %q, want 404", resp.StatusCode, body)
		}
		resp, body = do(t, "GET", g.proxy+"/.well-known/oauth-protected-resource", "", nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"resource"`) {
			t.Errorf("the metadata document: got %d %q", resp.StatusCode, body)
		}
		// Through forward auth the metadata path is not a route: the
		// ingress sends it to the gateway itself.
		if resp, _ := askNginx(t, g, "GET", "/.well-known/oauth-protected-resource", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("the metadata path through forward auth: %d, want 404", resp.StatusCode)
		}
	})
}

// TestGatewayForwardAuthUntrusted: a peer outside trusted_proxies may not
// describe a request, whatever it carries.
func TestGatewayForwardAuthUntrusted(t *testing.T) {
	is := startIssuer(t)
	g := runGateway(t, forwardAuthYAML(is, "", "10.0.0.0/8", ""))
	resp, body := askNginx(t, g, "GET", "/orders/1", http.Header{"Authorization": {"Bearer " + mint(t, is, "orders:read")}})
	if resp.StatusCode != http.StatusForbidden || body != `{"error":"untrusted_proxy"}`+"\n" || len(tokenguardHeaders(resp.Header)) != 0 {
		t.Fatalf("got %d %q %v", resp.StatusCode, body, resp.Header)
	}
	waitFor(t, func() bool {
		for _, l := range accessLines(t, g.stderr.String()) {
			if l["decision"] == "reject" && l["reason"] == "untrusted_proxy" {
				return true
			}
		}
		return false
	}, "the refusal in the access log")
}

// TestGatewayForwardAuthAgreesWithProxy: for the same request, forward
// auth answers a denial with the status, challenge and body proxy mode
// answers it with; the chain is the same.
func TestGatewayForwardAuthAgreesWithProxy(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	const cors = "public_url: https://api.example.com\ncors:\n  allowed_origins: [https://app.example.com]\n"
	fa := runGateway(t, forwardAuthYAML(is, "", "127.0.0.1", cors))
	px := runGateway(t, strings.Replace(forwardAuthYAML(is, up.URL, "127.0.0.1", cors), "forward_auth:\n", "", 1))
	read := mint(t, is, "orders:read")
	expired, err := is.Mint("orders:read", -time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := http.Header{"Origin": {"https://app.example.com"}}
	with := func(kv ...string) http.Header {
		h := app.Clone()
		for i := 0; i+1 < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	for _, tt := range []struct {
		name, method, uri string
		h                 http.Header
	}{
		{"no token", "GET", "/orders/1", with()},
		{"garbage token", "GET", "/orders/1", with("Authorization", "Bearer not.a.jwt")},
		{"expired token", "GET", "/orders/1", with("Authorization", "Bearer "+expired)},
		{"missing scope", "POST", "/orders/1", with("Authorization", "Bearer "+read)},
		{"unsupported scheme", "GET", "/orders/1", with("Authorization", "Basic dXNlcjpwYXNz")},
		{"two credentials", "GET", "/orders/1", with("Authorization", "Bearer "+read, "Authorization", "Bearer "+read)},
		{"token in the query", "GET", "/orders/1?access_token=" + read, with()},
		{"DPoP token without a proof", "GET", "/orders/1", with("Authorization", "DPoP "+read)},
		{"no route", "GET", "/admin", with("Authorization", "Bearer "+read)},
		{"method no route names", "DELETE", "/orders/1", with("Authorization", "Bearer "+read)},
		{"TRACE", "TRACE", "/orders/1", with("Authorization", "Bearer "+read)},
		{"encoded slash", "GET", "/orders/..%2Fadmin", with("Authorization", "Bearer "+read)},
		{"reserved path", "GET", "/metrics", with("Authorization", "Bearer "+read)},
		{"h2c upgrade", "GET", "/orders/1", with("Authorization", "Bearer "+read, "Upgrade", "h2c", "Connection", "Upgrade")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Proxy mode: the request itself, exactly as described.
			req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n", tt.method, tt.uri)
			sub := tt.h.Clone()
			for k, vs := range tt.h {
				for _, v := range vs {
					req += k + ": " + v + "\r\n"
				}
			}
			want, wantBody := rawRequest(t, px.gw.Addr(), req+"\r\n")
			// Forward auth: the same, described.
			sub.Set("X-Forwarded-Method", tt.method)
			sub.Set("X-Forwarded-Uri", tt.uri)
			sub.Set("X-Forwarded-Host", "api.example.com")
			got, gotBody := do(t, "GET", fa.proxy+"/tokenguard/auth", "", sub)
			if want.StatusCode < 400 {
				t.Fatalf("proxy mode answered %d: not a denial", want.StatusCode)
			}
			if got.StatusCode != want.StatusCode || gotBody != wantBody {
				t.Errorf("forward auth %d %q, proxy mode %d %q", got.StatusCode, gotBody, want.StatusCode, wantBody)
			}
			for _, k := range []string{"WWW-Authenticate", "DPoP-Nonce", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "Content-Type"} {
				if g, w := got.Header.Values(k), want.Header.Values(k); !cmp.Equal(g, w, cmpopts.EquateEmpty()) {
					t.Errorf("%s: forward auth %q, proxy mode %q", k, g, w)
				}
			}
			if up.count() != 0 {
				t.Error("proxy mode forwarded a denied request")
			}
		})
	}
}

// TestGatewayForwardAuthReload: forward_auth, its path, trusted_proxies,
// cors and upstream all change with a reload.
func TestGatewayForwardAuthReload(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, strings.Replace(forwardAuthYAML(is, up.URL, "127.0.0.1", ""), "forward_auth:\n", "", 1))
	read := http.Header{"Authorization": {"Bearer " + mint(t, is, "orders:read")}}
	reload := func(yml string) {
		t.Helper()
		if err := os.WriteFile(g.path, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := g.gw.ReloadConfig(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ask := func(path string) int {
		h := read.Clone()
		h.Set("X-Original-Method", "GET")
		h.Set("X-Original-Uri", "/orders/1")
		h.Set("X-Forwarded-Host", "api.example.com")
		resp, _ := do(t, "GET", g.proxy+path, "", h)
		return resp.StatusCode
	}

	if got := ask("/tokenguard/auth"); got != http.StatusNotFound {
		t.Fatalf("before: the auth path is %d, want 404 (no route)", got)
	}
	reload(forwardAuthYAML(is, up.URL, "127.0.0.1", "cors:\n  allowed_origins: [https://app.example.com]\n"))
	if got := ask("/tokenguard/auth"); got != http.StatusOK {
		t.Fatalf("forward_auth added: %d, want 200", got)
	}
	if resp, _ := do(t, "OPTIONS", g.proxy+"/orders/1", "", http.Header{"Origin": {"https://app.example.com"}, "Access-Control-Request-Method": {"GET"}}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("cors added: preflight %d, want 204", resp.StatusCode)
	}
	reload(strings.Replace(forwardAuthYAML(is, up.URL, "127.0.0.1", ""), "forward_auth:\n", "forward_auth:\n  path: /auth/check\n", 1))
	if a, b := ask("/tokenguard/auth"), ask("/auth/check"); a != http.StatusNotFound || b != http.StatusOK {
		t.Fatalf("path changed: old path %d (want 404), new path %d (want 200)", a, b)
	}
	if resp, _ := do(t, "OPTIONS", g.proxy+"/orders/1", "", http.Header{"Origin": {"https://app.example.com"}, "Access-Control-Request-Method": {"GET"}}); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("cors removed: preflight %d, want 404", resp.StatusCode)
	}
	reload(forwardAuthYAML(is, up.URL, "10.0.0.0/8", ""))
	if got := ask("/tokenguard/auth"); got != http.StatusForbidden {
		t.Fatalf("trusted_proxies without this peer: %d, want 403", got)
	}
	if resp, _ := do(t, "GET", g.proxy+"/orders/1", "", read); resp.StatusCode != http.StatusOK {
		t.Fatalf("proxy mode beside forward auth: %d, want 200", resp.StatusCode)
	}
	reload(forwardAuthYAML(is, "", "127.0.0.1", ""))
	if resp, _ := do(t, "GET", g.proxy+"/orders/1", "", read); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("upstream removed: %d, want 404", resp.StatusCode)
	}
	if got := ask("/tokenguard/auth"); got != http.StatusOK {
		t.Fatalf("upstream removed: forward auth %d, want 200", got)
	}
}

// TestGatewayForwardAuthAllowedHosts: allowed_hosts applies to the host
// the ingress describes, not to the subrequest's own Host (the gateway's
// address, as the ingress dials it).
func TestGatewayForwardAuthAllowedHosts(t *testing.T) {
	is := startIssuer(t)
	g := runGateway(t, forwardAuthYAML(is, "", "127.0.0.1", "allowed_hosts: [api.example.com]\n"))
	for host, want := range map[string]int{"api.example.com": http.StatusOK, "API.example.com:443": http.StatusOK, "evil.example": http.StatusMisdirectedRequest} {
		resp, body := askNginx(t, g, "GET", "/orders/1", http.Header{"Authorization": {"Bearer " + mint(t, is, "orders:read")}, "X-Forwarded-Host": {host}})
		if resp.StatusCode != want {
			t.Errorf("X-Forwarded-Host %s: %d %q, want %d", host, resp.StatusCode, body, want)
		}
	}
}
