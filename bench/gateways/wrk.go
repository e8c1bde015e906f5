package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard/bench/internal/loadkit"
)

// wrkScript is the Lua script wrk runs: it sends, in order and wrapping
// around, the requests listed in the file GATEWAYS_WRK_FILE (one per line:
// the Authorization value or "-" for none, then optionally a tab and a
// DPoP proof), each with the forged identity header, and checks every
// response: with GATEWAYS_WRK_ACCEPT=1 it must be a 200 from the upstream,
// otherwise a status listed in GATEWAYS_WRK_REFUSE that did not reach it.
// It prints one GATEWAYS_WRK line at the end.
var wrkScript = `-- Written by bench/gateways for one run.
local reqs = {}
local file = os.getenv("GATEWAYS_WRK_FILE")
local accept = os.getenv("GATEWAYS_WRK_ACCEPT") == "1"
local refuse = {}
for s in string.gmatch(os.getenv("GATEWAYS_WRK_REFUSE") or "401", "%d+") do refuse[tonumber(s)] = true end
local n = 0
wrong = 0
wrapped = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(file) do
    local auth, dp = line:match("^([^\t]*)\t?(.*)$")
    local h = {["` + loadkit.IdentityHeader + `"] = "` + forgedSubject + `"}
    if auth ~= "-" then h["Authorization"] = auth end
    if dp ~= nil and dp ~= "" then h["DPoP"] = dp end
    reqs[#reqs + 1] = wrk.format("GET", "` + loadkit.RequestPath + `", h)
  end
end

function request()
  n = n + 1
  if n > #reqs then
    n = 1
    wrapped = wrapped + 1
  end
  return reqs[n]
end

function response(status, headers, body)
  local reached = headers["` + loadkit.UpstreamMark + `"] ~= nil or headers["` + strings.ToLower(loadkit.UpstreamMark) + `"] ~= nil
  local ok
  if accept then
    ok = status == 200 and reached
  else
    ok = refuse[status] == true and not reached
  end
  if not ok then wrong = wrong + 1 end
end

function done(summary, latency, requests)
  local w, wr = 0, 0
  for _, t in ipairs(threads) do
    w = w + (t:get("wrong") or 0)
    wr = wr + (t:get("wrapped") or 0)
  end
  local e = summary.errors
  io.write(string.format("GATEWAYS_WRK requests=%d duration_us=%d wrong=%d wrapped=%d errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, w, wr, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`

// wrkResult is wrk's measurement of one cell.
type wrkResult struct {
	requests uint64
	elapsed  time.Duration
	wrong    uint64
	wrapped  uint64 // times the request list was exhausted and restarted
	errors   uint64 // socket errors and timeouts
	p50, p99 time.Duration
	cpu      time.Duration // the peer's process tree
	cpuOK    bool
}

func (w *wrkResult) rate() float64 {
	if w.elapsed <= 0 {
		return 0
	}
	return float64(w.requests) / w.elapsed.Seconds()
}

// parseWrk reads the GATEWAYS_WRK line of wrk's output.
func parseWrk(out string) (*wrkResult, error) {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "GATEWAYS_WRK ")
		if !ok {
			continue
		}
		vals := map[string]uint64{}
		for _, kv := range strings.Fields(rest) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("wrk: bad field %q", kv)
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("wrk: bad value in %q", kv)
			}
			vals[k] = n
		}
		for _, k := range []string{"requests", "duration_us", "wrong", "wrapped", "errors", "p50_us", "p99_us"} {
			if _, ok := vals[k]; !ok {
				return nil, fmt.Errorf("wrk: no %s in %q", k, rest)
			}
		}
		return &wrkResult{
			requests: vals["requests"],
			elapsed:  time.Duration(vals["duration_us"]) * time.Microsecond,
			wrong:    vals["wrong"],
			wrapped:  vals["wrapped"],
			errors:   vals["errors"],
			p50:      time.Duration(vals["p50_us"]) * time.Microsecond,
			p99:      time.Duration(vals["p99_us"]) * time.Microsecond,
		}, nil
	}
	return nil, fmt.Errorf("wrk printed no GATEWAYS_WRK line")
}

// wrkLines renders the request list of a cell for wrk: one line per
// request (see wrkScript).
func wrkLines(f *feed, n int) []string {
	var lines []string
	line := func(auth, proof string) string {
		if auth == "" {
			auth = "-"
		}
		if proof != "" {
			return auth + "\t" + proof
		}
		return auth
	}
	switch f.sc {
	case scPassthrough, scBearerCached:
		for _, c := range f.t.bearer {
			lines = append(lines, line("Bearer "+c.Token, ""))
		}
	case scBearerUncached:
		end := min(f.uncachedBase+n, len(f.t.uncached))
		for _, c := range f.t.uncached[f.uncachedBase:end] {
			lines = append(lines, line("Bearer "+c.Token, ""))
		}
		f.taken.Store(int64(end - f.uncachedBase))
	case scDPoP:
		for _, p := range f.proofs {
			lines = append(lines, line("DPoP "+f.t.dpop[p.cred].Token, p.jwt))
		}
		f.taken.Store(int64(len(f.proofs)))
	case scInvalid:
		for _, neg := range f.negs {
			lines = append(lines, line(f.t.negatives[neg], ""))
		}
	}
	return lines
}

// runWrk runs wrk against f's peer for d with the given connections,
// over the request list of f (n requests sized for uncached tokens).
func runWrk(ctx context.Context, bin, dir string, f *feed, n, connections int, d time.Duration) (*wrkResult, error) {
	script := filepath.Join(dir, "gateways.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return nil, err
	}
	list := filepath.Join(dir, "wrk-requests.txt")
	lines := wrkLines(f, n)
	if err := os.WriteFile(list, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	defer os.Remove(list)
	defer f.done()
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	secs := max(1, int((d+time.Second/2)/time.Second))
	cmd := exec.CommandContext(ctx, bin, "-t1", fmt.Sprintf("-c%d", connections), fmt.Sprintf("-d%ds", secs),
		"--timeout", "10s", "-s", script, f.p.base+loadkit.RequestPath)
	accept := "0"
	if f.sc != scInvalid {
		accept = "1"
	}
	var refuse []string
	for _, s := range f.p.spec.refuseStatuses {
		refuse = append(refuse, strconv.Itoa(s))
	}
	cmd.Env = append(os.Environ(), "GATEWAYS_WRK_FILE="+list, "GATEWAYS_WRK_ACCEPT="+accept, "GATEWAYS_WRK_REFUSE="+strings.Join(refuse, ","))
	loadkit.SetDeathSignal(cmd, false)
	pid := f.p.pid
	cpu0, ok0 := loadkit.TreeCPU(pid)
	out, err := cmd.CombinedOutput()
	cpu1, ok1 := loadkit.TreeCPU(pid)
	if err != nil {
		return nil, fmt.Errorf("wrk: %w: %s", err, out)
	}
	res, err := parseWrk(string(out))
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, out)
	}
	res.cpu, res.cpuOK = cpu1-cpu0, ok0 && ok1
	return res, nil
}
