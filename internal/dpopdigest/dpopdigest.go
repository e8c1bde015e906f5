// Package dpopdigest lets the guard hand package dpop the SHA-256 of an
// access token it has already hashed (its token cache key), so the
// proof's "ath" is checked without hashing the token a second time.
//
// It is internal on purpose: a digest that is not exactly the hash of
// dpop.Request.AccessToken would make the check compare "ath" with the
// wrong token, so only code in this module, which computes the digest
// from the same token in the same call, may pass one.
package dpopdigest

// Check is package dpop's
//
//	func(v *dpop.Verifier, req dpop.Request, sum [32]byte) (*dpop.Proof, error)
//
// which is v.Check(req) with sum taken as the SHA-256 of
// req.AccessToken. Package dpop sets it in its init; it is typed any
// because this package cannot import dpop (dpop imports it). The request
// travels by value, so nothing escapes to the heap.
var Check any
