package bff

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// pending is a started login. It lives in the browser that started it,
// in a login cookie of its own (one per login, so logins in several tabs
// all complete), sealed with AES-256-GCM under a key only the handler
// has and bound to the login's state: nothing is stored server-side
// before the authorization server has authenticated the user, so
// anonymous requests to /login cannot fill the store.
type pending struct {
	Verifier string `json:"v"` // PKCE code_verifier
	Nonce    string `json:"n"`
	ReturnTo string `json:"r"`
	// Old is the store key suffix of the session the browser had when it
	// started the login (its cookie is SameSite=Strict, so it is sent to
	// /login but not to the cross-site callback); that session ends when
	// the new one begins.
	Old     string `json:"o,omitempty"`
	Expires int64  `json:"e"`
	// JKT is the thumbprint of the login's DPoP key, sent as dpop_jkt
	// (Config.DPoP): public, it only tells the callback which key to
	// derive again. The key itself is never in the cookie.
	JKT string `json:"k,omitempty"`
}

// maxStateLen bounds the state parameter a callback may carry; ours are
// 43 characters.
const maxStateLen = 64

// maxLoginCookie bounds a login cookie's value: browsers keep about 4 KiB
// per cookie.
const maxLoginCookie = 3800

// loginCookieName names the login cookie of the login with this state.
func loginCookieName(state string) string {
	return LoginCookiePrefix + hashID(state)[:16]
}

// loginAAD binds a sealed pending login to its state.
func loginAAD(state string) string { return "login/" + state }

// login is GET {path}/login: it starts the authorization code flow.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	md, err := h.endpoints(ctx)
	if err != nil {
		h.logErr(ctx, "bff: login: the issuer's metadata is unavailable", err)
		h.metrics.logins.WithLabelValues(resultUnavailable).Inc()
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable")
		return
	}
	par, err := h.usePAR(md)
	if err == nil && h.cfg.DPoP && len(md.DPoPSigningAlgs) > 0 && !slices.Contains(md.DPoPSigningAlgs, dpopAlg) {
		err = errors.New("bff: DPoP is on but the issuer's dpop_signing_alg_values_supported does not list ES256")
	}
	if err != nil {
		h.logErr(ctx, "bff: login refused", err)
		h.metrics.logins.WithLabelValues(resultUnavailable).Inc()
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable")
		return
	}
	q := r.URL.Query()
	now := h.cfg.Now()
	state, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	p := pending{
		Verifier: verifier, Nonce: nonce, ReturnTo: SafeReturnTo(q.Get("return_to")),
		Expires: now.Add(LoginTimeout).Unix(),
	}
	if id, ok := sessionID(r); ok {
		p.Old = hashID(id)
	}
	opts := []oauth2.AuthCodeOption{
		oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("nonce", nonce),
	}
	if h.cfg.Resource != "" {
		opts = append(opts, oauth2.SetAuthURLParam("resource", h.cfg.Resource))
	}
	switch prompt := q.Get("prompt"); prompt {
	case "none", "login", "consent", "select_account":
		opts = append(opts, oauth2.SetAuthURLParam("prompt", prompt))
	}
	if h.cfg.DPoP {
		// RFC 9449 §10: the code is bound to the key the session's
		// tokens will be bound to. The key is derived again at the
		// callback; only its thumbprint is kept meanwhile.
		_, jkt, err := h.loginDPoPKey(state)
		if err != nil {
			h.logErr(ctx, "bff: login refused", err)
			h.metrics.logins.WithLabelValues(resultUnavailable).Inc()
			writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable")
			return
		}
		p.JKT = jkt
		opts = append(opts, oauth2.SetAuthURLParam("dpop_jkt", jkt))
	}
	plain, _ := json.Marshal(p)
	value := base64.RawURLEncoding.EncodeToString(h.loginSeal.seal(plain, loginAAD(state)))
	if len(value) > maxLoginCookie {
		writeError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	oc := h.oauthConfig(md)
	location := oc.AuthCodeURL(state, opts...)
	if par {
		// RFC 9126: every parameter goes to the server directly; the
		// browser carries only client_id and the request_uri.
		oc.Endpoint.AuthURL = ""
		params, err := url.ParseQuery(strings.TrimPrefix(oc.AuthCodeURL(state, opts...), "?"))
		var uri string
		if err == nil {
			uri, err = h.pushAuthorization(ctx, md.PAREndpoint, params)
		}
		if err != nil {
			h.logErr(ctx, "bff: login refused: the authorization request could not be pushed", err)
			h.metrics.logins.WithLabelValues(resultUnavailable).Inc()
			if errors.Is(err, errPARUnavailable) {
				writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable")
			} else {
				writeError(w, http.StatusBadGateway, "server_error")
			}
			return
		}
		location = withQuery(md.AuthorizationEndpoint, url.Values{"client_id": {h.cfg.ClientID}, "request_uri": {uri}})
	}
	http.SetCookie(w, &http.Cookie{
		Name: loginCookieName(state), Value: value, Path: "/", MaxAge: int(LoginTimeout / time.Second),
		// Lax, not Strict: the callback is a top-level navigation from
		// the authorization server, another site.
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
	w.Header().Set("Location", location)
	w.WriteHeader(http.StatusFound)
}

// callback is GET {path}/callback: it opens the login's cookie, exchanges
// the code, verifies the ID token, marks the login used and only then
// creates a session.
func (h *Handler) callback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	fail := func(status int, result, code string, err error) {
		if err != nil {
			h.logErr(ctx, "bff: callback refused", err, "result", result)
		}
		h.metrics.logins.WithLabelValues(result).Inc()
		writeError(w, status, code)
	}
	state := q.Get("state")
	if state == "" || len(state) > maxStateLen {
		fail(http.StatusBadRequest, resultInvalidState, "invalid_request", errors.New("no state"))
		return
	}
	name := loginCookieName(state)
	var raw string
	for _, c := range r.CookiesNamed(name) {
		raw = c.Value
	}
	if raw == "" {
		fail(http.StatusBadRequest, resultInvalidState, "invalid_request", errors.New("no login cookie for this state (another browser, or the login expired)"))
		return
	}
	// Whatever follows, this login is over for this browser.
	expireCookie(w, name, http.SameSiteLaxMode)
	var p pending
	sealed, err := base64.RawURLEncoding.DecodeString(raw)
	if err == nil {
		var plain []byte
		if plain, err = h.loginSeal.open(sealed, loginAAD(state)); err == nil {
			err = json.Unmarshal(plain, &p)
		}
	}
	now := h.cfg.Now()
	if err == nil && now.Unix() >= p.Expires {
		err = errors.New("the login expired")
	}
	if err != nil {
		fail(http.StatusBadRequest, resultInvalidState, "invalid_request", err)
		return
	}
	// RFC 9207: an iss parameter names the server that answered; another
	// one is a mix-up attack.
	if iss, ok := q["iss"]; ok && (len(iss) != 1 || iss[0] != h.cfg.Issuer) {
		fail(http.StatusBadRequest, resultInvalidState, "invalid_request", errors.New("the callback's iss is not the issuer"))
		return
	}
	if q.Get("error") != "" {
		// The user declined, or prompt=none found no session at the
		// provider: back to the app, without a session.
		h.metrics.logins.WithLabelValues(resultDenied).Inc()
		redirect(w, p.ReturnTo)
		return
	}
	code := q.Get("code")
	if code == "" || len(code) > MaxTokenSize {
		fail(http.StatusBadRequest, resultInvalidState, "invalid_request", errors.New("the callback has no code"))
		return
	}
	md, err := h.endpoints(ctx)
	if err != nil {
		fail(http.StatusServiceUnavailable, resultUnavailable, "temporarily_unavailable", err)
		return
	}
	opts := []oauth2.AuthCodeOption{oauth2.VerifierOption(p.Verifier)}
	if h.cfg.Resource != "" {
		opts = append(opts, oauth2.SetAuthURLParam("resource", h.cfg.Resource))
	}
	// A login started with DPoP finishes with it (its code is bound to
	// the key), even if DPoP was turned off meanwhile.
	var key *ecdsa.PrivateKey
	if h.cfg.DPoP || p.JKT != "" {
		if key, err = h.callbackDPoPKey(state, p.JKT); err != nil {
			fail(http.StatusBadRequest, resultInvalidState, "invalid_request", err)
			return
		}
	}
	xctx, cancel := context.WithTimeout(withDPoPKey(h.oauthContext(ctx), key), defaultTimeout)
	defer cancel()
	tok, err := h.oauthConfig(md).Exchange(xctx, code, opts...)
	if err != nil {
		if _, refused := errors.AsType[*oauth2.RetrieveError](err); refused {
			fail(http.StatusBadRequest, resultExchange, "invalid_grant", err)
		} else {
			fail(http.StatusServiceUnavailable, resultUnavailable, "temporarily_unavailable", err)
		}
		return
	}
	var keyBytes []byte
	if key != nil {
		if err := checkDPoPTokenType(tok.TokenType); err != nil {
			h.revokeRefused(ctx, tok.RefreshToken)
			fail(http.StatusBadGateway, resultExchange, "invalid_grant", err)
			return
		}
		if keyBytes, err = key.Bytes(); err != nil {
			fail(http.StatusServiceUnavailable, resultUnavailable, "temporarily_unavailable", err)
			return
		}
	}
	idt, _ := tok.Extra("id_token").(string)
	claims, err := h.verifyIDToken(ctx, md, idt, p.Nonce, now)
	if err != nil {
		fail(http.StatusBadRequest, resultIDToken, "invalid_id_token", err)
		return
	}
	if err := checkTokenSizes(tok.AccessToken, tok.RefreshToken); err != nil {
		fail(http.StatusBadGateway, resultExchange, "invalid_grant", err)
		return
	}
	// A login completes once, even if its cookie and code were captured
	// and replayed to an authorization server that let a code be used
	// twice. The marker is written only now, after the authorization
	// server has authenticated the user, so it cannot be flooded.
	used, err := h.cfg.Store.Lock(ctx, usedPrefix+hashID(state), LoginTimeout)
	switch {
	case err != nil:
		fail(http.StatusServiceUnavailable, resultStore, "temporarily_unavailable", err)
		return
	case used == "":
		fail(http.StatusBadRequest, resultInvalidState, "invalid_request", errors.New("this login has completed already"))
		return
	}
	if tok.RefreshToken == "" && slices.Contains(h.cfg.Scopes, "offline_access") {
		// Spec-strict providers drop offline_access unless the login had
		// prompt=consent (OpenID Connect Core §11): without a refresh
		// token the session ends with its access token.
		h.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "bff: offline_access was asked for but the authorization server gave no refresh token; the session ends when its access token expires (the provider may need prompt=consent: /bff/login?prompt=consent, or a policy for this client)")
	}
	s := &session{
		Created: now.Unix(), LastUsed: now.Unix(), Expires: now.Add(h.cfg.SessionLifetime).Unix(),
		AccessToken: tok.AccessToken, AccessExpiry: accessExpiry(tok), AccessIssued: now.Unix(), RefreshToken: tok.RefreshToken,
		IDToken: idt, Claims: claims, DPoPKey: keyBytes,
	}
	// A new id at every login: a session id planted before the login
	// (fixation) is never the one that gets authenticated.
	id := randomToken()
	if h.cfg.BackchannelLogout {
		// Before the session exists, so that it never exists where a
		// back-channel logout cannot find it.
		if err := h.index(ctx, hashID(id), claims); err != nil {
			fail(http.StatusServiceUnavailable, resultStore, "temporarily_unavailable", err)
			return
		}
	}
	if err := h.saveSession(ctx, id, s); err != nil {
		fail(http.StatusServiceUnavailable, resultStore, "temporarily_unavailable", err)
		return
	}
	if h.cfg.BackchannelLogout {
		// A back-channel logout of this sid that read the index before
		// the session was saved could not end it: its marker says so.
		if _, sid := sessionIdentity(claims); sid != "" {
			switch at, err := h.cfg.Store.Get(ctx, h.sidEndedKey(sid)); {
			case err == nil && loggedOutSince(at, p.Expires-int64(LoginTimeout/time.Second)):
				h.endSession(ctx, sessionKey(id))
				h.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "bff: login ended by a back-channel logout that arrived while it completed")
				h.metrics.logins.WithLabelValues(resultDenied).Inc()
				redirect(w, p.ReturnTo)
				return
			case err != nil && !errors.Is(err, ErrNotFound):
				h.endSession(ctx, sessionKey(id))
				fail(http.StatusServiceUnavailable, resultStore, "temporarily_unavailable", err)
				return
			}
		}
	}
	// The session this browser had before ends, refresh token and all.
	if p.Old != "" {
		h.endSession(ctx, sessionPrefix+p.Old)
	}
	if old, ok := sessionID(r); ok {
		h.endSession(ctx, sessionKey(old))
	}
	h.metrics.logins.WithLabelValues(resultSuccess).Inc()
	setSessionCookie(w, id)
	redirect(w, p.ReturnTo)
}

// endSession deletes the session under store key key and revokes its
// refresh token, best effort: a session replaced by a new login.
func (h *Handler) endSession(ctx context.Context, key string) {
	raw, err := h.cfg.Store.Get(ctx, key)
	if err != nil {
		return
	}
	_ = h.cfg.Store.Delete(ctx, key)
	plain, err := h.seal.open(raw, key)
	var s session
	if err != nil || s.unmarshal(plain) != nil {
		return
	}
	h.unindex(ctx, strings.TrimPrefix(key, sessionPrefix), s.Claims)
	if s.RefreshToken == "" {
		return
	}
	if md, err := h.endpoints(ctx); err == nil && md.RevocationEndpoint != "" {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultTimeout)
		defer cancel()
		if err := h.revoke(rctx, md.RevocationEndpoint, s.RefreshToken); err != nil {
			h.logErr(ctx, "bff: revoking the refresh token of a replaced session", err)
		}
	}
}

// oauthContext makes x/oauth2 use the handler's client, bounded by ctx.
func (h *Handler) oauthContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, h.client)
}

// redirect answers 302 to a path SafeReturnTo has checked, as it is:
// http.Redirect would clean and re-resolve it.
func redirect(w http.ResponseWriter, to string) {
	w.Header().Set("Location", to)
	w.WriteHeader(http.StatusFound)
}

// accessExpiry is when the access token expires, in Unix seconds; 0 when
// neither expires_in nor the token itself says.
func accessExpiry(tok *oauth2.Token) int64 {
	if !tok.Expiry.IsZero() {
		return tok.Expiry.Unix()
	}
	return jwtExpiry(tok.AccessToken)
}

func checkTokenSizes(tokens ...string) error {
	for _, t := range tokens {
		if len(t) > MaxTokenSize {
			return errors.New("bff: the authorization server returned a token larger than MaxTokenSize")
		}
	}
	return nil
}

// maxReturnTo bounds return_to.
const maxReturnTo = 2048

// SafeReturnTo returns s when it is a path on this origin that every
// browser reads the same way, and "/" otherwise: an absolute URL, a
// scheme, "//host" and "/\host" (which browsers read as another host),
// their percent-encoded and tab- or newline-split forms, and anything
// outside printable ASCII all end at "/". It is what the login's
// return_to becomes.
func SafeReturnTo(s string) string {
	if len(s) == 0 || len(s) > maxReturnTo || s[0] != '/' {
		return "/"
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c <= 0x20 || c >= 0x7f, c == '\\', c == '"', c == '<', c == '>', c == '`', c == '{', c == '}', c == '|', c == '^':
			return "/"
		}
	}
	if len(s) > 1 && (s[1] == '/') {
		return "/"
	}
	// Decoded once or twice, it must still be a path on this origin: an
	// upstream or a router that decodes must not see "//host" or "/\".
	dec := s
	for range 2 {
		d, err := url.PathUnescape(dec)
		if err != nil {
			return "/"
		}
		if len(d) > 1 && (d[1] == '/' || d[1] == '\\') {
			return "/"
		}
		for i := 0; i < len(d); i++ {
			if c := d[i]; c < 0x20 || c == 0x7f || c == '\\' {
				return "/"
			}
		}
		dec = d
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return s
}

// loggedOutSince reports whether a sid-ended marker's value (the logout's
// Unix time) is no earlier than started, the Unix time a login began: a
// login that began after the provider's logout of that sid is not ended
// by it (a provider that reuses a sid for a new session).
func loggedOutSince(marker []byte, started int64) bool {
	at, err := strconv.ParseInt(string(marker), 10, 64)
	return err != nil || at >= started // unreadable: end it, to be safe
}
