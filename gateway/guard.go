package gateway

import (
	"log/slog"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenguard/tokenguard/internal/netutil"
	"github.com/tokenguard/tokenguard/middleware"
)

// guardConfig converts the gateway configuration for middleware.New. Every
// setting is passed through, including those middleware does not support
// yet, so that New refuses them rather than the gateway ignoring them.
func (c *config) guardConfig(log *slog.Logger, reg prometheus.Registerer) middleware.Config {
	mc := middleware.Config{
		Audience:          c.Audience,
		PublicURL:         c.publicURL(),
		Leeway:            c.Leeway,
		MaxTokenSize:      c.MaxTokenSize,
		Realm:             c.Realm,
		StartupWait:       c.StartupWait,
		InsecureAllowHTTP: c.InsecureAllowHTTP,
		Logger:            denialsToAccessLog(log), // one line per denied request: the access line
		Registerer:        reg,
		OnDecision:        onDecision,
		// The gateway serves the metadata document on listen
		// (newProxyHandler), so its challenges point to it.
		AdvertiseResourceMetadata: true,
		// RFC 9728: clients' certificates are asked for (tls.client_certs)
		// or reported by a trusted proxy (client_cert_header).
		TLSClientCertificateBoundAccessTokens: c.requestsClientCerts(),

		JWKSMinRefreshInterval: c.JWKSMinRefreshInterval,
		JWKSMaxRefreshInterval: c.JWKSMaxRefreshInterval,
		JWKSRefreshRateLimit:   c.JWKSRefreshRateLimit,
	}
	switch c.DPoPMode {
	case "allowed":
		mc.DPoP.Mode = middleware.DPoPAllowed
	case "required":
		mc.DPoP.Mode = middleware.DPoPRequired
	default:
		mc.DPoP.Mode = middleware.DPoPDisabled
	}
	// RFC 9728: the audience is the resource identifier when the
	// middleware would take it as one (https, or http to loopback or with
	// insecure_allow_http; no query); otherwise the public URL is.
	if !resourceURL(c.Audience, c.InsecureAllowHTTP) {
		mc.Resource = c.publicURL()
	}
	mc.DPoP.Nonce = c.DPoPNonce
	mc.DPoP.NonceSecrets = slices.Clone(c.NonceSecrets)
	// DPoP.ReplayStore: the gateway sets it (generation.go), in memory or
	// Redis, and with it the key quota; check leaves it to the guard.
	for _, is := range c.Issuers {
		mc.Issuers = append(mc.Issuers, middleware.Issuer{
			Issuer:                is.Issuer,
			JWKSURI:               is.JWKSURI,
			IntrospectionEndpoint: is.IntrospectionEndpoint,
			ClientID:              is.ClientID,
			ClientSecret:          is.ClientSecret,
			AllowLegacyTyp:        is.AllowLegacyTyp,
			ScpClaim:              is.ScpClaim,
			// IntrospectionKey is read from ClientKeyFile by startGateway.
			IntrospectionAuthMethod:  is.ClientAuthMethod,
			IntrospectionKeyID:       is.ClientKeyID,
			IntrospectionCacheMaxAge: is.IntrospectionCacheMaxAge,
			IntrospectionRateLimit:   is.IntrospectionRateLimit,
			IntrospectionResponse:    is.IntrospectionResponse,
		})
	}
	return mc
}

// resourceURL reports whether s is a URL middleware.Config accepts as a
// resource identifier.
func resourceURL(s string, insecure bool) bool {
	u, err := checkURL(s, false)
	if err != nil {
		return false
	}
	return netutil.AllowedScheme(u, insecure)
}

// replayStoreError reports a replay_store URL the Redis client refuses,
// at its line. The message never includes the URL, which may hold a
// password.
func (c *config) replayStoreError(err error) error {
	p, _ := c.keyFor("DPoP.ReplayStore")
	msg := strings.TrimPrefix(err.Error(), "redisstore: ")
	return &ConfigError{File: c.File, Err: err, Fields: []*FieldError{{Line: p.Line, Key: p.Key, Msg: msg}}}
}

// logDPoPNotes warns about DPoP settings that work but may not be what an
// operator running several replicas wants, or that trust the client more
// than it may expect.
func (c *config) logDPoPNotes(log *slog.Logger) {
	if c.DPoPMode != "disabled" && c.PublicURL == nil {
		msg := "dpop is on and public_url is unset: a proof's htu is checked against a URL built from the client's Host header"
		if len(c.AllowedHosts) == 0 {
			log.Warn(msg+", and allowed_hosts is unset, so any Host is believed; set public_url to the URL clients call", "dpop", c.DPoPMode)
		} else {
			log.Warn(msg+" (one of allowed_hosts); set public_url to the URL clients call", "dpop", c.DPoPMode)
		}
	}
	switch {
	case c.DPoPNonce && len(c.NonceSecrets) == 0:
		log.Warn("dpop.nonce is on without "+NonceSecretsEnv+": nonces are made with a random per-process key, "+
			"so replicas do not accept each other's nonces and a restart invalidates those issued; "+
			"set it to the same secrets on every replica", "env", NonceSecretsEnv)
	case !c.DPoPNonce && len(c.NonceSecrets) > 0:
		log.Warn(NonceSecretsEnv+" is set but dpop.nonce is off; the secrets are not used", "env", NonceSecretsEnv)
	}
}

// publicURL is PublicURL as middleware.Config wants it: "" when unset.
func (c *config) publicURL() string {
	if c.PublicURL == nil {
		return ""
	}
	return c.PublicURL.String()
}

// middlewareField matches the "middleware: Field: message" form of New's
// errors.
var middlewareField = regexp.MustCompile(`^middleware: ([A-Za-z.]+(?:\[\d+\])?(?:\.[A-Za-z]+)?): (.*)$`)

// goNames are Go names in middleware messages and what a YAML user knows
// them as.
var goNames = strings.NewReplacer(
	"InsecureAllowHTTP", "insecure_allow_http",
	"DPoPDisabled", "disabled",
	"DPoPAllowed", "allowed",
	"DPoPRequired", "required",
	"PublicURL", "public_url",
	"IntrospectionEndpoint", "introspection_endpoint",
	"ClientID", "client_id",
)

var goIssuerIndex = regexp.MustCompile(`\bIssuers\[(\d+)\]`)

// guardError maps middleware.New's errors back to YAML keys and lines.
// Errors it cannot place are kept as they are; the original error stays
// reachable with errors.Is/As.
func (c *config) guardError(err error) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	ce := &ConfigError{File: c.File, Err: err}
	for _, e := range errs {
		msg := e.Error()
		if m := middlewareField.FindStringSubmatch(msg); m != nil {
			if p, ok := c.keyFor(m[1]); ok {
				text := goIssuerIndex.ReplaceAllString(goNames.Replace(m[2]), "issuers[$1]")
				ce.Fields = append(ce.Fields, &FieldError{Line: p.Line, Key: p.Key, Msg: text})
				continue
			}
		}
		ce.Fields = append(ce.Fields, &FieldError{Msg: msg})
	}
	slices.SortStableFunc(ce.Fields, func(a, b *FieldError) int { return a.Line - b.Line })
	return ce
}
