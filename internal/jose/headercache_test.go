package jose

import (
	"errors"
	"reflect"
	"sync"
	"testing"
)

// TestHeaderCache checks that a kept header is reused only for the very
// same header segment, read with the same rules, and that a token read
// through the cache is the token Parse reads.
func TestHeaderCache(t *testing.T) {
	const ecJWK = `{"kty":"EC","crv":"P-256","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"}`
	hdr := `{"alg":"ES256","kid":"k1","typ":"at+jwt"}`
	tok := signCompact(t, ES256, []byte(hdr), []byte(`{"iss":"a"}`))
	other := signCompact(t, ES256, []byte(`{"alg":"ES256","kid":"k2","typ":"at+jwt"}`), []byte(`{"iss":"b"}`))

	c := NewHeaderCache()
	plain := func(tok string) Token {
		t.Helper()
		want, err := Parse(tok)
		if err != nil {
			t.Fatal(err)
		}
		return want
	}
	same := func(got, want Token) {
		t.Helper()
		if got.Header != want.Header || got.SigningInput != want.SigningInput ||
			string(got.Payload) != string(want.Payload) || string(got.Signature) != string(want.Signature) {
			t.Fatalf("through the cache: %+v, Parse: %+v", got, want)
		}
	}

	// Not kept yet: parsed, not cached.
	got, err := c.Parse(tok)
	if err != nil || got.cached {
		t.Fatalf("first Parse: cached %v, err %v", got.cached, err)
	}
	same(got, plain(tok))
	if err := got.Verify(ES256, testKeys(t)[ES256].pub); err != nil {
		t.Fatal(err)
	}
	c.Keep(&got)

	// Kept: the same segment comes from the cache, another does not.
	again, err := c.Parse(tok)
	if err != nil || !again.cached {
		t.Fatalf("second Parse: cached %v, err %v", again.cached, err)
	}
	same(again, plain(tok))
	if err := again.Verify(ES256, testKeys(t)[ES256].pub); err != nil {
		t.Fatalf("a token read through the cache does not verify: %v", err)
	}
	o, err := c.Parse(other)
	if err != nil || o.cached {
		t.Fatalf("another header: cached %v, err %v", o.cached, err)
	}
	same(o, plain(other))

	// Its strings are its own, not the first token's.
	e := c.lookup(got.headerSeg, false)
	if e == nil || reflect.ValueOf(e.seg).UnsafePointer() == reflect.ValueOf(got.headerSeg).UnsafePointer() {
		t.Fatal("kept entry missing or sharing the token's memory")
	}

	// A proof header kept by ParseProof is never Parse's: Parse refuses
	// a "jwk" in the header, whatever ParseProof accepted.
	proofHdr := `{"typ":"dpop+jwt","alg":"ES256","jwk":` + ecJWK + `}`
	proof := b64.EncodeToString([]byte(proofHdr)) + ".e30.AA"
	pt, jwk, err := c.ParseProof(proof)
	if err != nil || jwk != ecJWK {
		t.Fatalf("ParseProof: jwk %q, err %v", jwk, err)
	}
	c.Keep(&pt)
	if _, err := c.Parse(proof); !errors.Is(err, errKeyParam) {
		t.Fatalf("Parse of a kept proof header: err %v, want %v", err, errKeyParam)
	}
	pt2, jwk2, err := c.ParseProof(proof)
	if err != nil || !pt2.cached || jwk2 != ecJWK || pt2.Kept() != nil {
		t.Fatalf("ParseProof again: cached %v, jwk %q, kept %v, err %v", pt2.cached, jwk2, pt2.Kept(), err)
	}

	// KeepWith: what is kept with a header comes back with it, and only
	// with it.
	proof2 := b64.EncodeToString([]byte(`{"typ":"dpop+jwt","alg":"ES384","jwk":`+ecJWK+`}`)) + ".e30.AA"
	p3, _, err := c.ParseProof(proof2)
	if err != nil || p3.Kept() != nil {
		t.Fatalf("new proof header: kept %v, err %v", p3.Kept(), err)
	}
	c.KeepWith(&p3, "derived")
	p4, _, err := c.ParseProof(proof2)
	if err != nil || p4.Kept() != "derived" {
		t.Fatalf("kept proof header: kept %v, err %v", p4.Kept(), err)
	}
	// And the other way: a header Parse kept, read by ParseProof, still
	// needs its "jwk".
	if _, _, err := c.ParseProof(tok); !errors.Is(err, errNoJWK) {
		t.Fatalf("ParseProof of a kept access-token header: err %v, want %v", err, errNoJWK)
	}

	// A broken payload or signature is refused as Parse refuses it,
	// kept header or not.
	bad := got.headerSeg + ".e30.A"
	if _, err := c.Parse(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad signature segment: err %v", err)
	}
	if _, err := c.Parse(got.headerSeg + ".e30.AA.AA"); !errors.Is(err, errSegments) {
		t.Fatalf("four segments: err %v", err)
	}

	// A nil cache is Parse.
	var nc *HeaderCache
	n, err := nc.Parse(tok)
	if err != nil || n.cached {
		t.Fatalf("nil cache: cached %v, err %v", n.cached, err)
	}
	nc.Keep(&n)
}

// TestHeaderCacheConcurrent runs Parse and Keep from several goroutines,
// for the race detector.
func TestHeaderCacheConcurrent(t *testing.T) {
	toks := []string{
		signCompact(t, ES256, []byte(`{"alg":"ES256","kid":"k1"}`), []byte(`{}`)),
		signCompact(t, ES256, []byte(`{"alg":"ES256","kid":"k2"}`), []byte(`{}`)),
		signCompact(t, ES256, []byte(`{"alg":"ES256","kid":"k3"}`), []byte(`{}`)),
	}
	c := NewHeaderCache()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				tok := toks[(g+i)%len(toks)]
				got, err := c.Parse(tok)
				if err != nil {
					t.Error(err)
					return
				}
				if want, _ := Parse(tok); got.Header != want.Header {
					t.Errorf("header %+v, want %+v", got.Header, want.Header)
					return
				}
				c.Keep(&got)
			}
		}()
	}
	wg.Wait()
}
