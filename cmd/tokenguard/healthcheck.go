package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenguard/tokenguard/internal/envexpand"
)

const (
	// healthcheckTimeout bounds the whole probe by default: below Docker's
	// HEALTHCHECK --timeout in the Dockerfile (3s), so the command reports
	// its own reason instead of being killed.
	healthcheckTimeout = 2 * time.Second
	// maxHealthcheckConfig is the gateway's own limit on a configuration
	// file; the probe reads no more.
	maxHealthcheckConfig = 1 << 20
	// maxReasonBytes is how much of a non-200 answer's body is read for
	// the one-line reason.
	maxReasonBytes = 256
)

// healthcheck implements "tokenguard healthcheck": one GET of /readyz on
// the configuration's metrics_listen (or of -url), for a container
// runtime's HEALTHCHECK, which has no shell or curl to do it with in the
// distroless image. Exit 0 on a 200, 1 on anything else (another status,
// no answer within -timeout, a file without metrics_listen), with one line
// on stderr saying why. One attempt, no retries: the runtime's interval
// and retries are the policy.
//
// It reads only metrics_listen from the file, expanding ${NAME} in it as
// the gateway does, and neither validates the rest nor needs its secrets:
// it asks the running gateway whether it is ready, not whether the file
// would load now (a broken edit that a reload refused leaves the gateway
// serving, and ready). It starts nothing and fetches nothing but /readyz.
//
// Usage errors exit 1 too, not 2 as in the other commands: Docker reserves
// a HEALTHCHECK's exit status 2.
func (c *cli) healthcheck(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("tokenguard healthcheck", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	cfgPath := fs.String("config", c.env(configEnv), "the gateway's YAML configuration `file`, for its metrics_listen (when not given: $"+configEnv+")")
	rawURL := fs.String("url", "", "GET this `URL` instead of /readyz on the file's metrics_listen")
	timeout := fs.Duration("timeout", healthcheckTimeout, "how long the whole request may take")
	fs.Usage = func() {
		fmt.Fprint(c.stderr, "Usage: tokenguard healthcheck [-config FILE | -url URL] [-timeout D]\n\n"+
			"GETs /readyz on the configuration's metrics_listen (an unspecified host such as\n"+
			"0.0.0.0, [::] or none is asked on 127.0.0.1), once, for a container HEALTHCHECK.\n"+
			"Reads only metrics_listen from FILE; starts nothing.\n"+
			"Exit status: 0 ready (200), 1 anything else, with the reason on stderr.\n\n")
		fs.PrintDefaults()
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(c.stderr, "tokenguard healthcheck: "+format+"\n", a...)
		fs.Usage()
		return exitError
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitError
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case fs.NArg() > 0:
		return usageErr("unexpected argument %q", fs.Arg(0))
	case *timeout <= 0:
		return usageErr("-timeout %v: must be positive", *timeout)
	case set["url"] && set["config"]:
		return usageErr("-config and -url: give one, not both")
	case *rawURL == "" && *cfgPath == "":
		return usageErr("-config FILE is required (or set " + configEnv + " to the file's path), or -url URL")
	}

	target := *rawURL
	if set["url"] {
		if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usageErr("-url %q: want an absolute http:// or https:// URL", target)
		}
	} else {
		listen, err := metricsListenOf(*cfgPath, c.env)
		if err == nil {
			target, err = readyzURL(listen)
		}
		if err != nil {
			fmt.Fprintf(c.stderr, "tokenguard healthcheck: %s: %v\n", *cfgPath, err)
			return exitError
		}
	}
	if err := probe(ctx, target, *timeout); err != nil {
		fmt.Fprintf(c.stderr, "tokenguard healthcheck: %v\n", err)
		return exitError
	}
	return exitOK
}

// probe GETs target once, within timeout, directly (no proxy from the
// environment, no redirects followed, no connection kept), and returns nil
// only for a 200.
func probe(ctx context.Context, target string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "tokenguard-healthcheck")
	resp, err := client.Do(req)
	if err != nil {
		return err // *url.Error: the method, the URL (no password) and why, on one line
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxReasonBytes))
	msg := fmt.Sprintf("GET %s: %s", req.URL.Redacted(), resp.Status)
	if r := reasonLine(body); r != "" {
		msg += ": " + r
	}
	return errors.New(msg)
}

// reasonLine is the first line of body, trimmed, with anything but
// printable ASCII replaced, so that whatever answered cannot write
// more than one line, or control characters, to the log.
func reasonLine(body []byte) string {
	line, _, _ := strings.Cut(string(body), "\n")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, strings.TrimSpace(line))
}

// metricsListenOf returns metrics_listen from the configuration file at
// path, with ${NAME} expanded by getenv; every other key is ignored.
func metricsListenOf(path string, getenv func(string) string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxHealthcheckConfig+1))
	if err != nil {
		return "", err
	}
	if len(data) > maxHealthcheckConfig {
		return "", fmt.Errorf("larger than %d bytes", maxHealthcheckConfig)
	}
	var doc struct {
		MetricsListen string `yaml:"metrics_listen"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", err
	}
	if doc.MetricsListen == "" {
		return "", errors.New("no metrics_listen: the gateway serves no /readyz to ask (set metrics_listen, give -url, or turn the container's HEALTHCHECK off: docker run --no-healthcheck)")
	}
	v, _, err := envexpand.Expand(doc.MetricsListen, getenv)
	if err != nil {
		return "", fmt.Errorf("metrics_listen: %w", err)
	}
	return v, nil
}

// readyzURL returns the /readyz URL of the metrics listener bound to
// listen. A listener on an unspecified address (no host, 0.0.0.0, [::]) is
// asked on 127.0.0.1: the gateway is Go, whose listener on any of these
// accepts IPv4 too, and every container and host has 127.0.0.1 (not
// always ::1: Docker turns IPv6 off in containers by default).
func readyzURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("metrics_listen %q is not host:port", listen)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		if err != nil {
			return "", fmt.Errorf("metrics_listen %q: port must be a number from 1 to 65535", listen)
		}
		return "", fmt.Errorf("metrics_listen %q: port 0 is chosen at start-up, so there is no address to ask (give -url)", listen)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	u := url.URL{Scheme: "http", Host: net.JoinHostPort(host, port), Path: "/readyz"}
	return u.String(), nil
}
