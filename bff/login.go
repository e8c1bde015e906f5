package bff

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"golang.org/x/oauth2"
)

// pending is a started login, kept server-side under its state until the
// callback takes it (once).
type pending struct {
	Verifier string `json:"verifier"` // PKCE code_verifier
	Nonce    string `json:"nonce"`
	ReturnTo string `json:"return_to"`
	// Binding is the hash of the login cookie of the browser that
	// started the login: a callback from another browser does not match.
	Binding string `json:"binding"`
}

// maxStateLen bounds the state parameter a callback may carry; ours are
// 43 characters.
const maxStateLen = 64

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
	q := r.URL.Query()
	// One login cookie per browser, reused by every tab that starts a
	// login while it lives, so that logins in several tabs all complete.
	binding := ""
	for _, c := range r.CookiesNamed(LoginCookie) {
		if validID(c.Value) {
			binding = c.Value
			break
		}
	}
	if binding == "" {
		binding = randomToken()
	}
	state, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	p := pending{Verifier: verifier, Nonce: nonce, ReturnTo: SafeReturnTo(q.Get("return_to")), Binding: hashID(binding)}
	plain, _ := json.Marshal(p)
	key := pendingPrefix + hashID(state)
	if err := h.cfg.Store.Set(ctx, key, h.seal.seal(plain, key), LoginTimeout); err != nil {
		h.logErr(ctx, "bff: login: cannot store the pending login", err)
		h.metrics.logins.WithLabelValues(resultStore).Inc()
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable")
		return
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
	http.SetCookie(w, &http.Cookie{
		Name: LoginCookie, Value: binding, Path: "/", MaxAge: int(LoginTimeout / time.Second),
		// Lax, not Strict: the callback is a top-level navigation from
		// the authorization server, another site.
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
	w.Header().Set("Location", h.oauthConfig(md).AuthCodeURL(state, opts...))
	w.WriteHeader(http.StatusFound)
}

// callback is GET {path}/callback: it takes the pending login, exchanges
// the code, verifies the ID token and only then creates a session.
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
	binding := ""
	for _, c := range r.CookiesNamed(LoginCookie) {
		if validID(c.Value) {
			binding = c.Value
			break
		}
	}
	if state == "" || len(state) > maxStateLen || binding == "" {
		fail(http.StatusBadRequest, resultInvalidState, "invalid_request", errors.New("no state, or no login cookie (another browser, or the login expired)"))
		return
	}
	key := pendingPrefix + hashID(state)
	raw, err := h.cfg.Store.Take(ctx, key) // once, whatever follows
	if errors.Is(err, ErrNotFound) {
		fail(http.StatusBadRequest, resultInvalidState, "invalid_request", errors.New("unknown or used state"))
		return
	}
	if err != nil {
		fail(http.StatusServiceUnavailable, resultStore, "temporarily_unavailable", err)
		return
	}
	var p pending
	plain, err := h.seal.open(raw, key)
	if err == nil {
		err = json.Unmarshal(plain, &p)
	}
	if err != nil {
		fail(http.StatusBadRequest, resultInvalidState, "invalid_request", err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(p.Binding), []byte(hashID(binding))) != 1 {
		fail(http.StatusBadRequest, resultInvalidState, "invalid_request", errors.New("the callback comes from another browser than the login"))
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
	xctx, cancel := context.WithTimeout(h.oauthContext(ctx), defaultTimeout)
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
	idt, _ := tok.Extra("id_token").(string)
	now := h.cfg.Now()
	claims, err := h.verifyIDToken(ctx, md, idt, p.Nonce, now)
	if err != nil {
		fail(http.StatusBadRequest, resultIDToken, "invalid_id_token", err)
		return
	}
	if err := checkTokenSizes(tok.AccessToken, tok.RefreshToken); err != nil {
		fail(http.StatusBadGateway, resultExchange, "invalid_grant", err)
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
		IDToken: idt, Claims: claims,
	}
	// A new id at every login: a session id planted before the login
	// (fixation) is never the one that gets authenticated.
	id := randomToken()
	if err := h.saveSession(ctx, id, s); err != nil {
		fail(http.StatusServiceUnavailable, resultStore, "temporarily_unavailable", err)
		return
	}
	if old, ok := sessionID(r); ok {
		_ = h.cfg.Store.Delete(ctx, sessionKey(old))
	}
	h.metrics.logins.WithLabelValues(resultSuccess).Inc()
	setSessionCookie(w, id)
	redirect(w, p.ReturnTo)
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
