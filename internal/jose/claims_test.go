package jose

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var claimsOpts = cmp.Options{cmp.AllowUnexported(NumericDate{}), cmpopts.EquateEmpty()}

func date(sec float64) NumericDate { return NumericDate{seconds: sec, Valid: true} }

func TestParseClaims(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    Claims
		wantErr error // nil: accepted
	}{
		{"empty", `{}`, Claims{}, nil},
		{"RFC 9068 access token", `{"iss":"https://as.example","sub":"alice","aud":"https://api.example","exp":1700000600,"nbf":1700000000,"iat":1700000000,"jti":"j1","client_id":"c1","scope":"read write","acr":"urn:mace:incommon:iap:silver","auth_time":1699999999}`,
			Claims{Issuer: "https://as.example", Subject: "alice", Audience: []string{"https://api.example"},
				ExpiresAt: date(1700000600), NotBefore: date(1700000000), IssuedAt: date(1700000000),
				JTI: "j1", ClientID: "c1", Scope: "read write", ACR: "urn:mace:incommon:iap:silver", AuthTime: date(1699999999)}, nil},
		{"aud array", `{"aud":["a","b"]}`, Claims{Audience: []string{"a", "b"}}, nil},
		{"aud empty array", `{"aud":[]}`, Claims{}, nil},
		{"scope array", `{"scope":["a","b"]}`, Claims{ScopeList: []string{"a", "b"}}, nil},
		{"scp string", `{"scp":"a b"}`, Claims{Scp: []string{"a b"}}, nil},
		{"scp array", `{"scp":["a","b"]}`, Claims{Scp: []string{"a", "b"}}, nil},
		{"cnf jkt", `{"cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}`, Claims{CNF: &Confirmation{JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}, nil},
		{"cnf x5t#S256", `{"cnf":{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0"}}`, Claims{CNF: &Confirmation{X5TS256: "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0"}}, nil},
		{"cnf jkt and x5t#S256", `{"cnf":{"jkt":"j","x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0"}}`, Claims{CNF: &Confirmation{JKT: "j", X5TS256: "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0"}}, nil},
		{"cnf x5t#S256 escaped", `{"cnf":{"x5t\u0023S256":"\u0062wcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0"}}`, Claims{CNF: &Confirmation{X5TS256: "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0"}}, nil},
		{"cnf with unknown methods only", `{"cnf":{"x5t":"abc","jwk":{"kty":"EC"}}}`, Claims{CNF: &Confirmation{}}, nil},
		{"null x5t#S256", `{"cnf":{"x5t#S256":null}}`, Claims{CNF: &Confirmation{}}, nil},
		{"fractional dates", `{"exp":1700000600.5,"iat":0.25}`, Claims{ExpiresAt: date(1700000600.5), IssuedAt: date(0.25)}, nil},
		{"exponent date", `{"exp":1.7e9}`, Claims{ExpiresAt: date(1.7e9)}, nil},
		{"zero and minus zero", `{"exp":0,"nbf":-0}`, Claims{ExpiresAt: date(0), NotBefore: date(0)}, nil},
		{"last accepted date", `{"exp":253402300799}`, Claims{ExpiresAt: date(maxNumericDate)}, nil},
		{"nulls are absent", `{"iss":null,"aud":null,"exp":null,"scope":null,"scp":null,"cnf":null,"auth_time":null}`, Claims{}, nil},
		{"null jkt", `{"cnf":{"jkt":null}}`, Claims{CNF: &Confirmation{}}, nil},
		{"unknown claims of any type", `{"sub":"a","x":{"y":[1,2,{"z":null}]},"n":-1.5E+3,"t":true}`, Claims{Subject: "a"}, nil},
		{"duplicate unknown claim", `{"x":1,"x":2}`, Claims{}, nil},
		{"escaped strings", `{"sub":"\u0061\n","iss":"https:\/\/as"}`, Claims{Subject: "a\n", Issuer: "https://as"}, nil},

		{"exp as string", `{"exp":"1700000600"}`, Claims{}, errType},
		{"exp as bool", `{"exp":true}`, Claims{}, errType},
		{"exp negative", `{"exp":-1}`, Claims{}, errRange},
		{"exp after year 9999", `{"exp":253402300800}`, Claims{}, errRange},
		{"exp overflows float64", `{"exp":1e400}`, Claims{}, errRange},
		{"iss number", `{"iss":1}`, Claims{}, errType},
		{"sub object", `{"sub":{}}`, Claims{}, errType},
		{"aud number", `{"aud":1}`, Claims{}, errType},
		{"aud array of numbers", `{"aud":["a",1]}`, Claims{}, errType},
		{"aud array with null", `{"aud":["a",null]}`, Claims{}, errType},
		{"aud nested array", `{"aud":[["a"]]}`, Claims{}, errType},
		{"scope number", `{"scope":1}`, Claims{}, errType},
		{"scope array of objects", `{"scope":[{}]}`, Claims{}, errType},
		{"cnf string", `{"cnf":"jkt"}`, Claims{}, errType},
		{"jkt number", `{"cnf":{"jkt":1}}`, Claims{}, errType},
		{"duplicate iss", `{"iss":"a","iss":"b"}`, Claims{}, errDup},
		{"duplicate exp", `{"exp":1,"exp":2000000000}`, Claims{}, errDup},
		{"duplicate exp with null", `{"exp":null,"exp":1}`, Claims{}, errDup},
		{"duplicate aud via escape", `{"aud":"a","\u0061ud":"b"}`, Claims{}, errDup},
		{"duplicate scope string and array", `{"scope":"a","scope":["b"]}`, Claims{}, errDup},
		{"duplicate cnf", `{"cnf":{},"cnf":{"jkt":"x"}}`, Claims{}, errDup},
		{"duplicate jkt", `{"cnf":{"jkt":"a","jkt":"b"}}`, Claims{}, errDup},
		{"duplicate x5t#S256", `{"cnf":{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0","x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0"}}`, Claims{}, errDup},
		{"x5t#S256 number", `{"cnf":{"x5t#S256":1}}`, Claims{}, errType},
		{"x5t#S256 array", `{"cnf":{"x5t#S256":["bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0"]}}`, Claims{}, errType},
		{"x5t#S256 too short", `{"cnf":{"x5t#S256":"abc"}}`, Claims{}, errThumbprint},
		{"x5t#S256 empty", `{"cnf":{"x5t#S256":""}}`, Claims{}, errThumbprint},
		{"x5t#S256 padded", `{"cnf":{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0="}}`, Claims{}, errThumbprint},
		{"x5t#S256 standard alphabet", `{"cnf":{"x5t#S256":"bwcK0esc3ACC3DB2Y5/lESsXE8o9ltc05O89jdN+dg0"}}`, Claims{}, errThumbprint},
		{"x5t#S256 hex", `{"cnf":{"x5t#S256":"6f070ad1eb1cdc0082dc30766397e5112b1713ca3d96d734e3bf3d8dd37e760d"}}`, Claims{}, errThumbprint},
		{"x5t#S256 SHA-1 length", `{"cnf":{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o"}}`, Claims{}, errThumbprint},
		// RFC 8705 §3.1's example: its last character carries set
		// unused bits, which no encoder of a digest produces.
		{"x5t#S256 non-canonical", `{"cnf":{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}`, Claims{}, errThumbprint},
		{"too deep", `{"x":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`, Claims{}, errTooDeep},
		{"not an object", `[]`, Claims{}, errSyntax},
		{"trailing data", `{} {}`, Claims{}, errTrailing},
		{"invalid UTF-8", "{\"sub\":\"\xfe\"}", Claims{}, errUTF8},
		{"truncated", `{"sub":"a"`, Claims{}, errSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Claims
			err := ParseClaims([]byte(tt.payload), &got)
			if tt.wantErr != nil {
				if !errors.Is(err, ErrMalformed) || !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseClaims(%s) = %v, want ErrMalformed wrapping %q", tt.payload, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseClaims(%s) = %v", tt.payload, err)
			}
			if diff := cmp.Diff(tt.want, got, claimsOpts); diff != "" {
				t.Errorf("ParseClaims(%s) mismatch (-want +got):\n%s", tt.payload, diff)
			}
			// The table agrees with the reference reading.
			ref, ok := referenceClaims([]byte(tt.payload))
			if !ok {
				t.Fatalf("reference refuses %s", tt.payload)
			}
			if diff := cmp.Diff(ref, got, claimsOpts); diff != "" {
				t.Errorf("differs from reference (-ref +got):\n%s", diff)
			}
		})
	}
}

func TestNumericDateTime(t *testing.T) {
	tests := []struct {
		d    NumericDate
		want time.Time
	}{
		{NumericDate{}, time.Time{}},
		{date(0), time.Unix(0, 0)},
		{date(1700000000.5), time.Unix(1700000000, 5e8)},
		{date(maxNumericDate), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
	}
	for _, tt := range tests {
		if got := tt.d.Time(); !got.Equal(tt.want) {
			t.Errorf("%+v.Time() = %v, want %v", tt.d, got, tt.want)
		}
	}
}

// referenceClaims reads payload the way ParseClaims documents, using
// encoding/json for all of the JSON: same claims, same types, null as
// absent, duplicates of read claims refused, at most 32 levels of nesting,
// valid UTF-8 only.
func referenceClaims(payload []byte) (Claims, bool) {
	var c Claims
	members, ok := jsonObject(payload)
	if !ok || !utf8.Valid(payload) || jsonDepth(payload) > maxDepth {
		return c, false
	}
	str := func(v json.RawMessage, dst *string) bool {
		return v[0] == '"' && json.Unmarshal(v, dst) == nil
	}
	list := func(v json.RawMessage, dst *[]string) bool {
		if v[0] == '"' {
			*dst = make([]string, 1)
			return str(v, &(*dst)[0])
		}
		var elems []json.RawMessage
		if v[0] != '[' || json.Unmarshal(v, &elems) != nil {
			return false
		}
		*dst = make([]string, len(elems))
		for i, e := range elems {
			if !str(e, &(*dst)[i]) {
				return false
			}
		}
		return true
	}
	date := func(v json.RawMessage, dst *NumericDate) bool {
		if v[0] != '-' && (v[0] < '0' || v[0] > '9') {
			return false
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || f < 0 || f > maxNumericDate {
			return false
		}
		*dst = date(f)
		return true
	}
	seen := map[string]bool{}
	for _, m := range members {
		v := m.value
		known := true
		switch m.name {
		case "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope", "scp", "acr", "auth_time", "cnf":
		default:
			known = false
		}
		if !known {
			continue
		}
		if seen[m.name] {
			return c, false
		}
		seen[m.name] = true
		if string(v) == "null" {
			continue
		}
		ok := true
		switch m.name {
		case "iss":
			ok = str(v, &c.Issuer)
		case "sub":
			ok = str(v, &c.Subject)
		case "jti":
			ok = str(v, &c.JTI)
		case "client_id":
			ok = str(v, &c.ClientID)
		case "acr":
			ok = str(v, &c.ACR)
		case "aud":
			ok = list(v, &c.Audience)
		case "scp":
			ok = list(v, &c.Scp)
		case "scope":
			if v[0] == '[' {
				ok = list(v, &c.ScopeList)
			} else {
				ok = str(v, &c.Scope)
			}
		case "exp":
			ok = date(v, &c.ExpiresAt)
		case "nbf":
			ok = date(v, &c.NotBefore)
		case "iat":
			ok = date(v, &c.IssuedAt)
		case "auth_time":
			ok = date(v, &c.AuthTime)
		case "cnf":
			inner, isObj := jsonObject(v)
			if !isObj {
				return c, false
			}
			c.CNF = new(Confirmation)
			jkt, x5t := false, false
			for _, im := range inner {
				switch im.name {
				case "jkt":
					if jkt {
						return c, false
					}
					jkt = true
					if string(im.value) != "null" && !str(im.value, &c.CNF.JKT) {
						return c, false
					}
				case "x5t#S256":
					if x5t {
						return c, false
					}
					x5t = true
					if string(im.value) == "null" {
						continue
					}
					if !str(im.value, &c.CNF.X5TS256) {
						return c, false
					}
					// The independent reading: encoding/base64's strict
					// unpadded base64url, and a SHA-256 digest's length.
					b, err := base64.RawURLEncoding.Strict().DecodeString(c.CNF.X5TS256)
					if err != nil || len(b) != sha256.Size {
						return c, false
					}
				}
			}
		}
		if !ok {
			return c, false
		}
	}
	return c, true
}

// FuzzParseClaims checks ParseClaims against referenceClaims, which reads
// the same rules with encoding/json: same verdict, same claims.
func FuzzParseClaims(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"iss":"https://as.example","sub":"alice","aud":["a","b"],"exp":1700000600,"scope":"read"}`,
		`{"exp":1.5e9,"nbf":null,"cnf":{"jkt":"x","y":[1,{"z":"\u00e9"}]}}`,
		`{"cnf":{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0"}}`,      // canonical thumbprint
		`{"cnf":{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}`,      // set trailing bits (RFC 8705's example)
		`{"cnf":{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0=="}}`,    // padded
		`{"cnf":{"jkt":"a","x5t#S256":null,"x5t":"b"}}`,                           // null thumbprint beside jkt and SHA-1 x5t
		`{"cnf":{"x5t#S256":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\u0041"}}`, // escaped character
		`{"scope":["a"],"scp":"b","x":{"y":[[[]]]}}`,
		`{"iss":"a","iss":"b"}`, `{"exp":"1"}`, `{"aud":[null]}`, "{\"sub\":\"\xff\"}",
		`{"sub":"\ud800"}`, `{"exp":1e400}`, `[{}]`, ` {"a" : -0.0e-0 } `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var got Claims
		err := ParseClaims(payload, &got)
		want, ok := referenceClaims(payload)
		switch {
		case err == nil && !ok:
			t.Fatalf("ParseClaims accepted %q, which the reference refuses", payload)
		case err != nil && ok:
			t.Fatalf("ParseClaims refused %q (%v), which the reference accepts", payload, err)
		case err != nil && !errors.Is(err, ErrMalformed):
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		case err == nil:
			if diff := cmp.Diff(want, got, claimsOpts); diff != "" {
				t.Fatalf("ParseClaims(%q) differs from reference (-ref +got):\n%s", payload, diff)
			}
		}
	})
}

func TestThumbprintSHA256(t *testing.T) {
	der := []byte("not really a certificate, but bytes all the same")
	sum := sha256.Sum256(der)
	enc := base64.RawURLEncoding.EncodeToString(sum[:])
	got, ok := ThumbprintSHA256(enc)
	if !ok || got != sum {
		t.Fatalf("ThumbprintSHA256(%q) = %x, %v; want %x, true", enc, got, ok, sum)
	}
	for _, bad := range []string{
		"", enc[:42], enc + "A", enc + "=", strings.ReplaceAll(enc, "-", "+"),
		enc[:42] + "1", // set unused bits
		"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2", // RFC 8705 §3.1's example, non-canonical
		strings.Repeat("A", 42) + "\x00",
	} {
		if _, ok := ThumbprintSHA256(bad); ok && bad != enc {
			t.Errorf("ThumbprintSHA256(%q) accepted", bad)
		}
	}
}

func TestParseConfirmation(t *testing.T) {
	const x5t = "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0"
	tests := []struct {
		name    string
		payload string
		want    *Confirmation
		wantErr error
	}{
		{"none", `{"active":true,"scope":"a"}`, nil, nil},
		{"null", `{"cnf":null}`, nil, nil},
		{"x5t#S256", `{"active":true,"cnf":{"x5t#S256":"` + x5t + `"},"exp":1}`, &Confirmation{X5TS256: x5t}, nil},
		{"both", `{"cnf":{"jkt":"j","x5t#S256":"` + x5t + `","other":{}}}`, &Confirmation{JKT: "j", X5TS256: x5t}, nil},
		{"other members of any type", `{"exp":"soon","cnf":{},"x":[1]}`, &Confirmation{}, nil},
		{"malformed x5t#S256", `{"cnf":{"x5t#S256":"abc"}}`, nil, errThumbprint},
		{"x5t#S256 number", `{"cnf":{"x5t#S256":7}}`, nil, errType},
		{"cnf array", `{"cnf":[]}`, nil, errType},
		{"duplicate cnf", `{"cnf":{},"cnf":{}}`, nil, errDup},
		{"not an object", `[]`, nil, errSyntax},
		{"trailing data", `{} x`, nil, errTrailing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfirmation([]byte(tt.payload))
			if tt.wantErr != nil {
				if !errors.Is(err, ErrMalformed) || !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseConfirmation(%s) = %v, want ErrMalformed wrapping %q", tt.payload, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfirmation(%s) = %v", tt.payload, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseConfirmation(%s) (-want +got):\n%s", tt.payload, diff)
			}
		})
	}
}

// FuzzThumbprintSHA256 checks ThumbprintSHA256 against encoding/base64's
// strict unpadded base64url: same verdict, same digest, and an accepted
// value is the one encoding of its digest.
func FuzzThumbprintSHA256(f *testing.F) {
	for _, s := range []string{
		"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0",  // canonical
		"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2",  // RFC 8705's example: unused bits set
		"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0=", // padded
		"bwcK0esc3ACC3DB2Y5/lESsXE8o9ltc05O89jdN+dg0",  // standard alphabet
		"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg",   // one short
		"", // empty
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ThumbprintSHA256(s)
		b, err := base64.RawURLEncoding.Strict().DecodeString(s)
		want := err == nil && len(b) == sha256.Size && !strings.ContainsAny(s, "\r\n")
		if ok != want {
			t.Fatalf("ThumbprintSHA256(%q) ok=%v, encoding/base64 says %v (%v)", s, ok, want, err)
		}
		if ok && (string(got[:]) != string(b) || base64.RawURLEncoding.EncodeToString(got[:]) != s) {
			t.Fatalf("ThumbprintSHA256(%q) = %x, want %x, the one encoding of it", s, got, b)
		}
	})
}

// FuzzParseConfirmation checks that ParseConfirmation reads an
// introspection answer's "cnf" as ParseClaims reads a JWT's: same
// verdict, same confirmation.
func FuzzParseConfirmation(f *testing.F) {
	for _, s := range []string{
		`{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0"}`,           // certificate-bound
		`{"jkt":"a","x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0"}`, // both
		`{"x5t#S256":"abc"}`,    // too short
		`{"x5t#S256":1}`,        // not a string
		`{"x5t":"a","jwk":{}}`,  // unknown methods only
		`"x5t#S256"`,            // not an object
		`null`,                  // absent
		`{"x5t#S256":null}`,     // null member
		`{"jkt":"a","jkt":"b"}`, // duplicate
		`{"x5t\u0023S256":"x"}`, // escaped name
		`{"a":[{"b":[[]]}]}`,    // nesting
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cnf string) {
		payload := []byte(`{"active":true,"cnf":` + cnf + `}`)
		got, err := ParseConfirmation(payload)
		if !json.Valid([]byte(cnf)) {
			// Not one JSON value: it may add members ParseClaims reads
			// and ParseConfirmation only skips. No panic is all.
			return
		}
		var c Claims
		cerr := ParseClaims(payload, &c)
		if (err == nil) != (cerr == nil) {
			t.Fatalf("cnf %q: ParseConfirmation %v, ParseClaims %v", cnf, err, cerr)
		}
		if err == nil {
			if diff := cmp.Diff(c.CNF, got); diff != "" {
				t.Fatalf("cnf %q: (-ParseClaims +ParseConfirmation):\n%s", cnf, diff)
			}
		}
	})
}
