package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tokenguard/tokenguard/gateway"
	"github.com/tokenguard/tokenguard/internal/dpoptest"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

// TestBrowserCORS calls the gateway with fetch() from pages on two other
// origins: one in cors.allowed_origins, one not. A token in Authorization
// makes Chromium send a preflight first. From the allowed origin the
// gateway answers the preflight itself and the page reads what follows,
// denials included: their status, the challenge and the DPoP nonce (which
// it then uses). From the other origin the preflight is refused, so the
// call is never made, and nothing reaches the upstream; a simple request
// that needs no preflight is sent, but the page cannot read the answer,
// though the upstream allows any origin. The gateway's access log shows
// which preflights it answered.
func TestBrowserCORS(t *testing.T) {
	t.Parallel()
	exe := findBrowser(t)
	is := testkit.StartIssuer(t)
	up := startRecorder(t)
	app, other := startPage(t, "app"), startPage(t, "other")
	gw := startCORSGateway(t, is.URL(), up.URL, app.URL)
	b, appTab := startBrowser(t, exe, 2*flowTimeout)
	otherTab := b.newTab(appTab, "other")
	appCtx, cancelApp := context.WithTimeout(appTab, flowTimeout)
	defer cancelApp()
	otherCtx, cancelOther := context.WithTimeout(otherTab, flowTimeout)
	defer cancelOther()
	act(t, appCtx, "open the allowed origin's page", chromedp.Navigate(app.URL))
	act(t, otherCtx, "open the other origin's page", chromedp.Navigate(other.URL))
	tabs := map[*httptest.Server]context.Context{app: appCtx, other: otherCtx}
	tok := testkit.Mint(t, is, "orders:read")
	var shown []string // what each page read, for the screenshot
	show := func(origin, path string, a fetchAnswer) {
		r := a.Error
		if a.OK {
			r = fmt.Sprintf("%d %.40q; the headers it can read: %s", a.Status, a.Body, a.Headers)
		}
		shown = append(shown, origin+" "+path+": "+r)
	}

	// Each case has a path of its own: the access log and the upstream's
	// record are read by path, and Chromium caches a preflight by URL.
	const (
		preflightAnswered = "status=204 decision=preflight"
		preflightRefused  = "status=403 decision=reject reason=origin_not_allowed"
		noPreflight       = ""
	)
	for _, tc := range []struct {
		name      string
		from      *httptest.Server // the page that calls: app or other
		path      string
		auth      string // Authorization; "" sends a simple request
		want      fetchAnswer
		preflight string   // the preflight's access log outcome
		upstream  []string // what the upstream received for path
	}{{
		name: "allowed origin, valid token: the page reads the upstream's answer",
		from: app, path: "/orders/a", auth: "Bearer " + tok,
		want:      fetchAnswer{OK: true, Status: http.StatusOK, Body: "orders for demo-user"},
		preflight: preflightAnswered, upstream: []string{"GET /orders/a"},
	}, {
		name: "allowed origin, invalid token: the page reads the 401 and its challenge",
		from: app, path: "/orders/b", auth: "Bearer not-a-token",
		want:      fetchAnswer{OK: true, Status: http.StatusUnauthorized, Challenge: `error="invalid_token"`},
		preflight: preflightAnswered,
	}, {
		name: "allowed origin, no token (no preflight): the page reads the 401 and its challenge",
		from: app, path: "/orders/c",
		want:      fetchAnswer{OK: true, Status: http.StatusUnauthorized, Challenge: "Bearer realm="},
		preflight: noPreflight,
	}, {
		name: "allowed origin, public route: the gateway answers the preflight, the call is forwarded",
		from: app, path: "/public/a", auth: "Bearer " + tok,
		want:      fetchAnswer{OK: true, Status: http.StatusOK, Body: "public"},
		preflight: preflightAnswered, upstream: []string{"GET /public/a"},
	}, {
		name: "other origin, valid token: the preflight is refused, the call never made",
		from: other, path: "/orders/d", auth: "Bearer " + tok,
		want:      fetchAnswer{Error: "TypeError"},
		preflight: preflightRefused,
	}, {
		// Were the preflight passed on, this route would forward it.
		name: "other origin, public route: the preflight is refused, not forwarded",
		from: other, path: "/public/b", auth: "Bearer " + tok,
		want:      fetchAnswer{Error: "TypeError"},
		preflight: preflightRefused,
	}, {
		name: "other origin, simple request to a public route: sent, but the page cannot read it",
		from: other, path: "/public/c",
		want:      fetchAnswer{Error: "TypeError"},
		preflight: noPreflight, upstream: []string{"GET /public/c"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr map[string]string
			if tc.auth != "" {
				hdr = map[string]string{"Authorization": tc.auth}
			}
			got := pageFetch(t, tabs[tc.from], gw.url+tc.path, hdr)
			show(tc.from.URL, tc.path, got)
			checkAnswer(t, got, tc.want)
			if seen := up.seen(tc.path); !slices.Equal(seen, tc.upstream) {
				t.Errorf("the upstream received %q for %s, want %q", seen, tc.path, tc.upstream)
			}
			gw.checkPreflight(t, tc.path, tc.preflight)
		})
	}

	t.Run("allowed origin, DPoP: the page reads the nonce of a denial and retries with it", func(t *testing.T) {
		const path = "/orders/e"
		key := dpoptest.NewClient(t)
		bound, err := is.Mint("orders:read", time.Hour, map[string]any{"cnf": map[string]any{"jkt": key.JKT}})
		if err != nil {
			t.Fatal(err)
		}
		hdr := map[string]string{"Authorization": "DPoP " + bound, "DPoP": key.Proof(t, "GET", gw.url+path, bound, "")}
		got := pageFetch(t, appCtx, gw.url+path, hdr)
		show(app.URL, path, got)
		checkAnswer(t, got, fetchAnswer{OK: true, Status: http.StatusUnauthorized, Challenge: `error="use_dpop_nonce"`})
		if got.Nonce == "" {
			t.Fatalf("the page cannot read DPoP-Nonce (its headers: %s)", got.Headers)
		}
		gw.checkPreflight(t, path, preflightAnswered)
		hdr["DPoP"] = key.Proof(t, "GET", gw.url+path, bound, got.Nonce)
		retry := pageFetch(t, appCtx, gw.url+path, hdr)
		show(app.URL, path+" (with the nonce)", retry)
		checkAnswer(t, retry, fetchAnswer{OK: true, Status: http.StatusOK, Body: "orders for demo-user"})
		if seen := up.seen(path); !slices.Equal(seen, []string{"GET " + path}) {
			t.Errorf("the upstream received %q for %s, want the retry only", seen, path)
		}
	})

	if !t.Failed() {
		captioned(t, appCtx, appTab, b.artifacts, "cors.png", fmt.Sprintf("fetch() to the gateway on %s from pages on %s (in cors.allowed_origins) and %s (not), what each page read:\n%s",
			gw.url, app.URL, other.URL, strings.Join(shown, "\n")))
	}
}

// fetchAnswer is what a page's fetch() gave: the response as the page's
// script can read it, or the error it threw.
type fetchAnswer struct {
	OK        bool   // the promise resolved
	Status    int    // response.status
	Body      string // response.text()
	Challenge string // headers.get("WWW-Authenticate"), "" when null
	Nonce     string // headers.get("DPoP-Nonce"), "" when null
	Headers   string // the header names the script can see
	Error     string // the error's name and message, when it threw
}

// pageFetch runs fetch(url) with headers hdr in the page of ctx, as the
// page's own script would, and returns what that script can read.
func pageFetch(t *testing.T, ctx context.Context, url string, hdr map[string]string) fetchAnswer {
	t.Helper()
	u, _ := json.Marshal(url)
	h, _ := json.Marshal(hdr)
	return run(t, ctx, "fetch "+url, chromedp.Evaluate[fetchAnswer](`(async () => {
		try {
			const r = await fetch(`+string(u)+`, {headers: `+string(h)+` ?? {}, cache: "no-store"});
			return {
				OK: true, Status: r.status, Body: await r.text(),
				Challenge: r.headers.get("WWW-Authenticate") ?? "", Nonce: r.headers.get("DPoP-Nonce") ?? "",
				Headers: [...r.headers.keys()].join(", "),
			};
		} catch (e) {
			return {OK: false, Error: e.name + ": " + e.message};
		}
	})()`, chromedp.EvalAwaitPromise))
}

// checkAnswer compares got with want: Challenge and Error are parts that
// must occur; Body is exact when set.
func checkAnswer(t *testing.T, got, want fetchAnswer) {
	t.Helper()
	switch {
	case got.OK != want.OK:
		t.Fatalf("fetch resolved %v (%+v), want %v", got.OK, got, want.OK)
	case !want.OK:
		if !strings.HasPrefix(got.Error, want.Error) {
			t.Errorf("fetch threw %q, want %s", got.Error, want.Error)
		}
	case got.Status != want.Status, want.Body != "" && got.Body != want.Body:
		t.Errorf("the page read %d %q, want %d %q", got.Status, got.Body, want.Status, want.Body)
	case !strings.Contains(got.Challenge, want.Challenge):
		t.Errorf("the page read WWW-Authenticate %q, want it to hold %q (its headers: %s)", got.Challenge, want.Challenge, got.Headers)
	}
}

// recorder is an upstream that records each request it receives
// ("METHOD path") and answers with CORS headers of its own, too
// permissive: the gateway must drop them.
type recorder struct {
	URL  string
	mu   sync.Mutex // guards reqs
	reqs []string
}

// startRecorder serves a recorder on 127.0.0.1 until the test ends.
func startRecorder(t *testing.T) *recorder {
	t.Helper()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, r.Method+" "+r.URL.Path)
		rec.mu.Unlock()
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if strings.HasPrefix(r.URL.Path, "/public/") {
			io.WriteString(w, "public")
			return
		}
		io.WriteString(w, "orders for "+r.Header.Get(gateway.HeaderSubject))
	}))
	t.Cleanup(srv.Close)
	rec.URL = srv.URL
	return rec
}

// seen is what the recorder received for path.
func (rec *recorder) seen(path string) []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []string
	for _, r := range rec.reqs {
		if _, p, _ := strings.Cut(r, " "); p == path {
			out = append(out, r)
		}
	}
	return out
}

// startPage serves an empty page on 127.0.0.1, an origin of its own,
// until the test ends.
func startPage(t *testing.T, title string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>%s</title><p>%s</p>", title, title)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// corsGateway is a gateway started for a test, with its access log.
type corsGateway struct {
	url string // http://127.0.0.1:port, also its public_url
	log *testkit.LockedBuffer
}

// startCORSGateway runs the gateway in front of upstream until the test
// ends, trusting issuer, with GET /orders/ (orders:read), a public
// /public/ (any method: a preflight passed on would be forwarded), DPoP
// with server nonces, and cors allowing origin.
func startCORSGateway(t *testing.T, issuer, upstream, origin string) *corsGateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &corsGateway{url: "http://" + ln.Addr().String(), log: &testkit.LockedBuffer{}}
	yaml := fmt.Sprintf(`listen: 127.0.0.1:0
upstream: %s
public_url: %s
audience: %s
issuers:
  - issuer: %s
    jwks_uri: %s/jwks
dpop:
  mode: allowed
  nonce: true
routes:
  - pattern: "GET /orders/"
    scopes: [orders:read]
  - pattern: "/public/"
    public: true
cors:
  allowed_origins: [%s]
startup_wait: 5s
`, upstream, g.url, testkit.Audience, issuer, issuer, origin)
	cfg, err := gateway.ParseConfig("cors.yaml", []byte(yaml), testkit.EnvOf(nil))
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	gw, err := gateway.New(cfg, gateway.Options{Listener: ln, LogOutput: g.log})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Wait)
	defer cancel()
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway: %v", err)
			}
		case <-time.After(2 * testkit.Wait):
			t.Error("the gateway did not stop")
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.log.String())
		}
	})
	return g
}

// checkPreflight checks the access log for the preflight of path: its
// outcome (as "status=… decision=…") is want, or, with want "", there is
// none (then the request itself must have been logged).
func (g *corsGateway) checkPreflight(t *testing.T, path, want string) {
	t.Helper()
	preflight := "method=OPTIONS path=" + path + " "
	line := "method=GET path=" + path + " "
	if want != "" {
		line = preflight + want
	}
	deadline := time.Now().Add(testkit.Wait)
	for !strings.Contains(g.log.String(), line) {
		if time.Now().After(deadline) {
			t.Errorf("no %q in the gateway's access log within %v", line, testkit.Wait)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := strings.Count(g.log.String(), preflight); want == "" && n != 0 || want != "" && n != 1 {
		t.Errorf("%d preflights of %s in the gateway's access log", n, path)
	}
}
