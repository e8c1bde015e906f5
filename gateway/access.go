package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/middleware"
)

// headerRequestID carries the request id: accepted from the client when
// it is safe (see validRequestID), forwarded to the upstream and returned
// on every response, so a client's report, the access log and the
// upstream's logs can be joined.
const headerRequestID = "X-Request-Id"

// maxRequestIDLen bounds an inbound request id.
const maxRequestIDLen = 128

// validRequestID accepts 1 to 128 characters of [A-Za-z0-9._:-]: enough
// for UUIDs, ULIDs and trace ids, and nothing that could forge a log line
// or a header.
func validRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// newRequestID returns 16 random bytes in hex. crypto/rand never fails on
// supported platforms (Go 1.24+) and costs well under a microsecond.
func newRequestID() string {
	var b [16]byte
	var h [32]byte
	_, _ = rand.Read(b[:])
	hex.Encode(h[:], b[:])
	return string(h[:]) // the one allocation
}

// accessRecord is what one request's access-log line says. The handler
// chain fills it in; it travels in the request context so the guard's
// decision hook and the proxy's callbacks can reach it. It is only
// touched by the goroutine serving the request.
type accessRecord struct {
	id             string
	decided        bool
	reason         middleware.Reason
	session        bool   // authenticated by a bff session cookie
	upstreamStatus int    // 0: no upstream response
	upstreamError  string // "timeout", "unreachable", "response_headers_too_large"; "" if none
	clientError    string // clientBodyTimeout, clientBadBody, clientGone; "" if none
	overloaded     bool
	rejected       string       // why the gateway refused the request itself: "method_not_allowed", "ambiguous_framing"
	forwarded      bool         // the proxy took the request: its body is the upstream's to read
	body           *requestBody // nil for a request without a body
	denial         []slog.Attr  // the guard's details of a denial (iss, kid, alg, err): denial_log.go

	// backchannel is the result of a back-channel logout request
	// ("ended", "no_session", "invalid", "replayed", "unavailable"),
	// backchannelSessions how many sessions it ended; "" for any other.
	backchannel         string
	backchannelSessions int

	public    bool // served by a public route: no token was asked for
	preflight bool // a CORS preflight, answered by the gateway
	// forwardedMethod and forwardedPath are the request an auth
	// subrequest (forward_auth) described; "" for any other request.
	forwardedMethod, forwardedPath string

	// upstreamBody is the upstream response's body wrapper
	// (timedTransport), kept here to save it an allocation of its own.
	upstreamBody timedBody
}

type accessKey struct{}

// refuse answers a request the gateway turns away itself: status and
// {"error": code}, with reason as the access log's reject reason.
func refuse(w http.ResponseWriter, r *http.Request, status int, reason, code string) {
	if rec := recordFrom(r.Context()); rec != nil {
		rec.rejected = reason
	}
	writeJSONError(w, status, code)
}

func recordFrom(ctx context.Context) *accessRecord {
	rec, _ := ctx.Value(accessKey{}).(*accessRecord)
	return rec
}

// onDecision is the guard's middleware.Config.OnDecision.
func onDecision(r *http.Request, reason middleware.Reason) {
	if rec := recordFrom(r.Context()); rec != nil {
		rec.decided, rec.reason = true, reason
		rec.session = bff.FromSession(r.Context())
	}
}

// accessLog assigns the request id, serves the request through next and
// writes one "access" line at Info level (none, and no work building one,
// when log_level is above info). The line never holds the query
// string (it may carry access_token=), a header value, a token or a
// proof: only the method, the path, outcomes, sizes, the id and the TCP
// peer.
//
// It also wraps the request body (requestBody), so that a response the
// gateway writes itself never waits for a stalled upload, and counts the
// request in inflight while it runs.
func accessLog(next http.Handler, log *slog.Logger, inflight *inflight, writeTimeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		inflight.add(1)
		defer inflight.add(-1)
		// The record and the writer are made in one allocation, as they
		// live as long.
		ra := &recordAndWriter{}
		rec, rw := &ra.rec, &ra.rw
		// r.Header[headerRequestID] is Get and Values: the name is canonical.
		if ids := r.Header[headerRequestID]; len(ids) == 1 && validRequestID(ids[0]) {
			rec.id = ids[0]
		} else {
			rec.id = newRequestID()
		}
		*rw = recordingWriter{ResponseWriter: w, deadline: findWriteDeadliner(w), writeTimeout: writeTimeout,
			rec: rec, proto1: r.ProtoMajor == 1, inflight: inflight}
		r = r.WithContext(context.WithValue(r.Context(), accessKey{}, rec))
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			rec.body = &requestBody{ReadCloser: r.Body, rc: http.NewResponseController(w)}
			r.Body = rec.body
			defer rec.body.close()
		}
		defer func() {
			// ReverseProxy aborts a response whose body copy failed by
			// panicking with http.ErrAbortHandler: log it, then let the
			// server abort the connection as intended.
			v := recover()
			if log.Enabled(r.Context(), slog.LevelInfo) {
				logAccess(log, r, rec, rw, start, v)
			}
			if v != nil {
				panic(v)
			}
		}()
		next.ServeHTTP(rw, r)
		// The server flushes what is buffered after the handler returns:
		// that write gets its full time too.
		rw.extendWrite()
	})
}

// logAccess writes the access line of r; v is what the handler panicked
// with, if anything.
func logAccess(log *slog.Logger, r *http.Request, rec *accessRecord, rw *recordingWriter, start time.Time, v any) {
	status := rec.loggedStatus(rw.status, v != nil)
	decision, reason := rec.outcome(status)
	attrs := []slog.Attr{
		slog.String("request_id", rec.id),
		slog.String("method", r.Method),
		slog.String("path", r.URL.EscapedPath()),
		slog.Int("status", status),
		slog.String("decision", decision),
	}
	if reason != "" {
		attrs = append(attrs, slog.String("reason", reason))
	}
	attrs = append(attrs, rec.denial...)
	if rec.forwardedMethod != "" {
		attrs = append(attrs, slog.String("forwarded_method", rec.forwardedMethod), slog.String("forwarded_path", rec.forwardedPath))
	}
	if rec.session {
		// Never the session id: the cookie is a credential.
		attrs = append(attrs, slog.String("auth", "session"))
	}
	if rec.backchannel != "" {
		// Never the logout token, its sid or its subject.
		attrs = append(attrs, slog.String("backchannel_logout", rec.backchannel), slog.Int("sessions_ended", rec.backchannelSessions))
	}
	attrs = append(attrs,
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
		slog.Int64("bytes", rw.bytes),
		slog.String("remote", r.RemoteAddr),
		slog.String("proto", r.Proto),
	)
	if rec.upstreamStatus != 0 {
		attrs = append(attrs, slog.Int("upstream_status", rec.upstreamStatus))
	}
	if rec.upstreamError != "" {
		attrs = append(attrs, slog.String("upstream_error", rec.upstreamError))
	}
	if rec.clientError != "" {
		attrs = append(attrs, slog.String("client_error", rec.clientError))
	}
	if v != nil {
		attrs = append(attrs, slog.Bool("aborted", true))
	}
	log.LogAttrs(r.Context(), slog.LevelInfo, "access", attrs...)
}

// loggedStatus is the status the access log reports for a response whose
// writer recorded written (0: nothing written) and that was aborted or
// not: 499 when the client went away, 200 when nothing was written.
func (rec *accessRecord) loggedStatus(written int, aborted bool) int {
	switch {
	case rec.clientError == clientGone:
		return statusClientClosed // whatever was written, nobody read it
	case written == 0 && !aborted:
		return http.StatusOK // nothing written: net/http sends 200
	}
	return written
}

// outcome is the access log's decision ("allow", "deny", "public",
// "preflight", "reject", "not_found" or "none") and reason for a request
// answered with status (as loggedStatus gives it).
func (rec *accessRecord) outcome(status int) (decision, reason string) {
	switch {
	case rec.decided && rec.reason == middleware.ReasonOK:
		return "allow", string(rec.reason)
	case rec.decided:
		return "deny", string(rec.reason)
	case rec.public:
		return "public", ""
	case rec.preflight:
		return "preflight", ""
	case rec.overloaded:
		return "reject", "overloaded"
	case rec.rejected != "":
		return "reject", rec.rejected
	case status == http.StatusNotFound:
		return "not_found", ""
	}
	return "none", ""
}

// recordAndWriter is a request's access record and response writer,
// allocated together.
type recordAndWriter struct {
	rec accessRecord
	rw  recordingWriter
}

// recordingWriter counts the status and body bytes for the access log
// and stamps the request id on the response. Unwrap lets
// http.ResponseController (which ReverseProxy uses to flush) reach the
// server's writer; Hijack is implemented directly so that an upgraded
// connection is logged as 101.
type recordingWriter struct {
	http.ResponseWriter
	deadline     writeDeadliner // ResponseWriter's, as http.ResponseController finds it; nil: none
	writeTimeout time.Duration  // response_write_timeout; 0: none
	armed        time.Time      // when extendWrite last set the write deadline; zero: never
	rec          *accessRecord
	proto1       bool // HTTP/1.x: an unread body holds up the connection
	inflight     *inflight
	status       int
	bytes        int64
}

func (w *recordingWriter) WriteHeader(code int) {
	if w.status == 0 || w.status < 200 { // informational responses come before the final one
		w.status = code
		if code >= 200 || code == http.StatusSwitchingProtocols {
			// Set last, so an upstream's own X-Request-Id cannot replace it.
			// Set; the name is canonical.
			w.ResponseWriter.Header()[headerRequestID] = []string{w.rec.id}
		}
		if code >= 200 {
			w.finishBody()
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

// finishBody makes sure an unread request body cannot hold up the final
// response. A response the gateway writes itself (not forwarded) reads
// what is left of the body for at most ownDrainTimeout; whenever the body
// has not been read to its end, the response says Connection: close,
// which also stops Go's server from reading (and waiting for) up to
// 256 KiB more of it before sending the response.
func (w *recordingWriter) finishBody() {
	b := w.rec.body
	if b == nil || !w.proto1 {
		return
	}
	done := false
	if w.rec.forwarded {
		done, _ = b.state()
	} else {
		done = b.finish()
	}
	if !done {
		w.ResponseWriter.Header().Set("Connection", "close")
	}
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.extendWrite()
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// extendWrite gives the next write to the client writeTimeout to get
// through (response_write_timeout): a client that stops reading holds its
// connection, and the request's slot, that long and no longer, while a
// stream that is only quiet between writes is never cut.
//
// A deadline set less than rearmSlack(writeTimeout) ago is left as it is:
// the write then has at least writeTimeout less that slack (at most
// 1 ms). Setting a deadline costs a runtime timer update, and an
// ordinary response would otherwise set it twice within microseconds
// (its one Write, then once more when the handler returns), a stream
// once per write.
func (w *recordingWriter) extendWrite() {
	if w.writeTimeout <= 0 || w.deadline == nil {
		return
	}
	now := time.Now()
	if !w.armed.IsZero() && now.Sub(w.armed) < rearmSlack(w.writeTimeout) {
		return
	}
	w.armed = now
	_ = w.deadline.SetWriteDeadline(now.Add(w.writeTimeout))
}

// writeDeadliner is what http.ResponseController.SetWriteDeadline calls.
type writeDeadliner interface {
	SetWriteDeadline(time.Time) error
}

// findWriteDeadliner returns what http.ResponseController's
// SetWriteDeadline would call on w, unwrapping it as that does; nil when
// nothing would (http.ErrNotSupported). Found once per request: a
// ResponseController, made per request, would be an allocation.
func findWriteDeadliner(w http.ResponseWriter) writeDeadliner {
	for {
		switch t := w.(type) {
		case writeDeadliner:
			return t
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return nil
		}
	}
}

// rearmSlack is how long after setting a write deadline extendWrite
// leaves it alone: a thousandth of the timeout, at most 1 ms.
func rearmSlack(writeTimeout time.Duration) time.Duration {
	return min(writeTimeout/1000, time.Millisecond)
}

func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush is here (not only through Unwrap) for handlers that type-assert
// http.Flusher.
func (w *recordingWriter) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.extendWrite()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands over the connection for a protocol switch. Bytes the client
// sent right after its upgrade request, which the server has already
// buffered, are read first from the connection returned: ReverseProxy
// copies from the connection itself, and would otherwise drop them. The
// connection is registered with inflight, so a shutdown that runs out of
// time can close it.
func (w *recordingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.ResponseWriter.Header().Set(headerRequestID, w.rec.id) // ReverseProxy sends these headers with the 101
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return c, brw, err
	}
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		c = &prefixConn{Conn: c, prefix: bytes.Clone(early)}
		brw.Reader.Reset(c) // brw's own reads, if any, see the same bytes once
	}
	return w.inflight.track(c), brw, nil
}

// prefixConn is a connection whose first reads return prefix.
type prefixConn struct {
	net.Conn
	mu     sync.Mutex // guards prefix
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

// classifyUpstreamError maps a ReverseProxy error that is the upstream's
// to the status the client gets and the access log's upstream_error: a
// timeout (dial, TLS handshake, or waiting for response headers) is 504, a
// response whose headers are larger than upstream_max_response_header_bytes
// 502 response_headers_too_large, anything else 502 unreachable.
func classifyUpstreamError(err error) (status int, kind string) {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return http.StatusGatewayTimeout, "timeout"
	case strings.Contains(err.Error(), "response headers exceeded"):
		// net/http's only report of MaxResponseHeaderBytes: a plain error.
		return http.StatusBadGateway, "response_headers_too_large"
	}
	return http.StatusBadGateway, "unreachable"
}
