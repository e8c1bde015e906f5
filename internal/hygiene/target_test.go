package hygiene

import (
	"errors"
	"net/url"
	"path"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckTarget(t *testing.T) {
	tests := []struct {
		name   string
		target string
		want   error
	}{
		// Accepted.
		{"root", "/", nil},
		{"tree", "/orders/", nil},
		{"leaf", "/orders/42", nil},
		{"query ignored", "/orders/?q=../..%2f;x\\#", nil},
		{"encoded space inside", "/files/a%20b", nil},
		{"encoded utf-8", "/caf%C3%A9/", nil},
		{"encoded unreserved", "/%6Frders/", nil},
		{"sub-delims, colon, at", "/a!$&'()*+,=:@b/", nil},
		{"dots inside a name", "/v1.2/a..b/.well-known/x", nil},
		{"empty query", "/orders?", nil},
		{"long name", "/" + strings.Repeat("a", 10000), nil},

		// Not origin-form.
		{"absolute-form", "http://api.example.com/orders/", ErrNotOriginForm},
		{"authority-form", "api.example.com:443", ErrNotOriginForm},
		{"asterisk-form", "*", ErrNotOriginForm},
		{"empty", "", ErrNotOriginForm},
		{"query only", "?a=b", ErrNotOriginForm},

		// Encoded delimiters and controls, any letter case.
		{"encoded slash", "/orders/..%2fadmin", ErrEncodedDelimiter},
		{"encoded slash upper", "/orders/%2F../admin", ErrEncodedDelimiter},
		{"encoded backslash", "/orders/..%5cadmin", ErrEncodedDelimiter},
		{"encoded backslash upper", "/orders/..%5Cadmin", ErrEncodedDelimiter},
		{"encoded dot", "/orders/%2e%2e/admin", ErrEncodedDelimiter},
		{"encoded dot upper", "/orders/%2E%2E/admin", ErrEncodedDelimiter},
		{"half encoded dot", "/orders/.%2e/admin", ErrEncodedDelimiter},
		{"encoded percent (double encoding)", "/orders/%252e%252e/admin", ErrEncodedDelimiter},
		{"encoded semicolon", "/admin%3bx/", ErrEncodedDelimiter},
		{"encoded question mark", "/orders%3F/x", ErrEncodedDelimiter},
		{"encoded hash", "/orders%23/x", ErrEncodedDelimiter},
		{"encoded NUL", "/orders/x%00.json", ErrEncodedDelimiter},
		{"encoded LF", "/orders/x%0a", ErrEncodedDelimiter},
		{"encoded CR", "/orders/x%0D", ErrEncodedDelimiter},
		{"encoded DEL", "/orders/x%7f", ErrEncodedDelimiter},

		// Dot segments, plain.
		{"dot-dot", "/orders/../admin", ErrDotSegment},
		{"dot", "/orders/./x", ErrDotSegment},
		{"trailing dot-dot", "/orders/..", ErrDotSegment},
		{"leading dot-dot", "/../admin", ErrDotSegment},
		{"three dots", "/orders/.../x", ErrDotSegment},
		{"segment ends in a dot", "/admin./", ErrSegmentEnd},
		{"segment ends in an encoded space", "/admin%20/", ErrSegmentEnd},
		{"last segment ends in a dot", "/orders/x.", ErrSegmentEnd},

		// Empty segments.
		{"double slash", "/orders//x", ErrEmptySegment},
		{"leading double slash", "//admin/", ErrEmptySegment},
		{"triple slash", "/orders///", ErrEmptySegment},

		// Path parameters and backslashes.
		{"semicolon", "/admin;x=1/", ErrPathParameter},
		{"semicolon dot-dot", "/orders/..;/admin", ErrPathParameter},
		{"jsessionid", "/orders;jsessionid=abc", ErrPathParameter},
		{"backslash", "/orders\\..\\admin", ErrBackslash},

		// Bad escapes.
		{"short escape at end", "/orders/%2", ErrBadEscape},
		{"lone percent", "/orders/%", ErrBadEscape},
		{"non-hex escape", "/orders/%zz", ErrBadEscape},
		{"IIS unicode escape", "/orders/%u002e%u002e/admin", ErrBadEscape},
		{"escape of a slash", "/orders/%/x", ErrBadEscape},

		// Characters outside RFC 3986.
		{"raw hash", "/orders/#x", ErrBadChar},
		{"raw space", "/orders/a b", ErrBadChar},
		{"raw quote", "/orders/\"", ErrBadChar},
		{"raw brackets", "/orders/[x]", ErrBadChar},
		{"raw pipe", "/orders/a|b", ErrBadChar},
		{"raw non-ASCII", "/caf\xc3\xa9/", ErrBadChar},
		{"raw fullwidth dots", "/orders/\uff0e\uff0e/admin", ErrBadChar},
		{"raw tab", "/orders/\tx", ErrBadChar},

		// Decoded forms.
		{"overlong dot", "/orders/%c0%ae%c0%ae/admin", ErrBadUTF8},
		{"overlong slash", "/orders/..%c0%afadmin", ErrBadUTF8},
		{"three-byte overlong dot", "/orders/%e0%80%ae%e0%80%ae/admin", ErrBadUTF8},
		{"truncated sequence", "/caf%C3/", ErrBadUTF8},
		{"truncated at end", "/caf%C3", ErrBadUTF8},
		{"stray continuation byte", "/a%80b", ErrBadUTF8},
		{"two starts", "/a%C3%C3%A9", ErrBadUTF8},
		{"surrogate", "/a%ED%A0%80", ErrBadUTF8},
		{"fullwidth full stop", "/orders/%EF%BC%8E%EF%BC%8E/admin", ErrConfusable},
		{"fullwidth solidus", "/orders/..%EF%BC%8Fadmin", ErrConfusable},
		{"fullwidth reverse solidus", "/orders/..%EF%BC%BCadmin", ErrConfusable},
		{"division slash", "/orders/..%E2%88%95admin", ErrConfusable},
		{"one dot leader", "/orders/%E2%80%A4%E2%80%A4/admin", ErrConfusable},
		{"two dot leader", "/orders/%E2%80%A5/admin", ErrConfusable},
		{"small semicolon", "/admin%EF%B9%94x/", ErrConfusable},
		{"line separator", "/a%E2%80%A8b", ErrConfusable},
		{"greek question mark", "/admin%CD%BEx/", ErrConfusable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckTarget(tt.target)
			if !errors.Is(err, tt.want) {
				t.Fatalf("CheckTarget(%q) = %v, want %v", tt.target, err, tt.want)
			}
			if err != nil && len(tt.target) > 3 && strings.Contains(err.Error(), tt.target) {
				t.Errorf("error %q quotes the target", err)
			}
		})
	}
}

func TestCheckPathNeedsSlash(t *testing.T) {
	for _, p := range []string{"", "orders", "%2F"} {
		if err := CheckPath(p); !errors.Is(err, ErrNotOriginForm) {
			t.Errorf("CheckPath(%q) = %v, want ErrNotOriginForm", p, err)
		}
	}
}

// TestConfusableList checks the table against its description: every
// listed character is outside ASCII, so it can only arrive
// percent-encoded, and none of the ordinary letters is on it.
func TestConfusableList(t *testing.T) {
	for r := rune(0); r < 0x80; r++ {
		if confusable(r) {
			t.Errorf("ASCII %q is listed", r)
		}
	}
	for _, r := range "éßжя中😀ａＡ" {
		if confusable(r) {
			t.Errorf("%q (U+%04X) is listed but does not normalise to a delimiter", r, r)
		}
	}
}

func TestCheckTargetAllocates(t *testing.T) {
	target := "/orders/caf%C3%A9/items/42?x=1"
	if n := testing.AllocsPerRun(100, func() { _ = CheckTarget(target) }); n != 0 {
		t.Errorf("CheckTarget allocates %v times", n)
	}
}

// readings are the ways routers and upstreams turn an accepted path into
// segments. An accepted path must give the same segments in every one.
var readings = map[string]func(string) []string{
	// Go's ServeMux: split the escaped path, unescape each segment.
	"split then decode": func(p string) []string {
		segs := strings.Split(p[1:], "/")
		for i, s := range segs {
			segs[i], _ = url.PathUnescape(s)
		}
		return segs
	},
	// Most frameworks: decode the whole path, then route on it.
	"decode then split": func(p string) []string {
		d, _ := url.PathUnescape(p)
		return strings.Split(d[1:], "/")
	},
	// Decoding twice (IIS double decoding, a proxy in front that decodes).
	"decode twice": func(p string) []string {
		d, _ := url.PathUnescape(p)
		d, _ = url.PathUnescape(d)
		return strings.Split(d[1:], "/")
	},
	// Windows and some Node/Python stacks: backslash is a separator,
	// dot segments resolved, slashes merged, ";params" stripped, trailing
	// dots and spaces dropped, after decoding.
	"lenient": func(p string) []string {
		d, _ := url.PathUnescape(p)
		d = strings.ReplaceAll(d, "\\", "/")
		var segs []string
		for s := range strings.SplitSeq(d[1:], "/") {
			s, _, _ = strings.Cut(s, ";")
			if strings.Trim(s, ".") != "" { // "." and ".." are resolved below
				s = strings.TrimRight(s, ". ")
			}
			segs = append(segs, s)
		}
		c := path.Clean("/" + strings.Join(segs, "/"))
		if strings.HasSuffix(d, "/") && c != "/" {
			c += "/"
		}
		return strings.Split(c[1:], "/")
	},
}

func FuzzCheckTarget(f *testing.F) {
	for _, seed := range []string{
		"/orders/42",                       // plain
		"/orders/..%2fadmin",               // encoded slash next to dots
		"/orders/%2e%2e/admin",             // encoded dot segment
		"/orders/%252e%252e/admin",         // double encoding
		"/orders/..;/admin",                // Tomcat path parameter
		"/orders\\..\\admin",               // backslashes
		"/orders/%c0%ae%c0%ae/admin",       // overlong UTF-8
		"/orders/%EF%BC%8E%EF%BC%8E/admin", // fullwidth dots
		"/caf%C3%A9/",                      // ordinary UTF-8
		"//admin",                          // empty segment
		"/admin./",                         // Windows trailing dot
		"http://h/orders/",                 // absolute-form
		"*",                                // asterisk-form
		"/orders/?q=%2e%2e",                // escapes in the query only
		"/%6Frders/%41",                    // encoded unreserved characters
		"/a%",                              // truncated escape
		"/a%20b/",                          // encoded space inside a segment
		"/orders/%F0%9F%98%80/",            // four-byte character
		"/\u00e9",                          // raw non-ASCII
		"/orders/x%00",                     // encoded NUL
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, target string) {
		err := CheckTarget(target)
		p, _, _ := strings.Cut(target, "?")
		if err != nil {
			if len(target) > 8 && strings.Contains(err.Error(), target) {
				t.Fatalf("error quotes the input: %v", err)
			}
			return
		}
		if _, uerr := url.PathUnescape(p); uerr != nil {
			t.Fatalf("accepted %q, which does not unescape: %v", target, uerr)
		}
		d, _ := url.PathUnescape(p)
		if !utf8.ValidString(d) {
			t.Fatalf("accepted %q, which decodes to invalid UTF-8", target)
		}
		want := readings["split then decode"](p)
		for name, read := range readings {
			if got := read(p); !slices.Equal(got, want) {
				t.Fatalf("accepted %q, but %q reads it as %q and ServeMux as %q", target, name, got, want)
			}
		}
		// Accepted paths are stable: checking again is a no-op, and the
		// decoded path, re-encoded by Go, is accepted too.
		if err := CheckPath(p); err != nil {
			t.Fatalf("CheckPath(%q) = %v after CheckTarget accepted it", p, err)
		}
		if err := CheckPath((&url.URL{Path: d}).EscapedPath()); err != nil && !errors.Is(err, ErrBadChar) {
			t.Fatalf("re-encoded %q refused: %v", d, err)
		}
	})
}

func BenchmarkCheckTarget(b *testing.B) {
	for _, target := range []string{"/orders/42", "/api/v1/orders/42/items?expand=lines", "/caf%C3%A9/%E2%82%AC/items"} {
		b.Run(target, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = CheckTarget(target)
			}
		})
	}
}
