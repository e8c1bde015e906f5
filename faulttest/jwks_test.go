package faulttest

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/devissuer"
)

// jwksDoc returns the JWK Set of keys, as the issuer at url would publish
// it.
func jwksDoc(t *testing.T, url string, keys ...*devissuer.Key) []byte {
	t.Helper()
	is := devissuer.New(url, audience, keys[0])
	is.Publish(keys...)
	b, err := is.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// huge pads a JWK Set with whitespace (still valid JSON) past the
// gateway's 1 MiB JWKS limit, so only the size check can refuse it.
func huge(doc []byte) []byte {
	return append(append([]byte("{"), bytes.Repeat([]byte(" "), 1<<20)...), doc[1:]...)
}

// status sends one request and returns the status.
func status(t *testing.T, c *http.Client, req *http.Request) int {
	t.Helper()
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestJWKSUnavailableAtStart starts the gateway while its only issuer's
// JWKS cannot be loaded, in each way it can fail. With no keys ever
// loaded, nothing from that issuer can be decided: 503 for every token
// that names it, valid or not, and /readyz 503; what needs no keys
// (no token, an unknown issuer) is still 401. Once the JWKS is served,
// the gateway recovers by itself, without a restart.
func TestJWKSUnavailableAtStart(t *testing.T) {
	tests := []struct {
		name      string
		breakJWKS func(ks *keyServer, doc []byte)
	}{
		{"connection refused", func(ks *keyServer, _ []byte) { ks.down() }},
		{"500 with a valid JWKS body", func(ks *keyServer, doc []byte) { ks.setFault(&jwksFault{status: 500, body: doc}) }},
		{"garbage", func(ks *keyServer, _ []byte) { ks.setFault(&jwksFault{body: []byte("<html>not a JWK set</html>")}) }},
		{"larger than 1 MiB", func(ks *keyServer, doc []byte) { ks.setFault(&jwksFault{body: huge(doc)}) }},
		{"no usable key", func(ks *keyServer, _ []byte) {
			ks.setFault(&jwksFault{body: []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"k1"}]}`)})
		}},
		// The hung fetch is not released: only the gateway's own 10 s
		// fetch timeout can end it, after which its retry finds the
		// repaired server.
		{"hangs past the fetch timeout", func(ks *keyServer, _ []byte) { ks.setFault(&jwksFault{hang: true}) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ks := newKeyServer(t)
			up := newUpstream(t)
			tc.breakJWKS(ks, jwksDoc(t, ks.URL(), ks.is.SigningKey()))
			g := startGateway(t, gwConfig{
				Issuers:     []gwIssuer{{Issuer: ks.is.URL(), JWKSURI: ks.JWKSURI()}},
				StartupWait: "500ms",
			}, up.URL)
			fx := newFixture(t, ks.is, g.URL)
			c := newLoadClient(1)
			defer c.CloseIdleConnections()

			if code, body := g.get("/readyz"); code != http.StatusServiceUnavailable {
				t.Errorf("/readyz = %d %q with no keys loaded, want 503", code, body)
			}
			reqs := []struct {
				name       string
				tok        string
				down, want int
			}{
				{"valid", fx.bearer[0], 503, 200},
				{"tampered", fx.invalid["tampered"], 503, 401},
				{"expired", fx.invalid["expired"], 503, 401},
				{"wrong aud", fx.invalid["wrong_aud"], 503, 401},
				{"unknown issuer", fx.invalid["unknown_issuer"], 401, 401},
				{"no token", "", 401, 401},
			}
			for _, r := range reqs {
				if got := status(t, c, fx.get(r.tok, "Bearer")); got != r.down {
					t.Errorf("%s token, no keys loaded: %d, want %d", r.name, got, r.down)
				}
			}
			m := g.metrics(t)
			if n := m.sum("tokenguard_requests_total", "reason=keys_unavailable", "result=unavailable"); n != 4 {
				t.Errorf("tokenguard_requests_total{reason=keys_unavailable} = %v, want 4", n)
			}
			if n := m.sum("tokenguard_jwks_refresh_total", "result=success"); n != 0 {
				t.Errorf("tokenguard_jwks_refresh_total{result=success} = %v before the JWKS was served", n)
			}

			// Repair: the gateway must load the keys on its own (its
			// first-load backoff is capped at the 1 s refresh interval).
			fixed := time.Now()
			ks.setFault(nil)
			if tc.name == "connection refused" {
				ks.up(t)
			}
			g.waitReady(t, 20*time.Second)
			t.Logf("ready %v after the JWKS was repaired", time.Since(fixed).Round(time.Millisecond))
			if strings.HasPrefix(tc.name, "hangs") {
				if n := g.metrics(t).sum("tokenguard_jwks_refresh_total", "result=network_error"); n < 1 {
					t.Errorf("tokenguard_jwks_refresh_total{result=network_error} = %v: the hung fetch did not time out", n)
				}
			}
			for _, r := range reqs {
				if got := status(t, c, fx.get(r.tok, "Bearer")); got != r.want {
					t.Errorf("%s token after recovery: %d, want %d", r.name, got, r.want)
				}
			}
			checkUpstream(t, up)
		})
	}
}

// keyStates are the states of a key the gateway has not loaded yet: the
// outcome for its tokens depends on whether the gateway can have seen it.
const (
	keyAbsent    = "absent"    // not in any document the gateway may accept: 401
	keyPublished = "published" // published, the gateway may not have fetched it yet: 200 or 401
	keyLive      = "live"      // fetched twice since it was published: 200
)

func keyOutcome(tl *timeline) func(t0, t1 time.Time) codes {
	return func(t0, t1 time.Time) codes {
		var c codes
		for _, s := range tl.during(t0, t1) {
			switch s {
			case keyAbsent:
				c = append(c, http.StatusUnauthorized)
			case keyPublished:
				c = append(c, http.StatusOK, http.StatusUnauthorized)
			case keyLive:
				c = append(c, http.StatusOK)
			}
		}
		return c
	}
}

// TestJWKSFaultsUnderLoad breaks a JWKS the gateway has already loaded, in
// turn (500, garbage, over 1 MiB, hanging, connection refused), while
// clients send valid, invalid and new-key tokens. The gateway must keep
// deciding with its last good keys: tokens of the loaded key pass, a key
// offered only in a refused document (a 500's body, an oversized one) is
// never trusted, invalid tokens are refused, /readyz stays 200 — and once
// the JWKS is healthy and publishes the new key, its tokens pass without
// a restart.
func TestJWKSFaultsUnderLoad(t *testing.T) {
	ks := newKeyServer(t)
	up := newUpstream(t)
	g := startGateway(t, gwConfig{Issuers: []gwIssuer{{Issuer: ks.is.URL(), JWKSURI: ks.JWKSURI()}}}, up.URL)
	g.waitReady(t, 15*time.Second)
	fx := newFixture(t, ks.is, g.URL)
	k1 := ks.is.SigningKey()
	k2 := genKey(t, "k2")
	newIss := devissuer.New(ks.URL(), audience, k2)
	newToks := []string{mint(t, newIss, "new-key-user", nil), mint(t, newIss, "new-key-user", nil)}
	withK2 := jwksDoc(t, ks.URL(), k1, k2)
	k2State := newTimeline(keyAbsent)

	classes := []class{
		{name: "bearer", weight: 50, next: func(r *rand.Rand) plan {
			i := r.IntN(len(fx.bearer))
			return plan{class: "bearer", req: fx.get(fx.bearer[i], "Bearer"), allowed: always(200), sub: fx.bearerSub[i]}
		}},
		{name: "new_key", weight: 20, next: func(r *rand.Rand) plan {
			return plan{class: "new_key", req: fx.get(newToks[r.IntN(2)], "Bearer"), allowed: keyOutcome(k2State), sub: "new-key-user"}
		}},
		{name: "invalid", weight: 30, next: func(r *rand.Rand) plan {
			kinds := []string{"tampered", "expired", "wrong_aud", "missing", "unknown_issuer"}
			k := kinds[r.IntN(len(kinds))]
			return plan{class: "invalid_" + k, req: fx.get(fx.invalid[k], "Bearer"), allowed: always(401)}
		}},
	}

	type phase struct {
		name   string
		start  func()
		metric string // tokenguard_jwks_refresh_total result that must grow
	}
	phases := []phase{
		{"500 with a JWKS body holding a new key", func() { ks.setFault(&jwksFault{status: 500, body: withK2}) }, "http_error"},
		{"garbage", func() { ks.setFault(&jwksFault{body: []byte("{\"keys\": [oops")}) }, "invalid"},
		{"over 1 MiB holding a new key", func() { ks.setFault(&jwksFault{body: huge(withK2)}) }, "invalid"},
		// Shorter than the gateway's 10 s fetch timeout: the fetch is
		// released with a 500 when the phase ends.
		{"hangs", func() { ks.setFault(&jwksFault{hang: true}) }, ""},
		{"connection refused", func() { ks.down(); ks.setFault(nil) }, "network_error"},
	}
	client := newLoadClient(*workersFlag)
	defer client.CloseIdleConnections()
	mBefore := g.metrics(t)
	res := runLoad(t, client, time.Second, *workersFlag, classes, func() {
		time.Sleep(time.Second)
		for _, p := range phases {
			h := ks.hits.Load()
			p.start()
			// A fetch that began before the fault may still report
			// success; fetches are serial, so once one has reached the
			// broken server every earlier one has been counted.
			if p.name != "connection refused" {
				ks.waitFetches(t, h, 1, 10*time.Second)
				time.Sleep(100 * time.Millisecond)
				h = ks.hits.Load()
			}
			before := g.metrics(t)
			// At 1 s refresh intervals, two more fetch attempts (or, for
			// a closed port or a hung fetch, 2.5 s) show the failure is
			// being retried.
			switch p.name {
			case "connection refused":
				time.Sleep(2500 * time.Millisecond)
			case "hangs":
				time.Sleep(2500 * time.Millisecond)
				ks.setFault(&jwksFault{status: 500, body: withK2})
				ks.unhang()
			default:
				ks.waitFetches(t, h, 2, 10*time.Second)
			}
			after := g.metrics(t)
			if p.metric != "" {
				if d := after.sum("tokenguard_jwks_refresh_total", "result="+p.metric) - before.sum("tokenguard_jwks_refresh_total", "result="+p.metric); d < 1 {
					t.Errorf("%s: tokenguard_jwks_refresh_total{result=%q} did not grow", p.name, p.metric)
				}
			}
			if d := after.sum("tokenguard_jwks_refresh_total", "result=success") - before.sum("tokenguard_jwks_refresh_total", "result=success"); d != 0 {
				t.Errorf("%s: %v successful refreshes while the JWKS was broken", p.name, d)
			}
			if code, body := g.get("/readyz"); code != http.StatusOK {
				t.Errorf("%s: /readyz = %d %q; the last good keys are still loaded", p.name, code, body)
			}
			t.Logf("phase %q: %d more /jwks requests after the first faulty one", p.name, ks.hits.Load()-h)
		}
		// Recovery: healthy again, and now publishing k2 for real.
		ks.is.Publish(k1, k2)
		k2State.set(keyPublished)
		h := ks.hits.Load()
		ks.up(t)
		ks.waitFetches(t, h, 2, 10*time.Second)
		k2State.set(keyLive)
		time.Sleep(2 * time.Second)
	})
	t.Logf("load: %s", res.summary())
	for _, w := range res.wrong {
		t.Errorf("wrong decision: %s", w)
	}
	if res.count("new_key", 200) == 0 {
		t.Error("no token of the newly published key passed after recovery")
	}
	// What the gateway promises for a kid it does not know while its JWKS
	// is broken: 401 invalid_token (reason unknown_kid), not 503 — it has
	// keys, and none of them is that one.
	unknownKID := g.metrics(t).sum("tokenguard_requests_total", "reason=unknown_kid") - mBefore.sum("tokenguard_requests_total", "reason=unknown_kid")
	if int(unknownKID) != res.count("new_key", 401) {
		t.Errorf("tokenguard_requests_total{reason=unknown_kid} grew by %v, but %d new-key tokens got 401", unknownKID, res.count("new_key", 401))
	}
	checkUpstream(t, up, res)
}

// TestKeyRotationUnderLoad rotates the issuer's signing key while clients
// send Bearer and DPoP requests: k2 is published beside k1, the issuer
// signs with k2 once the gateway has fetched it (issuers publish before
// they sign), then k1 is withdrawn. Tokens of the current key always
// pass; k1's tokens pass until the gateway has seen k1 withdrawn and are
// refused after that (the verified-token cache must not keep them alive).
func TestKeyRotationUnderLoad(t *testing.T) {
	ks := newKeyServer(t)
	up := newUpstream(t)
	// Debug logging: every denial and access line is written, and none
	// may contain a token.
	g := startGateway(t, gwConfig{Issuers: []gwIssuer{{Issuer: ks.is.URL(), JWKSURI: ks.JWKSURI()}}, DPoPMode: "allowed", LogLevel: "debug"}, up.URL)
	g.waitReady(t, 15*time.Second)
	fx := newFixture(t, ks.is, g.URL)
	k1 := ks.is.SigningKey()
	k2 := genKey(t, "k2")
	newIss := devissuer.New(ks.URL(), audience, k2)
	cur := []*fixture{fx, newFixture(t, newIss, g.URL)}
	cur[1].client, cur[1].dpopTok = fx.client, mint(t, newIss, fx.dpopSub, map[string]any{"cnf": map[string]any{"jkt": fx.client.jkt}})
	cur[1].replays = fx.replays
	var signing atomic.Int32 // index into cur: the key the issuer signs with
	k1State := newTimeline(keyLive)

	byKey := [][]class{fx.classes(t), cur[1].classes(t)}
	classes := []class{
		// Clients holding tokens of the current key.
		{name: "current", weight: 70, next: func(r *rand.Rand) plan {
			cs := byKey[signing.Load()]
			pick := r.IntN(100)
			for _, c := range cs {
				if pick < c.weight {
					return c.next(r)
				}
				pick -= c.weight
			}
			return cs[0].next(r)
		}},
		// Clients still holding k1 tokens.
		{name: "old", weight: 30, next: func(r *rand.Rand) plan {
			i := r.IntN(len(fx.bearer))
			// k1 is live (200), being withdrawn (200 or 401), then absent (401).
			return plan{class: "old_k1", req: fx.get(fx.bearer[i], "Bearer"), sub: fx.bearerSub[i], allowed: keyOutcome(k1State)}
		}},
	}
	client := newLoadClient(*workersFlag)
	defer client.CloseIdleConnections()
	res := runLoad(t, client, time.Second, *workersFlag, classes, func() {
		time.Sleep(2 * time.Second)
		ks.is.Publish(k1, k2)
		h := ks.hits.Load() // fetch h+1 serves k2; h+2 starts once it is done
		ks.waitFetches(t, h, 2, 10*time.Second)
		ks.is.SetSigningKey(k2)
		signing.Store(1)
		t.Log("rotation: signing with k2")
		time.Sleep(2 * time.Second)
		k1State.set(keyPublished)
		ks.is.Publish(k2)
		h = ks.hits.Load()
		ks.waitFetches(t, h, 2, 10*time.Second)
		k1State.set(keyAbsent)
		t.Log("rotation: k1 withdrawn")
		time.Sleep(2 * time.Second)
	})
	t.Logf("load: %s", res.summary())
	for _, w := range res.wrong {
		t.Errorf("wrong decision: %s", w)
	}
	if res.count("old_k1", 401) == 0 || res.count("old_k1", 200) == 0 {
		t.Errorf("k1 tokens were not seen both accepted and, after withdrawal, refused: %s", res.summary())
	}
	if res.count("dpop", 200) == 0 {
		t.Errorf("no DPoP request passed: %s", res.summary())
	}
	checkUpstream(t, up, res)
	var secrets []string
	for _, f := range cur {
		secrets = append(secrets, f.dpopTok)
		secrets = append(secrets, f.bearer...)
		for _, tok := range f.invalid {
			secrets = append(secrets, tok)
		}
	}
	g.assertNoLeak(t, secrets...)
}
