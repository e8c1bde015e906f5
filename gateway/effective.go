package gateway

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/dpop/redisstore"
	"github.com/tokenguard/tokenguard/internal/envexpand"
	"github.com/tokenguard/tokenguard/middleware"
)

// Defaults of the packages below middleware that it does not export;
// they are shown by check. Keep in step with jwks/config.go and
// introspect/config.go.
const (
	shownJWKSMinRefreshInterval = 5 * time.Minute
	shownJWKSMaxRefreshInterval = 24 * time.Hour
	shownJWKSRefreshRateLimit   = 10 * time.Second
	shownIntrospectionCacheAge  = 60 * time.Second
	shownIntrospectionRateLimit = 200
)

// redacted replaces a secret in check's output; redactedUserinfo replaces
// a URL's user information, and keeps the URL valid.
const (
	redacted         = "[redacted]"
	redactedUserinfo = "REDACTED"
)

// The effective configuration as check prints it: every key, defaults
// filled in. It is itself a valid configuration file (with the redacted
// secrets to be put back).
type (
	effectiveConfig struct {
		Listen                         string      `yaml:"listen"`
		MetricsListen                  string      `yaml:"metrics_listen"`
		Upstream                       string      `yaml:"upstream,omitempty"`
		PublicURL                      string      `yaml:"public_url,omitempty"`
		Audience                       string      `yaml:"audience"`
		Realm                          string      `yaml:"realm"`
		Issuers                        []effIssuer `yaml:"issuers"`
		DPoP                           effDPoP     `yaml:"dpop"`
		Routes                         []effRoute  `yaml:"routes"`
		TLS                            *effTLS     `yaml:"tls,omitempty"`
		Leeway                         string      `yaml:"leeway"`
		MaxTokenSize                   int         `yaml:"max_token_size"`
		StartupWait                    string      `yaml:"startup_wait"`
		ShutdownTimeout                string      `yaml:"shutdown_timeout"`
		DrainDelay                     string      `yaml:"drain_delay"`
		ConfigReloadInterval           string      `yaml:"config_reload_interval"`
		UpstreamTimeout                string      `yaml:"upstream_timeout"`
		UpstreamMaxResponseHeaderBytes int64       `yaml:"upstream_max_response_header_bytes"`
		BodyReadTimeout                string      `yaml:"body_read_timeout"`
		ResponseWriteTimeout           string      `yaml:"response_write_timeout"`
		UpstreamDialTimeout            string      `yaml:"upstream_dial_timeout"`
		MaxConcurrentRequests          int         `yaml:"max_concurrent_requests"`
		JWKSMinRefreshInterval         string      `yaml:"jwks_min_refresh_interval"`
		JWKSMaxRefreshInterval         string      `yaml:"jwks_max_refresh_interval"`
		JWKSRefreshRateLimit           string      `yaml:"jwks_refresh_rate_limit"`
		LogFormat                      string      `yaml:"log_format"`
		LogLevel                       string      `yaml:"log_level"`
		InsecureAllowHTTP              bool        `yaml:"insecure_allow_http"`
		PathNormalization              string      `yaml:"path_normalization"`
		Upgrades                       []string    `yaml:"upgrades,flow"`
		AllowedHosts                   []string    `yaml:"allowed_hosts,omitempty,flow"`
		AllowUnderscoreHeaders         bool        `yaml:"allow_underscore_headers"`
		BFF                            *effBFF     `yaml:"bff,omitempty"`
		CORS                           *effCORS    `yaml:"cors,omitempty"`
		ForwardAuth                    *effFwdAuth `yaml:"forward_auth,omitempty"`
		TrustedProxies                 []string    `yaml:"trusted_proxies,omitempty,flow"`
		ClientCertHeader               string      `yaml:"client_cert_header,omitempty"`
	}
	effCORS struct {
		AllowedOrigins []string `yaml:"allowed_origins,flow"`
		AllowedHeaders []string `yaml:"allowed_headers,flow"`
		MaxAge         string   `yaml:"max_age"`
	}
	effFwdAuth struct {
		Path string `yaml:"path"`
	}
	effBFF struct {
		Issuer                 string   `yaml:"issuer"`
		ClientID               string   `yaml:"client_id"`
		ClientSecret           string   `yaml:"client_secret,omitempty"`
		ClientSecretFile       string   `yaml:"client_secret_file,omitempty"`
		ClientAuthMethod       string   `yaml:"client_auth_method"`
		ClientKeyFile          string   `yaml:"client_key_file,omitempty"`
		ClientKeyID            string   `yaml:"client_key_id,omitempty"`
		Scopes                 []string `yaml:"scopes,flow"`
		Resource               string   `yaml:"resource"`
		Path                   string   `yaml:"path"`
		AllowedOrigins         []string `yaml:"allowed_origins,omitempty,flow"`
		PostLogoutRedirectURI  string   `yaml:"post_logout_redirect_uri,omitempty"`
		SessionStore           string   `yaml:"session_store,omitempty"`
		SessionStoreFile       string   `yaml:"session_store_file,omitempty"`
		SessionKey             string   `yaml:"session_key,omitempty"`
		SessionKeyFile         string   `yaml:"session_key_file,omitempty"`
		PreviousSessionKey     string   `yaml:"previous_session_key,omitempty"`
		PreviousSessionKeyFile string   `yaml:"previous_session_key_file,omitempty"`
		SessionIdleTimeout     string   `yaml:"session_idle_timeout"`
		SessionLifetime        string   `yaml:"session_lifetime"`
		BackchannelLogout      bool     `yaml:"backchannel_logout"`
		PAR                    string   `yaml:"par"`
		DPoP                   bool     `yaml:"dpop"`
	}
	effIssuer struct {
		Issuer                   string  `yaml:"issuer"`
		JWKSURI                  string  `yaml:"jwks_uri,omitempty"`
		IntrospectionEndpoint    string  `yaml:"introspection_endpoint,omitempty"`
		ClientID                 string  `yaml:"client_id,omitempty"`
		ClientSecret             string  `yaml:"client_secret,omitempty"`
		ClientSecretFile         string  `yaml:"client_secret_file,omitempty"`
		ClientAuthMethod         string  `yaml:"client_auth_method,omitempty"`
		ClientKeyFile            string  `yaml:"client_key_file,omitempty"`
		ClientKeyID              string  `yaml:"client_key_id,omitempty"`
		IntrospectionCacheMaxAge string  `yaml:"introspection_cache_max_age,omitempty"`
		IntrospectionRateLimit   float64 `yaml:"introspection_rate_limit,omitempty"`
		IntrospectionResponse    string  `yaml:"introspection_response,omitempty"`
		AllowLegacyTyp           bool    `yaml:"allow_legacy_typ"`
		ScpClaim                 bool    `yaml:"scp_claim"`
	}
	effDPoP struct {
		Mode            string `yaml:"mode"`
		Nonce           bool   `yaml:"nonce"`
		ReplayStore     string `yaml:"replay_store,omitempty"`
		ReplayStoreFile string `yaml:"replay_store_file,omitempty"`
		ReplayKeyQuota  int    `yaml:"replay_key_quota,omitempty"` // shown when DPoP is on
	}
	effRoute struct {
		Pattern             string     `yaml:"pattern"`
		Scopes              []string   `yaml:"scopes,flow"`
		AnyScopes           [][]string `yaml:"any_scopes,omitempty,flow"`
		RequireDPoP         bool       `yaml:"require_dpop,omitempty"`
		Introspect          bool       `yaml:"introspect,omitempty"`
		IntrospectionMaxAge string     `yaml:"introspection_max_age,omitempty"`
		MaxTokenAge         string     `yaml:"max_token_age,omitempty"`
		ACRValues           []string   `yaml:"acr_values,omitempty,flow"`
		MaxAuthAge          string     `yaml:"max_auth_age,omitempty"`
		Public              bool       `yaml:"public,omitempty"`
	}
	effTLS struct {
		CertFile       string `yaml:"cert_file"`
		KeyFile        string `yaml:"key_file"`
		ReloadInterval string `yaml:"reload_interval"`
		ClientCerts    string `yaml:"client_certs"`
	}
)

// durOr formats d, or def when d is zero.
func durOr(d, def time.Duration) string {
	if d == 0 {
		d = def
	}
	return d.String()
}

func durIf(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// redactUserinfo hides everything between "://" and the last "@" of a
// URL (or of a URL as written, with ${...} in it), unless it consists only
// of variable references such as ":${REDIS_PASSWORD}", which say where
// the secret comes from without showing it.
func redactUserinfo(s string) string {
	i := strings.Index(s, "://")
	j := strings.LastIndexByte(s, '@')
	if i < 0 || j < i+3 {
		return s
	}
	if onlyReferences(s[i+3:j], ":") {
		return s
	}
	return s[:i+3] + redactedUserinfo + s[j:]
}

// onlyReferences reports whether s, as written in the file, is made only
// of ${NAME} references and the characters in sep.
func onlyReferences(s, sep string) bool {
	for s != "" {
		switch {
		case strings.HasPrefix(s, "${"):
			end := strings.IndexByte(s, '}')
			if end < 0 || !envexpand.ValidName(s[2:end]) {
				return false
			}
			s = s[end+1:]
		case strings.ContainsRune(sep, rune(s[0])):
			s = s[1:]
		default:
			return false
		}
	}
	return true
}

// effectiveYAML renders the effective configuration. Secrets never
// appear: client secrets are replaced, a Redis URL's user information is
// hidden, a value that came from an environment variable is shown as
// written (${NAME}), and the nonce secrets are only counted.
func (c *config) effectiveYAML() ([]byte, error) {
	e := effectiveConfig{
		Listen:                         c.Listen,
		MetricsListen:                  c.MetricsListen,
		Upstream:                       c.upstreamString(),
		PublicURL:                      c.publicURL(),
		Audience:                       c.Audience,
		Realm:                          cmpOr(c.Realm, c.Audience),
		Leeway:                         durOr(c.Leeway, middleware.DefaultLeeway),
		MaxTokenSize:                   c.MaxTokenSize,
		ShutdownTimeout:                c.ShutdownTimeout.String(),
		DrainDelay:                     c.DrainDelay.String(),
		ConfigReloadInterval:           c.ConfigReloadInterval.String(),
		UpstreamTimeout:                c.UpstreamTimeout.String(),
		UpstreamMaxResponseHeaderBytes: c.UpstreamMaxResponseHeaderBytes,
		BodyReadTimeout:                c.BodyReadTimeout.String(),
		ResponseWriteTimeout:           c.ResponseWriteTimeout.String(),
		UpstreamDialTimeout:            c.UpstreamDialTimeout.String(),
		MaxConcurrentRequests:          c.MaxConcurrentRequests,
		JWKSMinRefreshInterval:         durOr(c.JWKSMinRefreshInterval, shownJWKSMinRefreshInterval),
		JWKSMaxRefreshInterval:         durOr(c.JWKSMaxRefreshInterval, shownJWKSMaxRefreshInterval),
		JWKSRefreshRateLimit:           durOr(c.JWKSRefreshRateLimit, shownJWKSRefreshRateLimit),
		LogFormat:                      c.LogFormat,
		LogLevel:                       c.LogLevel,
		InsecureAllowHTTP:              c.InsecureAllowHTTP,
		DPoP:                           effDPoP{Mode: c.DPoPMode, Nonce: c.DPoPNonce, ReplayStore: "memory"},
		PathNormalization:              c.PathNormalization,
		Upgrades:                       []string{},
		AllowedHosts:                   c.AllowedHosts,
		AllowUnderscoreHeaders:         c.AllowUnderscoreHeaders,
	}
	if c.AllowWebSocket {
		e.Upgrades = []string{"websocket"}
	}
	if e.MaxTokenSize == 0 {
		e.MaxTokenSize = middleware.DefaultMaxTokenSize
	}
	switch {
	case c.StartupWait < 0:
		e.StartupWait = "0s"
	default:
		e.StartupWait = durOr(c.StartupWait, middleware.DefaultStartupWait)
	}
	switch {
	case c.FromFile["dpop.replay_store"] != "":
		e.DPoP.ReplayStore, e.DPoP.ReplayStoreFile = "", c.FromFile["dpop.replay_store"]
		e.DPoP.ReplayKeyQuota = cmp.Or(c.ReplayKeyQuota, redisstore.DefaultKeyQuota)
	case c.ReplayStore != "":
		e.DPoP.ReplayStore = redactUserinfo(c.ReplayStore)
		e.DPoP.ReplayKeyQuota = cmp.Or(c.ReplayKeyQuota, redisstore.DefaultKeyQuota)
	case c.DPoPMode != "disabled":
		e.DPoP.ReplayKeyQuota = cmp.Or(c.ReplayKeyQuota, dpop.DefaultKeyQuota(dpop.DefaultReplayStoreSize))
	}
	for i, is := range c.Issuers {
		ei := effIssuer{
			Issuer: is.Issuer, JWKSURI: is.JWKSURI, IntrospectionEndpoint: is.IntrospectionEndpoint,
			ClientID: is.ClientID, ClientAuthMethod: is.ClientAuthMethod, ClientKeyFile: is.ClientKeyFile, ClientKeyID: is.ClientKeyID,
			AllowLegacyTyp: is.AllowLegacyTyp, ScpClaim: is.ScpClaim,
		}
		if f, ok := c.FromFile[fmt.Sprintf("issuers[%d].client_secret", i)]; ok {
			ei.ClientSecretFile = f
		} else if is.ClientSecret != "" {
			ei.ClientSecret = redacted
		}
		if is.IntrospectionEndpoint != "" || is.ClientID != "" {
			ei.IntrospectionCacheMaxAge = durOr(is.IntrospectionCacheMaxAge, shownIntrospectionCacheAge)
			ei.IntrospectionRateLimit = cmp.Or(is.IntrospectionRateLimit, shownIntrospectionRateLimit)
			ei.ClientAuthMethod = cmpOr(is.ClientAuthMethod, "client_secret_basic")
			ei.IntrospectionResponse = cmpOr(is.IntrospectionResponse, "json")
		}
		e.Issuers = append(e.Issuers, ei)
	}
	for _, r := range c.Routes {
		e.Routes = append(e.Routes, effRoute{
			Pattern: r.Pattern, Scopes: r.Scopes, AnyScopes: r.AnyScopes, RequireDPoP: r.RequireDPoP, Introspect: r.Introspect,
			IntrospectionMaxAge: durIf(r.IntrospectionMaxAge), MaxTokenAge: durIf(r.MaxTokenAge), ACRValues: r.ACRValues, MaxAuthAge: durIf(r.MaxAuthAge),
			Public: r.Public,
		})
		if e.Routes[len(e.Routes)-1].Scopes == nil {
			e.Routes[len(e.Routes)-1].Scopes = []string{}
		}
	}
	if b := c.BFF; b != nil {
		eb := &effBFF{
			Issuer: b.Issuer, ClientID: b.ClientID, ClientAuthMethod: cmpOr(b.ClientAuthMethod, "client_secret_basic"),
			ClientKeyFile: b.ClientKeyFile, ClientKeyID: b.ClientKeyID, Scopes: b.Scopes, Resource: b.Resource,
			Path: cmpOr(b.Path, bff.DefaultPath), AllowedOrigins: b.AllowedOrigins, PostLogoutRedirectURI: b.PostLogoutRedirectURL,
			SessionStore:       "memory",
			SessionIdleTimeout: b.SessionIdleTimeout.String(), SessionLifetime: b.SessionLifetime.String(),
			BackchannelLogout: b.BackchannelLogout, PAR: b.PAR, DPoP: b.DPoP,
		}
		if b.ClientSecret != "" {
			eb.ClientSecret = redacted
		}
		if b.SessionStore != "" {
			eb.SessionStore = redactUserinfo(b.SessionStore)
		}
		if b.SessionKey != nil {
			eb.SessionKey = redacted
		}
		if b.PreviousSessionKey != nil {
			eb.PreviousSessionKey = redacted
		}
		// A secret read from a file is shown as its file.
		for key, f := range map[string]*[2]*string{
			"bff.client_secret":        {&eb.ClientSecret, &eb.ClientSecretFile},
			"bff.session_store":        {&eb.SessionStore, &eb.SessionStoreFile},
			"bff.session_key":          {&eb.SessionKey, &eb.SessionKeyFile},
			"bff.previous_session_key": {&eb.PreviousSessionKey, &eb.PreviousSessionKeyFile},
		} {
			if path, ok := c.FromFile[key]; ok {
				*f[0], *f[1] = "", path
			}
		}
		e.BFF = eb
	}
	if cc := c.CORS; cc != nil {
		e.CORS = &effCORS{AllowedOrigins: cc.AllowedOrigins, AllowedHeaders: cc.AllowedHeaders, MaxAge: cc.MaxAge.String()}
		if e.CORS.AllowedHeaders == nil {
			e.CORS.AllowedHeaders = []string{}
		}
	}
	if c.ForwardAuth != nil {
		e.ForwardAuth = &effFwdAuth{Path: c.ForwardAuth.Path}
	}
	for _, p := range c.TrustedProxies {
		e.TrustedProxies = append(e.TrustedProxies, p.String())
	}
	if c.TLS != nil {
		e.TLS = &effTLS{CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile, ReloadInterval: c.TLS.ReloadInterval.String(), ClientCerts: c.TLS.ClientCerts}
	}
	e.ClientCertHeader = c.ClientCertHeader

	var doc yaml.Node
	if err := doc.Encode(&e); err != nil {
		return nil, err
	}
	// Values that came from the environment are shown as written, with
	// a note; the expanded value (perhaps a secret) never is.
	for key, written := range c.FromEnv {
		n := findNode(&doc, key)
		if n == nil || n.Kind != yaml.ScalarNode {
			// Not expected; but showing the document without knowing
			// where the expanded value is could print it.
			return nil, fmt.Errorf("tokenguard check: cannot show %s without its value from the environment", key)
		}
		if key == "dpop.replay_store" || key == "bff.session_store" {
			written = redactUserinfo(written)
		}
		if (strings.HasSuffix(key, ".client_secret") || strings.HasSuffix(key, "session_key")) && !onlyReferences(written, "") {
			written = redacted
		}
		n.Value, n.Tag, n.Style = written, "!!str", yaml.DoubleQuotedStyle
		n.LineComment = "from the environment"
	}
	if dp := findKey(&doc, "dpop"); dp != nil {
		switch n := len(c.NonceSecrets); n {
		case 0:
			dp.HeadComment = NonceSecretsEnv + " is not set: nonces, if on, use a random per-process key"
		default:
			dp.HeadComment = fmt.Sprintf("%s: %d secret(s) set (not shown)", NonceSecretsEnv, n)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# tokenguard check: %s is valid. Effective configuration, defaults filled in;\n# secrets are redacted and values from the environment are shown as written.\n", c.File)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// findKey returns the key node of a top-level key, where a comment about
// it goes.
func findKey(doc *yaml.Node, key string) *yaml.Node {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i]
		}
	}
	return nil
}

// findNode returns the value node at a display key path
// ("issuers[0].client_secret") in an encoded document.
func findNode(doc *yaml.Node, key string) *yaml.Node {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for part := range strings.SplitSeq(key, ".") {
		// "name" or "name[i]" or "name[i][j]"...
		name, idxs := part, []int(nil)
		if i := strings.IndexByte(part, '['); i >= 0 {
			name = part[:i]
			for rest := part[i:]; rest != ""; {
				end := strings.IndexByte(rest, ']')
				if rest[0] != '[' || end < 0 {
					return nil
				}
				idx, err := strconv.Atoi(rest[1:end])
				if err != nil || idx < 0 {
					return nil
				}
				idxs, rest = append(idxs, idx), rest[end+1:]
			}
		}
		var next *yaml.Node
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == name {
					next = n.Content[i+1]
				}
			}
		}
		if next == nil {
			return nil
		}
		n = next
		for _, idx := range idxs {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return nil
			}
			n = n.Content[idx]
		}
	}
	return n
}
