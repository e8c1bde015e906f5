// Package bench measures tokenguard's per-request cost against the floor
// (the bare signature verification of the same token with crypto/ecdsa,
// crypto/rsa and crypto/ed25519) and side by side with peer libraries:
// github.com/auth0/go-jwt-middleware/v2, github.com/golang-jwt/jwt/v5 with
// github.com/MicahParks/keyfunc/v3, github.com/coreos/go-oidc/v3 and
// github.com/lestrrat-go/jwx/v3's own jwt.Parse. BENCHMARKS.md at the
// repository root shows the latest results and discusses them.
//
// It is its own module (replace directive to the root module) so that
// peer libraries never enter the main module's dependencies.
//
//	./run.sh                                        # everything, interleaved rounds, writes results/ and ../BENCHMARKS.md
//	go test ./...                                   # correctness of every contestant, allocation guard, memory targets
//	go test -run '^$' -bench . -benchmem            # every benchmark once
//	go test -run TestAllocGuard -update-allocs      # accept a deliberate allocation change
//	go test -run TestRatios -ratios -v              # guard/floor median ratios, one process
//
// Every contestant is an http.Handler around the same no-op handler, fed
// the same token, key, claims and JWKS (a loopback httptest server,
// fetched and warmed before the timer), through the same cheap
// ResponseWriter. TestContestantsCheck proves each accepts the valid token
// and refuses a tampered signature, a wrong aud, a wrong iss, an expired
// and a missing token, so no benchmark measures a skipped check;
// TestPeerDifferences records what else each one does not check.
//
// TestAllocGuard holds tokenguard's hot paths to the allocation counts in
// testdata/allocs.txt. Allocation counts are exact, so CI enforces them;
// times are only reported.
package bench
