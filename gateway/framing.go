package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"sync"
)

// Request framing. A request with both Content-Length and
// Transfer-Encoding can be read two ways: by its chunks (what Go's server
// does, after dropping Content-Length, as RFC 9112 §6.3 allows) or by its
// length (what a proxy in front may do). Then the two disagree on where
// the next request starts, and a request the front proxy never saw
// reaches the gateway (request smuggling). RFC 9112 says such a message
// "ought to be handled as an error"; Envoy answers 400. So does the
// gateway, and it closes the connection. Transfer-Encoding in an HTTP/1.0
// request, which Go ignores and other servers do not, is refused too.
//
// By the time a handler runs, Go has removed Content-Length from such a
// request, so the gateway follows the plaintext connection's bytes itself
// (framingConn): a small parser of request heads and bodies notes, for
// each request, whether it carried both. Over TLS the gateway is the
// first to read the requests (a proxy in front could only pass the
// encrypted bytes on), so there is nothing to disagree with, and HTTP/2
// has no such framing at all.

// framingListener wraps each accepted connection in a framingConn.
type framingListener struct{ net.Listener }

func (l framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if _, isTLS := c.(*tls.Conn); isTLS {
		return c, nil // Go's server must see the *tls.Conn itself
	}
	return &framingConn{Conn: c}, nil
}

// refuseAmbiguousFraming answers 400 {"error":"invalid_request"} and
// closes the connection for a request whose framing had two readings
// (see unambiguousFraming); others go on to next.
func refuseAmbiguousFraming(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if unambiguousFraming(r) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Connection", "close")
		refuse(w, r, http.StatusBadRequest, "ambiguous_framing", "invalid_request")
	})
}

// framingConn follows the requests read from a connection (see
// framingScanner) and keeps a verdict for each until its handler asks.
type framingConn struct {
	net.Conn
	mu   sync.Mutex // guards scan
	scan framingScanner
}

func (c *framingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.scan.feed(p[:n])
		c.mu.Unlock()
	}
	return n, err
}

// verdict returns whether r was framed unambiguously, taking its entry off
// the connection's queue (and those of requests Go answered without a
// handler, such as OPTIONS *). A request the scanner has no entry for
// (it lost track of the stream) is refused: fail closed.
func (c *framingConn) verdict(r *http.Request) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.scan.heads) > 0 {
		h := c.scan.heads[0]
		// Shifted down rather than resliced, so the queue keeps its
		// capacity and the next request's head needs no allocation.
		n := copy(c.scan.heads, c.scan.heads[1:])
		c.scan.heads = c.scan.heads[:n]
		if h.method == r.Method && h.target == r.RequestURI {
			return !h.ambiguous
		}
	}
	return false
}

type framingConnKey struct{}

// framingConnContext is the proxy server's ConnContext: it lets handlers
// find their connection's framingConn.
func framingConnContext(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framingConn); ok {
		return context.WithValue(ctx, framingConnKey{}, fc)
	}
	return ctx
}

// unambiguousFraming reports whether r's framing had one reading. A
// request not served through a framingConn (TLS, HTTP/2, a server of the
// embedder's own) is taken as it is.
func unambiguousFraming(r *http.Request) bool {
	fc, ok := r.Context().Value(framingConnKey{}).(*framingConn)
	if !ok || r.ProtoMajor != 1 {
		return true
	}
	return fc.verdict(r)
}

// Bounds on what the scanner keeps. A connection over them stops being
// followed; its later requests are refused (it was already refused by
// Go's own limits, or is not HTTP/1).
const (
	maxFramingLine  = 1 << 20 // Go's server refuses longer request heads (MaxHeaderBytes)
	maxFramingHeads = 1024    // requests read ahead but not yet handled
)

// framingScanner follows an HTTP/1 request stream the way Go's server
// reads it: request line, header fields, then a body of Content-Length
// bytes, or chunks (Transfer-Encoding: chunked, HTTP/1.1 only) and a
// trailer. For each request head it records the method, the target and
// whether the head carried both Content-Length and Transfer-Encoding, or
// Transfer-Encoding in HTTP/1.0. When the stream stops making sense (a
// request Go refuses too) it stops following it.
type framingScanner struct {
	state   int
	line    []byte // the line being read
	lost    bool   // stopped following the stream
	heads   []framedHead
	cur     framedHead // the head being read
	hasCL   bool
	clValue int64
	clBad   bool // several Content-Length values that differ, or not a number
	teCount int
	teValue string
	http10  bool
	remain  int64 // body or chunk bytes still to skip
}

type framedHead struct {
	method, target string
	ambiguous      bool
}

// Scanner states.
const (
	scanRequestLine = iota
	scanHeaders
	scanBody
	scanChunkSize
	scanChunkData
	scanChunkCRLF
	scanTrailer
)

// feed consumes bytes read from the connection.
func (s *framingScanner) feed(p []byte) {
	for len(p) > 0 && !s.lost {
		switch s.state {
		case scanBody, scanChunkData:
			n := min(int64(len(p)), s.remain)
			p = p[n:]
			if s.remain -= n; s.remain == 0 {
				if s.state == scanBody {
					s.state = scanRequestLine
				} else {
					s.state = scanChunkCRLF
				}
			}
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.line = append(s.line, p...)
			if len(s.line) > maxFramingLine {
				s.lose()
			}
			return
		}
		line := p[:i]
		if len(s.line) > 0 {
			// The line began in an earlier read.
			s.line = append(s.line, line...)
			line = s.line
		}
		p = p[i+1:]
		s.endLine(bytes.TrimSuffix(line, []byte{'\r'}))
		s.line = s.line[:0]
	}
}

func (s *framingScanner) lose() {
	s.lost = true
	s.line = nil
}

// endLine handles one complete line, without its CRLF.
func (s *framingScanner) endLine(line []byte) {
	switch s.state {
	case scanRequestLine:
		if len(line) == 0 {
			return // Go ignores empty lines before a request line
		}
		method, rest, ok1 := bytes.Cut(line, []byte{' '})
		target, proto, ok2 := bytes.Cut(rest, []byte{' '})
		if !ok1 || !ok2 {
			s.lose()
			return
		}
		s.cur = framedHead{method: string(method), target: string(target)}
		s.hasCL, s.clValue, s.clBad, s.teCount, s.teValue = false, 0, false, 0, ""
		s.http10 = string(proto) == "HTTP/1.0"
		s.state = scanHeaders
	case scanHeaders:
		if len(line) == 0 {
			s.endHead()
			return
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return // Go refuses the request and closes the connection
		}
		value = bytes.TrimSpace(value)
		switch {
		case equalFoldBytes(name, "content-length"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || s.hasCL && n != s.clValue {
				s.clBad = true
			}
			s.hasCL, s.clValue = true, n
		case equalFoldBytes(name, "transfer-encoding"):
			s.teCount++
			s.teValue = string(value)
		}
	case scanChunkSize:
		size, _, _ := bytes.Cut(line, []byte{';'})
		n, err := strconv.ParseUint(string(bytes.TrimSpace(size)), 16, 63)
		if err != nil {
			s.lose()
			return
		}
		if n == 0 {
			s.state = scanTrailer
			return
		}
		s.remain, s.state = int64(n), scanChunkData
	case scanChunkCRLF:
		if len(line) != 0 {
			s.lose()
			return
		}
		s.state = scanChunkSize
	case scanTrailer:
		if len(line) == 0 {
			s.state = scanRequestLine
		}
	}
}

// endHead records the finished head and works out its body as Go does.
func (s *framingScanner) endHead() {
	s.cur.ambiguous = s.teCount > 0 && (s.hasCL || s.http10)
	if len(s.heads) >= maxFramingHeads {
		s.lose()
		return
	}
	s.heads = append(s.heads, s.cur)
	switch {
	case s.teCount > 0 && !s.http10:
		if s.teCount != 1 || !equalFoldBytes([]byte(s.teValue), "chunked") {
			s.lose() // Go answers 501 and closes
			return
		}
		s.state = scanChunkSize
	case s.clBad:
		s.lose() // Go answers 400 and closes
	case s.hasCL && s.clValue > 0:
		s.remain, s.state = s.clValue, scanBody
	default:
		s.state = scanRequestLine
	}
}

// equalFoldBytes reports whether b equals lower, an ASCII lower-case
// string, ignoring ASCII case.
func equalFoldBytes(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
