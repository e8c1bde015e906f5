package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/gateway"
	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/netutil"
)

// demoAudience is the audience the demo issuer mints for and the demo
// gateway requires.
const demoAudience = "https://api.example.com"

// demoOptions are the demo's listen addresses. An address that was not set
// explicitly falls back to a free port when its default is taken.
type demoOptions struct {
	Issuer, Upstream, Listen, MetricsListen string
	explicit                                map[string]bool // flag names set on the command line
}

func defaultDemoOptions() demoOptions {
	return demoOptions{
		Issuer:        "127.0.0.1:7000",
		Upstream:      "127.0.0.1:9000",
		Listen:        "127.0.0.1:8080",
		MetricsListen: "127.0.0.1:9090",
	}
}

// demo is a running "tokenguard demo": a development issuer, an example
// upstream and the gateway, all on loopback in this process.
type demo struct {
	IssuerURL, UpstreamURL, GatewayURL, MetricsURL string

	gw                     *gateway.Gateway
	issuerSrv, upstreamSrv *http.Server
}

// demo implements "tokenguard demo".
func (c *cli) demo(ctx context.Context, args []string) int {
	opts := defaultDemoOptions()
	fs := flag.NewFlagSet("tokenguard demo", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&opts.Issuer, "issuer", opts.Issuer, "`address` of the development issuer (loopback only)")
	fs.StringVar(&opts.Upstream, "upstream", opts.Upstream, "`address` of the example upstream API (loopback only)")
	fs.StringVar(&opts.Listen, "listen", opts.Listen, "`address` of the gateway (loopback only)")
	fs.StringVar(&opts.MetricsListen, "metrics-listen", opts.MetricsListen, "`address` of /metrics, /healthz and /readyz (loopback only)")
	fs.Usage = func() {
		fmt.Fprint(c.stderr, "Usage: tokenguard demo [flags]\n\n"+
			"Runs a DEVELOPMENT ONLY token issuer, an example API and the gateway in front of\n"+
			"it on 127.0.0.1, prints curl commands to try, and runs until interrupted.\n"+
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
	opts.explicit = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { opts.explicit[f.Name] = true })

	log := slog.New(slog.NewTextHandler(c.stderr, nil))
	d, err := startDemo(ctx, opts, c.stdout, log)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return exitError
	}
	if c.onDemo != nil {
		c.onDemo(d)
	}
	if err := d.run(ctx); err != nil {
		log.Error("demo stopped with an error", "err", err)
		return exitError
	}
	return exitOK
}

// startDemo binds every listener first (so the printed addresses are the
// real ones), starts the issuer and the upstream, then the gateway, and
// prints the instructions to out.
func startDemo(ctx context.Context, opts demoOptions, out io.Writer, log *slog.Logger) (_ *demo, err error) {
	var lns []net.Listener
	defer func() {
		if err != nil {
			gateway.CloseAll(lns...)
		}
	}()
	bind := func(flagName, addr string) (net.Listener, error) {
		ln, err := listenDemo(flagName, addr, opts.explicit[flagName], log)
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

	d := &demo{
		IssuerURL:   "http://" + issuerLn.Addr().String(),
		UpstreamURL: "http://" + upstreamLn.Addr().String(),
		GatewayURL:  "http://" + proxyLn.Addr().String(),
		MetricsURL:  "http://" + metricsLn.Addr().String(),
	}

	key, err := devissuer.GenerateKey("ES256", "demo-1")
	if err != nil {
		return nil, fmt.Errorf("tokenguard demo: %w", err)
	}
	is := devissuer.New(d.IssuerURL, demoAudience, key)
	issuerHandler, err := newDemoIssuerHandler(is, d.IssuerURL+"/token")
	if err != nil {
		return nil, fmt.Errorf("tokenguard demo: %w", err)
	}
	d.issuerSrv = &http.Server{Handler: issuerHandler, ReadHeaderTimeout: gateway.ReadHeaderTimeout}
	d.upstreamSrv = &http.Server{Handler: http.HandlerFunc(echoHandler), ReadHeaderTimeout: gateway.ReadHeaderTimeout}
	go serveDemo(d.issuerSrv, issuerLn, log)
	go serveDemo(d.upstreamSrv, upstreamLn, log)
	defer func() {
		if err != nil {
			d.issuerSrv.Close()
			d.upstreamSrv.Close()
		}
	}()

	yamlText := d.config(proxyLn.Addr().String(), metricsLn.Addr().String())
	cfg, err := gateway.ParseConfig("demo", []byte(yamlText), nil)
	if err != nil {
		return nil, fmt.Errorf("tokenguard demo: generated config: %w", err) // a bug
	}
	if d.gw, err = gateway.Start(ctx, cfg, log, gateway.Listeners{Proxy: proxyLn, Metrics: metricsLn}); err != nil {
		return nil, err
	}
	if err := d.printInstructions(out, yamlText); err != nil {
		d.gw.Shutdown(0)
		return nil, fmt.Errorf("tokenguard demo: %w", err)
	}
	return d, nil
}

// listenDemo binds addr, which must be on loopback: the demo issuer hands
// out tokens to anyone who asks. If a default port is taken, it falls back
// to a free one and says so.
func listenDemo(flagName, addr string, explicit bool, log *slog.Logger) (net.Listener, error) {
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

func serveDemo(srv *http.Server, ln net.Listener, log *slog.Logger) {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Error("demo server failed", "addr", ln.Addr().String(), "err", err)
	}
}

// run serves until ctx is done, then stops the gateway and the demo's
// servers.
func (d *demo) run(ctx context.Context) error {
	err := d.gw.Run(ctx)
	d.issuerSrv.Close()
	d.upstreamSrv.Close()
	return err
}

// config returns the demo gateway's configuration: the same YAML a user
// would write, parsed by the same code as "tokenguard -config".
func (d *demo) config(listen, metricsListen string) string {
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
`, listen, metricsListen, d.UpstreamURL, d.GatewayURL, demoAudience, d.IssuerURL, d.IssuerURL)
}

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
# for go run ./cmd/tokenguard). Make a key; keygen prints its thumbprint (jkt) and never
# overwrites a file, so a second run keeps the first key:
go run ./cmd/tokenguard keygen -out demo-dpop.pem
# ask for a token bound to it, with a proof of the key made for this token request:
TOKEN=$(curl -s -X POST -H "DPoP: $(go run ./cmd/tokenguard proof -method POST -url {{.IssuerURL}}/token -key demo-dpop.pem)" '{{.IssuerURL}}/token?scope=orders:read')

# 200: the bound token, with a fresh proof for this very request (a proof is good once)
curl -i -H "Authorization: DPoP $TOKEN" -H "DPoP: $(go run ./cmd/tokenguard proof -method GET -url {{.GatewayURL}}/orders/ -key demo-dpop.pem -token $TOKEN)" {{.GatewayURL}}/orders/

# 401: the bound token without its key, sent as a Bearer token (invalid_token)
curl -i -H "Authorization: Bearer $TOKEN" {{.GatewayURL}}/orders/

# the guard's counters
curl -s {{.MetricsURL}}/metrics | grep '^tokenguard_requests_total'

The gateway runs with this configuration (save it to a file and run tokenguard -config FILE):

{{.Config}}`))

func (d *demo) printInstructions(out io.Writer, config string) error {
	var indented strings.Builder
	for line := range strings.Lines(config) {
		indented.WriteString("  " + line)
	}
	return instructions.Execute(out, struct {
		*demo
		Config string
	}{d, indented.String()})
}

// demoTokenTTL is how long the demo's tokens live.
const demoTokenTTL = time.Hour

// demoTokenEndpoint is the demo issuer's token endpoint: like the
// development issuer's own, it mints a token for anyone who asks
// (DEVELOPMENT ONLY), and in addition, when the request carries a valid
// DPoP proof, it binds the token to the proof's key with cnf.jkt and
// answers token_type DPoP (RFC 9449 §5, §6.1).
//
// The answer is the bare token as text/plain, for TOKEN=$(curl ...), or
// an RFC 6749 §5.1 token response when the client accepts
// application/json.
type demoTokenEndpoint struct {
	is     *devissuer.Issuer
	url    string         // this endpoint's URL as clients address it: the proofs' htu
	proofs *dpop.Verifier // with its own in-memory replay store
}

// newDemoIssuerHandler serves the development issuer's endpoints, with
// /token replaced by a demoTokenEndpoint at tokenURL.
func newDemoIssuerHandler(is *devissuer.Issuer, tokenURL string) (http.Handler, error) {
	v, err := dpop.NewVerifier(dpop.Config{})
	if err != nil {
		return nil, err
	}
	te := &demoTokenEndpoint{is: is, url: tokenURL, proofs: v}
	mux := http.NewServeMux()
	mux.Handle("/", is.Handler())
	mux.Handle("GET /token", te)
	mux.Handle("POST /token", te)
	return mux, nil
}

func (te *demoTokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "cannot parse the request")
		return
	}
	scope := r.Form.Get("scope")
	if len(scope) > 1024 {
		tokenError(w, http.StatusBadRequest, "invalid_scope", "scope too long")
		return
	}
	tokenType := "Bearer"
	var extra map[string]any
	switch proofs := r.Header.Values("DPoP"); len(proofs) {
	case 0:
	case 1:
		p, err := te.proofs.Verify(r.Context(), dpop.Request{Proof: proofs[0], Method: r.Method, URL: te.url})
		switch {
		case errors.Is(err, dpop.ErrStoreFull) || errors.Is(err, dpop.ErrStoreUnavailable):
			tokenError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "cannot check the proof now")
			return
		case err != nil:
			// A fixed phrase: the reason stays on this side.
			tokenError(w, http.StatusBadRequest, "invalid_dpop_proof", "the DPoP proof is not valid for this request")
			return
		}
		tokenType = "DPoP"
		extra = map[string]any{"cnf": map[string]any{"jkt": p.JKT}}
	default:
		tokenError(w, http.StatusBadRequest, "invalid_dpop_proof", "more than one DPoP header")
		return
	}
	tok, err := te.is.Mint(scope, demoTokenTTL, extra)
	if err != nil {
		tokenError(w, http.StatusInternalServerError, "server_error", "cannot mint a token")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if !strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, tok+"\n")
		return
	}
	resp := map[string]any{
		"access_token": tok,
		"token_type":   tokenType,
		"expires_in":   int(demoTokenTTL / time.Second),
	}
	if scope != "" {
		resp["scope"] = scope
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// tokenError writes an RFC 6749 §5.2 error response. description is a
// fixed phrase, never request data.
func tokenError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}

// echoHandler is the demo's upstream API: it answers with who called it,
// as the gateway told it (encoding/json sorts the header names).
func echoHandler(w http.ResponseWriter, r *http.Request) {
	headers := map[string]string{}
	for k, v := range r.Header {
		if strings.HasPrefix(k, gateway.HeaderPrefix) {
			headers[k] = strings.Join(v, ", ")
		}
	}
	body, _ := json.MarshalIndent(struct {
		Message string            `json:"message"`
		Method  string            `json:"method"`
		Path    string            `json:"path"`
		Headers map[string]string `json:"headers"`
		Time    string            `json:"time"`
	}{"hello from the example upstream", r.Method, r.URL.Path, headers, time.Now().UTC().Format(time.RFC3339)}, "", "  ")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(body, '\n'))
}
