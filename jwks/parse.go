package jwks

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Reasons a document is refused. They are fixed phrases on purpose: the
// document comes from the network, and no part of it ever reaches an error
// or a log line.
var (
	errNotJSON    = errors.New("jwks: document is not valid JSON")
	errNoKeys     = errors.New(`jwks: document is not a JSON object with one "keys" array`)
	errTooMany    = errors.New("jwks: document has more keys than MaxKeys")
	errNoUsable   = errors.New("jwks: document has no usable key")
	errEmptySet   = errors.New(`jwks: document's "keys" array is empty`)
	errTooLarge   = errors.New("jwks: document is larger than MaxBodySize")
	errBadKeyJSON = errors.New("jwks: key is not a JSON object")
)

// RSA modulus bounds. Below 2048 bits is weak (RFC 8725 §3.5, NIST SP
// 800-131A); above 8192 each verification becomes a denial of service,
// which is also where crypto/x509 stops accepting keys.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// privateMembers are the JWK members that only private or symmetric keys
// carry (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// buildOptions is what building a snapshot needs besides the document.
type buildOptions struct {
	allowed algSet       // the set's allow-list
	maxKeys int          // most entries accepted in "keys"
	log     *slog.Logger // receives one line per skipped key
	url     string       // for log lines only
	prev    *Snapshot    // the current snapshot, for *Key reuse; may be nil
	now     time.Time    // becomes FetchedAt
}

// buildSnapshot parses a JWKS document and applies key hygiene. It is a
// pure function of its inputs (besides logging): it returns a new
// Snapshot, or an error when the document is unusable as a whole. Keys
// that fail hygiene are skipped and logged; the document fails only when
// no key is left.
//
// Keys are reused from o.prev when their "kid", thumbprint and "alg" are
// unchanged.
func buildSnapshot(doc []byte, o *buildOptions) (*Snapshot, error) {
	raws, err := splitKeys(doc, o.maxKeys)
	if err != nil {
		return nil, err
	}
	if len(raws) == 0 {
		return nil, errEmptySet
	}
	type entry struct {
		kid string
		key *Key // nil when skipped
	}
	entries := make([]entry, 0, len(raws))
	kidCount := make(map[string]int, len(raws))
	for _, raw := range raws {
		kid, key, reason, private := checkKey(raw, o.allowed)
		if kid != "" {
			kidCount[kid]++
		}
		switch {
		case private:
			o.log.Error("jwks: JWKS publishes private key material; key skipped, the issuer must rotate it",
				"url", o.url, "kid", logKID(kid), "reason", reason)
		case key == nil:
			o.log.Warn("jwks: key skipped", "url", o.url, "kid", logKID(kid), "reason", reason)
		}
		entries = append(entries, entry{kid, key})
	}

	s := &Snapshot{byKID: make(map[string]*Key, len(entries)), fetchedAt: o.now}
	for _, e := range entries {
		if e.kid != "" && kidCount[e.kid] > 1 {
			if e.key != nil {
				o.log.Warn("jwks: key skipped", "url", o.url, "kid", logKID(e.kid),
					"reason", "kid appears more than once in the JWKS (ambiguous)")
			}
			continue
		}
		if e.key == nil {
			continue
		}
		k := reuse(o.prev, e.key)
		if k.ID != "" {
			s.byKID[k.ID] = k
		}
		s.keys = append(s.keys, k)
	}
	if len(s.keys) == 0 {
		return nil, errNoUsable
	}
	if len(s.keys) == 1 {
		s.only = s.keys[0]
	}
	return s, nil
}

// reuse returns prev's *Key for k when prev holds the same key (same "kid",
// thumbprint and "alg"), so pointer comparison across snapshots means
// "unchanged"; otherwise k.
func reuse(prev *Snapshot, k *Key) *Key {
	if prev == nil {
		return k
	}
	if k.ID != "" {
		if old := prev.byKID[k.ID]; old != nil && old.Thumbprint == k.Thumbprint && old.Algorithm == k.Algorithm {
			return old
		}
		return k
	}
	for _, old := range prev.keys {
		if old.ID == "" && old.Thumbprint == k.Thumbprint && old.Algorithm == k.Algorithm {
			return old
		}
	}
	return k
}

// splitKeys checks the document's outer shape, a JSON object with exactly
// one "keys" member holding an array (RFC 7517 §5), and returns the
// array's entries unparsed. A bare JWK, which jwk.Parse would accept as a
// one-key set, is refused: a jwks_uri serves sets.
func splitKeys(doc []byte, maxKeys int) ([]json.RawMessage, error) {
	if !json.Valid(doc) {
		return nil, errNotJSON
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errNoKeys
	}
	var keys []json.RawMessage
	seen := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errNotJSON
		}
		if name, _ := tok.(string); name != "keys" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, errNotJSON
			}
			continue
		}
		if seen {
			return nil, errNoKeys // two "keys" members: which one is meant?
		}
		seen = true
		if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
			return nil, errNoKeys
		}
		for dec.More() {
			if len(keys) >= maxKeys {
				return nil, errTooMany
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, errNotJSON
			}
			keys = append(keys, raw)
		}
		if _, err := dec.Token(); err != nil { // the closing ']'
			return nil, errNotJSON
		}
	}
	if !seen {
		return nil, errNoKeys
	}
	return keys, nil
}

// checkKey applies key hygiene to one JWK. It returns the key's "kid"
// (best effort, for logs and duplicate detection), and either a usable
// *Key or a fixed-phrase reason for skipping it. private reports that the
// JWK carries private or symmetric key material, which deserves a louder
// log line.
func checkKey(raw json.RawMessage, allowList algSet) (kid string, key *Key, reason string, private bool) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil || members == nil {
		return "", nil, errBadKeyJSON.Error(), false
	}
	if v, ok := members["kid"]; ok {
		if err := json.Unmarshal(v, &kid); err != nil {
			return "", nil, `"kid" is not a string`, false
		}
	}
	for _, m := range privateMembers {
		if _, ok := members[m]; ok {
			return kid, nil, fmt.Sprintf("private or symmetric key member %q present", m), true
		}
	}
	var kty string
	if v, ok := members["kty"]; ok {
		_ = json.Unmarshal(v, &kty)
	}
	if kty == "oct" {
		return kid, nil, "symmetric (oct) key", false
	}
	if kty != "RSA" && kty != "EC" && kty != "OKP" {
		return kid, nil, "unsupported key type", false
	}

	jk, err := jwk.ParseKey(raw)
	if err != nil {
		return kid, nil, "malformed or unsupported " + kty + " key", false
	}
	if k, ok := jk.KeyID(); ok && k != kid {
		return kid, nil, `"kid" is ambiguous`, false // our reading and jwx's disagree
	}
	if isPriv, err := jwk.IsPrivateKey(jk); err != nil || isPriv {
		return kid, nil, "private key", true
	}
	if use, ok := jk.KeyUsage(); ok && use != "sig" {
		if use == "enc" {
			return kid, nil, `"use" is "enc"`, false
		}
		return kid, nil, `"use" is not "sig"`, false
	}
	if ops, ok := jk.KeyOps(); ok && !slices.Contains(ops, jwk.KeyOpVerify) {
		return kid, nil, `"key_ops" lacks "verify"`, false
	}

	var pub any
	if err := jwk.Export(jk, &pub); err != nil {
		return kid, nil, "malformed or unsupported " + kty + " key", false
	}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < minRSABits {
			return kid, nil, "RSA key shorter than 2048 bits", false
		}
		if p.N.BitLen() > maxRSABits {
			return kid, nil, "RSA key longer than 8192 bits", false // each verification would be slow
		}
		if p.E < 3 || p.E%2 == 0 {
			return kid, nil, "RSA public exponent is invalid", false
		}
	case *ecdsa.PublicKey:
		if algsFor(p) == 0 {
			return kid, nil, "unsupported elliptic curve", false
		}
		if _, err := p.ECDH(); err != nil {
			return kid, nil, "EC point is not on the curve", false
		}
	case ed25519.PublicKey:
		if len(p) != ed25519.PublicKeySize {
			return kid, nil, "malformed Ed25519 key", false
		}
	default:
		return kid, nil, "unsupported key type or curve", false
	}

	compatible := algsFor(pub)
	var alg string
	allowed := allowList & compatible
	if a, ok := jk.Algorithm(); ok {
		alg = a.String()
		b := algBit(alg)
		switch {
		case b == 0 || b&allowList == 0:
			return kid, nil, `"alg" is not on the allow-list`, false
		case b&compatible == 0:
			return kid, nil, `"alg" does not match the key type`, false
		}
		allowed = b
	}
	if allowed == 0 {
		return kid, nil, "no allowed algorithm fits the key type", false
	}

	tp, err := jk.Thumbprint(crypto.SHA256)
	if err != nil {
		return kid, nil, "thumbprint failed", false
	}
	return kid, &Key{
		ID:         kid,
		Algorithm:  alg,
		Public:     pub,
		Thumbprint: base64.RawURLEncoding.EncodeToString(tp),
		allowed:    allowed,
	}, "", false
}

// logKID shortens a "kid" for log lines: kids come from the JWKS document
// and may be long or binary.
func logKID(kid string) string {
	const max = 128
	if len(kid) <= max && utf8.ValidString(kid) {
		return kid
	}
	if len(kid) > max {
		kid = kid[:max]
	}
	return fmt.Sprintf("%q…", kid)
}
