package loadkit

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"

	"github.com/tokenguard/tokenguard/internal/netutil"
)

// The helper processes: the upstream and the bare reverse proxy run as
// copies of the load generator's binary ("PROG upstream", "PROG proxy"),
// so that neither the system under test nor the bare proxy shares a
// process (and its scheduler and garbage collector) with the load
// generator or the upstream.
//
// Each binds 127.0.0.1 on a free port, prints "listening ADDR" on stdout
// and serves until its stdin closes: the parent holds the other end, so a
// helper never outlives the load generator, even one that was killed.

// Request shapes and what the upstream echoes back. The upstream copies
// the IdentityHeader it received into SubjectEcho and sets UpstreamMark,
// so the client can tell which requests reached it and as whom.
const (
	RequestPath    = "/orders/42"
	RouteScope     = "orders:read"
	UpstreamMark   = "X-Load-Upstream"
	SubjectEcho    = "X-Load-Subject"
	IdentityHeader = "X-Tokenguard-Subject"
)

// Server limits, the same as the gateway's proxy server.
const (
	HelperReadHeaderTimeout = 10 * time.Second
	helperIdleTimeout       = 2 * time.Minute
)

// UpstreamBody is the upstream's whole response: small, like an API's.
const UpstreamBody = `{"id":42,"status":"shipped"}` + "\n"

// UpstreamHandler answers every request with 200 and echoes the identity
// the request arrived with, so the client can check a gateway's decision
// end to end.
func UpstreamHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set(UpstreamMark, "1")
		if s := r.Header.Get(IdentityHeader); s != "" {
			h.Set(SubjectEcho, s)
		}
		_, _ = io.WriteString(w, UpstreamBody)
	})
}

// BareProxy is the baseline: an httputil.ReverseProxy with Rewrite doing
// SetURL and SetXForwarded and the connection pool, copy buffers and
// flush interval every proxy of ours shares (netutil.ConfigureProxy, with
// the gateway's default timeouts), and no authentication, so a
// comparison measures the guard rather than proxy settings.
func BareProxy(upstream *url.URL) http.Handler {
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.SetXForwarded()
		},
	}
	netutil.ConfigureProxy(p, netutil.ProxySettings{DialTimeout: 5 * time.Second, ResponseHeaderTimeout: 30 * time.Second})
	return p
}

// IsHelper reports whether args (os.Args[1:]) ask for a helper process.
func IsHelper(args []string) bool {
	return len(args) > 0 && (args[0] == "upstream" || args[0] == "proxy")
}

// RunHelper implements the hidden "upstream" and "proxy" subcommands of
// program prog; args are os.Args[1:]. It returns the exit status.
func RunHelper(prog string, args []string, stdout, stderr io.Writer) int {
	name := args[0]
	fs := flag.NewFlagSet(prog+" "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen `address`")
	up := fs.String("upstream", "", "the upstream's base `URL` (proxy only)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	var h http.Handler
	switch name {
	case "upstream":
		h = UpstreamHandler()
	case "proxy":
		u, err := url.Parse(*up)
		if err != nil || u.Scheme != "http" || u.Host == "" {
			fmt.Fprintf(stderr, "%s proxy: -upstream must be an http URL, got %q\n", prog, *up)
			return 2
		}
		h = BareProxy(u)
	default:
		fmt.Fprintf(stderr, "%s: unknown helper %q\n", prog, name)
		return 2
	}
	if err := ServeHelper(*addr, h, os.Stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "%s %s: %v\n", prog, name, err)
		return 1
	}
	return 0
}

// ServeHelper serves h on addr (loopback only) until lifeline reaches EOF.
func ServeHelper(addr string, h http.Handler, lifeline io.Reader, stdout io.Writer) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to listen on %s: loopback only", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: HelperReadHeaderTimeout, IdleTimeout: helperIdleTimeout}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	if _, err := fmt.Fprintf(stdout, "listening %s\n", ln.Addr()); err != nil {
		srv.Close()
		return err
	}
	parentGone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, lifeline)
		close(parentGone)
	}()
	select {
	case err := <-done:
		return err
	case <-parentGone:
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// NewClient returns a shared keep-alive client for concurrency workers:
// enough idle connections per host that no worker ever waits for one or
// reconnects, and a timeout so that no request can hang the run.
func NewClient(concurrency int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 4 * concurrency
	tr.MaxIdleConnsPerHost = 2 * concurrency
	tr.DisableCompression = true // the upstream never compresses; don't ask
	return &http.Client{
		Transport: tr,
		Timeout:   10 * time.Second,
		// A redirect would be a bug in the target; report it as such.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
