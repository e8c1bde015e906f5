package bench

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestPeerDifferences pins down what the contestants do differently with
// tokens that are well signed but that a resource server should refuse,
// so BENCHMARKS.md's account of the peers is checked, not recalled. A
// peer that lets such a token through is not wrong by its own contract
// (most are general JWT libraries, go-oidc is for ID tokens); it just does
// less work per request than tokenguard, which the time ratios should be
// read with. The peers' versions are pinned in go.mod, so a change here
// means an upgrade changed their behaviour, and BENCHMARKS.md needs the
// same change.
func TestPeerDifferences(t *testing.T) {
	env := newEnv(t, "ES256")
	mint := func(extra map[string]any) string {
		tok, err := env.iss.Mint(scope, time.Hour, extra)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	plainJWT, err := env.key.Sign(map[string]any{"typ": "JWT"}, env.iss.Claims(scope, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("some client certificate's DER"))
	thumbprint := base64.RawURLEncoding.EncodeToString(sum[:]) // well-formed: only the certificate is missing
	inputs := []struct {
		name  string
		token string
	}{
		{"no exp", mint(map[string]any{"exp": nil})},
		{"nbf in an hour", mint(map[string]any{"nbf": time.Now().Add(time.Hour).Unix()})},
		{"typ JWT, not at+jwt", plainJWT},
		{"no sub, client_id, jti", mint(map[string]any{"sub": nil, "client_id": nil, "jti": nil})},
		{"lacks the route's scope", mint(map[string]any{"scope": "profile"})},
		// RFC 8705: bound to a client certificate, sent without one (the
		// request is plain HTTP, no TLS peer).
		{"certificate-bound, no certificate", mint(map[string]any{"cnf": map[string]any{"x5t#S256": thumbprint}})},
	}
	// allowed[contestant] lists, per input in order, whether it lets the
	// request through.
	allowed := map[string][]bool{
		"tokenguard":        {false, false, false, false, false, false},
		"tokenguard-cached": {false, false, false, false, false, false},
		"auth0":             {true, false, true, true, true, true},
		"keyfunc":           {false, false, true, true, true, true},
		"go-oidc":           {false, false, true, true, true, true},
		"jwx":               {true, false, true, true, true, true},
	}
	for _, c := range contestants {
		want, ok := allowed[c.name]
		if !ok {
			t.Fatalf("%s: no expectations", c.name)
		}
		reached := false
		h := c.newHandler(t, env, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
		for i, in := range inputs {
			reached = false
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, request(in.token))
			if reached != want[i] {
				t.Errorf("%s, %s: let through = %v (status %d), want %v", c.name, in.name, reached, rec.Code, want[i])
			}
		}
	}
}
