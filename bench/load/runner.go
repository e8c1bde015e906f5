package main

import (
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// target is a system under test: the bare proxy or the gateway.
type target struct {
	name string
	kind targetKind
	base string // http://127.0.0.1:port
}

// maxSamples bounds the wrong decisions and errors quoted in a report.
const maxSamples = 5

// phaseResult is one closed-loop run of one class against one target.
type phaseResult struct {
	hist      histogram
	elapsed   time.Duration
	wrong     uint64              // responses that differ from the expectation
	errors    uint64              // requests that got no response at all
	inline    int64               // DPoP proofs made during the phase (the pool ran dry)
	byVariant [numVariants]uint64 // responses by request shape
	samples   []string            // the first few wrong decisions and errors
}

// requests returns the number of requests answered.
func (r *phaseResult) requests() uint64 { return r.hist.count() }

// rate returns answered requests per second.
func (r *phaseResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.requests()) / r.elapsed.Seconds()
}

// add merges o into r (elapsed times add up: phases run one after another).
func (r *phaseResult) add(o *phaseResult) {
	r.hist.merge(&o.hist)
	r.elapsed += o.elapsed
	r.wrong += o.wrong
	r.errors += o.errors
	r.inline += o.inline
	for i, n := range o.byVariant {
		r.byVariant[i] += n
	}
	for _, s := range o.samples {
		if len(r.samples) < maxSamples {
			r.samples = append(r.samples, s)
		}
	}
}

// runner drives the targets.
type runner struct {
	client      *http.Client
	w           *workload
	concurrency int
}

// newClient returns the shared keep-alive client: enough idle connections
// per host that no worker ever waits for one or reconnects, and a timeout
// so that no request can hang the run.
func newClient(concurrency int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 4 * concurrency
	tr.MaxIdleConnsPerHost = 2 * concurrency
	tr.DisableCompression = true // the upstream never compresses; don't ask
	return &http.Client{
		Transport: tr,
		Timeout:   10 * time.Second,
		// A redirect would be a bug in the target; report it as such.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// run sends requests of class c to t from r.concurrency workers in a
// closed loop for d (requests in flight at the deadline complete and are
// counted), then returns what it measured. seed makes the request
// sequence reproducible.
func (r *runner) run(ctx context.Context, t *target, c class, d time.Duration, seed uint64) *phaseResult {
	results := make([]*phaseResult, r.concurrency)
	r.w.pool.inline.Store(0)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := range results {
		res := &phaseResult{}
		results[i] = res
		rng := mrand.New(mrand.NewPCG(seed, uint64(i)))
		wg.Go(func() { r.worker(ctx, t, c, deadline, rng, res) })
	}
	wg.Wait()
	total := &phaseResult{}
	for _, res := range results {
		total.add(res)
	}
	total.elapsed = time.Since(start)
	if t.kind == kindGateway {
		total.inline = r.w.pool.inline.Load()
	}
	return total
}

// worker sends one request after another until deadline.
func (r *runner) worker(ctx context.Context, t *target, c class, deadline time.Time, rng *mrand.Rand, res *phaseResult) {
	note := func(format string, args ...any) {
		if len(res.samples) < maxSamples {
			res.samples = append(res.samples, fmt.Sprintf(format, args...))
		}
	}
	for ctx.Err() == nil && time.Now().Before(deadline) {
		v := pick(c, rng)
		// Built before the clock starts: minting the request, and any
		// proof made because the pool ran dry, are the client's work.
		out, err := r.w.request(ctx, t.kind, t.base, v, rng)
		if err != nil {
			res.errors++
			note("%s %s: building the request: %v", t.name, v, err)
			continue
		}
		start := time.Now()
		resp, err := r.client.Do(out.req)
		if err != nil {
			if ctx.Err() == nil {
				res.errors++
				note("%s %s: %v", t.name, out.v, err)
			}
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		res.hist.record(time.Since(start))
		res.byVariant[out.v]++
		if err := out.want.check(resp.StatusCode, resp.Header); err != nil {
			res.wrong++
			note("%s %s: %v", t.name, out.v, err)
			continue
		}
		if out.used != nil {
			r.w.spent.add(*out.used)
		}
	}
}
