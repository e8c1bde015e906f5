package gateway

import (
	"strings"
	"testing"
)

// TestGatewayReloadReportsEveryMistake: a reload of a file with mistakes
// of several kinds (an unknown key, found reading the file; a key file
// that does not load, found only by the offline checks) names them all in
// one error, as "tokenguard check" does, and keeps the running
// configuration.
func TestGatewayReloadReportsEveryMistake(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	y := gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "")
	g := runGateway(t, y)
	tok := mint(t, is, "orders:read")

	bad := strings.Replace(y, "    jwks_uri:", "    client_key_file: /nonexistent/key.pem\n    introspection_endpoint: "+is.URL()+"/introspect\n    client_id: gw\n    client_auth_method: private_key_jwt\n    jwks_uri:", 1) +
		"listen_addr: 127.0.0.1:1\n"
	err := g.reload(t, bad)
	if err == nil {
		t.Fatal("reload accepted")
	}
	for _, w := range []string{"listen_addr", "client_key_file"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	if got := status(t, "GET", g.proxy+"/orders/1", tok); got != 200 {
		t.Errorf("the running configuration stopped serving: %d", got)
	}
}
