package middleware

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the guard's concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDenialLogs(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	var buf syncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, Logger: logger})
	h := g.Require("orders:read")(okHandler)

	expired := is.mint(t, "orders:read", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})
	longKid := strings.Repeat("k", 4000)
	k := mustKey(t, "ES256", longKid)
	spoofed, _ := k.Sign(map[string]any{"typ": "at+jwt"}, is.Claims("", time.Hour))
	for _, tok := range []string{expired, spoofed} {
		do(h, "Bearer "+tok)
	}
	out := buf.String()
	for _, want := range []string{`"reason":"expired"`, `"iss":"` + is.URL() + `"`, `"kid":"k1"`, `"reason":"unknown_kid"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	for _, tok := range []string{expired, spoofed} {
		for _, part := range strings.Split(tok, ".") {
			if len(part) > 16 && strings.Contains(out, part) {
				t.Errorf("log contains token material")
			}
		}
	}
	if strings.Contains(out, longKid) {
		t.Error("a 4000-byte attacker kid was logged whole")
	}
}
