package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/bench/internal/loadkit"
	"github.com/tokenguard/tokenguard/internal/devissuer"
)

func testEnv(root bool) env {
	return env{dir: "/tmp/gw-test", upstream: "127.0.0.1:9001", issuer: "http://127.0.0.1:9002",
		audience: loadkit.GatewayAudience, pemPath: "/tmp/gw-test/issuer.pem", root: root}
}

func TestConfigs(t *testing.T) {
	for _, root := range []bool{false, true} {
		e := testEnv(root)
		tests := []struct {
			name     string
			text     string
			want     []string
			rootOnly string // present only when running as root
		}{
			{"nginx", nginxConfig(e, "127.0.0.1:9003"), []string{
				"daemon off;", "listen 127.0.0.1:9003;", "server 127.0.0.1:9001;", "pid /tmp/gw-test/nginx.pid;",
				"access_log off;", "proxy_http_version 1.1;", `proxy_set_header Connection "";`, "keepalive 64;",
			}, "user nobody nogroup;"},
			{"haproxy", haproxyConfig(e, "127.0.0.1:9004"), []string{
				"bind 127.0.0.1:9004", "server up 127.0.0.1:9001",
				"http-request deny deny_status 401 unless { var(txn.bearer) -m found }",
				"{ var(txn.alg) -m str ES256 }",
				"{ var(txn.iss) -m str http://127.0.0.1:9002 }",
				"{ var(txn.aud) -m str " + loadkit.GatewayAudience + " }",
				"{ var(txn.exp),sub(txn.now) -m int gt 0 }",
				`jwt_verify(txn.alg,"/tmp/gw-test/issuer.pem") -m int 1`,
			}, ""},
			{"apache", apacheConfig(e, "127.0.0.1:9005", "/mods"), []string{
				"Listen 127.0.0.1:9005", "LoadModule oauth2_module /mods/mod_oauth2.so",
				"OAuth2TokenVerify jwks_uri http://127.0.0.1:9002/jwks verify.exp=required",
				"<RequireAll>", "Require valid-user", "Require oauth2_claim iss:http://127.0.0.1:9002",
				"Require oauth2_claim aud:" + loadkit.GatewayAudience, `ProxyPass "/" "http://127.0.0.1:9001/"`,
				"PidFile /tmp/gw-test/apache.pid",
			}, "User www-data"},
			{"oauth2-proxy", strings.Join(oauth2ProxyArgs(e, "127.0.0.1:9006"), "\n"), []string{
				"--http-address=127.0.0.1:9006", "--upstream=http://127.0.0.1:9001/", "--skip-jwt-bearer-tokens=true",
				"--extra-jwt-issuers=http://127.0.0.1:9002=" + loadkit.GatewayAudience,
				"--oidc-issuer-url=http://127.0.0.1:9002", "--client-id=" + loadkit.GatewayAudience,
				"--bearer-token-login-fallback=false", "--email-domain=*",
			}, ""},
		}
		for _, tt := range tests {
			for _, w := range tt.want {
				if !strings.Contains(tt.text, w) {
					t.Errorf("%s (root %v): missing %q in:\n%s", tt.name, root, w, tt.text)
				}
			}
			if tt.rootOnly != "" && strings.Contains(tt.text, tt.rootOnly) != root {
				t.Errorf("%s (root %v): %q present = %v", tt.name, root, tt.rootOnly, !root)
			}
		}
	}
	// The cookie secret must be 16, 24 or 32 bytes for oauth2-proxy to start.
	for _, a := range oauth2ProxyArgs(testEnv(false), "x") {
		if v, ok := strings.CutPrefix(a, "--cookie-secret="); ok && len(v) != 32 {
			t.Errorf("cookie secret of %d bytes", len(v))
		}
	}
}

func TestWantCheck(t *testing.T) {
	reached := func(subject string) http.Header {
		h := http.Header{}
		h.Set(loadkit.UpstreamMark, "1")
		if subject != "" {
			h.Set(loadkit.SubjectEcho, subject)
		}
		return h
	}
	tests := []struct {
		name    string
		w       want
		status  int
		h       http.Header
		wantErr bool
	}{
		{"accepted", want{accept: true}, 200, reached(""), false},
		{"accepted as the subject", want{accept: true, subject: "s"}, 200, reached("s"), false},
		{"accepted with the forged subject", want{accept: true, subject: "s"}, 200, reached(forgedSubject), true},
		{"accepted but not forwarded", want{accept: true}, 200, http.Header{}, true},
		{"accept refused", want{accept: true}, 401, http.Header{}, true},
		{"upstream error", want{accept: true}, 502, reached(""), true},
		{"refused", want{refuse: []int{401}}, 401, http.Header{}, false},
		{"refused with 403 where allowed", want{refuse: []int{401, 403}}, 403, http.Header{}, false},
		{"refused with 403 where only 401", want{refuse: []int{401}}, 403, http.Header{}, true},
		{"refusal forwarded", want{refuse: []int{401}}, 200, reached(""), true},
		{"refusal forwarded with 401 from upstream", want{refuse: []int{401}}, 401, reached(""), true},
		{"refused with 500", want{refuse: []int{401}}, 500, http.Header{}, true},
	}
	for _, tt := range tests {
		if err := tt.w.check(tt.status, tt.h); (err != nil) != tt.wantErr {
			t.Errorf("%s: err = %v, want error %v", tt.name, err, tt.wantErr)
		}
	}
}

// fakePeer is a gateway in this process: it forwards to the upstream
// handler what decide allows, and answers the rest with status.
func fakePeer(t testing.TB, spec *peerSpec, decide func(auth string) int) *peer {
	up := loadkit.UpstreamHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := decide(r.Header.Get("Authorization")); s != http.StatusOK {
			w.WriteHeader(s)
			return
		}
		up.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &peer{spec: spec, base: srv.URL, pid: os.Getpid()}
}

func testTokens(t testing.TB) *tokens {
	key, err := devissuer.GenerateKey("ES256", "k")
	if err != nil {
		t.Fatal(err)
	}
	toks, err := newTokens(devissuer.New("http://127.0.0.1:1", loadkit.GatewayAudience, key))
	if err != nil {
		t.Fatal(err)
	}
	return toks
}

// validSet accepts exactly the tokens of toks that are valid, plus extra.
func validSet(toks *tokens, extra ...string) func(string) bool {
	ok := map[string]bool{}
	for _, c := range toks.bearer {
		ok["Bearer "+c.Token] = true
	}
	for _, c := range toks.uncached {
		ok["Bearer "+c.Token] = true
	}
	for _, e := range extra {
		ok[toks.negatives[e]] = true
	}
	return func(auth string) bool { return ok[auth] }
}

func TestCorrectnessPass(t *testing.T) {
	toks := testTokens(t)
	client := loadkit.NewClient(2)
	authSpec := &peerSpec{name: "fake", scenarios: []string{scBearerCached, scInvalid}, refuseStatuses: []int{401, 403}}
	floorSpec := &peerSpec{name: "fake-floor", floor: true, scenarios: []string{scPassthrough}}
	tests := []struct {
		name        string
		spec        *peerSpec
		decide      func(auth string) int
		wantRefused []string
		wantMissing []string
		wantOK      bool
	}{
		{"checks everything", authSpec, func(a string) int {
			if validSet(toks)(a) {
				return 200
			}
			if a == "" {
				return 401
			}
			return 403
		}, negatives, nil, true},
		{"ignores aud and exp", authSpec, func(a string) int {
			if validSet(toks, negWrongAud, negExpired)(a) {
				return 200
			}
			return 401
		}, []string{negTampered, negWrongIss, negMissing}, []string{negWrongAud, negExpired}, true},
		{"refuses the valid token", authSpec, func(string) int { return 401 }, negatives, nil, false},
		{"fails on a tampered token", authSpec, func(a string) int {
			switch {
			case validSet(toks)(a):
				return 200
			case a == toks.negatives[negTampered]:
				return 500
			}
			return 401
		}, []string{negWrongAud, negWrongIss, negExpired, negMissing}, nil, false},
		{"floor forwards everything", floorSpec, func(string) int { return 200 }, nil, negatives, true},
		{"floor that refuses", floorSpec, func(a string) int {
			if a == "" {
				return 401
			}
			return 200
		}, nil, []string{negTampered, negWrongAud, negWrongIss, negExpired}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fakePeer(t, tt.spec, tt.decide)
			c := correctnessPass(context.Background(), client, p, toks)
			if c.ok() != tt.wantOK {
				t.Errorf("ok = %v, want %v; failures %v", c.ok(), tt.wantOK, c.failures)
			}
			if !slices.Equal(c.refused, tt.wantRefused) {
				t.Errorf("refused %v, want %v", c.refused, tt.wantRefused)
			}
			if !slices.Equal(c.missing, tt.wantMissing) {
				t.Errorf("missing %v, want %v", c.missing, tt.wantMissing)
			}
		})
	}
}

// TestRunnerCountsWrongDecisions drives a correct fake peer and one that
// forwards everything: only the correct one may come out clean, and the
// uncached scenario must send distinct tokens.
func TestRunnerCountsWrongDecisions(t *testing.T) {
	if testing.Short() {
		t.Skip("drives HTTP servers for about a second")
	}
	toks := testTokens(t)
	ctx := context.Background()
	if err := toks.mintUncached(ctx, 50); err != nil {
		t.Fatal(err)
	}
	spec := &peerSpec{name: "fake", scenarios: []string{scBearerCached, scBearerUncached, scInvalid}, refuseStatuses: []int{401}}
	var mu sync.Mutex // guards seen
	seen := map[string]int{}
	correct := fakePeer(t, spec, func(a string) int {
		mu.Lock()
		seen[a]++
		mu.Unlock()
		if validSet(toks)(a) {
			return 200
		}
		return 401
	})
	correct.corr = correctnessPass(ctx, loadkit.NewClient(1), correct, toks)
	open := fakePeer(t, spec, func(string) int { return 200 })
	open.corr = correctness{refused: negatives}

	r := &runner{client: loadkit.NewClient(1), concurrency: 1}
	for _, sc := range []string{scBearerCached, scBearerUncached, scInvalid} {
		f, err := newFeed(ctx, sc, correct, toks, 500)
		if err != nil {
			t.Fatal(err)
		}
		res := r.run(ctx, f, 100*time.Millisecond, 1)
		if res.wrong != 0 || res.errors != 0 || res.requests() == 0 {
			t.Errorf("correct peer, %s: %d requests, %d wrong, %d errors: %v", sc, res.requests(), res.wrong, res.errors, res.samples)
		}
		f, err = newFeed(ctx, sc, open, toks, 500)
		if err != nil {
			t.Fatal(err)
		}
		res = r.run(ctx, f, 50*time.Millisecond, 1)
		if sc == scInvalid && res.wrong == 0 {
			t.Errorf("a peer that forwards everything: no wrong decision in %s", sc)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, c := range toks.uncached {
		if n := seen["Bearer "+c.Token]; n > 1 {
			t.Fatalf("uncached token sent %d times", n)
		}
	}
	if correct.uncachedNext == 0 {
		t.Error("the uncached cursor did not move")
	}
}

func TestRowsJSONShape(t *testing.T) {
	var peers []*peer
	var cells []*cell
	for _, s := range specs {
		p := &peer{spec: s}
		peers = append(peers, p)
		switch s.name {
		case gwHAProxy:
			p.skipped = "haproxy not installed"
			continue
		case gwBare, gwNginx:
			p.corr = correctness{missing: negatives}
		default:
			p.corr = correctness{refused: negatives}
		}
		for _, sc := range s.scenarios {
			c := &cell{p: p, sc: sc}
			for range 10 {
				c.total.hist.Record(time.Millisecond)
			}
			c.total.elapsed, c.total.cpu, c.total.cpuOK = time.Second, 2*time.Millisecond, true
			c.wrk = &wrkResult{requests: 20, elapsed: time.Second, p50: time.Millisecond, p99: 2 * time.Millisecond}
			cells = append(cells, c)
		}
	}
	b, err := marshalRows(buildRows(peers, cells))
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	required := []string{"gateway", "scenario", "rps", "p50_ms", "p99_ms", "cpu_us_per_req", "wrong_decisions", "checks_refused"}
	// Every gateway once per scenario it could have: floors passthrough,
	// the others the four authenticated scenarios.
	if len(got) != 2+4*4 {
		t.Fatalf("%d rows, want 18:\n%s", len(got), b)
	}
	names := map[string]bool{}
	for _, r := range got {
		for _, k := range required {
			if _, ok := r[k]; !ok {
				t.Errorf("row %v lacks %q", r, k)
			}
		}
		gw, sc := r["gateway"].(string), r["scenario"].(string)
		names[gw] = true
		if !slices.Contains(allScenarios, sc) {
			t.Errorf("unknown scenario %q", sc)
		}
		if (gw == gwBare || gw == gwNginx) != (sc == scPassthrough) {
			t.Errorf("%s has scenario %s", gw, sc)
		}
		if _, ok := r["checks_refused"].([]any); !ok {
			t.Errorf("%s %s: checks_refused is %T, want a list", gw, sc, r["checks_refused"])
		}
		skipped, _ := r["skipped"].(string)
		switch {
		case gw == gwHAProxy:
			if skipped == "" || r["rps"] != nil || r["wrong_decisions"] != nil {
				t.Errorf("skipped haproxy row: %v", r)
			}
		case sc == scDPoP && gw != gwTokenguard:
			if !strings.HasPrefix(skipped, "not ") || r["rps"] != nil {
				t.Errorf("%s dpop must be reported as not supported: %v", gw, r)
			}
		default:
			if skipped != "" || r["rps"] != 10.0 || r["p50_ms"] != 1.0 || r["cpu_us_per_req"] != 200.0 || r["wrong_decisions"] != 0.0 || r["wrk_rps"] != 20.0 {
				t.Errorf("measured row: %v", r)
			}
		}
	}
	for _, s := range specs {
		if !names[s.name] {
			t.Errorf("no row for %s", s.name)
		}
	}
	md := markdown(meta{started: time.Now(), finished: time.Now(), duration: time.Second, rounds: 1}, buildRows(peers, cells), peers)
	for _, w := range []string{"| tokenguard | bearer-cached | 10 |", "**skipped**: haproxy not installed", "bearer-cached ÷ bare-proxy passthrough: **1.00×**"} {
		if !strings.Contains(md, w) {
			t.Errorf("markdown lacks %q:\n%s", w, md)
		}
	}
}

func TestParseWrk(t *testing.T) {
	out := "Running 1s test @ http://127.0.0.1:1/orders/42\n  1 threads and 16 connections\nGATEWAYS_WRK requests=1200 duration_us=1000000 wrong=2 wrapped=0 errors=1 p50_us=900 p99_us=4100\n"
	w, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if w.requests != 1200 || w.rate() != 1200 || w.wrong != 2 || w.errors != 1 || w.p50 != 900*time.Microsecond || w.p99 != 4100*time.Microsecond {
		t.Errorf("parsed %+v", w)
	}
	for _, bad := range []string{"", "GATEWAYS_WRK requests=1", "GATEWAYS_WRK requests=x duration_us=1 wrong=0 wrapped=0 errors=0 p50_us=1 p99_us=1"} {
		if _, err := parseWrk(bad); err == nil {
			t.Errorf("parseWrk(%q) succeeded", bad)
		}
	}
	if !strings.Contains(wrkScript, `"`+loadkit.UpstreamMark+`"`) || !strings.Contains(wrkScript, loadkit.RequestPath) {
		t.Error("the Lua script does not check the upstream mark or request the path")
	}
}

func TestWrkLines(t *testing.T) {
	toks := testTokens(t)
	ctx := context.Background()
	p := &peer{spec: specByName(gwTokenguard), base: "http://127.0.0.1:1", corr: correctness{refused: negatives}}
	f, err := newFeed(ctx, scBearerUncached, p, toks, 30)
	if err != nil {
		t.Fatal(err)
	}
	lines := wrkLines(f, 30)
	f.done()
	if len(lines) != 30 || p.uncachedNext != 30 || lines[0] != "Bearer "+toks.uncached[0].Token {
		t.Errorf("uncached: %d lines, cursor %d", len(lines), p.uncachedNext)
	}
	f, _ = newFeed(ctx, scInvalid, p, toks, 0)
	lines = wrkLines(f, 0)
	if len(lines) != len(negatives) || !slices.Contains(lines, "-") {
		t.Errorf("invalid: %q, want one line per negative case, \"-\" for the missing token", lines)
	}
	f, _ = newFeed(ctx, scDPoP, p, toks, 3)
	lines = wrkLines(f, 3)
	if auth, proof, ok := strings.Cut(lines[0], "\t"); len(lines) != 3 || !ok || !strings.HasPrefix(auth, "DPoP ") || strings.Count(proof, ".") != 2 {
		t.Errorf("dpop: %q", lines)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-check", "-skip", "haproxy=not installed", "-only", "tokenguard,nginx"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !o.check || o.duration != time.Second || o.rounds != 1 || o.wrkDuration != time.Second || o.skip[gwHAProxy] != "not installed" || !o.only[gwNginx] || o.only[gwHAProxy] {
		t.Errorf("options %+v", o)
	}
	if o.bins["nginx"] != "/usr/sbin/nginx" || o.bins["tokenguard"] != "" {
		t.Errorf("binaries %v", o.bins)
	}
	for _, bad := range [][]string{{"-skip", "varnish=x"}, {"-skip", "nginx"}, {"-only", "envoy"}, {"-rounds", "0"}, {"-duration", "100ms", "-rounds", "2"}, {"extra"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
}

func TestDiscovery(t *testing.T) {
	srv := httptest.NewServer(withDiscovery("http://issuer.test", http.NotFoundHandler()))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc["issuer"] != "http://issuer.test" || doc["jwks_uri"] != "http://issuer.test/jwks" {
		t.Errorf("discovery document %v", doc)
	}
	if resp, err := http.Get(srv.URL + "/jwks"); err != nil || resp.StatusCode != 404 {
		t.Errorf("other paths must reach the issuer's handler: %v %v", resp, err)
	}
}

func TestPublicKeyPEM(t *testing.T) {
	key, err := devissuer.GenerateKey("ES256", "k")
	if err != nil {
		t.Fatal(err)
	}
	b, err := publicKeyPEM(devissuer.New("http://127.0.0.1:1", "aud", key))
	if err != nil || !strings.HasPrefix(string(b), "-----BEGIN PUBLIC KEY-----\n") {
		t.Errorf("PEM %q, %v", b, err)
	}
}
