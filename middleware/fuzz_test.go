package middleware

import (
	"context"
	"errors"
	"net/http"
	"strings"
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

// FuzzCheckAgreesWithRequire feeds arbitrary credentials, proofs and
// paths to Require and to Check (two guards with the same configuration,
// so that a proof one of them records is not a replay at the other).
// Properties: no panic; the same status, reason and challenges by both
// paths; a Principal only for a token the issuer minted.
func FuzzCheckAgreesWithRequire(f *testing.F) {
	is := newTestIssuer(f, "ES256", "k1")
	const public = "https://api.example.com"
	cfg := Config{
		Audience: testAudience, Issuers: []Issuer{is.config()}, PublicURL: public,
		DPoP: DPoPConfig{Mode: DPoPAllowed}, JWKSRefreshRateLimit: time.Hour,
	}
	viaCheck := newGuard(f, cfg)
	var httpReason Reason
	cfg.OnDecision = func(_ *http.Request, r Reason) { httpReason = r }
	viaHTTP := newGuard(f, cfg)
	h := viaHTTP.Require("a")(okHandler)

	alice := newDPoPClient(f)
	valid := map[string]bool{}
	mint := func(extra map[string]any) string {
		tok := is.mint(f, "a b", extra)
		valid[tok] = true
		return tok
	}
	bound := mint(map[string]any{"cnf": map[string]any{"jkt": alice.jkt}})
	f.Add("Bearer "+mint(nil), "", "/orders/1")                                                        // valid Bearer
	f.Add("DPoP "+bound, alice.proof(f, "GET", public+"/orders/1", bound), "/orders/1")                // valid DPoP
	f.Add("DPoP "+bound, alice.proof(f, "GET", public+"/orders/1", bound), "/orders/2")                // proof for another path
	f.Add("DPoP "+bound, alice.proof(f, "GET", public+"/orders/1", bound), "/orders/1?access_token=x") // query ignored by htu
	f.Add("Bearer "+bound, "", "/")                                                                    // bound token as Bearer
	f.Add("Bearer "+mint(map[string]any{"scope": "b"}), "", "/")                                       // insufficient scope
	f.Add("", "", "/?access_token=abc")                                                                // query token
	f.Add("", "", "/")                                                                                 // nothing
	f.Add("Basic x", "", "/")                                                                          // other scheme
	f.Add("Bearer", "", "/")                                                                           // malformed
	f.Fuzz(func(t *testing.T, auth, proof, target string) {
		req, err := http.NewRequest(http.MethodGet, "http://api.example.com"+target, nil)
		if err != nil || req.URL.Host != "api.example.com" || req.URL.Opaque != "" {
			return
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		rec := newRecorder()
		h.ServeHTTP(rec, req)

		u := public + req.URL.EscapedPath()
		if req.URL.RawQuery != "" {
			u += "?" + req.URL.RawQuery
		}
		p, err := viaCheck.Check(context.Background(), Request{Authorization: auth, DPoP: proof, Method: http.MethodGet, URL: u}, "a")
		var d *Denial
		switch {
		case err == nil:
			_, tok, _ := cutScheme(auth)
			if !valid[tok] || p == nil {
				t.Fatalf("Check accepted a token nobody minted: %q", auth)
			}
			if rec.code != 200 {
				t.Fatalf("Check allowed, Require answered %d", rec.code)
			}
		case !errors.As(err, &d):
			t.Fatalf("Check error %v is not a Denial", err)
		case d.Status != rec.code || d.Reason != httpReason:
			t.Fatalf("Check %d %s, Require %d %s", d.Status, d.Reason, rec.code, httpReason)
		case strings.Join(d.Challenges, ", ") != rec.h.Get("WWW-Authenticate"):
			t.Fatalf("challenges differ:\n%q\n%q", d.Challenges, rec.h.Get("WWW-Authenticate"))
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
