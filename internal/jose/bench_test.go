package jose

import (
	"testing"
)

// benchToken is a typical RFC 9068 access token for alg.
func benchToken(tb testing.TB, alg string) string {
	header := `{"alg":"` + alg + `","kid":"2024-11-key-1","typ":"at+jwt"}`
	payload := `{"iss":"https://auth.example.com/","sub":"5ba552d67","aud":["https://api.example.com","https://other.example.com"],` +
		`"exp":1700003600,"iat":1700000000,"nbf":1700000000,"jti":"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",` +
		`"client_id":"s6BhdRkqt3","scope":"orders:read orders:write profile","auth_time":1699999000,"acr":"1",` +
		`"cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},"https://example.com/tenant":{"id":42,"tier":"gold"}}`
	return signCompact(tb, alg, []byte(header), []byte(payload))
}

// TestAllocs pins the per-request allocation budget: one buffer to
// decode a token; for its claims, one slice for an "aud" array of up to
// four and one for the "cnf" struct.
func TestAllocs(t *testing.T) {
	token := benchToken(t, ES256)
	tok, err := Parse(token)
	if err != nil {
		t.Fatal(err)
	}
	var c Claims
	if err := ParseClaims(tok.Payload, &c); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		max  float64
		f    func()
	}{
		{"Parse", 1, func() { _, _ = Parse(token) }},
		{"ParseClaims", 2, func() { var c Claims; _ = ParseClaims(tok.Payload, &c) }},
	}
	for _, tt := range tests {
		if got := testing.AllocsPerRun(100, tt.f); got > tt.max {
			t.Errorf("%s: %v allocations per run, budget %v", tt.name, got, tt.max)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	token := benchToken(b, ES256)
	b.ReportAllocs()
	b.SetBytes(int64(len(token)))
	for b.Loop() {
		if _, err := Parse(token); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseClaims(b *testing.B) {
	tok, err := Parse(benchToken(b, ES256))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(tok.Payload)))
	for b.Loop() {
		var c Claims
		if err := ParseClaims(tok.Payload, &c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifySignature(b *testing.B) {
	keys := testKeys(b)
	for _, alg := range []string{ES256, RS256, PS256, EdDSA} {
		b.Run(alg, func(b *testing.B) {
			tok, err := Parse(benchToken(b, alg))
			if err != nil {
				b.Fatal(err)
			}
			pub := keys[alg].pub
			b.ReportAllocs()
			for b.Loop() {
				if err := VerifySignature(alg, pub, tok.SigningInput, tok.Signature); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
