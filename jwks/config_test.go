package jwks

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestConfigURL: https is required, except http to loopback or with the
// explicitly named InsecureAllowHTTP.
func TestConfigURL(t *testing.T) {
	tests := []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"https://as.example.com/jwks", false, true},
		{"https://as.example.com:8443/.well-known/jwks.json", false, true},
		{"http://as.example.com/jwks", false, false},
		{"http://as.example.com/jwks", true, true},
		{"http://127.0.0.1:7000/jwks", false, true},
		{"http://127.8.9.10/jwks", false, true},
		{"http://[::1]:7000/jwks", false, true},
		{"http://localhost:7000/jwks", false, true},
		{"http://LOCALHOST/jwks", false, true},
		{"http://localhost.as.example.com/jwks", false, false},
		{"http://10.0.0.1/jwks", false, false},
		{"http://[::ffff:10.0.0.1]/jwks", false, false},
		{"http://0.0.0.0/jwks", false, false},
		{"ftp://as.example.com/jwks", true, false},
		{"file:///etc/jwks.json", true, false},
		{"/jwks", false, false},
		{"https://", false, false},
		{"https://user:pass@as.example.com/jwks", false, false},
		{"", false, false},
		{"https://as.example.com/%zz", false, false},
	}
	for _, tt := range tests {
		_, _, err := Config{URL: tt.url, InsecureAllowHTTP: tt.insecure}.withDefaults()
		if (err == nil) != tt.ok {
			t.Errorf("URL %q (insecure=%v): err = %v, want ok=%v", tt.url, tt.insecure, err, tt.ok)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "jwks: URL: ") {
			t.Errorf("URL %q: error %q does not name the field", tt.url, err)
		}
	}
}

// TestConfigErrors: New reports every bad field at once, each named, and
// starts nothing.
func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // each must appear in the error
	}{
		{"empty allow-list", Config{URL: "https://a.example/jwks", Algorithms: []string{}}, []string{"jwks: Algorithms: empty"}},
		{"none", Config{URL: "https://a.example/jwks", Algorithms: []string{"RS256", "none"}}, []string{`jwks: Algorithms: "none"`}},
		{"HMAC", Config{URL: "https://a.example/jwks", Algorithms: []string{"HS256"}}, []string{`jwks: Algorithms: "HS256"`}},
		{"negative durations", Config{URL: "https://a.example/jwks", MinRefreshInterval: -1, RefreshRateLimit: -1, UnknownKIDWait: -1, MaxRefreshInterval: -1},
			[]string{"jwks: MinRefreshInterval:", "jwks: MaxRefreshInterval:", "jwks: RefreshRateLimit:", "jwks: UnknownKIDWait:"}},
		{"min above max", Config{URL: "https://a.example/jwks", MinRefreshInterval: 2e9, MaxRefreshInterval: 1e9}, []string{"jwks: MinRefreshInterval: 2s is greater"}},
		{"negative sizes", Config{URL: "https://a.example/jwks", MaxBodySize: -1, MaxKeys: -1}, []string{"jwks: MaxBodySize:", "jwks: MaxKeys:"}},
		{"several at once", Config{URL: "http://a.example/jwks", Algorithms: []string{"ES999"}}, []string{"jwks: URL: must be https", `jwks: Algorithms: "ES999"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(context.Background(), tt.cfg)
			if err == nil {
				s.Close()
				t.Fatal("New accepted the config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestConfigDefaults: zero values become the documented defaults, and New
// copies the config.
func TestConfigDefaults(t *testing.T) {
	algs := []string{"ES256"}
	c, allow, err := Config{URL: "https://a.example/jwks", Algorithms: algs}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	algs[0] = "RS256"
	if c.Algorithms[0] != "ES256" || allow != algES256 {
		t.Errorf("Algorithms not copied: %v", c.Algorithms)
	}
	got := []any{c.MinRefreshInterval, c.MaxRefreshInterval, c.RefreshRateLimit, c.UnknownKIDWait, c.InitialWait, c.MaxBodySize, c.MaxKeys}
	// Literal values: the documented defaults, so changing a constant
	// shows up here.
	want := []any{5 * time.Minute, 24 * time.Hour, 10 * time.Second, defaultUnknownKIDWait, defaultInitialWait, int64(1 << 20), 100}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	c, allow, _ = Config{URL: "https://a.example/jwks"}.withDefaults()
	if diff := cmp.Diff(DefaultAlgorithms(), c.Algorithms); diff != "" || allow != algRS256|algPS256|algES256|algES384|algEdDSA {
		t.Errorf("default allow-list: %s", diff)
	}
	d := DefaultAlgorithms()
	d[0] = "none"
	if DefaultAlgorithms()[0] != "RS256" {
		t.Errorf("DefaultAlgorithms shares its slice")
	}
}

// TestDefaultClientRedirects: the default client refuses redirects to
// non-https URLs (except within loopback http), downgrades, and long
// chains.
func TestDefaultClientRedirects(t *testing.T) {
	client, _ := defaultClient(false, nil)
	if client.Timeout != defaultHTTPTimeout {
		t.Errorf("Timeout = %v", client.Timeout)
	}
	req := func(s string) *http.Request {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Request{URL: u}
	}
	tests := []struct {
		from, to string
		hops     int
		ok       bool
	}{
		{"https://a.example/jwks", "https://b.example/jwks", 1, true},
		{"https://a.example/jwks", "http://b.example/jwks", 1, false},
		{"https://a.example/jwks", "http://127.0.0.1/jwks", 1, false},
		{"http://127.0.0.1/jwks", "http://127.0.0.1:8080/jwks", 1, true},
		{"http://127.0.0.1/jwks", "http://b.example/jwks", 1, false},
		{"https://a.example/jwks", "https://b.example/jwks", maxRedirects, false},
	}
	for _, tt := range tests {
		via := make([]*http.Request, tt.hops)
		for i := range via {
			via[i] = req(tt.from)
		}
		err := client.CheckRedirect(req(tt.to), via)
		if (err == nil) != tt.ok {
			t.Errorf("%s → %s after %d: err = %v, want ok=%v", tt.from, tt.to, tt.hops, err, tt.ok)
		}
	}
}
