package bff_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// newBackchannelEnv is newEnv with back-channel logout on.
func newBackchannelEnv(t *testing.T, change func(*bff.Config)) *env {
	t.Helper()
	return newEnv(t, func(c *bff.Config) {
		c.BackchannelLogout = true
		if change != nil {
			change(c)
		}
	})
}

// identity returns the sub and sid of b's session, from /bff/user.
func identity(t *testing.T, e *env, b *browser) (sub, sid string) {
	t.Helper()
	resp, body := b.do("GET", e.app.URL+"/bff/user?slide=false", "X-CSRF: 1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/user: %d %s", resp.StatusCode, body)
	}
	var c struct{ Sub, Sid string }
	if err := json.Unmarshal([]byte(body), &c); err != nil || c.Sub == "" || c.Sid == "" {
		t.Fatalf("/user = %s: no sub or sid (%v)", body, err)
	}
	return c.Sub, c.Sid
}

// alive reports whether b's session still works, through /user (without
// sliding it) and through the API (Authenticate), which must agree.
func alive(t *testing.T, e *env, b *browser) bool {
	t.Helper()
	cookie := b.Cookies[bff.SessionCookie]
	resp, body := b.do("GET", e.app.URL+"/bff/user?slide=false", "X-CSRF: 1")
	user := resp.StatusCode
	if user != http.StatusOK && user != http.StatusUnauthorized {
		t.Fatalf("/user: %d %s", user, body)
	}
	b.Cookies[bff.SessionCookie] = cookie // a 401 expired it; ask the API too
	resp, body = b.api(e)
	if resp.StatusCode != user {
		t.Fatalf("/user is %d but the API %d (%s)", user, resp.StatusCode, body)
	}
	return user == http.StatusOK
}

// logoutClaims returns the claims of a valid logout token from e's issuer
// for sub and sid ("" leaves either out).
func logoutClaims(e *env, sub, sid string) map[string]any {
	c := map[string]any{
		"iss": e.is.URL(), "aud": clientID, "iat": time.Now().Unix(), "exp": time.Now().Add(2 * time.Minute).Unix(),
		"jti": randomJTI(), "events": map[string]any{backchannelEvent: map[string]any{}},
	}
	if sub != "" {
		c["sub"] = sub
	}
	if sid != "" {
		c["sid"] = sid
	}
	return c
}

var jtiCounter atomic.Int64

func randomJTI() string {
	sum := sha256.Sum256([]byte(time.Now().String() + string(rune(jtiCounter.Add(1)))))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// signLogout signs claims with the issuer's key, typ logout+jwt unless
// header says otherwise (a nil value removes a member).
func signLogout(t *testing.T, key *devissuer.Key, header, claims map[string]any) string {
	t.Helper()
	h := map[string]any{"typ": "logout+jwt"}
	for k, v := range header {
		h[k] = v
	}
	tok, err := key.Sign(h, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// postLogout posts a form to /bff/backchannel as the authorization server
// does and returns the response and its body.
func postLogout(t *testing.T, e *env, contentType, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.app.URL+"/bff/backchannel", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const formType = "application/x-www-form-urlencoded"

func sendLogout(t *testing.T, e *env, token string) (*http.Response, string) {
	t.Helper()
	return postLogout(t, e, formType, url.Values{"logout_token": {token}}.Encode())
}

// revocations returns how many refresh tokens the issuer revoked.
func revocations(e *env) int64 {
	_, _, n := e.is.Grants()
	return n
}

// TestBackchannelLogout: a valid logout token ends exactly the sessions it
// names (by sid, by sub, by both), everywhere they are used, and revokes
// their refresh tokens; other sessions go on.
func TestBackchannelLogout(t *testing.T) {
	tests := []struct {
		name string
		// token returns the logout token's sub and sid, given the
		// target session's and the other one's.
		sub, sid   func(sub, sid1, sid2 string) (string, string)
		wantEnded  [2]bool // sessions 1 and 2
		wantResult string
	}{
		{
			name:      "sid only",
			sub:       func(sub, sid1, sid2 string) (string, string) { return "", sid1 },
			wantEnded: [2]bool{true, false}, wantResult: "ended",
		},
		{
			name:      "sid and sub",
			sub:       func(sub, sid1, sid2 string) (string, string) { return sub, sid1 },
			wantEnded: [2]bool{true, false}, wantResult: "ended",
		},
		{
			name:      "sub only: every session of the subject",
			sub:       func(sub, sid1, sid2 string) (string, string) { return sub, "" },
			wantEnded: [2]bool{true, true}, wantResult: "ended",
		},
		{
			name:      "sid with another sub: both must match",
			sub:       func(sub, sid1, sid2 string) (string, string) { return "mallory", sid1 },
			wantEnded: [2]bool{false, false}, wantResult: "no_session",
		},
		{
			name:      "another subject",
			sub:       func(sub, sid1, sid2 string) (string, string) { return "bob", "" },
			wantEnded: [2]bool{false, false}, wantResult: "no_session",
		},
		{
			name:      "unknown sid",
			sub:       func(sub, sid1, sid2 string) (string, string) { return "", "no-such-sid" },
			wantEnded: [2]bool{false, false}, wantResult: "no_session",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newBackchannelEnv(t, nil)
			b1, b2 := newBrowser(t), newBrowser(t)
			b1.login(e, "")
			b2.login(e, "")
			sub, sid1 := identity(t, e, b1)
			_, sid2 := identity(t, e, b2)
			if sid1 == sid2 {
				t.Fatal("two logins share a sid")
			}
			rev0 := revocations(e)
			lsub, lsid := tt.sub(sub, sid1, sid2)
			resp, body := sendLogout(t, e, signLogout(t, e.is.SigningKey(), nil, logoutClaims(e, lsub, lsid)))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("back-channel logout: %d %s", resp.StatusCode, body)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			ended := 0
			for i, b := range []*browser{b1, b2} {
				if got := !alive(t, e, b); got != tt.wantEnded[i] {
					t.Errorf("session %d ended = %v, want %v", i+1, got, tt.wantEnded[i])
				}
				if tt.wantEnded[i] {
					ended++
				}
			}
			if got := revocations(e) - rev0; got != int64(ended) {
				t.Errorf("refresh tokens revoked: %d, want %d", got, ended)
			}
			if n := counter(t, e.reg, "tokenguard_bff_backchannel_logouts_total", tt.wantResult); n != 1 {
				t.Errorf("backchannel_logouts_total{result=%q} = %v, want 1", tt.wantResult, n)
			}
		})
	}
}

// TestBackchannelLogoutRefused: every rule of the logout token and of the
// request has a case, built from a token that is valid for a live
// session but for that one rule: 400 invalid_request, the session alive,
// nothing revoked. Without the rule, the session would end.
func TestBackchannelLogoutRefused(t *testing.T) {
	logs := &testkit.LockedBuffer{}
	e := newBackchannelEnv(t, func(c *bff.Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	otherKey, err := devissuer.GenerateKey("ES256", "k1") // same kid, not published
	if err != nil {
		t.Fatal(err)
	}
	usedJTI := randomJTI()
	// The jti is used once, by a valid token that matches nothing.
	{
		c := logoutClaims(e, "nobody", "")
		c["jti"] = usedJTI
		if resp, body := sendLogout(t, e, signLogout(t, e.is.SigningKey(), nil, c)); resp.StatusCode != http.StatusOK {
			t.Fatalf("the first use of the jti: %d %s", resp.StatusCode, body)
		}
	}
	unsigned := func(header map[string]any, claims map[string]any) string {
		h, _ := json.Marshal(header)
		p, _ := json.Marshal(claims)
		return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
	}
	raw := func(t *testing.T, payload string) string {
		tok, err := e.is.SigningKey().SignPayload(map[string]any{"typ": "logout+jwt"}, []byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	now := time.Now()
	tests := []struct {
		name string
		// token makes the logout token for a session with sub and sid;
		// nil means the form is given by form.
		token func(t *testing.T, sub, sid string) string
		// form, contentType and method describe the request when token
		// is nil (form gets the valid token for the session).
		form        func(tok string) string
		contentType string
		method      string
		result      string
	}{
		{name: "bad signature (another key, same kid)", token: func(t *testing.T, sub, sid string) string {
			return signLogout(t, otherKey, nil, logoutClaims(e, sub, sid))
		}},
		{name: "alg none", token: func(t *testing.T, sub, sid string) string {
			return unsigned(map[string]any{"alg": "none", "kid": "k1", "typ": "logout+jwt"}, logoutClaims(e, sub, sid))
		}},
		{name: "alg HS256 (signed with nothing we hold)", token: func(t *testing.T, sub, sid string) string {
			return unsigned(map[string]any{"alg": "HS256", "kid": "k1", "typ": "logout+jwt"}, logoutClaims(e, sub, sid)) + "c2ln"
		}},
		{name: "signature of another token", token: func(t *testing.T, sub, sid string) string {
			good := signLogout(t, e.is.SigningKey(), nil, logoutClaims(e, sub, "other-sid"))
			forged := signLogout(t, e.is.SigningKey(), nil, logoutClaims(e, sub, sid))
			return forged[:strings.LastIndexByte(forged, '.')] + good[strings.LastIndexByte(good, '.'):]
		}},
		{name: "wrong iss", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, sid)
			c["iss"] = "https://evil.example"
			return signLogout(t, e.is.SigningKey(), nil, c)
		}},
		{name: "wrong aud", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, sid)
			c["aud"] = "another-client"
			return signLogout(t, e.is.SigningKey(), nil, c)
		}},
		{name: "azp of another client", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, sid)
			c["aud"], c["azp"] = []string{clientID, "another-client"}, "another-client"
			return signLogout(t, e.is.SigningKey(), nil, c)
		}},
		{name: "no iat", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, sid)
			delete(c, "iat")
			return signLogout(t, e.is.SigningKey(), nil, c)
		}},
		{name: "iat 10 minutes ago", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, sid)
			c["iat"], c["exp"] = now.Add(-10*time.Minute).Unix(), now.Add(time.Hour).Unix()
			return signLogout(t, e.is.SigningKey(), nil, c)
		}},
		{name: "iat 10 minutes ahead", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, sid)
			c["iat"], c["exp"] = now.Add(10*time.Minute).Unix(), now.Add(time.Hour).Unix()
			return signLogout(t, e.is.SigningKey(), nil, c)
		}},
		{name: "expired", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, sid)
			c["iat"], c["exp"] = now.Add(-3*time.Minute).Unix(), now.Add(-2*time.Minute).Unix()
			return signLogout(t, e.is.SigningKey(), nil, c)
		}},
		{name: "nbf ahead", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, sid)
			c["nbf"] = now.Add(10 * time.Minute).Unix()
			return signLogout(t, e.is.SigningKey(), nil, c)
		}},
		{name: "no jti", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, sid)
			delete(c, "jti")
			return signLogout(t, e.is.SigningKey(), nil, c)
		}},
		{name: "jti used already", result: "replayed", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, sid)
			c["jti"] = usedJTI
			return signLogout(t, e.is.SigningKey(), nil, c)
		}},
		{name: "typ JWT", token: func(t *testing.T, sub, sid string) string {
			return signLogout(t, e.is.SigningKey(), map[string]any{"typ": "JWT"}, logoutClaims(e, sub, sid))
		}},
		{name: "typ at+jwt", token: func(t *testing.T, sub, sid string) string {
			return signLogout(t, e.is.SigningKey(), map[string]any{"typ": "at+jwt"}, logoutClaims(e, sub, sid))
		}},
		{name: "an ID token (typ JWT, nonce, no events)", token: func(t *testing.T, sub, sid string) string {
			return signLogout(t, e.is.SigningKey(), map[string]any{"typ": "JWT"}, map[string]any{
				"iss": e.is.URL(), "aud": clientID, "sub": sub, "sid": sid, "iat": now.Unix(),
				"exp": now.Add(time.Hour).Unix(), "nonce": "n-0S6_WzA2Mj", "jti": randomJTI(),
			})
		}},
		{name: "ID token claims without typ", token: func(t *testing.T, sub, sid string) string {
			return signLogout(t, e.is.SigningKey(), map[string]any{"typ": nil}, map[string]any{
				"iss": e.is.URL(), "aud": clientID, "sub": sub, "sid": sid, "iat": now.Unix(),
				"exp": now.Add(time.Hour).Unix(), "nonce": "n-0S6_WzA2Mj", "jti": randomJTI(),
			})
		}},
		{name: "no events", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, sid)
			delete(c, "events")
			return signLogout(t, e.is.SigningKey(), nil, c)
		}},
		{name: "events without the back-channel member", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, sid)
			c["events"] = map[string]any{"http://schemas.openid.net/event/other": map[string]any{}}
			return signLogout(t, e.is.SigningKey(), nil, c)
		}},
		{name: "event member not an object", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, sid)
			c["events"] = map[string]any{backchannelEvent: "{}"}
			return signLogout(t, e.is.SigningKey(), nil, c)
		}},
		{name: "events not an object", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, sid)
			c["events"] = []string{backchannelEvent}
			return signLogout(t, e.is.SigningKey(), nil, c)
		}},
		{name: "neither sid nor sub", token: func(t *testing.T, sub, sid string) string {
			return signLogout(t, e.is.SigningKey(), nil, logoutClaims(e, "", ""))
		}},
		{name: "empty sid, no sub", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, "")
			delete(c, "sub")
			c["sid"] = ""
			return signLogout(t, e.is.SigningKey(), nil, c)
		}},
		{name: "sid not a string", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, "")
			c["sid"] = 42
			return signLogout(t, e.is.SigningKey(), nil, c)
		}},
		{name: "nonce", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, sid)
			c["nonce"] = "n-0S6_WzA2Mj"
			return signLogout(t, e.is.SigningKey(), nil, c)
		}},
		{name: "nonce null", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, sid)
			c["nonce"] = nil
			return signLogout(t, e.is.SigningKey(), nil, c)
		}},
		{name: "duplicate sid (the second one the session's)", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, "", "")
			p, _ := json.Marshal(c)
			sidJSON, _ := json.Marshal(sid)
			return raw(t, strings.TrimSuffix(string(p), "}")+`,"sid":"other","sid":`+string(sidJSON)+`}`)
		}},
		{name: "duplicate events", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, sid)
			delete(c, "events")
			p, _ := json.Marshal(c)
			return raw(t, strings.TrimSuffix(string(p), "}")+`,"events":{},"events":{"`+backchannelEvent+`":{}}}`)
		}},
		{name: "GET", method: http.MethodGet, form: func(tok string) string { return "" }},
		{name: "PUT", method: http.MethodPut, contentType: formType, form: func(tok string) string { return url.Values{"logout_token": {tok}}.Encode() }},
		{name: "JSON body", contentType: "application/json", form: func(tok string) string { return `{"logout_token":"` + tok + `"}` }},
		{name: "form as text/plain", contentType: "text/plain", form: func(tok string) string { return url.Values{"logout_token": {tok}}.Encode() }},
		{name: "no content type", form: func(tok string) string { return url.Values{"logout_token": {tok}}.Encode() }},
		{name: "oversized body", contentType: formType, form: func(tok string) string {
			return url.Values{"logout_token": {tok}, "pad": {strings.Repeat("a", 70<<10)}}.Encode()
		}},
		{name: "no logout_token", contentType: formType, form: func(tok string) string { return url.Values{"token": {tok}}.Encode() }},
		{name: "two logout_tokens", contentType: formType, form: func(tok string) string {
			return url.Values{"logout_token": {tok, tok}}.Encode()
		}},
		{name: "logout_token in the query only", contentType: formType, form: func(tok string) string { return "" }},
		{name: "malformed form", contentType: formType, form: func(tok string) string { return "logout_token=" + tok + "&%zz" }},
		{name: "logout_token larger than MaxTokenSize", token: func(t *testing.T, sub, sid string) string {
			c := logoutClaims(e, sub, sid)
			c["pad"] = strings.Repeat("a", bff.MaxTokenSize)
			return signLogout(t, e.is.SigningKey(), nil, c)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBrowser(t)
			b.login(e, "")
			sub, sid := identity(t, e, b)
			rev0 := revocations(e)
			result := tt.result
			if result == "" {
				result = "invalid"
			}
			before := counter(t, e.reg, "tokenguard_bff_backchannel_logouts_total", result)
			logged := strings.Count(logs.String(), "back-channel logout refused")
			var resp *http.Response
			var body, tok string
			if tt.token != nil {
				tok = tt.token(t, sub, sid)
				resp, body = sendLogout(t, e, tok)
			} else {
				tok = signLogout(t, e.is.SigningKey(), nil, logoutClaims(e, sub, sid))
				method := tt.method
				if method == "" {
					method = http.MethodPost
				}
				target := e.app.URL + "/bff/backchannel?" + url.Values{"logout_token": {tok}}.Encode()
				req, err := http.NewRequestWithContext(t.Context(), method, target, strings.NewReader(tt.form(tok)))
				if err != nil {
					t.Fatal(err)
				}
				if tt.contentType != "" {
					req.Header.Set("Content-Type", tt.contentType)
				}
				r, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				bb, _ := io.ReadAll(r.Body)
				r.Body.Close()
				resp, body = r, string(bb)
			}
			if resp.StatusCode != http.StatusBadRequest || strings.TrimSpace(body) != `{"error":"invalid_request"}` {
				t.Errorf("answer %d %s, want 400 invalid_request", resp.StatusCode, body)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			if !alive(t, e, b) {
				t.Error("the session was ended")
			}
			if n := revocations(e) - rev0; n != 0 {
				t.Errorf("%d refresh tokens revoked", n)
			}
			if n := counter(t, e.reg, "tokenguard_bff_backchannel_logouts_total", result); n != before+1 {
				t.Errorf("backchannel_logouts_total{result=%q} went %v -> %v", result, before, n)
			}
			out := logs.String()
			if n := strings.Count(out, "back-channel logout refused"); n != logged+1 {
				t.Errorf("%d log lines for the refusal, want 1", n-logged)
			}
			for _, secret := range []string{tok[:40], tok[len(tok)-20:], sid} {
				if strings.Contains(out, secret) {
					t.Errorf("the log holds %q", secret)
				}
			}
		})
	}
}

// TestBackchannelLogoutReplay: the same logout token twice: the first
// ends the session, the second is refused and changes nothing (a new
// session of the same sid, say a re-login, is not ended by it).
func TestBackchannelLogoutReplay(t *testing.T) {
	e := newBackchannelEnv(t, nil)
	b := newBrowser(t)
	b.login(e, "")
	sub, _ := identity(t, e, b)
	tok := signLogout(t, e.is.SigningKey(), nil, logoutClaims(e, sub, ""))
	if resp, body := sendLogout(t, e, tok); resp.StatusCode != http.StatusOK {
		t.Fatalf("first: %d %s", resp.StatusCode, body)
	}
	if alive(t, e, b) {
		t.Fatal("the session survived")
	}
	b.login(e, "")
	if resp, body := sendLogout(t, e, tok); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("replay: %d %s, want 400", resp.StatusCode, body)
	}
	if !alive(t, e, b) {
		t.Error("the replay ended the new session")
	}
	if n := counter(t, e.reg, "tokenguard_bff_backchannel_logouts_total", "replayed"); n != 1 {
		t.Errorf("replayed = %v", n)
	}
}

// TestBackchannelLogoutDisabled: without Config.BackchannelLogout the path
// is unknown, and a logout token changes nothing.
func TestBackchannelLogoutDisabled(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)
	b.login(e, "")
	sub, sid := identity(t, e, b)
	resp, body := sendLogout(t, e, signLogout(t, e.is.SigningKey(), nil, logoutClaims(e, sub, sid)))
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "not_found") {
		t.Errorf("disabled: %d %s, want 404", resp.StatusCode, body)
	}
	if !alive(t, e, b) {
		t.Error("the session was ended")
	}
	if got, want := e.h.BackchannelLogoutURI(), e.app.URL+"/bff/backchannel"; got != want {
		t.Errorf("BackchannelLogoutURI = %q, want %q", got, want)
	}
}

// TestBackchannelLogoutWaitsForRefresh: a session whose lock is held (a
// refresh in flight, here or at another replica) is ended only once the
// lock is released, so that the refresh cannot save it again after.
func TestBackchannelLogoutWaitsForRefresh(t *testing.T) {
	store, _ := bff.NewMemoryStore(0)
	e := newBackchannelEnv(t, func(c *bff.Config) { c.Store = store })
	b := newBrowser(t)
	b.login(e, "")
	sub, sid := identity(t, e, b)
	sum := sha256.Sum256([]byte(b.Cookies[bff.SessionCookie]))
	lock := "l/" + base64.RawURLEncoding.EncodeToString(sum[:])
	tok, err := store.Lock(t.Context(), lock, time.Minute)
	if err != nil || tok == "" {
		t.Fatalf("taking the session's lock: %q, %v", tok, err)
	}
	done := make(chan int, 1)
	logout := signLogout(t, e.is.SigningKey(), nil, logoutClaims(e, sub, sid))
	go func() {
		resp, _ := sendLogout(t, e, logout)
		done <- resp.StatusCode
	}()
	select {
	case code := <-done:
		t.Fatalf("the logout answered %d while the session's lock was held", code)
	case <-time.After(300 * time.Millisecond):
	}
	// The "refresh" saves the session and lets go.
	if err := store.Unlock(context.Background(), lock, tok); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != http.StatusOK {
		t.Fatalf("logout: %d", code)
	}
	if alive(t, e, b) {
		t.Error("the session survived")
	}
}

// TestBackchannelLogoutStoreUnavailable: when the store cannot be asked,
// the answer is 503 (not 200: the authorization server must retry), the
// session stays, and the retry is not refused as a replay. A login whose
// session cannot be indexed fails rather than make a session no logout
// token could end.
func TestBackchannelLogoutStoreUnavailable(t *testing.T) {
	mem, _ := bff.NewMemoryStore(0)
	st := &failingStore{MemoryStore: mem, err: bff.ErrStoreUnavailable}
	e := newBackchannelEnv(t, func(c *bff.Config) { c.Store = st; c.SessionKey = make([]byte, bff.SessionKeySize) })
	b := newBrowser(t)
	b.login(e, "")
	sub, sid := identity(t, e, b)
	tok := signLogout(t, e.is.SigningKey(), nil, logoutClaims(e, sub, sid))

	for _, fail := range []struct {
		name string
		flag *atomic.Bool
	}{{"index unreadable", &st.failIndex}, {"jti not recordable", &st.failLock}, {"session unreadable", &st.failGet}} {
		fail.flag.Store(true)
		resp, body := sendLogout(t, e, tok)
		fail.flag.Store(false)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "temporarily_unavailable") {
			t.Errorf("%s: %d %s, want 503", fail.name, resp.StatusCode, body)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control = %q", fail.name, cc)
		}
		if !alive(t, e, b) {
			t.Fatalf("%s: the session was ended", fail.name)
		}
	}
	if n := counter(t, e.reg, "tokenguard_bff_backchannel_logouts_total", "unavailable"); n != 3 {
		t.Errorf("unavailable = %v, want 3", n)
	}
	// The retry of the same token.
	if resp, body := sendLogout(t, e, tok); resp.StatusCode != http.StatusOK {
		t.Fatalf("retry: %d %s", resp.StatusCode, body)
	}
	if alive(t, e, b) {
		t.Error("the session survived the retry")
	}

	st.failIndex.Store(true)
	b2 := newBrowser(t)
	resp, body := b2.do("GET", b2.startLogin(e, ""))
	st.failIndex.Store(false)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("callback with the index down: %d %s", resp.StatusCode, body)
	}
	if _, ok := b2.Cookies[bff.SessionCookie]; ok {
		t.Error("a session was made that no logout token could end")
	}
}

// TestBackchannelLogoutIndexCleanup: sessions that end (logout, a new
// login) leave their indexes, so that the indexes do not grow with stale
// entries; a logout token for them finds nothing.
func TestBackchannelLogoutIndexCleanup(t *testing.T) {
	store, _ := bff.NewMemoryStore(0)
	e := newBackchannelEnv(t, func(c *bff.Config) { c.Store = store })
	b := newBrowser(t)
	b.login(e, "")
	if n := store.Count("i/"); n != 2 {
		t.Fatalf("indexes after a login: %d, want 2 (sid, sub)", n)
	}
	b.login(e, "") // replaces the session
	if n := store.Count("i/"); n != 2 {
		t.Errorf("indexes after a second login: %d, want 2 (the new sid, the sub)", n)
	}
	if resp, _ := b.do("POST", e.app.URL+"/bff/logout", "X-CSRF: 1"); resp.StatusCode != http.StatusOK {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if n := store.Count("i/"); n != 0 {
		t.Errorf("indexes after logout: %d, want 0", n)
	}
}

// IndexAdd fails when failIndex is set.
func (s *failingStore) IndexAdd(ctx context.Context, key, member string, ttl time.Duration) error {
	if s.failIndex.Load() {
		return s.err
	}
	return s.MemoryStore.IndexAdd(ctx, key, member, ttl)
}

// IndexMembers fails when failIndex is set.
func (s *failingStore) IndexMembers(ctx context.Context, key string) ([]string, error) {
	if s.failIndex.Load() {
		return nil, s.err
	}
	return s.MemoryStore.IndexMembers(ctx, key)
}

// TestBackchannelLogoutKeysUnavailable: when the issuer's keys cannot be
// had, a logout token is neither accepted nor refused: 503, for the
// authorization server to retry, and the session stays.
func TestBackchannelLogoutKeysUnavailable(t *testing.T) {
	e := newBackchannelEnv(t, nil)
	e.is.FailJWKS(http.StatusServiceUnavailable) // before the handler's first look at the keys
	tok := signLogout(t, e.is.SigningKey(), nil, logoutClaims(e, "alice", ""))
	resp, body := sendLogout(t, e, tok)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("with no keys: %d %s, want 503", resp.StatusCode, body)
	}
	if n := counter(t, e.reg, "tokenguard_bff_backchannel_logouts_total", "unavailable"); n != 1 {
		t.Errorf("unavailable = %v, want 1", n)
	}
}

// TestBackchannelLogoutUnknownKID: a logout token whose kid the key set
// does not hold (a key the issuer may have published a moment ago, while
// refetches are rate limited) is 503, so that the issuer retries, and
// changes nothing.
func TestBackchannelLogoutUnknownKID(t *testing.T) {
	e := newBackchannelEnv(t, nil)
	b := newBrowser(t)
	b.login(e, "")
	sub, sid := identity(t, e, b)
	unknown, err := devissuer.GenerateKey("ES256", "k9")
	if err != nil {
		t.Fatal(err)
	}
	resp, body := sendLogout(t, e, signLogout(t, unknown, nil, logoutClaims(e, sub, sid)))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("unknown kid: %d %s, want 503", resp.StatusCode, body)
	}
	if !alive(t, e, b) {
		t.Error("a token with an unknown kid ended the session")
	}
	if n := counter(t, e.reg, "tokenguard_bff_backchannel_logouts_total", "unavailable"); n != 1 {
		t.Errorf("unavailable = %v, want 1", n)
	}
}

// TestBackchannelLogoutDuringLogin: a back-channel logout of a sid whose
// login has its code but has not saved its session yet (the logout reads
// the index before the session is in it) still ends that session: the
// logout leaves a marker, and the callback, once its session is saved,
// finds it and ends the session itself, revoking its refresh token.
func TestBackchannelLogoutDuringLogin(t *testing.T) {
	e := newBackchannelEnv(t, nil)
	b := newBrowser(t)
	callback := b.startLogin(e, "?return_to=/after")
	cb, err := url.Parse(callback)
	if err != nil {
		t.Fatal(err)
	}
	sid := e.is.SIDOfCode(cb.Query().Get("code"))
	if sid == "" {
		t.Fatal("the issuer knows no sid for the login's code")
	}
	resp, body := sendLogout(t, e, signLogout(t, e.is.SigningKey(), nil, logoutClaims(e, "", sid)))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("back-channel logout before the callback: %d %s", resp.StatusCode, body)
	}
	if n := counter(t, e.reg, "tokenguard_bff_backchannel_logouts_total", "no_session"); n != 1 {
		t.Errorf("backchannel_logouts_total{no_session} = %v, want 1", n)
	}
	rev0 := revocations(e)
	resp, body = b.DoCrossSite("GET", callback)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/after" {
		t.Fatalf("callback: %d, Location %q, %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if _, ok := b.Cookies[bff.SessionCookie]; ok {
		t.Error("the callback set a session cookie for a sid a back-channel logout ended")
	}
	if got := revocations(e) - rev0; got != 1 {
		t.Errorf("refresh tokens revoked: %d, want 1 (the session the callback ended)", got)
	}
	if n := counter(t, e.reg, "tokenguard_bff_logins_total", "denied"); n != 1 {
		t.Errorf("logins_total{denied} = %v, want 1", n)
	}
	// A later login (a new sid at the provider) is not affected.
	b.login(e, "")
	if !alive(t, e, b) {
		t.Error("a new login after the logout has no session")
	}
}

// lockFailStore is a MemoryStore whose session locks ("l/…") fail while
// failLocks is set.
type lockFailStore struct {
	*bff.MemoryStore
	failLocks atomic.Bool
}

func (s *lockFailStore) Lock(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if strings.HasPrefix(key, "l/") && s.failLocks.Load() {
		return "", errors.New("lock unavailable")
	}
	return s.MemoryStore.Lock(ctx, key, ttl)
}

// TestBackchannelLogoutWithoutLock: a session whose refresh lock cannot be
// taken is not deleted behind a refresh that may be in flight (which would
// save it again after the logout said it ended): 503, the session left
// alone, and the issuer's retry, once the lock is free, ends it.
func TestBackchannelLogoutWithoutLock(t *testing.T) {
	mem, _ := bff.NewMemoryStore(0)
	store := &lockFailStore{MemoryStore: mem}
	e := newBackchannelEnv(t, func(c *bff.Config) { c.Store, c.SessionKey = store, make([]byte, bff.SessionKeySize) })
	b := newBrowser(t)
	b.login(e, "")
	sub, sid := identity(t, e, b)
	logout := signLogout(t, e.is.SigningKey(), nil, logoutClaims(e, sub, sid))
	store.failLocks.Store(true)
	if resp, body := sendLogout(t, e, logout); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("logout without the session's lock: %d %s, want 503", resp.StatusCode, body)
	}
	store.failLocks.Store(false)
	if !alive(t, e, b) {
		t.Fatal("the session was deleted without its lock")
	}
	// The retry of the same token is carried out (its jti was forgotten).
	if resp, body := sendLogout(t, e, logout); resp.StatusCode != http.StatusOK {
		t.Fatalf("the retry: %d %s, want 200", resp.StatusCode, body)
	}
	if alive(t, e, b) {
		t.Error("the retry did not end the session")
	}
}
