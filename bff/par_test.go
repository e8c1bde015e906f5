package bff_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/testkit"
	"github.com/tokenguard/tokenguard/middleware"
)

// newTapEnv is newEnv whose handler reaches the issuer through a tap and
// logs into a buffer.
func newTapEnv(t *testing.T, change func(*bff.Config)) (*env, *tap, *testkit.LockedBuffer) {
	t.Helper()
	return newTapEnvGuard(t, change, nil)
}

// newTapEnvGuard is newTapEnv whose guard's Config guardChange edits.
func newTapEnvGuard(t *testing.T, change func(*bff.Config), guardChange func(*middleware.Config)) (*env, *tap, *testkit.LockedBuffer) {
	t.Helper()
	tp, logs := &tap{}, &testkit.LockedBuffer{}
	e := newEnvGuard(t, func(c *bff.Config) {
		c.HTTPClient = &http.Client{Transport: tp, Timeout: testkit.Wait}
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
		if change != nil {
			change(c)
		}
	}, guardChange)
	return e, tp, logs
}

// keys returns the sorted names of a query.
func keys(q url.Values) []string {
	var out []string
	for k := range q {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestPAR: when the authorization request is pushed (Config.PAR against
// what the issuer's metadata says), what the browser carries then, and
// that a login that cannot push fails closed.
func TestPAR(t *testing.T) {
	tests := []struct {
		name                 string
		par                  string
		asPAR, asRequirePAR  bool
		wantPush, wantRefuse bool
		wantLog              string
	}{
		{name: "default is auto: pushed when advertised", asPAR: true, wantPush: true},
		{name: "auto, advertised", par: bff.PARAuto, asPAR: true, wantPush: true},
		{name: "auto, not advertised", par: bff.PARAuto},
		{name: "auto, required by the issuer", par: bff.PARAuto, asRequirePAR: true, wantPush: true},
		{name: "required, advertised", par: bff.PARRequired, asPAR: true, wantPush: true},
		{name: "required, not advertised", par: bff.PARRequired, wantRefuse: true, wantLog: "no pushed_authorization_request_endpoint"},
		{name: "off, advertised", par: bff.PAROff, asPAR: true},
		{name: "off, required by the issuer", par: bff.PAROff, asRequirePAR: true, wantRefuse: true, wantLog: "require_pushed_authorization_requests"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, tp, logs := newTapEnv(t, func(c *bff.Config) { c.PAR = tc.par })
			e.enableLogin(func(l *devissuer.LoginConfig) { l.PAR, l.RequirePAR = tc.asPAR, tc.asRequirePAR })
			b := newBrowser(t)
			resp, body := b.do("GET", e.app.URL+"/bff/login?return_to=/x&prompt=login")
			if tc.wantRefuse {
				if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Location") != "" || len(b.Seen) != 0 {
					t.Fatalf("login: %d to %q, cookies %v (%s); want 503, no redirect, no cookie", resp.StatusCode, resp.Header.Get("Location"), b.Seen, body)
				}
				if !strings.Contains(logs.String(), tc.wantLog) {
					t.Errorf("log %q does not say %q", logs.String(), tc.wantLog)
				}
				if n := counter(t, e.reg, "tokenguard_bff_logins_total", "unavailable"); n != 1 {
					t.Errorf("logins unavailable = %v", n)
				}
				return
			}
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("login: %d %s", resp.StatusCode, body)
			}
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil || loc.Path != "/authorize" {
				t.Fatalf("login redirect %q", resp.Header.Get("Location"))
			}
			q := loc.Query()
			pushes := tp.requests("/par")
			if !tc.wantPush {
				if len(pushes) != 0 || e.is.Pushes() != 0 {
					t.Fatalf("%d pushes, want none", len(pushes))
				}
				if q.Get("response_type") != "code" || q.Get("code_challenge") == "" || q.Get("state") == "" {
					t.Errorf("front-channel request %v lacks its parameters", q)
				}
			} else {
				if got := keys(q); !slices.Equal(got, []string{"client_id", "request_uri"}) || q.Get("client_id") != clientID ||
					!strings.HasPrefix(q.Get("request_uri"), "urn:ietf:params:oauth:request_uri:") {
					t.Fatalf("browser redirect carries %v, want only client_id and request_uri", q)
				}
				if len(pushes) != 1 || e.is.Pushes() != 1 {
					t.Fatalf("%d pushes, want 1", len(pushes))
				}
				f := pushes[0].form
				for k, want := range map[string]string{
					"response_type": "code", "client_id": clientID, "code_challenge_method": "S256",
					"redirect_uri": e.app.URL + "/bff/callback", "resource": testkit.Audience,
					"scope": "openid offline_access orders:read", "prompt": "login",
				} {
					if got := f.Get(k); got != want {
						t.Errorf("pushed %s = %q, want %q", k, got, want)
					}
				}
				for _, k := range []string{"state", "nonce", "code_challenge"} {
					if len(f.Get(k)) < 43 {
						t.Errorf("pushed %s = %q", k, f.Get(k))
					}
				}
				if f.Has("client_secret") || f.Has("request_uri") {
					t.Errorf("pushed form has %v", keys(f))
				}
			}
			// The login completes either way.
			resp, body = b.do("GET", loc.String())
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("authorize: %d %s", resp.StatusCode, body)
			}
			if resp, body = b.DoCrossSite("GET", resp.Header.Get("Location")); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/x" {
				t.Fatalf("callback: %d %s", resp.StatusCode, body)
			}
			if r, _ := b.api(e); r.StatusCode != http.StatusOK {
				t.Errorf("api after login: %d", r.StatusCode)
			}
		})
	}
}

// TestPARClientAuth: the push authenticates the client exactly as the
// token request does, with each method, and the issuer accepts it.
func TestPARClientAuth(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tests := []struct {
		name   string
		change func(*bff.Config)
		check  func(t *testing.T, push, token tapped)
	}{
		{"client_secret_basic", nil, func(t *testing.T, push, token tapped) {
			a := push.header.Get("Authorization")
			if !strings.HasPrefix(a, "Basic ") || a != token.header.Get("Authorization") || push.form.Has("client_secret") {
				t.Errorf("push Authorization %q, token %q; push form %v", a, token.header.Get("Authorization"), keys(push.form))
			}
		}},
		{"client_secret_post", func(c *bff.Config) { c.ClientAuthMethod = bff.ClientSecretPost }, func(t *testing.T, push, token tapped) {
			if push.header.Get("Authorization") != "" || push.form.Get("client_secret") != clientSecret || token.form.Get("client_secret") != clientSecret {
				t.Errorf("push Authorization %q, form %v", push.header.Get("Authorization"), keys(push.form))
			}
		}},
		{"private_key_jwt", func(c *bff.Config) { c.ClientSecret, c.ClientKey = "", key }, func(t *testing.T, push, token tapped) {
			for _, r := range []tapped{push, token} {
				if r.header.Get("Authorization") != "" || r.form.Get("client_assertion") == "" ||
					r.form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || r.form.Has("client_secret") {
					t.Errorf("%s: Authorization %q, form %v", r.path, r.header.Get("Authorization"), keys(r.form))
				}
			}
			if push.form.Get("client_assertion") == token.form.Get("client_assertion") {
				t.Error("the push and the token request share one client assertion")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, tp, _ := newTapEnv(t, tc.change)
			e.enableLogin(func(l *devissuer.LoginConfig) {
				l.PAR = true
				if tc.name == "private_key_jwt" {
					l.Clients[0].Secret, l.Clients[0].PublicKey = "", &key.PublicKey
				}
			})
			b := newBrowser(t)
			b.login(e, "")
			pushes, tokens := tp.requests("/par"), tp.requests("/token")
			if len(pushes) != 1 || len(tokens) != 1 || e.is.Pushes() != 1 {
				t.Fatalf("%d pushes (%d accepted), %d token requests", len(pushes), e.is.Pushes(), len(tokens))
			}
			tc.check(t, pushes[0], tokens[0])
		})
	}
}

// TestPARBadAnswers: a push the issuer does not answer with 201 and a
// usable request_uri fails the login, with no redirect and no cookie: 503
// when the endpoint is down or failing, 502 for any other answer.
func TestPARBadAnswers(t *testing.T) {
	tests := []struct {
		name   string
		answer func() (*http.Response, error)
		want   int
	}{
		{"200, not 201", func() (*http.Response, error) {
			return answer(200, `{"request_uri":"urn:ietf:params:oauth:request_uri:x","expires_in":60}`), nil
		}, 502},
		{"no request_uri", func() (*http.Response, error) { return answer(201, `{"expires_in":60}`), nil }, 502},
		{"empty request_uri", func() (*http.Response, error) { return answer(201, `{"request_uri":"","expires_in":60}`), nil }, 502},
		{"request_uri not a string", func() (*http.Response, error) { return answer(201, `{"request_uri":42,"expires_in":60}`), nil }, 502},
		{"request_uri with a space", func() (*http.Response, error) {
			return answer(201, `{"request_uri":"urn:x y","expires_in":60}`), nil
		}, 502},
		{"request_uri too long", func() (*http.Response, error) {
			return answer(201, `{"request_uri":"urn:`+strings.Repeat("x", 2050)+`","expires_in":60}`), nil
		}, 502},
		{"no expires_in", func() (*http.Response, error) { return answer(201, `{"request_uri":"urn:x"}`), nil }, 502},
		{"expires_in zero", func() (*http.Response, error) { return answer(201, `{"request_uri":"urn:x","expires_in":0}`), nil }, 502},
		{"not JSON", func() (*http.Response, error) { return answer(201, `request_uri=urn:x`), nil }, 502},
		{"too large", func() (*http.Response, error) {
			return answer(201, `{"request_uri":"urn:x","expires_in":60,"pad":"`+strings.Repeat("x", 20<<10)+`"}`), nil
		}, 502},
		{"refused", func() (*http.Response, error) { return answer(400, `{"error":"invalid_request"}`), nil }, 502},
		{"unauthorized client", func() (*http.Response, error) { return answer(401, `{"error":"invalid_client"}`), nil }, 502},
		{"server error", func() (*http.Response, error) { return answer(500, `{"error":"server_error"}`), nil }, 503},
		{"unreachable", func() (*http.Response, error) { return nil, errors.New("dial tcp: connection refused (test)") }, 503},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, tp, logs := newTapEnv(t, func(c *bff.Config) { c.PAR = bff.PARRequired })
			e.enableLogin(func(l *devissuer.LoginConfig) { l.PAR = true })
			tp.setEdit(func(path string, resp *http.Response, err error) (*http.Response, error) {
				if path != "/par" {
					return resp, err
				}
				if resp != nil {
					_ = resp.Body.Close()
				}
				return tc.answer()
			})
			b := newBrowser(t)
			resp, body := b.do("GET", e.app.URL+"/bff/login")
			if resp.StatusCode != tc.want || resp.Header.Get("Location") != "" || len(b.Seen) != 0 {
				t.Fatalf("login: %d to %q, cookies %v (%s); want %d, no redirect, no cookie", resp.StatusCode, resp.Header.Get("Location"), b.Seen, body, tc.want)
			}
			if !strings.Contains(logs.String(), "could not be pushed") {
				t.Errorf("nothing logged: %q", logs.String())
			}
			if n := counter(t, e.reg, "tokenguard_bff_logins_total", "unavailable"); n != 1 {
				t.Errorf("logins unavailable = %v", n)
			}
		})
	}
}
