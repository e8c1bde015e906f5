package interop_test

// TestBFFRound2WithOIDCProvider proves the token handler's second round
// (/work/shared/DESIGN.md "Token handler, round two"; docs/config.md
// bff.backchannel_logout, bff.par, bff.dpop) against panva's
// oidc-provider, once with the gateway's session store in memory and once
// in a real redis-server of the test's own:
//   - back-channel logout: a logout at the provider, from another
//     application of the same provider session, ends the session here
//     (and revokes its refresh token at the AS);
//   - forged, misdirected, stale and replayed logout tokens are refused,
//     and change nothing;
//   - PAR: with a client the AS lets log in only with pushed requests,
//     par auto and required log in with a browser redirect that carries
//     only client_id and request_uri; par "off" gets no session;
//   - DPoP-bound sessions: one key per session, the AS's nonce demands
//     answered with one retry (at login and at refresh), and every API
//     call forwarded with a DPoP proof for that call and that key.
//
// Each store runs one AS (lib/provider.mjs --serve, with the round-two
// options of startProvider's bff option) and five gateways in this
// process; the two stores run in parallel. Everything binds 127.0.0.1
// and every wait is bounded.

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/redistest"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

// providerKID is the kid of the AS's signing key in this test: the test
// holds its private half, to sign logout tokens of its own as the AS.
const providerKID = "interop-round2-rs256"

func TestBFFRound2WithOIDCProvider(t *testing.T) {
	needNode(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			var storeYAML string
			var env map[string]string
			if store == "redis" {
				srv, err := redistest.Start(t.TempDir())
				if errors.Is(err, redistest.ErrNotInstalled) {
					t.Skip(err.Error())
				}
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = srv.Kill() })
				sessionKey := make([]byte, 32)
				_, _ = rand.Read(sessionKey)
				storeYAML = "  session_store: " + srv.URL(0) + "\n  session_key: ${BFF_SESSION_KEY}\n"
				env = map[string]string{"BFF_SESSION_KEY": base64.StdEncoding.EncodeToString(sessionKey)}
			}
			round2(t, key, storeYAML, env)
		})
	}
}

// round2Env is one store's AS, upstream and gateways.
type round2Env struct {
	as        *oidcProvider
	up        *recordingUpstream
	key       *rsa.PrivateKey // the AS's signing key
	storeYAML string          // the bff block's session store lines
	env       map[string]string
	// The gateways' listeners, by name, made before the AS starts: it
	// registers their callbacks.
	lns map[string]net.Listener
}

// gateway names: the back-channel logout one (clients.bff), the PAR ones
// (clients.bffPAR) and the DPoP one (clients.bffDPoP).
var round2Gateways = []string{"backchannel", "par-auto", "par-required", "par-off", "dpop"}

func round2(t *testing.T, key *rsa.PrivateKey, storeYAML string, env map[string]string) {
	e := &round2Env{key: key, storeYAML: storeYAML, env: env, lns: map[string]net.Listener{}}
	var callbacks []string
	for _, name := range round2Gateways {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		e.lns[name] = ln
		t.Cleanup(func() { ln.Close() }) // those never served
		callbacks = append(callbacks, "http://"+ln.Addr().String()+"/bff/callback")
	}
	public := func(name string) string { return "http://" + e.lns[name].Addr().String() }
	e.as = startOIDCProviderWith(t, map[string]any{
		"audience": bffAudience,
		"keys":     []any{privateJWK(key, providerKID)},
		"bff": map[string]any{
			"redirectURIs":           callbacks,
			"postLogoutRedirectURIs": []string{public("backchannel") + "/"},
			"accessTokenTTL":         bffAccessTTL,
			"backchannelLogoutURI":   public("backchannel") + "/bff/backchannel",
			"otherApp":               map[string]any{"redirectURIs": []string{otherAppCallback}},
			"parOnly":                true,
			"dpop":                   true,
			"dpopNonce":              true,
		},
	})
	if e.as.meta.PAREndpoint == "" {
		t.Fatal("the AS's metadata has no pushed_authorization_request_endpoint")
	}
	e.up = startRecordingUpstream(t)

	// One gateway for both back-channel subtests: the second replays a
	// logout token of the first.
	gw, gwURL := e.gatewayFor(t, "backchannel", e.as.Clients.BFF, "  backchannel_logout: true\n", "")
	var genuine string // a logout token the AS sent
	t.Run("backchannel logout", func(t *testing.T) { genuine = e.backchannelLogout(t, gw, gwURL) })
	t.Run("forged logout tokens", func(t *testing.T) { e.forgedLogoutTokens(t, gw, gwURL, genuine) })
	t.Run("PAR", e.par)
	t.Run("DPoP-bound sessions", e.dpopSessions)
}

// gatewayFor starts the gateway called name, as clientID, with more
// lines for the bff block (after the session store's) and top-level
// YAML.
func (e *round2Env) gatewayFor(t *testing.T, name string, client clientCreds, bffYAML, top string) (*runningGateway, string) {
	t.Helper()
	ln := e.lns[name]
	public := "http://" + ln.Addr().String()
	env := map[string]string{"BFF_CLIENT_SECRET": client.Secret}
	for k, v := range e.env {
		env[k] = v
	}
	gw := startGatewayOn(t, ln, bffGatewayYAML(bffGateway{
		upstream: e.up.url, public: public, issuer: e.as.Issuer, clientID: client.ID,
		top: top, bff: e.storeYAML + bffYAML,
	}), env)
	return gw, public
}

// login logs b in at the gateway at public (through the AS), and
// returns the callback URL the AS sent it to, visited.
func (e *round2Env) login(t *testing.T, b *testkit.Browser, public string, check func(authz *url.URL)) {
	t.Helper()
	loc := startLogin(t, b, public, e.as, "?return_to=/orders/1")
	if check != nil {
		u, _ := url.Parse(loc)
		check(u)
	}
	cb := followAS(t, b, e.as, loc, public+"/bff/callback?")
	resp, body := b.Do("GET", cb)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/orders/1" {
		t.Fatalf("callback: %d, Location %q, %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if b.Cookies[sessionCookie] == "" {
		t.Fatal("no session cookie after the callback")
	}
}

// user is GET /bff/user's status and claims.
func user(t *testing.T, b *testkit.Browser, public string) (int, map[string]any) {
	t.Helper()
	resp, body := b.Do("GET", public+"/bff/user", "X-CSRF: 1", "Origin: "+public)
	var u map[string]any
	if resp.StatusCode == 200 {
		if err := json.Unmarshal([]byte(body), &u); err != nil {
			t.Fatalf("/bff/user: %v: %s", err, body)
		}
	}
	return resp.StatusCode, u
}

// otherAppCallback is the other application's redirect URI: never
// visited, the browser stops there.
const otherAppCallback = "http://127.0.0.1:9/other-app/callback"

// backchannelLogout: the browser logs in through the gateway, then at
// the other application (same provider session), and logs out from the
// other application at the provider, confirming with its form. The AS
// sends the gateway a logout token for its sid, which ends the session
// and revokes its refresh token. It returns that logout token.
func (e *round2Env) backchannelLogout(t *testing.T, gw *runningGateway, public string) string {
	as := e.as
	b := testkit.NewBrowser(t)
	e.login(t, b, public, nil)
	session := b.Cookies[sessionCookie]
	st := as.state(t)
	rt := lastClientRefreshToken(t, st, as.Clients.BFF.ID)
	if !as.active(t, rt) {
		t.Fatal("the session's refresh token is not active at the AS")
	}
	if resp, body := b.Do("GET", public+"/orders/1", "X-CSRF: 1", "Origin: "+public); resp.StatusCode != 200 {
		t.Fatalf("GET /orders/1: %d %s", resp.StatusCode, body)
	}

	// The other application, in the same browser: the AS knows the user
	// and only asks for its consent (the test interaction gives it).
	verifier := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	challenge := sha256.Sum256([]byte(verifier))
	authz := as.meta.AuthorizationEndpoint + "?" + url.Values{
		"client_id": {as.Clients.OtherApp.ID}, "response_type": {"code"}, "scope": {"openid"},
		"redirect_uri": {otherAppCallback}, "state": {"other-app-state"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(challenge[:])}, "code_challenge_method": {"S256"},
	}.Encode()
	if cb := followAS(t, b, as, authz, otherAppCallback+"?"); !strings.Contains(cb, "code=") {
		t.Fatalf("the other application's login: %s", cb)
	}

	// RP-initiated logout from the other application: the AS asks the
	// user to confirm; "Yes, sign me out" (logout=yes) ends the whole
	// provider session, so every client in it hears of it.
	m0 := gw.metric(t, "tokenguard_bff_backchannel_logouts_total", `result="ended"`)
	resp, page := b.Do("GET", as.meta.EndSessionEndpoint+"?"+url.Values{"client_id": {as.Clients.OtherApp.ID}}.Encode())
	if resp.StatusCode != 200 {
		t.Fatalf("end_session_endpoint: %d %.300s", resp.StatusCode, page)
	}
	action, xsrf := logoutForm(t, page)
	resp, body := postForm(t, b, action, url.Values{"xsrf": {xsrf}, "logout": {"yes"}})
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		t.Fatalf("logout confirmation: %d %.300s", resp.StatusCode, body)
	}

	// The AS calls /bff/backchannel (oidc-provider does so before it
	// answers the confirmation; polled all the same, bounded).
	var lt string
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _ := user(t, b, public); code == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session is still alive 10 s after the logout at the provider; logout tokens sent: %+v", as.state(t).LogoutTokens)
		}
		time.Sleep(50 * time.Millisecond)
	}
	st = as.state(t)
	for _, s := range st.LogoutTokens {
		if s.URI == public+"/bff/backchannel" {
			if s.Status != 200 {
				t.Errorf("the gateway answered the logout token %d, want 200", s.Status)
			}
			lt = s.Token
		}
	}
	if lt == "" {
		t.Fatalf("the AS sent no logout token to the gateway: %+v", st.LogoutTokens)
	}
	if h := jwtHeader(t, lt); h["typ"] != "logout+jwt" {
		t.Errorf("logout token typ %v", h["typ"])
	}
	if c := testkit.DecodeClaims(t, lt); c["sid"] == nil || !audIs(c["aud"], as.Clients.BFF.ID) {
		t.Errorf("logout token claims %v: want sid, aud %s", c, as.Clients.BFF.ID)
	}
	// The ended session's cookie is worth nothing (the 401 of /bff/user
	// expired it in the browser; an attacker who kept it would try).
	n := e.up.count()
	for _, path := range []string{"/orders/1", "/bff/user"} {
		b.Cookies[sessionCookie] = session
		if resp, body := b.Do("GET", public+path, "X-CSRF: 1", "Origin: "+public); resp.StatusCode != 401 || !strings.Contains(body, "login_required") {
			t.Errorf("%s with the session's cookie after the back-channel logout: %d %s", path, resp.StatusCode, body)
		}
	}
	if e.up.count() != n {
		t.Error("a call of the ended session reached the upstream")
	}
	// oidc-provider keeps the token handler's grant at a logout (its
	// refresh tokens outlive the provider session, persistsLogout): it
	// is the gateway that revoked the refresh token.
	if as.active(t, rt) {
		t.Error("the session's refresh token is still active at the AS")
	}
	if m := gw.metric(t, "tokenguard_bff_backchannel_logouts_total", `result="ended"`); m-m0 != 1 {
		t.Errorf(`tokenguard_bff_backchannel_logouts_total{result="ended"} +%v, want +1`, m-m0)
	}
	if m := gw.metric(t, "tokenguard_bff_sessions", ""); m != 0 {
		t.Errorf("tokenguard_bff_sessions = %v, want 0", m)
	}
	return lt
}

// forgedLogoutTokens: a live session, and logout tokens that must not end
// it: the AS's ID token, one signed with another key, one for another
// audience, a stale one, and the genuine one of backchannelLogout again.
// Then a valid one (signed with the AS's key, as the AS would) ends it,
// which shows the refused ones failed for their one flaw.
func (e *round2Env) forgedLogoutTokens(t *testing.T, gw *runningGateway, public, genuine string) {
	as := e.as
	// An ID token of the AS for this client: a second browser logs in
	// and out, and the logout_url carries it as id_token_hint.
	b3 := testkit.NewBrowser(t)
	e.login(t, b3, public, nil)
	resp, body := b3.Do("POST", public+"/bff/logout", "X-CSRF: 1", "Origin: "+public)
	if resp.StatusCode != 200 {
		t.Fatalf("logout: %d %s", resp.StatusCode, body)
	}
	var out struct {
		LogoutURL string `json:"logout_url"`
	}
	_ = json.Unmarshal([]byte(body), &out)
	lu, err := url.Parse(out.LogoutURL)
	if err != nil {
		t.Fatal(err)
	}
	idToken := lu.Query().Get("id_token_hint")
	if c := testkit.DecodeClaims(t, idToken); c["sid"] == nil {
		t.Fatalf("the ID token has no sid: %v", c)
	}

	b := testkit.NewBrowser(t)
	e.login(t, b, public, nil)
	rt := lastClientRefreshToken(t, as.state(t), as.Clients.BFF.ID)

	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// claims of a valid logout token for every session of the user.
	claims := func() map[string]any {
		return map[string]any{
			"iss": as.Issuer, "aud": as.Clients.BFF.ID, "sub": as.User,
			"iat": time.Now().Unix(), "jti": base64.RawURLEncoding.EncodeToString(randBytes(t, 16)),
			"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}},
		}
	}
	with := func(k string, v any) map[string]any { c := claims(); c[k] = v; return c }
	inv0 := gw.metric(t, "tokenguard_bff_backchannel_logouts_total", `result="invalid"`)
	rep0 := gw.metric(t, "tokenguard_bff_backchannel_logouts_total", `result="replayed"`)
	for _, tc := range []struct {
		name, token, result string
	}{
		{"an ID token", idToken, "invalid"},
		{"signed with another key", signJWT(t, other, providerKID, claims()), "invalid"},
		{"for another audience", signJWT(t, e.key, providerKID, with("aud", as.Clients.OtherApp.ID)), "invalid"},
		{"stale", signJWT(t, e.key, providerKID, with("iat", time.Now().Add(-10*time.Minute).Unix())), "invalid"},
		{"replayed", genuine, "replayed"},
	} {
		if tc.token == "" {
			t.Errorf("%s: no token", tc.name)
			continue
		}
		code, body := postLogoutToken(t, public, tc.token)
		if code != 400 || !strings.Contains(body, "invalid_request") {
			t.Errorf("logout token %s: %d %s, want 400 invalid_request", tc.name, code, body)
		}
		if code, _ := user(t, b, public); code != 200 {
			t.Fatalf("logout token %s ended the session (/bff/user %d)", tc.name, code)
		}
	}
	if d := gw.metric(t, "tokenguard_bff_backchannel_logouts_total", `result="invalid"`) - inv0; d != 4 {
		t.Errorf(`tokenguard_bff_backchannel_logouts_total{result="invalid"} +%v, want +4`, d)
	}
	if d := gw.metric(t, "tokenguard_bff_backchannel_logouts_total", `result="replayed"`) - rep0; d != 1 {
		t.Errorf(`tokenguard_bff_backchannel_logouts_total{result="replayed"} +%v, want +1`, d)
	}
	if !as.active(t, rt) {
		t.Error("a refused logout token revoked the session's refresh token")
	}

	// The control: the same claims, signed with the AS's key.
	valid := signJWT(t, e.key, providerKID, claims())
	if code, body := postLogoutToken(t, public, valid); code != 200 {
		t.Fatalf("a valid logout token (sub only): %d %s", code, body)
	}
	if code, _ := user(t, b, public); code != 401 {
		t.Errorf("after a valid logout token for the user: /bff/user %d, want 401", code)
	}
	if as.active(t, rt) {
		t.Error("the refresh token is still active after a valid logout token")
	}
	if code, body := postLogoutToken(t, public, valid); code != 400 || !strings.Contains(body, "invalid_request") {
		t.Errorf("the valid logout token again: %d %s, want 400", code, body)
	}
}

// par: with clients.bffPAR (require_pushed_authorization_requests at the
// AS), par auto and required log in, the browser carrying only client_id
// and request_uri; par "off" does not get a session.
func (e *round2Env) par(t *testing.T) {
	as := e.as
	for _, mode := range []string{"auto", "required"} {
		t.Run(mode, func(t *testing.T) {
			gw, public := e.gatewayFor(t, "par-"+mode, as.Clients.BFFPAR, "  par: "+mode+"\n", "")
			b := testkit.NewBrowser(t)
			e.login(t, b, public, func(u *url.URL) {
				q := u.Query()
				if len(q) != 2 || q.Get("client_id") != as.Clients.BFFPAR.ID || !strings.HasPrefix(q.Get("request_uri"), "urn:ietf:params:oauth:request_uri:") {
					t.Errorf("the browser's authorization request is not only client_id and request_uri: %s", u.RawQuery)
				}
			})
			code, u := user(t, b, public)
			if code != 200 || u["sub"] != as.User || !audIs(u["aud"], as.Clients.BFFPAR.ID) {
				t.Errorf("/bff/user: %d %v", code, u)
			}
			if resp, body := b.Do("GET", public+"/orders/1", "X-CSRF: 1", "Origin: "+public); resp.StatusCode != 200 {
				t.Errorf("GET /orders/1: %d %s", resp.StatusCode, body)
			}
			if m := gw.metric(t, "tokenguard_bff_logins_total", `result="success"`); m != 1 {
				t.Errorf(`tokenguard_bff_logins_total{result="success"} = %v, want 1`, m)
			}
		})
	}
	t.Run("off", func(t *testing.T) {
		// The AS's metadata does not say require_pushed_authorization_requests
		// (it is this client's rule only), so the gateway sends the browser
		// with the whole request; the AS refuses it at its authorization
		// endpoint and sends the error to the callback, which takes the
		// browser back to the app without a session.
		st0 := as.state(t)
		gw, public := e.gatewayFor(t, "par-off", as.Clients.BFFPAR, `  par: "off"`+"\n", "")
		b := testkit.NewBrowser(t)
		loc := startLogin(t, b, public, as, "?return_to=/orders/1")
		if u, _ := url.Parse(loc); u.Query().Get("request_uri") != "" || u.Query().Get("code_challenge") == "" {
			t.Errorf("par off pushed the request: %s", loc)
		}
		cb := followAS(t, b, as, loc, public+"/bff/callback?")
		u, _ := url.Parse(cb)
		if q := u.Query(); q.Get("error") != "invalid_request" || !strings.Contains(q.Get("error_description"), "Pushed Authorization Request must be used") {
			t.Errorf("the AS's answer to the unpushed request: %s", cb)
		}
		resp, body := b.Do("GET", cb)
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/orders/1" {
			t.Errorf("callback with the AS's error: %d, Location %q, %s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		if _, ok := b.Cookies[sessionCookie]; ok {
			t.Error("par off: a session cookie")
		}
		if code, _ := user(t, b, public); code != 401 {
			t.Errorf("par off: /bff/user %d, want 401", code)
		}
		if resp, body := b.Do("GET", public+"/orders/1", "X-CSRF: 1", "Origin: "+public); resp.StatusCode != 401 {
			t.Errorf("par off: GET /orders/1 %d %s, want 401", resp.StatusCode, body)
		}
		for result, want := range map[string]float64{"success": 0, "denied": 1} {
			if m := gw.metric(t, "tokenguard_bff_logins_total", `result="`+result+`"`); m != want {
				t.Errorf(`par off: tokenguard_bff_logins_total{result=%q} = %v, want %v`, result, m, want)
			}
		}
		if st := as.state(t); st.ClientGrants[as.Clients.BFFPAR.ID]["authorization_code"] != st0.ClientGrants[as.Clients.BFFPAR.ID]["authorization_code"] {
			t.Error("par off: the AS made a code grant")
		}
	})
}

// dpopSessions: with bff.dpop and a DPoP-bound client at an AS that
// requires nonces, two browsers' sessions get keys of their own, the
// AS's nonce demands are each answered by one retry, and every API call
// reaches the upstream as Authorization: DPoP with a proof for it.
func (e *round2Env) dpopSessions(t *testing.T) {
	as := e.as
	client := as.Clients.BFFDPoP
	gw, public := e.gatewayFor(t, "dpop", client, "  dpop: true\n", "dpop:\n  mode: required\n  nonce: true\n")
	st0 := as.state(t)
	browsers := []*testkit.Browser{testkit.NewBrowser(t), testkit.NewBrowser(t)}
	var lastUse time.Time
	for _, b := range browsers {
		e.login(t, b, public, nil)
	}
	st1 := as.state(t)
	reqs := clientTokenRequests(st1, client.ID)[len(clientTokenRequests(st0, client.ID)):]
	// The first code exchange meets the nonce demand and retries once
	// with the nonce; the second login already has it.
	want := []string{"nonce demand", "200 with nonce", "200 with nonce"}
	if got := reqs; !slices.Equal(got, want) {
		t.Errorf("token requests of two logins: %v, want %v", got, want)
	}

	// call makes an API call and checks what the upstream got.
	call := func(t *testing.T, b *testkit.Browser, path string) (tok, jkt string) {
		t.Helper()
		resp, body := b.Do("GET", public+path, "X-CSRF: 1", "Origin: "+public)
		lastUse = time.Now()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		got := e.up.last(t)
		tok, ok := strings.CutPrefix(got.Authorization, "DPoP ")
		if !ok {
			t.Fatalf("upstream Authorization %.20q…, want DPoP", got.Authorization)
		}
		// oidc-provider does not introspect its JWT access tokens
		// (unsupported_token_type): the cnf.jkt is read from the token,
		// whose signature is the AS's key's.
		verifyRS256(t, &e.key.PublicKey, tok)
		jkt = testkit.TokenJKT(t, tok)
		if jkt == "" {
			t.Fatalf("the access token has no cnf.jkt: %v", testkit.DecodeClaims(t, tok))
		}
		if c := testkit.DecodeClaims(t, tok); c["client_id"] != client.ID || !audIs(c["aud"], bffAudience) {
			t.Errorf("access token claims %v", c)
		}
		if got.DPoP == "" {
			t.Fatal("the upstream got no DPoP proof")
		}
		v, err := dpop.NewVerifier(dpop.Config{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := v.Verify(context.Background(), dpop.Request{Proof: got.DPoP, Method: "GET", URL: public + path, AccessToken: tok, JKT: jkt})
		if err != nil {
			t.Errorf("the upstream's DPoP proof for GET %s: %v", path, err)
		} else if p.JKT != jkt {
			t.Errorf("proof key %s, token's cnf.jkt %s", p.JKT, jkt)
		}
		var claims struct {
			HTM   string `json:"htm"`
			HTU   string `json:"htu"`
			Nonce string `json:"nonce"`
		}
		payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(got.DPoP, ".")[1])
		_ = json.Unmarshal(payload, &claims)
		if claims.HTM != "GET" || claims.HTU != public+path || claims.Nonce == "" {
			t.Errorf("proof htm %q htu %q nonce %q; want GET, %s and the gateway's nonce", claims.HTM, claims.HTU, claims.Nonce, public+path)
		}
		return tok, jkt
	}
	tok0, jkt0 := call(t, browsers[0], "/orders/1")
	_, jkt1 := call(t, browsers[1], "/orders/2")
	if jkt0 == jkt1 {
		t.Error("two sessions share a DPoP key")
	}

	// A refresh, at which the AS demands a fresh nonce.
	resp, err := httpClient.Post(as.Issuer+"/__test/dpop-nonce-demand", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	time.Sleep(time.Until(lastUse.Add(refreshDue)))
	st2 := as.state(t)
	m0 := gw.metric(t, "tokenguard_bff_refreshes_total", `result="success"`)
	tok2, jkt2 := call(t, browsers[0], "/orders/3")
	st3 := as.state(t)
	if tok2 == tok0 {
		t.Error("no refresh: the upstream got the old access token")
	}
	if jkt2 != jkt0 {
		t.Errorf("the refreshed token is bound to %s, the session's key is %s", jkt2, jkt0)
	}
	reqs = clientTokenRequests(st3, client.ID)[len(clientTokenRequests(st2, client.ID)):]
	if got, want := reqs, []string{"nonce demand", "200 with nonce"}; !slices.Equal(got, want) {
		t.Errorf("token requests of the refresh: %v, want %v", got, want)
	}
	if d := st3.ClientGrants[client.ID]["refresh_token"] - st2.ClientGrants[client.ID]["refresh_token"]; d != 1 {
		t.Errorf("the AS made %d refresh grants, want 1", d)
	}
	if m := gw.metric(t, "tokenguard_bff_refreshes_total", `result="success"`); m-m0 != 1 {
		t.Errorf(`tokenguard_bff_refreshes_total{result="success"} +%v, want +1`, m-m0)
	}
	// The other session still uses its own key.
	if _, jkt := call(t, browsers[1], "/orders/4"); jkt != jkt1 {
		t.Errorf("the second session's key changed: %s, was %s", jkt, jkt1)
	}
}

// clientTokenRequests describes the AS's token requests of clientID.
func clientTokenRequests(st *asState, clientID string) []string {
	var out []string
	for _, r := range st.TokenRequests {
		if r.ClientID != clientID {
			continue
		}
		switch {
		case !r.DPoP:
			out = append(out, fmt.Sprintf("%d without a proof", r.Status))
		case r.NonceDemand:
			out = append(out, "nonce demand")
		case r.Nonce:
			out = append(out, fmt.Sprintf("%d with nonce", r.Status))
		default:
			out = append(out, fmt.Sprintf("%d without nonce", r.Status))
		}
	}
	return out
}

// lastClientRefreshToken is the newest refresh token the AS issued to
// clientID.
func lastClientRefreshToken(t *testing.T, st *asState, clientID string) string {
	t.Helper()
	for i := len(st.RefreshTokens) - 1; i >= 0; i-- {
		if st.RefreshTokens[i].ClientID == clientID {
			return st.RefreshTokens[i].Value
		}
	}
	t.Fatalf("no refresh token of client %s", clientID)
	return ""
}

var (
	formActionRe = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)
	xsrfRe       = regexp.MustCompile(`name="xsrf" value="([^"]+)"`)
)

// logoutForm reads the action and the xsrf value of oidc-provider's
// logout confirmation page.
func logoutForm(t *testing.T, page string) (action, xsrf string) {
	t.Helper()
	a, x := formActionRe.FindStringSubmatch(page), xsrfRe.FindStringSubmatch(page)
	if a == nil || x == nil {
		t.Fatalf("no logout form: %.500s", page)
	}
	return html.UnescapeString(a[1]), html.UnescapeString(x[1])
}

// postForm is what b does when it submits a form: a POST of form to u
// with its cookies, keeping the ones it is given (testkit.Browser sends
// no bodies).
func postForm(t *testing.T, b *testkit.Browser, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range b.Cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	c := &http.Client{Timeout: testkit.Wait, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.MaxAge < 0 {
			delete(b.Cookies, ck.Name)
		} else {
			b.Cookies[ck.Name] = ck.Value
		}
	}
	return resp, string(body)
}

// postLogoutToken is the AS's back-channel call: POST /bff/backchannel
// with logout_token.
func postLogoutToken(t *testing.T, public, token string) (int, string) {
	t.Helper()
	resp, err := httpClient.PostForm(public+"/bff/backchannel", url.Values{"logout_token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(body)
}

// signJWT signs claims as a logout token (typ logout+jwt) with RS256.
func signJWT(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "logout+jwt", "kid": kid})
	p, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// privateJWK is key as a private RS256 JWK (RFC 7518 §6.3.2), for the
// AS's keystore.
func privateJWK(key *rsa.PrivateKey, kid string) map[string]string {
	key.Precompute()
	b := func(i *big.Int) string { return base64.RawURLEncoding.EncodeToString(i.Bytes()) }
	return map[string]string{
		"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": b(key.N), "e": b(big.NewInt(int64(key.E))), "d": b(key.D),
		"p": b(key.Primes[0]), "q": b(key.Primes[1]),
		"dp": b(key.Precomputed.Dp), "dq": b(key.Precomputed.Dq), "qi": b(key.Precomputed.Qinv),
	}
}

// verifyRS256 fails the test unless tok is a JWT signed by key (RS256).
func verifyRS256(t *testing.T, key *rsa.PublicKey, tok string) {
	t.Helper()
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err == nil {
		sum := sha256.Sum256([]byte(tok[:i]))
		err = rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig)
	}
	if err != nil || jwtHeader(t, tok)["alg"] != "RS256" {
		t.Errorf("the access token is not signed by the AS's key: %v", err)
	}
}

func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
