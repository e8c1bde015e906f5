package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard/bench/internal/loadkit"
)

// targetP50Ratio is issue 6's target: the gateway's p50 for cached Bearer
// traffic at most this multiple of the bare proxy's.
const targetP50Ratio = 1.15

// report collects every phase's results.
type report struct {
	o                 options
	started, finished time.Time
	loadStart         string
	loadEnd           string

	cells  [2][numClasses]phaseResult    // by targetKind and class, over all rounds
	rounds [2][numClasses][]*phaseResult // the same, round by round
	warm   [2]phaseResult                // warm-up, by targetKind: not in the tables, but checked
}

func newReport(o options) *report { return &report{o: o, started: time.Now()} }

func (r *report) add(k targetKind, c class, res *phaseResult) {
	r.cells[k][c].add(res)
	r.rounds[k][c] = append(r.rounds[k][c], res)
}

func (r *report) addWarmup(k targetKind, res *phaseResult) { r.warm[k].add(res) }

// ratio returns gateway/bare for the values of class c chosen by f, or 0
// when the bare value is 0.
func ratio(gw, bare time.Duration) float64 {
	if bare <= 0 {
		return 0
	}
	return float64(gw) / float64(bare)
}

// p50Ratio is the gateway/bare p50 ratio of class c over all rounds.
func (r *report) p50Ratio(c class) float64 {
	return ratio(r.cells[kindGateway][c].hist.Quantile(0.5), r.cells[kindBare][c].hist.Quantile(0.5))
}

// roundRatios are the gateway/bare p50 ratios of class c, round by round.
func (r *report) roundRatios(c class) []float64 {
	var out []float64
	for i, g := range r.rounds[kindGateway][c] {
		if i < len(r.rounds[kindBare][c]) {
			out = append(out, ratio(g.hist.Quantile(0.5), r.rounds[kindBare][c][i].hist.Quantile(0.5)))
		}
	}
	return out
}

// targetMet reports whether the cached-Bearer p50 ratio is within target.
func (r *report) targetMet() bool {
	q := r.p50Ratio(classBearer)
	return q > 0 && q <= targetP50Ratio
}

// totals sums a target's phases and warm-up.
func (r *report) totals(k targetKind) phaseResult {
	t := phaseResult{}
	t.add(&r.warm[k])
	for c := range numClasses {
		t.add(&r.cells[k][c])
	}
	return t
}

// failures lists what makes the run fail: wrong decisions, failed
// requests, phases that measured nothing.
func (r *report) failures() []string {
	var out []string
	for _, k := range []targetKind{kindBare, kindGateway} {
		t := r.totals(k)
		name := targetName(k)
		if t.wrong > 0 {
			out = append(out, fmt.Sprintf("%s: %d wrong responses, e.g. %s", name, t.wrong, strings.Join(t.samples, "; ")))
		}
		if t.errors > 0 {
			out = append(out, fmt.Sprintf("%s: %d requests failed, e.g. %s", name, t.errors, strings.Join(t.samples, "; ")))
		}
		for c := range numClasses {
			if r.cells[k][c].requests() == 0 {
				out = append(out, fmt.Sprintf("%s, %s: no request completed", name, c))
			}
		}
	}
	return out
}

func targetName(k targetKind) string {
	if k == kindGateway {
		return "gateway"
	}
	return "bare proxy"
}

// markdown renders the report.
func (r *report) markdown() string {
	var b strings.Builder
	phase := r.o.duration / time.Duration(r.o.rounds)
	fmt.Fprintf(&b, "## Gateway under load: bare reverse proxy vs tokenguard gateway\n\n")
	fmt.Fprintf(&b, "- %s UTC, %s %s/%s, %s, nproc %d, GOMAXPROCS %d%s\n",
		r.started.UTC().Format("2006-01-02 15:04"), runtime.Version(), runtime.GOOS, runtime.GOARCH,
		loadkit.CPUModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), gitDescribe())
	fmt.Fprintf(&b, "- load average (1/5/15 min) at start %s, at end %s\n", r.loadStart, r.loadEnd)
	fmt.Fprintf(&b, "- closed loop, %d workers, one keep-alive client; %v per (target, class) in %d round(s) of %v, targets alternating; %v warm-up per target; seed %d; whole run %v\n",
		r.o.concurrency, r.o.duration, r.o.rounds, phase, warmup, r.o.seed, r.finished.Sub(r.started).Round(time.Second))
	fmt.Fprintf(&b, "- every process on 127.0.0.1: load generator (with the issuer), upstream, bare `httputil.ReverseProxy`, gateway (`dpop.mode: allowed`, in-memory replay store, token cache on); the machine's cores are shared by all of them\n")
	fmt.Fprintf(&b, "- latency is from sending the request to reading the whole response; DPoP proofs are made before each phase. A closed loop that saturates the CPU has p50 ≈ workers / throughput, so the ratios then compare the whole system's CPU per request; `-concurrency 1` measures latency without queueing\n\n")

	b.WriteString("| class | target | requests | req/s | p50 | p99 | p50 gateway/bare | p99 gateway/bare | p50 ratio per round | wrong |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n")
	for c := range numClasses {
		for _, k := range []targetKind{kindBare, kindGateway} {
			cell := &r.cells[k][c]
			p50r, p99r, per := "", "", ""
			if k == kindGateway {
				p50r = fmtRatio(r.p50Ratio(c))
				p99r = fmtRatio(ratio(cell.hist.Quantile(0.99), r.cells[kindBare][c].hist.Quantile(0.99)))
				per = fmtRange(r.roundRatios(c))
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %.0f | %s | %s | %s | %s | %s | %d |\n",
				c, targetName(k), cell.requests(), cell.rate(), fmtDur(cell.hist.Quantile(0.5)), fmtDur(cell.hist.Quantile(0.99)),
				p50r, p99r, per, cell.wrong)
		}
	}

	r.cpuTable(&b)

	verdict := "no"
	if r.targetMet() {
		verdict = "yes"
	}
	fmt.Fprintf(&b, "\nTarget, gateway p50 ≤ %.2f× bare for cached Bearer: **%s** (%s).\n", targetP50Ratio, verdict, fmtRatio(r.p50Ratio(classBearer)))
	gw := r.totals(kindGateway)
	bare := r.totals(kindBare)
	fmt.Fprintf(&b, "Wrong decisions (gateway): **%d** of %d responses, warm-up included (bare proxy: %d of %d). Requests without a response: %d (gateway), %d (bare).\n",
		gw.wrong, gw.requests(), bare.wrong, bare.requests(), gw.errors, bare.errors)
	mixed := &r.cells[kindGateway][classMixed]
	fmt.Fprintf(&b, "Gateway mixed run by shape: %s.\n", fmtVariants(mixed.byVariant))
	inv := &r.cells[kindGateway][classInvalid]
	fmt.Fprintf(&b, "Gateway invalid run by shape (each must be 401): %s.\n", fmtVariants(inv.byVariant))
	if n := gw.inline; n > 0 {
		fmt.Fprintf(&b, "Note: %d DPoP proofs were made during measurement (the pre-made pool ran dry), which costs the client CPU the gateway shares.\n", n)
	}
	for _, s := range append(gw.samples, bare.samples...) {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	return b.String()
}

func fmtVariants(counts [numVariants]uint64) string {
	var parts []string
	for v, n := range counts {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", variant(v), n))
		}
	}
	if parts == nil {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// fmtDur prints a latency in µs below a millisecond, else in ms.
func fmtDur(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func fmtRatio(q float64) string {
	if q == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", q)
}

// fmtRange prints the smallest and largest of qs.
func fmtRange(qs []float64) string {
	if len(qs) == 0 {
		return ""
	}
	lo, hi := qs[0], qs[0]
	for _, q := range qs {
		lo, hi = min(lo, q), max(hi, q)
	}
	if len(qs) == 1 {
		return fmtRatio(lo)
	}
	return fmt.Sprintf("%.2f–%.2f× (%d)", lo, hi, len(qs))
}

// gitDescribe names the commit measured, when run inside the repository.
func gitDescribe() string {
	if d := loadkit.GitDescribe(); d != "" {
		return ", commit " + d
	}
	return ""
}

// cpuTable writes the CPU each process spent per answered request, by
// class and target: what the latency ratios cannot show once the closed
// loop saturates the machine (then p50 tracks the whole system's CPU per
// request, and this table says whose CPU it is). Left out if any reading
// failed.
func (r *report) cpuTable(b *strings.Builder) {
	for k := range r.cells {
		for c := range r.cells[k] {
			if !r.cells[k][c].cpu.ok() || r.cells[k][c].requests() == 0 {
				return
			}
		}
	}
	perReq := func(d time.Duration, n uint64) float64 { return float64(d) / float64(n) / 1e3 }
	b.WriteString("\nCPU per answered request (user + system, every thread; read around each phase, from /proc for the proxies and the upstream (10 ms resolution) and getrusage for the load generator):\n\n")
	b.WriteString("| class | target | proxy process | upstream | load generator | all three | proxy: gateway − bare |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: |\n")
	for c := range numClasses {
		for _, k := range []targetKind{kindBare, kindGateway} {
			cell := &r.cells[k][c]
			n := cell.requests()
			u := cell.cpu
			diff := ""
			if k == kindGateway {
				bare := &r.cells[kindBare][c]
				diff = fmt.Sprintf("%+.1f µs", perReq(u.target, n)-perReq(bare.cpu.target, bare.requests()))
			}
			fmt.Fprintf(b, "| %s | %s | %.1f µs | %.1f µs | %.1f µs | %.1f µs | %s |\n", c, targetName(k),
				perReq(u.target, n), perReq(u.upstream, n), perReq(u.client, n), perReq(u.target+u.upstream+u.client, n), diff)
		}
	}
}
