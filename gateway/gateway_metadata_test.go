package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
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

// TestGatewayRoutePolicy: route entries carry policies beyond scopes.
func TestGatewayRoutePolicy(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	yaml := strings.Replace(gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, ""),
		"  - pattern: \"GET /slow\"\n    scopes: [orders:read]\n",
		"  - pattern: \"GET /admin/\"\n    any_scopes: [[admin], [orders:read, orders:audit]]\n"+
			"  - pattern: \"DELETE /orders/\"\n    scopes: [orders:write]\n    acr_values: [urn:example:gold]\n    max_auth_age: 10m\n", 1)
	g := runGateway(t, yaml)
	mint := func(scope string, extra map[string]any) string {
		tok, err := is.Mint(scope, time.Hour, extra)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	recent := time.Now().Add(-time.Minute).Unix()
	tests := []struct {
		name, method, path, token string
		want                      int
		challenge                 string // substring of WWW-Authenticate
	}{
		{"any-of: first set", "GET", "/admin/x", mint("admin", nil), 200, ""},
		{"any-of: second set", "GET", "/admin/x", mint("orders:read orders:audit", nil), 200, ""},
		{"any-of: neither", "GET", "/admin/x", mint("orders:read", nil), 403, `error="insufficient_scope"`},
		{"step-up: gold and recent", "DELETE", "/orders/1", mint("orders:write", map[string]any{"acr": "urn:example:gold", "auth_time": recent}), 200, ""},
		{"step-up: silver", "DELETE", "/orders/1", mint("orders:write", map[string]any{"acr": "urn:example:silver", "auth_time": recent}), 401, `acr_values="urn:example:gold"`},
		{"step-up: stale login", "DELETE", "/orders/1", mint("orders:write", map[string]any{"acr": "urn:example:gold", "auth_time": time.Now().Add(-time.Hour).Unix()}), 401, `max_age="600"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, tt.method, g.proxy+tt.path, tt.token, nil)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.want)
			}
			if ch := strings.Join(resp.Header.Values("WWW-Authenticate"), ", "); !strings.Contains(ch, tt.challenge) {
				t.Errorf("WWW-Authenticate %q lacks %s", ch, tt.challenge)
			}
		})
	}
}

// TestGatewayDiscoversJWKS: an issuer without jwks_uri is discovered from
// its RFC 8414 metadata.
func TestGatewayDiscoversJWKS(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	yaml := strings.Replace(gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, ""), "    jwks_uri: "+is.URL()+"/jwks\n", "", 1)
	if strings.Contains(yaml, "jwks_uri") {
		t.Fatal("jwks_uri still in the configuration")
	}
	g := runGateway(t, yaml)
	tok, err := is.Mint("orders:read", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := do(t, "GET", g.proxy+"/orders/", tok, nil); resp.StatusCode != 200 {
		t.Fatalf("token of a discovered issuer: %d %s", resp.StatusCode, body)
	}
}

// TestGatewayIntrospection: opaque tokens are introspected, JWTs on an
// introspect: true route too, and the endpoint failing is a 503.
func TestGatewayIntrospection(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	var mu sync.Mutex
	active := map[string]bool{}
	down := false
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, secret, ok := r.BasicAuth(); !ok || id != "rs" || secret != "s3cret" {
			http.Error(w, "invalid_client", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		ok, failing := active[r.PostFormValue("token")], down
		mu.Unlock()
		if failing {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			_, _ = w.Write([]byte(`{"active":false}`))
			return
		}
		_, _ = w.Write([]byte(`{"active":true,"scope":"orders:read","client_id":"app","sub":"alice","exp":` + fmt.Sprint(time.Now().Add(time.Hour).Unix()) + `}`))
	}))
	t.Cleanup(as.Close)
	yaml := strings.Replace(gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, ""),
		"/jwks\n", "/jwks\n    introspection_endpoint: "+as.URL+"\n    client_id: rs\n    client_secret: s3cret\n", 1)
	yaml = strings.Replace(yaml, "  - pattern: \"GET /slow\"\n    scopes: [orders:read]\n", "  - pattern: \"GET /slow\"\n    scopes: [orders:read]\n    introspect: true\n", 1)
	g := runGateway(t, yaml)

	mu.Lock()
	active["opaque-1"] = true
	mu.Unlock()
	jwt, err := is.Mint("orders:read", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, path, token string
		want              int
	}{
		{"active opaque token", "/orders/", "opaque-1", 200},
		{"inactive opaque token", "/orders/", "opaque-2", 401},
		{"JWT, not introspected", "/orders/", jwt, 200},
		{"JWT on an introspect route, not active there", "/slow", jwt, 401},
	} {
		if resp, body := do(t, "GET", g.proxy+tt.path, tt.token, nil); resp.StatusCode != tt.want {
			t.Errorf("%s: %d (%s), want %d", tt.name, resp.StatusCode, body, tt.want)
		}
	}
	mu.Lock()
	down = true
	mu.Unlock()
	if resp, _ := do(t, "GET", g.proxy+"/orders/", "opaque-3", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("endpoint down: %d, want 503", resp.StatusCode)
	}
}

// TestGatewayIntrospectionPrivateKeyJWT: client_auth_method private_key_jwt
// signs client assertions with the key in client_key_file.
func TestGatewayIntrospectionPrivateKeyJWT(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "client.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := jws.Verify([]byte(r.PostFormValue("client_assertion")), jws.WithKey(jwa.ES256(), key.Public())); err != nil {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"active":true,"scope":"orders:read"}`))
	}))
	t.Cleanup(as.Close)
	issuerBlock := "/jwks\n    introspection_endpoint: " + as.URL + "\n    client_id: rs\n    client_auth_method: private_key_jwt\n    client_key_file: "
	g := runGateway(t, strings.Replace(gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, ""), "/jwks\n", issuerBlock+keyFile+"\n", 1))
	if resp, body := do(t, "GET", g.proxy+"/orders/", "opaque-1", nil); resp.StatusCode != 200 {
		t.Fatalf("opaque token with private_key_jwt: %d %s", resp.StatusCode, body)
	}

	// A key file that cannot be read is an error naming its line: from
	// LoadConfig, and from New when it has gone since.
	dir := t.TempDir()
	cfgFile, gone := filepath.Join(dir, "gw.yaml"), filepath.Join(dir, "gone.pem")
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/nonexistent/key.pem", gone} { // LoadConfig's error, New's
		if err := os.WriteFile(gone, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		bad := strings.Replace(gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, ""), "/jwks\n", issuerBlock+path+"\n", 1)
		if err := os.WriteFile(cfgFile, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(cfgFile, nil)
		if (err == nil) != (path == gone) {
			t.Fatalf("LoadConfig with client_key_file %s: %v", path, err)
		}
		if err == nil {
			if err := os.Remove(gone); err != nil {
				t.Fatal(err)
			}
			var gw *Gateway
			if gw, err = New(cfg, Options{Logger: slog.New(slog.DiscardHandler)}); err == nil {
				gw.Shutdown(context.Background())
			}
		}
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("unreadable client_key_file %s: %v, want a *ConfigError", path, err)
		}
		if err == nil || !strings.Contains(err.Error(), "issuers[0].client_key_file") {
			t.Errorf("unreadable client_key_file %s: %v", path, err)
		}
	}
}

// TestGatewayIntrospectionSpray: random opaque tokens, as fast as a client
// can send them, while the endpoint answers and while it fails, make at
// most introspection_rate_limit calls a second (plus one second's burst);
// every answer is a 401 or a 503, never a 2xx; a token that failed is not
// asked about again at once.
func TestGatewayIntrospectionSpray(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	var calls atomic.Int64
	var failing atomic.Bool
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if failing.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, `{"active":false}`)
	}))
	t.Cleanup(as.Close)
	const rate = 20
	yaml := strings.Replace(strings.Replace(gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, ""), "log_level: debug", "log_level: warn", 1),
		"/jwks\n", fmt.Sprintf("/jwks\n    introspection_endpoint: %s\n    client_id: rs\n    client_secret: s3cret\n    introspection_rate_limit: %d\n", as.URL, rate), 1)
	g := runGateway(t, yaml)
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: wait}
	spray := func(phase string, d time.Duration) {
		t.Helper()
		before := calls.Load()
		start := time.Now()
		codes := map[int]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; time.Since(start) < d; i++ {
					req, _ := http.NewRequest("GET", g.proxy+"/orders/", nil)
					req.Header.Set("Authorization", fmt.Sprintf("Bearer spray-%s-%d-%d", phase, w, i))
					resp, err := hc.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					mu.Lock()
					codes[resp.StatusCode]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		n := calls.Load() - before
		limit := int64(rate + rate*elapsed.Seconds() + 1)
		total := 0
		for code, k := range codes {
			total += k
			if code != 401 && code != 503 {
				t.Errorf("%s: %d answers with status %d", phase, k, code)
			}
		}
		t.Logf("%s: %d requests in %v made %d introspection calls (limit %d): %v", phase, total, elapsed.Round(time.Millisecond), n, limit, codes)
		if n > limit {
			t.Errorf("%s: %d introspection calls in %v, want at most %d", phase, n, elapsed, limit)
		}
		if total < 4*int(limit) {
			t.Errorf("%s: only %d requests sent; the spray did not outrun the limit", phase, total)
		}
	}
	spray("answering", time.Second)
	failing.Store(true)
	spray("failing", time.Second)

	// A token whose introspection just failed gets 503 without a call.
	failing.Store(true)
	time.Sleep(1100 * time.Millisecond) // refill the bucket
	before := calls.Load()
	for range 5 {
		if resp, _ := do(t, "GET", g.proxy+"/orders/", "same-token", nil); resp.StatusCode != 503 {
			t.Errorf("failing endpoint: %d, want 503", resp.StatusCode)
		}
	}
	if n := calls.Load() - before; n != 1 {
		t.Errorf("5 requests with one token while the endpoint fails made %d calls, want 1", n)
	}
	_, metrics := do(t, "GET", g.metric+"/metrics", "", nil)
	if !strings.Contains(metrics, `tokenguard_introspection_requests_total{result="throttled"}`) {
		t.Errorf("metrics do not count throttled introspections:\n%s", grepLines(metrics, "introspection"))
	}
}
