package bff_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

// BenchmarkRequest compares one API request authenticated by a session
// cookie with the same request carrying the session's access token as
// Bearer, both through Authenticate and the guard (token cache on), in
// process: the session's extra cost is the store lookup, opening the
// entry and decoding it. "sealed" adds AES-256-GCM, as with a session
// key (required with Redis, whose network round trip is not included).
func BenchmarkRequest(b *testing.B) {
	for _, bc := range []struct {
		name    string
		session bool
		key     []byte
	}{
		{"bearer", false, nil},
		{"session", true, nil},
		{"session_sealed", true, make([]byte, bff.SessionKeySize)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b, func(c *bff.Config) { c.SessionKey = bc.key })
			br := testkit.NewBrowser(b)
			br.Login(e.app.URL, "")
			cookie := br.Cookies[bff.SessionCookie]
			// The session's own access token, for the Bearer run.
			resp, _ := br.Do("GET", e.app.URL+"/orders", "X-CSRF: 1")
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("warm-up: %d", resp.StatusCode)
			}
			tok := e.upstream.last(b).Header.Get("Authorization")
			h := e.app.Config.Handler
			req := httptest.NewRequest("GET", "/orders", nil)
			if bc.session {
				req.Header.Set("Cookie", bff.SessionCookie+"="+cookie)
				req.Header.Set("X-CSRF", "1")
			} else {
				req.Header.Set("Authorization", tok)
			}
			e.upstream.discard = true
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
