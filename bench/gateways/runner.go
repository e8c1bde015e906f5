package main

import (
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenguard/tokenguard/bench/internal/loadkit"
)

// peer is a gateway as started for this run.
type peer struct {
	spec    *peerSpec
	version string
	base    string // http://127.0.0.1:port; "" when skipped
	child   *loadkit.Child
	pid     int    // the process (tree) whose CPU time is measured
	skipped string // why it is not measured; "" when it is
	corr    correctness
	// uncachedNext is the first token of tokens.uncached this peer has
	// not been sent yet.
	uncachedNext int
}

func (s *peerSpec) supports(sc string) bool { return slices.Contains(s.scenarios, sc) }

// wantAccept is the expectation for a valid request naming subject.
func (p *peer) wantAccept(subject string) want {
	if p.spec.setsIdentity {
		return want{accept: true, subject: subject}
	}
	return want{accept: true}
}

// wantRefuse is the expectation for an invalid request.
func (p *peer) wantRefuse() want { return want{refuse: p.spec.refuseStatuses} }

// maxSamples bounds the wrong decisions and errors quoted per cell.
const maxSamples = 5

// phaseResult is one closed-loop run of one scenario against one peer.
type phaseResult struct {
	hist    loadkit.Histogram
	elapsed time.Duration
	wrong   uint64 // responses that differ from the expectation
	errors  uint64 // requests that got no response at all
	inline  int64  // tokens or proofs made during the phase (the pool ran dry)
	cpu     time.Duration
	cpuOK   bool
	samples []string
}

func (r *phaseResult) requests() uint64 { return r.hist.Count() }

func (r *phaseResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.requests()) / r.elapsed.Seconds()
}

// add merges o into r (elapsed times and CPU add up).
func (r *phaseResult) add(o *phaseResult) {
	first := r.elapsed == 0 && r.requests() == 0
	r.hist.Merge(&o.hist)
	r.elapsed += o.elapsed
	r.wrong += o.wrong
	r.errors += o.errors
	r.inline += o.inline
	r.cpu += o.cpu
	r.cpuOK = (first || r.cpuOK) && o.cpuOK
	for _, s := range o.samples {
		if len(r.samples) < maxSamples {
			r.samples = append(r.samples, s)
		}
	}
}

// cpuPerRequest returns the peer's CPU time per answered request in µs,
// or false when unknown.
func (r *phaseResult) cpuPerRequest() (float64, bool) {
	if !r.cpuOK || r.requests() == 0 {
		return 0, false
	}
	return float64(r.cpu) / float64(r.requests()) / 1e3, true
}

// feed hands out the requests of one phase; next is safe for concurrent
// use.
type feed struct {
	sc   string
	p    *peer
	t    *tokens
	negs []string // the invalid mix: negative cases the peer refused

	uncachedBase int
	taken        atomic.Int64 // uncached tokens or proofs handed out
	proofs       []proof
	inline       atomic.Int64
}

// newFeed prepares a phase of scenario sc against p expected to send
// about n requests: uncached tokens and DPoP proofs are made now, before
// the clock starts.
func newFeed(ctx context.Context, sc string, p *peer, t *tokens, n int) (*feed, error) {
	f := &feed{sc: sc, p: p, t: t, negs: p.corr.refused, uncachedBase: p.uncachedNext}
	switch sc {
	case scBearerUncached:
		if err := t.mintUncached(ctx, p.uncachedNext+n-len(t.uncached)); err != nil {
			return nil, fmt.Errorf("minting tokens: %w", err)
		}
	case scDPoP:
		proofs, err := t.makeProofs(ctx, p.base, n)
		if err != nil {
			return nil, fmt.Errorf("making DPoP proofs: %w", err)
		}
		f.proofs = proofs
	case scInvalid:
		if len(f.negs) == 0 {
			return nil, fmt.Errorf("%s refused none of the invalid requests", p.spec.name)
		}
	}
	return f, nil
}

// done moves the peer's uncached cursor past the tokens this phase used.
func (f *feed) done() {
	if f.sc == scBearerUncached {
		f.p.uncachedNext = min(f.uncachedBase+int(f.taken.Load()), len(f.t.uncached))
	}
}

// next returns the next request and its expectation.
func (f *feed) next(ctx context.Context, rng *mrand.Rand) (*http.Request, want, error) {
	var auth, proofJWT string
	w := f.p.wantRefuse()
	switch f.sc {
	case scPassthrough, scBearerCached:
		c := f.t.bearer[rng.IntN(len(f.t.bearer))]
		auth, w = "Bearer "+c.Token, f.p.wantAccept(c.Subject)
	case scBearerUncached:
		i := f.uncachedBase + int(f.taken.Add(1)-1)
		var c credential
		if i < len(f.t.uncached) {
			c = f.t.uncached[i]
		} else {
			f.inline.Add(1)
			sub := fmt.Sprintf("gw-inline-%d", i)
			tok, err := f.t.is.Mint(loadkit.RouteScope, tokenTTL, map[string]any{"sub": sub})
			if err != nil {
				return nil, want{}, err
			}
			c = credential{tok, sub}
		}
		auth, w = "Bearer "+c.Token, f.p.wantAccept(c.Subject)
	case scDPoP:
		i := int(f.taken.Add(1) - 1)
		var pr proof
		if i < len(f.proofs) {
			pr = f.proofs[i]
		} else {
			f.inline.Add(1)
			jwt, err := f.t.newProof(f.p.base, i%len(f.t.dpop))
			if err != nil {
				return nil, want{}, err
			}
			pr = proof{i % len(f.t.dpop), jwt}
		}
		c := f.t.dpop[pr.cred]
		auth, proofJWT, w = "DPoP "+c.Token, pr.jwt, f.p.wantAccept(c.Subject)
	case scInvalid:
		auth = f.t.negatives[f.negs[rng.IntN(len(f.negs))]]
	}
	req, err := newRequest(ctx, f.p.base, auth, proofJWT)
	return req, w, err
}

// runner drives the peers.
type runner struct {
	client      *http.Client
	concurrency int
}

// run sends f's requests from r.concurrency workers in a closed loop for
// d (requests in flight at the deadline complete and are counted), and
// measures the peer's process tree's CPU time around it.
func (r *runner) run(ctx context.Context, f *feed, d time.Duration, seed uint64) *phaseResult {
	results := make([]*phaseResult, r.concurrency)
	pid := f.p.pid
	cpu0, ok0 := loadkit.TreeCPU(pid)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := range results {
		res := &phaseResult{}
		results[i] = res
		rng := mrand.New(mrand.NewPCG(seed, uint64(i)))
		wg.Go(func() { r.worker(ctx, f, deadline, rng, res) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, ok1 := loadkit.TreeCPU(pid)
	total := &phaseResult{cpuOK: true}
	for _, res := range results {
		res.cpuOK = true
		total.add(res)
	}
	total.elapsed = elapsed
	total.cpu = cpu1 - cpu0
	total.cpuOK = ok0 && ok1
	total.inline = f.inline.Load()
	f.done()
	return total
}

// worker sends one request after another until deadline.
func (r *runner) worker(ctx context.Context, f *feed, deadline time.Time, rng *mrand.Rand, res *phaseResult) {
	name := f.p.spec.name + " " + f.sc
	note := func(format string, args ...any) {
		if len(res.samples) < maxSamples {
			res.samples = append(res.samples, fmt.Sprintf(format, args...))
		}
	}
	for ctx.Err() == nil && time.Now().Before(deadline) {
		// Built before the clock starts: minting, and any token or proof
		// made because the pool ran dry, are the client's work.
		req, w, err := f.next(ctx, rng)
		if err != nil {
			res.errors++
			note("%s: building the request: %v", name, err)
			continue
		}
		start := time.Now()
		resp, err := r.client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				res.errors++
				note("%s: %v", name, err)
			}
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		res.hist.Record(time.Since(start))
		if err := w.check(resp.StatusCode, resp.Header); err != nil {
			res.wrong++
			note("%s: %v", name, err)
		}
	}
}
