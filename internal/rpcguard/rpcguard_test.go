package rpcguard

import "testing"

func TestFullMethodOK(t *testing.T) {
	for s, want := range map[string]bool{
		"/pkg.Service/Method": true, "/Svc/M": true, "/a.b_c.D9/_x": true,
		"pkg.Service/Method": false, "/pkg.Service/": false, "/pkg.Svc/*": false, "/pkg..Svc/M": false,
		"/9pkg.Svc/M": false, "/pkg.Svc/M/x": false, "": false, "*": false,
	} {
		if got := FullMethodOK(s); got != want {
			t.Errorf("FullMethodOK(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestCode: the gRPC code numbers (which Connect's share) for each status
// a Denial has.
func TestCode(t *testing.T) {
	for status, want := range map[int]uint32{400: 3, 401: 16, 403: 7, 429: 8, 503: 14, 404: 7, 500: 14, 200: 2} {
		if got := Code(status); got != want {
			t.Errorf("Code(%d) = %d, want %d", status, got, want)
		}
	}
}
