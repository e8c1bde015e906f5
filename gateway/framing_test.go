package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"
)

// goHeads reads requests from stream as Go's server does, up to the first
// it refuses, and returns their methods and targets. It reads each body
// to its end, as the server does before the next request.
func goHeads(stream []byte) []framedHead {
	br := bufio.NewReader(bytes.NewReader(stream))
	var heads []framedHead
	for range maxFramingHeads {
		req, err := http.ReadRequest(br)
		if err != nil {
			return heads
		}
		heads = append(heads, framedHead{method: req.Method, target: req.RequestURI})
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return heads
		}
	}
	return heads
}

func scan(stream []byte, chunk int) *framingScanner {
	var s framingScanner
	for len(stream) > 0 {
		n := min(chunk, len(stream))
		s.feed(stream[:n])
		stream = stream[n:]
	}
	return &s
}

func TestFramingScanner(t *testing.T) {
	tests := []struct {
		name      string
		stream    string
		ambiguous []bool // per request head
	}{
		{"plain GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", []bool{false}},
		{"content-length body", "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /2 HTTP/1.1\r\n\r\n", []bool{false, false}},
		{"chunked body", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nTrailer: x\r\n\r\nGET /2 HTTP/1.1\r\n\r\n", []bool{false, false}},
		{"CL and TE", "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []bool{true}},
		{"TE then CL", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", []bool{true}},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", []bool{true}},
		{"body that looks like a request", "POST / HTTP/1.1\r\nContent-Length: 63\r\n\r\nPOST /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nGET /3 HTTP/1.1\r\n\r\n", []bool{false, false}},
		{"leading empty lines", "\r\n\r\nGET / HTTP/1.1\r\n\r\n", []bool{false}},
		{"chunk extensions", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\n\r\nGET /2 HTTP/1.1\r\n\r\n", []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, chunk := range []int{1, 2, 7, 4096} {
				s := scan([]byte(tt.stream), chunk)
				if len(s.heads) != len(tt.ambiguous) {
					t.Fatalf("chunks of %d: %d heads %+v, want %d", chunk, len(s.heads), s.heads, len(tt.ambiguous))
				}
				for i, h := range s.heads {
					if h.ambiguous != tt.ambiguous[i] {
						t.Errorf("chunks of %d: head %d ambiguous = %v", chunk, i, h.ambiguous)
					}
				}
			}
		})
	}
}

// FuzzFramingScanner holds the scanner to Go's own request parser: for
// every request Go reads from a stream, the scanner, fed the same bytes in
// pieces, has a head with the same method and target at the same place.
// A scanner that lost count would refuse good requests or, worse, judge
// a request by another's head.
func FuzzFramingScanner(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",                                                                          // one request
		"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /2 HTTP/1.1\r\n\r\n",                                     // a body, then another
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /2 HTTP/1.1\r\n\r\n",          // chunks
		"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /2 HTTP/1.1\r\n\r\n", // CL and TE
		"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nabGET /2 HTTP/1.1\r\n\r\n",        // HTTP/1.0 TE
		"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",                                        // repeated CL
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",                                         // bare LFs
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX: y\r\n\r\nGET / HTTP/1.1\r\n\r\n",   // trailer
		"\r\nGET / HTTP/1.1\r\n\r\n",      // leading CRLF
		"GET http://h/x HTTP/1.1\r\n\r\n", // absolute-form
	} {
		f.Add([]byte(seed), uint8(3))
	}
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		want := goHeads(stream)
		s := scan(stream, int(chunk%16)+1)
		if len(s.heads) < len(want) {
			t.Fatalf("Go read %d requests, the scanner %d: %+v vs %+v", len(want), len(s.heads), want, s.heads)
		}
		for i, w := range want {
			if s.heads[i].method != w.method || s.heads[i].target != w.target {
				t.Fatalf("request %d: Go read %s %s, the scanner %s %s", i, w.method, w.target, s.heads[i].method, s.heads[i].target)
			}
		}
	})
}
