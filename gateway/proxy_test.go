package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

// rootYAML is a gateway whose one route, "/", admits any valid token, in
// front of upstreamURL, logging JSON.
func rootYAML(is *devissuer.Issuer, upstreamURL, extra string) string {
	return fmt.Sprintf(`listen: 127.0.0.1:0
metrics_listen: 127.0.0.1:0
upstream: %s
audience: %s
issuers:
  - issuer: %s
    jwks_uri: %s/jwks
routes:
  - pattern: "/"
startup_wait: 5s
log_format: json
%s`, upstreamURL, testAudience, is.URL(), is.URL(), extra)
}

// startHandler serves h on 127.0.0.1 for the test.
func startHandler(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestGatewayConcurrencyLimit(t *testing.T) {
	is := startIssuer(t)
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			entered <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "ok")
	})
	defer close(release)
	g := runGateway(t, rootYAML(is, up.URL, "max_concurrent_requests: 2\n"))
	tok := mint(t, is, "")

	done := make(chan int, 2)
	for range 2 {
		go func() {
			req, _ := http.NewRequest("GET", g.proxy+"/block", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := client.Do(req)
			if err != nil {
				done <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	for range 2 {
		select {
		case <-entered:
		case <-time.After(wait):
			t.Fatal("blocking requests did not reach the upstream")
		}
	}

	start := time.Now()
	resp, body := do(t, "GET", g.proxy+"/other", tok, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || !strings.Contains(body, `"error":"overloaded"`) {
		t.Fatalf("third request: %d Retry-After=%q %q; want 503, 1, overloaded", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the refused request took %v: it was queued", d)
	}

	release <- struct{}{}
	release <- struct{}{}
	for range 2 {
		if code := <-done; code != http.StatusOK {
			t.Errorf("blocked request finished with %d", code)
		}
	}
	if resp, body := do(t, "GET", g.proxy+"/other", tok, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("after release: %d %q", resp.StatusCode, body)
	}
	if !strings.Contains(g.stderr.String(), `"reason":"overloaded"`) {
		t.Errorf("the refusal was not logged:\n%s", g.stderr)
	}
}

func TestGatewayUpstreamFailures(t *testing.T) {
	is := startIssuer(t)
	tok := mint(t, is, "")

	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	never := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	// Writes part of a chunked body, then drops the connection.
	reset := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "partial ")
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetLinger(0) // RST, not FIN
			}
			conn.Close()
		}
	})
	down := testkit.ClosedAddr(t)

	tests := []struct {
		name      string
		upstream  string
		extra     string
		status    int
		body      string
		within    time.Duration
		logReason string
	}{
		{"closed port", "http://" + down, "", 502, `{"error":"bad_gateway"}`, 5 * time.Second, `"upstream_error":"unreachable"`},
		{"never answers", never.URL, "upstream_timeout: 300ms\n", 504, `{"error":"gateway_timeout"}`, 3 * time.Second, `"upstream_error":"timeout"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := runGateway(t, rootYAML(is, tt.upstream, tt.extra))
			start := time.Now()
			resp, body := do(t, "GET", g.proxy+"/x", tok, nil)
			if resp.StatusCode != tt.status || strings.TrimSpace(body) != tt.body {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tt.status, tt.body)
			}
			if d := time.Since(start); d > tt.within {
				t.Errorf("answer took %v, want under %v", d, tt.within)
			}
			_, port, _ := net.SplitHostPort(strings.TrimPrefix(tt.upstream, "http://"))
			if strings.Contains(body, port) || strings.Contains(body, "127.0.0.1") {
				t.Errorf("body names the upstream: %q", body)
			}
			if !strings.Contains(g.stderr.String(), tt.logReason) {
				t.Errorf("log lacks %s:\n%s", tt.logReason, g.stderr)
			}
		})
	}

	t.Run("reset mid-response", func(t *testing.T) {
		g := runGateway(t, rootYAML(is, reset.URL, ""))
		req, _ := http.NewRequest("GET", g.proxy+"/x", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil {
			t.Errorf("a truncated response read as complete: %d %q", resp.StatusCode, b)
		}
		// The gateway goes on serving.
		if resp, _ := do(t, "GET", g.metric+"/healthz", "", nil); resp.StatusCode != 200 {
			t.Errorf("healthz after the reset: %d", resp.StatusCode)
		}
		waitFor(t, func() bool { return strings.Contains(g.stderr.String(), `"aborted":true`) }, "the aborted response in the access log")
	})
}

// waitFor polls cond for up to wait.
func waitFor(t testing.TB, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestGatewayStreamsRequestBody(t *testing.T) {
	is := startIssuer(t)
	firstChunk := make(chan string, 1)
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			firstChunk <- "error: " + err.Error()
			return
		}
		firstChunk <- string(buf)
		rest, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s%s", buf, rest)
	})
	g := runGateway(t, rootYAML(is, up.URL, ""))
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", g.proxy+"/upload", pr)
	req.Header.Set("Authorization", "Bearer "+mint(t, is, ""))
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{string(b), err}
	}()
	if _, err := pw.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	// The client has not finished sending: the upstream must already have
	// the first chunk.
	select {
	case got := <-firstChunk:
		if got != "hello" {
			t.Fatalf("upstream read %q", got)
		}
	case <-time.After(wait):
		t.Fatal("the upstream did not see the first chunk before the body ended: the gateway buffers request bodies")
	}
	io.WriteString(pw, " world")
	pw.Close()
	select {
	case r := <-res:
		if r.err != nil || r.body != "hello world" {
			t.Errorf("response %q %v", r.body, r.err)
		}
	case <-time.After(wait):
		t.Fatal("no response")
	}
}

// TestGatewayStreams: a streamed response (server-sent events, or any
// body of unknown length, sent chunked) reaches the client piece by
// piece while the upstream is still writing, not when it finishes.
func TestGatewayStreams(t *testing.T) {
	for _, contentType := range []string{"text/event-stream", "application/x-ndjson"} {
		t.Run(contentType, func(t *testing.T) { testGatewayStreams(t, contentType) })
	}
}

func testGatewayStreams(t *testing.T, contentType string) {
	is := startIssuer(t)
	next := make(chan struct{})
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Content-Length", "1000") // a lying length must not make the gateway buffer either
		w.Header().Del("Content-Length")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	})
	g := runGateway(t, rootYAML(is, up.URL, ""))
	req, _ := http.NewRequest("GET", g.proxy+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+mint(t, is, ""))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line := make(chan string, 1)
		go func() {
			l, _ := br.ReadString('\n')
			br.ReadString('\n') // the blank line
			line <- l
		}()
		select {
		case l := <-line:
			if l != fmt.Sprintf("data: %d\n", i) {
				t.Fatalf("event %d: %q", i, l)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d did not arrive while the upstream was still streaming", i)
		}
		next <- struct{}{}
	}
}

// TestGatewayFlushesSlowKnownLengthBody: a body with a Content-Length that
// the upstream writes slowly still reaches the client as it is written
// (within the flush interval), not when the upstream finishes.
func TestGatewayFlushesSlowKnownLengthBody(t *testing.T) {
	is := startIssuer(t)
	next := make(chan struct{})
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "11")
		io.WriteString(w, "hello")
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, " world")
	})
	g := runGateway(t, rootYAML(is, up.URL, ""))
	req, _ := http.NewRequest("GET", g.proxy+"/download", nil)
	req.Header.Set("Authorization", "Bearer "+mint(t, is, ""))
	got := make(chan string, 1)
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b := make([]byte, 5)
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			got <- err.Error()
			return
		}
		got <- string(b)
		io.Copy(io.Discard, resp.Body)
	}()
	select {
	case s := <-got:
		if s != "hello" {
			t.Fatalf("first bytes: %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first half of the body did not arrive while the upstream was still writing")
	}
	close(next)
}

func TestGatewayLargeBodiesUnaltered(t *testing.T) {
	is := startIssuer(t)
	var gotHash atomic.Value
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		io.Copy(h, r.Body)
		gotHash.Store(fmt.Sprintf("%x", h.Sum(nil)))
		// Echo 8 MiB of deterministic bytes back.
		w.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(w, io.LimitReader(&pattern{}, 8<<20))
	})
	g := runGateway(t, rootYAML(is, up.URL, ""))
	payload := make([]byte, 8<<20)
	rand.Read(payload)
	req, _ := http.NewRequest("PUT", g.proxy+"/blob", bytes.NewReader(payload))
	req.Header.Set("Authorization", "Bearer "+mint(t, is, ""))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatal(err)
	}
	want := sha256.New()
	io.Copy(want, io.LimitReader(&pattern{}, 8<<20))
	if fmt.Sprintf("%x", h.Sum(nil)) != fmt.Sprintf("%x", want.Sum(nil)) {
		t.Error("response body altered")
	}
	if gotHash.Load() != fmt.Sprintf("%x", sha256.Sum256(payload)) {
		t.Error("request body altered")
	}
}

// pattern is an endless deterministic byte stream.
type pattern struct{ n byte }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = p.n
		p.n = p.n*31 + 7
	}
	return len(b), nil
}

func TestGatewayUpgradePassesThrough(t *testing.T) {
	is := startIssuer(t)
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || r.Header.Get("X-Tokenguard-Subject") == "" {
			http.Error(w, "want an authenticated upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		// An upstream that echoes a request id of its own: the client
		// must still see exactly one, the gateway's.
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nX-Request-Id: upstream-id\r\n\r\n")
		brw.Flush()
		conn.SetDeadline(time.Now().Add(wait))
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo: " + line)
		brw.Flush()
	})
	g := runGateway(t, rootYAML(is, up.URL, ""))
	conn, err := net.DialTimeout("tcp", g.gw.Addr(), wait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(wait))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", mint(t, is, ""))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d %q, want 101", resp.StatusCode, b)
	}
	if ids := resp.Header.Values("X-Request-Id"); len(ids) != 1 || ids[0] == "upstream-id" {
		t.Errorf("101 X-Request-Id = %q, want exactly the gateway's", ids)
	}
	io.WriteString(conn, "ping\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo: ping\n" {
		t.Fatalf("echo: %q %v", line, err)
	}

	// Without a token, no upgrade.
	resp2, _ := do(t, "GET", g.proxy+"/ws", "", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}})
	if resp2.StatusCode != http.StatusUnauthorized {
		t.Errorf("unauthenticated upgrade: %d", resp2.StatusCode)
	}
}

func TestGatewayForwardedHeadersCannotBeSpoofed(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, ""))
	tok := mint(t, is, "orders:read")
	resp, _ := do(t, "GET", g.proxy+"/orders/1", tok, http.Header{
		"X-Forwarded-For":        {"6.6.6.6"},
		"x-forwarded-for":        {"6.6.6.7"},
		"X-Forwarded-Host":       {"evil.example"},
		"X-Forwarded-Proto":      {"https"},
		"Forwarded":              {"for=6.6.6.6;proto=https;host=evil.example"},
		"X-Real-Ip":              {"6.6.6.6"},
		"x-real-ip":              {"6.6.6.8"},
		"X-Forwarded-Prefix":     {"/evil.example"},
		"x-forwarded-port":       {"6666"},
		"X-Forwarded-Ssl":        {"on-evil.example"},
		"True-Client-IP":         {"6.6.6.9"},
		"CF-Connecting-IP":       {"6.6.6.10"},
		"X-Original-URL":         {"/admin/evil.example"},
		"X-Rewrite-Url":          {"/admin/evil.example"},
		"X-HTTP-Method-Override": {"DELETE evil.example"},
		// A hop-by-hop trick: ask the proxy to drop its own identity
		// headers, and to drop the forwarding headers it sets.
		"Connection": {"X-Tokenguard-Subject, X-Tokenguard-Scope, X-Forwarded-For, close"},
	})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := up.last(t).Header
	want := map[string]string{
		"X-Forwarded-For":        "127.0.0.1",
		"X-Forwarded-Host":       strings.TrimPrefix(g.proxy, "http://"),
		"X-Forwarded-Proto":      "http",
		"Forwarded":              "",
		"X-Real-Ip":              "",
		"X-Forwarded-Prefix":     "",
		"X-Forwarded-Port":       "",
		"True-Client-Ip":         "",
		"X-Original-Url":         "",
		"X-Http-Method-Override": "",
		"X-Tokenguard-Subject":   "demo-user",
		"X-Tokenguard-Scope":     "orders:read",
	}
	for k, v := range want {
		vals := got.Values(k)
		switch {
		case v == "" && len(vals) > 0:
			t.Errorf("%s reached the upstream: %q", k, vals)
		case v != "" && (len(vals) != 1 || vals[0] != v):
			t.Errorf("%s = %q, want exactly %q", k, vals, v)
		}
	}
	for k, vals := range got {
		for _, v := range vals {
			if strings.Contains(v, "6.6.6") || strings.Contains(v, "evil.example") {
				t.Errorf("spoofed value reached the upstream in %s: %q", k, v)
			}
		}
	}
}

func TestGatewayRequestID(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, ""))
	tok := mint(t, is, "orders:read")
	tests := []struct {
		name    string
		inbound []string
		keep    bool
	}{
		{"none", nil, false},
		{"safe", []string{"req-123.abc_DEF:9"}, true},
		{"uuid", []string{"0b5e6a3c-9d2f-4b8e-a1c7-3f0e2d4c5b6a"}, true},
		{"too long", []string{strings.Repeat("a", 129)}, false},
		{"max length", []string{strings.Repeat("a", 128)}, true},
		{"unsafe characters", []string{"abc def"}, false},
		{"log forging", []string{"x\",\"status\":200"}, false},
		{"two values", []string{"a", "b"}, false},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.inbound {
				h.Add("X-Request-Id", v)
			}
			resp, _ := do(t, "GET", g.proxy+"/orders/1", tok, h)
			id := resp.Header.Get("X-Request-Id")
			if len(resp.Header.Values("X-Request-Id")) != 1 || !validRequestID(id) {
				t.Fatalf("response X-Request-Id %q", resp.Header.Values("X-Request-Id"))
			}
			if tt.keep && id != tt.inbound[0] {
				t.Errorf("id %q, want the client's %q", id, tt.inbound[0])
			}
			if !tt.keep && (seen[id] || len(tt.inbound) > 0 && id == tt.inbound[0]) {
				t.Errorf("id %q not freshly generated", id)
			}
			seen[id] = true
			if up := up.last(t).Header.Values("X-Request-Id"); len(up) != 1 || up[0] != id {
				t.Errorf("upstream saw %q, want %q", up, id)
			}
		})
	}
	// Denials carry it too.
	if resp, _ := do(t, "GET", g.proxy+"/orders/1", "", nil); resp.Header.Get("X-Request-Id") == "" {
		t.Error("401 without X-Request-Id")
	}
}

// accessLines returns the "access" lines of a JSON log.
func accessLines(t testing.TB, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(log, "\n") {
		if !strings.Contains(line, `"msg":"access"`) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad JSON log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestGatewayAccessLog(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	down := testkit.ClosedAddr(t)
	yml := gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "log_format: json\nlog_level: info\n")
	yml = strings.Replace(yml, "log_level: debug\n", "", 1)
	g := runGateway(t, yml)
	gDown := runGateway(t, rootYAML(is, "http://"+down, ""))
	tok := mint(t, is, "orders:read")
	expired, err := is.Mint("orders:read", -time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	secretQuery := "SECRETQUERYVALUE123"

	tests := []struct {
		name   string
		gw     *running
		path   string
		token  string
		header http.Header
		want   map[string]any
	}{
		{"allowed", g, "/orders/1?code=" + secretQuery, tok, http.Header{"Dpop": {"proof.should.never.appear"}, "Cookie": {"session=COOKIEVALUE"}},
			map[string]any{"status": 200.0, "decision": "allow", "reason": "ok", "path": "/orders/1", "method": "GET", "upstream_status": 200.0}},
		{"denied: expired", g, "/orders/2", expired, nil,
			map[string]any{"status": 401.0, "decision": "deny", "reason": "expired", "path": "/orders/2"}},
		{"denied: no token", g, "/orders/3", "", nil,
			map[string]any{"status": 401.0, "decision": "deny", "reason": "missing_token"}},
		{"not found", g, "/nowhere", tok, nil,
			map[string]any{"status": 404.0, "decision": "not_found", "path": "/nowhere"}},
		{"upstream down", gDown, "/x", tok, nil,
			map[string]any{"status": 502.0, "decision": "allow", "reason": "ok", "upstream_error": "unreachable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(accessLines(t, tt.gw.stderr.String()))
			h := tt.header.Clone()
			if h == nil {
				h = http.Header{}
			}
			h.Set("X-Request-Id", "rid-"+strings.ReplaceAll(tt.name, " ", "-")[:5])
			resp, _ := do(t, "GET", tt.gw.proxy+tt.path, tt.token, h)
			var line map[string]any
			waitFor(t, func() bool {
				lines := accessLines(t, tt.gw.stderr.String())
				if len(lines) > before {
					line = lines[len(lines)-1]
					return true
				}
				return false
			}, "the access line")
			for k, v := range tt.want {
				if line[k] != v {
					t.Errorf("%s = %v, want %v (line %v)", k, line[k], v, line)
				}
			}
			if line["request_id"] != resp.Header.Get("X-Request-Id") {
				t.Errorf("request_id %v, response header %q", line["request_id"], resp.Header.Get("X-Request-Id"))
			}
			for _, k := range []string{"duration_ms", "bytes", "remote"} {
				if _, ok := line[k]; !ok {
					t.Errorf("no %s in %v", k, line)
				}
			}
			if strings.HasPrefix(fmt.Sprint(line["remote"]), "127.0.0.1:") == false {
				t.Errorf("remote %v", line["remote"])
			}
		})
	}
	all := g.stderr.String() + gDown.stderr.String()
	for _, secret := range []string{tok, tok[len(tok)-20:], expired[len(expired)-20:], secretQuery, "access_token", "proof.should.never.appear", "COOKIEVALUE"} {
		if strings.Contains(all, secret) {
			t.Errorf("log contains %q", secret)
		}
	}
}

// TestGatewayClientGoneIsQuiet: a client that hangs up while the upstream
// works is not an upstream failure: no warning, the access line says
// status 499, client_error client_gone, and no upstream_error, and the
// upstream metrics count nothing.
func TestGatewayClientGoneIsQuiet(t *testing.T) {
	is := startIssuer(t)
	entered := make(chan struct{}, 1)
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-r.Context().Done()
	})
	g := runGateway(t, rootYAML(is, up.URL, ""))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", g.proxy+"/x", nil)
	req.Header.Set("Authorization", "Bearer "+mint(t, is, ""))
	errc := make(chan error, 1)
	go func() {
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	select {
	case <-entered:
	case <-time.After(wait):
		t.Fatal("request did not reach the upstream")
	}
	cancel()
	<-errc
	waitFor(t, func() bool {
		return strings.Contains(g.stderr.String(), `"status":499`) && strings.Contains(g.stderr.String(), `"client_error":"client_gone"`)
	}, "the access line")
	if strings.Contains(g.stderr.String(), "upstream_error") {
		t.Errorf("a client hanging up was logged as an upstream error:\n%s", g.stderr)
	}
	if strings.Contains(g.stderr.String(), `"level":"WARN"`) || strings.Contains(g.stderr.String(), `"level":"ERROR"`) {
		t.Errorf("a client hanging up was logged as a problem:\n%s", g.stderr)
	}
	wantUpstream(t, scrapeUpstream(t, g), nil)
}

// TestGatewayAccessLogOffAboveInfo: with log_level warn no access line is
// written, and the request id still reaches the client and the upstream.
func TestGatewayAccessLogOffAboveInfo(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, rootYAML(is, up.URL, "log_level: warn\n"))
	resp, _ := do(t, "GET", g.proxy+"/orders/1", mint(t, is, ""), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	id := resp.Header.Get("X-Request-Id")
	if !validRequestID(id) {
		t.Fatalf("response X-Request-Id %q", id)
	}
	if got := up.last(t).Header.Get("X-Request-Id"); got != id {
		t.Errorf("upstream saw X-Request-Id %q, want %q", got, id)
	}
	if lines := accessLines(t, g.stderr.String()); len(lines) != 0 {
		t.Errorf("access lines at log_level warn: %v", lines)
	}
}

// TestGatewayTrustedForwardedHeaders: from a peer in trusted_proxies, what
// it says about the client (X-Forwarded-For, -Host, -Proto) reaches the
// upstream, the chain with the peer appended; malformed values and every
// other client-address header are still dropped; from another peer
// nothing is believed.
func TestGatewayTrustedForwardedHeaders(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	tok := mint(t, is, "orders:read")
	send := func(g *running, xff string) http.Header {
		t.Helper()
		resp, _ := do(t, "GET", g.proxy+"/orders/1", tok, http.Header{
			"X-Forwarded-For":   {xff},
			"X-Forwarded-Host":  {"api.example.com"},
			"X-Forwarded-Proto": {"https"},
			"X-Real-Ip":         {"6.6.6.6"},
			"Forwarded":         {"for=6.6.6.6"},
		})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return up.last(t).Header
	}
	trusted := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "trusted_proxies: [127.0.0.1/32]\n"))
	h := send(trusted, "203.0.113.7, 198.51.100.2")
	for k, want := range map[string]string{
		"X-Forwarded-For": "203.0.113.7, 198.51.100.2, 127.0.0.1", "X-Forwarded-Host": "api.example.com", "X-Forwarded-Proto": "https",
		"X-Real-Ip": "", "Forwarded": "",
	} {
		if got := strings.Join(h.Values(k), "|"); got != want {
			t.Errorf("trusted peer: %s = %q, want %q", k, got, want)
		}
	}
	if got := send(trusted, "203.0.113.7, not-an-address").Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("a malformed chain from a trusted peer: X-Forwarded-For = %q, want only the peer", got)
	}
	// With allowed_hosts, a forwarded host outside it is not passed on.
	pinned := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "trusted_proxies: [127.0.0.1/32]\nallowed_hosts: [\"127.0.0.1\", other.example]\n"))
	if got := send(pinned, "203.0.113.7").Get("X-Forwarded-Host"); got == "api.example.com" {
		t.Errorf("a forwarded host outside allowed_hosts reached the upstream: %q", got)
	}
	other := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "trusted_proxies: [10.0.0.0/8]\n"))
	h = send(other, "203.0.113.7")
	if h.Get("X-Forwarded-For") != "127.0.0.1" || h.Get("X-Forwarded-Proto") != "http" || h.Get("X-Forwarded-Host") == "api.example.com" {
		t.Errorf("untrusted peer believed: %v", h)
	}
}
