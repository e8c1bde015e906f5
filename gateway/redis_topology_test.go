package gateway

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/redistest"
)

// Every documented Redis URL form is accepted as dpop.replay_store; a
// malformed one is refused without quoting its password.
func TestParseConfigRedisTopologies(t *testing.T) {
	for _, rs := range []string{
		"redis://:pw@127.0.0.1:6379/0",
		"rediss://:pw@redis.internal:6380/2",
		"redis+sentinel://s1:26379?master_name=mymaster&addr=s2:26379&addr=s3:26379",
		"rediss+sentinel://:spw@s1:26379/1?master_name=mymaster&password=mpw",
		"redis+cluster://:pw@n1:7000?addr=n2:7001&addr=n3:7002",
		"rediss+cluster://n1:7000",
	} {
		c, err := parseConfig("test.yaml", []byte(dpopYAML(t, "allowed", rs)))
		if err != nil {
			t.Errorf("%s: %v", rs, err)
		} else if c.ReplayStore != rs {
			t.Errorf("%s: ReplayStore = %q", rs, c.ReplayStore)
		}
	}
	for rs, msg := range map[string]string{
		"redis+sentinel://:hunter2-secret@s1:26379":                                 "master_name",
		"rediss+sentinel://:hunter2-secret@s1:26379?master_name=m&skip_verify=true": "skip_verify",
		"rediss+cluster://:hunter2-secret@n1:7000?skip_verify=true":                 "unexpected option",
		"redis+cluster://:hunter2-secret@n1:7000/3":                                 "no database number",
		"redis+cluster://:hunter2-secret@n1:7000?read_only=true":                    "refused",
		"redis+ring://:hunter2-secret@n1:7000":                                      "must be memory or a redis://",
		"unix://:hunter2-secret@/run/redis.sock":                                    "must be memory or a redis://",
	} {
		_, err := parseConfig("test.yaml", []byte(dpopYAML(t, "allowed", rs)))
		if err == nil || !strings.Contains(err.Error(), msg) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: err = %v, want one saying %q and never the password", rs, err, msg)
		}
	}
}

func topologyOrSkip(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, redistest.ErrNotInstalled) {
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
}

// replayAcross runs two gateways sharing replay store rs and checks that a
// proof used at one is refused at the other, and a fresh one is served.
func replayAcross(t *testing.T, rs string) (a, b *running, key *dpopKey, tok string, used string) {
	t.Helper()
	is := startIssuer(t)
	up := startUpstream(t)
	y := dpopGatewayYAML(is, up, publicURL, "allowed", "  replay_store: "+rs+"\n")
	a, b = runGateway(t, y), runGateway(t, y)
	key = newDPoPKey(t)
	tok = key.mintBound(t, is, "orders:read")
	for range 20 {
		proof := key.proof(t, "GET", publicURL+"/orders/", tok, "")
		if resp, body := doDPoP(t, "GET", a.proxy+"/orders/", tok, proof); resp.StatusCode != http.StatusOK {
			t.Fatalf("first use at replica A: %d %q", resp.StatusCode, body)
		}
		resp, _ := doDPoP(t, "GET", b.proxy+"/orders/", tok, proof)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_dpop_proof"`) {
			t.Fatalf("replay at replica B: %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		used = proof
	}
	for _, g := range []*running{a, b} {
		if resp, body := do(t, "GET", g.metric+"/readyz", "", nil); resp.StatusCode != http.StatusOK {
			t.Errorf("/readyz: %d %q", resp.StatusCode, body)
		}
	}
	return a, b, key, tok, used
}

// Two gateways sharing a redis+cluster:// replay store refuse a proof
// replayed across them.
func TestGatewayDPoPRedisCluster(t *testing.T) {
	c, err := redistest.StartCluster(t.TempDir(), 3)
	topologyOrSkip(t, err)
	t.Cleanup(c.Close)
	replayAcross(t, c.URL())
}

// Two gateways sharing a redis+sentinel:// replay store refuse a proof
// replayed across them; when the master dies, DPoP requests get 503 (a
// replayed proof never a 2xx) until the sentinels have promoted the
// replica, and then are served again without a restart.
func TestGatewayDPoPRedisSentinelFailover(t *testing.T) {
	st, err := redistest.StartSentinel(t.TempDir())
	topologyOrSkip(t, err)
	t.Cleanup(st.Close)
	a, b, key, tok, used := replayAcross(t, st.URL())

	killed := time.Now()
	if err := st.Master.Kill(); err != nil {
		t.Fatal(err)
	}
	const bound = 15 * time.Second
	unavailable := 0
	for {
		if time.Since(killed) > bound {
			t.Fatalf("DPoP requests not served again within %v of the master's death (%d answered 503)", bound, unavailable)
		}
		if resp, body := doDPoP(t, "GET", b.proxy+"/orders/", tok, used); resp.StatusCode/100 == 2 {
			t.Fatalf("a replayed proof was served %v after the master died: %d %q", time.Since(killed), resp.StatusCode, body)
		}
		resp, body := doDPoP(t, "GET", a.proxy+"/orders/", tok, key.proof(t, "GET", publicURL+"/orders/", tok, ""))
		if resp.StatusCode == http.StatusOK {
			break
		}
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("a fresh proof during the failover: %d %q, want 503 or 200", resp.StatusCode, body)
		}
		unavailable++
		time.Sleep(50 * time.Millisecond)
	}
	if unavailable == 0 {
		t.Fatal("no request got 503 while the master was dead: the test proved nothing")
	}
	t.Logf("master killed: %d DPoP requests answered 503, served again %v after the kill",
		unavailable, time.Since(killed).Round(time.Millisecond))
	if resp, _ := doDPoP(t, "GET", a.proxy+"/orders/", tok, used); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the proof used before the failover, after it: %d, want 401", resp.StatusCode)
	}
}
