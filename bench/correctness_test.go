package bench

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestContestantsCheck proves, before anything is timed, that every
// contestant accepts the benchmarks' valid token and refuses a tampered
// signature, a wrong audience, a wrong issuer, an expired token and a
// missing one, for every algorithm: no benchmark row measures a verifier
// that skips a check. It runs in CI as an ordinary test.
func TestContestantsCheck(t *testing.T) {
	for _, alg := range algs {
		env := newEnv(t, alg)
		cases := []struct {
			name    string
			token   string
			allowed bool
		}{
			{"valid", env.tokens.valid, true},
			{"tampered signature", env.tokens.tampered, false},
			{"wrong aud", env.tokens.wrongAud, false},
			{"wrong iss", env.tokens.wrongIss, false},
			{"expired", env.tokens.expired, false},
			{"missing", "", false},
		}
		for _, c := range contestants {
			reached := false
			next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true })
			h := c.newHandler(t, env, next)
			for _, tc := range cases {
				t.Run(alg+"/"+c.name+"/"+tc.name, func(t *testing.T) {
					reached = false
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, request(tc.token))
					switch {
					case tc.allowed && (!reached || rec.Code != http.StatusOK):
						t.Errorf("refused a valid token: status %d, handler reached %v", rec.Code, reached)
					case !tc.allowed && reached:
						t.Errorf("let the request through (status %d)", rec.Code)
					case !tc.allowed && rec.Code != http.StatusUnauthorized && rec.Code != http.StatusBadRequest:
						// auth0's middleware answers a missing token with
						// 400; every other refusal here is a 401.
						t.Errorf("refused with status %d, want 401 (or 400)", rec.Code)
					}
				})
			}
		}
	}
}
