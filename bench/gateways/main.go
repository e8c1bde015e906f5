// Command gateways compares, side by side on one machine, the tokenguard
// gateway with the gateways people deploy in front of an API (issue 19,
// part 1): a bare httputil.ReverseProxy and nginx as floors, oauth2-proxy,
// Apache httpd with mod_oauth2, and HAProxy's jwt_verify.
//
// Run it through bench/gateways.sh, which installs the peers first:
//
//	./gateways.sh            # the full run: writes results/gateways.{json,md}
//	./gateways.sh -check     # CI: correctness pass and ~1 s per cell, writes nothing
//
// or directly from bench/ (peers' binaries as flags):
//
//	go build -o /tmp/gateways ./gateways && /tmp/gateways [-check] [-oauth2-proxy PATH] ...
//
// Everything runs on 127.0.0.1, each gateway in its own process (tree),
// in front of the same upstream (a helper copy of this binary), with the
// same tokens: ES256 at+jwt (RFC 9068) from one development issuer served
// by this process, whose JWKS (and, for oauth2-proxy, OIDC discovery
// document) is on loopback; HAProxy gets the key as a PEM file since it
// cannot fetch a JWKS.
//
// First a correctness pass: every gateway must forward a valid token, and
// is sent a tampered signature, a wrong aud, a wrong iss, an expired token
// and no token; what it forwards is what it cannot check, and is reported.
// Then, in rounds that interleave the gateways, a closed loop of
// -concurrency workers measures each (gateway, scenario): throughput, p50
// and p99, and the CPU time of the gateway's process tree per request
// (from /proc). Every response is checked (valid requests must reach the
// upstream, invalid ones must not); wrk then repeats each cell briefly as
// a cross-check, checking every response in Lua.
//
// The exit status is 1 if any response was wrong, any request failed, an
// installed gateway failed the correctness pass (refused the valid token
// or answered an invalid one with an unexpected status) or died. A
// gateway that is not installed is a loud skip: a row saying why, and a
// line on stderr.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/tokenguard/tokenguard/bench/internal/loadkit"
)

func main() {
	if loadkit.IsHelper(os.Args[1:]) {
		os.Exit(loadkit.RunHelper("gateways", os.Args[1:], os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command-line flags.
type options struct {
	check       bool
	duration    time.Duration // per cell, over all rounds
	rounds      int
	concurrency int
	warmup      time.Duration
	wrkDuration time.Duration
	jsonOut     string
	mdOut       string
	only        map[string]bool
	skip        map[string]string // gateway → why it is not available
	bins        map[string]string // "tokenguard", "nginx", "haproxy", "apache2", "oauth2-proxy", "wrk"
}

// Limits on the flags: a run must stay bounded.
const (
	maxDuration    = 5 * time.Minute
	minPhase       = 200 * time.Millisecond
	maxRounds      = 20
	maxConcurrency = 256
)

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{skip: map[string]string{}, bins: map[string]string{}}
	fs := flag.NewFlagSet("gateways", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.check, "check", os.Getenv("GATEWAYS_CHECK") == "1", "CI smoke run: correctness pass, ~1 s per cell, nothing written (also GATEWAYS_CHECK=1)")
	fs.DurationVar(&o.duration, "duration", 12*time.Second, "measured time per (gateway, scenario), split over the rounds")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds: each measures every cell for duration/rounds, gateways interleaved")
	fs.IntVar(&o.concurrency, "concurrency", 16, "concurrent workers (closed loop), and wrk connections")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured (but checked) warm-up per cell")
	fs.DurationVar(&o.wrkDuration, "wrk-duration", 3*time.Second, "wrk cross-check per cell (whole seconds; 0: no wrk)")
	fs.StringVar(&o.jsonOut, "json", "results/gateways.json", "write the rows to `file` (not in check mode)")
	fs.StringVar(&o.mdOut, "md", "results/gateways.md", "write the markdown report to `file` (not in check mode)")
	only := fs.String("only", "", "comma-separated gateways to run (default: all)")
	fs.Func("skip", "`gateway=reason`: report gateway as skipped (e.g. its install failed); repeatable", func(s string) error {
		name, reason, ok := strings.Cut(s, "=")
		if !ok || specByName(name) == nil || reason == "" {
			return fmt.Errorf("want gateway=reason with a known gateway, got %q", s)
		}
		o.skip[name] = reason
		return nil
	})
	defaults := map[string]string{"tokenguard": "", "nginx": "/usr/sbin/nginx", "haproxy": "/usr/sbin/haproxy", "apache2": "/usr/sbin/apache2", "oauth2-proxy": "", "wrk": "wrk"}
	binFlags := map[string]*string{}
	for _, name := range []string{"tokenguard", "nginx", "haproxy", "apache2", "oauth2-proxy", "wrk"} {
		usage := fmt.Sprintf("%s `binary`", name)
		if name == "tokenguard" {
			usage += " (default: go build ../cmd/tokenguard)"
		}
		binFlags[name] = fs.String(name, defaults[name], usage)
	}
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: gateways [flags]   (from bench/; see gateways.sh)\n\nCompares tokenguard with bare-proxy, nginx, oauth2-proxy, mod_oauth2 and haproxy.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for name, v := range binFlags {
		o.bins[name] = *v
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *only != "" {
		o.only = map[string]bool{}
		for _, n := range strings.Split(*only, ",") {
			if specByName(n) == nil {
				return o, fmt.Errorf("-only: unknown gateway %q", n)
			}
			o.only[n] = true
		}
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
		if !set["warmup"] {
			o.warmup = 200 * time.Millisecond
		}
		if !set["wrk-duration"] {
			o.wrkDuration = time.Second
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
		return o, fmt.Errorf("-duration/-rounds must be at least %v per phase", minPhase)
	case o.warmup < 0 || o.warmup > time.Minute, o.wrkDuration < 0 || o.wrkDuration > time.Minute:
		return o, errors.New("-warmup and -wrk-duration must be in [0, 1m]")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "gateways:", err)
		return 2
	}
	res, err := measure(ctx, o, stderr)
	if err != nil {
		if ctx.Err() != nil {
			err = errors.New("interrupted; child processes stopped, nothing written")
		}
		fmt.Fprintln(stderr, "gateways:", err)
		return 1
	}
	rows := buildRows(res.peers, res.cells)
	md := markdown(res.meta, rows, res.peers) + problemsSection(res.problems)
	fmt.Fprint(stdout, md)
	for _, r := range rows {
		if r.Skipped != "" && r.RPS == nil && !strings.HasPrefix(r.Skipped, "not supported") && !strings.HasPrefix(r.Skipped, "not measured:") {
			fmt.Fprintf(stderr, "gateways: SKIPPED %s %s: %s\n", r.Gateway, r.Scenario, r.Skipped)
		}
	}
	if !o.check {
		js, err := marshalRows(rows)
		if err == nil {
			err = writeFile(o.jsonOut, js)
		}
		if err == nil {
			err = writeFile(o.mdOut, []byte(md))
		}
		if err != nil {
			fmt.Fprintln(stderr, "gateways:", err)
			return 1
		}
	}
	if len(res.problems) > 0 {
		for _, p := range res.problems {
			fmt.Fprintln(stderr, "gateways: FAIL:", p)
		}
		return 1
	}
	return 0
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func problemsSection(problems []string) string {
	if len(problems) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n## Failures\n\n")
	for _, p := range problems {
		fmt.Fprintf(&b, "- %s\n", p)
	}
	return b.String()
}

// result is everything measure produced.
type result struct {
	meta     meta
	peers    []*peer
	cells    []*cell
	problems []string // what makes the run fail
}

// Rate guess for sizing the first (warm-up) pools; phases after it use
// the rate the previous phase of the same cell reached.
const initialRate = 4000

// need is how many uncached tokens or proofs a phase of d at rate needs:
// with room for a phase much faster than the fastest so far (the machine
// may be quieter), since one made during a phase costs the client CPU the
// gateway shares.
func need(rate float64, d time.Duration) int {
	return int(rate*d.Seconds()*2.5) + 1024
}

// measure starts everything, runs the correctness pass and every phase,
// and stops everything.
func measure(ctx context.Context, o options, log io.Writer) (*result, error) {
	res := &result{meta: meta{started: time.Now(), check: o.check, duration: o.duration, rounds: o.rounds,
		concurrency: o.concurrency, warmup: o.warmup, wrkDuration: o.wrkDuration, goVersion: runtime.Version()}}
	logf := func(format string, args ...any) { fmt.Fprintf(log, "gateways: "+format+"\n", args...) }

	dir, err := os.MkdirTemp("", "tokenguard-gateways-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// Servers that drop privileges (nginx and Apache started as root)
	// must reach their temporary paths.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}

	var children []*loadkit.Child
	defer func() {
		for _, c := range children {
			c.Stop()
		}
	}()
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	upstream, upAddr, err := loadkit.StartHelper(ctx, self, "upstream")
	if err != nil {
		return nil, err
	}
	children = append(children, upstream)

	issuerURL, stopIssuer, is, err := loadkit.StartIssuer("gateways-es256", withDiscovery)
	if err != nil {
		return nil, err
	}
	defer stopIssuer()
	pemKey, err := publicKeyPEM(is)
	if err != nil {
		return nil, err
	}
	e := env{dir: dir, upstream: upAddr, issuer: issuerURL, audience: loadkit.GatewayAudience,
		pemPath: filepath.Join(dir, "issuer-es256.pem"), root: os.Geteuid() == 0}
	if err := os.WriteFile(e.pemPath, pemKey, 0o644); err != nil {
		return nil, err
	}
	toks, err := newTokens(is)
	if err != nil {
		return nil, err
	}
	client := loadkit.NewClient(o.concurrency)

	// Start every gateway and run the correctness pass.
	for _, spec := range specs {
		if o.only != nil && !o.only[spec.name] {
			continue
		}
		p := &peer{spec: spec}
		res.peers = append(res.peers, p)
		if reason := o.skip[spec.name]; reason != "" {
			p.skipped = reason
			continue
		}
		start, version, why := launcher(ctx, spec.name, o, e, dir, self, upAddr, issuerURL, logf)
		p.version = version
		if why != "" {
			p.skipped = why
			continue
		}
		c, base, err := start()
		if err != nil {
			p.skipped = "failed to start: " + oneLine(err.Error())
			res.problems = append(res.problems, fmt.Sprintf("%s failed to start: %v", spec.name, err))
			continue
		}
		children = append(children, c)
		p.child, p.base, p.pid = c, base, c.Pid()
		notePgid(c, log)
		p.corr = correctnessPass(ctx, client, p, toks)
		if !p.corr.ok() {
			p.skipped = "failed the correctness pass: " + strings.Join(p.corr.failures, "; ")
			res.problems = append(res.problems, fmt.Sprintf("%s failed the correctness pass: %s", spec.name, strings.Join(p.corr.failures, "; ")))
			continue
		}
		logf("%s ready at %s; refused %v; let through %v", spec.name, base, p.corr.refused, p.corr.missing)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	for _, p := range res.peers {
		if p.version == "" {
			p.version = versionOf(ctx, p.spec.name, o)
		}
	}
	if c := commitOf(); c != "" {
		res.meta.commit = c
	}

	// Cells, in report order.
	for _, p := range res.peers {
		if p.skipped != "" {
			continue
		}
		for _, sc := range p.spec.scenarios {
			res.cells = append(res.cells, &cell{p: p, sc: sc, rate: initialRate})
		}
	}
	r := &runner{client: client, concurrency: o.concurrency}
	phase := func(c *cell, d time.Duration, seed uint64) (*phaseResult, error) {
		if !c.p.child.Running() {
			return nil, c.p.child.Err()
		}
		if !upstream.Running() {
			return nil, upstream.Err()
		}
		f, err := newFeed(ctx, c.sc, c.p, toks, need(c.rate, d))
		if err != nil {
			return nil, err
		}
		pr := r.run(ctx, f, d, seed)
		// Pools are sized from the fastest phase so far: a slow one (a
		// cold warm-up, a noisy moment) must not leave the next one short.
		if pr.elapsed > 0 && pr.requests() > 0 {
			rate := pr.rate()
			if pr.inline > 0 {
				rate *= 2
			}
			c.rate = max(c.rate, rate)
		}
		return pr, ctx.Err()
	}
	fail := func(c *cell, err error) {
		if ctx.Err() != nil {
			return
		}
		c.skipped = "stopped: " + oneLine(err.Error())
		res.problems = append(res.problems, fmt.Sprintf("%s %s: %v", c.p.spec.name, c.sc, err))
	}

	if o.warmup > 0 {
		logf("warm-up: %v per cell, %d cells", o.warmup, len(res.cells))
		for _, c := range res.cells {
			pr, err := phase(c, o.warmup, 0xabcdef)
			if err != nil {
				fail(c, err)
				continue
			}
			c.warm.add(pr)
		}
	}
	res.meta.loadStart = loadkit.LoadAvg()
	per := o.duration / time.Duration(o.rounds)
	logf("measuring %v per cell in %d round(s) of %v, %d workers, %d cells", o.duration, o.rounds, per, o.concurrency, len(res.cells))
	for round := range o.rounds {
		n := len(res.cells)
		for i := range n {
			c := res.cells[(i+round*max(1, n/o.rounds))%n]
			if c.skipped != "" {
				continue
			}
			pr, err := phase(c, per, uint64(round*n+i+1))
			if err != nil {
				fail(c, err)
				continue
			}
			c.total.add(pr)
			c.rounds = append(c.rounds, pr)
		}
		logf("round %d/%d done", round+1, o.rounds)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	res.meta.loadEnd = loadkit.LoadAvg()

	if wrkBin := o.bins["wrk"]; o.wrkDuration > 0 {
		if path, err := exec.LookPath(wrkBin); err != nil {
			logf("SKIPPED wrk cross-check: %s not found", wrkBin)
		} else {
			res.meta.wrkVersion, _, _ = strings.Cut(firstLine(ctx, path, "-v"), " [")
			logf("wrk cross-check: %v per cell", o.wrkDuration)
			for _, c := range res.cells {
				if c.skipped != "" {
					continue
				}
				secs := time.Duration(max(1, int((o.wrkDuration+time.Second/2)/time.Second))) * time.Second
				n := need(c.rate, secs)
				f, err := newFeed(ctx, c.sc, c.p, toks, n)
				if err == nil {
					c.wrk, err = runWrk(ctx, path, dir, f, n, o.concurrency, secs)
				}
				if err != nil {
					c.wrkErr = oneLine(err.Error())
					res.problems = append(res.problems, fmt.Sprintf("%s %s: wrk: %v", c.p.spec.name, c.sc, err))
					continue
				}
				if c.wrk.wrapped > 0 && (c.sc == scBearerUncached || c.sc == scDPoP) {
					logf("note: wrk ran out of distinct %s requests for %s (%d wraps): later ones were repeats", c.sc, c.p.spec.name, c.wrk.wrapped)
				}
			}
		}
	}
	for _, c := range res.cells {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		name := c.p.spec.name + " " + c.sc
		all := c.total
		all.add(&c.warm)
		if all.wrong > 0 {
			res.problems = append(res.problems, fmt.Sprintf("%s: %d wrong decisions, e.g. %s", name, all.wrong, strings.Join(all.samples, "; ")))
		}
		if all.errors > 0 {
			res.problems = append(res.problems, fmt.Sprintf("%s: %d requests failed, e.g. %s", name, all.errors, strings.Join(all.samples, "; ")))
		}
		if c.skipped == "" && c.total.requests() == 0 {
			res.problems = append(res.problems, name+": no request completed")
		}
		if w := c.wrk; w != nil {
			if w.wrong > 0 {
				res.problems = append(res.problems, fmt.Sprintf("%s: wrk saw %d wrong decisions", name, w.wrong))
			}
			if w.errors > 0 {
				res.problems = append(res.problems, fmt.Sprintf("%s: wrk had %d socket errors or timeouts", name, w.errors))
			}
		}
		if c.total.inline > 0 {
			logf("note: %s: %d tokens or proofs were made during measurement (the pool ran dry)", name, c.total.inline)
		}
	}
	for _, p := range res.peers {
		if p.child != nil && !p.child.Running() && p.skipped == "" {
			res.problems = append(res.problems, fmt.Sprintf("%s exited during the run: %v", p.spec.name, p.child.Err()))
		}
	}
	res.meta.finished = time.Now()
	return res, nil
}

// launcher returns how to start gateway name, its version, or why it
// cannot run here ("" when it can).
func launcher(ctx context.Context, name string, o options, e env, dir, self, upAddr, issuerURL string, logf func(string, ...any)) (start func() (*loadkit.Child, string, error), version, why string) {
	look := func(key string) (string, string) {
		bin := o.bins[key]
		if bin == "" {
			return "", fmt.Sprintf("no %s binary given (-%s)", key, key)
		}
		path, err := exec.LookPath(bin)
		if err != nil {
			return "", fmt.Sprintf("%s not installed (%s not found)", key, bin)
		}
		return path, ""
	}
	switch name {
	case gwBare:
		return func() (*loadkit.Child, string, error) {
			c, addr, err := loadkit.StartHelper(ctx, self, "proxy", "-upstream", "http://"+upAddr)
			return c, "http://" + addr, err
		}, "httputil.ReverseProxy, " + runtime.Version(), ""
	case gwTokenguard:
		bin := o.bins["tokenguard"]
		if bin == "" {
			logf("building cmd/tokenguard")
			var err error
			if bin, err = loadkit.BuildGateway(ctx, dir); err != nil {
				return nil, "", "build failed: " + oneLine(err.Error())
			}
		}
		return func() (*loadkit.Child, string, error) {
			return loadkit.StartGateway(ctx, bin, dir, "http://"+upAddr, issuerURL)
		}, "", ""
	case gwNginx:
		bin, why := look("nginx")
		if why != "" {
			return nil, "", why
		}
		return func() (*loadkit.Child, string, error) { return startPeer(ctx, name, nginxLaunch(bin, e)) }, "", ""
	case gwHAProxy:
		bin, why := look("haproxy")
		if why != "" {
			return nil, "", why
		}
		return func() (*loadkit.Child, string, error) { return startPeer(ctx, name, haproxyLaunch(bin, e)) }, "", ""
	case gwModOAuth2:
		bin, why := look("apache2")
		if why != "" {
			return nil, "", why
		}
		if _, err := os.Stat(filepath.Join(apacheModules, "mod_oauth2.so")); err != nil {
			return nil, "", "mod_oauth2 not installed (" + filepath.Join(apacheModules, "mod_oauth2.so") + " not found)"
		}
		return func() (*loadkit.Child, string, error) { return startPeer(ctx, name, apacheLaunch(bin, e)) }, "", ""
	case gwOAuth2:
		bin, why := look("oauth2-proxy")
		if why != "" {
			return nil, "", why
		}
		return func() (*loadkit.Child, string, error) { return startPeer(ctx, name, oauth2ProxyLaunch(bin, e)) }, "", ""
	}
	return nil, "", "unknown gateway"
}

// notePgid appends the process group of a child that leads one to the
// file GATEWAYS_PGID_FILE names, if any: gateways.sh kills those groups on
// exit, should this process die without stopping them (SIGKILL; the
// kernel's parent-death signal reaches only the group's leader).
func notePgid(c *loadkit.Child, log io.Writer) {
	path := os.Getenv("GATEWAYS_PGID_FILE")
	if path == "" || c.Cmd.SysProcAttr == nil || !c.Cmd.SysProcAttr.Setpgid {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err == nil {
		_, err = fmt.Fprintln(f, c.Pid())
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		fmt.Fprintln(log, "gateways: noting a process group:", err)
	}
}

// versionOf asks a gateway's binary for its version.
func versionOf(ctx context.Context, name string, o options) string {
	switch name {
	case gwNginx:
		return strings.TrimPrefix(firstLine(ctx, o.bins["nginx"], "-v"), "nginx version: ")
	case gwHAProxy:
		v := firstLine(ctx, o.bins["haproxy"], "-v")
		if f := strings.Fields(v); len(f) >= 3 {
			return "HAProxy " + f[2]
		}
		return v
	case gwModOAuth2:
		v := strings.TrimPrefix(firstLine(ctx, o.bins["apache2"], "-v"), "Server version: ")
		if d := firstLine(ctx, "dpkg-query", "-W", "-f", "mod_oauth2 ${Version}", "libapache2-mod-oauth2"); d != "" {
			v += ", " + d
		}
		if d := firstLine(ctx, "dpkg-query", "-W", "-f", "liboauth2 ${Version}", "liboauth2-0"); d != "" {
			v += ", " + d
		}
		return v
	case gwOAuth2:
		return firstLine(ctx, o.bins["oauth2-proxy"], "--version")
	case gwTokenguard:
		if c := commitOf(); c != "" {
			return "commit " + c
		}
	}
	return ""
}

// commitOf names the tokenguard commit measured.
func commitOf() string { return loadkit.GitDescribe() }

// firstLine runs bin with args (bounded) and returns the first line it
// prints on stdout or stderr, or "".
func firstLine(ctx context.Context, bin string, args ...string) string {
	if bin == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// withDiscovery adds an OpenID Connect discovery document to the issuer
// (oauth2-proxy's OIDC provider and extra JWT issuers find the JWKS
// through it); everything else is the development issuer's.
func withDiscovery(issuer string, h http.Handler) http.Handler {
	doc, _ := json.Marshal(discoveryDoc(issuer))
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	})
	return mux
}

// discoveryDoc is the OpenID Connect discovery document of issuer: the
// members oauth2-proxy reads. Its endpoints other than the JWKS are never
// used (no login flow runs).
func discoveryDoc(issuer string) map[string]any {
	return map[string]any{
		"issuer":                                issuer,
		"authorization_endpoint":                issuer + "/authorize",
		"token_endpoint":                        issuer + "/token",
		"jwks_uri":                              issuer + "/jwks",
		"userinfo_endpoint":                     issuer + "/userinfo",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"ES256"},
	}
}
