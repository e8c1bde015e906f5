package netutil

import "testing"

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
