package gateway

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/redistest"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

// TestGatewayBFFRedisSentinelFailover: two gateways share sessions
// through a redis+sentinel:// session store; when the master dies, a
// session request gets 503 temporarily_unavailable and keeps its cookie,
// never 401 login_required (which clears the cookie: a logout), until
// the sentinels have promoted the replica; then the session made before
// the kill is served at both gateways again without a restart, and a
// logout (a write) at one is seen at the other.
func TestGatewayBFFRedisSentinelFailover(t *testing.T) {
	st, err := redistest.StartSentinel(t.TempDir())
	topologyOrSkip(t, err)
	t.Cleanup(st.Close)
	a1, a2 := testkit.ClosedAddr(t), testkit.ClosedAddr(t)
	is := loginIssuer(t, "http://"+a1, "http://"+a2)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	t.Setenv("BFF_SESSION_KEY", base64.StdEncoding.EncodeToString(key))
	extra := fmt.Sprintf("  session_store: %s\n  session_key: ${BFF_SESSION_KEY}\n  allowed_origins: [http://%s, http://%s]\n", st.URL(), a1, a2)
	g1 := startBFFGateway(t, is, a1, extra)
	g2 := startBFFGateway(t, is, a2, extra)
	b := testkit.NewBrowser(t)
	b.Login(g1.proxy, "")
	const cookie = "__Host-tokenguard-session"
	session := b.Cookies[cookie]
	if resp, body := b.Do("GET", g2.proxy+"/orders/1", "X-CSRF: 1"); resp.StatusCode != http.StatusOK {
		t.Fatalf("the other gateway: %d %s", resp.StatusCode, body)
	}
	// The session must be on the replica before the kill: replication is
	// asynchronous, and a session not yet replicated is lost with the
	// master (a 401 then would be right).
	if err := st.WaitReplicated(); err != nil {
		t.Fatal(err)
	}

	killed := time.Now()
	if err := st.Master.Kill(); err != nil {
		t.Fatal(err)
	}
	const bound = 15 * time.Second
	unavailable := 0
	// serve asks g for the session's API until it answers 200, allowing
	// only 503 temporarily_unavailable meanwhile, and returns when.
	serve := func(name string, g *bffGateway) time.Duration {
		t.Helper()
		for {
			if time.Since(killed) > bound {
				t.Fatalf("%s: the session not served again within %v of the master's death (%d answered 503)", name, bound, unavailable)
			}
			resp, body := b.Do("GET", g.proxy+"/orders/1", "X-CSRF: 1")
			body = strings.TrimSpace(body)
			if b.Cookies[cookie] != session {
				t.Fatalf("%s, %v after the kill: %d %s, and the session cookie cleared", name, time.Since(killed).Round(time.Millisecond), resp.StatusCode, body)
			}
			if resp.StatusCode == http.StatusOK {
				return time.Since(killed)
			}
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "temporarily_unavailable") {
				t.Fatalf("%s, %v after the kill: %d %s, want 503 temporarily_unavailable or 200", name, time.Since(killed).Round(time.Millisecond), resp.StatusCode, body)
			}
			unavailable++
			time.Sleep(50 * time.Millisecond)
		}
	}
	back1 := serve("gateway 1", g1)
	if unavailable == 0 {
		t.Fatal("no session request got 503 while the master was dead: the test proved nothing")
	}
	back2 := serve("gateway 2", g2)
	t.Logf("master killed: %d session requests answered 503; served again %v (gateway 1) and %v (gateway 2) after the kill",
		unavailable, back1.Round(time.Millisecond), back2.Round(time.Millisecond))

	if resp, body := b.Do("POST", g2.proxy+"/bff/logout", "X-CSRF: 1"); resp.StatusCode != http.StatusOK {
		t.Fatalf("logout after the failover: %d %s", resp.StatusCode, body)
	}
	b.Cookies[cookie] = session
	if resp, _ := b.Do("GET", g1.proxy+"/orders/1", "X-CSRF: 1"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after a logout at the other gateway, after the failover: %d, want 401", resp.StatusCode)
	}
}
