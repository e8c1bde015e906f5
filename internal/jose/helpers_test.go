package jose

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"testing"
)

// testKey is a private key and the alg it signs for in these tests.
type testKey struct {
	priv crypto.Signer
	pub  crypto.PublicKey
}

var (
	keysOnce sync.Once
	keys     map[string]testKey
	keysErr  error
)

// testKeys returns one key per supported alg, generated once per process
// (RSA key generation is slow). RS* and PS* share a 2048-bit key.
func testKeys(tb testing.TB) map[string]testKey {
	tb.Helper()
	keysOnce.Do(func() {
		keys = make(map[string]testKey)
		add := func(priv crypto.Signer, err error, algs ...string) {
			if err != nil {
				keysErr = errors.Join(keysErr, err)
				return
			}
			for _, a := range algs {
				keys[a] = testKey{priv: priv, pub: priv.Public()}
			}
		}
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		add(rk, err, RS256, RS384, RS512, PS256, PS384, PS512)
		ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		add(ek, err, ES256)
		ek, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		add(ek, err, ES384)
		ek, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		add(ek, err, ES512)
		_, dk, err := ed25519.GenerateKey(rand.Reader)
		add(dk, err, EdDSA)
	})
	if keysErr != nil {
		tb.Fatalf("generating test keys: %v", keysErr)
	}
	return keys
}

var b64 = base64.RawURLEncoding

// rawSign signs msg for alg with priv using the standard library only, so
// the tests' signer shares no code with the verifier under test.
func rawSign(tb testing.TB, alg string, priv crypto.Signer, msg []byte) []byte {
	tb.Helper()
	var h crypto.Hash
	switch alg {
	case RS256, PS256, ES256:
		h = crypto.SHA256
	case RS384, PS384, ES384:
		h = crypto.SHA384
	case RS512, PS512, ES512:
		h = crypto.SHA512
	case EdDSA:
		return ed25519.Sign(priv.(ed25519.PrivateKey), msg)
	default:
		tb.Fatalf("rawSign: no signer for %q", alg)
	}
	hh := h.New()
	hh.Write(msg)
	digest := hh.Sum(nil)
	var (
		sig []byte
		err error
	)
	switch alg[0] {
	case 'R':
		sig, err = rsa.SignPKCS1v15(nil, priv.(*rsa.PrivateKey), h, digest)
	case 'P':
		sig, err = rsa.SignPSS(rand.Reader, priv.(*rsa.PrivateKey), h, digest,
			&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case 'E':
		k := priv.(*ecdsa.PrivateKey)
		r, s, serr := ecdsa.Sign(rand.Reader, k, digest)
		n := (k.Curve.Params().BitSize + 7) / 8
		sig, err = make([]byte, 2*n), serr
		if err == nil {
			r.FillBytes(sig[:n])
			s.FillBytes(sig[n:])
		}
	}
	if err != nil {
		tb.Fatalf("rawSign %s: %v", alg, err)
	}
	return sig
}

// signCompact returns a compact JWS whose protected header is exactly
// header (any bytes) over payload, signed for alg with the test key.
func signCompact(tb testing.TB, alg string, header, payload []byte) string {
	tb.Helper()
	input := b64.EncodeToString(header) + "." + b64.EncodeToString(payload)
	return input + "." + b64.EncodeToString(rawSign(tb, alg, testKeys(tb)[alg].priv, []byte(input)))
}

// member is one name/value pair of a JSON object, in document order.
type jsonMember struct {
	name  string
	value json.RawMessage
}

// jsonObject lists the members of the JSON object text js, duplicates
// included, using encoding/json only. ok is false when js is not a single
// object of valid JSON.
func jsonObject(js []byte) (members []jsonMember, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(js))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		name, isName := t.(string)
		var v json.RawMessage
		if !isName || dec.Decode(&v) != nil {
			return nil, false
		}
		members = append(members, jsonMember{name, v})
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return members, json.Valid(js)
}

// jsonDepth is how deeply arrays and objects nest in the valid JSON js.
func jsonDepth(js []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range js {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}
