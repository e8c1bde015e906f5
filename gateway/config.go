package gateway

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenguard/tokenguard/dpop"
)

// Defaults for optional configuration keys.
const (
	defaultShutdownTimeout     = 30 * time.Second
	defaultUpstreamTimeout     = 30 * time.Second
	defaultUpstreamDialTimeout = 5 * time.Second
	defaultTLSReloadInterval   = time.Minute
	// defaultMaxConcurrentRequests bounds in-flight proxied requests. Each
	// costs a goroutine, the proxy's 32 KiB copy buffer and a few KiB of
	// connection buffers on both sides, so 4096 is roughly 200-250 MiB at
	// worst: it fits a modest container, and is far more than one instance
	// needs for short API calls (a long stream holds a slot for its whole
	// life, so raise it for SSE/WebSocket-heavy APIs).
	defaultMaxConcurrentRequests = 4096
	// minRefreshSetting is the smallest JWKS refresh interval or rate
	// limit accepted: lower would let tokens with random kids turn the
	// gateway into a load generator against the issuer.
	minRefreshSetting = time.Second
	maxConfigSize     = 1 << 20 // a config file is small; refuse anything silly
)

// fileConfig is the YAML document exactly as written. Durations are strings
// ("30s", "5m") parsed by validate, so that a bad one is reported with its
// line like every other mistake.
type fileConfig struct {
	Listen          string      `yaml:"listen"`
	MetricsListen   string      `yaml:"metrics_listen"`
	Upstream        string      `yaml:"upstream"`
	PublicURL       string      `yaml:"public_url"`
	Audience        string      `yaml:"audience"`
	Issuers         []fileIssue `yaml:"issuers"`
	DPoP            fileDPoP    `yaml:"dpop"`
	Routes          []fileRoute `yaml:"routes"`
	Realm           string      `yaml:"realm"`
	Leeway          string      `yaml:"leeway"`
	MaxTokenSize    int         `yaml:"max_token_size"`
	StartupWait     string      `yaml:"startup_wait"`
	ShutdownTimeout string      `yaml:"shutdown_timeout"`
	LogFormat       string      `yaml:"log_format"`
	LogLevel        string      `yaml:"log_level"`

	JWKSMinRefreshInterval string `yaml:"jwks_min_refresh_interval"`
	JWKSMaxRefreshInterval string `yaml:"jwks_max_refresh_interval"`
	JWKSRefreshRateLimit   string `yaml:"jwks_refresh_rate_limit"`

	UpstreamTimeout       string  `yaml:"upstream_timeout"`
	UpstreamDialTimeout   string  `yaml:"upstream_dial_timeout"`
	MaxConcurrentRequests int     `yaml:"max_concurrent_requests"`
	DrainDelay            string  `yaml:"drain_delay"`
	TLS                   fileTLS `yaml:"tls"`

	InsecureAllowHTTP bool `yaml:"insecure_allow_http"`

	PathNormalization      string    `yaml:"path_normalization"`
	Upgrades               *[]string `yaml:"upgrades"` // nil: absent (the default); empty: refuse every upgrade
	AllowedHosts           []string  `yaml:"allowed_hosts"`
	AllowUnderscoreHeaders bool      `yaml:"allow_underscore_headers"`
}

type fileTLS struct {
	CertFile       string `yaml:"cert_file"`
	KeyFile        string `yaml:"key_file"`
	ReloadInterval string `yaml:"reload_interval"`
}

type fileIssue struct {
	Issuer                string `yaml:"issuer"`
	JWKSURI               string `yaml:"jwks_uri"`
	IntrospectionEndpoint string `yaml:"introspection_endpoint"`
	ClientID              string `yaml:"client_id"`
	ClientSecret          string `yaml:"client_secret"`
	AllowLegacyTyp        bool   `yaml:"allow_legacy_typ"`
	ScpClaim              bool   `yaml:"scp_claim"`
	ClientAuthMethod      string `yaml:"client_auth_method"` // client_secret_basic (default), client_secret_post, private_key_jwt
	ClientKeyFile         string `yaml:"client_key_file"`    // PKCS#8 PEM key for private_key_jwt
	ClientKeyID           string `yaml:"client_key_id"`
	// IntrospectionCacheMaxAge bounds how long an active answer is reused.
	IntrospectionCacheMaxAge string `yaml:"introspection_cache_max_age"`
}

type fileDPoP struct {
	Mode        string `yaml:"mode"`
	Nonce       bool   `yaml:"nonce"`
	ReplayStore string `yaml:"replay_store"`
}

type fileRoute struct {
	Pattern     string     `yaml:"pattern"`
	Scopes      []string   `yaml:"scopes"`
	AnyScopes   [][]string `yaml:"any_scopes"`
	RequireDPoP bool       `yaml:"require_dpop"`
	Introspect  bool       `yaml:"introspect"`
	// IntrospectionMaxAge bounds this route's revocation latency.
	IntrospectionMaxAge string   `yaml:"introspection_max_age"`
	MaxTokenAge         string   `yaml:"max_token_age"`
	ACRValues           []string `yaml:"acr_values"`
	MaxAuthAge          string   `yaml:"max_auth_age"`
}

// config is a validated gateway configuration. It deliberately does not
// import the middleware package: gateway.go converts it to a
// middleware.Config, and middleware.New has the last word on the guard's
// settings (its errors are mapped back to YAML lines with [config.keyFor]).
type Config struct {
	File            string
	Listen          string
	MetricsListen   string // "" means no metrics listener
	Upstream        *url.URL
	PublicURL       *url.URL // nil when unset: the DPoP htu base (middleware.Config.PublicURL)
	Audience        string
	Realm           string // "" means the audience
	Issuers         []issuerConfig
	DPoPMode        string        // "disabled", "allowed" or "required"
	DPoPNonce       bool          // require server-issued DPoP nonces
	ReplayStore     string        // "" for the in-memory store, else a redis:// or rediss:// URL (may hold a password: never print it)
	Leeway          time.Duration // 0 means the middleware default (30s)
	MaxTokenSize    int           // 0 means the middleware default (8 KiB)
	StartupWait     time.Duration // 0 means the middleware default (10s); negative: don't wait
	ShutdownTimeout time.Duration
	LogFormat       string // "text" or "json"
	LogLevel        string // "debug", "info", "warn" or "error"
	Routes          []routeConfig

	// JWKS refresh bounds (middleware.Config); 0 means the middleware default.
	JWKSMinRefreshInterval, JWKSMaxRefreshInterval, JWKSRefreshRateLimit time.Duration

	UpstreamTimeout     time.Duration // response-header timeout; a timeout is a 504
	UpstreamDialTimeout time.Duration
	// MaxConcurrentRequests bounds in-flight requests on the proxy; excess
	// ones get 503 at once. Negative means no limit.
	MaxConcurrentRequests int
	// DrainDelay is how long shutdown keeps serving, with /readyz at 503,
	// before it closes the listener, so a load balancer stops sending first.
	DrainDelay time.Duration
	TLS        *tlsConfig // nil: plain HTTP on listen

	// InsecureAllowHTTP permits plain http issuer and JWKS URLs beyond
	// loopback (middleware.Config.InsecureAllowHTTP).
	InsecureAllowHTTP bool

	// Request hygiene (middleware.Hygiene and the proxy's header rules).
	PathNormalization      string   // "reject" (refuse ambiguous request-targets) or "forward_unchanged"
	AllowWebSocket         bool     // upgrades: [websocket], the default; false: upgrades: []
	AllowedHosts           []string // lower case; empty: any Host
	AllowUnderscoreHeaders bool     // false: request headers whose names contain '_' are dropped

	// NonceSecrets are the DPoP nonce HMAC keys from the environment
	// (nonceSecretsEnv), set by applyEnv; never from the file, so the file
	// can be shared and committed. Empty means a random key per process.
	NonceSecrets [][]byte

	// FromEnv maps the key ("issuers[0].client_secret") of every value
	// that used an environment variable to the value as written
	// ("${SECRET}"). Such values are never printed.
	FromEnv map[string]string

	// keys maps a middleware.Config field path ("Issuers[0].JWKSURI") to
	// where its YAML counterpart is, so New's errors can name the line.
	keys map[string]keyPos
}

type issuerConfig struct {
	Issuer, JWKSURI, IntrospectionEndpoint, ClientID, ClientSecret string
	AllowLegacyTyp, ScpClaim                                       bool
	ClientAuthMethod, ClientKeyFile, ClientKeyID                   string
	IntrospectionCacheMaxAge                                       time.Duration // 0: the middleware default
}

// tlsConfig is the tls block: the certificate and key files, checked to
// load when the configuration is read, and how often they are polled for
// changes.
type tlsConfig struct {
	CertFile, KeyFile string
	ReloadInterval    time.Duration
	Key               string // "tls", for messages
	Line              int
}

type routeConfig struct {
	Pattern string
	Scopes  []string // empty: any valid token
	Key     string   // "routes[i].pattern", for messages
	Line    int

	// The route's policy beyond Scopes (middleware.Policy).
	AnyScopes           [][]string
	RequireDPoP         bool
	Introspect          bool
	IntrospectionMaxAge time.Duration
	MaxTokenAge         time.Duration
	ACRValues           []string
	MaxAuthAge          time.Duration
}

// keyPos is a YAML key and the line it is on (or, when absent, the line of
// the mapping it belongs in).
type keyPos struct {
	Key  string
	Line int
}

// keyFor returns the YAML key and line for a middleware.Config field path.
// A path ending in an index ("DPoP.NonceSecrets[1]") falls back to its
// field's entry.
func (c *Config) keyFor(field string) (keyPos, bool) {
	if p, ok := c.keys[field]; ok {
		return p, ok
	}
	if i := strings.LastIndexByte(field, '['); i > 0 && strings.HasSuffix(field, "]") {
		p, ok := c.keys[field[:i]]
		return p, ok
	}
	return keyPos{}, false
}

// fieldError is one configuration mistake: the YAML line, the key path
// ("issuers[1].jwks_uri") and what is wrong with it.
type fieldError struct {
	Line int
	Key  string
	Msg  string
}

func (e *fieldError) Error() string {
	switch {
	case e.Line > 0 && e.Key != "":
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Key, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	case e.Key != "":
		return e.Key + ": " + e.Msg
	}
	return e.Msg
}

// configError is every mistake found in one configuration file, in line
// order. Errors use it so a user can fix the whole file in one go.
type configError struct {
	File   string
	Fields []*fieldError
	Err    error // the underlying error when it came from middleware.New; may be nil
}

// Unwrap returns the underlying error, if any.
func (e *configError) Unwrap() error { return e.Err }

func (e *configError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tokenguard: config %s:", e.File)
	if len(e.Fields) == 1 {
		b.WriteString(" " + e.Fields[0].Error())
		return b.String()
	}
	for _, f := range e.Fields {
		b.WriteString("\n\t" + f.Error())
	}
	return b.String()
}

// nonceSecretsEnv names the environment variable with the DPoP nonce
// secrets: comma-separated, each the base64 (standard or URL alphabet,
// padded or not) of at least dpop.MinNonceSecretSize (32) random bytes.
// The first makes nonces and all are accepted, so a secret is rotated by
// putting the new one first. Replicas given the same value accept each
// other's nonces. Secrets stay out of the YAML file so that it can be
// shared and committed.
const NonceSecretsEnv = "TOKENGUARD_DPOP_NONCE_SECRETS"

// applyEnv reads the settings that come from the environment rather than
// the file. getenv is os.Getenv in main.
func (c *Config) ApplyEnv(getenv func(string) string) error {
	v := getenv(NonceSecretsEnv)
	if v == "" {
		return nil
	}
	secrets, err := parseNonceSecrets(v)
	if err != nil {
		return fmt.Errorf("tokenguard: %s: %w", NonceSecretsEnv, err)
	}
	c.NonceSecrets = secrets
	return nil
}

// parseNonceSecrets decodes the value of nonceSecretsEnv. Its errors say
// which entry is wrong and how, never what it holds.
func parseNonceSecrets(v string) ([][]byte, error) {
	parts := strings.Split(v, ",")
	out := make([][]byte, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		n := i + 1
		if p == "" {
			return nil, fmt.Errorf("secret %d of %d is empty (the value is a comma-separated list of base64 secrets)", n, len(parts))
		}
		b, ok := decodeBase64(p)
		switch {
		case !ok:
			return nil, fmt.Errorf("secret %d of %d is not valid base64", n, len(parts))
		case len(b) < dpop.MinNonceSecretSize:
			return nil, fmt.Errorf("secret %d of %d decodes to %d bytes; at least %d random bytes are required (for example: openssl rand -base64 32)", n, len(parts), len(b), dpop.MinNonceSecretSize)
		}
		out = append(out, b)
	}
	return out, nil
}

// decodeBase64 accepts the standard and the URL-safe alphabet, with or
// without padding.
func decodeBase64(s string) ([]byte, bool) {
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	raw := strings.TrimRight(s, "=")
	if pad := len(s) - len(raw); pad > 0 && (pad > 2 || len(s)%4 != 0) {
		return nil, false
	}
	b, err := enc.Strict().DecodeString(raw)
	return b, err == nil
}

// loadConfig reads the configuration file at path, expands environment
// variables in its values with getenv (see expandEnv) and validates it.
func LoadConfig(path string, getenv func(string) string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenguard: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("tokenguard: reading config: %w", err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("tokenguard: config %s: larger than %d bytes", path, maxConfigSize)
	}
	return ParseConfig(path, data, getenv)
}

// noEnv is an empty environment.
func noEnv(string) string { return "" }

// parseConfig is parseConfigEnv with an empty environment.
func parseConfig(name string, data []byte) (*Config, error) {
	return ParseConfig(name, data, noEnv)
}

// parseConfigEnv decodes data strictly, expands ${NAME} in its string
// values with getenv, and validates it. name is used in error messages
// only.
func ParseConfig(name string, data []byte, getenv func(string) string) (*Config, error) {
	fail := func(errs []*fieldError) error {
		slices.SortStableFunc(errs, func(a, b *fieldError) int { return a.Line - b.Line })
		return &configError{File: name, Fields: errs}
	}

	// Pass 1: the node tree, for syntax errors, unknown and duplicate keys
	// (named by their full path) and, later, line numbers.
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fail([]*fieldError{{Line: 1, Msg: "the file is empty"}})
		}
		return nil, fail(yamlErrors(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fail([]*fieldError{{Line: extra.Line, Msg: "more than one YAML document; the config is a single document"}})
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return nil, fail([]*fieldError{{Line: doc.Line, Msg: "the document must be a mapping of keys to values"}})
	}
	if errs := checkKeys(doc, reflect.TypeFor[fileConfig](), ""); len(errs) > 0 {
		return nil, fail(errs)
	}

	// Pass 2: environment variables, in the parsed values only, so that a
	// variable can never change the document's structure.
	x := newExpander(getenv)
	if errs := x.expand(doc, reflect.TypeFor[fileConfig](), ""); len(errs) > 0 {
		return nil, fail(errs)
	}

	// Pass 3: the typed struct, from the expanded tree (checkKeys has
	// already refused unknown keys, which KnownFields would).
	var fc fileConfig
	if err := doc.Decode(&fc); err != nil {
		errs := yamlErrors(err)
		x.scrub(errs) // the decoder quotes the values it cannot convert
		return nil, fail(errs)
	}

	c, errs := fc.validate(doc)
	if len(errs) > 0 {
		x.scrub(errs)
		return nil, fail(errs)
	}
	c.File = name
	c.FromEnv = x.fromEnv
	return c, nil
}

// yamlLine matches the "line N: message" form of the YAML parser's errors.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlErrors converts a YAML parser error into fieldErrors with lines.
func yamlErrors(err error) []*fieldError {
	var msgs []string
	if te, ok := errors.AsType[*yaml.TypeError](err); ok {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := make([]*fieldError, 0, len(msgs))
	for _, m := range msgs {
		fe := &fieldError{Msg: strings.TrimPrefix(m, "yaml: ")}
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			fe.Line, _ = strconv.Atoi(sm[1])
			fe.Msg = sm[2]
		}
		// Go type names mean nothing to the reader of a YAML file.
		fe.Msg = goTypeName.ReplaceAllString(fe.Msg, "")
		out = append(out, fe)
	}
	return out
}

var goTypeName = regexp.MustCompile(` (?:in|into) (?:type )?main\.\w+`)

// checkKeys reports every key of mapping n that t has no yaml field for, and
// every key given twice, recursing into known fields. path is n's key path.
func checkKeys(n *yaml.Node, t reflect.Type, path string) []*fieldError {
	n = resolve(n)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var errs []*fieldError
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" { // a merge key: its mapping is checked as if inline
				errs = append(errs, checkKeys(v, t, path)...)
				continue
			}
			key := joinKey(path, k.Value)
			if line, dup := seen[k.Value]; dup {
				errs = append(errs, &fieldError{Line: k.Line, Key: key, Msg: fmt.Sprintf("given twice (first on line %d)", line)})
				continue
			}
			seen[k.Value] = k.Line
			ft, ok := fields[k.Value]
			if !ok {
				msg := "unknown key"
				if s := suggest(k.Value, fields); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				errs = append(errs, &fieldError{Line: k.Line, Key: key, Msg: msg})
				continue
			}
			errs = append(errs, checkKeys(v, ft, key)...)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, e := range n.Content {
			errs = append(errs, checkKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	// Kind mismatches are left to the typed decode, which names them.
	return errs
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type, t.NumField())
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			m[name] = f.Type
		}
	}
	return m
}

// suggest returns the known key closest to k if it is a plausible typo.
func suggest(k string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for name := range fields {
		if d := editDistance(strings.ToLower(k), name); d < bestD || d == bestD && best != "" && name < best {
			best, bestD = name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func joinKey(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// positions finds the line of a key path in the document.
type positions struct{ root *yaml.Node }

// at returns the key path's display name and line. Path elements are map
// keys (string) and sequence indexes (int). When the path does not exist,
// the line is that of the deepest node that does: for a missing required
// key, the mapping it should be in.
func (p positions) at(path ...any) keyPos {
	n := p.root
	line := n.Line
	name := ""
	found := true
	for _, el := range path {
		switch el := el.(type) {
		case string:
			name = joinKey(name, el)
		case int:
			name = fmt.Sprintf("%s[%d]", name, el)
		}
		if !found {
			continue
		}
		n = resolve(n)
		var next *yaml.Node
		switch el := el.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == el {
						line = n.Content[i].Line
						next = n.Content[i+1]
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && el < len(n.Content) {
				next = resolve(n.Content[el])
				line = next.Line
			}
		}
		if next == nil {
			found = false
			continue
		}
		n = next
	}
	return keyPos{Key: name, Line: line}
}

// validate checks the decoded file and builds a config. doc is the root
// mapping, for line numbers.
func (fc *fileConfig) validate(doc *yaml.Node) (*Config, []*fieldError) {
	pos := positions{root: doc}
	var errs []*fieldError
	bad := func(p keyPos, format string, args ...any) {
		errs = append(errs, &fieldError{Line: p.Line, Key: p.Key, Msg: fmt.Sprintf(format, args...)})
	}
	c := &Config{
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
		bad(pos.at("upstream"), "required (base URL of the API to protect)")
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
	case strings.HasPrefix(rs, "redis://") || strings.HasPrefix(rs, "rediss://"):
		// The URL may carry a password: messages describe it, never quote it.
		if err := checkRedisURL(rs); err != nil {
			bad(pos.at("dpop", "replay_store"), "%v", err)
		} else if !dpopOn {
			bad(pos.at("dpop", "replay_store"), "a Redis replay store needs dpop.mode allowed or required")
		} else {
			c.ReplayStore = rs
		}
	default:
		bad(pos.at("dpop", "replay_store"), "must be memory or a redis:// or rediss:// URL")
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
	c.DrainDelay = dur("drain_delay", fc.DrainDelay, 0, true)
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
		c.Routes = append(c.Routes, routeConfig{
			Pattern: r.Pattern, Scopes: slices.Clone(r.Scopes), Key: p.Key, Line: p.Line,
			AnyScopes: r.AnyScopes, RequireDPoP: r.RequireDPoP, Introspect: r.Introspect, ACRValues: slices.Clone(r.ACRValues),
			MaxTokenAge:         routeDur("max_token_age", r.MaxTokenAge),
			IntrospectionMaxAge: routeDur("introspection_max_age", r.IntrospectionMaxAge),
			MaxAuthAge:          routeDur("max_auth_age", r.MaxAuthAge),
		})
	}
	errs = append(errs, checkRoutes(c.Routes)...)
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

// checkRedisURL checks the shape of a redis:// or rediss:// URL. Its
// errors never quote the URL, which may hold a password.
func checkRedisURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return errors.New("not a valid redis:// URL")
	case u.Host == "" || u.Hostname() == "":
		return errors.New("the redis:// URL has no host")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return errors.New("the redis:// URL must not contain a fragment")
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if _, err := strconv.ParseUint(db, 10, 16); err != nil {
			return errors.New("the redis:// URL's path must be a database number, such as /0")
		}
	}
	return nil
}

// checkRoutes registers every pattern on a scratch ServeMux, which is the
// authority on what a valid pattern is and which patterns conflict. Its
// panics become errors naming both routes involved.
func checkRoutes(routes []routeConfig) []*fieldError {
	var errs []*fieldError
	mux := http.NewServeMux()
	for i, r := range routes {
		if err := tryHandle(mux, r.Pattern, http.NotFoundHandler()); err == nil {
			continue
		}
		// Alone on a fresh mux: an invalid pattern. Otherwise find the
		// earlier route it clashes with.
		if err := tryHandle(http.NewServeMux(), r.Pattern, http.NotFoundHandler()); err != nil {
			errs = append(errs, &fieldError{Line: r.Line, Key: r.Key, Msg: fmt.Sprintf("invalid pattern: %v", err)})
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
				errs = append(errs, &fieldError{Line: r.Line, Key: r.Key, Msg: fmt.Sprintf("%q duplicates %s on line %d", r.Pattern, o.Key, o.Line)})
			} else {
				errs = append(errs, &fieldError{Line: r.Line, Key: r.Key, Msg: fmt.Sprintf(
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

// NewLogger returns a slog logger writing to w in the configured
// log_format (text or JSON) at the configured log_level.
func (c *Config) NewLogger(w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: lv}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
