package jose

import (
	"bytes"
	"encoding/base64"
	"testing"
)

func TestDecodeSegment(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []byte // nil: must be refused
	}{
		{"empty", "", []byte{}},
		{"one byte", "_w", []byte{0xFF}},
		{"two bytes", "__8", []byte{0xFF, 0xFF}},
		{"three bytes", "____", []byte{0xFF, 0xFF, 0xFF}},
		{"url alphabet", "-_-_", []byte{0xFB, 0xFF, 0xBF}},
		{"text", "eyJhbGciOiJFUzI1NiJ9", []byte(`{"alg":"ES256"}`)},
		{"padding", "_w==", nil},
		{"one pad char", "__8=", nil},
		{"standard alphabet plus", "+w", nil},
		{"standard alphabet slash", "/w", nil},
		{"length 1 mod 4", "AAAAA", nil},
		{"single char", "A", nil},
		{"trailing bits in 2-char group", "_x", nil},
		{"trailing bits in 3-char group", "__9", nil},
		{"space", "AA AA", nil},
		{"newline", "AAAA\nAAAA", nil},
		{"dot", "AA.A", nil},
		{"NUL", "AA\x00A", nil},
		{"high byte", "AA\xffA", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := decodeSegment([]byte("prefix"), tt.in)
			if tt.want == nil {
				if ok {
					t.Fatalf("decodeSegment(%q) accepted, got %x", tt.in, got[len("prefix"):])
				}
				return
			}
			if !ok {
				t.Fatalf("decodeSegment(%q) refused", tt.in)
			}
			if !bytes.Equal(got, append([]byte("prefix"), tt.want...)) {
				t.Fatalf("decodeSegment(%q) = %q, want prefix + %x", tt.in, got, tt.want)
			}
			if n := decodedLen(len(tt.in)); n != len(tt.want) {
				t.Errorf("decodedLen(%d) = %d, want %d", len(tt.in), n, len(tt.want))
			}
		})
	}
}

// FuzzDecodeSegment checks decodeSegment against the standard library's
// strict unpadded base64url decoder: same verdict, same bytes, and
// everything accepted re-encodes to the very same text.
func FuzzDecodeSegment(f *testing.F) {
	for _, s := range []string{"", "_w", "__8", "____", "eyJhbGciOiJFUzI1NiJ9", "_w==", "+/", "_x", "AAAAA"} {
		f.Add(s)
	}
	strict := base64.RawURLEncoding.Strict()
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := decodeSegment(nil, s)
		want, err := strict.DecodeString(s)
		// The standard decoder skips \r and \n; a JWS segment may not
		// contain them, so they are the one expected difference.
		lenient := bytes.ContainsAny([]byte(s), "\r\n")
		switch {
		case ok && err != nil:
			t.Fatalf("decodeSegment(%q) accepted what the strict decoder refuses: %v", s, err)
		case ok && !bytes.Equal(got, want):
			t.Fatalf("decodeSegment(%q) = %x, strict decoder %x", s, got, want)
		case !ok && err == nil && !lenient:
			t.Fatalf("decodeSegment(%q) refused what the strict decoder accepts", s)
		}
		if ok {
			if enc := base64.RawURLEncoding.EncodeToString(got); enc != s {
				t.Fatalf("decodeSegment(%q) accepted a non-canonical encoding of %q", s, enc)
			}
			if decodedLen(len(s)) != len(got) {
				t.Fatalf("decodedLen(%d) = %d, decoded %d bytes", len(s), decodedLen(len(s)), len(got))
			}
		}
	})
}
