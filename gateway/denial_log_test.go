package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A denied request is one log line: the access line, which carries the
// guard's details of the denial (issuer, key id, algorithm; the cause when
// there is one, see TestDenialsToAccessLog) as well as its own decision
// and reason.
func TestDenialLoggedOnce(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "log_format: json\n"))
	expired, err := is.Mint("orders:read", -time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	kid := is.SigningKey().KID

	tests := []struct {
		name, path, token string
		status            int
		want              map[string]any // on the one line
	}{
		{"no token", "/orders/no-token", "", http.StatusUnauthorized,
			map[string]any{"msg": "access", "decision": "deny", "reason": "missing_token", "status": 401.0}},
		{"expired token", "/orders/expired", expired, http.StatusUnauthorized,
			map[string]any{"msg": "access", "decision": "deny", "reason": "expired", "status": 401.0, "iss": is.URL(), "kid": kid, "alg": "ES256"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := do(t, "GET", g.proxy+tt.path, tt.token, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			// The access line is written once the response is; give the
			// handler a moment to return.
			var lines []map[string]any
			for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if lines = linesAbout(t, g.stderr.String(), tt.path); len(lines) > 0 {
					break
				}
			}
			time.Sleep(50 * time.Millisecond) // and for a second line, were there one
			lines = linesAbout(t, g.stderr.String(), tt.path)
			if len(lines) != 1 {
				t.Fatalf("%d log lines about the denied request, want 1:\n%s", len(lines), g.stderr)
			}
			for k, v := range tt.want {
				if lines[0][k] != v {
					t.Errorf("the line's %s = %v, want %v:\n%v", k, lines[0][k], v, lines[0])
				}
			}
			if tt.token != "" && strings.Contains(g.stderr.String(), tt.token) {
				t.Error("the log shows the token")
			}
		})
	}
}

// linesAbout returns the JSON log lines whose path is path.
func linesAbout(t *testing.T, log, path string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(log) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad JSON log line %q: %v", line, err)
		}
		if m["path"] == path {
			out = append(out, m)
		}
	}
	return out
}

// The guard's logger drops a denial only when the access line will carry
// it; its other lines, and denials no access line will show, pass.
func TestDenialsToAccessLog(t *testing.T) {
	if denialsToAccessLog(nil) != nil {
		t.Error("a nil logger became a non-nil one: the guard's default is to discard")
	}
	for _, tt := range []struct {
		name    string
		level   slog.Level // the log's level
		record  bool       // an access record in the context
		msg     string
		lvl     slog.Level // the line's level
		wantOut bool       // the line is written
		wantRec bool       // its details went to the record
	}{
		{"denial at info", slog.LevelInfo, true, guardDenialMsg, slog.LevelInfo, false, true},
		{"503 denial at info", slog.LevelInfo, true, guardDenialMsg, slog.LevelWarn, false, true},
		{"503 denial, access lines off", slog.LevelWarn, true, guardDenialMsg, slog.LevelWarn, true, false},
		{"denial without an access record", slog.LevelInfo, false, guardDenialMsg, slog.LevelInfo, true, false},
		{"key refresh", slog.LevelInfo, true, "jwks refreshed", slog.LevelInfo, true, false},
		{"key refresh failed", slog.LevelInfo, true, "jwks refresh failed", slog.LevelWarn, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf lockedBuffer
			log := denialsToAccessLog(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: tt.level}))).With("component", "guard")
			ctx := context.Background()
			rec := &accessRecord{}
			if tt.record {
				ctx = context.WithValue(ctx, accessKey{}, rec)
			}
			log.LogAttrs(ctx, tt.lvl, tt.msg, slog.String("reason", "unknown_kid"), slog.String("iss", "https://as.example.com"),
				slog.String("kid", "k9"), slog.String("alg", "ES256"), slog.String("err", "jwks: no key k9"), slog.String("path", "/x"))
			if got := buf.String() != ""; got != tt.wantOut {
				t.Errorf("written: %v, want %v: %q", got, tt.wantOut, buf.String())
			}
			if tt.wantOut && (!strings.Contains(buf.String(), `"component":"guard"`) || !strings.Contains(buf.String(), `"kid":"k9"`)) {
				t.Errorf("the line lost attributes: %s", buf.String())
			}
			var keys []string
			for _, a := range rec.denial {
				keys = append(keys, a.Key+"="+a.Value.String())
			}
			want := ""
			if tt.wantRec {
				want = "iss=https://as.example.com kid=k9 alg=ES256 err=jwks: no key k9"
			}
			if got := strings.Join(keys, " "); got != want {
				t.Errorf("on the access record: %q, want %q", got, want)
			}
		})
	}
}
