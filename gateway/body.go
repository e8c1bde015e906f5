package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Limits on a request body the gateway answers without forwarding (a
// denial, a 404, a refusal). Go's server, before it writes a response,
// reads up to 256 KiB of an unread request body to keep the connection,
// and waits for it as long as the client likes: a client that declared a
// body and stalled held the connection with no answer at all. The gateway
// instead reads what is already there, briefly, and otherwise closes the
// connection after answering.
const (
	ownDrainTimeout = 50 * time.Millisecond
	ownDrainLimit   = 64 << 10
)

// requestBody wraps a request's body. It remembers whether the body was
// read to its end and the first error reading it (a stalled, malformed or
// abandoned upload: the client's doing, never the upstream's), and clears
// the body read deadline once the body is complete, so that it cannot
// cut the response that follows.
//
// Read is called by the goroutine that copies the body upstream; the
// other methods by the handler's goroutine.
type requestBody struct {
	io.ReadCloser
	rc *http.ResponseController // of the request's own response writer

	mu       sync.Mutex // guards the fields below
	eof      bool       // Read returned io.EOF
	err      error      // the first other error Read returned
	deadline bool       // a read deadline is set and must be cleared at the end
	done     bool       // the handler has returned: rc must not be used
}

func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == nil {
		return n, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case err == io.EOF:
		b.eof = true
		if b.deadline && !b.done {
			b.deadline = false
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	case b.err == nil:
		b.err = err
	}
	return n, err
}

// state reports whether the body was read to its end, and the error
// reading it, if any.
func (b *requestBody) state() (eof bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.eof, b.err
}

// limit sets a deadline for the rest of the body to arrive by (the
// gateway's body_read_timeout, for a request about to be forwarded).
func (b *requestBody) limit(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.eof || b.done || d <= 0 {
		return
	}
	if b.rc.SetReadDeadline(time.Now().Add(d)) == nil {
		b.deadline = true
	}
}

// finish reads what is left of the body, for at most ownDrainTimeout and
// ownDrainLimit bytes, and reports whether it reached the end. Only for a
// request that is not being forwarded: nothing else may read the body.
func (b *requestBody) finish() bool {
	if eof, err := b.state(); eof || err != nil {
		return eof
	}
	if err := b.rc.SetReadDeadline(time.Now().Add(ownDrainTimeout)); err != nil {
		return false
	}
	b.mu.Lock()
	b.deadline = true // cleared by Read at the end
	b.mu.Unlock()
	_, _ = io.CopyN(io.Discard, b, ownDrainLimit)
	eof, _ := b.state()
	return eof
}

// close marks the handler as returned.
func (b *requestBody) close() {
	b.mu.Lock()
	b.done = true
	b.mu.Unlock()
}

// Client-side failures of a forwarded request, as the access log's
// client_error names them.
const (
	clientBodyTimeout = "body_timeout" // body_read_timeout passed: 408
	clientBadBody     = "bad_body"     // malformed chunked encoding and the like: 400
	clientGone        = "client_gone"  // the client went away: logged as 499
)

// classifyBodyError names a failure to read a request body and the status
// to answer it with.
func classifyBodyError(err error) (kind string, status int) {
	var ne net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return clientBodyTimeout, http.StatusRequestTimeout
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), isConnReset(err):
		return clientGone, statusClientClosed
	}
	return clientBadBody, http.StatusBadRequest
}

// statusClientClosed is nginx's 499: the client closed the connection
// before the gateway could answer. It is never sent, only logged.
const statusClientClosed = 499

// isConnReset reports whether err is the peer resetting the connection.
func isConnReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "read"
}

// inflight counts the requests being served, and keeps the connections
// handed over for protocol switches, so that a shutdown can wait for
// both and say what it had to cut.
type inflight struct {
	n     atomic.Int64
	mu    sync.Mutex // guards conns
	conns map[*trackedConn]struct{}
}

func (f *inflight) add(d int64) { f.n.Add(d) }

// count is the number of requests being served.
func (f *inflight) count() int64 { return f.n.Load() }

// wait returns nil once no request is being served, or ctx's error.
func (f *inflight) wait(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for f.n.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// track registers a hijacked connection until it is closed.
func (f *inflight) track(c net.Conn) net.Conn {
	tc := &trackedConn{Conn: c, f: f}
	f.mu.Lock()
	if f.conns == nil {
		f.conns = make(map[*trackedConn]struct{})
	}
	f.conns[tc] = struct{}{}
	f.mu.Unlock()
	return tc
}

// closeTracked closes every hijacked connection still open.
func (f *inflight) closeTracked() {
	f.mu.Lock()
	conns := make([]*trackedConn, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// trackedConn is a hijacked connection registered with an inflight.
type trackedConn struct {
	net.Conn
	f *inflight
}

func (c *trackedConn) Close() error {
	c.f.mu.Lock()
	delete(c.f.conns, c)
	c.f.mu.Unlock()
	return c.Conn.Close()
}

// DrainError is what Run and Shutdown return when requests were still
// being served (or upgraded connections still open) when shutdown_timeout
// or the Shutdown context ran out, and were cut off.
type DrainError struct {
	Cut int64 // requests and upgraded connections cut off
}

// Error says how many requests were cut.
func (e *DrainError) Error() string {
	return fmt.Sprintf("gateway: shutdown cut %d request(s) still in flight", e.Cut)
}
