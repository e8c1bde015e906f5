package jose

import (
	"hash/maphash"
	"strings"
	"sync/atomic"
)

// headerCacheSlots is how many headers a HeaderCache holds: an issuer's
// tokens share one header per signing key, and a handful of keys are in
// use at a time.
const headerCacheSlots = 8

// HeaderCache remembers the protected headers of tokens that verified, so
// that a later token with the very same header segment (byte for byte)
// skips decoding and parsing it: every token an issuer signs with one key
// has the same header, and reading it is a measurable share of a
// request. Its safety does not rest on who may add to it: the guard keeps
// a token's header once the signature checked out, but before the claim
// checks, and the DPoP verifier keeps a proof's header once the proof
// verified under its own "jwk", which anyone can make. It rests on this:
// an entry is a pure function of its exact segment (and what KeepWith
// keeps, a pure function of the "jwk" text inside that segment), and a
// header comes from it only when the segment equals the kept one byte for
// byte, so its verdicts are Parse's. The most an attacker can do is evict
// the slots, which costs the speed-up and nothing else. It is safe for
// concurrent use; the zero value is not usable, use NewHeaderCache.
type HeaderCache struct {
	seed  maphash.Seed
	slots [headerCacheSlots]atomic.Pointer[headerEntry]
}

// headerEntry is one kept header: immutable once stored, with strings of
// its own (never sharing a token's memory).
type headerEntry struct {
	seg string // the encoded header segment
	hdr Header
	jwk string // a proof's "jwk" text, or ""
	// proof: read by ParseProof, whose rules differ from Parse's (it
	// takes a "jwk"), so only ParseProof may reuse it, and vice versa.
	proof bool
	// kept is what the caller kept with the header (KeepWith): what it
	// derived from it alone, such as a proof's parsed "jwk".
	kept any
}

// NewHeaderCache returns an empty cache.
func NewHeaderCache() *HeaderCache { return &HeaderCache{seed: maphash.MakeSeed()} }

func (c *HeaderCache) slot(seg string) *atomic.Pointer[headerEntry] {
	return &c.slots[maphash.String(c.seed, seg)%headerCacheSlots]
}

// lookup returns the kept entry for the header segment seg read with
// ParseProof's rules (proof) or Parse's, or nil.
func (c *HeaderCache) lookup(seg string, proof bool) *headerEntry {
	if c == nil {
		return nil
	}
	if e := c.slot(seg).Load(); e != nil && e.proof == proof && e.seg == seg {
		return e
	}
	return nil
}

// Parse is Parse, taking the header from the cache when a token with the
// same header segment was kept. A nil cache is Parse.
func (c *HeaderCache) Parse(token string) (Token, error) {
	return parseWith(token, nil, c)
}

// ParseProof is ParseProof, taking the header and its "jwk" from the
// cache when a proof with the same header segment was kept. A nil cache
// is ParseProof.
func (c *HeaderCache) ParseProof(token string) (Token, string, error) {
	var jwk string
	t, err := parseWith(token, &jwk, c)
	if err == nil && jwk == "" {
		err = malformed("header", errNoJWK)
	}
	return t, jwk, err
}

// Keep remembers t's header for later tokens: call it only once t (from
// Parse, ParseProof or c's own) has verified. It is a no-op on a nil cache
// and for a header that came from the cache.
func (c *HeaderCache) Keep(t *Token) { c.KeepWith(t, nil) }

// KeepWith is Keep that also keeps v, which Token.Kept returns for the
// later tokens whose header comes from the cache. v must be derived from
// the header alone (its segment is all that a later token shares), and
// must be safe to share between goroutines.
func (c *HeaderCache) KeepWith(t *Token, v any) {
	if c == nil || t.cached || t.headerSeg == "" {
		return
	}
	s := c.slot(t.headerSeg)
	if e := s.Load(); e != nil && e.proof == t.proof && e.seg == t.headerSeg {
		return
	}
	alg := internAlg(t.Header.Alg)
	if alg == t.Header.Alg && !isSupported(alg) {
		alg = strings.Clone(alg)
	}
	s.Store(&headerEntry{
		seg:   strings.Clone(t.headerSeg),
		hdr:   Header{Alg: alg, Kid: strings.Clone(t.Header.Kid), Typ: strings.Clone(t.Header.Typ)},
		jwk:   strings.Clone(t.jwk),
		proof: t.proof,
		kept:  v,
	})
}

// isSupported reports whether alg is one of the package's constants'
// names.
func isSupported(alg string) bool {
	for _, a := range supported {
		if a == alg {
			return true
		}
	}
	return false
}

// Kept returns what KeepWith kept with t's header when t's header came
// from a HeaderCache, else nil.
func (t *Token) Kept() any { return t.kept }
