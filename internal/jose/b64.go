package jose

import (
	"encoding/binary"
	"slices"
)

// decodeTable maps a byte of the base64url alphabet (RFC 4648 §5) to its
// 6-bit value, and every other byte to 0xFF.
var decodeTable = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// badQuad marks a byte outside the alphabet in quadTables: no 24-bit
// group has it, so OR-ing four entries keeps it whichever byte was bad.
const badQuad = 1 << 31

// quadTables[k] maps a byte to its 6-bit value already shifted to its
// place in a 24-bit group of four (k = 0 is the most significant), or to
// badQuad: a full group decodes with four loads and three ORs.
var quadTables = func() (t [4][256]uint32) {
	for k := range t {
		for c, v := range decodeTable {
			if v == 0xFF {
				t[k][c] = badQuad
			} else {
				t[k][c] = uint32(v) << (18 - 6*k)
			}
		}
	}
	return t
}()

// decodedLen is the length of the bytes s decodes to, or -1 when no
// unpadded base64url string has that length.
func decodedLen(n int) int {
	if n%4 == 1 {
		return -1
	}
	return n/4*3 + max(n%4-1, 0)
}

// decodeSegment appends to dst the bytes that the base64url segment s
// (RFC 7515 §2: no padding, no line breaks) encodes. It is as strict as
// base64.RawURLEncoding.Strict(): any byte outside the alphabet, a length
// no encoder produces, or unused trailing bits that are not zero make it
// fail, so every byte string has exactly one accepted encoding. It works
// on a string so the caller's token is never copied to decode it.
func decodeSegment(dst []byte, s string) ([]byte, bool) {
	n := decodedLen(len(s))
	if n < 0 {
		return dst, false
	}
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	if !decodeInto(dst[start:], s) {
		return dst[:start], false
	}
	return dst, true
}

// decodeInto decodes s into out, which must be exactly decodedLen(len(s))
// long (and that length valid), with decodeSegment's rules.
func decodeInto(out []byte, s string) bool {
	t0, t1, t2, t3 := &quadTables[0], &quadTables[1], &quadTables[2], &quadTables[3]
	quads := len(s) / 4
	if len(out) < quads*3 {
		return false
	}
	// Four groups a round: sixteen characters to twelve bytes, one check.
	i, j := 0, 0
	for ; quads >= 4; quads -= 4 {
		q := s[i : i+16]
		v := t0[q[0]] | t1[q[1]] | t2[q[2]] | t3[q[3]]
		w := t0[q[4]] | t1[q[5]] | t2[q[6]] | t3[q[7]]
		x := t0[q[8]] | t1[q[9]] | t2[q[10]] | t3[q[11]]
		y := t0[q[12]] | t1[q[13]] | t2[q[14]] | t3[q[15]]
		if (v|w|x|y)&badQuad != 0 {
			return false
		}
		o := out[j : j+12]
		binary.BigEndian.PutUint64(o, uint64(v)<<40|uint64(w)<<16|uint64(x)>>8)
		binary.BigEndian.PutUint32(o[8:], x<<24|y)
		i, j = i+16, j+12
	}
	for ; quads >= 2; quads -= 2 {
		q := s[i : i+8]
		v := t0[q[0]] | t1[q[1]] | t2[q[2]] | t3[q[3]]
		w := t0[q[4]] | t1[q[5]] | t2[q[6]] | t3[q[7]]
		if (v|w)&badQuad != 0 {
			return false
		}
		o := out[j : j+6]
		binary.BigEndian.PutUint32(o, v<<8|w>>16)
		binary.BigEndian.PutUint16(o[4:], uint16(w))
		i, j = i+8, j+6
	}
	if quads == 1 {
		q := s[i : i+4]
		v := t0[q[0]] | t1[q[1]] | t2[q[2]] | t3[q[3]]
		if v&badQuad != 0 {
			return false
		}
		o := out[j : j+3]
		o[0], o[1], o[2] = byte(v>>16), byte(v>>8), byte(v)
		i, j = i+4, j+3
	}
	s, out = s[i:], out[j:]
	switch len(s) {
	case 0:
		return true
	case 2:
		if len(out) < 1 {
			return false
		}
		a, b := decodeTable[s[0]], decodeTable[s[1]]
		if (a|b)&0xC0 != 0 || b&0x0F != 0 {
			return false
		}
		out[0] = a<<2 | b>>4
		return true
	case 3:
		if len(out) < 2 {
			return false
		}
		a, b, c := decodeTable[s[0]], decodeTable[s[1]], decodeTable[s[2]]
		if (a|b|c)&0xC0 != 0 || c&0x03 != 0 {
			return false
		}
		out[0], out[1] = a<<2|b>>4, b<<4|c>>2
		return true
	}
	return false
}
