package jose

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
	if decodedLen(len(s)) < 0 {
		return dst, false
	}
	i := 0
	for ; i+4 <= len(s); i += 4 {
		a, b, c, d := decodeTable[s[i]], decodeTable[s[i+1]], decodeTable[s[i+2]], decodeTable[s[i+3]]
		if (a|b|c|d)&0xC0 != 0 {
			return dst, false
		}
		dst = append(dst, a<<2|b>>4, b<<4|c>>2, c<<6|d)
	}
	switch len(s) - i {
	case 2:
		a, b := decodeTable[s[i]], decodeTable[s[i+1]]
		if (a|b)&0xC0 != 0 || b&0x0F != 0 {
			return dst, false
		}
		dst = append(dst, a<<2|b>>4)
	case 3:
		a, b, c := decodeTable[s[i]], decodeTable[s[i+1]], decodeTable[s[i+2]]
		if (a|b|c)&0xC0 != 0 || c&0x03 != 0 {
			return dst, false
		}
		dst = append(dst, a<<2|b>>4, b<<4|c>>2)
	}
	return dst, true
}
