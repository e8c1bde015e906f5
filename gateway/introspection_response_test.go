package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

// TestParseConfigIntrospectionResponse: issuers[].introspection_response
// is json (the default) or jwt, only on an issuer that introspects, and
// reaches the guard and the effective configuration.
func TestParseConfigIntrospectionResponse(t *testing.T) {
	introspecting := func(v string) string {
		return edit(t, "    jwks_uri: http://127.0.0.1:7000/jwks\n",
			"    jwks_uri: http://127.0.0.1:7000/jwks\n    introspection_endpoint: http://127.0.0.1:7000/introspect\n    client_id: rs\n"+v)
	}
	for _, tt := range []struct {
		name, yaml string
		want       string // middleware.Issuer.IntrospectionResponse
		effective  string // the effective configuration's line
	}{
		{"default", introspecting(""), "", "introspection_response: json"},
		{"json", introspecting("    introspection_response: json\n"), "", "introspection_response: json"},
		{"jwt", introspecting("    introspection_response: jwt\n"), "jwt", "introspection_response: jwt"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig("t.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.guardConfig(nil, nil).Issuers[0].IntrospectionResponse; got != tt.want {
				t.Errorf("IntrospectionResponse %q, want %q", got, tt.want)
			}
			out, err := c.effectiveYAML()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), tt.effective) {
				t.Errorf("effective configuration lacks %q:\n%s", tt.effective, out)
			}
		})
	}
	for _, tt := range []struct{ yaml, want string }{
		{introspecting("    introspection_response: JWT\n"), `line 11: issuers[0].introspection_response: "JWT" is not json or jwt`},
		{introspecting("    introspection_response: signed\n"), `line 11: issuers[0].introspection_response: "signed" is not json or jwt`},
		{edit(t, "    jwks_uri: http://127.0.0.1:7000/jwks\n", "    jwks_uri: http://127.0.0.1:7000/jwks\n    introspection_response: jwt\n"),
			"line 9: issuers[0].introspection_response: needs introspection_endpoint or client_id"},
	} {
		if _, err := parseConfig("t.yaml", []byte(tt.yaml)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("error %v, want %q", err, tt.want)
		}
	}
}

// TestGatewaySignedIntrospection: with introspection_response: jwt, an
// answer signed by the issuer's key is believed, and one signed by any
// other key is a 503, never a 2xx and never a 401.
func TestGatewaySignedIntrospection(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	forger, err := devissuer.GenerateKey("ES256", is.SigningKey().KID) // the issuer's kid, another key
	if err != nil {
		t.Fatal(err)
	}
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "application/token-introspection+jwt" {
			http.Error(w, "JWT answers only", http.StatusNotAcceptable)
			return
		}
		key := is.SigningKey()
		if strings.HasPrefix(r.PostFormValue("token"), "forged") {
			key = forger
		}
		tok, err := key.Sign(map[string]any{"typ": "token-introspection+jwt"}, map[string]any{
			"iss": is.URL(), "aud": testkit.Audience, "iat": time.Now().Unix(),
			"token_introspection": map[string]any{"active": true, "scope": "orders:read"},
		})
		if err != nil {
			t.Error(err)
		}
		w.Header().Set("Content-Type", "application/token-introspection+jwt")
		_, _ = w.Write([]byte(tok))
	}))
	t.Cleanup(as.Close)
	issuerBlock := "/jwks\n    introspection_endpoint: " + as.URL + "\n    client_id: rs\n    client_secret: s3cret\n    introspection_response: jwt\n"
	g := runGateway(t, strings.Replace(gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, ""), "/jwks\n", issuerBlock, 1))
	if resp, body := do(t, "GET", g.proxy+"/orders/", "opaque-1", nil); resp.StatusCode != 200 {
		t.Fatalf("opaque token, signed answer: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, "GET", g.proxy+"/orders/", "forged-1", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("opaque token, forged answer: %d %s, want 503", resp.StatusCode, body)
	}
}
