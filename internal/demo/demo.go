// Package demo is "tokenguard demo": a development issuer that mints
// tokens for anyone who asks, an example upstream that echoes who called
// it, and the gateway in front of it, all on loopback in one process, with
// ready-to-paste commands printed to try them. It composes the gateway
// package's public API exactly as a user's program would. Never expose it:
// its issuer is for trying things out only.
//
// With Options.BFF ("tokenguard demo --bff") it is a browser app instead:
// the issuer also logs anyone in (as demo-user), the gateway runs its
// token handler (the bff block), and one origin serves the app's page and,
// behind it, the gateway's handler; the one URL printed is the page.
package demo

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"text/template"
	"time"

	"github.com/tokenguard/tokenguard/gateway"
	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/netutil"
)

// audience is what the tests' own issuers mint for. The demo itself
// uses the gateway's URL as its audience and resource identifier, so the
// resource_metadata URL in its challenges is where the gateway serves the
// document (https://api.example.com would send clients nowhere).
const audience = "https://api.example.com"

// The browser mode's user and its client at the development issuer.
const (
	bffSubject  = "demo-user"
	bffClientID = "demo-app"
)

// Options are the demo's listen addresses, which must all be on loopback,
// and where its printed commands keep a DPoP key. An address not named in
// Explicit falls back to a free port when it is taken.
type Options struct {
	Issuer, Upstream, Listen, MetricsListen string
	// DPoPKey is the file the printed DPoP commands make their key in
	// (with "tokenguard keygen", which keeps an existing key) and sign
	// proofs with. The demo itself never reads or writes it. "" means
	// DefaultDPoPKey(): outside the source tree, where the commands are
	// run from.
	DPoPKey string
	// Explicit holds the command-line flag names ("issuer", "upstream",
	// "listen", "metrics-listen") whose addresses the user chose: those
	// are never replaced.
	Explicit map[string]bool
	// BFF runs the browser mode: Listen is the app's origin, which serves
	// the app's page and the gateway with its token handler.
	BFF bool
}

// DefaultOptions are the addresses the printed commands are easiest with,
// and the default DPoP key file.
func DefaultOptions() Options {
	return Options{
		Issuer:        "127.0.0.1:7000",
		Upstream:      "127.0.0.1:9000",
		Listen:        "127.0.0.1:8080",
		MetricsListen: "127.0.0.1:9090",
		DPoPKey:       DefaultDPoPKey(),
	}
}

// DefaultDPoPKey is where the printed commands keep the demo's DPoP
// private key: tokenguard/demo-dpop.pem in the user's configuration
// directory (os.UserConfigDir: $XDG_CONFIG_HOME or ~/.config on Linux,
// ~/Library/Application Support on macOS), so that it never lands in the
// source tree the commands are run from, and a later demo finds the same
// key. Without a configuration directory (no $HOME), the system's
// temporary directory.
func DefaultDPoPKey() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "tokenguard", "demo-dpop.pem")
}

// Demo is a running demo.
type Demo struct {
	IssuerURL, UpstreamURL, GatewayURL, MetricsURL string
	// AppURL is, in the browser mode, the app's page: the URL to open.
	// With BFF the gateway's handler is served at GatewayURL, the same
	// origin. "" without BFF.
	AppURL string

	gw                     *gateway.Gateway
	issuer                 *devissuer.Issuer
	issuerSrv, upstreamSrv *http.Server
	// In the browser mode, the servers of the app's origin and of the
	// metrics; the gateway's own servers are not started.
	appSrv, metricsSrv *http.Server
	stopping           atomic.Bool // Run is shutting down: /readyz says 503
}

// readHeaderTimeout bounds the demo issuer's and upstream's header reads.
const readHeaderTimeout = 10 * time.Second

// Start binds every listener first (so the printed addresses are the real
// ones), starts the issuer and the upstream, then the gateway, and prints
// the instructions to out. ctx bounds only the start; stop the demo by
// ending Run's context.
func Start(ctx context.Context, opts Options, out io.Writer, log *slog.Logger) (_ *Demo, err error) {
	var lns []net.Listener
	defer func() {
		if err != nil {
			for _, ln := range lns {
				ln.Close()
			}
		}
	}()
	bind := func(flagName, addr string) (net.Listener, error) {
		ln, err := listen(flagName, addr, opts.Explicit[flagName], log)
		if err == nil {
			lns = append(lns, ln)
		}
		return ln, err
	}
	issuerLn, err := bind("issuer", opts.Issuer)
	if err != nil {
		return nil, err
	}
	upstreamLn, err := bind("upstream", opts.Upstream)
	if err != nil {
		return nil, err
	}
	proxyLn, err := bind("listen", opts.Listen)
	if err != nil {
		return nil, err
	}
	metricsLn, err := bind("metrics-listen", opts.MetricsListen)
	if err != nil {
		return nil, err
	}

	d := &Demo{
		IssuerURL:   "http://" + issuerLn.Addr().String(),
		UpstreamURL: "http://" + upstreamLn.Addr().String(),
		GatewayURL:  "http://" + proxyLn.Addr().String(),
		MetricsURL:  "http://" + metricsLn.Addr().String(),
	}

	key, err := devissuer.GenerateKey("ES256", "demo-1")
	if err != nil {
		return nil, fmt.Errorf("tokenguard demo: %w", err)
	}
	is := devissuer.New(d.IssuerURL, d.GatewayURL, key)
	d.issuer = is
	clientSecret := ""
	if opts.BFF {
		d.AppURL = d.GatewayURL + "/"
		clientSecret = rand.Text()
		is.EnableLogin(devissuer.LoginConfig{
			Clients: []devissuer.Client{{
				ID: bffClientID, Secret: clientSecret,
				RedirectURIs:           []string{d.GatewayURL + "/bff/callback"},
				PostLogoutRedirectURIs: []string{d.AppURL},
			}},
			Subject: bffSubject,
			Claims:  map[string]any{"name": "Demo User", "email": "demo-user@example.com"},
		})
	}
	issuerHandler, err := newIssuerHandler(is, d.IssuerURL+"/token", opts.BFF)
	if err != nil {
		return nil, fmt.Errorf("tokenguard demo: %w", err)
	}
	d.issuerSrv = &http.Server{Handler: issuerHandler, ReadHeaderTimeout: readHeaderTimeout}
	d.upstreamSrv = &http.Server{Handler: http.HandlerFunc(echo), ReadHeaderTimeout: readHeaderTimeout}
	go serve(d.issuerSrv, issuerLn, log)
	go serve(d.upstreamSrv, upstreamLn, log)
	defer func() {
		if err != nil {
			d.issuerSrv.Close()
			d.upstreamSrv.Close()
		}
	}()

	// The same YAML a user would write, read by the same code as
	// "tokenguard -config".
	yamlText := d.config(proxyLn.Addr().String(), metricsLn.Addr().String())
	if opts.BFF {
		yamlText = d.bffConfig(proxyLn.Addr().String(), metricsLn.Addr().String(), clientSecret)
	}
	cfg, err := gateway.ParseConfig("demo", []byte(yamlText), func(string) string { return "" })
	if err != nil {
		return nil, fmt.Errorf("tokenguard demo: generated config: %w", err) // a bug
	}
	if opts.BFF {
		if err := d.startApp(ctx, cfg, proxyLn, metricsLn, log); err != nil {
			return nil, err
		}
		if err := bffInstructions.Execute(out, d); err != nil {
			d.stop()
			return nil, fmt.Errorf("tokenguard demo: %w", err)
		}
		return d, nil
	}
	if d.gw, err = gateway.New(cfg, gateway.Options{Logger: log, Listener: proxyLn, MetricsListener: metricsLn}); err != nil {
		return nil, err
	}
	if err := d.gw.Start(ctx); err != nil {
		return nil, err
	}
	keyFile := opts.DPoPKey
	if keyFile == "" {
		keyFile = DefaultDPoPKey()
	}
	if err := d.printInstructions(out, yamlText, keyFile); err != nil {
		d.gw.Shutdown(context.Background())
		return nil, fmt.Errorf("tokenguard demo: %w", err)
	}
	return d, nil
}

// SetLoginRequired makes the demo's issuer answer a silent login
// (prompt=none) with login_required, as a provider does when the user has
// no session there, or, with false, log demo-user in again as usual. The
// demo itself never calls it: it is for tests of the browser mode, and
// does nothing without BFF.
func (d *Demo) SetLoginRequired(v bool) { d.issuer.SetLoginRequired(v) }

// listen binds addr, which must be on loopback: the demo issuer hands
// out tokens to anyone who asks. If a default port is taken, it falls back
// to a free one and says so.
func listen(flagName, addr string, explicit bool, log *slog.Logger) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("tokenguard demo: -%s %q: not host:port", flagName, addr)
	}
	if !netutil.IsLoopbackHost(host) {
		return nil, fmt.Errorf("tokenguard demo: -%s %q: the demo listens on loopback only (it runs a development issuer that mints tokens for anyone)", flagName, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	if explicit || !errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("tokenguard demo: -%s %s: %w (choose another address with -%s, or port 0 for any free port)", flagName, addr, err, flagName)
	}
	ln, err2 := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err2 != nil {
		return nil, fmt.Errorf("tokenguard demo: -%s %s: %w", flagName, addr, err)
	}
	log.Warn("default demo port in use; using a free one instead", "flag", "-"+flagName, "wanted", addr, "using", ln.Addr().String())
	return ln, nil
}

func serve(srv *http.Server, ln net.Listener, log *slog.Logger) {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Error("demo server failed", "addr", ln.Addr().String(), "err", err)
	}
}

// Run serves until ctx is done, then stops the gateway and the demo's
// servers.
func (d *Demo) Run(ctx context.Context) error {
	if d.appSrv != nil {
		<-ctx.Done()
		return d.stop()
	}
	err := d.gw.Run(ctx)
	d.issuerSrv.Close()
	d.upstreamSrv.Close()
	return err
}

// config returns the demo gateway's configuration: the same YAML a user
// would write, parsed by the same code as "tokenguard -config".
func (d *Demo) config(listen, metricsListen string) string {
	return fmt.Sprintf(`listen: %s
metrics_listen: %s
upstream: %s
public_url: %s
audience: %s
issuers:
  - issuer: %s
    jwks_uri: %s/jwks
dpop:
  mode: allowed
routes:
  - pattern: "GET /orders/"
    scopes: [orders:read]
  - pattern: "POST /orders/"
    scopes: [orders:write]
shutdown_timeout: 5s
`, listen, metricsListen, d.UpstreamURL, d.GatewayURL, d.GatewayURL, d.IssuerURL, d.IssuerURL)
}

// bffConfig is config for the browser mode: the API under /api/, and
// the token handler logging users in at the demo issuer as bffClientID.
func (d *Demo) bffConfig(listen, metricsListen, clientSecret string) string {
	return fmt.Sprintf(`listen: %s
metrics_listen: %s
upstream: %s
public_url: %s
audience: %s
issuers:
  - issuer: %s
    jwks_uri: %s/jwks
routes:
  - pattern: "GET /api/"
    scopes: [orders:read]
  - pattern: "POST /api/"
    scopes: [orders:write]
bff:
  issuer: %s
  client_id: %s
  client_secret: %s
  scopes: [openid, offline_access, orders:read]
  post_logout_redirect_uri: %s
shutdown_timeout: 5s
`, listen, metricsListen, d.UpstreamURL, d.GatewayURL, d.GatewayURL, d.IssuerURL, d.IssuerURL,
		d.IssuerURL, bffClientID, clientSecret, d.AppURL)
}

// startApp starts the browser mode's servers: the app's origin on
// proxyLn, serving the app's page and the gateway's handler (the way
// package gateway documents embedding it), and the gateway's metrics on
// metricsLn. It first waits, as the gateway's Start does, for the
// issuer's keys. On failure it stops everything it started.
func (d *Demo) startApp(ctx context.Context, cfg *gateway.Config, proxyLn, metricsLn net.Listener, log *slog.Logger) error {
	gw, err := gateway.New(cfg, gateway.Options{Logger: log})
	if err != nil {
		return err
	}
	d.gw = gw
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !gw.Ready() {
		select {
		case <-tick.C:
			continue
		case <-wait.Done():
		}
		if ctx.Err() != nil {
			gw.Shutdown(context.Background())
			return ctx.Err()
		}
		log.Warn("issuer keys not loaded yet; answering 503 for their tokens until they are")
		break
	}
	d.appSrv = &http.Server{
		Handler:           appHandler(gw.Handler()),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       2 * time.Minute,
	}
	metrics := http.NewServeMux()
	metrics.Handle("/", gw.MetricsHandler())
	// The gateway's own /readyz says "starting" until its Start runs,
	// and here its handler is served by the demo's server instead.
	metrics.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		switch {
		case d.stopping.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "shutting down\n")
		case !gw.Ready():
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "issuer keys not loaded\n")
		default:
			_, _ = io.WriteString(w, "ready\n")
		}
	})
	d.metricsSrv = &http.Server{Handler: metrics, ReadHeaderTimeout: readHeaderTimeout}
	go serve(d.appSrv, proxyLn, log)
	go serve(d.metricsSrv, metricsLn, log)
	log.Info("tokenguard demo: browser app started", "app", d.AppURL, "metrics_listen", metricsLn.Addr().String())
	return nil
}

// stop ends the browser mode: the app's origin lets in-flight requests
// finish for up to 5 s, then the gateway and the other servers close.
func (d *Demo) stop() error {
	d.stopping.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := d.appSrv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, d.appSrv.Close())
	}
	d.metricsSrv.Close()
	err = errors.Join(err, d.gw.Shutdown(context.Background()))
	d.issuerSrv.Close()
	d.upstreamSrv.Close()
	return err
}

var bffInstructions = template.Must(template.New("demo-bff").Parse(`
tokenguard demo --bff: a browser app whose API is behind the gateway's token handler, and a
DEVELOPMENT ONLY issuer that logs anyone in as demo-user, all on 127.0.0.1; Ctrl-C stops it.

Open this page in a browser:

  {{.AppURL}}

Log in, call the API, log out. The tokens stay in the gateway: the page only has an
HttpOnly session cookie, which it cannot read, and sends X-CSRF: 1 with every call.
`))

var instructions = template.Must(template.New("demo").Parse(`
tokenguard demo: everything runs on 127.0.0.1; stop it with Ctrl-C.

  issuer    {{.IssuerURL}}   DEVELOPMENT ONLY: mints a token for anyone who asks (bound to
                                    a key of theirs when they send a DPoP proof). Never expose it.
  upstream  {{.UpstreamURL}}   example API: echoes the method, path and X-Tokenguard-* headers it gets
  gateway   {{.GatewayURL}}   GET /orders/ needs orders:read, POST /orders/ needs orders:write;
                                    Bearer and DPoP tokens are accepted (dpop.mode: allowed)
  metrics   {{.MetricsURL}}/metrics   (also /healthz and /readyz)

Try it (paste into a shell):

# 200: a token with orders:read may GET /orders/
TOKEN=$(curl -s '{{.IssuerURL}}/token?scope=orders:read')
curl -i -H "Authorization: Bearer $TOKEN" {{.GatewayURL}}/orders/

# 401: no token
curl -i {{.GatewayURL}}/orders/

# 403: orders:read is not enough to POST (insufficient_scope)
curl -i -X POST -H "Authorization: Bearer $TOKEN" {{.GatewayURL}}/orders/

# DPoP (RFC 9449): a token bound to a key of yours is useless to anyone without that key.
# Run these from the tokenguard source tree (with tokenguard installed, write tokenguard
# for go run ./cmd/tokenguard). The key lives outside the source tree (tokenguard demo
# -dpop-key FILE picks another place). Make it; keygen prints its thumbprint (jkt) and
# keeps an existing key, so a second run keeps the first key:
mkdir -p -m 700 {{.KeyDir}}
KEY={{.KeyFile}}
go run ./cmd/tokenguard keygen -out "$KEY"
# ask for a token bound to it, with a proof of the key made for this token request:
TOKEN=$(curl -s -X POST -H "DPoP: $(go run ./cmd/tokenguard proof -method POST -url {{.IssuerURL}}/token -key "$KEY")" '{{.IssuerURL}}/token?scope=orders:read')

# 200: the bound token, with a fresh proof for this very request (a proof is good once)
curl -i -H "Authorization: DPoP $TOKEN" -H "DPoP: $(go run ./cmd/tokenguard proof -method GET -url {{.GatewayURL}}/orders/ -key "$KEY" -token $TOKEN)" {{.GatewayURL}}/orders/

# 401: the bound token without its key, sent as a Bearer token (invalid_token)
curl -i -H "Authorization: Bearer $TOKEN" {{.GatewayURL}}/orders/

# the guard's counters
curl -s {{.MetricsURL}}/metrics | grep '^tokenguard_requests_total'

The gateway runs with this configuration (save it to a file and run tokenguard -config FILE):

{{.Config}}`))

// printInstructions prints the commands to try, with keyFile as the DPoP
// key's file.
func (d *Demo) printInstructions(out io.Writer, config, keyFile string) error {
	var indented strings.Builder
	for line := range strings.Lines(config) {
		indented.WriteString("  " + line)
	}
	return instructions.Execute(out, struct {
		*Demo
		Config, KeyDir, KeyFile string
	}{d, indented.String(), shellQuote(filepath.Dir(keyFile)), shellQuote(keyFile)})
}

// shellQuote quotes s as one word for a POSIX shell (a configuration
// directory may have spaces in its name).
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
