package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/devissuer"
)

// Tests with raw TCP clients that misbehave on purpose. Each fails if
// the defence it names is removed.

// hostileYAML is hygieneYAML with its orders and admin routes open to
// every method, so bodies can be sent to them.
func hostileYAML(t testing.TB, is *devissuer.Issuer, upstreamURL, extra string) string {
	t.Helper()
	y := hygieneYAML(is, upstreamURL, extra)
	for _, p := range []string{`"GET /orders/"`, `"GET /admin/"`, `"GET /"`} {
		if !strings.Contains(y, p) {
			t.Fatalf("hygieneYAML lacks %s", p)
		}
		y = strings.Replace(y, p, strings.Replace(p, "GET ", "", 1), 1)
	}
	return y
}

// dial opens a raw connection to addr, every operation on it bounded by
// wait.
func dial(t testing.TB, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(wait))
	return c, bufio.NewReader(c)
}

// closedWithin reports whether the server closes c (a read returns EOF or
// an error other than a timeout) within d.
func closedWithin(c net.Conn, br *bufio.Reader, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, br)
	var ne net.Error
	return err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

// TestGatewayAnswersStalledBodies: a request the gateway refuses itself,
// which declares a body and then sends only part of it, is answered at
// once (not after the body, which never comes), with Connection: close,
// and the connection is closed. Go's server would otherwise wait for up
// to 256 KiB of body before writing the answer. A request whose small body
// is all there keeps its connection.
func TestGatewayAnswersStalledBodies(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, hostileYAML(t, is, up.URL, "allowed_hosts: [api.example.com]\nmax_concurrent_requests: 1\n"))
	tok := mint(t, is, "orders:read")
	tests := []struct {
		name, head string
		status     int
	}{
		{"no token", "POST /orders/1 HTTP/1.1\r\nHost: api.example.com\r\n", 401},
		{"bad token", "POST /orders/1 HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer nope.nope.nope\r\n", 401},
		{"insufficient scope", "POST /admin/x HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer " + tok + "\r\n", 403},
		{"invalid path", "POST /orders/..%2fadmin HTTP/1.1\r\nHost: api.example.com\r\n", 400},
		{"misdirected", "POST /orders/1 HTTP/1.1\r\nHost: evil.example.com\r\n", 421},
		{"trace", "TRACE /orders/1 HTTP/1.1\r\nHost: api.example.com\r\n", 405},
	}
	for _, body := range []struct {
		name, framing, sent string
	}{
		{"content-length", "Content-Length: 100000\r\n", "partial"},
		{"chunked", "Transfer-Encoding: chunked\r\n", "10\r\npartial"},
	} {
		for _, tt := range tests {
			t.Run(body.name+"/"+tt.name, func(t *testing.T) {
				c, br := dial(t, g.gw.Addr())
				start := time.Now()
				fmt.Fprintf(c, "%s%s\r\n%s", tt.head, body.framing, body.sent)
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("no answer within 2s: %v", err)
				}
				resp.Body.Close()
				if resp.StatusCode != tt.status || !resp.Close {
					t.Errorf("%d, Connection: close %v; want %d and close", resp.StatusCode, resp.Close, tt.status)
				}
				if d := time.Since(start); d > time.Second {
					t.Errorf("answered after %v", d)
				}
				if !closedWithin(c, br, 2*time.Second) {
					t.Error("the connection stays open after the answer")
				}
			})
		}
	}

	t.Run("complete small body keeps the connection", func(t *testing.T) {
		c, br := dial(t, g.gw.Addr())
		for i := range 2 {
			fmt.Fprint(c, "POST /orders/1 HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 5\r\n\r\nhello")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 401 || resp.Close {
				t.Fatalf("request %d: %d close=%v, want 401 on a kept connection", i, resp.StatusCode, resp.Close)
			}
		}
	})

	// The access log says what was sent, when it was sent.
	if !strings.Contains(g.stderr.String(), `"status":405`) || !strings.Contains(g.stderr.String(), `"reason":"method_not_allowed"`) {
		t.Errorf("the access log lacks the 405:\n%s", g.stderr)
	}
}

// TestGatewayBodyReadTimeout: an allowed request whose body stalls gets
// 408 after body_read_timeout and its connection is closed; the access
// line says client_error body_timeout, never an upstream error.
func TestGatewayBodyReadTimeout(t *testing.T) {
	is := startIssuer(t)
	read := make(chan error, 1)
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, r.Body)
		read <- err
		io.WriteString(w, "read it all")
	})
	g := runGateway(t, hostileYAML(t, is, up.URL, "body_read_timeout: 700ms\n"))
	tok := mint(t, is, "orders:read")

	c, br := dial(t, g.gw.Addr())
	start := time.Now()
	fmt.Fprintf(c, "PUT /orders/1 HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer %s\r\nContent-Length: 100000\r\n\r\nfirst bytes", tok)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !resp.Close || !strings.Contains(string(b), "request_timeout") {
		t.Errorf("%d close=%v %q, want 408 request_timeout and close", resp.StatusCode, resp.Close, b)
	}
	if d := time.Since(start); d < 600*time.Millisecond || d > 5*time.Second {
		t.Errorf("answered after %v, want about 700ms", d)
	}
	select {
	case err := <-read:
		if err == nil {
			t.Error("the upstream read a complete body")
		}
	case <-time.After(wait):
		t.Error("the upstream is still reading")
	}
	waitFor(t, func() bool { return strings.Contains(g.stderr.String(), `"client_error":"body_timeout"`) }, "the access line")
	if strings.Contains(g.stderr.String(), "upstream_error") || strings.Contains(g.stderr.String(), `"level":"WARN"`) {
		t.Errorf("a slow client was logged as an upstream problem:\n%s", g.stderr)
	}

	// A body that arrives in time is forwarded whole, and the deadline
	// does not cut the response that follows it.
	slow := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(time.Second) // longer than body_read_timeout
		io.WriteString(w, "late but fine")
	})
	g2 := runGateway(t, hostileYAML(t, is, slow.URL, "body_read_timeout: 700ms\n"))
	c2, br2 := dial(t, g2.gw.Addr())
	fmt.Fprintf(c2, "PUT /orders/1 HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer %s\r\nContent-Length: 5\r\n\r\nhello", tok)
	resp, err = http.ReadResponse(br2, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "late but fine" {
		t.Errorf("%d %q, want the upstream's answer", resp.StatusCode, b)
	}
}

// TestGatewayClientFramingErrors: with a valid token, a malformed chunked
// body is the client's fault: 400, the connection closed, client_error
// bad_body in the access log, never a 502 or an upstream error. A client
// that goes away mid-upload is logged as 499 client_gone.
func TestGatewayClientFramingErrors(t *testing.T) {
	is := startIssuer(t)
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	})
	g := runGateway(t, hostileYAML(t, is, up.URL, ""))
	tok := mint(t, is, "orders:read")
	head := "PUT /orders/1 HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer " + tok + "\r\nTransfer-Encoding: chunked\r\n\r\n"
	for _, tt := range []struct{ name, body string }{
		{"chunk size not hex", "zz\r\nhello\r\n0\r\n\r\n"},
		{"chunk size overflow", "fffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"},
		{"bare LF", "5\nhello\n0\n\n"},
		{"no CRLF after chunk data", "5\r\nhelloXX0\r\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(g.stderr.String())
			c, br := dial(t, g.gw.Addr())
			io.WriteString(c, head+tt.body)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !resp.Close {
				t.Errorf("%d close=%v, want 400 and close", resp.StatusCode, resp.Close)
			}
			waitFor(t, func() bool { return strings.Contains(g.stderr.String()[before:], `"client_error":"bad_body"`) }, "the access line")
			if log := g.stderr.String()[before:]; strings.Contains(log, "upstream_error") || strings.Contains(log, `"level":"WARN"`) {
				t.Errorf("a malformed body was logged as an upstream problem:\n%s", log)
			}
		})
	}
	t.Run("client gone mid-upload", func(t *testing.T) {
		before := len(g.stderr.String())
		c, _ := dial(t, g.gw.Addr())
		fmt.Fprintf(c, "PUT /orders/1 HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\nsome", tok)
		time.Sleep(100 * time.Millisecond)
		c.Close()
		waitFor(t, func() bool { return strings.Contains(g.stderr.String()[before:], `"client_error":"client_gone"`) }, "the access line")
		log := g.stderr.String()[before:]
		if !strings.Contains(log, `"status":499`) || strings.Contains(log, "upstream_error") {
			t.Errorf("want status 499 and no upstream error:\n%s", log)
		}
	})
}

// TestGatewayUpstreamHeaderLimit: an upstream's response headers beyond
// upstream_max_response_header_bytes are a 502, never relayed.
func TestGatewayUpstreamHeaderLimit(t *testing.T) {
	is := startIssuer(t)
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		size := 2 << 20
		if r.URL.Path == "/orders/small" {
			size = 32 << 10
		}
		w.Header().Set("X-Big", strings.Repeat("a", size))
		io.WriteString(w, "body")
	})
	g := runGateway(t, hostileYAML(t, is, up.URL, ""))
	tok := mint(t, is, "orders:read")
	resp, body := do(t, "GET", g.proxy+"/orders/big", tok, nil)
	if resp.StatusCode != http.StatusBadGateway || len(resp.Header.Get("X-Big")) != 0 {
		t.Errorf("2 MiB of headers: %d, X-Big %d bytes, %q", resp.StatusCode, len(resp.Header.Get("X-Big")), body)
	}
	if !strings.Contains(g.stderr.String(), `"upstream_error":"response_headers_too_large"`) {
		t.Errorf("the log does not say why:\n%s", g.stderr)
	}
	if resp, _ := do(t, "GET", g.proxy+"/orders/small", tok, nil); resp.StatusCode != 200 || len(resp.Header.Get("X-Big")) != 32<<10 {
		t.Errorf("32 KiB of headers: %d", resp.StatusCode)
	}
}

// TestGatewayAmbiguousFraming: Content-Length with Transfer-Encoding, and
// Transfer-Encoding in HTTP/1.0, are 400 with the connection closed and
// never reach the upstream, alone or pipelined behind a good request.
func TestGatewayAmbiguousFraming(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, hostileYAML(t, is, up.URL, ""))
	tok := mint(t, is, "orders:read")
	auth := "Authorization: Bearer " + tok + "\r\n"
	for _, tt := range []struct{ name, req string }{
		{"CL and TE", "POST /orders/1 HTTP/1.1\r\nHost: a\r\n" + auth + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"TE and CL, smuggling a request", "POST /orders/1 HTTP/1.1\r\nHost: a\r\n" + auth + "Transfer-Encoding: chunked\r\nContent-Length: 48\r\n\r\n0\r\n\r\nGET /admin/ HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"CL and TE, any case", "POST /orders/1 HTTP/1.1\r\nHost: a\r\n" + auth + "content-LENGTH: 5\r\ntransfer-encoding: Chunked\r\n\r\n0\r\n\r\n"},
		{"TE in HTTP/1.0", "POST /orders/1 HTTP/1.0\r\nHost: a\r\n" + auth + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := up.count()
			c, br := dial(t, g.gw.Addr())
			io.WriteString(c, tt.req)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !resp.Close {
				t.Errorf("%d close=%v, want 400 and close", resp.StatusCode, resp.Close)
			}
			if up.count() != before {
				t.Error("the request reached the upstream")
			}
		})
	}
	t.Run("pipelined behind a good request", func(t *testing.T) {
		before := up.count()
		c, br := dial(t, g.gw.Addr())
		io.WriteString(c, "GET /orders/1 HTTP/1.1\r\nHost: a\r\n"+auth+"\r\n"+
			"POST /orders/2 HTTP/1.1\r\nHost: a\r\n"+auth+"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
		for i, want := range []int{200, 400} {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("response %d: %d, want %d", i, resp.StatusCode, want)
			}
		}
		if up.count() != before+1 {
			t.Errorf("the upstream saw %d requests, want 1", up.count()-before)
		}
	})
	t.Run("ordinary pipelining still works", func(t *testing.T) {
		c, br := dial(t, g.gw.Addr())
		io.WriteString(c, "POST /orders/1 HTTP/1.1\r\nHost: a\r\n"+auth+"Content-Length: 3\r\n\r\nabc"+
			"POST /orders/2 HTTP/1.1\r\nHost: a\r\n"+auth+"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"+
			"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"+
			"GET /orders/3 HTTP/1.1\r\nHost: a\r\n"+auth+"\r\n")
		for i := range 4 {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("response %d: %d, want 200", i, resp.StatusCode)
			}
		}
	})
}

// TestGatewayMethods: CONNECT is refused; TRACE only reaches a route that
// names it.
func TestGatewayMethods(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	y := strings.Replace(hostileYAML(t, is, up.URL, ""), "routes:\n", "routes:\n  - pattern: \"TRACE /debug/\"\n", 1)
	g := runGateway(t, y)
	tok := mint(t, is, "orders:read")
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{"TRACE", "/orders/1", 405},
		{"TRACE", "/other", 405}, // the catch-all route takes every method but TRACE
		{"TRACE", "/debug/x", 200},
		{"CONNECT", "/orders/1", 405},
	} {
		before := up.count()
		resp, _ := rawRequest(t, g.gw.Addr(), fmt.Sprintf("%s %s HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer %s\r\n\r\n", tt.method, tt.path, tok))
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
		}
		if tt.want == 405 && up.count() != before {
			t.Errorf("%s %s reached the upstream", tt.method, tt.path)
		}
	}
	resp, _ := rawRequest(t, g.gw.Addr(), "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n")
	if resp.StatusCode != 400 && resp.StatusCode != 405 {
		t.Errorf("CONNECT host:port: %d", resp.StatusCode)
	}
}

// TestGatewayUpgradeEarlyData: bytes a client sends right behind its
// WebSocket upgrade request, before the 101 arrives, reach the upstream.
func TestGatewayUpgradeEarlyData(t *testing.T) {
	is := startIssuer(t)
	got := make(chan string, 1)
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		brw.Flush()
		conn.SetDeadline(time.Now().Add(wait))
		line, _ := brw.ReadString('\n')
		got <- line
	})
	g := runGateway(t, hostileYAML(t, is, up.URL, ""))
	c, br := dial(t, g.gw.Addr())
	fmt.Fprintf(c, "GET /orders/ws HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly bytes\n", mint(t, is, "orders:read"))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	select {
	case line := <-got:
		if line != "early bytes\n" {
			t.Errorf("the upstream read %q, want the early bytes", line)
		}
	case <-time.After(wait):
		t.Fatal("the early bytes never reached the upstream")
	}
}

// TestGatewayHostileRegressions keeps the probes that held before these
// fixes: a header sent slower than ReadHeaderTimeout is cut off; a
// pipelined request without a token behind a good one gets 401 and never
// reaches the upstream; thousands of aborted requests leave no goroutine
// behind.
func TestGatewayHostileRegressions(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, hostileYAML(t, is, up.URL, "log_level: warn\n"))
	tok := mint(t, is, "orders:read")

	t.Run("pipelined unauthorised request", func(t *testing.T) {
		before := up.count()
		c, br := dial(t, g.gw.Addr())
		fmt.Fprintf(c, "GET /orders/1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\n\r\nGET /admin/x HTTP/1.1\r\nHost: a\r\n\r\n", tok)
		for i, want := range []int{200, 401} {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("response %d: %d, want %d", i, resp.StatusCode, want)
			}
		}
		if up.count() != before+1 {
			t.Errorf("the upstream saw %d requests, want 1", up.count()-before)
		}
	})

	t.Run("aborted requests leak nothing", func(t *testing.T) {
		abort := func(n int) {
			for i := range n {
				c, err := net.DialTimeout("tcp", g.gw.Addr(), wait)
				if err != nil {
					t.Fatal(err)
				}
				switch i % 3 {
				case 0: // half a header
					io.WriteString(c, "GET /orders/1 HTTP/1.1\r\nHost: a\r\nAuthoriz")
				case 1: // a body cut short
					fmt.Fprintf(c, "PUT /orders/1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\nContent-Length: 100\r\n\r\nabc", tok)
				case 2: // a response never read
					fmt.Fprintf(c, "GET /orders/1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\n\r\n", tok)
				}
				c.Close()
			}
		}
		// The first round fills the upstream connection pool, whose idle
		// connections keep goroutines; the second must add none.
		settled := func() int {
			last, stable := runtime.NumGoroutine(), 0
			for deadline := time.Now().Add(wait); time.Now().Before(deadline) && stable < 10; {
				time.Sleep(50 * time.Millisecond)
				if n := runtime.NumGoroutine(); n == last {
					stable++
				} else {
					last, stable = n, 0
				}
			}
			return last
		}
		abort(300)
		first := settled()
		abort(900)
		if second := settled(); second > first+20 {
			t.Errorf("goroutines grew from %d to %d over 900 more aborted requests", first, second)
		}
	})

	t.Run("slowloris header", func(t *testing.T) {
		if testing.Short() {
			t.Skip("waits for the 10 s header timeout")
		}
		c, br := dial(t, g.gw.Addr())
		c.SetDeadline(time.Now().Add(20 * time.Second))
		io.WriteString(c, "GET /orders/1 HTTP/1.1\r\n")
		start := time.Now()
		// Trickle a header line a byte every 500 ms; the server cuts the
		// connection at ReadHeaderTimeout.
		for time.Since(start) < 15*time.Second {
			if _, err := io.WriteString(c, "X"); err != nil {
				break
			}
			time.Sleep(500 * time.Millisecond)
			if closedWithin(c, br, time.Millisecond) {
				break
			}
		}
		if d := time.Since(start); d > 12*time.Second {
			t.Errorf("a trickled header held the connection %v", d)
		}
	})
}

// TestGatewayResponseWriteTimeout: a client with a valid token that stops
// reading a large response is cut off after response_write_timeout, and
// its request ends (the upstream sees it cancelled); a stream that is
// only quiet between writes is not cut.
func TestGatewayResponseWriteTimeout(t *testing.T) {
	is := startIssuer(t)
	cancelled := make(chan struct{}, 1)
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/orders/quiet" {
			w.(http.Flusher).Flush()
			time.Sleep(1500 * time.Millisecond) // quieter than the timeout
			io.WriteString(w, "still here")
			return
		}
		chunk := []byte(strings.Repeat("x", 64<<10))
		for range 1 << 12 { // 256 MiB, far more than the socket buffers hold
			if _, err := w.Write(chunk); err != nil {
				break
			}
		}
		<-r.Context().Done()
		cancelled <- struct{}{}
	})
	g := runGateway(t, hostileYAML(t, is, up.URL, "response_write_timeout: 700ms\n"))
	tok := mint(t, is, "orders:read")

	c, br := dial(t, g.gw.Addr())
	fmt.Fprintf(c, "GET /orders/big HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\n\r\n", tok)
	// Read nothing. The gateway must give up on the client.
	select {
	case <-cancelled:
	case <-time.After(wait):
		t.Fatal("a client that stopped reading still holds its request")
	}
	if !closedWithin(c, br, 5*time.Second) {
		t.Error("the connection of a client that stopped reading is still open")
	}

	resp, body := do(t, "GET", g.proxy+"/orders/quiet", tok, nil)
	if resp.StatusCode != 200 || body != "still here" {
		t.Errorf("a quiet stream: %d %q", resp.StatusCode, body)
	}
}
