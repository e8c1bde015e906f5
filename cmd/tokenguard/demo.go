package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"

	"github.com/tokenguard/tokenguard/internal/demo"
)

// demo implements "tokenguard demo".
func (c *cli) demo(ctx context.Context, args []string) int {
	opts := demo.DefaultOptions()
	fs := flag.NewFlagSet("tokenguard demo", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&opts.Issuer, "issuer", opts.Issuer, "`address` of the development issuer (loopback only)")
	fs.StringVar(&opts.Upstream, "upstream", opts.Upstream, "`address` of the example upstream API (loopback only)")
	fs.StringVar(&opts.Listen, "listen", opts.Listen, "`address` of the gateway, and with -bff of the browser app's page too (loopback only)")
	fs.StringVar(&opts.MetricsListen, "metrics-listen", opts.MetricsListen, "`address` of /metrics, /healthz and /readyz (loopback only)")
	fs.StringVar(&opts.DPoPKey, "dpop-key", opts.DPoPKey, "`file` the printed DPoP commands keep their key in (outside the source tree)")
	fs.BoolVar(&opts.BFF, "bff", false, "browser mode: the gateway's token handler logs a browser app in; prints the one URL to open")
	fs.Usage = func() {
		fmt.Fprint(c.stderr, "Usage: tokenguard demo [flags]\n\n"+
			"Runs a DEVELOPMENT ONLY token issuer, an example API and the gateway in front of\n"+
			"it on 127.0.0.1, prints curl commands to try, and runs until interrupted.\n"+
			"With -bff (or --bff) it runs a browser app instead, logged in through the gateway's\n"+
			"token handler, and prints the page to open.\n"+
			"A default port that is taken is replaced by a free one; a port given by a flag is not.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "tokenguard demo: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return exitUsage
	}
	opts.Explicit = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { opts.Explicit[f.Name] = true })

	log := slog.New(slog.NewTextHandler(c.stderr, nil))
	d, err := demo.Start(ctx, opts, c.stdout, log)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return exitError
	}
	if c.onDemo != nil {
		c.onDemo(d)
	}
	if err := d.Run(ctx); err != nil {
		log.Error("demo stopped with an error", "err", err)
		return exitError
	}
	return exitOK
}
