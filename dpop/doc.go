// Package dpop implements the resource-server side of OAuth 2.0
// Demonstrating Proof of Possession (RFC 9449): it verifies DPoP proof JWTs
// (§4.3) against the request they came with and the access token they
// accompany, detects replayed proofs (§11.1), and issues and checks
// stateless server nonces (§8, §9).
//
// A Verifier checks, for every request: exactly one compact-JWS proof of
// bounded size; "typ" dpop+jwt; an allow-listed asymmetric "alg"; a public,
// asymmetric "jwk" in the header that verifies the signature; "jti"
// present and bounded; "htm" equal to the method; "htu" equal to the
// request URL without query and fragment after RFC 3986 normalisation;
// "iat" inside a window; "ath" equal to the hash of the access token; the
// nonce when nonces are on; and, last, that the (key, jti) pair was not
// used before. Binding the proof key to the token ("cnf.jkt") is the
// caller's job: Proof.JKT is the RFC 7638 thumbprint to compare.
//
// The middleware package wires all of this into the guard; use this
// package directly for a custom integration or to make proofs as a client
// (NewProof, Thumbprint).
package dpop
