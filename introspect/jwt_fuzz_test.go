package introspect

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/jose"
)

// FuzzParseSignedAnswer checks the claims-set parser of signed answers
// against encoding/json: it never panics; whatever it accepts is valid
// JSON with no duplicate member that encoding/json reads to the same
// "iss" and "aud"; and "token_introspection", when kept, is exactly the
// JSON text of an object, which encoding/json reads to the same value
// as the member.
func FuzzParseSignedAnswer(f *testing.F) {
	seeds := []string{
		`{"iss":"https://as","aud":"rs","iat":1800000000,"token_introspection":{"active":true}}`,                           // minimal valid
		`{"iss":"https://as","aud":["a","rs"],"iat":1,"exp":2,"nbf":0.5,"token_introspection":{"active":false},"jti":"x"}`, // every member
		`{"token_introspection": {"active":true,"cnf":{"jkt":"a"}} }`,                                                      // white space around the object
		`{"token_introspection":"{\"active\":true}"}`,                                                                      // introspection as a string
		`{"token_introspection":[{"active":true}]}`,                                                                        // introspection as an array
		`{"token_introspection":{"active":false},"token_introspection":{"active":true}}`,                                   // duplicate introspection
		`{"iss":"a","\u0069ss":"b"}`,                                                                                       // duplicate spelled with an escape
		`{"x":1,"x":2}`,                                                                                                    // duplicate unknown member
		`{"iat":"1"}`,                                                                                                      // iat a string
		`{"iat":-1}`,                                                                                                       // negative iat
		`{"aud":[1]}`,                                                                                                      // aud array of numbers
		`{"aud":null}`,                                                                                                     // aud null
		`{"token_introspection":{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}`, // too deep once nested
		`{"token_introspection":{}} {}`, // trailing value
		`[{"token_introspection":{}}]`,  // not an object
		"{\"iss\":\"\xff\"}",            // invalid UTF-8
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		a, err := parseSignedAnswer(payload)
		if err != nil {
			if (errors.Is(err, errSyntax) || errors.Is(err, errTrailing)) && json.Valid(payload) {
				t.Fatalf("syntax error %v for valid JSON %q", err, payload)
			}
			return
		}
		if !json.Valid(payload) {
			t.Fatalf("accepted invalid JSON %q", payload)
		}
		dec := json.NewDecoder(bytes.NewReader(payload))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("accepted %q, encoding/json: %v", payload, err)
		}
		if v, present := m["iss"]; present {
			if s, ok := v.(string); !ok || s != a.issuer {
				t.Fatalf("iss %q, encoding/json has %#v", a.issuer, v)
			}
		} else if a.issuer != "" {
			t.Fatalf("iss %q but absent", a.issuer)
		}
		if v, present := m["aud"]; present {
			var want []string
			switch v := v.(type) {
			case string:
				want = []string{v}
			case []any:
				want = []string{}
				for _, e := range v {
					s, ok := e.(string)
					if !ok {
						t.Fatalf("accepted aud %#v", v)
					}
					want = append(want, s)
				}
			default:
				t.Fatalf("accepted aud of type %T", v)
			}
			if !slices.Equal(want, a.audience) {
				t.Fatalf("aud %q, encoding/json has %q", a.audience, want)
			}
		}
		v, present := m["token_introspection"]
		if present != (a.introspection != nil) {
			t.Fatalf("token_introspection kept %v, present %v", a.introspection != nil, present)
		}
		if !present {
			return
		}
		if _, ok := v.(map[string]any); !ok {
			t.Fatalf("kept token_introspection of type %T", v)
		}
		if a.introspection[0] != '{' || a.introspection[len(a.introspection)-1] != '}' {
			t.Fatalf("token_introspection text %q is not exactly an object", a.introspection)
		}
		var got any
		dec = json.NewDecoder(bytes.NewReader(a.introspection))
		dec.UseNumber()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("token_introspection text %q: %v", a.introspection, err)
		}
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(v)
		if !bytes.Equal(gb, wb) {
			t.Fatalf("token_introspection text %q, encoding/json has %s", a.introspection, wb)
		}
	})
}

// FuzzVerifySigned checks that no body makes a signed answer acceptable
// unless it carries, unchanged, a header and claims set our key signed:
// whatever verifySigned accepts, once surrounding white space is removed,
// has the signing input of one of the seeds, which are answers signed by
// the issuer's key (and some forgeries).
func FuzzVerifySigned(f *testing.F) {
	as := newSigningAS(f, "ES256")
	other := mustDevKey(f, "ES256", "as-1")
	env := envelope(activeClaims())
	signed := map[string]bool{}
	add := func(tok string, ours bool) {
		if ours {
			signed[tok[:strings.LastIndexByte(tok, '.')]] = true
		}
		f.Add([]byte(tok))
	}
	add(sign(f, as.key, nil, env), true)                                               // valid
	add(sign(f, as.key, nil, with(env, "aud", "rs")), true)                            // valid, aud the client
	add(sign(f, as.key, map[string]any{"typ": "JWT"}, env), true)                      // signed, wrong typ
	add(sign(f, as.key, nil, with(env, "iss", "https://evil.example.com")), true)      // signed, wrong iss
	add(sign(f, other, nil, env), false)                                               // forged: another key
	add(unsigned(f, map[string]any{"alg": "none", "typ": answerTyp}, env, nil), false) // alg none
	add(sign(f, as.key, nil, env)+" \n", true)                                         // trailing white space
	s := newServer(f, nil)
	c := mustNew(f, jwtConfig(s, newClock(), as))
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx := bounded(t, 10*time.Second)
		r, _, err := c.verifySigned(ctx, mediaTypeJWT, body)
		if err == nil && r == nil {
			t.Fatal("no Result and no error")
		}
		if err != nil {
			if r != nil {
				t.Fatal("Result with error")
			}
			if !errors.Is(err, ErrInvalidResponse) && !errors.Is(err, ErrUnavailable) {
				t.Fatalf("error %v wraps neither ErrInvalidResponse nor ErrUnavailable", err)
			}
			return
		}
		tok, perr := jose.Parse(string(bytes.TrimSpace(body)))
		if perr != nil || !signed[tok.SigningInput] {
			t.Fatalf("accepted %q, whose header and claims our key never signed", body)
		}
	})
}
