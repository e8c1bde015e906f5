package netutil

import (
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// ProxySettings are the upstream limits ConfigureProxy applies.
type ProxySettings struct {
	DialTimeout            time.Duration // 0: no dial timeout
	ResponseHeaderTimeout  time.Duration // 0: none
	MaxResponseHeaderBytes int64         // 0: DefaultMaxResponseHeaderBytes
}

// DefaultMaxResponseHeaderBytes bounds the response headers a proxy of
// ours relays from the upstream (net/http's own default is 10 MiB, which
// an upstream would pass through to every client). nginx stops at 4 to
// 8 KiB, Envoy at 60 KiB.
const DefaultMaxResponseHeaderBytes = 64 << 10

// ConfigureProxy gives p what every reverse proxy of tokenguard's shares:
// the gateway, and the bare proxies it is measured against (bench/load,
// gateway's BenchmarkProxyOverhead), which must differ from it only
// in authentication. It sets:
//
//   - the connection pool to the upstream (upstreamTransport), with the
//     given dial and response-header timeouts and response header limit;
//   - copy buffers lent from a BufferPool rather than allocated and zeroed
//     for every response;
//   - the flush interval. Streamed responses (server-sent events, and any
//     body of unknown length, which arrives chunked: long polls, chunked
//     downloads) are flushed to the client after every chunk read from the
//     upstream: ReverseProxy does that by itself for those. Every other
//     response is flushed at most proxyFlushInterval after its headers or
//     a write: a slow body of known length (a trickling download) is never
//     held back for long, while a response that completes sooner goes out
//     in one write when it ends. (-1, flush after every write, would also
//     flush the headers of every ordinary response separately, on a timer
//     goroutine: an extra write and wake-up per request.)
func ConfigureProxy(p *httputil.ReverseProxy, s ProxySettings) {
	if s.MaxResponseHeaderBytes == 0 {
		s.MaxResponseHeaderBytes = DefaultMaxResponseHeaderBytes
	}
	p.Transport = upstreamTransport(s)
	p.BufferPool = &BufferPool{}
	p.FlushInterval = proxyFlushInterval
}

// proxyFlushInterval bounds how long a response that is not a stream
// waits in a proxy's write buffers (see ConfigureProxy).
const proxyFlushInterval = 100 * time.Millisecond

// upstreamTransport is the connection pool to the upstream: the standard
// library's DefaultTransport settings, except
//   - no Proxy: HTTP_PROXY/HTTPS_PROXY in the gateway's environment must
//     not silently route verified requests, with their identity headers,
//     through another host;
//   - many idle connections per host, because a gateway talks to one
//     upstream (DefaultTransport keeps 2), so a burst does not churn
//     connections;
//   - a dial timeout (the gateway's upstream_dial_timeout) and a
//     response-header timeout (upstream_timeout), both answered with 504.
//     There is no overall timeout: bodies stream for as long as they need;
//   - a bound on the response headers (upstream_max_response_header_bytes):
//     more is a 502.
func upstreamTransport(s ProxySettings) *http.Transport {
	return &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   s.DialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:      true, // for https upstreams; plain http stays HTTP/1.1
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  s.ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: s.MaxResponseHeaderBytes,
	}
}

// copyBufferSize is the size of httputil.ReverseProxy's own copy buffer.
const copyBufferSize = 32 << 10

// BufferPool lends httputil.ReverseProxy its copy buffers (it satisfies
// httputil.BufferPool). Without one, ReverseProxy allocates and zeroes a
// fresh 32 KiB buffer for every response it copies, which under load is
// most of a proxy's garbage and so most of its garbage collection. A
// lent buffer still holds bytes of an earlier response; ReverseProxy only
// ever writes out what it has just read into it. The zero value is ready
// to use.
type BufferPool struct {
	p sync.Pool // of *[copyBufferSize]byte: a pointer, so Put does not allocate
}

// Get returns a copyBufferSize buffer.
func (b *BufferPool) Get() []byte {
	if a, ok := b.p.Get().(*[copyBufferSize]byte); ok {
		return a[:]
	}
	return make([]byte, copyBufferSize)
}

// Put takes back a buffer that Get returned; anything else is dropped.
func (b *BufferPool) Put(buf []byte) {
	if len(buf) != copyBufferSize || cap(buf) != copyBufferSize {
		return
	}
	b.p.Put((*[copyBufferSize]byte)(buf))
}
