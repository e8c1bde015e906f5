package jose

import (
	"errors"
	"testing"
)

func TestParseProof(t *testing.T) {
	const ecJWK = `{"kty":"EC","crv":"P-256","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"}`
	tests := []struct {
		name    string
		header  string
		wantJWK string
		wantErr error // nil: accepted
	}{
		{"proof header", `{"typ":"dpop+jwt","alg":"ES256","jwk":` + ecJWK + `}`, ecJWK, nil},
		{"jwk with spaces kept verbatim", `{"alg":"ES256","jwk": { "kty" : "OKP" , "crv":"Ed25519","x":"AA"} }`, `{ "kty" : "OKP" , "crv":"Ed25519","x":"AA"}`, nil},
		{"no jwk", `{"typ":"dpop+jwt","alg":"ES256"}`, "", errNoJWK},
		{"jwk null", `{"alg":"ES256","jwk":null}`, "", errType},
		{"jwk string", `{"alg":"ES256","jwk":"x"}`, "", errType},
		{"two jwks", `{"alg":"ES256","jwk":` + ecJWK + `,"jwk":` + ecJWK + `}`, "", errDup},
		{"private EC", `{"alg":"ES256","jwk":{"kty":"EC","d":"AA"}}`, "", errPrivate},
		{"private RSA member", `{"alg":"RS256","jwk":{"kty":"RSA","n":"AA","e":"AQAB","qi":"AA"}}`, "", errPrivate},
		{"symmetric", `{"alg":"ES256","jwk":{"kty":"oct","k":"AA"}}`, "", errPrivate},
		{"private p", `{"alg":"RS256","jwk":{"kty":"RSA","n":"AA","e":"AQAB","p":"AA"}}`, "", errPrivate},
		{"private q", `{"alg":"RS256","jwk":{"kty":"RSA","n":"AA","e":"AQAB","q":"AA"}}`, "", errPrivate},
		{"private dp", `{"alg":"RS256","jwk":{"kty":"RSA","n":"AA","e":"AQAB","dp":"AA"}}`, "", errPrivate},
		{"private dq", `{"alg":"RS256","jwk":{"kty":"RSA","n":"AA","e":"AQAB","dq":"AA"}}`, "", errPrivate},
		{"private oth", `{"alg":"RS256","jwk":{"kty":"RSA","n":"AA","e":"AQAB","oth":[]}}`, "", errPrivate},
		{"private member via escape", `{"alg":"ES256","jwk":{"kty":"EC","\u0064":"AA"}}`, "", errPrivate},
		{"duplicate jwk member", `{"alg":"ES256","jwk":{"kty":"EC","x":"A","x":"B"}}`, "", errDup},
		{"too many jwk members", `{"alg":"ES256","jwk":{"a":1,"b":1,"c":1,"d1":1,"e":1,"f":1,"g":1,"h":1,"i":1,"j":1,"k1":1,"l":1,"m":1,"n":1,"o":1,"p1":1,"q1":1}}`, "", errTooMany},
		{"jku", `{"alg":"ES256","jwk":` + ecJWK + `,"jku":"https://x"}`, "", errKeyParam},
		{"crit", `{"alg":"ES256","jwk":` + ecJWK + `,"crit":["x"]}`, "", errCrit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, jwk, err := ParseProof(b64.EncodeToString([]byte(tt.header)) + ".e30.AA")
			if tt.wantErr != nil {
				if !errors.Is(err, ErrMalformed) || !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseProof = %v, want ErrMalformed wrapping %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseProof = %v", err)
			}
			if jwk != tt.wantJWK || tok.Header.Alg == "" {
				t.Fatalf("jwk = %q, want %q (header %+v)", jwk, tt.wantJWK, tok.Header)
			}
		})
	}
	// Parse, for access tokens, still refuses a jwk.
	if _, err := Parse(b64.EncodeToString([]byte(`{"alg":"ES256","jwk":`+ecJWK+`}`)) + ".e30.AA"); !errors.Is(err, errKeyParam) {
		t.Fatalf("Parse with jwk = %v, want errKeyParam", err)
	}
}

func TestParseProofClaims(t *testing.T) {
	var c ProofClaims
	err := ParseProofClaims([]byte(`{"jti":"j","htm":"GET","htu":"https://a/b","iat":1700000000,"ath":"x","nonce":"n","other":[1]}`), &c)
	if err != nil {
		t.Fatal(err)
	}
	if c.JTI != "j" || c.HTM != "GET" || c.HTU != "https://a/b" || c.IssuedAt != date(1700000000) || c.ATH != "x" || c.Nonce != "n" {
		t.Fatalf("claims = %+v", c)
	}
	for _, bad := range []string{
		`{"jti":1}`, `{"htm":["GET"]}`, `{"iat":"1"}`, `{"jti":"a","jti":"b"}`, `{"nonce":{}}`, `[]`, `{"htu":"a"`,
		`{"htm":"GET","htm":"POST"}`, `{"htu":"https://a/","htu":"https://b/"}`, `{"iat":1,"iat":2}`,
		`{"ath":"a","ath":"b"}`, `{"nonce":"a","nonce":"b"}`,
	} {
		var c ProofClaims
		if err := ParseProofClaims([]byte(bad), &c); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseProofClaims(%s) = %v, want ErrMalformed", bad, err)
		}
	}
}

func FuzzParseProof(f *testing.F) {
	f.Add(b64.EncodeToString([]byte(`{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}}`)) + ".e30.AA")
	f.Add(b64.EncodeToString([]byte(`{"alg":"ES256","jwk":{"d":1}}`)) + ".e30.AA")
	f.Fuzz(func(t *testing.T, token string) {
		_, jwk, err := ParseProof(token)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		members, ok := jsonObject([]byte(jwk))
		if !ok {
			t.Fatalf("jwk %q is not a JSON object", jwk)
		}
		seen := map[string]bool{}
		for _, m := range members {
			switch m.name {
			case "d", "p", "q", "dp", "dq", "qi", "oth", "k":
				t.Fatalf("accepted jwk with private member %q", m.name)
			}
			if seen[m.name] {
				t.Fatalf("accepted jwk with duplicate %q", m.name)
			}
			seen[m.name] = true
		}
	})
}
