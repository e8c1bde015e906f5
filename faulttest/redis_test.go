package faulttest

import (
	"net/http"
	"testing"
	"time"
)

// Replay store states in TestRedisKillRestartUnderLoad.
const (
	storeUp      = "up"
	storeDown    = "down"       // killed: no DPoP request can be checked
	storeTransit = "transition" // being killed, or restarted and reconnecting
)

// storeExpect maps the replay store's states to allowed statuses: up gives
// want, down gives 503, a transition either.
func storeExpect(tl *timeline, want int) func(t0, t1 time.Time) codes {
	return func(t0, t1 time.Time) codes {
		var c codes
		for _, s := range tl.during(t0, t1) {
			switch s {
			case storeUp:
				c = append(c, want)
			case storeDown:
				c = append(c, http.StatusServiceUnavailable)
			case storeTransit:
				c = append(c, want, http.StatusServiceUnavailable)
			}
		}
		return c
	}
}

// TestRedisKillRestartUnderLoad kills the gateway's Redis replay store
// with SIGKILL, twice, during a load run of Bearer, fresh DPoP, invalid
// and replayed requests, and restarts it on the same port. While Redis is
// down every DPoP request gets 503 (never 200: its proof cannot be
// checked for replay) and Bearer requests still pass (dpop.mode allowed);
// after the restart DPoP service resumes by itself, and no proof ever
// reaches the upstream twice, across both restarts.
//
// Redis runs with appendonly yes, as the README says to when a restart
// must not forget proofs still inside their window (the default
// appendfsync everysec is enough for a killed process: acknowledged
// writes are already in the kernel's page cache; a host crash would need
// appendfsync always). Without it, a restarted Redis has forgotten every
// proof, and replays of proofs accepted before the crash pass: this test
// then fails with a few hundred wrong decisions (a documented limitation
// of appendonly no, which is why the test does not run that way).
func TestRedisKillRestartUnderLoad(t *testing.T) {
	rs := startRedis(t, "--appendonly", "yes")
	ks := newKeyServer(t)
	up := newUpstream(t)
	g := startGateway(t, gwConfig{
		Issuers:     []gwIssuer{{Issuer: ks.is.URL(), JWKSURI: ks.JWKSURI()}},
		DPoPMode:    "allowed",
		ReplayStore: rs.URL(0),
	}, up.URL)
	g.waitReady(t, 15*time.Second)
	fx := newFixture(t, ks.is, g.URL)
	tl := newTimeline(storeUp)
	fx.dpopStatus = storeExpect(tl, http.StatusOK)
	fx.replayStat = storeExpect(tl, http.StatusUnauthorized)

	client := newLoadClient(*workersFlag)
	defer client.CloseIdleConnections()
	before := g.metrics(t)
	var recovery []time.Duration
	res := runLoad(t, client, time.Second, *workersFlag, fx.classes(t), func() {
		for cycle := range 2 {
			time.Sleep(2 * time.Second)
			tl.set(storeTransit)
			rs.kill()
			tl.set(storeDown)
			t.Logf("cycle %d: redis-server killed", cycle)
			time.Sleep(2500 * time.Millisecond)
			// allowed mode: a Redis outage must not take the gateway out
			// of the load balancer, Bearer traffic still works.
			if code, body := g.get("/readyz"); code != http.StatusOK {
				t.Errorf("/readyz = %d %q with Redis down in dpop.mode allowed, want 200", code, body)
			}
			tl.set(storeTransit)
			restarted := time.Now()
			if err := rs.Restart(); err != nil { // same port and directory: the AOF is replayed
				t.Errorf("redis-server did not restart: %v", err)
				return
			}
			// The gateway reconnects on its own; measure when DPoP
			// requests pass again, then hold it to "must pass".
			ok := waitFor(t, 10*time.Second, func() bool {
				proofReq := fx.classes(t)[1].next(nil)
				res, err := client.Do(proofReq.req)
				if err != nil {
					return false
				}
				res.Body.Close()
				return res.StatusCode == http.StatusOK
			}) == nil
			if !ok {
				t.Errorf("cycle %d: DPoP requests did not pass within 10s of Redis restarting", cycle)
			}
			recovery = append(recovery, time.Since(restarted).Round(time.Millisecond))
			tl.set(storeUp)
		}
		time.Sleep(2500 * time.Millisecond)
	})
	t.Logf("load: %s", res.summary())
	t.Logf("DPoP service back %v after each Redis restart (redis-server start included)", recovery)
	for _, w := range res.wrong {
		t.Errorf("wrong decision: %s", w)
	}
	for _, want := range []struct {
		class  string
		status int
	}{{"dpop", 200}, {"dpop", 503}, {"replay", 401}, {"bearer", 200}} {
		if res.count(want.class, want.status) == 0 {
			t.Errorf("no %s request got %d: the run did not exercise it (%s)", want.class, want.status, res.summary())
		}
	}
	after := g.metrics(t)
	if d := after.sum("tokenguard_requests_total", "reason=replay_store_unavailable") - before.sum("tokenguard_requests_total", "reason=replay_store_unavailable"); d < 1 {
		t.Error("tokenguard_requests_total{reason=replay_store_unavailable} did not grow while Redis was down")
	}
	checkUpstream(t, up, res)
}
