package gateway

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenguard/tokenguard/internal/hygiene"
)

func TestParseForwarded(t *testing.T) {
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name    string
		h       http.Header
		subTLS  bool
		subHost string
		want    forwarded
		err     error
	}{
		{name: "nginx", h: hdr("X-Original-Method", "GET", "X-Original-URI", "/orders/1?x=1", "X-Forwarded-Host", "api.example.com"), subHost: "gateway:8080",
			want: forwarded{Method: "GET", Proto: "http", Host: "api.example.com", URI: "/orders/1?x=1"}},
		{name: "nginx over TLS", h: hdr("X-Original-Method", "POST", "X-Original-URI", "/orders/", "X-Forwarded-Host", "api.example.com:8443"), subTLS: true, subHost: "gateway:8080",
			want: forwarded{Method: "POST", Proto: "https", Host: "api.example.com:8443", URI: "/orders/"}},
		{name: "no X-Forwarded-Host: never the subrequest's own Host", h: hdr("X-Original-Method", "GET", "X-Original-URI", "/orders/"), subHost: "api.example.com", err: errForwardedNoHost},
		{name: "a method override the ingress would pass on", h: hdr("X-Original-Method", "POST", "X-Original-URI", "/orders/", "X-Forwarded-Host", "a", "X-Http-Method-Override", "DELETE"), subHost: "h", err: errForwardedOverride},
		{name: "an original-URL header the ingress would pass on", h: hdr("X-Original-Method", "GET", "X-Original-URI", "/orders/", "X-Forwarded-Host", "a", "X-Original-Url", "/admin"), subHost: "h", err: errForwardedOverride},
		{name: "a prefix the ingress would pass on", h: hdr("X-Original-Method", "GET", "X-Original-URI", "/orders/", "X-Forwarded-Host", "a", "X-Forwarded-Prefix", "/admin"), subHost: "h", err: errForwardedOverride},
		{name: "traefik and caddy", h: hdr("X-Forwarded-Method", "DELETE", "X-Forwarded-Proto", "HTTPS", "X-Forwarded-Host", "api.example.com", "X-Forwarded-Uri", "/orders/7"), subHost: "gateway:8080",
			want: forwarded{Method: "DELETE", Proto: "https", Host: "api.example.com", URI: "/orders/7"}},
		{name: "both spellings agreeing", h: hdr("X-Forwarded-Method", "GET", "X-Original-Method", "GET", "X-Forwarded-Uri", "/a", "X-Original-Uri", "/a", "X-Forwarded-Host", "h"), subHost: "gw",
			want: forwarded{Method: "GET", Proto: "http", Host: "h", URI: "/a"}},
		{name: "both spellings disagreeing on the URI", h: hdr("X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/public", "X-Original-URI", "/admin"), subHost: "h", err: errForwardedRepeated},
		{name: "both spellings disagreeing on the method", h: hdr("X-Forwarded-Method", "GET", "X-Original-Method", "DELETE", "X-Forwarded-Uri", "/a"), subHost: "h", err: errForwardedRepeated},
		{name: "URI twice", h: hdr("X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/public", "X-Forwarded-Uri", "/admin"), subHost: "h", err: errForwardedRepeated},
		{name: "host twice", h: hdr("X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/a", "X-Forwarded-Host", "a", "X-Forwarded-Host", "b"), subHost: "h", err: errForwardedRepeated},
		{name: "proto twice", h: hdr("X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/a", "X-Forwarded-Proto", "http", "X-Forwarded-Proto", "https"), subHost: "h", err: errForwardedRepeated},
		{name: "no method", h: hdr("X-Original-URI", "/a"), subHost: "h", err: errForwardedMissing},
		{name: "no URI", h: hdr("X-Original-Method", "GET"), subHost: "h", err: errForwardedMissing},
		{name: "nothing: a client calling the endpoint itself", h: hdr(), subHost: "h", err: errForwardedMissing},
		{name: "method with a space", h: hdr("X-Original-Method", "GET /admin", "X-Original-URI", "/a"), subHost: "h", err: errForwardedMethod},
		{name: "absolute-form URI", h: hdr("X-Original-Method", "GET", "X-Original-URI", "http://evil.example/orders/"), subHost: "h", err: errForwardedURIFormat},
		{name: "asterisk-form URI", h: hdr("X-Original-Method", "OPTIONS", "X-Original-URI", "*"), subHost: "h", err: errForwardedURIFormat},
		{name: "space in the URI", h: hdr("X-Original-Method", "GET", "X-Original-URI", "/orders/ HTTP/1.1"), subHost: "h", err: errForwardedURIFormat},
		{name: "non-ASCII in the URI", h: hdr("X-Original-Method", "GET", "X-Original-URI", "/orders/\u2025/admin"), subHost: "h", err: errForwardedURIFormat},
		{name: "proto neither http nor https", h: hdr("X-Original-Method", "GET", "X-Original-URI", "/a", "X-Forwarded-Proto", "ws"), subHost: "h", err: errForwardedProto},
		{name: "host with a path", h: hdr("X-Original-Method", "GET", "X-Original-URI", "/a", "X-Forwarded-Host", "api.example.com/admin"), subHost: "h", err: errForwardedHost},
		{name: "host list", h: hdr("X-Original-Method", "GET", "X-Original-URI", "/a", "X-Forwarded-Host", "a.example, b.example"), subHost: "h", err: errForwardedHost},
		{name: "empty host", h: hdr("X-Original-Method", "GET", "X-Original-URI", "/a", "X-Forwarded-Host", ""), subHost: "", err: errForwardedHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseForwarded(tt.h, tt.subTLS, tt.subHost)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestForwardedRequest: the request built from a description is the one
// described, carries the subrequest's credentials and none of its
// forwarding headers, and takes no certificate from the ingress's
// connection.
func TestForwardedRequest(t *testing.T) {
	sub := httptest.NewRequest("GET", "https://gateway.internal/tokenguard/auth", nil)
	sub.Header.Set("Authorization", "Bearer t")
	sub.Header.Set("DPoP", "proof")
	sub.Header.Set("X-Forwarded-For", "203.0.113.7")
	sub.Header.Set("X-Original-Url", "/x")
	sub.Header.Set("Forwarded", "for=203.0.113.7")
	f := forwarded{Method: "POST", Proto: "https", Host: "api.example.com", URI: "/orders/7?page=2"}
	for k, v := range map[string]string{"X-Forwarded-Method": f.Method, "X-Forwarded-Uri": f.URI, "X-Forwarded-Host": f.Host, "X-Forwarded-Proto": f.Proto} {
		sub.Header.Set(k, v)
	}
	in, err := f.request(sub)
	if err != nil {
		t.Fatal(err)
	}
	if in.Method != "POST" || in.Host != "api.example.com" || in.URL.EscapedPath() != "/orders/7" || in.URL.RawQuery != "page=2" || in.RequestURI != f.URI {
		t.Errorf("request %s %s%s (%s)", in.Method, in.Host, in.URL, in.RequestURI)
	}
	if in.TLS == nil || len(in.TLS.PeerCertificates) != 0 {
		t.Errorf("TLS %+v: want an empty state for an https request", in.TLS)
	}
	if in.Header.Get("Authorization") != "Bearer t" || in.Header.Get("DPoP") != "proof" {
		t.Errorf("credentials lost: %v", in.Header)
	}
	for k := range in.Header {
		if hygiene.FoldedHasPrefix(k, "x-forwarded-") || hygiene.FoldedHasPrefix(k, "x-original-") || k == "Forwarded" {
			t.Errorf("forwarding header %s kept", k)
		}
	}
	if !isForwardAuth(in.Context()) || isForwardAuth(sub.Context()) {
		t.Error("only the built request is marked as forward auth")
	}
	if sub.Header.Get("X-Forwarded-Uri") == "" {
		t.Error("the subrequest itself was changed")
	}
	f.Proto = "http"
	if in, _ := f.request(sub); in.TLS != nil {
		t.Error("an http request got a TLS state")
	}
}

// FuzzParseForwarded checks properties of every description
// parseForwarded accepts, not just that it does not panic: what it returns
// is well-formed, and when hygiene passes the URI, the request built from
// it routes on exactly the path and query the ingress will forward (an
// independent reading: the URI split at its first '?').
func FuzzParseForwarded(f *testing.F) {
	for _, s := range []struct {
		method, uri, proto, host string
		nginx                    bool
	}{
		{"GET", "/orders/1?x=1", "", "api.example.com", true},                // nginx: no proto, host from the subrequest
		{"POST", "/orders/", "https", "api.example.com:8443", false},         // Traefik or Caddy
		{"GET", "/orders/..%2Fadmin", "http", "api.example.com", true},       // encoded slash: hygiene's to refuse
		{"GET", "/orders/%2e%2e/admin", "http", "a", false},                  // encoded dots
		{"GET", "/orders//admin", "http", "a", true},                         // empty segment
		{"GET", "/orders/;x/admin", "http", "a", false},                      // path parameter
		{"GET", "/orders/a?b/../admin", "http", "a", true},                   // dot segment in the query only
		{"GET", "/orders/%zz", "http", "a", true},                            // bad escape
		{"GET", "/orders/%E2%80%A5/admin", "http", "a", false},               // a look-alike of ".."
		{"GET", "http://evil/orders/", "http", "a", true},                    // absolute-form
		{"GET", "//evil/orders/", "http", "a", true},                         // scheme-relative
		{"GET", "/a#frag", "http", "a", false},                               // a fragment
		{"get", "/a", "HTTPS", "[::1]:8080", false},                          // lower-case method, upper-case proto, IPv6 host
		{"GET\t", "/a", "http", "a", true},                                   // a tab in the method
		{"GET", "/a\x00b", "http", "a", true},                                // NUL
		{"GET", "/a", "http", "a.example, b.example", false},                 // a host list
		{"GET", "/%2F", "ftp", "a", false},                                   // a bad proto
		{"M-SEARCH", "/?", "https", "xn--bcher-kva.example", false},          // an unusual method and an empty query
		{"GET", "/orders/\u00e9", "http", "a", true},                         // raw non-ASCII
		{"GET", "/orders/%C3%A9?q=%2F", "http", "a", false},                  // encoded UTF-8, encoded slash in the query
		{"PROPFIND", "/.well-known/oauth-protected-resource", "", "a", true}, // the metadata path
		{"GET", "/tokenguard/auth", "http", "a", false},                      // the auth path itself
	} {
		f.Add(s.method, s.uri, s.proto, s.host, s.nginx)
	}
	f.Fuzz(func(t *testing.T, method, uri, proto, host string, nginx bool) {
		h := http.Header{}
		if nginx {
			h.Set("X-Original-Method", method)
			h.Set("X-Original-Uri", uri)
		} else {
			h.Set("X-Forwarded-Method", method)
			h.Set("X-Forwarded-Uri", uri)
			h.Set("X-Forwarded-Host", host)
		}
		if proto != "" {
			h.Set("X-Forwarded-Proto", proto)
		}
		fw, err := parseForwarded(h, false, host)
		if err != nil {
			if fw != (forwarded{}) {
				t.Errorf("an error with a result: %+v", fw)
			}
			return
		}
		if fw.Method != method || fw.URI != uri || fw.Host != host {
			t.Fatalf("got %+v from %q %q %q", fw, method, uri, host)
		}
		if !isToken(fw.Method) || fw.Proto != "http" && fw.Proto != "https" || checkHost(fw.Host) != nil {
			t.Fatalf("accepted a malformed description: %+v", fw)
		}
		if fw.URI[0] != '/' || strings.ContainsFunc(fw.URI, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			t.Fatalf("accepted URI %q", fw.URI)
		}
		if hygiene.CheckTarget(fw.URI) != nil {
			return // refused with 400 invalid_path before any route
		}
		sub := httptest.NewRequest("GET", "/tokenguard/auth", nil)
		sub.Header = h
		in, err := fw.request(sub)
		if err != nil {
			t.Fatalf("hygiene passed %q but it builds no request: %v", fw.URI, err)
		}
		path, query, _ := strings.Cut(fw.URI, "?")
		if in.URL.EscapedPath() != path || in.URL.RawQuery != query || in.RequestURI != fw.URI {
			t.Fatalf("URI %q: routed on path %q query %q, the ingress forwards path %q query %q", fw.URI, in.URL.EscapedPath(), in.URL.RawQuery, path, query)
		}
		if in.Method != method || in.Host != host {
			t.Fatalf("built %s %s, described %s %s", in.Method, in.Host, method, host)
		}
		for k := range in.Header {
			if hygiene.FoldedHasPrefix(k, "x-forwarded-") || hygiene.FoldedHasPrefix(k, "x-original-") {
				t.Fatalf("forwarding header %s kept", k)
			}
		}
	})
}
