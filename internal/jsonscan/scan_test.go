package jsonscan

import (
	"encoding/json"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// isSpecial is special8's rule for one byte.
func isSpecial(c byte) bool { return c == '"' || c == '\\' || c < 0x20 || c >= 0x80 }

// firstSpecial is the index of the first special byte of the eight in x
// (the lowest first), or 8 when there is none.
func firstSpecial(x uint64) int {
	for k := range 8 {
		if isSpecial(byte(x >> (8 * k))) {
			return k
		}
	}
	return 8
}

func checkSpecial8(t *testing.T, x uint64) {
	t.Helper()
	m := special8(x)
	want := firstSpecial(x)
	got := 8
	if m != 0 {
		got = bits.TrailingZeros64(m) / 8
	}
	if got != want {
		t.Fatalf("special8(%#016x) = %#016x: first special byte %d, want %d", x, m, got, want)
	}
}

// TestSpecial8 checks the word-at-a-time test against the byte rule: every
// byte value at every position among plain bytes, every pair of byte
// values in the two lowest positions (where a borrow could mislead), and
// random words.
func TestSpecial8(t *testing.T) {
	const plain = 0x6161616161616161 // "aaaaaaaa"
	for k := range 8 {
		for c := range 256 {
			x := plain&^(0xFF<<(8*k)) | uint64(c)<<(8*k)
			checkSpecial8(t, x)
		}
	}
	for a := range 256 {
		for b := range 256 {
			checkSpecial8(t, plain&^0xFFFF|uint64(a)|uint64(b)<<8)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1 << 20 {
		checkSpecial8(t, r.Uint64())
		// Mostly printable ASCII, now and then a special byte.
		var x uint64
		for k := range 8 {
			c := byte(0x20 + r.IntN(0x5F))
			if r.IntN(16) == 0 {
				c = byte(r.IntN(256))
			}
			x |= uint64(c) << (8 * k)
		}
		checkSpecial8(t, x)
	}
}

// TestStr checks Str against encoding/json for strings of every length
// around the eight-byte steps, with a special byte at every position.
func TestStr(t *testing.T) {
	specials := []string{`\"`, `\\`, `\n`, `\u00e9`, "é", "\x7f", "\x01", "\xff", `"`}
	for n := range 20 {
		base := strings.Repeat("x", n)
		cases := []string{`"` + base + `"`, `"` + base, base + `"`}
		for i := 0; i <= n; i++ {
			for _, sp := range specials {
				cases = append(cases, `"`+base[:i]+sp+base[i:]+`"`)
			}
		}
		for _, in := range cases {
			d := New(in)
			got, err := d.Str()
			if err == nil && d.End() != nil {
				err = ErrTrailing
			}
			var want string
			wantErr := json.Unmarshal([]byte(in), &want)
			if wantErr == nil && !utf8.ValidString(in) {
				wantErr = ErrUTF8 // stricter than encoding/json, which substitutes U+FFFD
			}
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("Str(%q): err %v, encoding/json: %v", in, err, wantErr)
			}
			if err == nil && got != want {
				t.Fatalf("Str(%q) = %q, encoding/json %q", in, got, want)
			}
		}
	}
}

// TestNumInt checks NumInt against Num's grammar and strconv.
func TestNumInt(t *testing.T) {
	for _, in := range []string{
		"0", "7", "1780000000", "4070908800", "123456789012345", "1234567890123456",
		"01", "00", "-0", "-1", "1.5", "1e3", "1E+3", "10.", "1e", "-", "", "x",
		"1780000000,", "1780000000}", "1780000000 ", "999999999999999", "9999999999999999999999",
	} {
		d := New(in)
		text, n, isInt, err := d.NumInt()
		end := d.Pos()
		r := New(in)
		wantText, wantErr := r.num()
		if text != wantText || (err == nil) != (wantErr == nil) || end != r.Pos() {
			t.Errorf("NumInt(%q) = %q, %v at %d; num: %q, %v at %d", in, text, err, end, wantText, wantErr, r.Pos())
		}
		// An integer it may leave to the caller's float parsing; one it
		// reads must be right, and the usual dates it must read.
		want, perr := strconv.ParseInt(wantText, 10, 64)
		if isInt && (perr != nil || n != want || wantText[0] == '-') {
			t.Errorf("NumInt(%q) = %d as an integer; want %d (%v)", in, n, want, perr)
		}
		if !isInt && (in == "1780000000" || in == "4070908800" || in == "1780000000," || in == "0") {
			t.Errorf("NumInt(%q) did not read the integer", in)
		}
	}
}
