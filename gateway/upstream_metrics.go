package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenguard/tokenguard/internal/promreg"
)

// Values of the code_class label of tokenguard_upstream_requests_total:
// the class of the upstream's status, or codeClassError when the upstream
// gave no response at all.
const (
	codeClass2xx = iota
	codeClass3xx
	codeClass4xx
	codeClass5xx
	codeClassError
	numCodeClasses
)

var codeClassLabels = [numCodeClasses]string{"2xx", "3xx", "4xx", "5xx", "error"}

// upstreamDurationBuckets span a loopback sidecar's sub-millisecond
// answers to a slow API's tens of seconds (upstream_timeout is 30 s by
// default): prometheus.DefBuckets with 1 ms, 2.5 ms and 30 s added.
var upstreamDurationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// upstreamMetrics counts and times the upstream's answers to the requests
// the gateway forwards. Requests the gateway answers itself (denials, 404,
// overload, refusals) never reach the upstream and are not counted.
type upstreamMetrics struct {
	requests [numCodeClasses]prometheus.Counter // resolved once: no label lookup per request
	duration prometheus.Histogram
}

func newUpstreamMetrics(reg prometheus.Registerer) (*upstreamMetrics, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenguard_upstream_requests_total",
		Help: "Requests forwarded to the upstream, by the class of its status (2xx, 3xx, 4xx, 5xx), or error when it gave no response (unreachable, timeout, response headers too large). Not counted: requests the gateway answered itself, requests the client abandoned before the upstream answered, and protocol switches (101).",
	}, []string{"code_class"})
	m := &upstreamMetrics{
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tokenguard_upstream_duration_seconds",
			Help:    "Time from handing a request to the upstream connection pool until the upstream's response body ended (or the request failed), for every request counted in tokenguard_upstream_requests_total.",
			Buckets: upstreamDurationBuckets,
		}),
	}
	// A reloaded gateway's new proxy counts on into the same series.
	r := &promreg.Registration{Reg: reg}
	promreg.Add(r, &vec)
	promreg.Add(r, &m.duration)
	if r.Err != nil {
		return nil, fmt.Errorf("tokenguard: registering upstream metrics: %w", r.Err)
	}
	for i, l := range codeClassLabels {
		m.requests[i] = vec.WithLabelValues(l) // every class is exported from the start, at 0
	}
	return m, nil
}

// instrumentUpstream registers the upstream metrics on reg and wraps p's
// Transport so that every upstream round trip is counted and timed.
func instrumentUpstream(p *httputil.ReverseProxy, reg prometheus.Registerer) error {
	m, err := newUpstreamMetrics(reg)
	if err != nil {
		return err
	}
	p.Transport = &timedTransport{next: p.Transport, m: m}
	return nil
}

// codeClass returns the code_class of an upstream status, or -1 for one
// that is not counted: 101 (the only 1xx a transport returns as the
// answer; what follows is another protocol, and the connection's lifetime
// is no latency) and anything outside 100..599.
func codeClass(status int) int {
	if status < 200 || status > 599 {
		return -1
	}
	return status/100 - 2
}

// timedTransport measures what Envoy calls upstream_rq_time and nginx
// $upstream_response_time: from the moment the request is handed to the
// transport (before a pooled connection is taken or a new one dialled)
// until the upstream's response is complete, i.e. its body has been read
// to the end, failed, or was closed unread. That includes connecting,
// sending the request (whose body streams at the client's pace), the
// upstream's work and receiving the body, which the gateway streams to the
// client as it arrives (a client that reads slowly lengthens it, as with
// nginx's proxy_buffering off). A request that gets no response is timed
// until the transport gave up.
type timedTransport struct {
	next http.RoundTripper
	m    *upstreamMetrics
}

func (t *timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	res, err := t.next.RoundTrip(req)
	if err != nil {
		// The same test as the ErrorHandler's: a client that went away,
		// or whose body could not be read, is no upstream error.
		if _, _, client := clientFailure(req.Context(), recordFrom(req.Context()), err); !client {
			t.m.requests[codeClassError].Inc()
			t.m.duration.Observe(time.Since(start).Seconds())
		}
		return res, err
	}
	c := codeClass(res.StatusCode)
	if c < 0 {
		return res, nil // and a 101's Body must stay an io.ReadWriteCloser
	}
	t.m.requests[c].Inc()
	if res.Body == nil || res.Body == http.NoBody {
		t.m.duration.Observe(time.Since(start).Seconds())
		return res, nil
	}
	var tb *timedBody
	if rec := recordFrom(req.Context()); rec != nil {
		tb = &rec.upstreamBody // one allocation fewer: the record lives as long as the request
	} else {
		tb = new(timedBody)
	}
	*tb = timedBody{ReadCloser: res.Body, h: t.m.duration, start: start}
	res.Body = tb
	return res, nil
}

// timedBody observes the time since start once, when the body ends: Read
// returns io.EOF or an error, or it is closed. ReverseProxy reads and
// closes it on the request's goroutine only.
type timedBody struct {
	io.ReadCloser
	h     prometheus.Histogram
	start time.Time
	done  bool
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.finish()
	}
	return n, err
}

func (b *timedBody) Close() error {
	b.finish()
	return b.ReadCloser.Close()
}

func (b *timedBody) finish() {
	if !b.done {
		b.done = true
		b.h.Observe(time.Since(b.start).Seconds())
	}
}
