package faulttest

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/devissuer"
)

// codes is a set of allowed HTTP statuses.
type codes []int

func (c codes) has(code int) bool { return slices.Contains(c, code) }

// timeline records when a dependency changed state, so the outcome a
// request may have is computed from every state in effect while it was
// in flight: a request that straddles a change may get the answer of
// either side, one that does not must get the answer of its own.
type timeline struct {
	mu      sync.Mutex // guards changes
	changes []stateChange
}

type stateChange struct {
	at    time.Time
	state string
}

func newTimeline(initial string) *timeline {
	return &timeline{changes: []stateChange{{at: time.Time{}, state: initial}}}
}

func (tl *timeline) set(state string) {
	tl.mu.Lock()
	tl.changes = append(tl.changes, stateChange{at: time.Now(), state: state})
	tl.mu.Unlock()
}

// during returns the states in effect at some point in [t0, t1].
func (tl *timeline) during(t0, t1 time.Time) []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []string
	for i, c := range tl.changes {
		next := time.Time{}
		if i+1 < len(tl.changes) {
			next = tl.changes[i+1].at
		}
		if c.at.After(t1) || (!next.IsZero() && !next.After(t0)) {
			continue
		}
		if !slices.Contains(out, c.state) {
			out = append(out, c.state)
		}
	}
	return out
}

// plan is one request and what may come back.
type plan struct {
	class string
	req   *http.Request
	// allowed returns the statuses allowed for a request sent at t0
	// whose response arrived at t1.
	allowed func(t0, t1 time.Time) codes
	// sub is the X-Tokenguard-Subject the upstream must have seen when
	// the answer is 200.
	sub string
	// onOK runs after a 200 (e.g. to offer the proof for replay).
	onOK func()
}

// class makes requests of one kind; weight is its share of the mix.
type class struct {
	name   string
	weight int
	next   func(r *rand.Rand) plan
}

func always(c ...int) func(t0, t1 time.Time) codes {
	return func(time.Time, time.Time) codes { return c }
}

// runCounter makes request ids unique across the load runs of a process.
var runCounter atomic.Int64

// loadResult is what a load run saw.
type loadResult struct {
	requests int
	elapsed  time.Duration
	perClass map[string]map[int]int // class → status → count
	wrong    []string               // descriptions of wrong decisions (first 20 kept)
	nWrong   int
	okIDs    map[string]bool // X-Test-Id of every 200
}

func (lr *loadResult) rate() float64 { return float64(lr.requests) / lr.elapsed.Seconds() }

func (lr *loadResult) count(class string, status int) int { return lr.perClass[class][status] }

func (lr *loadResult) summary() string {
	var names []string
	for n := range lr.perClass {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests in %v (%.0f/s), %d wrong decisions;", lr.requests, lr.elapsed.Round(time.Millisecond), lr.rate(), lr.nWrong)
	for _, n := range names {
		var sts []int
		for s := range lr.perClass[n] {
			sts = append(sts, s)
		}
		sort.Ints(sts)
		fmt.Fprintf(&b, " %s{", n)
		for i, s := range sts {
			if i > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "%d:%d", s, lr.perClass[n][s])
		}
		b.WriteString("}")
	}
	return b.String()
}

// loadClient is the HTTP client of load runs: keep-alive, enough idle
// connections for every worker, a timeout above the gateway's longest
// dependency wait (introspection: 5 s).
func newLoadClient(workers int) *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        4 * workers,
			MaxIdleConnsPerHost: 2 * workers,
			DisableCompression:  true,
		},
	}
}

// runLoad drives the gateway with workers closed-loop clients for d,
// choosing each request's class by weight, and checks every answer.
// during, if not nil, runs in parallel (the fault script); the run lasts
// until both d has passed and during has returned.
func runLoad(t *testing.T, client *http.Client, d time.Duration, workers int, classes []class, during func()) *loadResult {
	t.Helper()
	total := 0
	for _, c := range classes {
		total += c.weight
	}
	res := &loadResult{perClass: map[string]map[int]int{}, okIDs: map[string]bool{}}
	var mu sync.Mutex // guards res
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	run := runCounter.Add(1)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				pick := r.IntN(total)
				var c class
				for _, c = range classes {
					if pick < c.weight {
						break
					}
					pick -= c.weight
				}
				p := c.next(r)
				id := fmt.Sprintf("r%d-w%d-%d", run, w, n)
				p.req.Header.Set("X-Test-Id", id)
				t0 := time.Now()
				resp, err := client.Do(p.req)
				status, echo := 0, ""
				if err == nil {
					io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
					resp.Body.Close()
					status, echo = resp.StatusCode, resp.Header.Get("X-Echo-Subject")
				}
				t1 := time.Now()
				allowed := p.allowed(t0, t1)
				var bad string
				switch {
				case err != nil:
					bad = fmt.Sprintf("%s %s: transport error %v (allowed %v)", p.class, id, err, allowed)
				case !allowed.has(status):
					bad = fmt.Sprintf("%s %s: status %d, allowed %v (sent %s, took %v)", p.class, id, status, allowed, t0.Format("15:04:05.000"), t1.Sub(t0).Round(time.Millisecond))
				case status == http.StatusOK && echo != p.sub:
					bad = fmt.Sprintf("%s %s: 200 but the upstream saw subject %q, want %q", p.class, id, echo, p.sub)
				}
				if status == http.StatusOK && p.onOK != nil && bad == "" {
					p.onOK()
				}
				mu.Lock()
				res.requests++
				if res.perClass[p.class] == nil {
					res.perClass[p.class] = map[int]int{}
				}
				res.perClass[p.class][status]++
				if status == http.StatusOK {
					res.okIDs[id] = true
				}
				if bad != "" {
					res.nWrong++
					if len(res.wrong) < 20 {
						res.wrong = append(res.wrong, bad)
					}
				}
				mu.Unlock()
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		if during != nil {
			during()
		}
		close(done)
	}()
	timer := time.NewTimer(d)
	<-timer.C
	select {
	case <-done:
	case <-time.After(boundedWait(t, 2*time.Minute)):
		t.Error("the fault script did not finish within 2 minutes")
	}
	close(stop)
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// checkUpstream compares what reached the upstream with what the clients
// were told: every request the upstream saw was answered 200 to a client
// and carried a subject, no DPoP proof reached it twice, and no request
// reached it twice.
func checkUpstream(t *testing.T, u *upstream, results ...*loadResult) {
	t.Helper()
	ids, jtis, noSub, received := u.snapshot()
	okIDs := map[string]bool{}
	for _, r := range results {
		for id := range r.okIDs {
			okIDs[id] = true
		}
	}
	if noSub > 0 {
		t.Errorf("%d requests reached the upstream without X-Tokenguard-Subject", noSub)
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("request %s reached the upstream %d times", id, n)
		}
		if !okIDs[id] {
			t.Errorf("request %s reached the upstream but its client did not get 200", id)
		}
	}
	for id := range okIDs {
		if ids[id] == 0 {
			t.Errorf("request %s was answered 200 without reaching the upstream", id)
		}
	}
	dup := 0
	for jti, n := range jtis {
		if n > 1 {
			dup++
			if dup <= 5 {
				t.Errorf("DPoP proof jti %s was accepted %d times", jti, n)
			}
		}
	}
	t.Logf("upstream: %d requests, %d distinct DPoP proofs, %d accepted twice or more", received, len(jtis), dup)
}

// fixture holds the tokens of a load mix, minted before the timer.
type fixture struct {
	base       string // gateway URL
	bearer     []string
	bearerSub  []string
	dpopTok    string
	dpopSub    string
	client     *dpopClient
	invalid    map[string]string // kind → token ("" for no Authorization header)
	replays    chan replayItem
	dpopStatus func(t0, t1 time.Time) codes // nil: always 200
	replayStat func(t0, t1 time.Time) codes // nil: always 401
}

type replayItem struct{ tok, proof, url string }

func mint(t testing.TB, is *devissuer.Issuer, sub string, extra map[string]any) string {
	t.Helper()
	if extra == nil {
		extra = map[string]any{}
	}
	extra["sub"] = sub
	tok, err := is.Mint("api:read", time.Hour, extra)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tamper changes one character in the middle of the signature, keeping
// it canonical base64url.
func tamper(tok string) string {
	i := strings.LastIndexByte(tok, '.') + (len(tok)-strings.LastIndexByte(tok, '.'))/2
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

// newFixture mints the standard mix for issuer is, served by the gateway
// at base.
func newFixture(t *testing.T, is *devissuer.Issuer, base string) *fixture {
	t.Helper()
	fx := &fixture{base: base, client: newDPoPClient(t), replays: make(chan replayItem, 512), invalid: map[string]string{}}
	for i := range 8 {
		sub := fmt.Sprintf("bearer-%d", i)
		fx.bearer = append(fx.bearer, mint(t, is, sub, nil))
		fx.bearerSub = append(fx.bearerSub, sub)
	}
	fx.dpopSub = "dpop-user"
	fx.dpopTok = mint(t, is, fx.dpopSub, map[string]any{"cnf": map[string]any{"jkt": fx.client.jkt}})

	now := time.Now()
	fx.invalid["tampered"] = tamper(fx.bearer[0])
	fx.invalid["expired"] = mint(t, is, "expired", map[string]any{"exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix()})
	fx.invalid["wrong_aud"] = mint(t, is, "wrong-aud", map[string]any{"aud": "https://other.faulttest.example"})
	fx.invalid["missing"] = ""
	other := devissuer.New("http://127.0.0.1:1/not-configured", audience, genKey(t, "k1"))
	fx.invalid["unknown_issuer"] = mint(t, other, "stranger", nil)
	return fx
}

func (fx *fixture) url() string { return fx.base + "/api/items" }

func (fx *fixture) get(tok, scheme string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, fx.url(), nil)
	if tok != "" {
		req.Header.Set("Authorization", scheme+" "+tok)
	}
	return req
}

// classes returns the standard mix: cached Bearer tokens, DPoP with fresh
// proofs, invalid tokens of every kind, and replays of proofs already
// accepted.
func (fx *fixture) classes(t *testing.T) []class {
	dpopStatus := fx.dpopStatus
	if dpopStatus == nil {
		dpopStatus = always(http.StatusOK)
	}
	replayStatus := fx.replayStat
	if replayStatus == nil {
		replayStatus = always(http.StatusUnauthorized)
	}
	var kinds []string
	for k := range fx.invalid {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	freshDPoP := func(r *rand.Rand) plan {
		proof, err := dpop.NewProof(fx.client.priv, dpop.ProofParams{Method: http.MethodGet, URL: fx.url(), AccessToken: fx.dpopTok})
		if err != nil {
			t.Error(err)
		}
		req := fx.get(fx.dpopTok, "DPoP")
		req.Header.Set("DPoP", proof)
		return plan{class: "dpop", req: req, allowed: dpopStatus, sub: fx.dpopSub, onOK: func() {
			select {
			case fx.replays <- replayItem{tok: fx.dpopTok, proof: proof, url: fx.url()}:
			default:
			}
		}}
	}
	return []class{
		{name: "bearer", weight: 50, next: func(r *rand.Rand) plan {
			i := r.IntN(len(fx.bearer))
			return plan{class: "bearer", req: fx.get(fx.bearer[i], "Bearer"), allowed: always(http.StatusOK), sub: fx.bearerSub[i]}
		}},
		{name: "dpop", weight: 20, next: freshDPoP},
		{name: "invalid", weight: 20, next: func(r *rand.Rand) plan {
			k := kinds[r.IntN(len(kinds))]
			return plan{class: "invalid_" + k, req: fx.get(fx.invalid[k], "Bearer"), allowed: always(http.StatusUnauthorized)}
		}},
		{name: "replay", weight: 10, next: func(r *rand.Rand) plan {
			select {
			case it := <-fx.replays:
				req := fx.get(it.tok, "DPoP")
				req.Header.Set("DPoP", it.proof)
				return plan{class: "replay", req: req, allowed: replayStatus}
			default:
				return freshDPoP(r)
			}
		}},
	}
}

// gatewayStats are the gateway's own resource figures from /metrics.
type gatewayStats struct {
	goroutines, heapInuse, rss float64
}

func (g *gatewayProc) stats(t *testing.T) gatewayStats {
	m := g.metrics(t)
	return gatewayStats{
		goroutines: m.sum("go_goroutines"),
		heapInuse:  m.sum("go_memstats_heap_inuse_bytes"),
		rss:        m.sum("process_resident_memory_bytes"),
	}
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

// TestLoad is the plain load run: the standard mix for -faulttest.load
// (default 30 s) with nothing broken. Zero wrong decisions; the gateway's
// metrics agree with what the clients saw; no goroutine growth once
// connections are closed; no live-heap growth (see below).
func TestLoad(t *testing.T) {
	ks := newKeyServer(t)
	up := newUpstream(t)
	g := startGateway(t, gwConfig{
		Issuers:  []gwIssuer{{Issuer: ks.is.URL(), JWKSURI: ks.JWKSURI()}},
		DPoPMode: "allowed",
	}, up.URL)
	g.waitReady(t, 15*time.Second)
	fx := newFixture(t, ks.is, g.URL)
	workers := *workersFlag
	client := newLoadClient(workers)
	defer client.CloseIdleConnections()

	// Warm up with the same concurrency, so connection pools and caches
	// reach their steady size before the "before" figures.
	warm := runLoad(t, client, 2*time.Second, workers, fx.classes(t), nil)
	if warm.nWrong > 0 {
		t.Fatalf("warm-up: %s\n%s", warm.summary(), strings.Join(warm.wrong, "\n"))
	}
	idle := func() {
		client.CloseIdleConnections()
		up.CloseClientConnections() // the gateway's pooled upstream connections
	}
	idle()
	time.Sleep(2 * time.Second)
	before := g.stats(t)
	mBefore := g.metrics(t)

	// Sample the heap while the load runs: the gateway is never asked to
	// collect garbage, but under load it collects every few MiB, so the
	// lowest heap_inuse seen in a window tracks the live heap. A leak
	// shows as the late-window minimum climbing above the early one.
	type heapSample struct {
		at   time.Duration
		heap float64
	}
	var samples []heapSample
	d := loadDuration(t)
	start := time.Now()
	res := runLoad(t, client, d, workers, fx.classes(t), func() {
		for time.Since(start) < d-500*time.Millisecond {
			samples = append(samples, heapSample{time.Since(start), g.stats(t).heapInuse})
			time.Sleep(250 * time.Millisecond)
		}
	})
	t.Logf("load: %s", res.summary())
	for _, w := range res.wrong {
		t.Errorf("wrong decision: %s", w)
	}
	checkUpstream(t, up, warm, res)

	// The gateway's counters agree with the clients.
	mAfter := g.metrics(t)
	ok := 0
	for c := range res.perClass {
		ok += res.count(c, http.StatusOK)
	}
	if got := mAfter.sum("tokenguard_requests_total", "result=allowed") - mBefore.sum("tokenguard_requests_total", "result=allowed"); int(got) != ok {
		t.Errorf("tokenguard_requests_total{result=allowed} grew by %v, clients got %d 200s", got, ok)
	}
	replays := res.count("replay", http.StatusUnauthorized)
	if got := mAfter.sum("tokenguard_dpop_replays_total") - mBefore.sum("tokenguard_dpop_replays_total"); int(got) != replays {
		t.Errorf("tokenguard_dpop_replays_total grew by %v, clients got %d replay refusals", got, replays)
	}
	if replays == 0 || res.count("dpop", http.StatusOK) == 0 || res.count("bearer", http.StatusOK) == 0 {
		t.Errorf("the mix did not exercise every class: %s", res.summary())
	}

	// Goroutines: with every connection closed, the count returns to
	// where it was (a small margin for timers and the scrape itself).
	idle()
	var after gatewayStats
	err := waitFor(t, 15*time.Second, func() bool {
		after = g.stats(t)
		return after.goroutines <= before.goroutines+3
	})
	t.Logf("goroutines: before %v, after %v; heap_inuse idle before %s, after %s; RSS before %s, after %s",
		before.goroutines, after.goroutines, mib(before.heapInuse), mib(after.heapInuse), mib(before.rss), mib(after.rss))
	if err != nil {
		t.Errorf("goroutines grew from %v to %v and did not come back within 15s", before.goroutines, after.goroutines)
	}

	// Live heap: the minimum of the last quarter against the first
	// quarter. Legitimate growth is the in-memory replay store (one entry
	// per accepted proof, ~63 B, kept 5 min) and the token cache (a fixed
	// handful of tokens here); allow 4 MiB plus 25 % for heap-size noise
	// between GC cycles. A leak of 200 B per request at 2,000 requests/s
	// (the rate without -race) for 30 s, 12 MB, exceeds it.
	if len(samples) >= 8 {
		q := len(samples) / 4
		minOf := func(s []heapSample) float64 {
			m := s[0].heap
			for _, x := range s {
				m = min(m, x.heap)
			}
			return m
		}
		early, late := minOf(samples[:q]), minOf(samples[len(samples)-q:])
		legit := float64(res.count("dpop", http.StatusOK)) * 200
		t.Logf("heap_inuse under load: min of first quarter %s, of last quarter %s (%d samples); allowance for replay entries %s",
			mib(early), mib(late), len(samples), mib(legit))
		if late > early*1.25+4<<20+legit {
			t.Errorf("the live heap grew under load: %s → %s", mib(early), mib(late))
		}
	} else {
		t.Logf("only %d heap samples; run longer for a heap comparison", len(samples))
	}
}
