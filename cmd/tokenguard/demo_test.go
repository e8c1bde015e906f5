package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// runDemo runs "tokenguard demo" on ephemeral ports and returns it with
// its printed output. It stops the demo at cleanup.
func runDemo(t *testing.T) (*demo, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr lockedBuffer
	started := make(chan *demo, 1)
	done := make(chan int, 1)
	c := &cli{stdout: &stdout, stderr: &stderr, onDemo: func(d *demo) { started <- d }}
	go func() {
		done <- c.run(ctx, []string{"demo",
			"-issuer", "127.0.0.1:0", "-upstream", "127.0.0.1:0",
			"-listen", "127.0.0.1:0", "-metrics-listen", "127.0.0.1:0"})
	}()
	var d *demo
	select {
	case d = <-started:
	case code := <-done:
		cancel()
		t.Fatalf("demo exited with %d:\n%s", code, stderr.String())
	case <-time.After(wait):
		cancel()
		t.Fatalf("demo did not start within %v:\n%s", wait, stderr.String())
	}
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != exitOK {
				t.Errorf("demo exit code %d", code)
			}
		case <-time.After(wait):
			t.Errorf("demo did not stop within %v", wait)
		}
		if t.Failed() {
			t.Logf("demo log:\n%s", stderr.String())
		}
	})
	return d, stdout.String()
}

func TestDemo(t *testing.T) {
	d, out := runDemo(t)
	for _, want := range []string{
		"DEVELOPMENT ONLY",
		"TOKEN=$(curl -s '" + d.IssuerURL + "/token?scope=orders:read')",
		`curl -i -H "Authorization: Bearer $TOKEN" ` + d.GatewayURL + "/orders/",
		"curl -i " + d.GatewayURL + "/orders/",
		`curl -i -X POST -H "Authorization: Bearer $TOKEN" ` + d.GatewayURL + "/orders/",
		d.MetricsURL + "/metrics",
		"listen: " + strings.TrimPrefix(d.GatewayURL, "http://"),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out)
		}
	}

	// Run every printed command, as a shell would, and check the status
	// its comment promises.
	steps := interpret(t, out)
	var statuses []int
	for _, s := range steps {
		statuses = append(statuses, s.wantStatus)
	}
	if diff := cmp.Diff([]int{200, 401, 403}, statuses); diff != "" {
		t.Errorf("commands with a promised status (-want +got):\n%s", diff)
	}
	for _, s := range steps {
		if s.gotStatus != s.wantStatus {
			t.Errorf("%s\n  got %d, want %d; body %q", s.cmd, s.gotStatus, s.wantStatus, s.body)
		}
	}

	// The 200 is the example upstream saying who called it.
	var echo struct {
		Method, Path string
		Headers      map[string]string
	}
	if err := json.Unmarshal([]byte(steps[0].body), &echo); err != nil {
		t.Fatalf("200 body: %v: %q", err, steps[0].body)
	}
	want := map[string]string{
		"X-Tokenguard-Subject":   "demo-user",
		"X-Tokenguard-Client-Id": "demo-client",
		"X-Tokenguard-Scope":     "orders:read",
	}
	if echo.Method != "GET" || echo.Path != "/orders/" || !cmp.Equal(want, echo.Headers) {
		t.Errorf("upstream echo = %+v", echo)
	}
	if !strings.Contains(steps[1].wwwAuthenticate, "Bearer realm=") {
		t.Errorf("401 WWW-Authenticate = %q", steps[1].wwwAuthenticate)
	}
	if !strings.Contains(steps[2].wwwAuthenticate, `error="insufficient_scope"`) {
		t.Errorf("403 WWW-Authenticate = %q", steps[2].wwwAuthenticate)
	}
}

// step is one printed curl command that promised a status.
type step struct {
	cmd             string
	wantStatus      int
	gotStatus       int
	body            string
	wwwAuthenticate string
}

// interpret runs the shell lines of the demo's instructions: TOKEN=$(curl
// -s 'URL') assignments, and curl [-i] [-s] [-X METHOD] [-H "NAME: VALUE"]
// URL [| grep ...] commands. A "# NNN: ..." comment sets the status the
// following curl commands must get.
func interpret(t *testing.T, out string) []step {
	t.Helper()
	vars := map[string]string{}
	want := 0
	var steps []step
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "# "):
			want = 0
			if code, _, ok := strings.Cut(strings.TrimPrefix(line, "# "), ":"); ok {
				want, _ = strconv.Atoi(code)
			}
		case strings.HasPrefix(line, "TOKEN=$(") && strings.HasSuffix(line, ")"):
			args := shellWords(t, strings.TrimSuffix(strings.TrimPrefix(line, "TOKEN=$("), ")"), vars)
			status, body, _ := curl(t, args)
			if status != http.StatusOK {
				t.Fatalf("%s: status %d", line, status)
			}
			vars["TOKEN"] = strings.TrimSpace(body)
		case strings.HasPrefix(line, "curl "):
			cmd, pipe, _ := strings.Cut(line, "|")
			status, body, h := curl(t, shellWords(t, cmd, vars))
			if strings.Contains(pipe, "grep") && !strings.Contains(body, "tokenguard_requests_total") {
				t.Errorf("%s: output has no tokenguard_requests_total", line)
			}
			if want != 0 {
				steps = append(steps, step{line, want, status, body, h.Get("WWW-Authenticate")})
			}
		}
	}
	return steps
}

// shellWords splits s into words, honouring single and double quotes and
// expanding $NAME from vars outside single quotes.
func shellWords(t *testing.T, s string, vars map[string]string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord := false
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote == '\'' && ch == '\'', quote == '"' && ch == '"':
			quote = 0
		case quote == 0 && (ch == '\'' || ch == '"'):
			quote, inWord = ch, true
		case quote == 0 && ch == ' ':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case quote != '\'' && ch == '$':
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z') {
				j++
			}
			v, ok := vars[s[i+1:j]]
			if !ok {
				t.Fatalf("%s: $%s is not set", s, s[i+1:j])
			}
			cur.WriteString(v)
			inWord = true
			i = j - 1
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("unterminated quote in %s", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// curl performs the request a curl command line describes.
func curl(t *testing.T, args []string) (int, string, http.Header) {
	t.Helper()
	if len(args) == 0 || args[0] != "curl" {
		t.Fatalf("not a curl command: %q", args)
	}
	method, url := "GET", ""
	header := http.Header{}
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-i" || a == "-s":
		case a == "-X" && i+1 < len(args):
			i++
			method = args[i]
		case a == "-H" && i+1 < len(args):
			i++
			name, value, ok := strings.Cut(args[i], ": ")
			if !ok {
				t.Fatalf("bad header %q", args[i])
			}
			header.Add(name, value)
		case !strings.HasPrefix(a, "-") && url == "":
			url = a
		default:
			t.Fatalf("curl option %q not understood in %q", a, args)
		}
	}
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body), resp.Header
}

func TestListenDemoFallback(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	log := slog.New(slog.DiscardHandler)

	// A default address that is taken falls back to a free port.
	ln, err := listenDemo("listen", addr, false, log)
	if err != nil {
		t.Fatalf("default address taken: %v", err)
	}
	if ln.Addr().String() == addr {
		t.Error("fell back to the busy address")
	}
	ln.Close()

	// An address the user chose is not silently replaced.
	_, err = listenDemo("listen", addr, true, log)
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "-listen "+addr) {
		t.Errorf("explicit address taken: err = %v", err)
	}

	for _, bad := range []string{"0.0.0.0:0", "192.0.2.1:8080", "example.com:80", "8080"} {
		if _, err := listenDemo("issuer", bad, true, log); err == nil {
			t.Errorf("listenDemo(%q) succeeded; the demo must stay on loopback", bad)
		}
	}
}
