package bff

import (
	"net/http"
	"testing"
)

// TestNoDowngrade: redirects of the handler's requests to the
// authorization server are followed only for GETs (metadata, keys), at
// most 5, never from https to http; a POST (token, revocation, PAR: the
// client's credentials in the body or an assertion) is never redirected.
func TestNoDowngrade(t *testing.T) {
	req := func(method, url string) *http.Request {
		r, err := http.NewRequest(method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		name string
		via  []*http.Request
		next string
		ok   bool
	}{
		{"GET https to https", []*http.Request{req("GET", "https://as.example/a")}, "https://as.example/b", true},
		{"GET https to http", []*http.Request{req("GET", "https://as.example/a")}, "http://as.example/b", false},
		{"POST, 307 to the same host", []*http.Request{req("POST", "https://as.example/token")}, "https://as.example/token2", false},
		{"POST, to another host", []*http.Request{req("POST", "https://as.example/token")}, "https://evil.example/collect", false},
		{"the sixth redirect", []*http.Request{req("GET", "https://a/1"), req("GET", "https://a/2"), req("GET", "https://a/3"), req("GET", "https://a/4"), req("GET", "https://a/5")}, "https://a/6", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := noDowngrade(req("GET", tt.next), tt.via)
			if (err == nil) != tt.ok {
				t.Errorf("noDowngrade = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
