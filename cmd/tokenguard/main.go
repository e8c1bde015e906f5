// Tokenguard is a reverse proxy that lets a request reach an HTTP API only
// if it carries a valid OAuth 2.0 access token with the scopes its route
// requires. It is the tokenguard middleware packaged as a gateway,
// configured by a YAML file.
//
// Usage:
//
//	tokenguard -config FILE          run the gateway
//	tokenguard serve -config FILE    the same
//	tokenguard check -config FILE    validate FILE (no network I/O) and print the effective
//	                                 configuration, secrets redacted; exit 0 valid, 1 invalid, 2 usage
//	tokenguard demo [flags]          try it: a development issuer, an example API and the gateway on 127.0.0.1
//	tokenguard keygen [-alg A] [-out FILE]
//	                                 make a DPoP key (PKCS#8 PEM) and print its thumbprint (jkt)
//	tokenguard proof -method M -url URL -key FILE [-token T] [-nonce N] [-alg A]
//	                                 print a DPoP proof JWT for one request
//
// The configuration file (see DESIGN.md, "Gateway binary") names the
// address to listen on, the upstream API, the audience, the trusted
// issuers and the routes with their scopes. Optional keys:
//
//	realm: orders                # WWW-Authenticate realm; default: the audience
//	leeway: 30s                  # clock skew for exp/nbf/iat; default 30s, at most 5m
//	max_token_size: 8192         # bytes; default 8 KiB
//	startup_wait: 10s            # how long to wait for the issuers' keys at start; 0s: don't
//	shutdown_timeout: 30s        # how long SIGINT/SIGTERM waits for in-flight requests; 0s: don't
//	log_format: text             # text | json (to stderr)
//	log_level: info              # debug | info | warn | error
//	insecure_allow_http: false   # allow plain http issuer/JWKS URLs beyond loopback
//	drain_delay: 0s              # on SIGTERM, keep serving this long with /readyz at 503 before closing the listener
//	upstream_timeout: 30s        # how long to wait for the upstream's response headers; then 504
//	upstream_dial_timeout: 5s    # how long to wait for a connection to the upstream; then 504
//	max_concurrent_requests: 4096  # in-flight requests; beyond: 503 + Retry-After: 1 at once (0: default, -1: no limit)
//	jwks_min_refresh_interval: 5m  # bounds on the JWKS refresh interval from Cache-Control (at least 1s)
//	jwks_max_refresh_interval: 24h
//	jwks_refresh_rate_limit: 10s # least gap between refreshes for unknown kids, per issuer (at least 1s)
//	path_normalization: reject   # reject: 400 {"error":"invalid_path"} for any request-target an upstream
//	                             # could read as another path; forward_unchanged: unsafe unless the
//	                             # upstream decodes nothing
//	upgrades: [websocket]        # the only protocol switch passed; []: none (anything else is always a 400)
//	allowed_hosts: [api.example.com]  # Host values served (a name matches any port); others: 421
//	allow_underscore_headers: false   # false: request headers with '_' in the name are dropped
//	tls:                         # serve HTTPS (HTTP/2 and HTTP/1.1, TLS 1.2+) on listen
//	  cert_file: /etc/tokenguard/tls.crt   # PEM chain; both files or neither; must load at start
//	  key_file: /etc/tokenguard/tls.key
//	  reload_interval: 1m        # poll the files (contents) and reload on change; SIGHUP reloads at once
//	issuers:
//	  - allow_legacy_typ: false  # accept typ "JWT" (or none) as well as "at+jwt"
//	    scp_claim: false         # also read scopes from an "scp" claim
//	    introspection_cache_max_age: 60s  # longest reuse of an active introspection answer
//
// See docs/config.md for every key.
//
// Any string value may use ${NAME} for the environment variable NAME
// (expanded after parsing, so a value can never change the file's
// structure); an unset or empty variable is an error, $${ is a literal ${,
// and a value from the environment is never printed (check shows it as
// written). Use it for secrets: client_secret: ${INTROSPECTION_SECRET},
// replay_store: redis://:${REDIS_PASSWORD}@redis:6379/0. Example
// configurations for each deployment shape are in examples/.
//
// DPoP (RFC 9449) is configured by the dpop block: mode (disabled, allowed
// or required), nonce (require server-issued nonces) and replay_store
// (memory, or a redis:// or rediss:// URL shared by every replica). Set
// public_url to the URL clients use whenever the gateway is behind another
// proxy: proofs' htu is checked against it. Nonce secrets never go in the
// file: TOKENGUARD_DPOP_NONCE_SECRETS holds them, comma-separated, each the
// base64 of at least 32 random bytes (the first makes nonces, all are
// accepted). Without it, each process makes its own, and replicas do not
// accept each other's nonces.
//
// Every request the gateway forwards carries X-Tokenguard-Subject,
// X-Tokenguard-Client-Id and X-Tokenguard-Scope from the verified token;
// any header a client sends that an upstream could read as one of them
// (any letter case, '_' for '-': X_Tokenguard_Subject) is removed first,
// and so, unless allow_underscore_headers is set, is every header with an
// underscore in its name. Before any route is matched, a request whose
// path is ambiguous (percent-encoded '/', '\', '.', '%', ';' or control
// characters, dot segments, "//", ';' parameters, backslashes, invalid
// escapes, characters that normalise to delimiters, a request-target that
// is not a path) gets 400 {"error":"invalid_path"}, an Upgrade to
// anything but WebSocket 400 {"error":"invalid_request"}, and a Host not
// in allowed_hosts 421 {"error":"misdirected_request"}; none is
// forwarded. The route is matched on the path that is forwarded, byte for
// byte. A request that matches no route gets 404. GET /metrics
// (Prometheus), /healthz and /readyz are served only on metrics_listen.
//
// The gateway forwards to the upstream through its own connection pool
// (HTTP_PROXY and friends are ignored), streams request and response
// bodies as they come (SSE, uploads, WebSocket upgrades), and answers 502
// {"error":"bad_gateway"} when the upstream fails or 504
// {"error":"gateway_timeout"} when it is too slow, never naming it. The
// upstream sees X-Forwarded-For (the TCP peer), X-Forwarded-Host and
// X-Forwarded-Proto set by the gateway only: any Forwarded or
// X-Forwarded-* header from the client is dropped, as are client-address
// and URL/method-override headers such as X-Real-Ip, True-Client-IP,
// X-Original-URL and X-HTTP-Method-Override. Every response carries
// X-Request-Id (the client's, if it is at most 128 characters of
// [A-Za-z0-9._:-], else a new random one), which is forwarded too.
//
// Each proxied request logs one "access" line at Info (JSON with
// log_format: json): request_id, method, path (never the query), status,
// decision (allow, deny, not_found, reject, none), reason (the guard's
// reason, such as expired or insufficient_scope; "ok" when allowed),
// duration_ms, bytes, remote, proto, and upstream_status or
// upstream_error. Tokens, proofs and header values are never logged.
//
// SIGHUP reloads the TLS certificate and key (a failed reload keeps the
// current ones). On SIGINT or SIGTERM the gateway reports 503 on /readyz,
// keeps serving for drain_delay, stops accepting connections, lets
// in-flight requests finish for up to shutdown_timeout, closes what is
// left, and exits.
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

	"github.com/tokenguard/tokenguard/gateway"
)

const usage = `tokenguard guards an HTTP API with OAuth 2.0 access tokens.

Usage:
  tokenguard -config FILE          run the gateway configured by FILE (YAML)
  tokenguard serve -config FILE    the same
  tokenguard check -config FILE    validate FILE without network I/O and print the
                                   effective configuration (secrets redacted)
  tokenguard demo [flags]          run a development issuer, an example API and the
                                   gateway on 127.0.0.1, and print curl commands to try
  tokenguard keygen [-alg A] [-out FILE]
                                   make a DPoP key pair: the private key as PKCS#8 PEM,
                                   its thumbprint (jkt) on stderr
  tokenguard proof -method M -url URL -key FILE [-token T] [-nonce N]
                                   print a DPoP proof for one request (for curl -H "DPoP: ...")
  tokenguard help                  show this text

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

	// handleHUP makes serve take over SIGHUP (reload the TLS certificate)
	// instead of letting it end the process; only serve does, so demo,
	// check and the other commands still end when their terminal closes.
	// false in tests, which call gateway.reloadCertificate directly.
	handleHUP bool
	reload    <-chan os.Signal // SIGHUPs while serve runs

	onGateway func(*gateway.Gateway) // called once the gateway serves
	onDemo    func(*demo)            // called once the demo serves
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
	case "demo":
		return c.demo(ctx, args[1:])
	case "keygen":
		return c.keygen(args[1:])
	case "proof":
		return c.proof(args[1:])
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

	cfg, err := c.load(path)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return exitError
	}
	log := cfg.NewLogger(c.stderr)
	g, err := gateway.Start(ctx, cfg, log, gateway.Listeners{})
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
					if err := g.ReloadCertificate(); errors.Is(err, gateway.ErrNoTLS) {
						log.Info("SIGHUP: " + err.Error())
					} // reloadCertificate logs the outcome itself
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

// configFlag parses the "-config FILE" flag that serve and check take,
// and nothing else. head is the usage text printed before the flag list.
// When ok is false the command is done and exits with code (help shown,
// or a usage error reported).
func (c *cli) configFlag(name, head string, args []string) (path string, code int, ok bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	p := fs.String("config", "", "the gateway's YAML configuration `file`")
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
			fmt.Fprintln(c.stderr, "tokenguard: -config FILE is required")
		}
		fs.Usage()
		return "", exitUsage, false
	}
	return *p, 0, true
}
