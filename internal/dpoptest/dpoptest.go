// Package dpoptest makes DPoP client keys for the tests and benchmarks of
// several packages (middleware, gateway, cmd/tokenguard, faulttest, bench). It is
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

// Client is a DPoP client key with its thumbprint, for tests that make
// proofs.
type Client struct {
	Key *ecdsa.PrivateKey
	JKT string // RFC 7638 thumbprint: a bound token's cnf.jkt
}

// NewClient returns a Client with a fresh P-256 key.
func NewClient(tb testing.TB) *Client {
	tb.Helper()
	k, jkt := NewKey(tb)
	return &Client{Key: k, JKT: jkt}
}

// Proof makes a proof for method and url, bound to token (if any) and
// carrying nonce (if any). It fails tb on error.
func (c *Client) Proof(tb testing.TB, method, url, token, nonce string) string {
	tb.Helper()
	p, err := dpop.NewProof(c.Key, dpop.ProofParams{Method: method, URL: url, AccessToken: token, Nonce: nonce})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}
