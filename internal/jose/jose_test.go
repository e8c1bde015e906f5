package jose

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unsafe"
)

func TestParse(t *testing.T) {
	header := `{"alg":"ES256","kid":"k1","typ":"at+jwt"}`
	payload := `{"sub":"alice"}`
	sig := []byte{1, 2, 3, 4, 5}
	h, p, s := b64.EncodeToString([]byte(header)), b64.EncodeToString([]byte(payload)), b64.EncodeToString(sig)
	good := h + "." + p + "." + s

	tok, err := Parse(good)
	if err != nil {
		t.Fatalf("Parse(valid) = %v", err)
	}
	if want := (Header{Alg: ES256, Kid: "k1", Typ: "at+jwt"}); tok.Header != want {
		t.Errorf("Header = %+v, want %+v", tok.Header, want)
	}
	if tok.SigningInput != h+"."+p {
		t.Errorf("SigningInput = %q, want %q", tok.SigningInput, h+"."+p)
	}
	if string(tok.Payload) != payload {
		t.Errorf("Payload = %q, want %q", tok.Payload, payload)
	}
	if !bytes.Equal(tok.Signature, sig) {
		t.Errorf("Signature = %x, want %x", tok.Signature, sig)
	}
	// The payload and signature are capped, so appending to one cannot
	// overwrite the other.
	if cap(tok.Payload) != len(tok.Payload) || cap(tok.Signature) != len(tok.Signature) {
		t.Errorf("Payload/Signature capacities %d/%d exceed their lengths", cap(tok.Payload), cap(tok.Signature))
	}
	// A supported alg is the package constant, not a view of the buffer.
	if unsafe.StringData(tok.Header.Alg) != unsafe.StringData(ES256) {
		t.Error("Header.Alg is not interned")
	}

	bad := []struct {
		name  string
		token string
	}{
		{"empty", ""},
		{"one segment", h},
		{"two segments", h + "." + p},
		{"four segments", good + "." + s},
		{"JWE-like five segments", h + ".." + p + ".." + s},
		{"empty header", "." + p + "." + s},
		{"dots only", ".."},
		{"padded header", base64.URLEncoding.EncodeToString([]byte(header)) + "." + p + "." + s},
		{"padded signature", h + "." + p + "." + base64.URLEncoding.EncodeToString(sig)},
		{"standard alphabet", h + "." + p + "." + base64.RawStdEncoding.EncodeToString([]byte{0xFB, 0xFF})},
		{"payload length 1 mod 4", h + ".AAAAA." + s},
		{"non-zero trailing bits", h + "." + p + ".AR"},
		{"space in payload", h + "." + p[:4] + " " + p[4:] + "." + s},
		{"header not JSON", b64.EncodeToString([]byte("alg=ES256")) + "." + p + "." + s},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(tt.token); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestParseHeader(t *testing.T) {
	deep := `{"alg":"ES256","x":` + strings.Repeat("[", 31) + strings.Repeat("]", 31) + `}`
	tooDeep := `{"alg":"ES256","x":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`
	tests := []struct {
		name    string
		header  string
		want    Header
		wantErr error // nil: accepted
	}{
		{"minimal", `{"alg":"ES256"}`, Header{Alg: ES256}, nil},
		{"all read members", `{"typ":"at+jwt","kid":"a b","alg":"RS256"}`, Header{Alg: RS256, Kid: "a b", Typ: "at+jwt"}, nil},
		{"white space", " \t\r\n{ \"alg\" : \"EdDSA\" } \n", Header{Alg: EdDSA}, nil},
		{"unknown alg kept as text", `{"alg":"XX1"}`, Header{Alg: "XX1"}, nil},
		{"escaped alg", `{"alg":"ES\u0032\u0035\u0036"}`, Header{Alg: ES256}, nil},
		{"escaped kid", `{"alg":"ES256","kid":"a\"b\\c\/d\u00e9"}`, Header{Alg: ES256, Kid: "a\"b\\c/dé"}, nil},
		{"UTF-8 kid", `{"alg":"ES256","kid":"ключ"}`, Header{Alg: ES256, Kid: "ключ"}, nil},
		{"registered members of the right type", `{"alg":"ES256","cty":"JWT","x5t":"AA","x5t#S256":"AA","b64":true}`, Header{Alg: ES256}, nil},
		{"unknown members of any type", `{"alg":"ES256","a":1.5e-3,"b":[true,false,null,{}],"c":{"d":"e"},"e":-0}`, Header{Alg: ES256}, nil},
		{"nesting at the limit", deep, Header{Alg: ES256}, nil},

		{"no alg", `{"kid":"k"}`, Header{}, errNoAlg},
		{"empty object", `{}`, Header{}, errNoAlg},
		{"alg null", `{"alg":null}`, Header{}, errType},
		{"alg number", `{"alg":256}`, Header{}, errType},
		{"kid number", `{"alg":"ES256","kid":1}`, Header{}, errType},
		{"typ array", `{"alg":"ES256","typ":["JWT"]}`, Header{}, errType},
		{"cty number", `{"alg":"ES256","cty":1}`, Header{}, errType},
		{"x5t#S256 object", `{"alg":"ES256","x5t#S256":{}}`, Header{}, errType},
		{"b64 string", `{"alg":"ES256","b64":"true"}`, Header{}, errType},
		{"b64 false", `{"alg":"ES256","b64":false}`, Header{}, errB64},
		{"duplicate alg", `{"alg":"ES256","alg":"RS256"}`, Header{}, errDup},
		{"duplicate alg via escape", `{"alg":"ES256","\u0061lg":"RS256"}`, Header{}, errDup},
		{"duplicate kid", `{"alg":"ES256","kid":"a","kid":"b"}`, Header{}, errDup},
		{"duplicate typ", `{"typ":"a","alg":"ES256","typ":"b"}`, Header{}, errDup},
		{"duplicate cty", `{"alg":"ES256","cty":"a","cty":"b"}`, Header{}, errDup},
		{"duplicate b64", `{"alg":"ES256","b64":true,"b64":true}`, Header{}, errDup},
		{"crit", `{"alg":"ES256","crit":["exp"],"exp":1}`, Header{}, errCrit},
		{"crit empty", `{"alg":"ES256","crit":[]}`, Header{}, errCrit},
		{"crit via escape", `{"alg":"ES256","\u0063rit":["x"]}`, Header{}, errCrit},
		{"jwk", `{"alg":"ES256","jwk":{"kty":"EC"}}`, Header{}, errKeyParam},
		{"jwk via escape", `{"alg":"ES256","j\u0077k":{}}`, Header{}, errKeyParam},
		{"jku", `{"alg":"ES256","jku":"https://attacker.example/jwks"}`, Header{}, errKeyParam},
		{"x5u", `{"alg":"ES256","x5u":"https://attacker.example/cert"}`, Header{}, errKeyParam},
		{"x5c", `{"alg":"ES256","x5c":["MIIB"]}`, Header{}, errKeyParam},
		{"too deep", tooDeep, Header{}, errTooDeep},

		{"not an object", `["alg","ES256"]`, Header{}, errSyntax},
		{"string", `"ES256"`, Header{}, errSyntax},
		{"empty", ``, Header{}, errSyntax},
		{"trailing comma", `{"alg":"ES256",}`, Header{}, errSyntax},
		{"trailing data", `{"alg":"ES256"}{}`, Header{}, errTrailing},
		{"trailing garbage", `{"alg":"ES256"}x`, Header{}, errTrailing},
		{"unterminated", `{"alg":"ES256"`, Header{}, errSyntax},
		{"unterminated string", `{"alg":"ES256`, Header{}, errSyntax},
		{"single quotes", `{'alg':'ES256'}`, Header{}, errSyntax},
		{"unquoted name", `{alg:"ES256"}`, Header{}, errSyntax},
		{"leading zero", `{"alg":"ES256","n":01}`, Header{}, errSyntax},
		{"plus sign", `{"alg":"ES256","n":+1}`, Header{}, errSyntax},
		{"bare dot", `{"alg":"ES256","n":1.}`, Header{}, errSyntax},
		{"bad exponent", `{"alg":"ES256","n":1e}`, Header{}, errSyntax},
		{"NaN", `{"alg":"ES256","n":NaN}`, Header{}, errSyntax},
		{"truncated literal", `{"alg":"ES256","n":tru}`, Header{}, errSyntax},
		{"capitalised literal", `{"alg":"ES256","n":True}`, Header{}, errSyntax},
		{"control character in string", "{\"alg\":\"ES256\",\"kid\":\"a\tb\"}", Header{}, errSyntax},
		{"bad escape", `{"alg":"ES256","kid":"\x41"}`, Header{}, errSyntax},
		{"short unicode escape", `{"alg":"ES256","kid":"\u12"}`, Header{}, errSyntax},
		{"invalid UTF-8 in kid", "{\"alg\":\"ES256\",\"kid\":\"\xff\"}", Header{}, errUTF8},
		{"invalid UTF-8 in unread member", "{\"alg\":\"ES256\",\"x\":\"\xc3\"}", Header{}, errUTF8},
		{"invalid UTF-8 in name", "{\"alg\":\"ES256\",\"\xed\xa0\x80\":1}", Header{}, errUTF8},
		{"comment", `{"alg":"ES256"/*x*/}`, Header{}, errSyntax},
		{"missing colon", `{"alg" "ES256"}`, Header{}, errSyntax},
		{"missing comma", `{"alg":"ES256" "kid":"k"}`, Header{}, errSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := b64.EncodeToString([]byte(tt.header)) + ".e30.AA"
			tok, err := Parse(token)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Parse(%s) = %v", tt.header, err)
				}
				if tok.Header != tt.want {
					t.Fatalf("Header = %+v, want %+v", tok.Header, tt.want)
				}
				if !json.Valid([]byte(tt.header)) {
					t.Errorf("accepted header %s is not valid JSON", tt.header)
				}
				return
			}
			if !errors.Is(err, ErrMalformed) || !errors.Is(err, tt.wantErr) {
				t.Fatalf("Parse(%s) = %v, want ErrMalformed wrapping %q", tt.header, err, tt.wantErr)
			}
		})
	}
}

// FuzzParse checks that Parse never panics and that whatever it accepts
// is three canonical base64url segments around a header that is valid
// JSON with an alg.
func FuzzParse(f *testing.F) {
	hdr := func(s string) string { return b64.EncodeToString([]byte(s)) }
	for _, s := range []string{
		hdr(`{"alg":"ES256","kid":"k"}`) + ".e30.AAAA",
		hdr(`{"alg":"RS256","typ":"at+jwt","x":[1,{"y":null}]}`) + "." + hdr(`{"sub":"a"}`) + ".",
		hdr(`{"alg":"ES256","crit":["b64"],"b64":false}`) + ".e30.AA",
		hdr(`{"alg":"ES256","alg":"none"}`) + ".e30.AA",
		hdr(`{"alg":"E\u0053256"}`) + ".e30.AA",
		"a.b.c", "..", "", "e30.e30.e30",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		tok, err := Parse(token)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error %v does not wrap ErrMalformed", err)
			}
			return
		}
		segs := strings.Split(token, ".")
		if len(segs) != 3 {
			t.Fatalf("accepted %d segments", len(segs))
		}
		header, err := base64.RawURLEncoding.Strict().DecodeString(segs[0])
		if err != nil || b64.EncodeToString(header) != segs[0] {
			t.Fatalf("accepted non-canonical header segment %q", segs[0])
		}
		if b64.EncodeToString(tok.Payload) != segs[1] || b64.EncodeToString(tok.Signature) != segs[2] {
			t.Fatalf("payload or signature does not round-trip")
		}
		if tok.SigningInput != segs[0]+"."+segs[1] {
			t.Fatalf("SigningInput = %q", tok.SigningInput)
		}
		members, ok := jsonObject(header)
		if !ok {
			t.Fatalf("accepted header that encoding/json refuses: %q", header)
		}
		var alg string
		for _, m := range members {
			if m.name == "alg" && json.Unmarshal(m.value, &alg) != nil {
				t.Fatalf("accepted non-string alg %s", m.value)
			}
		}
		if alg != tok.Header.Alg {
			t.Fatalf("Header.Alg = %q, encoding/json reads %q", tok.Header.Alg, alg)
		}
	})
}
