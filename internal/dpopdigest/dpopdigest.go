// Package dpopdigest lets the guard hand package dpop the SHA-256 of an
// access token it has already hashed (its token cache key), so the
// proof's "ath" is checked without hashing the token a second time.
//
// It is internal on purpose: a digest that is not exactly the hash of
// dpop.Request.AccessToken would make Check compare "ath" with the wrong
// token, so only code in this module, which computes the digest from the
// same token in the same call, may set it. Package dpop installs Set.
package dpopdigest

// Set records digest, the SHA-256 of req's AccessToken, in req, a
// *dpop.Request. Package dpop assigns it in its init.
var Set func(req any, digest [32]byte)
