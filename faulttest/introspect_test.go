package faulttest

import (
	crand "crypto/rand"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Introspection timings of the gateway under test.
const (
	introMaxAge = 2 * time.Second // introspection_cache_max_age in the config below
	// cacheSlack covers the gap between the endpoint answering and the
	// gateway storing the answer, and the gateway's clock reading, on a
	// busy 2-core machine under -race. It is well below the max age, so
	// a cache kept even one max age too long is still caught.
	cacheSlack = 750 * time.Millisecond
)

// opaqueToken returns a random token that is not a JWT (no dots), so the
// gateway introspects it.
func opaqueToken() string {
	var b [16]byte
	crand.Read(b[:])
	return "opq-" + hex.EncodeToString(b[:])
}

// introToken is an opaque token of the run and what the endpoint says
// about it over time.
type introToken struct {
	tok, sub string
	mu       sync.Mutex // guards revoked
	revoked  time.Time  // zero: active (or never active, per active)
	active   bool       // the endpoint ever said active
}

func (it *introToken) activeAt(at time.Time) bool {
	it.mu.Lock()
	defer it.mu.Unlock()
	return it.active && (it.revoked.IsZero() || at.Before(it.revoked))
}

// inactiveBy reports whether the endpoint could have said "inactive" for
// the token by to (so a negative answer may be cached).
func (it *introToken) inactiveBy(to time.Time) bool {
	it.mu.Lock()
	defer it.mu.Unlock()
	return !it.active || (!it.revoked.IsZero() && !it.revoked.After(to))
}

// introExpect computes the statuses allowed for an opaque token, from the
// endpoint's states while the request was in flight, whether the token was
// active then, and when the endpoint last vouched for it:
//   - endpoint up: 200 if the token was active, 401 if not; after a
//     revocation also 200 while an active answer may still be cached
//     (introspection_cache_max_age: the documented revocation latency);
//   - endpoint failing (500, hanging, refusing): 503; 200 only while an
//     active answer given at most max age ago may be cached; 401 only if
//     the endpoint could have called the token inactive by then (a cached
//     negative answer).
//
// 200 is never allowed on a cache entry older than the max age.
func introExpect(srv *introServer, tl *timeline, it *introToken) func(t0, t1 time.Time) codes {
	return func(t0, t1 time.Time) codes {
		var c codes
		fresh := func() bool {
			la := srv.lastActiveAnswer(it.tok)
			return !la.IsZero() && !t0.After(la.Add(introMaxAge+cacheSlack))
		}
		for _, s := range tl.during(t0, t1) {
			if s == introUp.String() {
				if it.activeAt(t0) || it.activeAt(t1) {
					c = append(c, http.StatusOK)
				}
				if !it.activeAt(t0) || !it.activeAt(t1) {
					c = append(c, http.StatusUnauthorized)
				}
				if fresh() {
					c = append(c, http.StatusOK)
				}
				continue
			}
			c = append(c, http.StatusServiceUnavailable)
			if fresh() {
				c = append(c, http.StatusOK)
			}
			if it.inactiveBy(t1) {
				c = append(c, http.StatusUnauthorized)
			}
		}
		return c
	}
}

// TestIntrospectionFlapping sends opaque tokens (active, never active, and
// one revoked mid-run) and JWTs while the introspection endpoint flaps:
// answering, 500s, refusing connections, hanging past the gateway's 5 s
// timeout. No opaque token passes without an answer from the endpoint
// that is at most introspection_cache_max_age old, an inactive token
// never passes, JWTs are unaffected, and service resumes each time the
// endpoint does.
func TestIntrospectionFlapping(t *testing.T) {
	ks := newKeyServer(t)
	srv := newIntroServer(t, ks.is.URL())
	up := newUpstream(t)
	g := startGateway(t, gwConfig{Issuers: []gwIssuer{{
		Issuer: ks.is.URL(), JWKSURI: ks.JWKSURI(),
		IntrospectionEndpoint: srv.URL() + "/introspect", ClientID: srv.clientID, ClientSecret: srv.clientSecret,
		IntrospectionMaxAge: introMaxAge.String(),
	}}, LogLevel: "debug"}, up.URL)
	g.waitReady(t, 15*time.Second)
	fx := newFixture(t, ks.is, g.URL)

	var active, inactive []*introToken
	for i := range 12 {
		it := &introToken{tok: opaqueToken(), sub: "opaque-" + string(rune('a'+i)), active: true}
		srv.setActive(it.tok, it.sub)
		active = append(active, it)
	}
	for range 4 {
		inactive = append(inactive, &introToken{tok: opaqueToken()})
	}
	revoked := active[0]
	tl := newTimeline(introUp.String())

	classes := []class{
		{name: "opaque_active", weight: 50, next: func(r *rand.Rand) plan {
			it := active[r.IntN(len(active))]
			name := "opaque_active"
			if it == revoked {
				name = "opaque_revoked"
			}
			return plan{class: name, req: fx.get(it.tok, "Bearer"), sub: it.sub, allowed: introExpect(srv, tl, it)}
		}},
		{name: "opaque_inactive", weight: 15, next: func(r *rand.Rand) plan {
			it := inactive[r.IntN(len(inactive))]
			return plan{class: "opaque_inactive", req: fx.get(it.tok, "Bearer"), allowed: introExpect(srv, tl, it)}
		}},
		{name: "jwt", weight: 25, next: func(r *rand.Rand) plan {
			i := r.IntN(len(fx.bearer))
			return plan{class: "jwt", req: fx.get(fx.bearer[i], "Bearer"), sub: fx.bearerSub[i], allowed: always(200)}
		}},
		{name: "invalid", weight: 10, next: func(r *rand.Rand) plan {
			return plan{class: "invalid_tampered", req: fx.get(fx.invalid["tampered"], "Bearer"), allowed: always(401)}
		}},
	}

	type phase struct {
		state  introState
		d      time.Duration
		metric string // tokenguard_introspection_requests_total result that must grow
	}
	phases := []phase{
		{introUp, 2 * time.Second, "active"},
		{introErr, 3 * time.Second, "http_error"},
		{introUp, 2 * time.Second, "active"},
		{introRefused, 3 * time.Second, "error"},
		{introUp, 2 * time.Second, "active"},
		// Past the cached answers' max age (2 s) and then the gateway's
		// 5 s introspection timeout, so some hung calls end in the phase.
		{introHang, 8 * time.Second, "error"},
		{introUp, 2 * time.Second, "active"},
	}
	client := newLoadClient(*workersFlag)
	defer client.CloseIdleConnections()
	res := runLoad(t, client, time.Second, *workersFlag, classes, func() {
		for i, p := range phases {
			before := g.metrics(t)
			switch p.state {
			case introRefused:
				srv.down()
			default:
				srv.state.Store(int32(p.state))
			}
			if i > 0 && phases[i-1].state == introRefused {
				srv.up(t)
			}
			if p.state == introUp && i > 0 {
				// Concurrent requests for one token share one call to
				// the endpoint, so a request sent just after recovery may
				// join a call made while it was failing (a hung one ends
				// only at the gateway's 5 s timeout or when the endpoint
				// answers), and a call that failed is remembered for the
				// gateway's 1 s failure cache, so that a failing endpoint
				// is not asked again for every request: the endpoint
				// counts as up 1.5 s after it recovers.
				time.Sleep(1500 * time.Millisecond)
			}
			tl.set(p.state.String())
			if i == 1 {
				// Revoked while the endpoint fails: its cached active
				// answer may serve it for at most the max age.
				revoked.mu.Lock()
				revoked.revoked = time.Now()
				revoked.mu.Unlock()
				srv.revoke(revoked.tok)
			}
			time.Sleep(p.d)
			after := g.metrics(t)
			lbl := "result=" + p.metric
			if d := after.sum("tokenguard_introspection_requests_total", lbl) - before.sum("tokenguard_introspection_requests_total", lbl); d < 1 {
				t.Errorf("phase %d (%s): tokenguard_introspection_requests_total{%s} did not grow", i, p.state, lbl)
			}
		}
	})
	t.Logf("load: %s", res.summary())
	for _, w := range res.wrong {
		t.Errorf("wrong decision: %s", w)
	}
	for _, want := range []struct {
		class  string
		status int
	}{{"opaque_active", 200}, {"opaque_active", 503}, {"opaque_revoked", 401}, {"opaque_inactive", 401}, {"jwt", 200}} {
		if res.count(want.class, want.status) == 0 {
			t.Errorf("no %s request got %d: the run did not exercise it (%s)", want.class, want.status, res.summary())
		}
	}
	checkUpstream(t, up, res)
	secrets := []string{srv.clientSecret}
	for _, it := range append(active, inactive...) {
		secrets = append(secrets, it.tok)
	}
	g.assertNoLeak(t, append(secrets, fx.bearer...)...)
}
