package gateway

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenguard/tokenguard/internal/netutil"
	"github.com/tokenguard/tokenguard/internal/redisurl"
)

// validate checks the decoded file and builds a config. doc is the root
// mapping, for line numbers.
func (fc *fileConfig) validate(doc *yaml.Node) (*config, []*FieldError) {
	pos := positions{root: doc}
	var errs []*FieldError
	bad := func(p keyPos, format string, args ...any) {
		errs = append(errs, &FieldError{Line: p.Line, Key: p.Key, Msg: fmt.Sprintf(format, args...)})
	}
	c := &config{
		Listen:        fc.Listen,
		MetricsListen: fc.MetricsListen,
		Audience:      fc.Audience,
		Realm:         fc.Realm,
		MaxTokenSize:  fc.MaxTokenSize,
		keys:          map[string]keyPos{},

		InsecureAllowHTTP: fc.InsecureAllowHTTP,
	}
	c.keys["Audience"] = pos.at("audience")
	c.keys["Realm"] = pos.at("realm")
	c.keys["MaxTokenSize"] = pos.at("max_token_size")
	c.keys["Leeway"] = pos.at("leeway")
	c.keys["StartupWait"] = pos.at("startup_wait")
	c.keys["Issuers"] = pos.at("issuers")
	c.keys["DPoP.Mode"] = pos.at("dpop", "mode")
	c.keys["DPoP.Nonce"] = pos.at("dpop", "nonce")
	c.keys["DPoP.NonceLifetime"] = pos.at("dpop", "nonce")
	c.keys["DPoP.NonceSecrets"] = keyPos{Key: NonceSecretsEnv} // not in the file
	c.keys["DPoP.ReplayStore"] = pos.at("dpop", "replay_store")
	c.keys["PublicURL"] = pos.at("public_url")
	c.FromFile = fc.readSecretFiles(pos, bad)
	// The keys a reload cannot change (reload.go), for its messages.
	c.keys["Listen"] = pos.at("listen")
	c.keys["MetricsListen"] = pos.at("metrics_listen")
	c.keys["TLS"] = pos.at("tls")

	// Listeners.
	if fc.Listen == "" {
		bad(pos.at("listen"), "required (host:port the proxy listens on)")
	} else if err := checkListen(fc.Listen); err != nil {
		bad(pos.at("listen"), "%v", err)
	}
	if fc.MetricsListen != "" {
		if err := checkListen(fc.MetricsListen); err != nil {
			bad(pos.at("metrics_listen"), "%v", err)
		} else if fc.MetricsListen == fc.Listen && !strings.HasSuffix(fc.Listen, ":0") {
			bad(pos.at("metrics_listen"), "must differ from listen: metrics are never served on the proxy's address")
		}
	}

	// URLs.
	if fc.Upstream == "" {
		if !fc.forwardAuthOn(doc) {
			bad(pos.at("upstream"), "required (base URL of the API to protect; optional with forward_auth)")
		}
	} else if u, err := checkURL(fc.Upstream, false); err != nil {
		bad(pos.at("upstream"), "%v", err)
	} else {
		c.Upstream = u
	}
	if fc.PublicURL != "" {
		if u, err := checkURL(fc.PublicURL, false); err != nil {
			bad(pos.at("public_url"), "%v", err)
		} else {
			c.PublicURL = u
		}
	}

	if fc.Audience == "" {
		bad(pos.at("audience"), "required (this API's identifier, as in the tokens' aud claim)")
	}

	// Issuers. Policy (https only beyond loopback, duplicates, what is not
	// implemented yet) is middleware.New's job; here only what it cannot
	// report with a line number.
	if len(fc.Issuers) == 0 {
		bad(pos.at("issuers"), "at least one issuer is required")
	}
	for i, is := range fc.Issuers {
		prefix := fmt.Sprintf("Issuers[%d].", i)
		c.keys[prefix+"Issuer"] = pos.at("issuers", i, "issuer")
		c.keys[prefix+"JWKSURI"] = pos.at("issuers", i, "jwks_uri")
		c.keys[prefix+"IntrospectionEndpoint"] = pos.at("issuers", i, "introspection_endpoint")
		c.keys[prefix+"ClientID"] = pos.at("issuers", i, "client_id")
		c.keys[prefix+"ClientSecret"] = pos.at("issuers", i, "client_secret")
		c.keys[prefix+"IntrospectionAuthMethod"] = pos.at("issuers", i, "client_auth_method")
		c.keys[prefix+"IntrospectionKey"] = pos.at("issuers", i, "client_key_file")
		c.keys[prefix+"IntrospectionCacheMaxAge"] = pos.at("issuers", i, "introspection_cache_max_age")
		c.keys[fmt.Sprintf("Issuers[%d]", i)] = pos.at("issuers", i)
		if is.Issuer == "" {
			bad(pos.at("issuers", i, "issuer"), "required (the exact iss value of the tokens)")
		}
		for _, u := range []struct{ key, v string }{
			{"jwks_uri", is.JWKSURI},
			{"introspection_endpoint", is.IntrospectionEndpoint},
		} {
			if u.v == "" {
				continue
			}
			if _, err := checkURL(u.v, true); err != nil {
				bad(pos.at("issuers", i, u.key), "%v", err)
			}
		}
		ic := issuerConfig{
			Issuer: is.Issuer, JWKSURI: is.JWKSURI, IntrospectionEndpoint: is.IntrospectionEndpoint,
			ClientID: is.ClientID, ClientSecret: is.ClientSecret, AllowLegacyTyp: is.AllowLegacyTyp, ScpClaim: is.ScpClaim,
			ClientAuthMethod: is.ClientAuthMethod, ClientKeyFile: is.ClientKeyFile, ClientKeyID: is.ClientKeyID,
		}
		if v := is.IntrospectionCacheMaxAge; v != "" {
			p := pos.at("issuers", i, "introspection_cache_max_age")
			d, err := time.ParseDuration(v)
			switch {
			case err != nil:
				bad(p, "%q is not a duration (write it like 30s, 5m or 1h30m)", v)
			case d <= 0:
				bad(p, "must be more than zero (omit the key for the default, 60s)")
			case is.IntrospectionEndpoint == "" && is.ClientID == "":
				bad(p, "needs introspection_endpoint or client_id on this issuer")
			}
			ic.IntrospectionCacheMaxAge = d
		}
		c.keys[prefix+"IntrospectionRateLimit"] = pos.at("issuers", i, "introspection_rate_limit")
		if r := is.IntrospectionRateLimit; r != 0 {
			p := pos.at("issuers", i, "introspection_rate_limit")
			switch {
			case r < 0 || math.IsNaN(r) || math.IsInf(r, 0):
				bad(p, "must be a positive number of requests per second (omit the key for the default, 200)")
			case is.IntrospectionEndpoint == "" && is.ClientID == "":
				bad(p, "needs introspection_endpoint or client_id on this issuer")
			}
			ic.IntrospectionRateLimit = r
		}
		c.keys[prefix+"IntrospectionResponse"] = pos.at("issuers", i, "introspection_response")
		switch v := is.IntrospectionResponse; v {
		case "", "json":
		case "jwt":
			if is.IntrospectionEndpoint == "" && is.ClientID == "" {
				bad(pos.at("issuers", i, "introspection_response"), "needs introspection_endpoint or client_id on this issuer")
			}
			ic.IntrospectionResponse = v
		default:
			bad(pos.at("issuers", i, "introspection_response"), "%q is not json or jwt", v)
		}
		c.Issuers = append(c.Issuers, ic)
	}

	// DPoP.
	switch fc.DPoP.Mode {
	case "", "disabled":
		c.DPoPMode = "disabled"
	case "allowed", "required":
		c.DPoPMode = fc.DPoP.Mode // middleware.New decides whether it can do it
	default:
		bad(pos.at("dpop", "mode"), "%q is not one of disabled, allowed, required", fc.DPoP.Mode)
	}
	dpopOn := c.DPoPMode == "allowed" || c.DPoPMode == "required"
	c.DPoPNonce = fc.DPoP.Nonce
	if fc.DPoP.Nonce && c.DPoPMode == "disabled" {
		bad(pos.at("dpop", "nonce"), "nonces need dpop.mode allowed or required")
	}
	switch rs := fc.DPoP.ReplayStore; {
	case rs == "" || rs == "memory":
	case isRedisURL(rs):
		// The URL may carry a password: messages describe it, never quote it.
		if err := checkRedisURL(rs); err != nil {
			bad(pos.at("dpop", "replay_store"), "%v", err)
		} else if !dpopOn {
			bad(pos.at("dpop", "replay_store"), "a Redis replay store needs dpop.mode allowed or required")
		} else {
			c.ReplayStore = rs
		}
	default:
		bad(pos.at("dpop", "replay_store"), "must be memory or a redis://, rediss://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster:// URL")
	}
	c.keys["DPoP.ReplayKeyQuota"] = pos.at("dpop", "replay_key_quota")
	switch q := fc.DPoP.ReplayKeyQuota; {
	case q < 0:
		bad(pos.at("dpop", "replay_key_quota"), "must be a positive number of proofs (0 or absent: the default)")
	case q > 0 && !dpopOn:
		bad(pos.at("dpop", "replay_key_quota"), "needs dpop.mode allowed or required")
	default:
		c.ReplayKeyQuota = q
	}

	// Durations and sizes.
	// dur parses a duration key; a dotted key ("tls.reload_interval")
	// names a nested one.
	dur := func(key, v string, def time.Duration, allowZero bool) time.Duration {
		if v == "" {
			return def
		}
		var path []any
		for el := range strings.SplitSeq(key, ".") {
			path = append(path, el)
		}
		at := func(...any) keyPos { return pos.at(path...) }
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			bad(at(), "%q is not a duration (write it like 30s, 5m or 1h30m)", v)
		case d < 0:
			bad(at(), "must not be negative")
		case d == 0 && !allowZero:
			bad(at(), "must be more than zero (omit the key for the default)")
		}
		return d
	}
	c.Leeway = dur("leeway", fc.Leeway, 0, false)
	c.ShutdownTimeout = dur("shutdown_timeout", fc.ShutdownTimeout, defaultShutdownTimeout, true)
	if fc.StartupWait != "" {
		if c.StartupWait = dur("startup_wait", fc.StartupWait, 0, true); c.StartupWait == 0 {
			c.StartupWait = -1 // "0s": don't wait; middleware's 0 means its default
		}
	}
	if fc.MaxTokenSize < 0 {
		bad(pos.at("max_token_size"), "must be a positive number of bytes")
	}
	c.keys["JWKSMinRefreshInterval"] = pos.at("jwks_min_refresh_interval")
	c.keys["JWKSMaxRefreshInterval"] = pos.at("jwks_max_refresh_interval")
	c.keys["JWKSRefreshRateLimit"] = pos.at("jwks_refresh_rate_limit")
	atLeast := func(key, v string, floor time.Duration) time.Duration {
		d := dur(key, v, 0, false)
		if d > 0 && d < floor {
			bad(pos.at(key), "must be at least %v", floor)
		}
		return d
	}
	c.JWKSMinRefreshInterval = atLeast("jwks_min_refresh_interval", fc.JWKSMinRefreshInterval, minRefreshSetting)
	c.JWKSMaxRefreshInterval = atLeast("jwks_max_refresh_interval", fc.JWKSMaxRefreshInterval, minRefreshSetting)
	c.JWKSRefreshRateLimit = atLeast("jwks_refresh_rate_limit", fc.JWKSRefreshRateLimit, minRefreshSetting)
	if c.JWKSMinRefreshInterval > 0 && c.JWKSMaxRefreshInterval > 0 && c.JWKSMinRefreshInterval > c.JWKSMaxRefreshInterval {
		bad(pos.at("jwks_min_refresh_interval"), "%v exceeds jwks_max_refresh_interval (%v)", c.JWKSMinRefreshInterval, c.JWKSMaxRefreshInterval)
	}

	// Upstream and server limits.
	c.UpstreamTimeout = dur("upstream_timeout", fc.UpstreamTimeout, defaultUpstreamTimeout, false)
	c.UpstreamDialTimeout = dur("upstream_dial_timeout", fc.UpstreamDialTimeout, defaultUpstreamDialTimeout, false)
	c.BodyReadTimeout = dur("body_read_timeout", fc.BodyReadTimeout, defaultBodyReadTimeout, true)
	c.ResponseWriteTimeout = dur("response_write_timeout", fc.ResponseWriteTimeout, defaultResponseWriteTimeout, true)
	switch n := fc.UpstreamMaxResponseHeaderBytes; {
	case n == 0:
		c.UpstreamMaxResponseHeaderBytes = netutil.DefaultMaxResponseHeaderBytes
	case n < 4<<10 || n > 10<<20:
		bad(pos.at("upstream_max_response_header_bytes"), "must be between 4096 and 10485760 bytes (0 or absent: %d)", netutil.DefaultMaxResponseHeaderBytes)
	default:
		c.UpstreamMaxResponseHeaderBytes = n
	}
	c.DrainDelay = dur("drain_delay", fc.DrainDelay, 0, true)
	if c.ConfigReloadInterval = dur("config_reload_interval", fc.ConfigReloadInterval, 0, true); c.ConfigReloadInterval > 0 && c.ConfigReloadInterval < time.Second {
		bad(pos.at("config_reload_interval"), "must be 0s (off) or at least 1s")
	}
	switch n := fc.MaxConcurrentRequests; {
	case n == 0:
		c.MaxConcurrentRequests = defaultMaxConcurrentRequests
	case n == -1 || n > 0:
		c.MaxConcurrentRequests = n
	default:
		bad(pos.at("max_concurrent_requests"), "must be a positive number (0 or absent: %d; -1: no limit)", defaultMaxConcurrentRequests)
	}
	c.TLS = fc.TLS.validate(pos, bad, dur)

	// Request hygiene.
	switch c.PathNormalization = cmpOr(fc.PathNormalization, pathReject); c.PathNormalization {
	case pathReject, pathForwardUnchanged:
	default:
		bad(pos.at("path_normalization"), "%q is not one of %s, %s", fc.PathNormalization, pathReject, pathForwardUnchanged)
	}
	c.AllowWebSocket = true
	if fc.Upgrades != nil {
		c.AllowWebSocket = false
		for i, u := range *fc.Upgrades {
			if u != "websocket" {
				bad(pos.at("upgrades", i), "%q cannot be passed: only websocket can (any other protocol switch, h2c above all, would take the connection past every check); [] refuses all", u)
				continue
			}
			c.AllowWebSocket = true
		}
	}
	for i, h := range fc.AllowedHosts {
		if err := checkHost(h); err != nil {
			bad(pos.at("allowed_hosts", i), "%v", err)
			continue
		}
		c.AllowedHosts = append(c.AllowedHosts, strings.ToLower(h))
	}
	if fc.AllowedHosts != nil && len(fc.AllowedHosts) == 0 {
		bad(pos.at("allowed_hosts"), "an empty list would refuse every request; omit the key to allow any Host")
	}
	c.AllowUnderscoreHeaders = fc.AllowUnderscoreHeaders

	// Logging.
	switch c.LogFormat = cmpOr(fc.LogFormat, "text"); c.LogFormat {
	case "text", "json":
	default:
		bad(pos.at("log_format"), "%q is not one of text, json", fc.LogFormat)
	}
	switch c.LogLevel = cmpOr(fc.LogLevel, "info"); c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad(pos.at("log_level"), "%q is not one of debug, info, warn, error", fc.LogLevel)
	}

	// Routes.
	if len(fc.Routes) == 0 {
		bad(pos.at("routes"), "at least one route is required (a request that matches none gets 404)")
	}
	for i, r := range fc.Routes {
		p := pos.at("routes", i, "pattern")
		if strings.TrimSpace(r.Pattern) == "" {
			bad(p, "required (a ServeMux pattern such as \"GET /orders/\")")
			continue
		}
		validToken := func(v string) bool { return v != "" && !strings.ContainsAny(v, " \t\"\\") && isPrintableASCII(v) }
		for j, s := range r.Scopes {
			if !validToken(s) {
				bad(pos.at("routes", i, "scopes", j), "%q is not a valid scope (RFC 6749 §3.3)", s)
			}
		}
		for j, set := range r.AnyScopes {
			if len(set) == 0 {
				bad(pos.at("routes", i, "any_scopes", j), "an empty scope set would admit any token; list at least one scope")
			}
			for k, s := range set {
				if !validToken(s) {
					bad(pos.at("routes", i, "any_scopes", j, k), "%q is not a valid scope (RFC 6749 §3.3)", s)
				}
			}
		}
		for j, a := range r.ACRValues {
			if !validToken(a) {
				bad(pos.at("routes", i, "acr_values", j), "%q is not a valid acr value", a)
			}
		}
		if r.RequireDPoP && !dpopOn {
			bad(pos.at("routes", i, "require_dpop"), "needs dpop.mode allowed or required")
		}
		introspecting := slices.ContainsFunc(fc.Issuers, func(is fileIssue) bool { return is.IntrospectionEndpoint != "" || is.ClientID != "" })
		if r.Introspect && !introspecting {
			bad(pos.at("routes", i, "introspect"), "needs an issuer with introspection_endpoint")
		}
		if r.IntrospectionMaxAge != "" && !introspecting {
			bad(pos.at("routes", i, "introspection_max_age"), "needs an issuer with introspection_endpoint")
		}
		routeDur := func(key, v string) time.Duration {
			if v == "" {
				return 0
			}
			d, err := time.ParseDuration(v)
			switch {
			case err != nil:
				bad(pos.at("routes", i, key), "%q is not a duration (write it like 30s, 5m or 1h30m)", v)
			case d <= 0:
				bad(pos.at("routes", i, key), "must be more than zero (omit the key for no limit)")
			}
			return d
		}
		if r.Public {
			checkPublicRoute(r, i, pos, bad)
		}
		c.Routes = append(c.Routes, routeConfig{
			Public:  r.Public,
			Pattern: r.Pattern, Scopes: slices.Clone(r.Scopes), Key: p.Key, Line: p.Line,
			AnyScopes: r.AnyScopes, RequireDPoP: r.RequireDPoP, Introspect: r.Introspect, ACRValues: slices.Clone(r.ACRValues),
			MaxTokenAge:         routeDur("max_token_age", r.MaxTokenAge),
			IntrospectionMaxAge: routeDur("introspection_max_age", r.IntrospectionMaxAge),
			MaxAuthAge:          routeDur("max_auth_age", r.MaxAuthAge),
		})
	}
	errs = append(errs, checkRoutes(c.Routes)...)
	c.BFF = fc.BFF.validate(c, pos, bad, dur)
	fc.validateIngress(c, doc, pos, bad, dur)
	return c, errs
}

// validate checks the tls block: both files or neither, and they must
// load as a matching certificate and key now, so a typo fails at start
// (and in "tokenguard check") rather than on the first handshake.
func (ft fileTLS) validate(pos positions, bad func(keyPos, string, ...any), dur func(key, v string, def time.Duration, allowZero bool) time.Duration) *tlsConfig {
	if ft == (fileTLS{}) {
		return nil
	}
	switch {
	case ft.CertFile == "" && ft.KeyFile == "":
		bad(pos.at("tls"), "cert_file and key_file are required in a tls block")
		return nil
	case ft.CertFile == "":
		bad(pos.at("tls", "cert_file"), "required with key_file")
		return nil
	case ft.KeyFile == "":
		bad(pos.at("tls", "key_file"), "required with cert_file")
		return nil
	}
	p := pos.at("tls")
	tc := &tlsConfig{CertFile: ft.CertFile, KeyFile: ft.KeyFile, Key: p.Key, Line: p.Line}
	tc.ReloadInterval = dur("tls.reload_interval", ft.ReloadInterval, defaultTLSReloadInterval, false)
	if tc.ReloadInterval > 0 && tc.ReloadInterval < time.Second {
		bad(pos.at("tls", "reload_interval"), "must be at least 1s (polling two files is cheap, but not free)")
	}
	if _, err := loadKeyPair(tc.CertFile, tc.KeyFile); err != nil {
		bad(pos.at("tls", "cert_file"), "%v", err)
	}
	return tc
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// The values of path_normalization.
const (
	pathReject           = "reject"
	pathForwardUnchanged = "forward_unchanged"
)

// checkHost requires an allowed_hosts entry to be a host name or address,
// with an optional port: "api.example.com", "api.example.com:8443",
// "127.0.0.1", "[::1]:8080" or "::1".
func checkHost(h string) error {
	if h == "" {
		return errors.New("empty: write a host name such as api.example.com")
	}
	if strings.Contains(h, "://") || strings.ContainsAny(h, "/?#@ \t\\") {
		return fmt.Errorf("%q is not a host or host:port (no scheme, path or user)", h)
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return fmt.Errorf("%q: zones are not allowed", h)
		}
		return nil
	}
	name := h
	if host, port, err := net.SplitHostPort(h); err == nil {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return fmt.Errorf("%q: port must be a number from 0 to 65535", h)
		}
		name = host
		if a, err := netip.ParseAddr(name); err == nil && a.Zone() == "" {
			return nil
		}
	} else if strings.HasPrefix(h, "[") {
		return fmt.Errorf("%q is not a host or host:port", h)
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.':
		default:
			return fmt.Errorf("%q is not a host name (letters, digits, '-' and '.'; write internationalised names in their xn-- form)", h)
		}
	}
	if name == "" || strings.HasPrefix(name, ".") || strings.Contains(name, "..") {
		return fmt.Errorf("%q is not a host name", h)
	}
	return nil
}

// checkListen requires host:port with a numeric port.
func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port must be a number from 0 to 65535", addr)
	}
	return nil
}

// checkURL requires an absolute http or https URL with a host, no
// credentials and no fragment; a base URL (allowQuery false) may not
// carry a query either.
func checkURL(s string, allowQuery bool) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%q is not a URL", s)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%q must be an absolute http:// or https:// URL", s)
	case u.Host == "":
		return nil, fmt.Errorf("%q has no host", s)
	case u.User != nil:
		return nil, errors.New("must not contain credentials")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return nil, fmt.Errorf("%q must not contain a fragment", s)
	case !allowQuery && (u.RawQuery != "" || u.ForceQuery):
		return nil, fmt.Errorf("%q must not contain a query", s)
	}
	return u, nil
}

// isRedisURL reports whether s starts with one of the Redis schemes a
// store accepts (redisurl.Schemes), without looking further.
func isRedisURL(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	return ok && slices.Contains(redisurl.Schemes, strings.ToLower(scheme))
}

// checkRedisURL checks a redis://, rediss://, redis+sentinel://,
// rediss+sentinel://, redis+cluster:// or rediss+cluster:// URL: its shape
// here, then everything else by making (and closing, unused) the client
// the store would make, which parses it with go-redis's own parser. Its
// errors never quote the URL, which may hold a password.
func checkRedisURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return errors.New("not a valid Redis URL")
	case u.Host == "" || u.Hostname() == "":
		return errors.New("the Redis URL has no host")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return errors.New("the Redis URL must not contain a fragment")
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if _, err := strconv.ParseUint(db, 10, 16); err != nil {
			return errors.New("the Redis URL's path must be a database number, such as /0")
		}
	}
	// NewClient does not contact Redis; its errors never quote the URL.
	c, err := redisurl.NewClient(s)
	if err != nil {
		return err
	}
	c.Close()
	return nil
}

// checkRoutes registers every pattern on a scratch ServeMux, which is the
// authority on what a valid pattern is and which patterns conflict. Its
// panics become errors naming both routes involved.
func checkRoutes(routes []routeConfig) []*FieldError {
	var errs []*FieldError
	mux := http.NewServeMux()
	for i, r := range routes {
		if err := tryHandle(mux, r.Pattern, http.NotFoundHandler()); err == nil {
			continue
		}
		// Alone on a fresh mux: an invalid pattern. Otherwise find the
		// earlier route it clashes with.
		if err := tryHandle(http.NewServeMux(), r.Pattern, http.NotFoundHandler()); err != nil {
			errs = append(errs, &FieldError{Line: r.Line, Key: r.Key, Msg: fmt.Sprintf("invalid pattern: %v", err)})
			continue
		}
		for _, o := range routes[:i] {
			m := http.NewServeMux()
			if tryHandle(m, o.Pattern, http.NotFoundHandler()) != nil {
				continue
			}
			if tryHandle(m, r.Pattern, http.NotFoundHandler()) == nil {
				continue
			}
			if o.Pattern == r.Pattern {
				errs = append(errs, &FieldError{Line: r.Line, Key: r.Key, Msg: fmt.Sprintf("%q duplicates %s on line %d", r.Pattern, o.Key, o.Line)})
			} else {
				errs = append(errs, &FieldError{Line: r.Line, Key: r.Key, Msg: fmt.Sprintf(
					"%q conflicts with %q (%s on line %d): some requests match both and neither is more specific", r.Pattern, o.Pattern, o.Key, o.Line)})
			}
			break
		}
	}
	return errs
}

// tryHandle registers pattern on mux, turning ServeMux's panic on an
// invalid or conflicting pattern into an error.
func tryHandle(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			if e, ok := v.(error); ok {
				err = e
			} else {
				err = fmt.Errorf("%v", v)
			}
		}
	}()
	mux.Handle(pattern, h)
	return nil
}
