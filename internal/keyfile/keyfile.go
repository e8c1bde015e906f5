// Package keyfile reads the PEM private keys tokenguard is given: DPoP
// client keys for "tokenguard proof" and private_key_jwt client keys for
// introspection.
package keyfile

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxKeyFile bounds a key file: a PEM private key is a few KiB at most.
const maxKeyFile = 64 << 10

// ReadPrivateKey reads a PEM private key: PKCS#8 ("PRIVATE KEY", as keygen
// writes), or the older SEC 1 ("EC PRIVATE KEY") and PKCS#1 ("RSA PRIVATE
// KEY") forms. Encrypted keys are refused with a hint.
func ReadPrivateKey(path string) (crypto.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("key: reading %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("key %s: larger than %d bytes; not a PEM private key", path, maxKeyFile)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("key %s: no PEM block; want a PKCS#8 private key (-----BEGIN PRIVATE KEY-----) such as tokenguard keygen writes", path)
	}
	if block.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
		return nil, fmt.Errorf("key %s is encrypted; tokenguard proof needs an unencrypted key (decrypt a copy with: openssl pkcs8 -topk8 -nocrypt -in %s -out FILE)", path, path)
	}
	var parsed any
	switch block.Type {
	case "PRIVATE KEY":
		parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		parsed, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		parsed, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PUBLIC KEY", "CERTIFICATE":
		return nil, fmt.Errorf("key %s holds a %s, not a private key", path, strings.ToLower(block.Type))
	default:
		return nil, fmt.Errorf("key %s: PEM block %q is not a private key; want PRIVATE KEY (PKCS#8)", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	switch k := parsed.(type) {
	case *ecdsa.PrivateKey, ed25519.PrivateKey, *rsa.PrivateKey:
		return k.(crypto.Signer), nil
	}
	return nil, fmt.Errorf("key %s: a %T cannot sign DPoP proofs; want an EC (P-256, P-384, P-521), Ed25519 or RSA key", path, parsed)
}

// AlgFitsKey reports whether alg can sign with a key whose public half is
// pub.
func AlgFitsKey(alg string, pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		want := map[string]string{"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[k.Curve.Params().Name]
		if alg != want {
			return fmt.Errorf("the key is on %s: use %s", k.Curve.Params().Name, want)
		}
	case ed25519.PublicKey:
		if alg != "EdDSA" {
			return errors.New("the key is Ed25519: use EdDSA")
		}
	case *rsa.PublicKey:
		if !strings.HasPrefix(alg, "RS") && !strings.HasPrefix(alg, "PS") {
			return errors.New("the key is RSA: use RS256 or PS256")
		}
	default:
		return fmt.Errorf("unsupported key type %T", pub)
	}
	return nil
}
