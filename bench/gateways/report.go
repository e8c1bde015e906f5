package main

import (
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard/bench/internal/loadkit"
)

// row is one object of gateways.json: one gateway and scenario. The first
// eight fields are the ones the issue defines; numbers are null when the
// cell was not measured (skipped says why).
type row struct {
	Gateway       string   `json:"gateway"`
	Scenario      string   `json:"scenario"`
	RPS           *float64 `json:"rps"`
	P50ms         *float64 `json:"p50_ms"`
	P99ms         *float64 `json:"p99_ms"`
	CPUusPerReq   *float64 `json:"cpu_us_per_req"`
	Wrong         *uint64  `json:"wrong_decisions"`
	ChecksRefused []string `json:"checks_refused"` // negative cases of the correctness pass it refused
	// Extras.
	ChecksMissing  []string  `json:"checks_missing"` // negative cases it let through: checks it cannot make
	Requests       uint64    `json:"requests"`
	Errors         uint64    `json:"errors"`
	CPURounds      []float64 `json:"cpu_us_per_req_rounds,omitempty"`   // round by round: the noise
	MadeInPhase    int64     `json:"made_during_measurement,omitempty"` // uncached tokens or DPoP proofs made while timing (the pool ran dry)
	WrkRPS         *float64  `json:"wrk_rps,omitempty"`
	WrkP50ms       *float64  `json:"wrk_p50_ms,omitempty"`
	WrkP99ms       *float64  `json:"wrk_p99_ms,omitempty"`
	WrkCPUusPerReq *float64  `json:"wrk_cpu_us_per_req,omitempty"`
	Version        string    `json:"version,omitempty"`
	Skipped        string    `json:"skipped,omitempty"`
}

// cell is one (peer, scenario) and everything measured for it.
type cell struct {
	p       *peer
	sc      string
	rate    float64 // the last phase's request rate, for sizing pools
	total   phaseResult
	warm    phaseResult // checked, not reported
	rounds  []*phaseResult
	wrk     *wrkResult
	wrkErr  string
	skipped string // set when the peer died during the run
}

func ptr[T any](v T) *T { return &v }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }

// wrong returns the wrong decisions of a cell: load phases, warm-up and
// wrk's cross-check.
func (c *cell) wrong() uint64 {
	n := c.total.wrong + c.warm.wrong
	if c.wrk != nil {
		n += c.wrk.wrong
	}
	return n
}

// rows builds gateways.json's rows: every gateway and scenario of specs,
// measured or not.
func buildRows(peers []*peer, cells []*cell) []row {
	var out []row
	for _, p := range peers {
		for _, sc := range allScenarios {
			if p.spec.floor != (sc == scPassthrough) {
				continue
			}
			r := row{Gateway: p.spec.name, Scenario: sc, Version: p.version,
				ChecksRefused: nonNil(p.corr.refused), ChecksMissing: nonNil(p.corr.missing)}
			if p.skipped != "" {
				r.Skipped = p.skipped
				out = append(out, r)
				continue
			}
			if !p.spec.supports(sc) {
				r.Skipped = p.spec.unsupported[sc]
				out = append(out, r)
				continue
			}
			var c *cell
			for _, x := range cells {
				if x.p == p && x.sc == sc {
					c = x
				}
			}
			if c == nil {
				r.Skipped = "not measured"
				out = append(out, r)
				continue
			}
			r.Wrong = ptr(c.wrong())
			r.Requests, r.Errors = c.total.requests(), c.total.errors+c.warm.errors
			r.MadeInPhase = c.total.inline
			if c.skipped != "" {
				r.Skipped = c.skipped
			}
			if c.total.requests() > 0 {
				r.RPS = ptr(round(c.total.rate(), 1))
				r.P50ms = ptr(ms(c.total.hist.Quantile(0.5)))
				r.P99ms = ptr(ms(c.total.hist.Quantile(0.99)))
				if v, ok := c.total.cpuPerRequest(); ok {
					r.CPUusPerReq = ptr(round(v, 1))
				}
				for _, pr := range c.rounds {
					if v, ok := pr.cpuPerRequest(); ok {
						r.CPURounds = append(r.CPURounds, round(v, 1))
					}
				}
			}
			if w := c.wrk; w != nil && w.requests > 0 {
				r.WrkRPS = ptr(round(w.rate(), 1))
				r.WrkP50ms, r.WrkP99ms = ptr(ms(w.p50)), ptr(ms(w.p99))
				if w.cpuOK {
					r.WrkCPUusPerReq = ptr(round(float64(w.cpu)/float64(w.requests)/1e3, 1))
				}
				r.Errors += w.errors
			}
			out = append(out, r)
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// marshalRows renders gateways.json.
func marshalRows(rows []row) ([]byte, error) {
	b, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// meta describes the run for the markdown report.
type meta struct {
	started, finished time.Time
	check             bool
	duration          time.Duration
	rounds            int
	concurrency       int
	warmup            time.Duration
	wrkDuration       time.Duration
	wrkVersion        string // "" when wrk did not run
	goVersion         string
	loadStart         string
	loadEnd           string
	commit            string
}

// busy reports whether a load average ("1 5 15") is above the core count.
func busy(loadavg string) bool {
	f := strings.Fields(loadavg)
	if len(f) == 0 {
		return false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return err == nil && v > float64(runtime.NumCPU())
}

// findRow returns the row for gateway and scenario, if measured.
func findRow(rows []row, gateway, scenario string) *row {
	for i := range rows {
		if rows[i].Gateway == gateway && rows[i].Scenario == scenario {
			return &rows[i]
		}
	}
	return nil
}

// cpuRatio returns a's CPU per request over b's, if both were measured.
func cpuRatio(a, b *row) (float64, bool) {
	if a == nil || b == nil || a.CPUusPerReq == nil || b.CPUusPerReq == nil || *b.CPUusPerReq <= 0 {
		return 0, false
	}
	return *a.CPUusPerReq / *b.CPUusPerReq, true
}

func fmtNum(v *float64, format string) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprintf(format, *v)
}

// markdown renders gateways.md.
func markdown(m meta, rows []row, peers []*peer) string {
	var b strings.Builder
	b.WriteString("# Gateways side by side: tokenguard and the gateways people deploy\n\n")
	b.WriteString("Written by `bench/gateways.sh` (issue #19, part 1). Every process on 127.0.0.1; one upstream, one issuer (ES256 `at+jwt` RFC 9068 tokens, JWKS on loopback), the same request mix and the same load generator for every gateway.\n\n")
	fmt.Fprintf(&b, "- date: %s UTC; whole run %v\n", m.started.UTC().Format("2006-01-02 15:04"), m.finished.Sub(m.started).Round(time.Second))
	fmt.Fprintf(&b, "- machine: %s, %d cores (nproc), kernel %s, %s/%s; %s\n", loadkit.CPUModel(), runtime.NumCPU(), loadkit.KernelRelease(), runtime.GOOS, runtime.GOARCH, m.goVersion)
	if m.commit != "" {
		fmt.Fprintf(&b, "- tokenguard: commit %s (built from ../cmd/tokenguard for this run)\n", m.commit)
	}
	var versions []string
	for _, p := range peers {
		if p.version != "" {
			versions = append(versions, fmt.Sprintf("%s: %s", p.spec.name, p.version))
		}
	}
	fmt.Fprintf(&b, "- versions: %s\n", strings.Join(versions, "; "))
	fmt.Fprintf(&b, "- load: Go closed loop, %d workers on one keep-alive client, %v per (gateway, scenario) in %d round(s) (gateways interleaved within each round, order rotated per round), %v unmeasured warm-up per cell; load average at start %s, at end %s\n",
		m.concurrency, m.duration, m.rounds, m.warmup, m.loadStart, m.loadEnd)
	if m.wrkVersion != "" {
		fmt.Fprintf(&b, "- cross-check: %s, 1 thread, %d connections, %v per cell, Lua script setting Authorization (rotating distinct tokens for bearer-uncached, one pre-made proof per request for dpop) and checking every response\n", m.wrkVersion, m.concurrency, m.wrkDuration)
	} else {
		b.WriteString("- cross-check: **wrk did not run** (not installed)\n")
	}
	b.WriteString("- CPU/req: utime+stime from /proc/PID/stat of the gateway's whole process tree (nginx and Apache workers included; 10 ms ticks), read around each phase, divided by the responses of that phase. It does not depend on how much CPU the load generator takes from the gateway; latency and throughput do (all processes share the cores).\n")
	if m.wrkVersion != "" {
		b.WriteString("- the wrk columns come from a different client (C, one thread) than the Go load: a gateway's CPU per request depends on how requests arrive (how many each wakeup finds), so compare gateways within one column, not a Go figure with a wrk one\n")
	}
	if busy(m.loadStart) || busy(m.loadEnd) {
		fmt.Fprintf(&b, "- **the machine was busy**: load average above its %d cores (other work was running on it), so rps and latency are noisy; CPU/req is less affected, and its spread over the rounds is in gateways.json (`cpu_us_per_req_rounds`) and the table\n", runtime.NumCPU())
	}
	if m.check {
		b.WriteString("- **check mode**: about 1 s per cell; figures are a smoke test, not a measurement\n")
	}

	b.WriteString("\n| gateway | scenario | rps | p50 ms | p99 ms | CPU µs/req | CPU µs/req by round | wrong decisions | checks refused | wrk rps | wrk p99 ms | wrk CPU µs/req | note |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | --- |\n")
	for _, r := range rows {
		wrong := "–"
		if r.Wrong != nil {
			wrong = fmt.Sprint(*r.Wrong)
		}
		checks := fmt.Sprintf("%d/%d", len(r.ChecksRefused), len(negatives))
		if len(r.ChecksMissing) > 0 {
			checks += " (not: " + strings.Join(r.ChecksMissing, ", ") + ")"
		}
		if len(r.ChecksRefused)+len(r.ChecksMissing) == 0 {
			checks = "–"
		} else if s := specByName(r.Gateway); s != nil && s.floor {
			checks = "none (floor)"
		}
		note := r.Skipped
		if note != "" && (r.RPS == nil) {
			note = "**skipped**: " + note
		}
		if r.MadeInPhase > 0 {
			if note != "" {
				note += "; "
			}
			note += fmt.Sprintf("%d tokens/proofs made while timing (pool ran dry): client CPU taken from the gateway", r.MadeInPhase)
		}
		var byRound []string
		for _, v := range r.CPURounds {
			byRound = append(byRound, fmt.Sprintf("%.0f", v))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Gateway, r.Scenario,
			fmtNum(r.RPS, "%.0f"), fmtNum(r.P50ms, "%.3f"), fmtNum(r.P99ms, "%.3f"), fmtNum(r.CPUusPerReq, "%.1f"),
			strings.Join(byRound, ", "), wrong, checks, fmtNum(r.WrkRPS, "%.0f"), fmtNum(r.WrkP99ms, "%.3f"), fmtNum(r.WrkCPUusPerReq, "%.1f"), note)
	}

	b.WriteString("\n## Targets (reported, not enforced)\n\n")
	tgC := findRow(rows, gwTokenguard, scBearerCached)
	target := func(label string, other *row, limit float64) {
		q, ok := cpuRatio(tgC, other)
		if !ok {
			fmt.Fprintf(&b, "- tokenguard CPU/req, bearer-cached ÷ %s: n/a (not measured)\n", label)
			return
		}
		verdict := "**met**"
		if q > limit {
			verdict = "**not met**"
		}
		fmt.Fprintf(&b, "- tokenguard CPU/req, bearer-cached ÷ %s: **%.2f×** (%.1f ÷ %.1f µs; target ≤ %.2f×: %s)\n", label, q, *tgC.CPUusPerReq, *other.CPUusPerReq, limit, verdict)
	}
	target("bare-proxy passthrough", findRow(rows, gwBare, scPassthrough), 1.10)
	target("oauth2-proxy bearer-cached", findRow(rows, gwOAuth2, scBearerCached), 0.5)
	target("mod_oauth2 bearer-cached", findRow(rows, gwModOAuth2, scBearerCached), 0.5)
	if n := findRow(rows, gwNginx, scPassthrough); n != nil {
		if q, ok := cpuRatio(tgC, n); ok {
			fmt.Fprintf(&b, "- for reference, tokenguard bearer-cached ÷ nginx passthrough: %.2f×\n", q)
		}
	}
	tgU := findRow(rows, gwTokenguard, scBearerUncached)
	var ahead, behind, unknown []string
	for _, name := range []string{gwOAuth2, gwModOAuth2, gwHAProxy} {
		o := findRow(rows, name, scBearerUncached)
		q, ok := cpuRatio(tgU, o)
		switch {
		case !ok || tgU.RPS == nil || o.RPS == nil:
			unknown = append(unknown, name)
		case q < 1 && *tgU.RPS > *o.RPS:
			ahead = append(ahead, fmt.Sprintf("%s (CPU/req %.2f×, rps %.2f×)", name, q, *tgU.RPS / *o.RPS))
		default:
			behind = append(behind, fmt.Sprintf("%s (CPU/req %.2f×, rps %.2f×)", name, q, *tgU.RPS / *o.RPS))
		}
	}
	verdict := "**met**"
	if len(behind) > 0 || len(unknown) > 0 {
		verdict = "**not met**"
		if len(behind) == 0 {
			verdict = "**not shown** (peers not measured)"
		}
	}
	fmt.Fprintf(&b, "- cache-off Bearer (bearer-uncached: a new token every request) ahead of every peer (less CPU per request and more rps): %s", verdict)
	if len(ahead) > 0 {
		fmt.Fprintf(&b, "; ahead of %s", strings.Join(ahead, ", "))
	}
	if len(behind) > 0 {
		fmt.Fprintf(&b, "; not ahead of %s", strings.Join(behind, ", "))
	}
	if len(unknown) > 0 {
		fmt.Fprintf(&b, "; not measured: %s", strings.Join(unknown, ", "))
	}
	b.WriteString("\n")
	var total uint64
	for _, r := range rows {
		if r.Wrong != nil {
			total += *r.Wrong
		}
	}
	fmt.Fprintf(&b, "- wrong decisions, every gateway and scenario (load, warm-up and wrk): **%d**\n", total)
	b.WriteString("- p99 is next to p50 in the table.\n")

	b.WriteString("\n## What each gateway checks, and what it cannot\n\n")
	b.WriteString("The correctness pass sends each gateway, before timing, a valid token and five invalid requests: " + strings.Join(negatives, ", ") + ". \"checks refused\" counts the invalid ones it refused; those it forwarded are named (it cannot check them), and its invalid scenario then uses only the ones it refused, so no gateway is timed on a check it does not make without the table saying so.\n\n")
	for _, p := range peers {
		fmt.Fprintf(&b, "- **%s**: %s", p.spec.name, strings.Join(p.spec.notes, " "))
		if len(p.corr.missing) > 0 && !p.spec.floor {
			fmt.Fprintf(&b, " Let through in the correctness pass: %s.", strings.Join(p.corr.missing, ", "))
		}
		if p.skipped != "" {
			fmt.Fprintf(&b, " **Skipped: %s.**", p.skipped)
		}
		b.WriteString("\n")
	}
	var samples []string
	for _, p := range peers {
		for _, f := range p.corr.failures {
			samples = append(samples, fmt.Sprintf("%s correctness: %s", p.spec.name, f))
		}
	}
	if len(samples) > 0 {
		b.WriteString("\nProblems:\n\n")
		for _, s := range samples {
			fmt.Fprintf(&b, "- %s\n", s)
		}
	}
	return b.String()
}
