package gateway

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// TestGatewayCORS is what a browser app on another origin does: its
// preflights are answered by the gateway and never forwarded, one from any
// other origin is refused, and every answer to the app, denials included,
// lets its script read the challenge and the DPoP nonce.
func TestGatewayCORS(t *testing.T) {
	is := startIssuer(t)
	var hits atomic.Int32
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		// An upstream with CORS headers of its own, too permissive.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Set("Access-Control-Expose-Headers", "X-Total")
		io.WriteString(w, "orders")
	})
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL,
		"public_url: https://api.example.com\ndpop:\n  mode: allowed\n  nonce: true\ncors:\n  allowed_origins: [https://app.example.com]\n  max_age: 5m\n"))
	const app = "https://app.example.com"
	tok := mint(t, is, "orders:read")

	wantReadable := func(t *testing.T, resp *http.Response) {
		t.Helper()
		if got := resp.Header.Values("Access-Control-Allow-Origin"); !slices.Equal(got, []string{app}) {
			t.Errorf("Access-Control-Allow-Origin %q, want exactly %q", got, app)
		}
		expose := strings.Join(resp.Header.Values("Access-Control-Expose-Headers"), ", ")
		if !strings.Contains(expose, "WWW-Authenticate") || !strings.Contains(expose, "DPoP-Nonce") {
			t.Errorf("Access-Control-Expose-Headers %q: the challenge and the nonce are not readable", expose)
		}
		if !slices.Contains(resp.Header.Values("Vary"), "Origin") {
			t.Errorf("Vary %q lacks Origin", resp.Header.Values("Vary"))
		}
		if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Error("Access-Control-Allow-Credentials sent")
		}
	}
	preflight := func(origin string) http.Header {
		return http.Header{"Origin": {origin}, "Access-Control-Request-Method": {"GET"}, "Access-Control-Request-Headers": {"authorization,dpop"}}
	}

	t.Run("preflight from an allowed origin is answered and not forwarded", func(t *testing.T) {
		before := hits.Load()
		resp, body := do(t, "OPTIONS", g.proxy+"/orders/1", "", preflight(app))
		if resp.StatusCode != http.StatusNoContent || body != "" {
			t.Fatalf("got %d %q, want 204", resp.StatusCode, body)
		}
		wantReadable(t, resp)
		for k, want := range map[string]string{
			"Access-Control-Allow-Methods": "GET",
			"Access-Control-Allow-Headers": "Authorization, DPoP, Content-Type",
			"Access-Control-Max-Age":       "300",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s %q, want %q", k, got, want)
			}
		}
		if hits.Load() != before {
			t.Error("the preflight reached the upstream")
		}
		waitFor(t, func() bool {
			return strings.Contains(g.stderr.String(), "method=OPTIONS path=/orders/1 status=204 decision=preflight")
		}, "the preflight in the access log")
	})

	for _, origin := range []string{"https://evil.example", "https://app.example.com.evil.example", "https://APP.example.com", "http://app.example.com", "null"} {
		t.Run("preflight from "+origin+" is refused and not forwarded", func(t *testing.T) {
			before := hits.Load()
			resp, body := do(t, "OPTIONS", g.proxy+"/orders/1", "", preflight(origin))
			if resp.StatusCode != http.StatusForbidden || body != `{"error":"origin_not_allowed"}`+"\n" {
				t.Fatalf("got %d %q, want 403 origin_not_allowed", resp.StatusCode, body)
			}
			if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Access-Control-Allow-Methods") != "" {
				t.Errorf("CORS headers on a refusal to another origin: %v", resp.Header)
			}
			if hits.Load() != before {
				t.Error("the preflight reached the upstream")
			}
		})
	}

	t.Run("the challenge of a denial is readable", func(t *testing.T) {
		before := hits.Load()
		resp, _ := do(t, "GET", g.proxy+"/orders/1", "", http.Header{"Origin": {app}})
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Bearer realm=") {
			t.Fatalf("got %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		wantReadable(t, resp)
		if hits.Load() != before {
			t.Error("forwarded")
		}
	})

	t.Run("the DPoP nonce of a denial is readable", func(t *testing.T) {
		key := newDPoPKey(t)
		bound := key.mintBound(t, is, "orders:read")
		h := http.Header{"Origin": {app}, "Authorization": {"DPoP " + bound}}
		h.Set("DPoP", key.proof(t, "GET", publicURL+"/orders/1", bound, ""))
		resp, _ := do(t, "GET", g.proxy+"/orders/1", "", h)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) || resp.Header.Get("DPoP-Nonce") == "" {
			t.Fatalf("got %d, WWW-Authenticate %q, DPoP-Nonce %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), resp.Header.Get("DPoP-Nonce"))
		}
		wantReadable(t, resp)
		// And with the nonce, the call goes through.
		h.Set("DPoP", key.proof(t, "GET", publicURL+"/orders/1", bound, resp.Header.Get("DPoP-Nonce")))
		if resp, body := do(t, "GET", g.proxy+"/orders/1", "", h); resp.StatusCode != http.StatusOK {
			t.Fatalf("with the nonce: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("an allowed answer carries the gateway's CORS headers, not the upstream's", func(t *testing.T) {
		resp, body := do(t, "GET", g.proxy+"/orders/1", tok, http.Header{"Origin": {app}})
		if resp.StatusCode != http.StatusOK || body != "orders" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		wantReadable(t, resp)
		if expose := strings.Join(resp.Header.Values("Access-Control-Expose-Headers"), ", "); !strings.Contains(expose, "X-Total") {
			t.Errorf("the upstream's Access-Control-Expose-Headers were dropped: %q", expose)
		}
	})

	t.Run("another origin gets no Access-Control-Allow-Origin, the upstream's * included", func(t *testing.T) {
		resp, _ := do(t, "GET", g.proxy+"/orders/1", tok, http.Header{"Origin": {"https://evil.example"}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("got %d", resp.StatusCode)
		}
		if v := resp.Header.Values("Access-Control-Allow-Origin"); len(v) != 0 || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("Access-Control-Allow-Origin %q, -Credentials %q", v, resp.Header.Get("Access-Control-Allow-Credentials"))
		}
		if !slices.Contains(resp.Header.Values("Vary"), "Origin") {
			t.Error("no Vary: Origin")
		}
	})

	t.Run("a hygiene refusal is readable", func(t *testing.T) {
		before := hits.Load()
		resp, body := rawRequest(t, g.gw.Addr(), "GET /orders/..%2Fadmin HTTP/1.1\r\nHost: x\r\nOrigin: "+app+"\r\nAuthorization: Bearer "+tok+"\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "invalid_path") {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		wantReadable(t, resp)
		if hits.Load() != before {
			t.Error("forwarded")
		}
	})

	t.Run("OPTIONS that is not a preflight is routed like any request", func(t *testing.T) {
		resp, body := do(t, "OPTIONS", g.proxy+"/orders/1", "", http.Header{"Origin": {app}})
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "not_found") {
			t.Fatalf("got %d %q, want the 404 of a request no route serves", resp.StatusCode, body)
		}
	})
}

// TestGatewayWithoutCORS: with no cors block a preflight is a request like
// any other (no route serves OPTIONS here: 404), and no CORS header is
// added.
func TestGatewayWithoutCORS(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, ""))
	resp, _ := do(t, "OPTIONS", g.proxy+"/orders/1", "", http.Header{"Origin": {"https://app.example.com"}, "Access-Control-Request-Method": {"GET"}})
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Vary") != "" {
		t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
	}
	if up.count() != 0 {
		t.Error("forwarded")
	}
}
