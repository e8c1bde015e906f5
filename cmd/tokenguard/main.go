// Tokenguard is a reverse proxy that lets a request reach an HTTP API only
// if it carries a valid OAuth 2.0 access token with the scopes its route
// requires: package gateway, configured by a YAML file, as a command.
//
// Usage:
//
//	tokenguard -config FILE          run the gateway
//	tokenguard serve -config FILE    the same
//	tokenguard check -config FILE    validate FILE (no network I/O) and print the effective
//	                                 configuration, secrets redacted; exit 0 valid, 1 invalid, 2 usage
//	tokenguard healthcheck [-config FILE | -url URL] [-timeout D]
//	                                 GET /readyz on the file's metrics_listen once (0.0.0.0, [::] or no
//	                                 host: on 127.0.0.1), for a container HEALTHCHECK; exit 0 on 200, else 1
//	tokenguard demo [flags]          try it: a development issuer, an example API and the gateway on 127.0.0.1
//	tokenguard keygen [-alg A] [-out FILE]
//	                                 make a DPoP key (PKCS#8 PEM) and print its thumbprint (jkt)
//	tokenguard proof -method M -url URL -key FILE [-token T] [-nonce N] [-alg A]
//	                                 print a DPoP proof JWT for one request
//	tokenguard version               print the module version, VCS revision and Go version
//
// When -config is not given, serve, check and healthcheck read the file
// named by TOKENGUARD_CONFIG; a -config flag wins over it.
//
// docs/config.md lists every configuration key with its type, default and
// meaning, and examples/ has a configuration for each deployment shape.
// What the gateway does with a request is documented in package gateway.
// Values in the file may be ${NAME}, read from the environment; the DPoP
// nonce secrets only come from it (TOKENGUARD_DPOP_NONCE_SECRETS).
//
// Logs go to standard error. SIGHUP reloads the configuration file (and
// the TLS certificate and key): a valid file replaces the running
// configuration without dropping a request; an invalid one is logged, with
// its line and key, and the running configuration stays (the certificate
// is still reloaded). config_reload_interval does the same when the file
// changes. On SIGINT or SIGTERM the gateway
// reports 503 on /readyz, keeps serving for drain_delay, stops accepting
// connections, lets in-flight requests finish for up to shutdown_timeout,
// closes what is left, and exits; a second signal ends it at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.opentelemetry.io/otel"

	"github.com/tokenguard/tokenguard/gateway"
	"github.com/tokenguard/tokenguard/internal/demo"
)

const usage = `tokenguard guards an HTTP API with OAuth 2.0 access tokens.

Usage:
  tokenguard -config FILE          run the gateway configured by FILE (YAML)
  tokenguard serve -config FILE    the same
  tokenguard check -config FILE    validate FILE without network I/O and print the
                                   effective configuration (secrets redacted)
  tokenguard healthcheck [-config FILE | -url URL]
                                   GET /readyz on the file's metrics_listen once, for a container
                                   HEALTHCHECK: exit 0 if ready (200), 1 if not, with the reason
  tokenguard demo [flags]          run a development issuer, an example API and the
                                   gateway on 127.0.0.1, and print curl commands to try
  tokenguard keygen [-alg A] [-out FILE]
                                   make a DPoP key pair: the private key as PKCS#8 PEM,
                                   its thumbprint (jkt) on stderr
  tokenguard proof -method M -url URL -key FILE [-token T] [-nonce N]
                                   print a DPoP proof for one request (for curl -H "DPoP: ...")
  tokenguard version               print the version, VCS revision and Go version
  tokenguard help                  show this text

serve, check and healthcheck read $TOKENGUARD_CONFIG when -config is not given.
Run 'tokenguard COMMAND -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills the process at once
	}()
	c := &cli{stdout: os.Stdout, stderr: os.Stderr, handleHUP: true}
	os.Exit(c.run(ctx, os.Args[1:]))
}

// cli runs the command line. The hooks let tests reach the running
// gateway or demo; they are nil in main.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string // nil means os.Getenv

	// handleHUP makes serve take over SIGHUP (reload the configuration)
	// instead of letting it end the process; only serve does, so demo,
	// check and the other commands still end when their terminal closes.
	// false in tests, which send on reload themselves.
	handleHUP bool
	reload    <-chan os.Signal // SIGHUPs while serve runs

	onGateway func(*gateway.Gateway) // called once the gateway serves
	onDemo    func(*demo.Demo)       // called once the demo serves
}

// env looks up an environment variable.
func (c *cli) env(name string) string {
	if c.getenv == nil {
		return os.Getenv(name)
	}
	return c.getenv(name)
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// run executes the command in args (without the program name) until ctx
// is done and returns the process exit code.
func (c *cli) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "serve":
		return c.serve(ctx, args[1:])
	case "check":
		return c.check(args[1:])
	case "healthcheck":
		return c.healthcheck(ctx, args[1:])
	case "demo":
		return c.demo(ctx, args[1:])
	case "keygen":
		return c.keygen(args[1:])
	case "proof":
		return c.proof(args[1:])
	case "version", "-version", "--version":
		return c.version(args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(c.stdout, usage)
		return exitOK
	}
	if len(args[0]) > 1 && args[0][0] == '-' {
		return c.serve(ctx, args) // tokenguard -config FILE
	}
	fmt.Fprintf(c.stderr, "tokenguard: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

// serve implements "tokenguard [serve] -config FILE".
func (c *cli) serve(ctx context.Context, args []string) int {
	if c.handleHUP {
		// First, so that a SIGHUP during start-up is not fatal either.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		c.reload = hup
	}
	path, code, ok := c.configFlag("tokenguard serve", "Usage: tokenguard [serve] -config FILE\n\n", args)
	if !ok {
		return code
	}

	cfg, err := gateway.LoadConfig(path, c.env)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return exitError
	}
	log := cfg.NewLogger(c.stderr) // this command's own lines
	// Span exports that fail (an unreachable collector) are logged like
	// everything else, not printed by OpenTelemetry's default handler;
	// set before the exporter starts.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing: exporting spans failed", "err", err)
	}))
	// The gateway makes its logger from each configuration it runs, so a
	// reload can change log_format and log_level.
	g, err := gateway.New(cfg, gateway.Options{LogOutput: c.stderr})
	if err == nil {
		err = g.Start(ctx)
	}
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return exitError
	}
	if c.onGateway != nil {
		c.onGateway(g)
	}
	if c.reload != nil {
		stopReload := make(chan struct{})
		defer close(stopReload)
		go func() {
			for {
				select {
				case <-stopReload:
					return
				case <-c.reload:
					// The file and, with it, the certificate; a file
					// that does not load still leaves certificate
					// rotation working. Both log their outcome.
					if err := g.ReloadConfig(ctx); err != nil {
						_ = g.ReloadCertificate()
					}
				}
			}
		}()
	}
	if err := g.Run(ctx); err != nil {
		log.Error("tokenguard stopped with an error", "err", err)
		return exitError
	}
	return exitOK
}

// configEnv names the environment variable that is the default for
// -config, for containers and units that would rather set a variable than
// change the command line.
const configEnv = "TOKENGUARD_CONFIG"

// configFlag parses the "-config FILE" flag that serve and check take,
// and nothing else; TOKENGUARD_CONFIG is its default, so the flag wins
// when both are given. head is the usage text printed before the flag
// list. When ok is false the command is done and exits with code (help
// shown, or a usage error reported).
func (c *cli) configFlag(name, head string, args []string) (path string, code int, ok bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	p := fs.String("config", c.env(configEnv), "the gateway's YAML configuration `file` (when not given: $"+configEnv+")")
	fs.Usage = func() {
		fmt.Fprint(c.stderr, head)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", exitOK, false
		}
		return "", exitUsage, false
	}
	if *p == "" || fs.NArg() > 0 {
		if fs.NArg() > 0 {
			fmt.Fprintf(c.stderr, "tokenguard: unexpected argument %q\n", fs.Arg(0))
		} else {
			fmt.Fprintln(c.stderr, "tokenguard: -config FILE is required (or set "+configEnv+" to the file's path)")
		}
		fs.Usage()
		return "", exitUsage, false
	}
	return *p, 0, true
}
