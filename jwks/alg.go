package jwks

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
)

// algSet is a set of JWS algorithms, one bit each. A Key carries the set of
// algorithms it may verify, so Allows is a switch and an AND: no map, no
// allocation.
type algSet uint16

const (
	algRS256 algSet = 1 << iota
	algRS384
	algRS512
	algPS256
	algPS384
	algPS512
	algES256
	algES384
	algES512
	algEdDSA

	algsRSA = algRS256 | algRS384 | algRS512 | algPS256 | algPS384 | algPS512
)

// DefaultAlgorithms returns the allow-list used when [Config.Algorithms] is
// nil: RS256, PS256, ES256, ES384 and EdDSA. It returns a new slice on every
// call, so no caller can change the default for others. It never includes
// "none" or an HMAC algorithm (RFC 8725 §3.1, §3.2).
func DefaultAlgorithms() []string {
	return []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"}
}

// algBit maps a JWS "alg" name (RFC 7518 §3.1, RFC 8037 §3.1) to its bit, or
// 0 for a name this package does not support: "none", HMAC, and anything
// unknown.
func algBit(name string) algSet {
	switch name {
	case "RS256":
		return algRS256
	case "RS384":
		return algRS384
	case "RS512":
		return algRS512
	case "PS256":
		return algPS256
	case "PS384":
		return algPS384
	case "PS512":
		return algPS512
	case "ES256":
		return algES256
	case "ES384":
		return algES384
	case "ES512":
		return algES512
	case "EdDSA":
		return algEdDSA
	}
	return 0
}

// algsFor returns the algorithms a public key of this type and curve can
// verify: RS*/PS* for RSA, ES256/ES384/ES512 for P-256/P-384/P-521, EdDSA
// for Ed25519; 0 for anything else.
func algsFor(pub any) algSet {
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		return algsRSA
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			return algES256
		case elliptic.P384():
			return algES384
		case elliptic.P521():
			return algES512
		}
	case ed25519.PublicKey:
		return algEdDSA
	}
	return 0
}
