package netutil

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// UpstreamTransport is the connection pool a reverse proxy keeps to its
// upstream: never through an HTTP_PROXY from the environment, plenty of
// idle keep-alive connections per host (so a burst does not churn
// connections), bounded dial and response-header waits. The gateway uses
// it, and so does bench/load's bare proxy, so that the two are compared
// on equal terms.
func UpstreamTransport(dialTimeout, responseHeaderTimeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   dialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true, // for https upstreams; plain http stays HTTP/1.1
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: responseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
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
