package gateway

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/dpoptest"
	"github.com/tokenguard/tokenguard/internal/redistest"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

// dpopKey is a client's DPoP key.
type dpopKey struct{ *dpoptest.Client }

func newDPoPKey(t testing.TB) *dpopKey {
	t.Helper()
	return &dpopKey{dpoptest.NewClient(t)}
}

// mintBound returns a token from is bound to k (cnf.jkt).
func (k *dpopKey) mintBound(t testing.TB, is *devissuer.Issuer, scope string) string {
	t.Helper()
	tok, err := is.Mint(scope, time.Hour, map[string]any{"cnf": map[string]any{"jkt": k.JKT}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// proof makes a proof with k for method and url, bound to token (if any)
// and carrying nonce (if any).
func (k *dpopKey) proof(t testing.TB, method, url, token, nonce string) string {
	t.Helper()
	return k.Proof(t, method, url, token, nonce)
}

// doDPoP sends a request with "Authorization: DPoP token" and, unless
// proof is empty, "DPoP: proof".
func doDPoP(t testing.TB, method, url, token, proof string) (*http.Response, string) {
	t.Helper()
	h := http.Header{"Authorization": {"DPoP " + token}}
	if proof != "" {
		h.Set("DPoP", proof)
	}
	return do(t, method, url, "", h)
}

// dpopGatewayYAML is gatewayYAML for is and up with a public_url and a
// dpop block; dpopExtra is appended to the dpop block.
func dpopGatewayYAML(is *devissuer.Issuer, up *upstream, publicURL, mode, dpopExtra string) string {
	return gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL,
		fmt.Sprintf("public_url: %s\ndpop:\n  mode: %s\n%s", publicURL, mode, dpopExtra))
}

// publicURL is where clients think the gateway is: as if it sat behind a
// TLS-terminating load balancer. Proofs are made for it, not for the
// gateway's own address.
const publicURL = "https://api.example.com"

func TestGatewayDPoP(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, dpopGatewayYAML(is, up, publicURL, "allowed", "  nonce: false\n  replay_store: memory\n"))
	key := newDPoPKey(t)
	tok := key.mintBound(t, is, "orders:read")

	wantDenied := func(t *testing.T, resp *http.Response, body, code string, before int) {
		t.Helper()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d, want 401; body %q", resp.StatusCode, body)
		}
		ch := strings.Join(resp.Header.Values("WWW-Authenticate"), ", ")
		if !strings.Contains(ch, `error="`+code+`"`) {
			t.Errorf("WWW-Authenticate = %q, want error=%q", ch, code)
		}
		if strings.Contains(body, tok) || strings.Contains(ch, tok) {
			t.Error("the response echoes the token")
		}
		if up.count() != before {
			t.Error("the request reached the upstream")
		}
	}

	proof := key.proof(t, "GET", publicURL+"/orders/7", tok, "")
	t.Run("bound token with a proof reaches the upstream", func(t *testing.T) {
		resp, body := doDPoP(t, "GET", g.proxy+"/orders/7?page=2", tok, proof)
		if resp.StatusCode != http.StatusOK || body != "upstream saw GET /orders/7" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		want := map[string][]string{
			"X-Tokenguard-Subject":   {"demo-user"},
			"X-Tokenguard-Client-Id": {"demo-client"},
			"X-Tokenguard-Scope":     {"orders:read"},
		}
		if diff := cmp.Diff(want, tokenguardHeaders(up.last(t).Header)); diff != "" {
			t.Errorf("upstream headers (-want +got):\n%s", diff)
		}
	})

	t.Run("the same proof again is a replay", func(t *testing.T) {
		before := up.count()
		resp, body := doDPoP(t, "GET", g.proxy+"/orders/7?page=2", tok, proof)
		wantDenied(t, resp, body, "invalid_dpop_proof", before)
	})

	t.Run("a fresh proof works again", func(t *testing.T) {
		resp, body := doDPoP(t, "GET", g.proxy+"/orders/7", tok, key.proof(t, "GET", publicURL+"/orders/7", tok, ""))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	})

	t.Run("bound token as Bearer", func(t *testing.T) {
		before := up.count()
		resp, body := do(t, "GET", g.proxy+"/orders/7", tok, nil)
		wantDenied(t, resp, body, "invalid_token", before)
	})

	for _, tc := range []struct {
		name, method, url, token string
		key                      *dpopKey
		code                     string
	}{
		{"proof for the gateway's own address, not public_url", "GET", g.proxy + "/orders/7", tok, key, "invalid_dpop_proof"},
		{"proof for another path", "GET", publicURL + "/orders/8", tok, key, "invalid_dpop_proof"},
		{"proof for another host", "GET", "https://evil.example.com/orders/7", tok, key, "invalid_dpop_proof"},
		{"proof for another method", "POST", publicURL + "/orders/7", tok, key, "invalid_dpop_proof"},
		{"proof for another token", "GET", publicURL + "/orders/7", mint(t, is, "orders:read"), key, "invalid_dpop_proof"},
		{"proof without ath", "GET", publicURL + "/orders/7", "", key, "invalid_dpop_proof"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := up.count()
			resp, body := doDPoP(t, "GET", g.proxy+"/orders/7", tok, tc.key.proof(t, tc.method, tc.url, tc.token, ""))
			wantDenied(t, resp, body, tc.code, before)
		})
	}

	t.Run("proof by another key", func(t *testing.T) {
		before := up.count()
		resp, body := doDPoP(t, "GET", g.proxy+"/orders/7", tok, newDPoPKey(t).proof(t, "GET", publicURL+"/orders/7", tok, ""))
		if resp.StatusCode != http.StatusUnauthorized || up.count() != before {
			t.Errorf("status %d (want 401), proxied %v; body %q", resp.StatusCode, up.count() != before, body)
		}
	})

	t.Run("DPoP scheme without a proof", func(t *testing.T) {
		before := up.count()
		resp, body := doDPoP(t, "GET", g.proxy+"/orders/7", tok, "")
		if resp.StatusCode != http.StatusUnauthorized || up.count() != before {
			t.Errorf("status %d (want 401), proxied %v; body %q", resp.StatusCode, up.count() != before, body)
		}
	})

	t.Run("unbound Bearer tokens still work in allowed mode", func(t *testing.T) {
		if resp, body := do(t, "GET", g.proxy+"/orders/7", mint(t, is, "orders:read"), nil); resp.StatusCode != http.StatusOK {
			t.Errorf("got %d %q", resp.StatusCode, body)
		}
	})

	t.Run("scopes still apply to DPoP tokens", func(t *testing.T) {
		resp, _ := doDPoP(t, "POST", g.proxy+"/orders/", tok, key.proof(t, "POST", publicURL+"/orders/", tok, ""))
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("status %d, want 403", resp.StatusCode)
		}
	})

	t.Run("no credentials: the challenge offers DPoP", func(t *testing.T) {
		resp, _ := do(t, "GET", g.proxy+"/orders/7", "", nil)
		ch := strings.Join(resp.Header.Values("WWW-Authenticate"), ", ")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(ch, "Bearer realm=") || !strings.Contains(ch, `DPoP `) || !strings.Contains(ch, `algs="`) {
			t.Errorf("status %d, WWW-Authenticate %q", resp.StatusCode, ch)
		}
	})

	t.Run("replays are counted", func(t *testing.T) {
		_, body := do(t, "GET", g.metric+"/metrics", "", nil)
		if !strings.Contains(body, "tokenguard_dpop_replays_total 1\n") {
			t.Errorf("/metrics lacks tokenguard_dpop_replays_total 1:\n%s", grepLines(body, "dpop"))
		}
	})

	if log := g.stderr.String(); strings.Contains(log, tok) || strings.Contains(log, proof) {
		t.Error("the log contains a token or a proof")
	}
	if !strings.Contains(g.stderr.String(), "dpop=allowed") || !strings.Contains(g.stderr.String(), "dpop_replay_store=memory") {
		t.Errorf("the start line does not say how DPoP is set up:\n%s", g.stderr)
	}
}

func grepLines(s, substr string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if strings.Contains(line, substr) {
			b.WriteString(line)
		}
	}
	return b.String()
}

func TestGatewayDPoPRequired(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, dpopGatewayYAML(is, up, publicURL, "required", ""))
	key := newDPoPKey(t)
	tok := key.mintBound(t, is, "orders:read")
	if resp, body := doDPoP(t, "GET", g.proxy+"/orders/", tok, key.proof(t, "GET", publicURL+"/orders/", tok, "")); resp.StatusCode != http.StatusOK {
		t.Errorf("DPoP: %d %q", resp.StatusCode, body)
	}
	if resp, _ := do(t, "GET", g.proxy+"/orders/", mint(t, is, "orders:read"), nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unbound Bearer token in required mode: %d, want 401", resp.StatusCode)
	}
}

// With TOKENGUARD_DPOP_NONCE_SECRETS shared, a nonce one replica hands out
// is accepted by another.
func TestGatewayDPoPNonceSharedSecret(t *testing.T) {
	t.Setenv(NonceSecretsEnv, base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef-shared")))
	is := startIssuer(t)
	up := startUpstream(t)
	y := dpopGatewayYAML(is, up, publicURL, "allowed", "  nonce: true\n")
	a, b := runGateway(t, y), runGateway(t, y)
	key := newDPoPKey(t)
	tok := key.mintBound(t, is, "orders:read")

	resp, _ := doDPoP(t, "GET", a.proxy+"/orders/", tok, key.proof(t, "GET", publicURL+"/orders/", tok, ""))
	nonce := resp.Header.Get("DPoP-Nonce")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) || nonce == "" {
		t.Fatalf("proof without a nonce: %d, WWW-Authenticate %q, DPoP-Nonce %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), nonce)
	}
	resp, body := doDPoP(t, "GET", b.proxy+"/orders/", tok, key.proof(t, "GET", publicURL+"/orders/", tok, nonce))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the other replica refused the first one's nonce: %d %q", resp.StatusCode, body)
	}
	for _, g := range []*running{a, b} {
		if strings.Contains(g.stderr.String(), "per-process") {
			t.Errorf("warned about per-process nonces although %s is set", NonceSecretsEnv)
		}
	}
}

func TestGatewayDPoPNonceWithoutSecretsWarns(t *testing.T) {
	t.Setenv(NonceSecretsEnv, "")
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, dpopGatewayYAML(is, up, publicURL, "allowed", "  nonce: true\n"))
	log := g.stderr.String()
	if !strings.Contains(log, "level=WARN") || !strings.Contains(log, "per-process") || !strings.Contains(log, NonceSecretsEnv) {
		t.Errorf("no warning about per-process nonces:\n%s", log)
	}
	// Nonces still work within the one process.
	key := newDPoPKey(t)
	tok := key.mintBound(t, is, "orders:read")
	resp, _ := doDPoP(t, "GET", g.proxy+"/orders/", tok, key.proof(t, "GET", publicURL+"/orders/", tok, ""))
	nonce := resp.Header.Get("DPoP-Nonce")
	resp, body := doDPoP(t, "GET", g.proxy+"/orders/", tok, key.proof(t, "GET", publicURL+"/orders/", tok, nonce))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("with the nonce: %d %q", resp.StatusCode, body)
	}
}

// startRedis runs a redis-server of the test's own on 127.0.0.1, without
// persistence, stops it at cleanup and returns its URL. It skips the test
// when redis-server is not installed.
func startRedis(t testing.TB) string {
	t.Helper()
	srv, err := redistest.Start(t.TempDir())
	if errors.Is(err, redistest.ErrNotInstalled) {
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Kill() })
	return srv.URL(0)
}

// Two replicas sharing a Redis replay store: a proof used at one is a
// replay at the other.
func TestGatewayDPoPRedisReplayStore(t *testing.T) {
	redisURL := startRedis(t)
	is := startIssuer(t)
	up := startUpstream(t)
	y := dpopGatewayYAML(is, up, publicURL, "allowed", "  replay_store: "+redisURL+"\n")
	a, b := runGateway(t, y), runGateway(t, y)
	key := newDPoPKey(t)
	tok := key.mintBound(t, is, "orders:read")

	proof := key.proof(t, "GET", publicURL+"/orders/", tok, "")
	if resp, body := doDPoP(t, "GET", a.proxy+"/orders/", tok, proof); resp.StatusCode != http.StatusOK {
		t.Fatalf("first use at replica A: %d %q", resp.StatusCode, body)
	}
	resp, _ := doDPoP(t, "GET", b.proxy+"/orders/", tok, proof)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_dpop_proof"`) {
		t.Errorf("replay at replica B: %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp, body := doDPoP(t, "GET", b.proxy+"/orders/", tok, key.proof(t, "GET", publicURL+"/orders/", tok, "")); resp.StatusCode != http.StatusOK {
		t.Errorf("a fresh proof at replica B: %d %q", resp.StatusCode, body)
	}
	for _, g := range []*running{a, b} {
		if resp, _ := do(t, "GET", g.metric+"/readyz", "", nil); resp.StatusCode != http.StatusOK {
			t.Errorf("/readyz: %d", resp.StatusCode)
		}
		if log := g.stderr.String(); !strings.Contains(log, "dpop_replay_store=redis") || strings.Contains(log, redisURL) {
			t.Errorf("the start line should say redis, never the URL:\n%s", log)
		}
	}
}

// An unreachable Redis does not stop the gateway from starting; DPoP
// requests fail closed with 503 while Bearer requests still work, so in
// allowed mode the gateway stays ready (every replica shares the Redis:
// pulling them all would stop Bearer traffic too). In required mode it is
// not ready.
func TestGatewayDPoPRedisDown(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	down := "redis://:hunter2-password@" + testkit.ClosedAddr(t) + "/0"
	g := runGateway(t, dpopGatewayYAML(is, up, publicURL, "allowed", "  replay_store: "+down+"\n"))
	key := newDPoPKey(t)
	tok := key.mintBound(t, is, "orders:read")

	if resp, body := do(t, "GET", g.metric+"/readyz", "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz in allowed mode: %d %q, want 200", resp.StatusCode, body)
	}
	req := runGateway(t, dpopGatewayYAML(is, up, publicURL, "required", "  replay_store: "+down+"\n"))
	if resp, body := do(t, "GET", req.metric+"/readyz", "", nil); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "replay store") {
		t.Errorf("/readyz in required mode: %d %q, want 503", resp.StatusCode, body)
	}
	if resp, body := doDPoP(t, "GET", g.proxy+"/orders/", tok, key.proof(t, "GET", publicURL+"/orders/", tok, "")); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("DPoP request: %d %q, want 503 (fail closed)", resp.StatusCode, body)
	}
	if up.count() != 0 {
		t.Error("a DPoP request reached the upstream")
	}
	if resp, _ := do(t, "GET", g.proxy+"/orders/", mint(t, is, "orders:read"), nil); resp.StatusCode != http.StatusOK {
		t.Errorf("Bearer request: %d, want 200 (it needs no replay store)", resp.StatusCode)
	}
	if strings.Contains(g.stderr.String(), "hunter2") {
		t.Error("the log shows the Redis password")
	}
}

// TestGatewayReplayStoreFill is the store-fill attack through the
// gateway, on the memory and the Redis store: a client with a bound token
// for this audience sends proof after proof to a route its token's scope
// does not open. None is recorded, so it takes no store capacity; on a
// route it may use, its key records at most replay_key_quota proofs and
// then gets 429, while another client is served.
func TestGatewayReplayStoreFill(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	stores := []struct{ name, yaml string }{{"memory", "  replay_store: memory\n"}}
	if redisURL := startRedis(t); redisURL != "" {
		stores = append(stores, struct{ name, yaml string }{"redis", "  replay_store: " + redisURL + "\n"})
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			g := runGateway(t, dpopGatewayYAML(is, up, publicURL, "allowed", st.yaml+"  replay_key_quota: 5\n"))
			attacker, other := newDPoPKey(t), newDPoPKey(t)
			tok := attacker.mintBound(t, is, "orders:read") // not orders:write
			for i := range 30 {
				req, _ := http.NewRequest("POST", g.proxy+"/orders/", nil)
				req.Header.Set("Authorization", "DPoP "+tok)
				req.Header.Set("DPoP", attacker.proof(t, "POST", publicURL+"/orders/", tok, ""))
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusForbidden {
					t.Fatalf("refused request %d: %d", i, resp.StatusCode)
				}
			}
			// Nothing was recorded: the whole quota is still there.
			for i := range 5 {
				if resp, body := doDPoP(t, "GET", g.proxy+"/orders/", tok, attacker.proof(t, "GET", publicURL+"/orders/", tok, "")); resp.StatusCode != http.StatusOK {
					t.Fatalf("allowed request %d: %d %q", i, resp.StatusCode, body)
				}
			}
			resp, body := doDPoP(t, "GET", g.proxy+"/orders/", tok, attacker.proof(t, "GET", publicURL+"/orders/", tok, ""))
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("over the quota: %d %q Retry-After %q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
			}
			otherTok := other.mintBound(t, is, "orders:read")
			if resp, body := doDPoP(t, "GET", g.proxy+"/orders/", otherTok, other.proof(t, "GET", publicURL+"/orders/", otherTok, "")); resp.StatusCode != http.StatusOK {
				t.Errorf("another client: %d %q", resp.StatusCode, body)
			}
			_, metrics := do(t, "GET", g.metric+"/metrics", "", nil)
			if want := `tokenguard_requests_total{reason="dpop_key_quota",result="denied"} 1`; !strings.Contains(metrics, want) {
				t.Errorf("metrics lack %s", want)
			}
		})
	}
}
