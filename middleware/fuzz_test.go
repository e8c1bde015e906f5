package middleware

import (
	"net/http"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/httpauth"
)

// FuzzAuthorization feeds arbitrary Authorization values through a guard
// whose issuer has keys. Properties: no panic, no 5xx (keys are loaded),
// and a 200 only for a token the issuer really minted — no mutation of a
// valid token, however small, is accepted.
func FuzzAuthorization(f *testing.F) {
	is := newTestIssuer(f, "ES256", "k1")
	g := newGuard(f, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, JWKSRefreshRateLimit: time.Hour})
	h := g.Require()(okHandler)

	valid := map[string]bool{}
	mint := func(extra map[string]any) string {
		tok := is.mint(f, "a b", extra)
		valid[tok] = true
		return tok
	}
	f.Add("Bearer " + mint(nil))                                           // valid
	f.Add("bearer " + mint(map[string]any{"aud": []string{testAudience}})) // lower-case scheme, aud array
	f.Add("Bearer " + mint(nil) + "=")                                     // trailing padding
	f.Add("Bearer " + tamper(f, mint(nil)))                                // tampered payload
	f.Add("Bearer eyJhbGciOiJub25lIn0.e30.")                               // alg none
	f.Add("Bearer a.b.c")                                                  // garbage segments
	f.Add("Bearer ....")                                                   // only dots
	f.Add("DPoP x.y.z")                                                    // other scheme
	f.Add("Bearer")                                                        // no token
	f.Add("")                                                              // empty header
	f.Add("B\u0435arer " + mint(nil))                                      // Cyrillic look-alike scheme
	f.Add("\uff22earer x")                                                 // fullwidth letter in the scheme
	f.Fuzz(func(t *testing.T, auth string) {
		req, _ := http.NewRequest(http.MethodGet, "http://api.example.com/", nil)
		req.Header.Set("Authorization", auth)
		rec := newRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case rec.code == 200:
			_, tok, _ := cutScheme(auth)
			if !valid[tok] {
				t.Fatalf("accepted a token nobody minted: %q", auth)
			}
		case rec.code >= 500:
			t.Fatalf("status %d with keys loaded", rec.code)
		case rec.code == 400 && !httpauth.EqualFoldASCII(httpauth.SchemeOf(auth), "Bearer"):
			// Only our own scheme, malformed, is a bad request; any
			// other spelling is an unsupported scheme (401).
			t.Fatalf("400 for a scheme that is not Bearer: %q", auth)
		case rec.code != 400 && rec.code != 401:
			t.Fatalf("status %d", rec.code)
		}
	})
}

func cutScheme(auth string) (string, string, bool) {
	for i := 0; i < len(auth); i++ {
		if auth[i] == ' ' {
			j := i
			for j < len(auth) && auth[j] == ' ' {
				j++
			}
			return auth[:i], auth[j:], true
		}
	}
	return auth, "", false
}

// recorder is a minimal ResponseWriter; cheaper than httptest's in fuzzing.
type recorder struct {
	h    http.Header
	code int
}

func newRecorder() *recorder { return &recorder{h: http.Header{}, code: 200} }

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *recorder) WriteHeader(code int)        { r.code = code }
