package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/bench/internal/loadkit"
	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/middleware"
)

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// TestExpectation is the decision table: each row that must fail would
// pass if the corresponding check in expectation.check were removed.
func TestExpectation(t *testing.T) {
	reached := func(subject string) http.Header { return header(upstreamMark, "1", subjectEcho, subject) }
	tests := []struct {
		name    string
		kind    targetKind
		v       variant
		subject string
		status  int
		h       http.Header
		wantErr string // "" means a right decision
	}{
		{"bare forwards valid", kindBare, vBearer, "s", 200, reached(forgedSubject), ""},
		{"bare forwards invalid too", kindBare, vTampered, "", 200, reached(forgedSubject), ""},
		{"bare refusing is wrong", kindBare, vMissing, "", 401, http.Header{}, "status 401, want 200"},
		{"bare answering itself is wrong", kindBare, vBearer, "s", 200, http.Header{}, "did not reach the upstream"},

		{"gateway passes bearer as its subject", kindGateway, vBearer, "load-bearer-1", 200, reached("load-bearer-1"), ""},
		{"gateway passes dpop as its subject", kindGateway, vDPoP, "load-dpop-0", 200, reached("load-dpop-0"), ""},
		{"gateway refusing valid is wrong", kindGateway, vBearer, "s", 401, http.Header{}, "status 401, want 200"},
		{"gateway keeping the forged subject is wrong", kindGateway, vBearer, "load-bearer-1", 200, reached(forgedSubject), "upstream saw subject"},
		{"gateway sending another token's subject is wrong", kindGateway, vDPoP, "load-dpop-0", 200, reached("load-dpop-1"), "upstream saw subject"},
		{"gateway 200 without the upstream is wrong", kindGateway, vBearer, "s", 200, http.Header{}, "did not reach the upstream"},

		{"gateway refuses missing", kindGateway, vMissing, "", 401, http.Header{}, ""},
		{"gateway refuses tampered", kindGateway, vTampered, "", 401, http.Header{}, ""},
		{"gateway refuses expired", kindGateway, vExpired, "", 401, http.Header{}, ""},
		{"gateway refuses bound-as-bearer", kindGateway, vBoundAsBearer, "", 401, http.Header{}, ""},
		{"gateway refuses replayed", kindGateway, vReplayed, "", 401, http.Header{}, ""},
		{"gateway forwarding tampered is wrong", kindGateway, vTampered, "", 200, reached(forgedSubject), "status 200, want 401"},
		{"gateway 401 after reaching the upstream is wrong", kindGateway, vExpired, "", 401, reached(""), "reached the upstream"},
		{"gateway 403 for missing is wrong", kindGateway, vMissing, "", 403, http.Header{}, "status 403, want 401"},
		{"gateway 503 for replayed is wrong", kindGateway, vReplayed, "", 503, http.Header{}, "status 503, want 401"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := expect(tt.kind, tt.v, tt.subject).check(tt.status, tt.h)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("wrong decision reported: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("wrong decision not reported, want %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestPick(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(7, 8))
	const n = 100_000
	for _, c := range []class{classBearer, classDPoP, classInvalid, classMixed} {
		var counts [numVariants]int
		for range n {
			counts[pick(c, rng)]++
		}
		invalid := n - counts[vBearer] - counts[vDPoP]
		switch c {
		case classBearer:
			if counts[vBearer] != n {
				t.Errorf("cached Bearer: %v, want only bearer", counts)
			}
		case classDPoP:
			if counts[vDPoP] != n {
				t.Errorf("DPoP: %v, want only dpop", counts)
			}
		case classInvalid:
			if invalid != n {
				t.Errorf("invalid: %v, want no valid requests", counts)
			}
			for _, v := range invalidVariants {
				if counts[v] < n/len(invalidVariants)*9/10 {
					t.Errorf("invalid: %s drawn %d times of %d, want about a fifth", v, counts[v], n)
				}
			}
		case classMixed:
			near := func(got, wantPct int) bool { return got > n*wantPct/100-n/100 && got < n*wantPct/100+n/100 }
			if !near(counts[vBearer], 70) || !near(counts[vDPoP], 20) || !near(invalid, 10) {
				t.Errorf("mixed: bearer %d, dpop %d, invalid %d of %d; want 70/20/10 %%", counts[vBearer], counts[vDPoP], invalid, n)
			}
		}
	}
}

// verifyES256 checks a compact JWS's ES256 signature with the standard
// library, independently of the code under test.
func verifyES256(pub *ecdsa.PublicKey, jws string) bool {
	dot := strings.LastIndexByte(jws, '.')
	sig, err := base64.RawURLEncoding.DecodeString(jws[dot+1:])
	if err != nil || len(sig) != 64 {
		return false
	}
	h := sha256.Sum256([]byte(jws[:dot]))
	return ecdsa.Verify(pub, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
}

func TestTamper(t *testing.T) {
	key, err := devissuer.GenerateKey("ES256", "k")
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Private.Public().(*ecdsa.PublicKey)
	for i := range 50 {
		tok, err := devissuer.New("http://127.0.0.1:1", "aud", key).Mint("s", time.Hour, map[string]any{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		bad := tamper(tok)
		if !verifyES256(pub, tok) {
			t.Fatal("the untampered token does not verify: the check is broken")
		}
		if verifyES256(pub, bad) {
			t.Fatalf("tampered token %d still verifies", i)
		}
		diff := 0
		for j := range tok {
			if tok[j] != bad[j] {
				diff++
				if j <= strings.LastIndexByte(tok, '.') {
					t.Fatalf("tamper changed byte %d, outside the signature", j)
				}
			}
		}
		if diff != 1 || len(bad) != len(tok) {
			t.Fatalf("tamper changed %d bytes (lengths %d, %d), want exactly one", diff, len(tok), len(bad))
		}
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		want    options
		wantErr string
	}{
		{args: nil, want: options{duration: 10 * time.Second, rounds: 5, concurrency: 16, seed: 1}},
		{args: []string{"-duration", "2s", "-out", "results/load.md"}, want: options{duration: 2 * time.Second, rounds: 5, concurrency: 16, out: "results/load.md", seed: 1}},
		{args: []string{"-check"}, want: options{duration: time.Second, rounds: 1, concurrency: 16, check: true, seed: 1}},
		{args: []string{"-check", "-duration", "3s", "-rounds", "3"}, want: options{duration: 3 * time.Second, rounds: 3, concurrency: 16, check: true, seed: 1}},
		{args: []string{"-duration", "0s"}, wantErr: "-duration must be"},
		{args: []string{"-duration", "2h"}, wantErr: "-duration must be"},
		{args: []string{"-rounds", "0"}, wantErr: "-rounds must be"},
		{args: []string{"-concurrency", "0"}, wantErr: "-concurrency must be"},
		{args: []string{"-concurrency", "5000"}, wantErr: "-concurrency must be"},
		{args: []string{"-duration", "1s", "-rounds", "20"}, wantErr: "per phase"},
		{args: []string{"extra"}, wantErr: "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestProofPlan(t *testing.T) {
	p := newProofPlan()
	if n := p.need(classBearer, time.Second); n != 256 {
		t.Errorf("cached Bearer needs %d proofs, want only the margin", n)
	}
	p.observe(classDPoP, &phaseResult{hist: histOf(1000), elapsed: time.Second})
	if n := p.need(classDPoP, 2*time.Second); n != 1000*2*3/2+256 {
		t.Errorf("after 1000 req/s, a 2 s DPoP phase needs %d proofs, want %d", n, 1000*2*3/2+256)
	}
	p.observe(classDPoP, &phaseResult{hist: histOf(1000), elapsed: time.Second, inline: 1})
	if p.rate[classDPoP] != 2000 {
		t.Errorf("a phase that ran dry: rate %v, want it doubled to 2000", p.rate[classDPoP])
	}
	p.observe(classMixed, &phaseResult{hist: histOf(5000), elapsed: time.Second})
	if n := p.need(classMixed, time.Second); n != 5000/5*3/2+256 {
		t.Errorf("mixed at 5000 req/s needs %d proofs for 1 s, want %d (its DPoP fifth)", n, 5000/5*3/2+256)
	}
}

func histOf(n int) loadkit.Histogram {
	var h loadkit.Histogram
	for range n {
		h.Record(time.Millisecond)
	}
	return h
}

func TestFailures(t *testing.T) {
	full := func() *report {
		r := newReport(options{duration: time.Second, rounds: 1, concurrency: 1})
		for _, k := range []targetKind{kindBare, kindGateway} {
			for c := range numClasses {
				r.add(k, c, &phaseResult{hist: histOf(3), elapsed: time.Second})
			}
		}
		return r
	}
	if f := full().failures(); len(f) != 0 {
		t.Errorf("a clean run fails: %v", f)
	}
	r := full()
	r.add(kindGateway, classInvalid, &phaseResult{wrong: 1, samples: []string{"gateway tampered: status 200, want 401"}})
	if f := r.failures(); len(f) != 1 || !strings.Contains(f[0], "status 200, want 401") {
		t.Errorf("a wrong decision: failures %v", f)
	}
	r = full()
	r.addWarmup(kindGateway, &phaseResult{wrong: 1})
	if len(r.failures()) != 1 {
		t.Error("a wrong decision in the warm-up is not a failure")
	}
	r = full()
	r.add(kindBare, classMixed, &phaseResult{errors: 2})
	if len(r.failures()) != 1 {
		t.Error("requests without a response are not a failure")
	}
	r = newReport(options{duration: time.Second, rounds: 1, concurrency: 1})
	if len(r.failures()) != 2*int(numClasses) {
		t.Errorf("a run that measured nothing: %d failures, want one per (target, class)", len(r.failures()))
	}
}

// stack is an in-process stand-in for the processes of a real run: an
// issuer, a bare target (the upstream itself: it forwards everything) and
// a gateway built from the real middleware, or a broken one.
type stack struct {
	w           *workload
	bare, gwURL string
}

// gatewayFlaw selects how the in-process gateway misbehaves.
type gatewayFlaw int

const (
	flawNone       gatewayFlaw = iota
	flawNoAuth                 // forwards everything, like the bare proxy
	flawKeepsForge             // verifies, but passes the client's X-Tokenguard-Subject through
)

func newStack(t *testing.T, flaw gatewayFlaw) *stack {
	t.Helper()
	key, err := devissuer.GenerateKey("ES256", "k1")
	if err != nil {
		t.Fatal(err)
	}
	issuerSrv := httptest.NewUnstartedServer(nil)
	is := devissuer.New("http://"+issuerSrv.Listener.Addr().String(), gatewayAudience, key)
	issuerSrv.Config.Handler = is.Handler()
	issuerSrv.Start()
	t.Cleanup(issuerSrv.Close)

	gwSrv := httptest.NewUnstartedServer(nil)
	gwURL := "http://" + gwSrv.Listener.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	guard, err := middleware.New(ctx, middleware.Config{
		Audience:  gatewayAudience,
		Issuers:   []middleware.Issuer{{Issuer: is.URL(), JWKSURI: is.URL() + "/jwks"}},
		DPoP:      middleware.DPoPConfig{Mode: middleware.DPoPAllowed},
		PublicURL: gwURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { guard.Close() })
	up := loadkit.UpstreamHandler()
	forward := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := middleware.PrincipalFrom(r.Context())
		if flaw != flawKeepsForge {
			r.Header.Set(identityHdr, p.Subject)
		}
		up.ServeHTTP(w, r)
	})
	switch flaw {
	case flawNoAuth:
		gwSrv.Config.Handler = up
	default:
		gwSrv.Config.Handler = guard.Require(routeScope)(forward)
	}
	gwSrv.Start()
	t.Cleanup(gwSrv.Close)
	bareSrv := httptest.NewServer(up)
	t.Cleanup(bareSrv.Close)

	w, err := newWorkload(is, gwURL)
	if err != nil {
		t.Fatal(err)
	}
	return &stack{w: w, bare: bareSrv.URL, gwURL: gwURL}
}

// TestRunnerCountsWrongDecisions drives a correct gateway (the real
// middleware) and two broken ones through the runner: only the correct one
// may come out clean, and every class must really be exercised.
func TestRunnerCountsWrongDecisions(t *testing.T) {
	if testing.Short() {
		t.Skip("drives HTTP servers for about a second")
	}
	const phase = 150 * time.Millisecond
	tests := []struct {
		name      string
		flaw      gatewayFlaw
		wrongIn   []class // classes that must report wrong decisions
		cleanRuns []class
	}{
		{"real middleware", flawNone, nil, []class{classBearer, classDPoP, classInvalid, classMixed}},
		{"no authentication", flawNoAuth, []class{classBearer, classDPoP, classInvalid, classMixed}, nil},
		{"forged subject kept", flawKeepsForge, []class{classBearer, classDPoP, classMixed}, []class{classInvalid}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t, tt.flaw)
			ctx := context.Background()
			r := &runner{client: loadkit.NewClient(2), w: s.w, concurrency: 2}
			if err := s.w.pool.fill(ctx, s.w, 300); err != nil {
				t.Fatal(err)
			}
			gw := &target{name: "gateway", kind: kindGateway, base: s.gwURL}
			bare := &target{name: "bare proxy", kind: kindBare, base: s.bare}
			got := map[class]*phaseResult{}
			for _, c := range []class{classBearer, classDPoP, classInvalid, classMixed} {
				if res := r.run(ctx, bare, c, phase/2, 1); res.wrong != 0 || res.errors != 0 || res.requests() == 0 {
					t.Fatalf("bare %s: %d requests, %d wrong, %d errors: %v", c, res.requests(), res.wrong, res.errors, res.samples)
				}
				got[c] = r.run(ctx, gw, c, phase, 1)
				if got[c].errors != 0 || got[c].requests() == 0 {
					t.Fatalf("gateway %s: %d requests, %d errors: %v", c, got[c].requests(), got[c].errors, got[c].samples)
				}
			}
			for _, c := range tt.wrongIn {
				if got[c].wrong == 0 {
					t.Errorf("%s: no wrong decision reported against a broken gateway", c)
				}
			}
			for _, c := range tt.cleanRuns {
				if got[c].wrong != 0 {
					t.Errorf("%s: %d wrong decisions, e.g. %v", c, got[c].wrong, got[c].samples)
				}
			}
			if tt.flaw == flawNone {
				// Each invalid shape was sent, the replay included (the
				// DPoP phase before it spent proofs), and refused.
				for _, v := range invalidVariants {
					if got[classInvalid].byVariant[v] == 0 {
						t.Errorf("invalid run sent no %s request: %v", v, got[classInvalid].byVariant)
					}
				}
			}
		})
	}
}

// TestReplayNeedsSpentProof: before the gateway has accepted any proof, a
// "replay" would be a first use and be accepted, so it is sent as a
// missing credential instead.
func TestReplayNeedsSpentProof(t *testing.T) {
	key, err := devissuer.GenerateKey("ES256", "k")
	if err != nil {
		t.Fatal(err)
	}
	w, err := newWorkload(devissuer.New("http://127.0.0.1:1", gatewayAudience, key), "http://127.0.0.1:2")
	if err != nil {
		t.Fatal(err)
	}
	rng := mrand.New(mrand.NewPCG(1, 1))
	out, err := w.request(context.Background(), kindGateway, "http://127.0.0.1:2", vReplayed, rng)
	if err != nil {
		t.Fatal(err)
	}
	if out.v != vMissing || out.req.Header.Get("Authorization") != "" || out.want.Status != 401 {
		t.Errorf("replay with nothing spent: %s, Authorization %q", out.v, out.req.Header.Get("Authorization"))
	}
	w.spent.add(proof{cred: 1, jwt: "spent.proof.jwt"})
	out, err = w.request(context.Background(), kindGateway, "http://127.0.0.1:2", vReplayed, rng)
	if err != nil {
		t.Fatal(err)
	}
	if out.v != vReplayed || out.req.Header.Get("DPoP") != "spent.proof.jwt" || out.req.Header.Get("Authorization") != "DPoP "+w.dpop[1].Token {
		t.Errorf("replay: %s with DPoP %q", out.v, out.req.Header.Get("DPoP"))
	}
}
