// Package dpoptest makes DPoP client keys for the tests and benchmarks of
// several packages (middleware, cmd/tokenguard, faulttest, bench). It is
// not a test file so those packages, and bench's separate module, can
// share it; nothing outside tests imports it.
package dpoptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/tokenguard/tokenguard/dpop"
)

// NewKey returns a fresh P-256 client key and its RFC 7638 thumbprint
// (the value a bound token's cnf.jkt carries). It fails tb on error.
func NewKey(tb testing.TB) (*ecdsa.PrivateKey, string) {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	jkt, err := dpop.Thumbprint(k.Public())
	if err != nil {
		tb.Fatal(err)
	}
	return k, jkt
}
