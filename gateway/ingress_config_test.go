package gateway

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestParseConfigIngress covers cors, forward_auth, trusted_proxies and
// routes[].public: values, defaults, and each mistake with its line.
// validYAML has 17 lines, so an appended key is on line 18.
func TestParseConfigIngress(t *testing.T) {
	noUpstream := strings.Replace(validYAML, "upstream: http://127.0.0.1:9000\n", "", 1)                                                    // 16 lines
	publicOrders := edit(t, "    scopes: [orders:write]\n", "    scopes: [orders:write]\n  - pattern: \"GET /status\"\n    public: true\n") // 19 lines
	tests := []struct {
		name, yaml string
		err        string // substring of the error; "" for none
		check      func(t *testing.T, c *config)
	}{
		{name: "none of them", yaml: validYAML, check: func(t *testing.T, c *config) {
			if c.CORS != nil || c.ForwardAuth != nil || c.TrustedProxies != nil {
				t.Errorf("cors %v, forward_auth %v, trusted_proxies %v; want none", c.CORS, c.ForwardAuth, c.TrustedProxies)
			}
		}},
		{name: "all set", yaml: validYAML + `cors:
  allowed_origins: [https://app.example.com, "http://127.0.0.1:3000", "http://[::1]:3000"]
  allowed_headers: [Authorization, X-Api-Version]
  max_age: 1h
forward_auth:
  path: /auth/check
trusted_proxies: [127.0.0.1, 10.0.0.0/8, "::1", "fd00::/8"]
`, check: func(t *testing.T, c *config) {
			want := &corsConfig{
				AllowedOrigins: []string{"https://app.example.com", "http://127.0.0.1:3000", "http://[::1]:3000"},
				AllowedHeaders: []string{"Authorization", "X-Api-Version"},
				MaxAge:         time.Hour,
			}
			if diff := cmp.Diff(want, c.CORS); diff != "" {
				t.Errorf("cors (-want +got):\n%s", diff)
			}
			if c.ForwardAuth == nil || c.ForwardAuth.Path != "/auth/check" {
				t.Errorf("forward_auth %+v", c.ForwardAuth)
			}
			wantP := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("fd00::/8")}
			if diff := cmp.Diff(wantP, c.TrustedProxies, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("trusted_proxies (-want +got):\n%s", diff)
			}
		}},
		{name: "cors defaults", yaml: validYAML + "cors:\n  allowed_origins: [https://app.example.com]\n", check: func(t *testing.T, c *config) {
			want := &corsConfig{AllowedOrigins: []string{"https://app.example.com"}, AllowedHeaders: []string{"Authorization", "DPoP", "Content-Type"}, MaxAge: 10 * time.Minute}
			if diff := cmp.Diff(want, c.CORS); diff != "" {
				t.Errorf("cors (-want +got):\n%s", diff)
			}
		}},
		{name: "cors allowed_headers empty", yaml: validYAML + "cors:\n  allowed_origins: [https://app.example.com]\n  allowed_headers: []\n  max_age: 0s\n", check: func(t *testing.T, c *config) {
			if len(c.CORS.AllowedHeaders) != 0 || c.CORS.MaxAge != 0 {
				t.Errorf("cors %+v, want no headers and max_age 0", c.CORS)
			}
		}},
		{name: "forward_auth with no value is on, with its default path", yaml: validYAML + "forward_auth:\ntrusted_proxies: [127.0.0.1]\n", check: func(t *testing.T, c *config) {
			if c.ForwardAuth == nil || c.ForwardAuth.Path != "/tokenguard/auth" {
				t.Errorf("forward_auth %+v", c.ForwardAuth)
			}
		}},
		{name: "upstream optional with forward_auth", yaml: noUpstream + "forward_auth: {}\ntrusted_proxies: [127.0.0.1]\n", check: func(t *testing.T, c *config) {
			if c.Upstream != nil || c.upstreamString() != "" {
				t.Errorf("upstream %v", c.Upstream)
			}
		}},
		{name: "public route", yaml: publicOrders, check: func(t *testing.T, c *config) {
			if !c.Routes[2].Public || c.Routes[0].Public {
				t.Errorf("routes %+v", c.Routes)
			}
		}},

		{name: "upstream still required without forward_auth", yaml: noUpstream, err: "line 1: upstream: required (base URL of the API to protect; optional with forward_auth)"},
		{name: "forward_auth needs trusted_proxies", yaml: validYAML + "forward_auth:\n  path: /auth\n", err: "line 18: forward_auth: needs trusted_proxies"},
		{name: "bff needs upstream", yaml: noUpstream + "forward_auth: {}\ntrusted_proxies: [127.0.0.1]\nbff:\n  issuer: https://as.example.com\n  client_id: spa\n  client_secret: x\n  scopes: [openid]\n",
			err: "line 19: bff: needs upstream"},
		{name: "forward_auth path with a dot segment", yaml: validYAML + "forward_auth:\n  path: /a/../auth\ntrusted_proxies: [127.0.0.1]\n", err: `line 19: forward_auth.path: "/a/../auth" must be a plain path`},
		{name: "forward_auth path with a trailing slash", yaml: validYAML + "forward_auth:\n  path: /auth/\ntrusted_proxies: [127.0.0.1]\n", err: `line 19: forward_auth.path: "/auth/" must be a plain path`},
		{name: "forward_auth path relative", yaml: validYAML + "forward_auth:\n  path: auth\ntrusted_proxies: [127.0.0.1]\n", err: `line 19: forward_auth.path: "auth" must be a plain path`},
		{name: "forward_auth path is a metrics path", yaml: validYAML + "forward_auth:\n  path: /metrics\ntrusted_proxies: [127.0.0.1]\n", err: "line 19: forward_auth.path: /metrics is served only on metrics_listen"},
		{name: "forward_auth path under well-known", yaml: validYAML + "forward_auth:\n  path: /.well-known/auth\ntrusted_proxies: [127.0.0.1]\n", err: `line 19: forward_auth.path: "/.well-known/auth" is under /.well-known/`},
		{name: "forward_auth path is a route's", yaml: edit(t, `"POST /orders/"`, `"POST /tokenguard/auth"`) + "forward_auth: {}\ntrusted_proxies: [127.0.0.1]\n",
			err: `line 16: routes[1].pattern: "POST /tokenguard/auth" is forward_auth.path, which is answered before any route`},
		{name: "trusted_proxies empty", yaml: validYAML + "trusted_proxies: []\n", err: "line 18: trusted_proxies: an empty list trusts nobody"},
		{name: "trusted_proxies host name", yaml: validYAML + "trusted_proxies: [ingress.internal]\n", err: `line 18: trusted_proxies[0]: "ingress.internal" is not an IP address or CIDR prefix`},
		{name: "trusted_proxies everyone", yaml: validYAML + "trusted_proxies: [0.0.0.0/0]\n", err: `line 18: trusted_proxies[0]: "0.0.0.0/0" would trust every peer`},
		{name: "trusted_proxies host bits", yaml: validYAML + "trusted_proxies: [10.1.2.3/8]\n", err: `line 18: trusted_proxies[0]: "10.1.2.3/8" has bits set beyond its prefix length: write 10.0.0.0/8`},
		{name: "trusted_proxies mapped", yaml: validYAML + "trusted_proxies: [\"::ffff:10.0.0.1\"]\n", err: "IPv4-mapped IPv6 address: write it in IPv4 form"},
		{name: "trusted_proxies zone", yaml: validYAML + "trusted_proxies: [\"fe80::1%eth0\"]\n", err: "zones are not allowed"},
		{name: "cors with no value", yaml: validYAML + "cors:\n", err: "line 18: cors.allowed_origins: list at least one origin"},
		{name: "cors wildcard", yaml: validYAML + "cors:\n  allowed_origins: [\"*\"]\n", err: `line 19: cors.allowed_origins[0]: "*" is refused`},
		{name: "cors null", yaml: validYAML + "cors:\n  allowed_origins: [\"null\"]\n", err: `line 19: cors.allowed_origins[0]: "null" is refused`},
		{name: "cors upper case", yaml: validYAML + "cors:\n  allowed_origins: [https://App.example.com]\n", err: `write it as browsers send it, "https://app.example.com"`},
		{name: "cors default port", yaml: validYAML + "cors:\n  allowed_origins: [\"https://app.example.com:443\"]\n", err: `write it as browsers send it, "https://app.example.com"`},
		{name: "cors trailing slash", yaml: validYAML + "cors:\n  allowed_origins: [https://app.example.com/]\n", err: "no path (not even a trailing /)"},
		{name: "cors scheme", yaml: validYAML + "cors:\n  allowed_origins: [ftp://app.example.com]\n", err: "the scheme must be http or https"},
		{name: "cors no scheme", yaml: validYAML + "cors:\n  allowed_origins: [app.example.com]\n", err: "is not an origin"},
		{name: "cors twice", yaml: validYAML + "cors:\n  allowed_origins: [https://a.example, https://a.example]\n", err: `line 19: cors.allowed_origins[1]: "https://a.example" is listed twice`},
		{name: "cors header name", yaml: validYAML + "cors:\n  allowed_origins: [https://a.example]\n  allowed_headers: [\"X Bad\"]\n", err: `line 20: cors.allowed_headers[0]: "X Bad" is not a header name`},
		{name: "cors max_age too long", yaml: validYAML + "cors:\n  allowed_origins: [https://a.example]\n  max_age: 25h\n", err: "line 20: cors.max_age: must be at most 24h0m0s"},
		{name: "cors max_age fraction", yaml: validYAML + "cors:\n  allowed_origins: [https://a.example]\n  max_age: 1500ms\n", err: "line 20: cors.max_age: must be whole seconds"},
		{name: "public with scopes", yaml: edit(t, "    scopes: [orders:write]\n", "    scopes: [orders:write]\n    public: true\n"),
			err: "line 17: routes[1].scopes: a public route takes no token, so it cannot have scopes"},
		{name: "public with require_dpop and acr_values", yaml: publicOrders + "    require_dpop: true\n    acr_values: [mfa]\n",
			err: "line 21: routes[2].acr_values: a public route takes no token, so it cannot have acr_values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig("t.yaml", []byte(tt.yaml))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v\nwant %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// TestEffectiveYAMLIngress: check shows the new keys with their defaults,
// and what it shows is a configuration that loads to the same values.
func TestEffectiveYAMLIngress(t *testing.T) {
	in := strings.Replace(validYAML, "upstream: http://127.0.0.1:9000\n", "", 1) +
		"  - pattern: \"GET /status\"\n    public: true\n" +
		"cors:\n  allowed_origins: [https://app.example.com]\nforward_auth:\ntrusted_proxies: [127.0.0.1, 10.0.0.0/8]\n"
	c, err := parseConfig("t.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.effectiveYAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"cors:\n  allowed_origins: ['https://app.example.com']\n  allowed_headers: [Authorization, DPoP, Content-Type]\n  max_age: 10m0s\n",
		"forward_auth:\n  path: /tokenguard/auth\n",
		"trusted_proxies: [127.0.0.1/32, 10.0.0.0/8]\n",
		"    public: true\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("effective configuration lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "upstream:") {
		t.Errorf("effective configuration shows an upstream:\n%s", out)
	}
	again, err := parseConfig("effective.yaml", out)
	if err != nil {
		t.Fatalf("the effective configuration does not load: %v\n%s", err, out)
	}
	opts := cmp.Options{cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })}
	if diff := cmp.Diff(c.CORS, again.CORS, opts); diff != "" {
		t.Errorf("cors after a round trip (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(c.TrustedProxies, again.TrustedProxies, opts); diff != "" {
		t.Errorf("trusted_proxies after a round trip (-before +after):\n%s", diff)
	}
	if *c.ForwardAuth != *again.ForwardAuth || again.Upstream != nil || !again.Routes[2].Public {
		t.Errorf("after a round trip: forward_auth %+v, upstream %v, routes %+v", again.ForwardAuth, again.Upstream, again.Routes)
	}
}

func TestTrustedPeer(t *testing.T) {
	var trusted []netip.Prefix
	for _, s := range []string{"127.0.0.1", "10.0.0.0/8", "fd00::/8"} {
		p, err := parseTrustedProxy(s)
		if err != nil {
			t.Fatal(err)
		}
		trusted = append(trusted, p)
	}
	for _, tt := range []struct {
		remote string
		want   bool
	}{
		{"127.0.0.1:5000", true},
		{"127.0.0.2:5000", false}, // an address stands for itself alone
		{"10.200.1.1:80", true},
		{"11.0.0.1:80", false},
		{"[::ffff:10.0.0.1]:80", true}, // an IPv4 peer on an IPv6 socket
		{"[::ffff:127.0.0.1]:80", true},
		{"[fd00::1]:443", true},
		{"[fd00::1%eth0]:443", true}, // zones do not matter to a prefix
		{"[fe80::1]:443", false},
		{"[::1]:80", false},
		{"@", false},        // a Unix socket
		{"", false},         // a server of the embedder's own that sets none
		{"10.0.0.1", false}, // no port: not a RemoteAddr Go's server makes
	} {
		if got := trustedPeer(trusted, tt.remote); got != tt.want {
			t.Errorf("trustedPeer(%q) = %v, want %v", tt.remote, got, tt.want)
		}
	}
}
