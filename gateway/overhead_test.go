package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/netutil"
)

// BenchmarkProxyOverhead sends the same cached-Bearer GET through a bare
// httputil.ReverseProxy and through the gateway (log_level warn, as a
// busy deployment would run it), both in this process, over loopback, to
// the same upstream. The difference per request is what the gateway adds
// on the way (access record, request id, routing, the guard, identity and
// forwarding headers); profile it with -cpuprofile. bench/load measures
// the same with each server in its own process.
func BenchmarkProxyOverhead(b *testing.B) {
	is := startIssuer(b)
	up := startHandler(b, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ok":true}`)
	})
	upURL, _ := url.Parse(up.URL)
	bareProxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upURL)
			pr.SetXForwarded()
		},
	}
	netutil.ConfigureProxy(bareProxy, netutil.ProxySettings{DialTimeout: 5 * time.Second, ResponseHeaderTimeout: 30 * time.Second})
	bare := httptest.NewServer(bareProxy)
	b.Cleanup(bare.Close)
	g := runGateway(b, rootYAML(is, up.URL, "log_level: warn\n"))
	tok := mint(b, is, "")
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for _, target := range []struct{ name, url string }{{"bare", bare.URL}, {"gateway", g.proxy}} {
		b.Run(target.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, _ := http.NewRequest(http.MethodGet, target.url+"/orders/1", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				for pb.Next() {
					resp, err := c.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
