package httpauth

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAuthorization(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantScheme string
		wantToken  string
		wantErr    error
	}{
		{name: "bearer", in: "Bearer abc.def.ghi", wantScheme: "Bearer", wantToken: "abc.def.ghi"},
		{name: "scheme case kept", in: "bEaReR abc", wantScheme: "bEaReR", wantToken: "abc"},
		{name: "several spaces", in: "Bearer   abc", wantScheme: "Bearer", wantToken: "abc"},
		{name: "b64token punctuation", in: "Bearer a-._~+/b==", wantScheme: "Bearer", wantToken: "a-._~+/b=="},
		{name: "empty", in: "", wantErr: ErrMalformed},
		{name: "scheme only", in: "Bearer", wantErr: ErrMalformed},
		{name: "scheme and space", in: "Bearer ", wantErr: ErrMalformed},
		{name: "leading space", in: " Bearer abc", wantErr: ErrMalformed},
		{name: "tab separator", in: "Bearer\tabc", wantErr: ErrMalformed},
		{name: "trailing space", in: "Bearer abc ", wantScheme: "Bearer", wantErr: ErrInvalidToken},
		{name: "two tokens", in: "Bearer abc def", wantScheme: "Bearer", wantErr: ErrInvalidToken},
		{name: "auth params", in: `Bearer realm="x"`, wantScheme: "Bearer", wantErr: ErrInvalidToken},
		{name: "only padding", in: "Bearer ==", wantScheme: "Bearer", wantErr: ErrInvalidToken},
		{name: "padding in middle", in: "Bearer ab=c", wantScheme: "Bearer", wantErr: ErrInvalidToken},
		{name: "comma", in: "Bearer a,b", wantScheme: "Bearer", wantErr: ErrInvalidToken},
		{name: "non-ascii", in: "Bearer abcé", wantScheme: "Bearer", wantErr: ErrInvalidToken},
		{name: "bad scheme char", in: "Bea(rer abc", wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scheme, tok, err := ParseAuthorization(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if scheme != tt.wantScheme || tok != tt.wantToken {
				t.Errorf("got (%q, %q), want (%q, %q)", scheme, tok, tt.wantScheme, tt.wantToken)
			}
			if err != nil && strings.Contains(err.Error(), "abc") {
				t.Errorf("error %q echoes the credentials", err)
			}
		})
	}
}

func FuzzParseAuthorization(f *testing.F) {
	for _, seed := range []string{
		"Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig", // typical JWT
		"bearer abc",                          // lower-case scheme
		"DPoP abc",                            // the other scheme we know
		"Bearer  abc",                         // two spaces
		"Bearer abc==",                        // padding
		"Bearer ab=c",                         // padding not at the end
		"Bearer",                              // no credentials
		"Basic dXNlcjpwYXNz",                  // another scheme
		`Digest realm="x", nonce="y"`,         // auth-params
		"Bearer \x00",                         // control character
		"",                                    // empty
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		scheme, tok, err := ParseAuthorization(in)
		if err != nil {
			if tok != "" {
				t.Fatalf("error with a token: %q", tok)
			}
			return
		}
		// Properties of a successful parse: the parts rebuild a header
		// with the same meaning, the token is a b64token, and it is a
		// suffix of the input (nothing invented).
		if !IsToken(scheme) || !IsB64Token(tok) {
			t.Fatalf("bad parts %q %q from %q", scheme, tok, in)
		}
		if !strings.HasPrefix(in, scheme+" ") || !strings.HasSuffix(in, tok) {
			t.Fatalf("parts %q %q not from %q", scheme, tok, in)
		}
		s2, t2, err := ParseAuthorization(scheme + " " + tok)
		if err != nil || s2 != scheme || t2 != tok {
			t.Fatalf("reparse of %q %q: %q %q %v", scheme, tok, s2, t2, err)
		}
	})
}

func TestChallengeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   []Challenge
		want string
	}{
		{
			name: "realm only",
			in:   []Challenge{{Scheme: "Bearer", Params: []Param{{"realm", "api"}}}},
			want: `Bearer realm="api"`,
		},
		{
			name: "error with description",
			in: []Challenge{{Scheme: "Bearer", Params: []Param{
				{"realm", "https://api.example.com"}, {"error", "invalid_token"}, {"error_description", "token expired"},
			}}},
			want: `Bearer realm="https://api.example.com", error="invalid_token", error_description="token expired"`,
		},
		{
			name: "escaping",
			in:   []Challenge{{Scheme: "Bearer", Params: []Param{{"realm", `a "quoted" \ realm`}}}},
			want: `Bearer realm="a \"quoted\" \\ realm"`,
		},
		{
			name: "two challenges",
			in: []Challenge{
				{Scheme: "Bearer", Params: []Param{{"realm", "api"}, {"error", "invalid_token"}}},
				{Scheme: "DPoP", Params: []Param{{"algs", "ES256 EdDSA"}}},
			},
			want: `Bearer realm="api", error="invalid_token", DPoP algs="ES256 EdDSA"`,
		},
		{
			name: "scheme without params then another",
			in:   []Challenge{{Scheme: "Bearer"}, {Scheme: "DPoP", Params: []Param{{"algs", "ES256"}}}},
			want: `Bearer, DPoP algs="ES256"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FormatChallenges(tt.in)
			if got != tt.want {
				t.Fatalf("FormatChallenges = %s, want %s", got, tt.want)
			}
			back, err := ParseChallenges(got)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.in, back); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseChallengesRejects(t *testing.T) {
	for _, in := range []string{
		``,
		`Bearer realm`,
		`Bearer realm=`,
		`Bearer realm="unterminated`,
		`Bearer realm="x" error="y"`,
		`Bearer abc==`, // token68 form
		`=x`,
		"Bearer realm=\"a\x01\"",
		strings.Repeat("a", maxChallengeLen+1),
	} {
		if got, err := ParseChallenges(in); err == nil {
			t.Errorf("ParseChallenges(%q) = %+v, want error", in, got)
		}
	}
}

func FuzzChallenge(f *testing.F) {
	f.Add("Bearer", "realm", "api", "error", "invalid_token")                                              // plain RFC 6750
	f.Add("Bearer", "realm", `a"b\c`, "scope", "a b")                                                      // quotes and backslashes to escape
	f.Add("DPoP", "algs", "ES256 EdDSA", "error", "use_dpop_nonce")                                        // RFC 9449
	f.Add("Bearer", "resource_metadata", "https://x/.well-known/oauth-protected-resource", "max_age", "0") // RFC 9728 / 9470
	f.Add("Bearer", "realm", "", "error", "")                                                              // empty values
	f.Add("Bearer", "realm", "tab\there", "x", "\x7f")                                                     // control characters are dropped
	f.Fuzz(func(t *testing.T, scheme, n1, v1, n2, v2 string) {
		if !IsToken(scheme) || !IsToken(n1) || !IsToken(n2) {
			return // we only ever build challenges from tokens
		}
		in := []Challenge{{Scheme: scheme, Params: []Param{{n1, v1}, {n2, v2}}}}
		s := FormatChallenges(in)
		back, err := ParseChallenges(s)
		if err != nil {
			t.Fatalf("cannot parse our own challenge %q: %v", s, err)
		}
		want := []Challenge{{Scheme: scheme, Params: []Param{{n1, dropControls(v1)}, {n2, dropControls(v2)}}}}
		if diff := cmp.Diff(want, back); diff != "" {
			t.Fatalf("round trip of %q (-want +got):\n%s", s, diff)
		}
		// Formatting what we parsed is a fixed point.
		if s2 := FormatChallenges(back); s2 != s {
			t.Fatalf("format not idempotent: %q then %q", s, s2)
		}
	})
}

func dropControls(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c >= 0x20 || c == '\t') && c != 0x7f {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// TestB64TokenAlphabet pins the b64token table to RFC 6750 §2.1's grammar,
// byte by byte: ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/", and "="
// only as trailing padding.
func TestB64TokenAlphabet(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"
	for c := 0; c < 256; c++ {
		want := strings.IndexByte(alphabet, byte(c)) >= 0
		if got := IsB64Token(string([]byte{byte(c)})); got != want {
			t.Errorf("IsB64Token(%q) = %v, want %v", byte(c), got, want)
		}
		if got := IsB64Token("a" + string([]byte{byte(c)}) + "b"); got != want {
			t.Errorf("IsB64Token(\"a%cb\") = %v, want %v", byte(c), got, want)
		}
	}
	if !IsB64Token("ab==") || IsB64Token("a=b") || IsB64Token("==") {
		t.Error("padding: only trailing = after at least one character")
	}
}

func TestSchemeOf(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Bearer abc", "Bearer"},
		{"Bearer\tabc", "Bearer"},
		{"Bearer", "Bearer"},
		{"", ""},
		{" abc", ""},
		{"B\u0435arer abc", "B\u0435arer"},
		{"Bearer\u00a0abc", "Bearer\u00a0abc"}, // a no-break space is not a separator
	}
	for _, tt := range tests {
		if got := SchemeOf(tt.in); got != tt.want {
			t.Errorf("SchemeOf(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEqualFoldASCII(t *testing.T) {
	tests := []struct {
		s, ascii string
		want     bool
	}{
		{"Bearer", "Bearer", true},
		{"bEARER", "Bearer", true},
		{"dpop", "DPoP", true},
		{"Bearer ", "Bearer", false},
		{"Beare", "Bearer", false},
		{"B\u0435arer", "Bearer", false}, // Cyrillic ie
		{"\uff22earer", "Bearer", false}, // fullwidth B
		{"\u212a", "k", false},           // Kelvin sign: strings.EqualFold says true
		{"\u017f", "s", false},           // long s: strings.EqualFold says true
		{"Bearer[", "Bearer{", false},    // '[' and '{' differ by the case bit
	}
	for _, tt := range tests {
		if got := EqualFoldASCII(tt.s, tt.ascii); got != tt.want {
			t.Errorf("EqualFoldASCII(%q, %q) = %v, want %v", tt.s, tt.ascii, got, tt.want)
		}
	}
}
