// Package bench measures tokenguard's per-request cost against the floor:
// the bare signature verification of the same token with crypto/ecdsa,
// crypto/rsa and crypto/ed25519.
//
// It is its own module (replace directive to the root module) so that peer
// libraries used for side-by-side comparisons never enter the main module's
// dependencies.
//
//	go test -run '^$' -bench . -benchmem            # every benchmark
//	go test -run TestRatios -ratios -v              # median ratios, one run
package bench
