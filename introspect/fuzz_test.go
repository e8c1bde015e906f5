package introspect

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"unicode/utf8"
)

// FuzzParseResponse checks the strict parser against encoding/json: it
// never panics; whatever it accepts is valid JSON that encoding/json reads
// to the same values, with "active" a boolean and every typed member of
// the right type; and a syntax error is reported only for invalid JSON.
func FuzzParseResponse(f *testing.F) {
	seeds := []string{
		`{"active":true}`,   // minimal active
		`{"active":false}`,  // minimal inactive
		`{"active":"true"}`, // active as a string: rejected
		`{"active":1}`,      // active as a number
		`{"sub":"x"}`,       // active missing
		`{"active":true,"iss":"https://as","sub":"s","client_id":"c","scope":"a b","aud":["x","y"],"exp":1800003600,"iat":1,"nbf":0.5,"cnf":{"jkt":"abc"}}`, // every member
		`{"active":true,"aud":"x"}`,                   // aud as a string
		`{"active":true,"active":false}`,              // duplicate active
		`{"active":true,"cnf":{"jkt":"a","jkt":"b"}}`, // duplicate inside cnf
		`{"active":true,"x":1,"x":2}`,                 // duplicate unknown member
		`{"active":false,"\u0061ctive":true}`,         // duplicate spelled with an escape
		`{"active":true,"exp":1e400}`,                 // number overflow
		`{"active":true,"exp":-0}`,                    // negative zero
		`{"active":true,"sub":"\ud800"}`,              // lone surrogate escape
		"{\"active\":true,\"sub\":\"\xff\"}",          // invalid UTF-8
		`{"active":true,"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`, // too deep
		`{"active":true} `,  // trailing white space
		`{"active":true}{}`, // trailing value
		`{"active":true,}`,  // trailing comma
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := parseResponse(body)
		if err != nil {
			if r != nil {
				t.Fatal("result with error")
			}
			if (errors.Is(err, errSyntax) || errors.Is(err, errTrailing)) && json.Valid(body) {
				t.Fatalf("syntax error %v for valid JSON %q", err, body)
			}
			if errors.Is(err, errUTF8) && utf8.Valid(body) {
				t.Fatalf("UTF-8 error for valid UTF-8 %q", body)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		// UseNumber: unknown members may hold numbers beyond float64,
		// which the parser rightly skips.
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("accepted %q, encoding/json: %v", body, err)
		}
		if a, ok := m["active"].(bool); !ok || a != r.Active {
			t.Fatalf("active %v, encoding/json has %#v", r.Active, m["active"])
		}
		strs := map[string]string{"iss": r.Issuer, "sub": r.Subject, "client_id": r.ClientID, "scope": r.Scope, "username": r.Username, "token_type": r.TokenType}
		for name, got := range strs {
			v, present := m[name]
			if !present {
				if got != "" {
					t.Fatalf("%s = %q but absent", name, got)
				}
				continue
			}
			if s, ok := v.(string); !ok || s != got {
				t.Fatalf("%s = %q, encoding/json has %#v", name, got, v)
			}
		}
		if _, present := m["iss"]; present != r.hasIssuer {
			t.Fatalf("hasIssuer %v, iss present %v", r.hasIssuer, present)
		}
		switch v := m["aud"].(type) {
		case nil:
			if r.Audience != nil {
				t.Fatalf("aud %q but absent", r.Audience)
			}
		case string:
			if !slices.Equal(r.Audience, []string{v}) {
				t.Fatalf("aud %q, encoding/json has %q", r.Audience, v)
			}
		case []any:
			if len(v) != len(r.Audience) {
				t.Fatalf("aud %q, encoding/json has %#v", r.Audience, v)
			}
			for i, e := range v {
				if s, ok := e.(string); !ok || s != r.Audience[i] {
					t.Fatalf("aud %q, encoding/json has %#v", r.Audience, v)
				}
			}
		default:
			t.Fatalf("accepted aud of type %T", v)
		}
		for name, got := range map[string]int64{"exp": r.ExpiresAt.Unix(), "iat": r.IssuedAt.Unix(), "nbf": r.NotBefore.Unix()} {
			v, present := m[name]
			if !present {
				continue
			}
			num, ok := v.(json.Number)
			n, err := num.Float64()
			if !ok || err != nil || n < 0 || n > maxNumericDate || int64(n) != got {
				t.Fatalf("%s = %d, encoding/json has %#v", name, got, v)
			}
		}
		if v, present := m["cnf"]; present {
			cnf, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("accepted cnf of type %T", v)
			}
			if j, present := cnf["jkt"]; present {
				if s, ok := j.(string); !ok || s != r.JKT {
					t.Fatalf("jkt %q, encoding/json has %#v", r.JKT, j)
				}
			} else if r.JKT != "" {
				t.Fatalf("jkt %q but absent", r.JKT)
			}
		} else if r.JKT != "" {
			t.Fatalf("jkt %q without cnf", r.JKT)
		}
	})
}
