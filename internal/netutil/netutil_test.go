package netutil

import (
	"net/url"
	"testing"
)

func TestIsLoopbackHost(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"LOCALHOST", true},
		{"127.0.0.1", true},
		{"127.9.8.7", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},
		{"localhost.example.com", false},
		{"128.0.0.1", false},
		{"10.0.0.1", false},
		{"::2", false},
		{"fe80::1%lo", false},
		{"example.com", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsLoopbackHost(tt.host); got != tt.want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestAllowedScheme(t *testing.T) {
	tests := []struct {
		url      string
		insecure bool
		want     bool
	}{
		{"https://as.example.com/jwks", false, true},
		{"http://127.0.0.1:7000/jwks", false, true},
		{"http://localhost/jwks", false, true},
		{"http://as.example.com/jwks", false, false},
		{"http://as.example.com/jwks", true, true},
		{"ftp://as.example.com/jwks", true, false},
		{"file:///etc/passwd", true, false},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := AllowedScheme(u, tt.insecure); got != tt.want {
			t.Errorf("AllowedScheme(%s, insecure=%v) = %v, want %v", tt.url, tt.insecure, got, tt.want)
		}
	}
}
