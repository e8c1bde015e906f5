// Command load measures the tokenguard gateway under load against a bare
// httputil.ReverseProxy in front of the same upstream (issue 6, "Gateway
// under load").
//
// Run it from bench/:
//
//	go run ./load [-duration 10s] [-rounds 5] [-concurrency 16] [-out results/load.md] [-gateway PATH] [-check]
//
// It builds cmd/tokenguard (unless -gateway names a binary) and starts, on
// 127.0.0.1 only: an upstream and the bare proxy (each a copy of this
// binary in its own process), a development issuer (in this process: its
// JWKS is fetched once, off the hot path) and the gateway, configured with
// DPoP allowed and the in-memory replay store. It then drives each target
// with the same request shapes, in a closed loop from -concurrency workers
// over one keep-alive client:
//
//   - cached Bearer: valid tokens from a pool of 8, so the gateway's
//     verified-token cache hits;
//   - DPoP: DPoP-bound tokens, each request with a fresh proof (made
//     before the clock starts) whose htm, htu and ath match it;
//   - invalid: no credential, a tampered signature, an expired token, a
//     DPoP-bound token sent as Bearer, a replayed proof;
//   - mixed: 70 % cached Bearer, 20 % DPoP, 10 % invalid.
//
// Each (target, class) gets -duration of measurement, split into -rounds
// phases; the targets alternate within each round (bare first in odd
// rounds, gateway first in even ones) so that the machine's changing load
// hits both alike. Latencies go into fixed log-linear histograms (1.6 %
// buckets); the report gives throughput, p50 and p99 per target and class,
// the gateway/bare ratios, whether the gateway's p50 for cached Bearer is
// within 1.15× the bare proxy's, and the number of wrong decisions.
//
// Every response is checked: from the gateway, a valid request must reach
// the upstream (which echoes the X-Tokenguard-Subject it saw) as its
// token's subject, replacing the forged one every request carries, and an
// invalid one must get 401 without reaching it; from the bare proxy,
// everything must reach the upstream. The exit status is 1 if any response
// is wrong, any request fails, a phase sends nothing or a child process
// dies; missing the latency target is reported, not fatal (a shared
// machine's noise is not a regression).
//
// -check is the CI smoke test: 1 s per (target, class) in 1 round unless
// given otherwise, with the same checks.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tokenguard/tokenguard/bench/internal/loadkit"
)

func main() {
	if loadkit.IsHelper(os.Args[1:]) {
		os.Exit(loadkit.RunHelper("load", os.Args[1:], os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command-line flags.
type options struct {
	duration    time.Duration // per (target, class), over all rounds
	rounds      int
	concurrency int
	out         string // "" means stdout only
	gateway     string // "" means build cmd/tokenguard
	check       bool
	seed        uint64
}

// Limits on the flags: a run must stay bounded.
const (
	maxDuration    = 10 * time.Minute // 8 phases of this fit well within the tokens' tokenTTL
	minPhase       = 100 * time.Millisecond
	maxRounds      = 100
	maxConcurrency = 1024
	warmup         = 300 * time.Millisecond // per target, unmeasured (but checked)
)

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per (target, class), split over the rounds")
	fs.IntVar(&o.rounds, "rounds", 5, "rounds: each measures every (target, class) for duration/rounds")
	fs.IntVar(&o.concurrency, "concurrency", 16, "concurrent workers (closed loop)")
	fs.StringVar(&o.out, "out", "", "also write the markdown report to `file` (directories are created)")
	fs.StringVar(&o.gateway, "gateway", "", "tokenguard `binary` to run (default: go build ../cmd/tokenguard)")
	fs.BoolVar(&o.check, "check", false, "CI smoke run: 1s and 1 round unless -duration/-rounds are given")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the request sequence")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: go run ./load [flags]   (from bench/)\n\nCompares the tokenguard gateway with a bare reverse proxy under load.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.check {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["duration"] {
			o.duration = time.Second
		}
		if !set["rounds"] {
			o.rounds = 1
		}
	}
	switch {
	case o.duration <= 0 || o.duration > maxDuration:
		return o, fmt.Errorf("-duration must be in (0, %v], got %v", maxDuration, o.duration)
	case o.rounds < 1 || o.rounds > maxRounds:
		return o, fmt.Errorf("-rounds must be in [1, %d], got %d", maxRounds, o.rounds)
	case o.concurrency < 1 || o.concurrency > maxConcurrency:
		return o, fmt.Errorf("-concurrency must be in [1, %d], got %d", maxConcurrency, o.concurrency)
	case o.duration/time.Duration(o.rounds) < minPhase:
		return o, fmt.Errorf("-duration/-rounds must be at least %v per phase, got %v", minPhase, o.duration/time.Duration(o.rounds))
	}
	return o, nil
}

// run is the load generator; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "load:", err)
		return 2
	}
	rep, err := measure(ctx, o, stderr)
	if err != nil {
		if ctx.Err() != nil {
			err = errors.New("interrupted; child processes stopped, nothing reported")
		}
		fmt.Fprintln(stderr, "load:", err)
		return 1
	}
	md := rep.markdown()
	fmt.Fprint(stdout, md)
	if o.out != "" {
		if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err == nil {
			err = os.WriteFile(o.out, []byte(md), 0o644)
		}
		if err != nil {
			fmt.Fprintln(stderr, "load:", err)
			return 1
		}
	}
	if problems := rep.failures(); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, "load: FAIL:", p)
		}
		return 1
	}
	return 0
}

// measure starts everything, runs every phase and stops everything.
func measure(ctx context.Context, o options, log io.Writer) (*report, error) {
	rep := newReport(o)
	dir, err := os.MkdirTemp("", "tokenguard-load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	bin := o.gateway
	if bin == "" {
		fmt.Fprintln(log, "load: building cmd/tokenguard")
		if bin, err = loadkit.BuildGateway(ctx, dir); err != nil {
			return nil, err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}

	var children []*loadkit.Child
	defer func() {
		for _, c := range children {
			c.Stop()
		}
	}()
	upstream, upAddr, err := loadkit.StartHelper(ctx, self, "upstream")
	if err != nil {
		return nil, err
	}
	children = append(children, upstream)
	bare, bareAddr, err := loadkit.StartHelper(ctx, self, "proxy", "-upstream", "http://"+upAddr)
	if err != nil {
		return nil, err
	}
	children = append(children, bare)

	// The issuer's keys are fetched at the gateway's start; no refresh
	// during the run.
	issuerURL, stopIssuer, is, err := loadkit.StartIssuer("load-es256", nil)
	if err != nil {
		return nil, err
	}
	defer stopIssuer()

	gw, gwURL, err := loadkit.StartGateway(ctx, bin, dir, "http://"+upAddr, issuerURL)
	if err != nil {
		return nil, err
	}
	children = append(children, gw)

	w, err := newWorkload(is, gwURL)
	if err != nil {
		return nil, err
	}
	r := &runner{client: loadkit.NewClient(o.concurrency), w: w, concurrency: o.concurrency, upstreamPid: upstream.Pid()}
	targets := [2]*target{
		{name: "bare proxy", kind: kindBare, base: "http://" + bareAddr, pid: bare.Pid()},
		{name: "gateway", kind: kindGateway, base: gwURL, pid: gw.Pid()},
	}
	alive := func() error {
		for _, c := range children {
			if !c.Running() {
				return c.Err()
			}
		}
		return ctx.Err()
	}

	plan := newProofPlan()
	fill := func(c class, d time.Duration) error {
		start, n := time.Now(), plan.need(c, d)
		if err := w.pool.fill(ctx, w, n); err != nil {
			return fmt.Errorf("making DPoP proofs: %w", err)
		}
		fmt.Fprintf(log, "load: %d DPoP proofs ready for the gateway's %s phase (%v)\n", n, c, time.Since(start).Round(time.Millisecond))
		return nil
	}
	phase := o.duration / time.Duration(o.rounds)
	fmt.Fprintf(log, "load: measuring %v per (target, class) in %d round(s) of %v, %d workers\n", o.duration, o.rounds, phase, o.concurrency)
	// Warm-up: connections, caches and the proof plan's first rates.
	for _, t := range targets {
		for _, c := range []class{classDPoP, classMixed} {
			if t.kind == kindGateway {
				if err := fill(c, warmup/2); err != nil {
					return nil, err
				}
			}
			res := r.run(ctx, t, c, warmup/2, o.seed^0xabcdef)
			if t.kind == kindGateway {
				plan.observe(c, res)
			}
			rep.addWarmup(t.kind, res)
		}
	}
	rep.loadStart = loadkit.LoadAvg()
	for round := range o.rounds {
		order := targets
		if round%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for c := range numClasses {
			for _, t := range order {
				if err := alive(); err != nil {
					return nil, err
				}
				if t.kind == kindGateway && (c == classDPoP || c == classMixed) {
					if err := fill(c, phase); err != nil {
						return nil, err
					}
				}
				seed := o.seed + uint64(round)*uint64(numClasses) + uint64(c)
				res := r.run(ctx, t, c, phase, seed)
				if t.kind == kindGateway {
					plan.observe(c, res)
				}
				rep.add(t.kind, c, res)
			}
		}
		fmt.Fprintf(log, "load: round %d/%d done\n", round+1, o.rounds)
	}
	rep.loadEnd = loadkit.LoadAvg()
	rep.finished = time.Now()
	if err := alive(); err != nil {
		return nil, err
	}
	return rep, nil
}

// proofPlan sizes the proof pool before each gateway phase from the DPoP
// rate the previous one reached, so that proofs are made before the clock
// starts and not during the measurement.
type proofPlan struct {
	rate [numClasses]float64 // gateway requests per second, by class
}

// Initial guesses, generous for a small machine; the warm-up corrects them.
func newProofPlan() *proofPlan {
	p := &proofPlan{}
	p.rate[classDPoP] = 3000
	p.rate[classMixed] = 8000
	return p
}

// dpopShare is the fraction of class c's requests that carry a fresh proof.
func dpopShare(c class) float64 {
	switch c {
	case classDPoP:
		return 1
	case classMixed:
		return mixDPoP / 100.0
	}
	return 0
}

// need returns how many proofs a phase of class c lasting d should have.
func (p *proofPlan) need(c class, d time.Duration) int {
	return int(p.rate[c]*dpopShare(c)*d.Seconds()*1.5) + 256
}

// observe updates the rate from a gateway phase. A phase whose pool ran
// dry was slowed by making proofs, so its rate understates the next need.
func (p *proofPlan) observe(c class, res *phaseResult) {
	if dpopShare(c) == 0 || res.elapsed <= 0 {
		return
	}
	rate := res.rate()
	if res.inline > 0 {
		rate = max(2*rate, p.rate[c])
	}
	p.rate[c] = rate
}
