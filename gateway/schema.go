package gateway

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

	UpstreamTimeout                string  `yaml:"upstream_timeout"`
	UpstreamMaxResponseHeaderBytes int64   `yaml:"upstream_max_response_header_bytes"`
	BodyReadTimeout                string  `yaml:"body_read_timeout"`
	ResponseWriteTimeout           string  `yaml:"response_write_timeout"`
	UpstreamDialTimeout            string  `yaml:"upstream_dial_timeout"`
	MaxConcurrentRequests          int     `yaml:"max_concurrent_requests"`
	DrainDelay                     string  `yaml:"drain_delay"`
	ConfigReloadInterval           string  `yaml:"config_reload_interval"`
	TLS                            fileTLS `yaml:"tls"`

	InsecureAllowHTTP bool `yaml:"insecure_allow_http"`

	PathNormalization      string    `yaml:"path_normalization"`
	Upgrades               *[]string `yaml:"upgrades"` // nil: absent (the default); empty: refuse every upgrade
	AllowedHosts           []string  `yaml:"allowed_hosts"`
	AllowUnderscoreHeaders bool      `yaml:"allow_underscore_headers"`

	BFF *fileBFF `yaml:"bff"` // nil: no token handler

	// Behind another ingress (ingress.go).
	CORS           *fileCORS        `yaml:"cors"`         // nil: no CORS handling
	ForwardAuth    *fileForwardAuth `yaml:"forward_auth"` // nil: no forward-auth endpoint (unless the key is there with no value)
	TrustedProxies []string         `yaml:"trusted_proxies"`
	// ClientCertHeader names the RFC 9440 header (Client-Cert) in which a
	// trusted proxy reports its client's certificate (clientcert.go).
	ClientCertHeader string `yaml:"client_cert_header"`
}

// fileCORS is the cors block.
type fileCORS struct {
	AllowedOrigins []string  `yaml:"allowed_origins"`
	AllowedHeaders *[]string `yaml:"allowed_headers"` // nil: the default
	MaxAge         string    `yaml:"max_age"`
}

// fileForwardAuth is the forward_auth block.
type fileForwardAuth struct {
	Path string `yaml:"path"`
}

// fileBFF is the token handler (package bff).
type fileBFF struct {
	Issuer                 string   `yaml:"issuer"`
	ClientID               string   `yaml:"client_id"`
	ClientSecret           string   `yaml:"client_secret"`
	ClientSecretFile       string   `yaml:"client_secret_file"`
	ClientAuthMethod       string   `yaml:"client_auth_method"`
	ClientKeyFile          string   `yaml:"client_key_file"`
	ClientKeyID            string   `yaml:"client_key_id"`
	Scopes                 []string `yaml:"scopes"`
	Resource               string   `yaml:"resource"`
	Path                   string   `yaml:"path"`
	AllowedOrigins         []string `yaml:"allowed_origins"`
	PostLogoutRedirectURI  string   `yaml:"post_logout_redirect_uri"`
	SessionStore           string   `yaml:"session_store"`
	SessionStoreFile       string   `yaml:"session_store_file"`
	SessionKey             string   `yaml:"session_key"`
	SessionKeyFile         string   `yaml:"session_key_file"`
	PreviousSessionKey     string   `yaml:"previous_session_key"`
	PreviousSessionKeyFile string   `yaml:"previous_session_key_file"`
	SessionIdleTimeout     string   `yaml:"session_idle_timeout"`
	SessionLifetime        string   `yaml:"session_lifetime"`
	BackchannelLogout      bool     `yaml:"backchannel_logout"`
	PAR                    string   `yaml:"par"`  // auto (default) | required | off
	DPoP                   bool     `yaml:"dpop"` // needs dpop.mode allowed or required
}

type fileTLS struct {
	CertFile       string `yaml:"cert_file"`
	KeyFile        string `yaml:"key_file"`
	ReloadInterval string `yaml:"reload_interval"`
	ClientCerts    string `yaml:"client_certs"` // off (default) | request
}

type fileIssue struct {
	Issuer                string `yaml:"issuer"`
	JWKSURI               string `yaml:"jwks_uri"`
	IntrospectionEndpoint string `yaml:"introspection_endpoint"`
	ClientID              string `yaml:"client_id"`
	ClientSecret          string `yaml:"client_secret"`
	ClientSecretFile      string `yaml:"client_secret_file"`
	AllowLegacyTyp        bool   `yaml:"allow_legacy_typ"`
	ScpClaim              bool   `yaml:"scp_claim"`
	ClientAuthMethod      string `yaml:"client_auth_method"` // client_secret_basic (default), client_secret_post, private_key_jwt
	ClientKeyFile         string `yaml:"client_key_file"`    // PKCS#8 PEM key for private_key_jwt
	ClientKeyID           string `yaml:"client_key_id"`
	// IntrospectionCacheMaxAge bounds how long an active answer is reused.
	IntrospectionCacheMaxAge string `yaml:"introspection_cache_max_age"`
	// IntrospectionRateLimit bounds introspection requests per second.
	IntrospectionRateLimit float64 `yaml:"introspection_rate_limit"`
	// IntrospectionResponse is json (default) or jwt: RFC 9701 signed
	// answers, verified with the issuer's keys.
	IntrospectionResponse string `yaml:"introspection_response"`
}

type fileDPoP struct {
	Mode            string `yaml:"mode"`
	Nonce           bool   `yaml:"nonce"`
	ReplayStore     string `yaml:"replay_store"`
	ReplayStoreFile string `yaml:"replay_store_file"`
	ReplayKeyQuota  int    `yaml:"replay_key_quota"`
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
	Public              bool     `yaml:"public"` // no token needed
}
