package bff_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/internal/testkit"
	"github.com/tokenguard/tokenguard/middleware"
)

// BenchmarkRequest compares one API request authenticated by a session
// cookie with the same request carrying the session's access token as
// Bearer, both through Authenticate and the guard (token cache on), in
// process: the session's extra cost is the store lookup, opening the
// entry and decoding it. "sealed" adds AES-256-GCM, as with a session
// key (required with Redis, whose network round trip is not included).
// "dpop" makes the session's tokens DPoP-bound: each request also gets a
// fresh proof signed with the session's key, which the guard (DPoP
// required) verifies, as the gateway does.
func BenchmarkRequest(b *testing.B) {
	for _, bc := range []struct {
		name    string
		session bool
		key     []byte
		dpop    bool // DPoP-bound session tokens, the guard requiring DPoP
	}{
		{"bearer", false, nil, false},
		{"session", true, nil, false},
		{"session_sealed", true, make([]byte, bff.SessionKeySize), false},
		{"session_dpop", true, nil, true},
		{"session_dpop_sealed", true, make([]byte, bff.SessionKeySize), true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var guard func(*middleware.Config)
			if bc.dpop {
				guard = dpopRequired
			}
			e := newEnvGuard(b, func(c *bff.Config) { c.SessionKey, c.DPoP = bc.key, bc.dpop }, guard)
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
			// The app's own URL, as the proof's htu (PublicURL + path) names it.
			req := httptest.NewRequest("GET", e.app.URL+"/orders", nil)
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
					b.Fatalf("status %d %s", w.Code, w.Body)
				}
			}
		})
	}
}
