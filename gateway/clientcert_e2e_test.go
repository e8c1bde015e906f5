package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenguard/tokenguard/internal/testkit"
)

// TLS at a proxy in front, end to end: real Caddy and nginx terminate TLS,
// ask for client certificates and report them in Client-Cert (RFC 9440),
// configured with the blocks README.md's "Certificate-bound tokens at the
// gateway" shows (read from the README, so the documentation cannot drift
// from what is tested), in front of a gateway that trusts them.

// readmeCertBlock returns the first fenced block of lang in README.md's
// "### Certificate-bound tokens at the gateway" section.
func readmeCertBlock(t testing.TB, lang string) string {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const heading = "\n### Certificate-bound tokens at the gateway\n"
	_, section, ok := strings.Cut(string(data), heading)
	if !ok {
		t.Fatalf("README.md has no %q section", strings.TrimSpace(heading))
	}
	if end := strings.Index(section, "\n### "); end >= 0 {
		section = section[:end]
	}
	_, block, ok := strings.Cut(section, "\n```"+lang+"\n")
	if !ok {
		t.Fatalf("README.md's certificate section has no %s block", lang)
	}
	block, _, ok = strings.Cut(block, "\n```\n")
	if !ok {
		t.Fatalf("README.md: the %s block does not end", lang)
	}
	if !strings.Contains(block, readmeGateway) && lang != "js" {
		t.Fatalf("README.md's %s block does not proxy to %s", lang, readmeGateway)
	}
	return block + "\n"
}

// njsModule is where Debian's libnginx-mod-http-js puts nginx's njs.
const njsModule = "/usr/lib/nginx/modules/ngx_http_js_module.so"

func TestClientCertBehindCaddy(t *testing.T) {
	lookIngress(t, "caddy")
	testClientCertProxy(t, func(t *testing.T, gw, certFile, keyFile string) string {
		addr := testkit.ClosedAddr(t)
		_, port, _ := net.SplitHostPort(addr)
		b := readmeCertBlock(t, "caddyfile")
		for _, s := range []string{"api.example.com {", "\ttls {"} {
			if !strings.Contains(b, s) {
				t.Fatalf("README.md's Caddy block lacks %q", s)
			}
		}
		b = strings.NewReplacer(
			"api.example.com {", "https://api.example.com:"+port+" {",
			"\ttls {", "\ttls "+certFile+" "+keyFile+" {",
			readmeGateway, gw,
		).Replace(b)
		startCaddy(t, b, addr)
		return addr
	})
}

func TestClientCertBehindNginx(t *testing.T) {
	bin := lookIngress(t, "nginx")
	if _, err := os.Stat(njsModule); err != nil {
		t.Skipf("nginx's njs module is not installed (%s; .ci/run installs libnginx-mod-http-js)", njsModule)
	}
	testClientCertProxy(t, func(t *testing.T, gw, certFile, keyFile string) string {
		dir := t.TempDir()
		js := filepath.Join(dir, "client_cert.js")
		if err := os.WriteFile(js, []byte(readmeCertBlock(t, "js")), 0o600); err != nil {
			t.Fatal(err)
		}
		const marker = "# in the server { }"
		httpPart, serverPart, ok := strings.Cut(readmeCertBlock(t, "nginx"), marker)
		if !ok {
			t.Fatalf("README.md's nginx block has no %q line", marker)
		}
		httpPart = strings.ReplaceAll(httpPart, "/etc/nginx/client_cert.js", js)
		serverPart = strings.ReplaceAll(serverPart, readmeGateway, gw)
		addr := testkit.ClosedAddr(t)
		var conf strings.Builder
		fmt.Fprintf(&conf, "load_module %s;\nworker_processes 1;\nevents { worker_connections 64; }\nhttp {\n    access_log off;\n", njsModule)
		for _, p := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
			fmt.Fprintf(&conf, "    %s_temp_path %s;\n", p, filepath.Join(dir, p))
		}
		fmt.Fprintf(&conf, "%s\n    server {\n        listen %s ssl;\n        ssl_certificate %s;\n        ssl_certificate_key %s;\n        %s\n    }\n}\n",
			httpPart, addr, certFile, keyFile, marker+serverPart)
		path := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(path, []byte(conf.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		runIngress(t, exec.Command(bin, "-e", "stderr", "-p", dir, "-c", path,
			"-g", "daemon off; pid "+filepath.Join(dir, "nginx.pid")+"; error_log stderr;"), addr)
		return addr
	})
}

// testClientCertProxy runs the certificate-bound scenario through the
// TLS-terminating proxy start runs (with certFile and keyFile, in front of
// the gateway at gw), which returns the address it serves.
func testClientCertProxy(t *testing.T, start func(t *testing.T, gw, certFile, keyFile string) string) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "client_cert_header: Client-Cert\ntrusted_proxies: [127.0.0.1]\n"))
	_, certFile, keyFile := tlsFiles(t)
	testkit.NewCert(t, 1).Write(t, certFile, keyFile)
	addr := start(t, g.gw.Addr(), certFile, keyFile)
	_, port, _ := net.SplitHostPort(addr)
	url := "https://api.example.com:" + port + "/orders/1"

	alice, bob := newClientCert(t, 10), newClientCert(t, 11)
	bound := mintBound(t, is, "orders:read", alice)
	unbound := mint(t, is, "orders:read")
	as := func(c *clientCert) *http.Client {
		// The proxy's own certificate is not what is tested (it names
		// 127.0.0.1, not api.example.com, the site's name).
		cfg := &tls.Config{InsecureSkipVerify: true}
		if c != nil {
			cfg.Certificates = []tls.Certificate{c.pair}
		}
		dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
		return &http.Client{Timeout: wait, Transport: &http.Transport{
			TLSClientConfig: cfg, DialContext: dial, ForceAttemptHTTP2: true, DisableKeepAlives: true,
		}}
	}
	forged := http.Header{"Client-Cert": {alice.header()}, "Client-Cert-Chain": {alice.header()}}
	for _, tt := range []struct {
		name   string
		c      *clientCert
		token  string
		h      http.Header
		status int
	}{
		{"bound token, its certificate", alice, bound, nil, http.StatusOK},
		{"bound token, another certificate", bob, bound, nil, http.StatusUnauthorized},
		{"bound token, no certificate", nil, bound, nil, http.StatusUnauthorized},
		{"bound token, no certificate, the client's own Client-Cert", nil, bound, forged, http.StatusUnauthorized},
		{"bound token, another certificate, the client's own Client-Cert", bob, bound, forged, http.StatusUnauthorized},
		{"unbound token, a certificate", alice, unbound, nil, http.StatusOK},
		{"unbound token, no certificate", nil, unbound, nil, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := up.count()
			resp, body := call(t, as(tt.c), url, tt.token, tt.h)
			if tt.status == http.StatusUnauthorized {
				wantInvalidToken(t, tt.name, resp, body)
				return
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("%d %q, want %d", resp.StatusCode, body, tt.status)
			}
			if up.count() != before+1 {
				t.Fatal("not forwarded")
			}
			noCertHeaders(t, up)
		})
	}
}
