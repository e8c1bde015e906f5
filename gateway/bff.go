package gateway

import (
	"encoding/base64"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/bff/redisstore"
	"github.com/tokenguard/tokenguard/internal/keyfile"
)

// validate checks the bff block against the rest of the file: its issuer
// is one of issuers, public_url is set (the redirect URI and the cookie
// need it), a shared store has a session key. bff.New has the last word.
func (fb *fileBFF) validate(c *config, pos positions, bad func(keyPos, string, ...any), dur func(key, v string, def time.Duration, allowZero bool) time.Duration) *bffConfig {
	if fb == nil {
		return nil
	}
	at := func(path ...any) keyPos { return pos.at(append([]any{"bff"}, path...)...) }
	bc := &bffConfig{
		Issuer: fb.Issuer, ClientID: fb.ClientID, ClientSecret: fb.ClientSecret,
		ClientAuthMethod: fb.ClientAuthMethod, ClientKeyFile: fb.ClientKeyFile, ClientKeyID: fb.ClientKeyID,
		Scopes: slices.Clone(fb.Scopes), Resource: fb.Resource, Path: fb.Path,
		AllowedOrigins: slices.Clone(fb.AllowedOrigins), PostLogoutRedirectURL: fb.PostLogoutRedirectURI,
		BackchannelLogout: fb.BackchannelLogout, DPoP: fb.DPoP, PAR: cmpOr(fb.PAR, bff.PARAuto),
		Line: at().Line,
	}
	if c.PublicURL == nil {
		bad(pos.at("public_url"), "required with bff: the redirect URI is public_url + bff.path + /callback")
	}
	if fb.Issuer == "" {
		bad(at("issuer"), "required (one of issuers[].issuer)")
	} else if !slices.ContainsFunc(c.Issuers, func(is issuerConfig) bool { return is.Issuer == fb.Issuer }) {
		bad(at("issuer"), "%q is not one of issuers[].issuer: the access tokens it gets must be ones the gateway accepts", fb.Issuer)
	}
	if fb.ClientID == "" {
		bad(at("client_id"), "required")
	}
	switch fb.ClientAuthMethod {
	case "", bff.ClientSecretBasic, bff.ClientSecretPost:
		if fb.ClientSecret == "" {
			bad(at("client_secret"), "required (or client_auth_method: private_key_jwt with client_key_file)")
		}
		if fb.ClientKeyFile != "" {
			bad(at("client_key_file"), "needs client_auth_method: private_key_jwt")
		}
	case bff.PrivateKeyJWT:
		if fb.ClientKeyFile == "" {
			bad(at("client_key_file"), "required with private_key_jwt")
		}
		if fb.ClientSecret != "" {
			bad(at("client_secret"), "must be empty with private_key_jwt")
		}
	default:
		bad(at("client_auth_method"), "%q is not one of client_secret_basic, client_secret_post, private_key_jwt", fb.ClientAuthMethod)
	}
	if !slices.Contains(fb.Scopes, "openid") {
		bad(at("scopes"), "must include openid: the ID token proves who logged in")
	}
	if bc.Resource == "" {
		bc.Resource = c.Audience
	}
	switch st := fb.SessionStore; {
	case st == "" || st == "memory":
	case isRedisURL(st):
		// The URL may carry a password: messages describe it, never quote it.
		if err := checkRedisURL(st); err != nil {
			bad(at("session_store"), "%v", err)
		} else {
			bc.SessionStore = st
		}
	default:
		bad(at("session_store"), "must be memory or a redis://, rediss://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster:// URL")
	}
	key := func(name, v string) []byte {
		if v == "" {
			return nil
		}
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			b, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(v, "="))
		}
		if err != nil || len(b) != bff.SessionKeySize {
			// Never quote it: it is a secret.
			bad(at(name), "must be %d random bytes in base64 (openssl rand -base64 32)", bff.SessionKeySize)
			return nil
		}
		return b
	}
	bc.SessionKey = key("session_key", fb.SessionKey)
	bc.PreviousSessionKey = key("previous_session_key", fb.PreviousSessionKey)
	if bc.SessionStore != "" && fb.SessionKey == "" {
		bad(at("session_key"), "required with a Redis session store: it encrypts the tokens Redis keeps")
	}
	if fb.PreviousSessionKey != "" && fb.SessionKey == "" {
		bad(at("previous_session_key"), "needs session_key")
	}
	switch bc.PAR {
	case bff.PARAuto, bff.PARRequired, bff.PAROff:
	default:
		bad(at("par"), "%q is not one of auto, required, off", fb.PAR)
	}
	if fb.DPoP && c.DPoPMode != "allowed" && c.DPoPMode != "required" {
		// The guard would refuse every session's DPoP-bound token.
		bad(at("dpop"), "needs dpop.mode: allowed or required: the gateway's own guard checks the proofs the token handler sends")
	}
	bc.SessionIdleTimeout = dur("bff.session_idle_timeout", fb.SessionIdleTimeout, bff.DefaultSessionIdleTimeout, false)
	bc.SessionLifetime = dur("bff.session_lifetime", fb.SessionLifetime, bff.DefaultSessionLifetime, false)
	// The token handler's endpoints come before every route: a route
	// under its path would never be reached.
	prefix := cmpOr(bc.Path, bff.DefaultPath)
	for i, r := range c.Routes {
		_, p, _ := strings.Cut(r.Pattern, " ")
		if p == "" {
			p = r.Pattern
		}
		if j := strings.IndexByte(p, '/'); j > 0 {
			p = p[j:] // a host pattern
		}
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			bad(pos.at("routes", i, "pattern"), "%q is under bff.path %s, whose endpoints are served before any route", r.Pattern, prefix)
		}
	}
	c.keys["BFF"] = at()
	return bc
}

// bffError places an error of the bff block at key ("" for the block).
func (c *config) bffError(key string, err error) error {
	p := keyPos{Key: "bff", Line: c.BFF.Line}
	if key != "" {
		p = c.keys["BFF"]
		p.Key = "bff." + key
	}
	return &ConfigError{File: c.File, Err: err, Fields: []*FieldError{{Line: p.Line, Key: p.Key, Msg: err.Error()}}}
}

// openSessionStore opens the Redis session store of the bff block; nil
// for the memory store. No I/O: Redis is asked at the first request.
func (c *config) openSessionStore() (*redisstore.Store, error) {
	if c.BFF == nil || c.BFF.SessionStore == "" {
		return nil, nil
	}
	s, err := redisstore.NewFromURL(c.BFF.SessionStore, redisstore.Options{})
	if err != nil {
		return nil, c.bffError("session_store", err) // redisstore never quotes the URL
	}
	return s, nil
}

// newBFF builds the token handler of the bff block on store (nil: a
// MemoryStore of its own); nil without a bff block. With a MemoryStore and
// no session_key, processKey (when set) seals the sessions and login
// cookies instead of a key of the handler's own, so that a handler built
// by a reload opens what the one before it wrote. With bff.dpop and
// dpop.nonce, nonce gives the proofs the token handler makes the nonce
// the guard expects (nil: no nonce). No I/O: the issuer's metadata is
// read at the first login.
func (c *config) newBFF(log *slog.Logger, reg prometheus.Registerer, store bff.Store, processKey []byte, nonce func() string) (*bff.Handler, error) {
	bc := c.BFF
	if bc == nil {
		return nil, nil
	}
	cfg := bff.Config{
		Issuer: bc.Issuer, ClientID: bc.ClientID, ClientSecret: bc.ClientSecret,
		ClientAuthMethod: bc.ClientAuthMethod, ClientKeyID: bc.ClientKeyID,
		Scopes: bc.Scopes, Resource: bc.Resource,
		PublicURL: strings.TrimSuffix(c.PublicURL.String(), "/"), Path: bc.Path,
		AllowedOrigins: bc.AllowedOrigins, PostLogoutRedirectURL: bc.PostLogoutRedirectURL,
		SessionKey: bc.SessionKey, PreviousSessionKey: bc.PreviousSessionKey,
		SessionIdleTimeout: bc.SessionIdleTimeout, SessionLifetime: bc.SessionLifetime,
		BackchannelLogout: bc.BackchannelLogout, PAR: bc.PAR, DPoP: bc.DPoP,
		InsecureAllowHTTP: c.InsecureAllowHTTP,
		Logger:            log, Registerer: reg, Store: store,
		OnDeny: func(r *http.Request, code string) {
			if rec := recordFrom(r.Context()); rec != nil {
				rec.rejected = code
			}
		},
		OnBackchannelLogout: func(r *http.Request, result string, sessions int) {
			if rec := recordFrom(r.Context()); rec != nil {
				rec.backchannel, rec.backchannelSessions = result, sessions
			}
		},
	}
	if _, mem := store.(*bff.MemoryStore); mem && processKey != nil {
		switch {
		case cfg.SessionKey == nil:
			cfg.SessionKey = processKey
		case cfg.PreviousSessionKey == nil:
			// session_key added by a reload: what the process key
			// sealed still opens, and is sealed again under the new key.
			cfg.PreviousSessionKey = processKey
		}
	}
	if bc.DPoP && c.DPoPNonce {
		cfg.DPoPNonce = nonce
	}
	if bc.ClientKeyFile != "" {
		key, err := keyfile.ReadPrivateKey(bc.ClientKeyFile)
		if err != nil {
			return nil, c.bffError("client_key_file", err)
		}
		cfg.ClientKey = key
	}
	h, err := bff.New(cfg)
	if err != nil {
		return nil, c.bffError("", err)
	}
	return h, nil
}
