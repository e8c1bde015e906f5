package gateway_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/gateway"
	"github.com/tokenguard/tokenguard/internal/netutil"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

var (
	instrN    = flag.Int("gwinstr.n", 0, "TestInstructionsGateway: requests to send (bench/gateway_instructions.sh)")
	instrWhat = flag.String("gwinstr.what", "deny", "TestInstructionsGateway: deny (401 through gateway.Handler), cached (a cached Bearer token, proxied) or bare (a bare httputil.ReverseProxy)")
)

// TestInstructionsGateway sends -gwinstr.n requests of the kind
// -gwinstr.what names; bench/gateway_instructions.sh counts its
// instructions under callgrind. Without -gwinstr.n there is nothing to
// measure.
//
//   - deny: requests without a token through the gateway's handler, in
//     process, each answered 401: the gateway's own path (access record,
//     tracing when the OTEL_* variables turn it on, concurrency limit,
//     framing, hygiene, routing, the guard's denial) without network or
//     upstream.
//   - cached: a GET with a Bearer token the guard has cached, sent over
//     one keep-alive loopback connection to the gateway's own server
//     (Start: framing follower and all), proxied to an upstream in a
//     child process (not counted) and answered 200.
//   - bare: the same request and upstream through a bare
//     httputil.ReverseProxy with the gateway's Transport settings
//     (netutil.ConfigureProxy) on an http.Server with the gateway's
//     header and idle timeouts, as bench/load's bare proxy. cached
//     minus bare is what the gateway adds to a proxied request: the
//     client's and the upstream's work cancel out.
func TestInstructionsGateway(t *testing.T) {
	if *instrN == 0 {
		t.Skip("a measurement for bench/gateway_instructions.sh (-gwinstr.n)")
	}
	switch *instrWhat {
	case "deny":
		instructionsDeny(t, *instrN)
	case "cached", "bare":
		instructionsProxied(t, *instrWhat, *instrN)
	default:
		t.Fatalf("-gwinstr.what %q: want deny, cached or bare", *instrWhat)
	}
	fmt.Printf("instructions: gateway n=%d done\n", *instrN)
}

func instructionsDeny(t *testing.T, n int) {
	y := `listen: 127.0.0.1:0
upstream: http://127.0.0.1:9
audience: https://api.example.com
issuers:
  - issuer: https://as.example.com
    jwks_uri: http://127.0.0.1:9/jwks
routes:
  - pattern: "GET /orders/"
    scopes: [orders:read]
log_level: warn
`
	cfg, err := gateway.ParseConfig("instructions", []byte(y), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := g.Handler()
	req := httptest.NewRequest("GET", "/orders/1", nil)
	for range n {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", w.Code)
		}
	}
}

// instructionsProxied sends n cached-Bearer GETs through the gateway
// (what "cached") or a bare reverse proxy (what "bare"), after a warm-up
// that fills the token cache and the connection pools.
func instructionsProxied(t *testing.T, what string, n int) {
	is := testkit.StartIssuer(t)
	up := startUpstreamProcess(t)
	var base string
	switch what {
	case "cached":
		// bench/load's gateway: DPoP allowed, in-memory replay store,
		// log_level warn.
		y := testkit.GatewayYAML(is.URL(), is.URL()+"/jwks", up, "")
		y += "dpop:\n  mode: allowed\n  replay_store: memory\n"
		cfg, err := gateway.ParseConfig("instructions", []byte(y), func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		g, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler), Listener: ln})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := g.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = g.Shutdown(context.Background()) })
		if !g.Ready() {
			t.Fatal("the gateway's keys did not load")
		}
		base = "http://" + g.Addr()
	case "bare":
		u, _ := url.Parse(up)
		p := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		}}
		netutil.ConfigureProxy(p, netutil.ProxySettings{DialTimeout: 5 * time.Second, ResponseHeaderTimeout: 30 * time.Second})
		// bench/load's bare proxy server: the gateway's header and idle
		// timeouts, which cost each request two read deadlines.
		srv := httptest.NewUnstartedServer(p)
		srv.Config.ReadHeaderTimeout, srv.Config.IdleTimeout = 10*time.Second, 2*time.Minute
		srv.Start()
		t.Cleanup(srv.Close)
		base = srv.URL
	}
	tok := testkit.Mint(t, is, "orders:read")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	t.Cleanup(client.CloseIdleConnections)
	req, err := http.NewRequest(http.MethodGet, base+"/orders/1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	send := func() {
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
	}
	for range 20 { // warm-up: token cache, connections, buffers
		send()
	}
	for range n {
		send()
	}
}

// upstreamHandler answers every request as bench/load's upstream would.
func upstreamHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// startUpstreamProcess runs the upstream in a child process (this test
// binary, TestInstructionsUpstream), so that what it spends parsing the
// headers the gateway adds is not counted: callgrind follows no child.
// It returns the upstream's base URL.
func startUpstreamProcess(t *testing.T) string {
	cmd := exec.Command(os.Args[0], "-test.run", "^TestInstructionsUpstream$", "-test.count", "1")
	cmd.Env = append(os.Environ(), "TOKENGUARD_INSTRUCTIONS_UPSTREAM=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// stdin is the child's lifeline: it closes when this process exits,
	// and the child with it. Not before: the SIGCHLD of a child that
	// ends while callgrind runs this process trips an assertion of
	// callgrind's.
	_ = stdin
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "upstream listening ")
	if err != nil || !ok {
		t.Fatalf("upstream process: %q, %v", line, err)
	}
	return "http://" + addr
}

// TestInstructionsUpstream is startUpstreamProcess's child: it serves
// upstreamHandler on 127.0.0.1 until its standard input closes.
func TestInstructionsUpstream(t *testing.T) {
	if os.Getenv("TOKENGUARD_INSTRUCTIONS_UPSTREAM") != "1" {
		t.Skip("the upstream process of TestInstructionsGateway")
	}
	srv := httptest.NewServer(http.HandlerFunc(upstreamHandler))
	defer srv.Close()
	fmt.Printf("upstream listening %s\n", srv.Listener.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
}
