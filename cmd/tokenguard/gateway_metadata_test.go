package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestGatewayResourceMetadata: the gateway serves RFC 9728 metadata on
// listen, unguarded, with the routes' scopes, and its 401 challenges point
// to it.
func TestGatewayResourceMetadata(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "dpop:\n  mode: allowed\n"))

	resp, body := do(t, "GET", g.proxy+"/.well-known/oauth-protected-resource", "", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("metadata: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var md struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
		Scopes               []string `json:"scopes_supported"`
		BearerMethods        []string `json:"bearer_methods_supported"`
		DPoPAlgs             []string `json:"dpop_signing_alg_values_supported"`
		DPoPRequired         bool     `json:"dpop_bound_access_tokens_required"`
	}
	if err := json.Unmarshal([]byte(body), &md); err != nil {
		t.Fatalf("metadata %q: %v", body, err)
	}
	if md.Resource != testAudience || !slices.Equal(md.AuthorizationServers, []string{is.URL()}) ||
		!slices.Equal(md.Scopes, []string{"orders:read", "orders:write"}) || !slices.Equal(md.BearerMethods, []string{"header"}) ||
		len(md.DPoPAlgs) == 0 || md.DPoPRequired {
		t.Errorf("metadata = %+v", md)
	}
	if up.count() != 0 {
		t.Error("the metadata request reached the upstream")
	}
	resp, _ = do(t, "GET", g.proxy+"/orders/", "", nil)
	want := `resource_metadata="` + testAudience + `/.well-known/oauth-protected-resource"`
	if ch := strings.Join(resp.Header.Values("WWW-Authenticate"), ", "); resp.StatusCode != 401 || !strings.Contains(ch, want) {
		t.Errorf("401 challenge %q lacks %s", ch, want)
	}
}
