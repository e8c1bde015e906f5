package gateway

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

// bffGateway runs a gateway with a bff block in front of a recording
// upstream, with a development issuer that logs users in.
type bffGateway struct {
	*running
	is *devissuer.Issuer
	up *upstream
}

// startBFFGateway runs a gateway at a fixed loopback address (public_url
// must be known before it starts); extraBFF is appended to the bff block.
func startBFFGateway(t *testing.T, is *devissuer.Issuer, addr, extraBFF string) *bffGateway {
	t.Helper()
	up := startUpstream(t)
	public := "http://" + addr
	y := strings.Replace(gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, fmt.Sprintf(`public_url: %s
bff:
  issuer: %s
  client_id: spa
  client_secret: ${BFF_SECRET}
  scopes: [openid, offline_access, orders:read]
%s`, public, is.URL(), extraBFF)), "listen: 127.0.0.1:0", "listen: "+addr, 1)
	return &bffGateway{running: runGateway(t, y), is: is, up: up}
}

func loginIssuer(t *testing.T, publics ...string) *devissuer.Issuer {
	t.Helper()
	t.Setenv("BFF_SECRET", "spa-secret")
	is := startIssuer(t)
	var redirects []string
	for _, p := range publics {
		redirects = append(redirects, p+"/bff/callback")
	}
	is.EnableLogin(devissuer.LoginConfig{
		Clients: []devissuer.Client{{ID: "spa", Secret: "spa-secret", RedirectURIs: redirects}},
		Subject: "alice",
	})
	return is
}

// TestGatewayBFF: the token handler mounted by the gateway, end to end:
// login, an API call authenticated by the session (forwarded as Bearer,
// without our cookies, logged as auth=session and never with the id),
// the CSRF rule, metrics, logout.
func TestGatewayBFF(t *testing.T) {
	addr := testkit.ClosedAddr(t)
	is := loginIssuer(t, "http://"+addr)
	g := startBFFGateway(t, is, addr, "")
	b := testkit.NewBrowser(t)
	if to := b.Login(g.proxy, "?return_to=/orders/7"); to != "/orders/7" {
		t.Fatalf("landed on %q", to)
	}
	session := b.Cookies["__Host-tokenguard-session"]

	b.Cookies["pref"] = "1"
	resp, body := b.Do("GET", g.proxy+"/orders/7", "X-CSRF: 1", "Origin: "+g.proxy)
	if resp.StatusCode != 200 {
		t.Fatalf("API call: %d %s", resp.StatusCode, body)
	}
	got := g.up.last(t)
	if !strings.HasPrefix(got.Header.Get("Authorization"), "Bearer ") {
		t.Errorf("upstream Authorization %q", got.Header.Get("Authorization"))
	}
	if c := got.Header.Get("Cookie"); strings.Contains(c, "tokenguard") || c != "pref=1" {
		t.Errorf("upstream Cookie %q", c)
	}
	if got.Header.Get("X-Tokenguard-Subject") != "alice" {
		t.Errorf("upstream subject %q", got.Header.Get("X-Tokenguard-Subject"))
	}

	n := g.up.count()
	for _, tc := range []struct {
		hdr    []string
		status int
		reason string
	}{
		{nil, 401, "csrf_header_required"},
		{[]string{"X-CSRF: 1", "Origin: https://evil.example"}, 403, "origin_not_allowed"},
	} {
		if resp, body := b.Do("GET", g.proxy+"/orders/7", tc.hdr...); resp.StatusCode != tc.status || !strings.Contains(body, tc.reason) {
			t.Errorf("%v: %d %s", tc.hdr, resp.StatusCode, body)
		}
	}
	if g.up.count() != n {
		t.Error("a refused session request reached the upstream")
	}
	// A path no route serves is 404 with the cookie too: the session rule
	// is for routes.
	if resp, _ := b.Do("GET", g.proxy+"/favicon.ico"); resp.StatusCode != 404 {
		t.Errorf("unrouted path with the session cookie: %d, want 404", resp.StatusCode)
	}

	resp, _ = b.Do("POST", g.proxy+"/bff/logout", "X-CSRF: 1")
	if resp.StatusCode != 200 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if _, _, rev := is.Grants(); rev != 1 {
		t.Errorf("revocations %d", rev)
	}

	resp, _ = http.Get(g.metric + "/metrics")
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`tokenguard_bff_logins_total{result="success"} 1`, "tokenguard_bff_sessions 0"} {
		if !strings.Contains(string(metrics), m) {
			t.Errorf("metrics lack %q", m)
		}
	}
	log := g.stderr.String()
	if !strings.Contains(log, "auth=session") {
		t.Errorf("no access line with auth=session:\n%s", log)
	}
	if !strings.Contains(log, "reason=csrf_header_required") || !strings.Contains(log, "reason=origin_not_allowed") {
		t.Errorf("refusals are not in the access log:\n%s", log)
	}
	if strings.Contains(log, session) || strings.Contains(log, "eyJ") {
		t.Error("the access log holds the session id or a token")
	}
}

// TestGatewayBFFRedis: two replicas share sessions through Redis, with
// the tokens encrypted there.
func TestGatewayBFFRedis(t *testing.T) {
	rdb := startRedis(t)
	a1, a2 := testkit.ClosedAddr(t), testkit.ClosedAddr(t)
	is := loginIssuer(t, "http://"+a1, "http://"+a2)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	t.Setenv("BFF_SESSION_KEY", base64.StdEncoding.EncodeToString(key))
	extra := fmt.Sprintf("  session_store: %s\n  session_key: ${BFF_SESSION_KEY}\n  allowed_origins: [http://%s, http://%s]\n", rdb, a1, a2)
	g1 := startBFFGateway(t, is, a1, extra)
	g2 := startBFFGateway(t, is, a2, extra)
	b := testkit.NewBrowser(t)
	b.Login(g1.proxy, "")
	session := b.Cookies["__Host-tokenguard-session"]
	// The cookie is host-only: a browser would send it to one origin, but
	// replicas behind one load balancer share that origin.
	resp, body := b.Do("GET", g2.proxy+"/orders/1", "X-CSRF: 1")
	if resp.StatusCode != 200 {
		t.Fatalf("the other replica: %d %s", resp.StatusCode, body)
	}
	raw := redisValues(t, rdb)
	if len(raw) == 0 {
		t.Fatal("nothing in Redis")
	}
	for _, v := range raw {
		if strings.Contains(v, "eyJ") || strings.Contains(v, "alice") {
			t.Errorf("Redis holds a readable token or claim: %.60q", v)
		}
	}
	resp, _ = b.Do("POST", g2.proxy+"/bff/logout", "X-CSRF: 1")
	if resp.StatusCode != 200 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	b.Cookies["__Host-tokenguard-session"] = session
	if resp, _ := b.Do("GET", g1.proxy+"/orders/1", "X-CSRF: 1"); resp.StatusCode != 401 {
		t.Errorf("after logout on one replica, the other: %d", resp.StatusCode)
	}
}

// redisValues returns every value in the Redis at url.
func redisValues(t *testing.T, url string) []string {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	keys, err := c.Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		if v, err := c.Get(t.Context(), k).Result(); err == nil {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// TestBFFConfigErrors: mistakes in the bff block name their key.
func TestBFFConfigErrors(t *testing.T) {
	is := "https://as.example.com"
	base := func(public, block string) string {
		return gatewayYAML(is, is+"/jwks", "http://127.0.0.1:1", public+"bff:\n"+block)
	}
	ok := "  issuer: " + is + "\n  client_id: spa\n  client_secret: s\n  scopes: [openid]\n"
	tests := []struct{ name, yaml, want string }{
		{"no public_url", base("", ok), "public_url: required with bff"},
		{"unknown issuer", base("public_url: https://api.example.com\n", strings.Replace(ok, is, "https://other.example", 1)), "bff.issuer:"},
		{"no openid", base("public_url: https://api.example.com\n", strings.Replace(ok, "[openid]", "[orders:read]", 1)), "bff.scopes: must include openid"},
		{"no secret", base("public_url: https://api.example.com\n", strings.Replace(ok, "  client_secret: s\n", "", 1)), "bff.client_secret: required"},
		{"redis without key", base("public_url: https://api.example.com\n", ok+"  session_store: redis://127.0.0.1:6379/0\n"), "bff.session_key: required with a Redis session store"},
		{"short key", base("public_url: https://api.example.com\n", ok+"  session_key: c2hvcnQ=\n"), "bff.session_key: must be 32 random bytes"},
		{"bad store", base("public_url: https://api.example.com\n", ok+"  session_store: memcached://x\n"), "bff.session_store: must be memory or a redis://"},
		{"bad par", base("public_url: https://api.example.com\n", ok+"  par: sometimes\n"), `bff.par: "sometimes" is not one of auto, required, off`},
		{"dpop without dpop.mode", base("public_url: https://api.example.com\n", ok+"  dpop: true\n"), "bff.dpop: needs dpop.mode: allowed or required"},
		{"route under path", strings.Replace(base("public_url: https://api.example.com\n", ok), `"GET /slow"`, `"GET /bff/x"`, 1), "is under bff.path /bff"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("t.yaml", []byte(tc.yaml), noEnv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestGatewayBFFUnderDPoPRequired: DPoP rules are for clients that hold
// keys; a session's token is held by the gateway, so under dpop.mode
// required (and on a require_dpop route) the session still works, while
// a client's own Bearer token is refused as before.
func TestGatewayBFFUnderDPoPRequired(t *testing.T) {
	addr := testkit.ClosedAddr(t)
	is := loginIssuer(t, "http://"+addr)
	up := startUpstream(t)
	y := dpopBFFYAML(addr, up.URL, is.URL(), "", "    require_dpop: true\n", "")
	g := runGateway(t, y)
	b := testkit.NewBrowser(t)
	b.Login(g.proxy, "")
	if resp, body := b.Do("GET", g.proxy+"/orders/1", "X-CSRF: 1"); resp.StatusCode != 200 {
		t.Errorf("session request under dpop required: %d %s", resp.StatusCode, body)
	}
	tok := mint(t, is, "orders:read")
	if resp, _ := do(t, "GET", g.proxy+"/orders/1", tok, nil); resp.StatusCode != 401 {
		t.Errorf("a client's Bearer token under dpop required: %d, want 401", resp.StatusCode)
	}
	// A client cannot borrow the exemption by sending a session-looking
	// request with its own Authorization header.
	if resp, _ := b.Do("GET", g.proxy+"/orders/1", "X-CSRF: 1", "Authorization: Bearer "+tok); resp.StatusCode != 401 {
		t.Errorf("a Bearer token beside the session cookie: %d, want 401", resp.StatusCode)
	}
}

// TestGatewayBFFReload: with the in-memory session store and no
// session_key, a reload keeps the sessions and lets a login started
// before it finish after it.
func TestGatewayBFFReload(t *testing.T) {
	addr := testkit.ClosedAddr(t)
	is := loginIssuer(t, "http://"+addr)
	g := startBFFGateway(t, is, addr, "")
	b := testkit.NewBrowser(t)
	b.Login(g.proxy, "")
	call := func(b *testkit.Browser) int {
		resp, _ := b.Do("GET", g.proxy+"/orders/7", "X-CSRF: 1", "Origin: "+g.proxy)
		return resp.StatusCode
	}
	if got := call(b); got != 200 {
		t.Fatalf("before the reload: %d", got)
	}
	late := testkit.NewBrowser(t)
	callback := late.StartLogin(g.proxy, "")

	y, err := os.ReadFile(g.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.reload(t, strings.Replace(string(y), "log_level: debug", "log_level: info", 1)); err != nil {
		t.Fatal(err)
	}
	if got := call(b); got != 200 {
		t.Errorf("the session after the reload: %d, want 200", got)
	}
	if resp, body := late.DoCrossSite("GET", callback); resp.StatusCode != http.StatusFound {
		t.Fatalf("a login started before the reload, finished after it: %d %s", resp.StatusCode, body)
	}
	if got := call(late); got != 200 {
		t.Errorf("that login's session: %d", got)
	}
}

// TestGatewayBFFDPoPSessions: with bff.dpop the tokens the token handler
// holds are DPoP-bound, and each session request reaches the upstream
// with a proof the gateway's own guard accepted under dpop.mode required
// with server nonces (the token handler takes them from the guard's nonce
// source); with bff.backchannel_logout its endpoint answers, and a forged
// logout token is refused and changes nothing.
func TestGatewayBFFDPoPSessions(t *testing.T) {
	addr := testkit.ClosedAddr(t)
	is := loginIssuer(t, "http://"+addr)
	up := startUpstream(t)
	y := dpopBFFYAML(addr, up.URL, is.URL(), "  nonce: true\n", "", "  dpop: true\n  backchannel_logout: true\n")
	g := runGateway(t, y)
	b := testkit.NewBrowser(t)
	b.Login(g.proxy, "")
	resp, body := b.Do("GET", g.proxy+"/orders/1", "X-CSRF: 1")
	if resp.StatusCode != 200 {
		t.Fatalf("DPoP-bound session request under dpop required with nonces: %d %s", resp.StatusCode, body)
	}
	up.mu.Lock()
	last := up.reqs[len(up.reqs)-1]
	up.mu.Unlock()
	if got := last.Header.Get("Authorization"); !strings.HasPrefix(got, "DPoP ") {
		t.Errorf("the upstream saw Authorization %.12q…, want the DPoP scheme", got)
	}
	if last.Header.Get("DPoP") == "" {
		t.Error("the upstream saw no DPoP proof")
	}

	post := func(form string) (*http.Response, string) {
		req, err := http.NewRequest("POST", g.proxy+"/bff/backchannel", strings.NewReader(form))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	forged := mint(t, is, "orders:read") // an access token, not a logout token
	resp, body = post("logout_token=" + forged)
	if resp.StatusCode != 400 || !strings.Contains(body, "invalid_request") || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("a forged logout token: %d %q, Cache-Control %q; want 400 invalid_request, no-store", resp.StatusCode, body, resp.Header.Get("Cache-Control"))
	}
	if resp, body := b.Do("GET", g.proxy+"/orders/1", "X-CSRF: 1"); resp.StatusCode != 200 {
		t.Errorf("the session after a forged logout token: %d %s, want 200", resp.StatusCode, body)
	}
	// The access line says what the back-channel request did, and never
	// carries the token.
	log := g.stderr.String()
	if !strings.Contains(log, "path=/bff/backchannel status=400") || !strings.Contains(log, "backchannel_logout=invalid sessions_ended=0") {
		t.Errorf("no access line with backchannel_logout=invalid sessions_ended=0:\n%s", log)
	}
	if strings.Contains(log, forged[:40]) {
		t.Error("the log holds the posted token")
	}
}

// dpopBFFYAML is a gateway on addr in front of upstream with a bff block
// on issuer and dpop.mode required; the extras are lines added to the
// dpop block, to the one route (GET /orders/, orders:read) and to the
// bff block.
func dpopBFFYAML(addr, upstream, issuer, dpopExtra, routeExtra, bffExtra string) string {
	return fmt.Sprintf(`listen: %s
metrics_listen: 127.0.0.1:0
upstream: %s
public_url: http://%s
audience: %s
issuers:
  - issuer: %s
dpop:
  mode: required
%sroutes:
  - pattern: "GET /orders/"
    scopes: [orders:read]
%sbff:
  issuer: %s
  client_id: spa
  client_secret: ${BFF_SECRET}
  scopes: [openid, offline_access, orders:read]
%s`, addr, upstream, addr, testkit.Audience, issuer, dpopExtra, routeExtra, issuer, bffExtra)
}
