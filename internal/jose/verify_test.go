package jose

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

func flip(b []byte, i int) []byte {
	c := slices.Clone(b)
	c[i%len(c)] ^= 0x01
	return c
}

type verifyCase struct {
	name  string
	key   crypto.PublicKey
	input string
	sig   []byte
	want  error // nil: verifies
}

func TestVerifySignature(t *testing.T) {
	keys := testKeys(t)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	const input = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9"
	for _, alg := range supported {
		t.Run(alg, func(t *testing.T) {
			k := keys[alg]
			sig := rawSign(t, alg, k.priv, []byte(input))
			var otherType crypto.PublicKey = keys[EdDSA].pub
			if alg == EdDSA {
				otherType = keys[ES256].pub
			}
			tests := []verifyCase{
				{"valid", k.pub, input, sig, nil},
				{"flipped first signature bit", k.pub, input, flip(sig, 0), ErrInvalidSignature},
				{"flipped last signature bit", k.pub, input, flip(sig, len(sig)-1), ErrInvalidSignature},
				{"flipped input", k.pub, input[:5] + "A" + input[6:], sig, ErrInvalidSignature},
				{"input with a byte appended", k.pub, input + "A", sig, ErrInvalidSignature},
				{"signature one byte short", k.pub, input, sig[:len(sig)-1], ErrInvalidSignature},
				{"signature one byte long", k.pub, input, append(slices.Clone(sig), 0), ErrInvalidSignature},
				{"signature with a leading zero", k.pub, input, append([]byte{0}, sig...), ErrInvalidSignature},
				{"empty signature", k.pub, input, nil, ErrInvalidSignature},
				{"all-zero signature", k.pub, input, make([]byte, len(sig)), ErrInvalidSignature},
				{"all-ones signature", k.pub, input, bytes.Repeat([]byte{0xFF}, len(sig)), ErrInvalidSignature},
				{"key of another type", otherType, input, sig, ErrKeyMismatch},
				{"nil key", nil, input, sig, ErrKeyMismatch},
				{"private key instead of public", k.priv, input, sig, ErrKeyMismatch},
			}
			switch alg[0] {
			case 'R', 'P':
				tests = append(tests,
					verifyCase{"1024-bit RSA key", &rsa1024.PublicKey, input, sig[:128], ErrKeyMismatch},
					verifyCase{"typed nil RSA key", (*rsa.PublicKey)(nil), input, sig, ErrKeyMismatch},
					verifyCase{"RSA key without modulus", &rsa.PublicKey{E: 65537}, input, sig, ErrKeyMismatch},
				)
			case 'E':
				if alg == EdDSA {
					tests = append(tests, verifyCase{"31-byte Ed25519 key", k.pub.(ed25519.PublicKey)[:31], input, sig, ErrKeyMismatch})
					break
				}
				other := ES256
				if alg == ES256 {
					other = ES384
				}
				tests = append(tests,
					verifyCase{"ECDSA key on another curve", keys[other].pub, input, sig, ErrKeyMismatch},
					verifyCase{"typed nil ECDSA key", (*ecdsa.PublicKey)(nil), input, sig, ErrKeyMismatch},
					verifyCase{"DER signature", k.pub, input, derOf(t, sig), ErrInvalidSignature},
				)
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					err := VerifySignature(alg, tt.key, tt.input, tt.sig)
					if tt.want == nil && err != nil || !errors.Is(err, tt.want) {
						t.Fatalf("VerifySignature = %v, want %v", err, tt.want)
					}
				})
			}
		})
	}
}

// derOf re-encodes a JWS r‖s ECDSA signature as ASN.1 DER, the form JWS
// does not allow.
func derOf(t *testing.T, sig []byte) []byte {
	t.Helper()
	n := len(sig) / 2
	der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestVerifySignatureAlgorithms(t *testing.T) {
	keys := testKeys(t)
	const input = "a.b"
	sig := rawSign(t, ES256, keys[ES256].priv, []byte(input))
	rsaSig := rawSign(t, RS256, keys[RS256].priv, []byte(input))
	tests := []struct {
		alg  string
		key  crypto.PublicKey
		sig  []byte
		want error
	}{
		{"none", keys[ES256].pub, nil, ErrUnsupportedAlgorithm},
		{"", keys[ES256].pub, sig, ErrUnsupportedAlgorithm},
		{"HS256", []byte("secret"), sig, ErrUnsupportedAlgorithm},
		{"HS256", keys[RS256].pub, rsaSig, ErrUnsupportedAlgorithm},
		{"es256", keys[ES256].pub, sig, ErrUnsupportedAlgorithm},
		{"ES256K", keys[ES256].pub, sig, ErrUnsupportedAlgorithm},
		{"Ed25519", keys[EdDSA].pub, sig, ErrUnsupportedAlgorithm},
		// A signature is only good for the alg it was made with.
		{PS256, keys[RS256].pub, rsaSig, ErrInvalidSignature},
		{RS384, keys[RS256].pub, rsaSig, ErrInvalidSignature},
		{ES384, keys[ES256].pub, sig, ErrKeyMismatch},
	}
	for _, tt := range tests {
		if err := VerifySignature(tt.alg, tt.key, input, tt.sig); !errors.Is(err, tt.want) {
			t.Errorf("VerifySignature(%q) = %v, want %v", tt.alg, err, tt.want)
		}
	}
}

// TestVerifySignatureStrictEncodings covers signatures that a lenient
// verifier would take: PSS with a salt shorter than the hash (RFC 7518
// §3.5 fixes it to the hash length) and ECDSA r and s padded past the
// curve size (RFC 7518 §3.4 fixes their length).
func TestVerifySignatureStrictEncodings(t *testing.T) {
	keys := testKeys(t)
	const input = "a.b"
	d := sha256.Sum256([]byte(input))
	for _, salt := range []int{0, 16} {
		sig, err := rsa.SignPSS(rand.Reader, keys[PS256].priv.(*rsa.PrivateKey), crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: salt})
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifySignature(PS256, keys[PS256].pub, input, sig); !errors.Is(err, ErrInvalidSignature) {
			t.Errorf("PS256 with a %d-byte salt: %v, want ErrInvalidSignature", salt, err)
		}
	}
	sig := rawSign(t, ES256, keys[ES256].priv, []byte(input))
	padded := append(append(append([]byte{0}, sig[:32]...), 0), sig[32:]...)
	if err := VerifySignature(ES256, keys[ES256].pub, input, padded); !errors.Is(err, ErrInvalidSignature) {
		t.Errorf("ES256 with 33-byte r and s: %v, want ErrInvalidSignature", err)
	}
	if err := VerifySignature(ES256, keys[ES256].pub, input, sig); err != nil {
		t.Errorf("the unpadded signature: %v", err)
	}
}

// TestVerifySignatureShortIntegers covers ECDSA signatures whose r or s
// has leading zero bytes, which the DER re-encoding must trim.
func TestVerifySignatureShortIntegers(t *testing.T) {
	keys := testKeys(t)
	var short, long int
	for i := 0; i < 5000 && (short < 2 || long < 2); i++ {
		input := "input." + string(rune('a'+i%26)) + strings.Repeat("x", i)
		sig := rawSign(t, ES256, keys[ES256].priv, []byte(input))
		switch {
		case sig[0] == 0 || sig[32] == 0:
			short++
		case sig[0]&0x80 != 0 && sig[32]&0x80 != 0:
			long++
		default:
			continue
		}
		if err := VerifySignature(ES256, keys[ES256].pub, input, sig); err != nil {
			t.Fatalf("signature %x: %v", sig, err)
		}
	}
	if short < 2 || long < 2 {
		t.Fatalf("found %d signatures with a leading zero and %d with both high bits set in 5000 tries", short, long)
	}
}

func TestAppendSignatureDER(t *testing.T) {
	ff := func(n int) []byte { return bytes.Repeat([]byte{0xFF}, n) }
	tests := []struct {
		name string
		r, s []byte
	}{
		{"zero", make([]byte, 32), make([]byte, 32)},
		{"one", append(make([]byte, 31), 1), append(make([]byte, 31), 1)},
		{"high bits P-256", ff(32), ff(32)},
		{"low bits P-256", append([]byte{0x7F}, ff(31)...), append([]byte{0x7F}, ff(31)...)},
		{"leading zeros", append([]byte{0, 0, 0x80}, ff(29)...), append([]byte{0, 0x01}, ff(30)...)},
		{"P-384", ff(48), ff(48)},
		{"P-521 max, long-form length", ff(66), ff(66)},
		{"P-521 just under long form", append([]byte{0, 0, 0}, ff(63)...), append([]byte{0, 0, 0}, bytes.Repeat([]byte{0x7F}, 63)...)},
		{"P-521 mixed", append([]byte{0x01}, ff(65)...), append([]byte{0, 0x80}, ff(64)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkDER(t, tt.r, tt.s)
		})
	}
}

func checkDER(t *testing.T, r, s []byte) {
	t.Helper()
	want, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(r), new(big.Int).SetBytes(s)})
	if err != nil {
		t.Fatal(err)
	}
	var buf [2*(2+1+66) + 3]byte
	got := appendSignatureDER(buf[:0], r, s)
	if !bytes.Equal(got, want) {
		t.Fatalf("appendSignatureDER(%x, %x) = %x, asn1.Marshal %x", r, s, got, want)
	}
	if &got[0] != &buf[0] {
		t.Fatalf("appendSignatureDER(%x, %x) outgrew its %d-byte buffer", r, s, len(buf))
	}
}

func FuzzAppendSignatureDER(f *testing.F) {
	f.Add(bytes.Repeat([]byte{0xFF}, 66), bytes.Repeat([]byte{0xFF}, 66))
	f.Add([]byte{0, 0, 1}, []byte{0x80})
	f.Fuzz(func(t *testing.T, r, s []byte) {
		if len(r) > 66 || len(s) > 66 {
			return // larger than any supported curve's r and s
		}
		checkDER(t, r, s)
	})
}

// FuzzVerifyDifferential compares this package with jwx's jws.Verify on
// tokens built from fuzzed headers, payloads and signatures, signed with
// one fixed key per alg. Whatever we accept jwx must accept. Whatever jwx
// accepts and we refuse must break one of the stricter rules the package
// documents, as judged by strictViolation, which uses encoding/json and
// encoding/base64 rather than this package's code.
func FuzzVerifyDifferential(f *testing.F) {
	keys := testKeys(f)
	for i, alg := range supported {
		hdr := `{"alg":"` + alg + `","kid":"k","typ":"at+jwt"}`
		f.Add(uint8(0), uint8(i), []byte(hdr), []byte(`{"sub":"alice","exp":1700000000}`), []byte{})
		f.Add(uint8(1), uint8(i), []byte(hdr), []byte(`{}`), []byte{7})
		f.Add(uint8(0), uint8(i), []byte(`{"alg":"`+alg+`","jwk":{"kty":"oct"}}`), []byte(`{}`), []byte{})
	}
	f.Add(uint8(0), uint8(6), []byte(`{"alg":"ES256","crit":["exp"],"exp":1}`), []byte(`{}`), []byte{})
	f.Add(uint8(0), uint8(6), []byte(`{"alg":"ES256","alg":"ES256"}`), []byte(`{}`), []byte{})
	f.Add(uint8(0), uint8(6), []byte(`{"alg":"none"}`), []byte(`{}`), []byte{})
	f.Add(uint8(0), uint8(6), []byte(`{"alg":"ES\u0032\u0035\u0036"}`), []byte(`x`), []byte{})
	f.Add(uint8(0), uint8(6), []byte(`{"alg":"ES256","b64":false,"crit":["b64"]}`), []byte(`{}`), []byte{})
	f.Add(uint8(3), uint8(0), []byte{}, []byte{}, []byte("eyJhbGciOiJSUzI1NiJ9.e30.AAAA"))
	f.Add(uint8(4), uint8(6), []byte(`{"alg":"ES256"}`), []byte(`{}`), []byte("=="))

	f.Fuzz(func(t *testing.T, mode, algIdx uint8, header, payload, extra []byte) {
		alg := supported[int(algIdx)%len(supported)]
		key := keys[alg]
		var token string
		switch mode % 5 {
		case 0: // as signed
			token = signCompact(t, alg, header, payload)
		case 1: // one signature bit flipped
			tok := signCompact(t, alg, header, payload)
			i := strings.LastIndexByte(tok, '.')
			sig, _ := b64.DecodeString(tok[i+1:])
			pos := 0
			if len(extra) > 0 {
				pos = int(extra[0])
			}
			token = tok[:i+1] + b64.EncodeToString(flip(sig, pos))
		case 2: // signature replaced
			token = b64.EncodeToString(header) + "." + b64.EncodeToString(payload) + "." + b64.EncodeToString(extra)
		case 3: // raw token text
			token = string(extra)
		case 4: // bytes inserted into a signed token
			tok := signCompact(t, alg, header, payload)
			pos := 0
			if len(extra) > 0 {
				pos = int(extra[0]) * len(tok) / 256
			}
			token = tok[:pos] + string(extra) + tok[pos:]
		}
		if len(token) > 1<<16 {
			return
		}

		ours := ourVerdict(alg, key.pub, token)
		theirs := jwxVerdict(t, alg, key.pub, token)
		switch {
		case ours && !theirs:
			t.Fatalf("we accept a token jwx refuses: %q", token)
		case theirs && !ours:
			if why := strictViolation(token); why == "" {
				_, err := Parse(token)
				t.Fatalf("we refuse (Parse: %v) a token jwx accepts, and it breaks no documented rule: %q", err, token)
			}
		}
	})
}

// ourVerdict is what the guard does with this package: parse, require
// the header alg to be the key's, verify.
func ourVerdict(alg string, key crypto.PublicKey, token string) bool {
	tok, err := Parse(token)
	if err != nil || tok.Header.Alg != alg {
		return false
	}
	return VerifySignature(tok.Header.Alg, key, tok.SigningInput, tok.Signature) == nil
}

// jwxVerdict asks jwx to verify token with key for alg, and to report the
// same header alg (jws.Verify with a fixed key does not compare them by
// default, and its jws.WithAlgorithmMatch skips a header without "alg").
func jwxVerdict(t *testing.T, alg string, key crypto.PublicKey, token string) bool {
	ja, ok := jwa.LookupSignatureAlgorithm(alg)
	if !ok {
		t.Fatalf("jwx does not know %s", alg)
	}
	if _, err := jws.Verify([]byte(token), jws.WithKey(ja, key)); err != nil {
		return false
	}
	msg, err := jws.Parse([]byte(token))
	if err != nil || len(msg.Signatures()) != 1 {
		return false
	}
	got, ok := msg.Signatures()[0].ProtectedHeaders().Algorithm()
	return ok && got.String() == alg
}

// strictViolation names the documented rule of this package that token
// breaks and jwx does not enforce, or returns "" when it breaks none.
func strictViolation(token string) string {
	segs := strings.Split(token, ".")
	if len(segs) != 3 {
		return "not three segments"
	}
	var decoded [3][]byte
	for i, s := range segs {
		d, err := b64.Strict().DecodeString(s)
		if err != nil || b64.EncodeToString(d) != s {
			return "segment is not canonical unpadded base64url"
		}
		decoded[i] = d
	}
	header := decoded[0]
	members, ok := jsonObject(header)
	switch {
	case !ok:
		return "header is not a single JSON object"
	case !utf8.Valid(header):
		return "header is not valid UTF-8"
	case jsonDepth(header) > maxDepth:
		return "header nests too deeply"
	}
	seen := map[string]bool{}
	for _, m := range members {
		switch m.name {
		case "crit":
			return "crit"
		case "jwk", "jku", "x5u", "x5c":
			return "key in header"
		case "alg", "kid", "typ", "cty", "x5t", "x5t#S256", "b64":
			if seen[m.name] {
				return "duplicate header member " + m.name
			}
			seen[m.name] = true
			if m.name == "b64" {
				if string(m.value) != "true" {
					return "b64 is not true"
				}
				continue
			}
			var s string
			if m.value[0] != '"' || json.Unmarshal(m.value, &s) != nil {
				return m.name + " is not a string"
			}
		}
	}
	return ""
}

// publicJWK is key as JWK JSON.
func publicJWK(t *testing.T, key crypto.PublicKey) string {
	t.Helper()
	k, err := jwk.Import(key)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(js)
}

// TestStrictViolationExplainsRefusals pins the cases where jwx and this
// package disagree by design, so a change in either shows up on every
// run, not only when fuzzing.
func TestStrictViolationExplainsRefusals(t *testing.T) {
	keys := testKeys(t)
	tests := []struct {
		name   string
		header string
		jwxOK  bool // whether jwx accepts the signed token
	}{
		{"plain", `{"alg":"ES256"}`, true},
		{"jwk header", `{"alg":"ES256","jwk":` + publicJWK(t, keys[ES256].pub) + `}`, true},
		{"jku header", `{"alg":"ES256","jku":"https://attacker.example/"}`, true},
		{"duplicate alg", `{"alg":"RS256","alg":"ES256"}`, true},
		{"invalid UTF-8 in unread member", "{\"alg\":\"ES256\",\"x\":\"\xff\"}", true},
		// jws.Verify ignores "crit" unless asked to check it
		// (jws.WithCritValidation): RFC 7515 §4.1.11 says to reject.
		{"crit", `{"alg":"ES256","crit":["x"],"x":1}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := signCompact(t, ES256, []byte(tt.header), []byte(`{}`))
			theirs := jwxVerdict(t, ES256, keys[ES256].pub, token)
			ours := ourVerdict(ES256, keys[ES256].pub, token)
			if theirs != tt.jwxOK {
				t.Fatalf("jwx verdict %v, want %v (jwx changed; revisit the differential)", theirs, tt.jwxOK)
			}
			wantOurs := tt.name == "plain"
			if ours != wantOurs {
				t.Fatalf("our verdict %v, want %v", ours, wantOurs)
			}
			if !ours && strictViolation(token) == "" {
				t.Fatalf("refusal not explained by strictViolation")
			}
		})
	}
}
