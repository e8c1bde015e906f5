package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
)

// JWS algorithms this package verifies (RFC 7518 §3.1, RFC 8037 §3.1).
const (
	RS256 = "RS256"
	RS384 = "RS384"
	RS512 = "RS512"
	PS256 = "PS256"
	PS384 = "PS384"
	PS512 = "PS512"
	ES256 = "ES256"
	ES384 = "ES384"
	ES512 = "ES512"
	EdDSA = "EdDSA"
)

var supported = [...]string{RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA}

// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
const minRSABits = 2048

// VerifySignature checks that sig is a valid alg signature over
// signingInput by key. The key must be of the one type alg names: an
// *rsa.PublicKey of at least 2048 bits for RS* and PS*, an *ecdsa.PublicKey
// on the alg's curve for ES* (with sig the fixed-length r‖s of RFC 7518
// §3.4), an ed25519.PublicKey for EdDSA. "none", HMAC and unknown algs are
// refused: a resource server holds only public keys (RFC 8725 §3.1-3.2).
func VerifySignature(alg string, key crypto.PublicKey, signingInput string, sig []byte) error {
	return verifySignature(alg, key, signingInput, sig, nil)
}

// Verify is VerifySignature(alg, key, t.SigningInput, t.Signature). For
// ECDSA it builds the signature's DER in room Parse left after the
// signature, rather than in an allocation of its own: so Verify is not
// for concurrent use on one Token (or on copies of one).
func (t *Token) Verify(alg string, key crypto.PublicKey) error {
	return verifySignature(alg, key, t.SigningInput, t.Signature, t.derRoom)
}

// verifySignature is VerifySignature; room, when long enough, is where an
// ECDSA signature's DER is built.
func verifySignature(alg string, key crypto.PublicKey, signingInput string, sig, room []byte) error {
	msg := readOnlyBytes(signingInput)
	switch alg {
	case ES256:
		d := sha256.Sum256(msg)
		return verifyECDSA(key, elliptic.P256(), d[:], sig, room)
	case ES384:
		d := sha512.Sum384(msg)
		return verifyECDSA(key, elliptic.P384(), d[:], sig, room)
	case ES512:
		d := sha512.Sum512(msg)
		return verifyECDSA(key, elliptic.P521(), d[:], sig, room)
	case RS256, PS256:
		d := sha256.Sum256(msg)
		return verifyRSA(key, alg == PS256, crypto.SHA256, d[:], sig)
	case RS384, PS384:
		d := sha512.Sum384(msg)
		return verifyRSA(key, alg == PS384, crypto.SHA384, d[:], sig)
	case RS512, PS512:
		d := sha512.Sum512(msg)
		return verifyRSA(key, alg == PS512, crypto.SHA512, d[:], sig)
	case EdDSA:
		pub, ok := key.(ed25519.PublicKey)
		if !ok || len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: EdDSA needs an Ed25519 key, not %T", ErrKeyMismatch, key)
		}
		if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, sig) {
			return ErrInvalidSignature
		}
		return nil
	}
	return fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, alg)
}

func verifyRSA(key crypto.PublicKey, pss bool, h crypto.Hash, digest, sig []byte) error {
	pub, ok := key.(*rsa.PublicKey)
	if !ok || pub == nil || pub.N == nil || pub.N.BitLen() < minRSABits {
		return fmt.Errorf("%w: needs an RSA key of at least %d bits", ErrKeyMismatch, minRSABits)
	}
	if len(sig) != pub.Size() {
		return ErrInvalidSignature
	}
	var err error
	if pss {
		// RFC 7518 §3.5: the salt is as long as the hash.
		err = rsa.VerifyPSS(pub, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h})
	} else {
		err = rsa.VerifyPKCS1v15(pub, h, digest, sig)
	}
	if err != nil {
		return ErrInvalidSignature
	}
	return nil
}

// verifyECDSA checks a JWS ECDSA signature: r‖s, each exactly the curve's
// byte length (RFC 7518 §3.4). It re-encodes them as the ASN.1 DER that
// ecdsa.VerifyASN1 takes, which costs fewer allocations than
// ecdsa.Verify's big.Int path.
func verifyECDSA(key crypto.PublicKey, curve elliptic.Curve, digest, sig, room []byte) error {
	pub, ok := key.(*ecdsa.PublicKey)
	if !ok || pub == nil || pub.Curve != curve {
		return fmt.Errorf("%w: needs an ECDSA key on %s", ErrKeyMismatch, curve.Params().Name)
	}
	n := (curve.Params().BitSize + 7) / 8
	if len(sig) != 2*n {
		return ErrInvalidSignature
	}
	// ecdsa.VerifyASN1 keeps its argument, so the DER cannot live on the
	// stack: it goes in the caller's room when there is enough.
	der := room[:0]
	if cap(der) < derLen(len(sig)) {
		der = make([]byte, 0, derLen(len(sig)))
	}
	if !ecdsa.VerifyASN1(pub, digest, appendSignatureDER(der, sig[:n], sig[n:])) {
		return ErrInvalidSignature
	}
	return nil
}

// derLen bounds the length of the DER appendSignatureDER makes from an
// r‖s signature sigLen bytes long: two INTEGERs with sign bytes, their
// headers and the SEQUENCE's, with a long-form length.
func derLen(sigLen int) int { return sigLen + 2 + 2*2 + 3 }

// maxECDSASignature is the longest r‖s signature (P-521).
const maxECDSASignature = 2 * 66

// appendSignatureDER appends the DER of ECDSA-Sig-Value (RFC 3279 §2.2.3),
// SEQUENCE { r INTEGER, s INTEGER }, for big-endian r and s.
func appendSignatureDER(dst, r, s []byte) []byte {
	r, s = trimZeros(r), trimZeros(s)
	rl, sl := intLen(r), intLen(s)
	body := 2 + rl + 2 + sl // both INTEGERs are under 128 bytes long
	dst = append(dst, 0x30)
	if body >= 0x80 {
		dst = append(dst, 0x81)
	}
	dst = append(dst, byte(body))
	dst = appendInt(dst, r, rl)
	return appendInt(dst, s, sl)
}

func trimZeros(b []byte) []byte {
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

// intLen is the length of the DER INTEGER content for the unsigned,
// zero-trimmed big-endian value b.
func intLen(b []byte) int {
	if len(b) == 0 || b[0]&0x80 != 0 {
		return len(b) + 1
	}
	return len(b)
}

func appendInt(dst, b []byte, n int) []byte {
	dst = append(dst, 0x02, byte(n))
	if n > len(b) {
		dst = append(dst, 0)
	}
	return append(dst, b...)
}
