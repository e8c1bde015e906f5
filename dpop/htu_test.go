package dpop

import (
	"strings"
	"testing"
)

func TestNormalizeHTU(t *testing.T) {
	tests := []struct {
		in, want string // want "": refused
	}{
		{"https://api.example.com/orders", "https://api.example.com/orders"},
		{"HTTPS://API.EXAMPLE.COM/orders", "https://api.example.com/orders"},
		{"https://api.example.com:443/orders", "https://api.example.com/orders"},
		{"http://api.example.com:80/orders", "http://api.example.com/orders"},
		{"https://api.example.com:80/orders", "https://api.example.com:80/orders"},
		{"http://api.example.com:443/orders", "http://api.example.com:443/orders"},
		{"https://api.example.com:/orders", "https://api.example.com/orders"},
		{"https://api.example.com", "https://api.example.com/"},
		{"https://api.example.com?x=1", "https://api.example.com/"},
		{"https://api.example.com/orders?x=1#frag", "https://api.example.com/orders"},
		{"https://api.example.com/%7euser/%41%2f%2F%3a", "https://api.example.com/~user/A%2F%2F%3A"},
		{"https://api.example.com/a%20b", "https://api.example.com/a%20b"},
		{"https://api.example.com/a/./b/../c", "https://api.example.com/a/c"},
		{"https://api.example.com/a/b/..", "https://api.example.com/a/"},
		{"https://api.example.com/a/.", "https://api.example.com/a/"},
		{"https://api.example.com/a/./", "https://api.example.com/a/"},
		{"https://api.example.com/../../etc", "https://api.example.com/etc"},
		{"https://api.example.com/Orders", "https://api.example.com/Orders"},
		{"https://[::1]:443/x", "https://[::1]/x"},
		{"http://127.0.0.1:8080/x", "http://127.0.0.1:8080/x"},
		{"https://b\xfccher.example/x", ""},
		{"https://api.example.com:/x", "https://api.example.com/x"},
		{"https://:443/x", ""},

		{"", ""},
		{"/orders", ""},
		{"api.example.com/orders", ""},
		{"ftp://api.example.com/orders", ""},
		{"https://user:pass@api.example.com/orders", ""},
		{"https:///orders", ""},
		{"mailto:a@example.com", ""},
		{"https://api.example.com/%zz", ""},
		{"https://api.example.com/" + strings.Repeat("a", maxHTULength), ""},
	}
	for _, tt := range tests {
		got, err := NormalizeHTU(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("NormalizeHTU(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizeHTU(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzNormalizeHTU checks that normalisation never panics, is idempotent,
// and never keeps a query or fragment.
func FuzzNormalizeHTU(f *testing.F) {
	for _, s := range []string{"https://api.example.com/a/./b/../%7e?q#f", "HTTP://X:80", "https://[::1]:443/%2f", "http://a/%zz", "https://a/../../b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizeHTU(s)
		if err != nil {
			return
		}
		if strings.ContainsAny(n, "?#") {
			t.Fatalf("NormalizeHTU(%q) = %q keeps a query or fragment", s, n)
		}
		if !strings.HasPrefix(n, "http://") && !strings.HasPrefix(n, "https://") {
			t.Fatalf("NormalizeHTU(%q) = %q", s, n)
		}
		if len(n) > maxHTULength {
			return // percent-encoding grew it past the input bound
		}
		again, err := NormalizeHTU(n)
		if err != nil || again != n {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", s, n, again, err)
		}
	})
}
