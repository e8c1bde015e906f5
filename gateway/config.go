package gateway

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaults for optional configuration keys.
const (
	defaultShutdownTimeout     = 30 * time.Second
	defaultUpstreamTimeout     = 30 * time.Second
	defaultUpstreamDialTimeout = 5 * time.Second
	// defaultBodyReadTimeout bounds a forwarded request's body: a client
	// uploading slower than this holds an upstream connection and a slot
	// no longer.
	defaultBodyReadTimeout = 60 * time.Second
	// defaultResponseWriteTimeout bounds one write to the client (nginx's
	// send_timeout): a client that stops reading holds its connection and
	// slot no longer.
	defaultResponseWriteTimeout = 60 * time.Second
	defaultTLSReloadInterval    = time.Minute
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

// config is a validated gateway configuration. It deliberately does not
// import the middleware package: gateway.go converts it to a
// middleware.Config, and middleware.New has the last word on the guard's
// settings (its errors are mapped back to YAML lines with [config.keyFor]).
type config struct {
	File            string
	Listen          string
	MetricsListen   string   // "" means no metrics listener
	Upstream        *url.URL // nil only with forward_auth: then nothing is proxied
	PublicURL       *url.URL // nil when unset: the DPoP htu base (middleware.Config.PublicURL)
	Audience        string
	Realm           string // "" means the audience
	Issuers         []issuerConfig
	DPoPMode        string        // "disabled", "allowed" or "required"
	DPoPNonce       bool          // require server-issued DPoP nonces
	ReplayStore     string        // "" for the in-memory store, else a redis:// or rediss:// URL (may hold a password: never print it)
	ReplayKeyQuota  int           // proofs one key may record per proof lifetime; 0: the store's default
	Leeway          time.Duration // 0 means the middleware default (30s)
	MaxTokenSize    int           // 0 means the middleware default (8 KiB)
	StartupWait     time.Duration // 0 means the middleware default (10s); negative: don't wait
	ShutdownTimeout time.Duration
	LogFormat       string // "text" or "json"
	LogLevel        string // "debug", "info", "warn" or "error"
	Routes          []routeConfig

	// JWKS refresh bounds (middleware.Config); 0 means the middleware default.
	JWKSMinRefreshInterval, JWKSMaxRefreshInterval, JWKSRefreshRateLimit time.Duration

	UpstreamTimeout time.Duration // response-header timeout; a timeout is a 504
	// UpstreamMaxResponseHeaderBytes bounds the upstream's response
	// headers; more is a 502.
	UpstreamMaxResponseHeaderBytes int64
	// BodyReadTimeout bounds how long a forwarded request's body may take
	// to arrive; then 408. Zero means no limit.
	BodyReadTimeout time.Duration
	// ResponseWriteTimeout bounds one write to the client; a client that
	// stops reading is cut off after it. Zero means no limit.
	ResponseWriteTimeout time.Duration
	UpstreamDialTimeout  time.Duration
	// MaxConcurrentRequests bounds in-flight requests on the proxy; excess
	// ones get 503 at once. Negative means no limit.
	MaxConcurrentRequests int
	// DrainDelay is how long shutdown keeps serving, with /readyz at 503,
	// before it closes the listener, so a load balancer stops sending first.
	DrainDelay time.Duration
	// ConfigReloadInterval is how often the file is read to see whether it
	// changed (then it is reloaded, as on SIGHUP); 0: never.
	ConfigReloadInterval time.Duration
	TLS                  *tlsConfig // nil: plain HTTP on listen

	// InsecureAllowHTTP permits plain http issuer and JWKS URLs beyond
	// loopback (middleware.Config.InsecureAllowHTTP).
	InsecureAllowHTTP bool

	// Request hygiene (middleware.Hygiene and the proxy's header rules).
	PathNormalization      string   // "reject" (refuse ambiguous request-targets) or "forward_unchanged"
	AllowWebSocket         bool     // upgrades: [websocket], the default; false: upgrades: []
	AllowedHosts           []string // lower case; empty: any Host
	AllowUnderscoreHeaders bool     // false: request headers whose names contain '_' are dropped

	BFF *bffConfig // nil: no token handler

	// Behind another ingress (cors.go, forwardauth.go).
	CORS           *corsConfig        // nil: no CORS handling; OPTIONS is routed like any request
	ForwardAuth    *forwardAuthConfig // nil: no forward-auth endpoint
	TrustedProxies []netip.Prefix     // peers whose forwarding headers are believed; empty: nobody's
	// ClientCertHeader is the header (canonical form) in which a trusted
	// proxy reports its client's certificate, RFC 9440; "": none is read
	// (clientcert.go).
	ClientCertHeader string

	// NonceSecrets are the DPoP nonce HMAC keys from the environment
	// (nonceSecretsEnv), set by applyEnv; never from the file, so the file
	// can be shared and committed. Empty means a random key per process.
	NonceSecrets [][]byte

	// FromEnv maps the key ("issuers[0].client_secret") of every value
	// that used an environment variable to the value as written
	// ("${SECRET}"). Such values are never printed.
	FromEnv map[string]string
	// FromFile maps the key ("issuers[0].client_secret") of every secret
	// read from its *_file twin to that file's path (secretfile.go).
	FromFile map[string]string

	// env is the getenv the configuration was read with, and hash the
	// SHA-256 of the file's bytes: ReloadConfig reads the file again with
	// the same environment, and the config_reload_interval poller
	// reloads when the bytes change.
	env      func(string) string
	hash     [32]byte
	fromFile bool // LoadConfig made it: File is a path

	// scrub rewrites messages to show the values that came from the
	// environment as written (expander.scrub); set by parseConfigEnv.
	scrub func([]*FieldError)

	// keys maps a middleware.Config field path ("Issuers[0].JWKSURI") to
	// where its YAML counterpart is, so New's errors can name the line.
	keys map[string]keyPos
}

type issuerConfig struct {
	Issuer, JWKSURI, IntrospectionEndpoint, ClientID, ClientSecret string
	AllowLegacyTyp, ScpClaim                                       bool
	ClientAuthMethod, ClientKeyFile, ClientKeyID                   string
	IntrospectionCacheMaxAge                                       time.Duration // 0: the middleware default
	IntrospectionRateLimit                                         float64       // requests/s; 0: the middleware default
	IntrospectionResponse                                          string        // "json" or "jwt"; "": json
}

// tlsConfig is the tls block: the certificate and key files, checked to
// load when the configuration is read, and how often they are polled for
// changes.
type tlsConfig struct {
	CertFile, KeyFile string
	ReloadInterval    time.Duration
	ClientCerts       string // "off" or "request": ask clients for a certificate (clientcert.go)
	Key               string // "tls", for messages
	Line              int
}

// bffConfig is the bff block, checked; Go field names follow bff.Config.
type bffConfig struct {
	Issuer, ClientID, ClientSecret, ClientAuthMethod, ClientKeyFile, ClientKeyID string
	Scopes                                                                       []string
	Resource, Path, PostLogoutRedirectURL                                        string
	AllowedOrigins                                                               []string
	SessionStore                                                                 string // "" for memory, else a redis:// or rediss:// URL (may hold a password: never print it)
	SessionKey, PreviousSessionKey                                               []byte // nil when unset
	SessionIdleTimeout, SessionLifetime                                          time.Duration
	BackchannelLogout, DPoP                                                      bool
	PAR                                                                          string // bff.PARAuto, PARRequired or PAROff
	Line                                                                         int    // of the bff key, for messages
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

	// Public: no token needed, and none is forwarded (public.go).
	Public bool
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
func (c *config) keyFor(field string) (keyPos, bool) {
	if p, ok := c.keys[field]; ok {
		return p, ok
	}
	if i := strings.LastIndexByte(field, '['); i > 0 && strings.HasSuffix(field, "]") {
		p, ok := c.keys[field[:i]]
		return p, ok
	}
	return keyPos{}, false
}

// Config is a validated gateway configuration, made by LoadConfig or
// ParseConfig from the YAML file documented in docs/config.md. It cannot
// be changed once made, and is safe to share: several Gateways may be
// built from one.
type Config struct{ c *config }

// LoadConfig reads the gateway configuration file at path (at most 1 MiB),
// expands ${NAME} in its string values with getenv, reads the settings that
// only come from the environment (NonceSecretsEnv) with getenv too, and
// validates it all without network I/O: the file's own rules, then what
// Check runs (key files, Redis URLs, the guard's and the token handler's
// rules). getenv nil means os.Getenv.
//
// Every mistake is reported at once, whichever check finds it, as one
// *ConfigError whose FieldErrors name the line and the key, in line
// order; a value that came from the environment is never quoted in an
// error.
func LoadConfig(path string, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c, err := loadConfig(path, getenv)
	return wrap(c, err, getenv)
}

// ParseConfig is LoadConfig for a configuration already in memory; name
// stands for the file in error messages.
func ParseConfig(name string, data []byte, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c, err := parseConfigEnv(name, data, getenv)
	return wrap(c, err, getenv)
}

// wrap finishes LoadConfig and ParseConfig: it reads the settings that
// come from the environment and runs the offline checks (Check) on what
// parseConfigEnv built, even when the file had mistakes, so that one run
// reports them all: the file's, the environment's, and those only the
// guard, the token handler or a key file finds. They come as one
// *ConfigError, each mistake once, in line order.
func wrap(c *config, err error, getenv func(string) string) (*Config, error) {
	if c == nil {
		// The file could not be read, or is no mapping: nothing more
		// to check but the environment, whose mistakes are reported
		// with the file's, not after they are fixed.
		if envErr := (&config{}).applyEnv(getenv); envErr != nil {
			var ce *ConfigError
			if errors.As(err, &ce) {
				ce.Fields = append(ce.Fields, &FieldError{Msg: strings.TrimPrefix(envErr.Error(), "tokenguard: ")})
			}
		}
		return nil, err
	}
	c.env = getenv
	envErr := c.applyEnv(getenv)
	var found []*FieldError // the file's own mistakes; with some, c is partial
	if ce, ok := errors.AsType[*ConfigError](err); ok {
		found = ce.Fields
	}
	offErr := c.scrubbed(c.checkOffline(found))
	switch {
	case err == nil && envErr == nil && offErr == nil:
		return &Config{c}, nil
	case err == nil && offErr == nil:
		return nil, envErr // alone, as it always read: "tokenguard: NAME: ..."
	}
	errs := []error{err}
	if envErr != nil {
		errs = append(errs, &ConfigError{File: c.File, Err: envErr, Fields: []*FieldError{{Msg: strings.TrimPrefix(envErr.Error(), "tokenguard: ")}}})
	}
	return nil, c.joinErrors(append(errs, offErr))
}

// Check runs, without network I/O, the checks New runs beyond reading the
// file: the client key files load, the Redis URL is one its client
// accepts, the guard accepts every setting and every route's policy.
// LoadConfig and ParseConfig have already run them, with the file's own
// checks, and reported every mistake together; Check runs them again, for
// a Config kept while the files it names may have changed.
func (c *Config) Check() error { return c.c.scrubbed(c.c.checkOffline(nil)) }

// scrubbed rewrites the messages of err, from the offline checks, to show
// values that came from the environment as written, as the file's own
// checks do; err itself.
func (c *config) scrubbed(err error) error {
	var ce *ConfigError
	if c.scrub != nil && errors.As(err, &ce) {
		c.scrub(ce.Fields)
	}
	return err
}

// EffectiveYAML renders the configuration with every default filled in,
// as "tokenguard check" prints it. Secrets never appear: client secrets are
// replaced, a Redis URL's user information is hidden, a value that came
// from the environment is shown as written (${NAME}), and the nonce
// secrets are only counted. The output is itself a valid configuration,
// with the redacted secrets to be put back.
func (c *Config) EffectiveYAML() ([]byte, error) { return c.c.effectiveYAML() }

// loadConfig reads the configuration file at path, expands environment
// variables in its values with getenv (see expandEnv) and validates it.
func loadConfig(path string, getenv func(string) string) (*config, error) {
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
	c, err := parseConfigEnv(path, data, getenv)
	if c != nil {
		c.fromFile = true
	}
	return c, err
}

// noEnv is an empty environment.
func noEnv(string) string { return "" }

// parseConfig is parseConfigEnv with an empty environment.
func parseConfig(name string, data []byte) (*config, error) {
	return parseConfigEnv(name, data, noEnv)
}

// parseConfigEnv decodes data strictly, expands ${NAME} in its string
// values with getenv, and validates it. name is used in error messages
// only. With mistakes, it returns them with the config as far as it could
// be built (nil if the file is no YAML mapping), so that later checks can
// report theirs in the same run; such a config must not be served.
func parseConfigEnv(name string, data []byte, getenv func(string) string) (*config, error) {
	fail := func(errs []*FieldError) error {
		slices.SortStableFunc(errs, func(a, b *FieldError) int { return a.Line - b.Line })
		return &ConfigError{File: name, Fields: errs}
	}

	// Pass 1: the node tree, for syntax errors, unknown and duplicate keys
	// (named by their full path) and, later, line numbers.
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fail([]*FieldError{{Line: 1, Msg: "the file is empty"}})
		}
		return nil, fail(yamlErrors(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fail([]*FieldError{{Line: extra.Line, Msg: "more than one YAML document; the config is a single document"}})
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return nil, fail([]*FieldError{{Line: doc.Line, Msg: "the document must be a mapping of keys to values"}})
	}
	// From here every pass runs, whatever the one before found, so that
	// one run reports every mistake. A pass's error on a line an earlier
	// pass already reported is left out: it is the same mistake seen
	// again (an unknown key's value, a variable left unexpanded, a value
	// that did not decode).
	var all []*FieldError
	reported := map[int]bool{}
	collect := func(errs []*FieldError) {
		var add []*FieldError
		for _, e := range errs {
			if e.Line == 0 || !reported[e.Line] {
				add = append(add, e)
			}
		}
		for _, e := range add {
			reported[e.Line] = true
		}
		all = append(all, add...)
	}
	collect(checkKeys(doc, reflect.TypeFor[fileConfig](), ""))

	// Pass 2: environment variables, in the parsed values only, so that a
	// variable can never change the document's structure.
	x := newExpander(getenv)
	collect(x.expand(doc, reflect.TypeFor[fileConfig](), ""))

	// Pass 3: the typed struct, from the expanded tree (checkKeys has
	// already reported unknown keys, which the decoder ignores). A value
	// of the wrong type is reported; the others are decoded.
	var fc fileConfig
	if err := doc.Decode(&fc); err != nil {
		collect(yamlErrors(err))
	}

	c, errs := fc.validate(doc)
	collect(errs)
	c.File = name
	c.FromEnv = x.fromEnv
	c.scrub = x.scrub
	c.hash = sha256.Sum256(data)
	if len(all) > 0 {
		x.scrub(all) // the decoder and some checks quote values
		return c, fail(all)
	}
	return c, nil
}

// NewLogger returns a slog logger writing to w in the configured
// log_format (text or JSON) at the configured log_level.
func (c *Config) NewLogger(w io.Writer) *slog.Logger { return c.c.newLogger(w) }

func (c *config) newLogger(w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: lv}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
