package main

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
// copies of this binary ("load upstream", "load proxy"), so that neither
// the gateway nor the bare proxy shares a process (and its scheduler and
// garbage collector) with the load generator or the upstream.
//
// Each binds 127.0.0.1 on a free port, prints "listening ADDR" on stdout
// and serves until its stdin closes: the parent holds the other end, so a
// helper never outlives the load generator, even one that was killed.

// Server limits, the same as the gateway's proxy server.
const (
	helperReadHeaderTimeout = 10 * time.Second
	helperIdleTimeout       = 2 * time.Minute
)

// upstreamBody is the upstream's whole response: small, like an API's.
const upstreamBody = `{"id":42,"status":"shipped"}` + "\n"

// upstreamHandler answers every request with 200 and echoes the identity
// the request arrived with, so the client can check the gateway's
// decision end to end.
func upstreamHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set(upstreamMark, "1")
		if s := r.Header.Get(identityHdr); s != "" {
			h.Set(subjectEcho, s)
		}
		_, _ = io.WriteString(w, upstreamBody)
	})
}

// bareProxy is the baseline: an httputil.ReverseProxy with Rewrite doing
// SetURL and SetXForwarded and the connection pool, copy buffers and
// flush interval every proxy of ours shares (netutil.ConfigureProxy, with
// the gateway's default timeouts), and no authentication, so the
// comparison measures the guard rather than proxy settings.
func bareProxy(upstream *url.URL) http.Handler {
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.SetXForwarded()
		},
	}
	netutil.ConfigureProxy(p, netutil.ProxySettings{DialTimeout: 5 * time.Second, ResponseHeaderTimeout: 30 * time.Second})
	return p
}

// runHelper implements the hidden "upstream" and "proxy" subcommands.
func runHelper(name string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("load "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen `address`")
	up := fs.String("upstream", "", "the upstream's base `URL` (proxy only)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var h http.Handler
	switch name {
	case "upstream":
		h = upstreamHandler()
	case "proxy":
		u, err := url.Parse(*up)
		if err != nil || u.Scheme != "http" || u.Host == "" {
			fmt.Fprintf(stderr, "load proxy: -upstream must be an http URL, got %q\n", *up)
			return 2
		}
		h = bareProxy(u)
	}
	if err := serveHelper(*addr, h, os.Stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "load %s: %v\n", name, err)
		return 1
	}
	return 0
}

// serveHelper serves h on addr until lifeline reaches EOF.
func serveHelper(addr string, h http.Handler, lifeline io.Reader, stdout io.Writer) error {
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
	srv := &http.Server{Handler: h, ReadHeaderTimeout: helperReadHeaderTimeout, IdleTimeout: helperIdleTimeout}
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
