package main

import (
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/tokenguard/tokenguard/bench/internal/loadkit"
)

// target is a system under test: the bare proxy or the gateway.
type target struct {
	name string
	kind targetKind
	base string // http://127.0.0.1:port
	pid  int    // its process, for CPU accounting
}

// maxSamples bounds the wrong decisions and errors quoted in a report.
const maxSamples = 5

// phaseResult is one closed-loop run of one class against one target.
type phaseResult struct {
	hist      loadkit.Histogram
	elapsed   time.Duration
	wrong     uint64              // responses that differ from the expectation
	errors    uint64              // requests that got no response at all
	inline    int64               // DPoP proofs made during the phase (the pool ran dry)
	byVariant [numVariants]uint64 // responses by request shape
	samples   []string            // the first few wrong decisions and errors
	cpu       cpuUse              // CPU time the processes used during the phase
}

// cpuUse is CPU time (user + system) by process, over one or more phases.
// If any reading failed (or the platform has none) the report leaves the
// CPU table out rather than print a wrong figure.
type cpuUse struct {
	target   time.Duration // the bare proxy or the gateway
	upstream time.Duration
	client   time.Duration // this process: load generator and issuer
	phases   int           // phases summed
	failed   bool          // some reading failed
}

func (u cpuUse) ok() bool { return u.phases > 0 && !u.failed }

func (u *cpuUse) add(o cpuUse) {
	u.target += o.target
	u.upstream += o.upstream
	u.client += o.client
	u.phases += o.phases
	u.failed = u.failed || o.failed
}

// cpuSnapshot reads the three processes' CPU time so far.
func (r *runner) cpuSnapshot(t *target) cpuUse {
	tg, ok1 := loadkit.ProcessCPU(t.pid)
	up, ok2 := loadkit.ProcessCPU(r.upstreamPid)
	cl, ok3 := loadkit.SelfCPU()
	return cpuUse{target: tg, upstream: up, client: cl, phases: 1, failed: !ok1 || !ok2 || !ok3}
}

// since is the CPU used in one phase: from the snapshot before to u.
func (u cpuUse) since(before cpuUse) cpuUse {
	return cpuUse{
		target:   u.target - before.target,
		upstream: u.upstream - before.upstream,
		client:   u.client - before.client,
		phases:   1,
		failed:   u.failed || before.failed,
	}
}

// requests returns the number of requests answered.
func (r *phaseResult) requests() uint64 { return r.hist.Count() }

// rate returns answered requests per second.
func (r *phaseResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.requests()) / r.elapsed.Seconds()
}

// add merges o into r (elapsed times add up: phases run one after another).
func (r *phaseResult) add(o *phaseResult) {
	r.hist.Merge(&o.hist)
	r.elapsed += o.elapsed
	r.wrong += o.wrong
	r.errors += o.errors
	r.inline += o.inline
	r.cpu.add(o.cpu)
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
	upstreamPid int // for CPU accounting
}

// run sends requests of class c to t from r.concurrency workers in a
// closed loop for d (requests in flight at the deadline complete and are
// counted), then returns what it measured. seed makes the request
// sequence reproducible.
func (r *runner) run(ctx context.Context, t *target, c class, d time.Duration, seed uint64) *phaseResult {
	results := make([]*phaseResult, r.concurrency)
	r.w.pool.inline.Store(0)
	cpuBefore := r.cpuSnapshot(t)
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
	elapsed := time.Since(start)
	cpu := r.cpuSnapshot(t).since(cpuBefore)
	total := &phaseResult{}
	for _, res := range results {
		total.add(res)
	}
	total.elapsed = elapsed
	total.cpu = cpu
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
		res.hist.Record(time.Since(start))
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
