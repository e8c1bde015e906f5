package middleware

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawDo sends req, written as is, to addr and reads one response. It is
// how a client that does not normalise its request-target speaks.
func rawDo(t testing.TB, addr, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the response to %q: %v", req, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestHygiene(t *testing.T) {
	var decided atomic.Value // the last Reason reported
	g := newGuard(t, Config{
		Audience: testAudience, Issuers: []Issuer{newTestIssuer(t, "ES256", "k1").config()},
		OnDecision: func(r *http.Request, reason Reason) { decided.Store(reason) },
	})
	var reached atomic.Int32
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		io.WriteString(w, "reached "+r.URL.EscapedPath())
	})
	strict := httptest.NewServer(g.Hygiene(Hygiene{AllowedHosts: []string{"api.example.com", "127.0.0.1:8443", "::1"}})(next))
	defer strict.Close()
	noWS := httptest.NewServer(g.Hygiene(Hygiene{RefuseWebSocket: true})(next))
	defer noWS.Close()
	skip := httptest.NewServer(g.Hygiene(Hygiene{InsecureSkipPathCheck: true})(next))
	defer skip.Close()

	get := func(target, host string, extra ...string) string {
		return "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + strings.Join(extra, "") + "\r\n"
	}
	const host = "api.example.com"
	tests := []struct {
		name   string
		srv    *httptest.Server
		req    string
		status int
		code   string
		reason Reason
	}{
		{"plain path", strict, get("/orders/1", host), 200, "", ""},
		{"host with port", strict, get("/orders/1", "API.example.com:8080"), 200, "", ""},
		{"host:port entry", strict, get("/", "127.0.0.1:8443"), 200, "", ""},
		{"IPv6 entry", strict, get("/", "[::1]:8080"), 200, "", ""},
		{"websocket", strict, get("/ws", host, "Connection: Upgrade\r\n", "Upgrade: websocket\r\n"), 200, "", ""},
		{"websocket any case", strict, get("/ws", host, "Connection: Upgrade\r\n", "Upgrade: WebSocket\r\n"), 200, "", ""},
		{"query not examined", strict, get("/orders/?next=..%2f..%2fadmin", host), 200, "", ""},

		{"other host", strict, get("/orders/1", "evil.example.com"), 421, codeMisdirected, ReasonMisdirected},
		{"other port of host:port entry", strict, get("/", "127.0.0.1:9443"), 421, codeMisdirected, ReasonMisdirected},
		{"host suffix", strict, get("/", "api.example.com.evil.example"), 421, codeMisdirected, ReasonMisdirected},
		{"no host (HTTP/1.0)", strict, "GET / HTTP/1.0\r\n\r\n", 421, codeMisdirected, ReasonMisdirected},

		{"encoded slash", strict, get("/orders/..%2fadmin", host), 400, codeInvalidPath, ReasonInvalidPath},
		{"encoded dots", strict, get("/orders/%2E%2E/admin", host), 400, codeInvalidPath, ReasonInvalidPath},
		{"dot segment", strict, get("/orders/../admin", host), 400, codeInvalidPath, ReasonInvalidPath},
		{"encoded backslash", strict, get("/orders/..%5cadmin", host), 400, codeInvalidPath, ReasonInvalidPath},
		{"raw backslash", strict, get("/orders/..\\admin", host), 400, codeInvalidPath, ReasonInvalidPath},
		{"empty segment", strict, get("//admin/", host), 400, codeInvalidPath, ReasonInvalidPath},
		{"path parameter", strict, get("/orders/..;/admin", host), 400, codeInvalidPath, ReasonInvalidPath},
		{"encoded NUL", strict, get("/orders/x%00", host), 400, codeInvalidPath, ReasonInvalidPath},
		{"double encoding", strict, get("/orders/%252e%252e/admin", host), 400, codeInvalidPath, ReasonInvalidPath},
		{"fullwidth dots", strict, get("/orders/%EF%BC%8E%EF%BC%8E/admin", host), 400, codeInvalidPath, ReasonInvalidPath},
		{"overlong dots", strict, get("/orders/%c0%ae%c0%ae/admin", host), 400, codeInvalidPath, ReasonInvalidPath},
		{"absolute-form", strict, get("http://api.example.com/orders/1", host), 400, codeInvalidPath, ReasonInvalidPath},
		{"asterisk-form GET", strict, get("*", host), 400, codeInvalidPath, ReasonInvalidPath},

		{"h2c", strict, get("/orders/1", host, "Connection: Upgrade, HTTP2-Settings\r\n", "Upgrade: h2c\r\n", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"), 400, CodeInvalidRequest, ReasonUpgradeRefused},
		{"h2c without Connection", strict, get("/orders/1", host, "Upgrade: h2c\r\n"), 400, CodeInvalidRequest, ReasonUpgradeRefused},
		{"websocket then h2c", strict, get("/orders/1", host, "Connection: Upgrade\r\n", "Upgrade: websocket, h2c\r\n"), 400, CodeInvalidRequest, ReasonUpgradeRefused},
		{"two Upgrade headers", strict, get("/orders/1", host, "Connection: Upgrade\r\n", "Upgrade: websocket\r\n", "Upgrade: h2c\r\n"), 400, CodeInvalidRequest, ReasonUpgradeRefused},
		{"other protocol", strict, get("/orders/1", host, "Connection: Upgrade\r\n", "Upgrade: TLS/1.2\r\n"), 400, CodeInvalidRequest, ReasonUpgradeRefused},
		{"websocket refused", noWS, get("/ws", host, "Connection: Upgrade\r\n", "Upgrade: websocket\r\n"), 400, CodeInvalidRequest, ReasonUpgradeRefused},

		{"skip: dot segment passes", skip, get("/orders/%2e%2e/admin", host), 200, "", ""},
		{"skip: h2c still refused", skip, get("/orders/1", host, "Connection: Upgrade\r\n", "Upgrade: h2c\r\n"), 400, CodeInvalidRequest, ReasonUpgradeRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := reached.Load()
			var count uint64
			if tt.reason != "" {
				count = g.metrics.requests.value(tt.reason)
			}
			decided.Store(Reason(""))
			resp, body := rawDo(t, tt.srv.Listener.Addr().String(), tt.req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tt.status)
			}
			if tt.status == 200 {
				if reached.Load() != before+1 {
					t.Error("the handler did not run")
				}
				return
			}
			if reached.Load() != before {
				t.Fatal("a refused request reached the handler")
			}
			if want := `{"error":"` + tt.code + `"}` + "\n"; body != want {
				t.Errorf("body %q, want %q", body, want)
			}
			if got := g.metrics.requests.value(tt.reason); got != count+1 {
				t.Errorf("tokenguard_requests_total{reason=%q} went from %d to %d", tt.reason, count, got)
			}
			if got := decided.Load(); got != tt.reason {
				t.Errorf("OnDecision saw %q, want %q", got, tt.reason)
			}
			if resp.Header.Get("WWW-Authenticate") != "" {
				t.Errorf("a refusal before authentication carries a challenge: %q", resp.Header.Get("WWW-Authenticate"))
			}
			if tt.reason == ReasonUpgradeRefused && !resp.Close {
				t.Error("the upgrade refusal keeps the connection open")
			}
		})
	}
}

func TestHygieneBadAllowedHosts(t *testing.T) {
	g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{newTestIssuer(t, "ES256", "k1").config()}})
	for _, h := range []string{"", "https://api.example.com", "api.example.com/x", "a b", "user@host"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("AllowedHosts %q: no panic", h)
				}
			}()
			g.Hygiene(Hygiene{AllowedHosts: []string{h}})
		}()
	}
}

// TestHygieneInProcess covers requests built in-process, with no
// RequestURI: the URL's escaped path is checked.
func TestHygieneInProcess(t *testing.T) {
	g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{newTestIssuer(t, "ES256", "k1").config()}})
	h := g.Hygiene(Hygiene{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for target, want := range map[string]int{"/orders/1": 200, "/orders/..%2Fadmin": 400, "/a//b": 400} {
		req, err := http.NewRequest("GET", "http://api.example.com"+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("%s: %d, want %d", target, rec.Code, want)
		}
	}
}
