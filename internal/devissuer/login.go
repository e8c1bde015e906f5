package devissuer

import (
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/clientauth"
)

// Client is a confidential client registered for the authorization code
// flow (EnableLogin).
type Client struct {
	ID, Secret             string
	RedirectURIs           []string // exact matches only
	PostLogoutRedirectURIs []string
	// PublicKey, when set, authenticates the client with private_key_jwt
	// (RFC 7523 client assertions signed with ES256).
	PublicKey crypto.PublicKey
}

// LoginConfig makes the issuer an OpenID Connect provider for the
// authorization code flow with PKCE (S256 only), for development and
// tests: the "user" is always logged in, without a prompt.
type LoginConfig struct {
	Clients []Client
	// Subject is the user every login logs in; "" means "demo-user".
	Subject string
	// Claims are added to every ID token (name, email, ...).
	Claims map[string]any
	// AccessTokenTTL is the lifetime of access tokens it issues; 0 means
	// an hour.
	AccessTokenTTL time.Duration
	// LoginRequired makes prompt=none answer login_required, as when the
	// user has no session at the provider.
	LoginRequired bool
	// PAR serves POST /par (RFC 9126 pushed authorization requests) and
	// advertises it; RequirePAR (which implies PAR) also advertises
	// require_pushed_authorization_requests and refuses authorization
	// requests that were not pushed.
	PAR, RequirePAR bool
}

// DPoP at the token endpoint (RFC 9449), always on after EnableLogin: a
// token request with a DPoP header must carry a valid proof (checked with
// package dpop) and gets a token bound to its key (cnf.jkt, token_type
// DPoP); a code whose authorization request had dpop_jkt, and the
// refresh tokens it leads to, need a proof by that key. Without a DPoP
// header nothing changes. SetDPoPNonce makes the endpoint demand nonces.
const (
	// NonceOff: no nonce is demanded (the default).
	NonceOff = iota
	// NonceRequired: a proof must carry the issuer's current nonce; one
	// without gets 400 use_dpop_nonce and a DPoP-Nonce header.
	NonceRequired
	// NonceAlways: every proved token request gets 400 use_dpop_nonce
	// with a fresh nonce, whatever it carries: a misbehaving server.
	NonceAlways
)

// login is the issuer's authorization-code state.
type login struct {
	cfg LoginConfig

	mu      sync.Mutex                 // guards the maps
	codes   map[string]*grant          // by code, single use
	pushed  map[string]*pushedRequest  // by request_uri, single use
	refresh map[string]*grant          // by refresh token; a rotated or revoked one is deleted
	revoked map[string]bool            // refresh tokens revoked (RFC 7009) or rotated away
	sids    map[string]map[string]bool // sid -> refresh tokens, for back-channel logout tests

	codeGrants, refreshGrants, revocations, pushes atomic.Int64

	dpopNonce  int // NonceOff, NonceRequired, NonceAlways; guarded by mu
	nonces     *dpop.Nonces
	proofs     *dpop.Verifier // demands nonces
	noNonce    *dpop.Verifier // does not
	nonceDemds atomic.Int64
}

// pushedRequest is an authorization request pushed to /par.
type pushedRequest struct {
	client  string
	params  url.Values
	expires time.Time
}

// grant is what a code or a refresh token stands for.
type grant struct {
	client, redirectURI, scope, resource, nonce, challenge, sid string
	jkt                                                         string // dpop_jkt, or the key of the first proof
	authTime                                                    int64
	expires                                                     time.Time
}

// EnableLogin turns on /authorize, the authorization_code and
// refresh_token grants at /token, /revoke and /logout, and advertises
// them in the metadata.
func (is *Issuer) EnableLogin(cfg LoginConfig) {
	if cfg.Subject == "" {
		cfg.Subject = "demo-user"
	}
	if cfg.AccessTokenTTL == 0 {
		cfg.AccessTokenTTL = time.Hour
	}
	if cfg.RequirePAR {
		cfg.PAR = true
	}
	nonces, _ := dpop.NewNonces(nil, 0)
	store, _ := dpop.NewMemoryReplayStore(1 << 12)
	proofs, _ := dpop.NewVerifier(dpop.Config{ReplayStore: store, Nonces: nonces})
	noNonce, _ := dpop.NewVerifier(dpop.Config{ReplayStore: store})
	is.mu.Lock()
	is.login = &login{
		cfg: cfg, codes: map[string]*grant{}, refresh: map[string]*grant{},
		revoked: map[string]bool{}, sids: map[string]map[string]bool{}, pushed: map[string]*pushedRequest{},
		nonces: nonces, proofs: proofs, noNonce: noNonce,
	}
	is.mu.Unlock()
}

// SetDPoPNonce sets how the token endpoint demands DPoP nonces: NonceOff,
// NonceRequired or NonceAlways.
func (is *Issuer) SetDPoPNonce(mode int) {
	if l := is.loginState(); l != nil {
		l.mu.Lock()
		l.dpopNonce = mode
		l.mu.Unlock()
	}
}

// Pushes reports how many authorization requests were pushed to /par and
// accepted.
func (is *Issuer) Pushes() int64 {
	if l := is.loginState(); l != nil {
		return l.pushes.Load()
	}
	return 0
}

// NonceDemands reports how many token requests were answered
// use_dpop_nonce.
func (is *Issuer) NonceDemands() int64 {
	if l := is.loginState(); l != nil {
		return l.nonceDemds.Load()
	}
	return 0
}

// SetAccessTokenTTL changes the lifetime of the access tokens the login
// grants issue from now on.
func (is *Issuer) SetAccessTokenTTL(d time.Duration) {
	if l := is.loginState(); l != nil {
		l.mu.Lock()
		l.cfg.AccessTokenTTL = d
		l.mu.Unlock()
	}
}

// SetLoginRequired makes prompt=none fail with login_required (or not).
func (is *Issuer) SetLoginRequired(v bool) {
	if l := is.loginState(); l != nil {
		l.mu.Lock()
		l.cfg.LoginRequired = v
		l.mu.Unlock()
	}
}

// Grants reports how many authorization_code and refresh_token grants
// succeeded, and how many tokens were revoked at /revoke.
func (is *Issuer) Grants() (code, refresh, revocations int64) {
	l := is.loginState()
	if l == nil {
		return 0, 0, 0
	}
	return l.codeGrants.Load(), l.refreshGrants.Load(), l.revocations.Load()
}

// RefreshTokenActive reports whether a refresh token may still be used.
func (is *Issuer) RefreshTokenActive(tok string) bool {
	l := is.loginState()
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.refresh[tok]
	return ok && !l.revoked[tok]
}

// SIDOfCode returns the sid the ID token of an authorization code's
// grant will carry, "" for an unknown code: for tests of a back-channel
// logout that arrives while a login completes.
func (is *Issuer) SIDOfCode(code string) string {
	l := is.loginState()
	if l == nil {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if g := l.codes[code]; g != nil {
		return g.sid
	}
	return ""
}

func (is *Issuer) loginState() *login {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.login
}

func (l *login) client(id string) *Client {
	for i := range l.cfg.Clients {
		if l.cfg.Clients[i].ID == id {
			return &l.cfg.Clients[i]
		}
	}
	return nil
}

// authenticate checks client_secret_basic, client_secret_post or
// private_key_jwt.
func (l *login) authenticate(r *http.Request) *Client {
	if a := r.PostFormValue("client_assertion"); a != "" {
		return l.assertion(r, a)
	}
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	c := l.client(id)
	if c == nil || subtle.ConstantTimeCompare([]byte(c.Secret), []byte(secret)) != 1 {
		return nil
	}
	return c
}

// assertion checks a private_key_jwt client assertion: signed by the
// client's key, iss = sub = client_id, unexpired, used once.
func (l *login) assertion(r *http.Request, a string) *Client {
	c := l.client(r.PostFormValue("client_id"))
	if c == nil || c.PublicKey == nil || r.PostFormValue("client_assertion_type") != clientauth.AssertionType {
		return nil
	}
	payload, err := jws.Verify([]byte(a), jws.WithKey(jwa.ES256(), c.PublicKey))
	if err != nil {
		return nil
	}
	var claims struct {
		Iss, Sub, Jti string
		Exp           int64
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Iss != c.ID || claims.Sub != c.ID ||
		claims.Jti == "" || time.Now().Unix() >= claims.Exp {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.revoked["jti:"+claims.Jti] {
		return nil
	}
	l.revoked["jti:"+claims.Jti] = true
	return c
}

// authorize is GET /authorize: the user is always logged in.
func (is *Issuer) authorize(w http.ResponseWriter, r *http.Request) {
	l := is.loginState()
	q := r.URL.Query()
	if uri := q.Get("request_uri"); uri != "" {
		// RFC 9126 §4: the pushed parameters, used once, by the client
		// that pushed them.
		l.mu.Lock()
		pr := l.pushed[uri]
		delete(l.pushed, uri)
		l.mu.Unlock()
		if pr == nil || pr.client != q.Get("client_id") || time.Now().After(pr.expires) {
			http.Error(w, "unknown, used or expired request_uri", http.StatusBadRequest)
			return
		}
		q = pr.params
	} else if l.cfg.RequirePAR {
		http.Error(w, "this server requires pushed authorization requests", http.StatusBadRequest)
		return
	}
	c := l.client(q.Get("client_id"))
	redirect := q.Get("redirect_uri")
	if c == nil || !slices.Contains(c.RedirectURIs, redirect) {
		// Never redirect to an unregistered URI.
		http.Error(w, "unknown client or redirect_uri", http.StatusBadRequest)
		return
	}
	back := func(params url.Values) {
		params.Set("state", q.Get("state"))
		params.Set("iss", is.url)
		http.Redirect(w, r, redirect+"?"+params.Encode(), http.StatusFound)
	}
	l.mu.Lock()
	loginRequired := l.cfg.LoginRequired
	l.mu.Unlock()
	switch {
	case q.Get("response_type") != "code":
		back(url.Values{"error": {"unsupported_response_type"}})
		return
	case q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43:
		back(url.Values{"error": {"invalid_request"}, "error_description": {"PKCE S256 required"}})
		return
	case q.Get("prompt") == "none" && loginRequired:
		back(url.Values{"error": {"login_required"}})
		return
	}
	code := randomID() + randomID()
	g := &grant{
		client: c.ID, redirectURI: redirect, scope: q.Get("scope"), resource: q.Get("resource"),
		nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), sid: randomID(), jkt: q.Get("dpop_jkt"),
		authTime: time.Now().Unix(), expires: time.Now().Add(time.Minute),
	}
	l.mu.Lock()
	l.codes[code] = g
	l.mu.Unlock()
	back(url.Values{"code": {code}})
}

// tokenGrant serves the authorization_code and refresh_token grants at
// POST /token. It reports false for other grant types.
func (is *Issuer) tokenGrant(w http.ResponseWriter, r *http.Request) bool {
	l := is.loginState()
	gt := r.PostFormValue("grant_type")
	if l == nil || (gt != "authorization_code" && gt != "refresh_token") {
		return false
	}
	fail := func(status int, code string) { oauthError(w, status, code) }
	c := l.authenticate(r)
	if c == nil {
		fail(http.StatusUnauthorized, "invalid_client")
		return true
	}
	// DPoP, before the code or refresh token is spent: a proof refused
	// (or a nonce demanded) leaves the grant usable.
	jkt, demand, ok := l.checkProof(r, is.url)
	switch {
	case demand != "":
		l.nonceDemds.Add(1)
		w.Header().Set("DPoP-Nonce", demand)
		fail(http.StatusBadRequest, "use_dpop_nonce")
		return true
	case !ok:
		fail(http.StatusBadRequest, "invalid_dpop_proof")
		return true
	}
	var g *grant
	l.mu.Lock()
	switch gt {
	case "authorization_code":
		g = l.codes[r.PostFormValue("code")]
		delete(l.codes, r.PostFormValue("code")) // a code is used once, whatever happens
		if g != nil && (g.client != c.ID || g.redirectURI != r.PostFormValue("redirect_uri") ||
			time.Now().After(g.expires) || s256(r.PostFormValue("code_verifier")) != g.challenge) {
			g = nil
		}
	case "refresh_token":
		rt := r.PostFormValue("refresh_token")
		g = l.refresh[rt]
		if g != nil && (g.client != c.ID || l.revoked[rt]) {
			g = nil
		}
		if g != nil {
			delete(l.refresh, rt) // rotated: the old one is spent
			l.revoked[rt] = true
		}
	}
	if g != nil && g.jkt != "" && jkt != g.jkt {
		// Bound by dpop_jkt or by an earlier proof: only that key.
		g = nil
	}
	if g != nil && g.jkt == "" && jkt != "" {
		g.jkt = jkt
	}
	l.mu.Unlock()
	if g == nil {
		fail(http.StatusBadRequest, "invalid_grant")
		return true
	}
	aud := g.resource
	if aud == "" {
		aud = is.audience
	}
	l.mu.Lock()
	ttl := l.cfg.AccessTokenTTL
	l.mu.Unlock()
	scope := strings.Join(slices.DeleteFunc(strings.Fields(g.scope), func(s string) bool {
		return s == "openid" || s == "offline_access" || s == "profile" || s == "email"
	}), " ")
	extra := map[string]any{"aud": aud, "sub": l.cfg.Subject, "client_id": c.ID}
	tokenType := "Bearer"
	if jkt != "" {
		extra["cnf"] = map[string]any{"jkt": jkt}
		tokenType = "DPoP"
	}
	at, err := is.Mint(scope, ttl, extra)
	if err != nil {
		fail(http.StatusInternalServerError, "server_error")
		return true
	}
	rt := randomID() + randomID() + randomID()
	resp := map[string]any{
		"access_token": at, "token_type": tokenType, "expires_in": int(ttl / time.Second),
		"refresh_token": rt, "scope": g.scope,
	}
	now := time.Now()
	if gt == "authorization_code" && slices.Contains(strings.Fields(g.scope), "openid") {
		claims := map[string]any{
			"iss": is.url, "sub": l.cfg.Subject, "aud": c.ID, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
			"auth_time": g.authTime, "sid": g.sid,
		}
		if g.nonce != "" {
			claims["nonce"] = g.nonce
		}
		for k, v := range l.cfg.Claims {
			claims[k] = v
		}
		idt, err := is.SigningKey().Sign(map[string]any{"typ": "JWT"}, claims)
		if err != nil {
			fail(http.StatusInternalServerError, "server_error")
			return true
		}
		resp["id_token"] = idt
	}
	l.mu.Lock()
	l.refresh[rt] = g
	if l.sids[g.sid] == nil {
		l.sids[g.sid] = map[string]bool{}
	}
	l.sids[g.sid][rt] = true
	l.mu.Unlock()
	if gt == "authorization_code" {
		l.codeGrants.Add(1)
	} else {
		l.refreshGrants.Add(1)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(resp)
	return true
}

// revoke is POST /revoke (RFC 7009): always 200 for an authenticated
// client.
func (is *Issuer) revoke(w http.ResponseWriter, r *http.Request) {
	l := is.loginState()
	if l.authenticate(r) == nil {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	tok := r.PostFormValue("token")
	l.mu.Lock()
	if _, ok := l.refresh[tok]; ok {
		l.revoked[tok] = true
		l.revocations.Add(1)
	}
	l.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// endSession is GET /logout: RP-initiated logout, back to a registered
// post_logout_redirect_uri or a plain page.
func (is *Issuer) endSession(w http.ResponseWriter, r *http.Request) {
	l := is.loginState()
	q := r.URL.Query()
	if c := l.client(q.Get("client_id")); c != nil && slices.Contains(c.PostLogoutRedirectURIs, q.Get("post_logout_redirect_uri")) {
		http.Redirect(w, r, q.Get("post_logout_redirect_uri"), http.StatusFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("logged out of the development issuer\n"))
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// RevokeAllRefreshTokens revokes every refresh token issued so far, as an
// administrator ending every user's sessions at the provider would.
func (is *Issuer) RevokeAllRefreshTokens() {
	l := is.loginState()
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for rt := range l.refresh {
		l.revoked[rt] = true
	}
}

// checkProof checks a token request's DPoP proof, if it has one, and
// returns its key's thumbprint ("" without a proof), or the nonce to
// demand, or false for a proof refused.
func (l *login) checkProof(r *http.Request, issuer string) (jkt, demand string, ok bool) {
	proofs := r.Header.Values("DPoP")
	if len(proofs) == 0 {
		return "", "", true
	}
	if len(proofs) > 1 {
		return "", "", false
	}
	l.mu.Lock()
	mode := l.dpopNonce
	l.mu.Unlock()
	if mode == NonceAlways {
		return "", randomID(), false
	}
	p, err := l.proofs.Check(dpop.Request{Proof: proofs[0], Method: http.MethodPost, URL: strings.TrimSuffix(issuer, "/") + "/token"})
	if errors.Is(err, dpop.ErrUseNonce) {
		if mode == NonceOff {
			// Nonces are not demanded: check the proof without one.
			p, err = l.noNonce.Check(dpop.Request{Proof: proofs[0], Method: http.MethodPost, URL: strings.TrimSuffix(issuer, "/") + "/token"})
		} else {
			return "", l.nonces.Issue(time.Now()), false
		}
	}
	if err == nil {
		err = l.proofs.Record(r.Context(), p)
	}
	if err != nil {
		return "", "", false
	}
	return p.JKT, "", true
}

// par is POST /par (RFC 9126 §2): an authenticated client pushes its
// authorization request and gets a request_uri for it, valid a minute.
func (is *Issuer) par(w http.ResponseWriter, r *http.Request) {
	l := is.loginState()
	fail := func(status int, code string) { oauthError(w, status, code) }
	c := l.authenticate(r)
	if c == nil {
		fail(http.StatusUnauthorized, "invalid_client")
		return
	}
	params := url.Values{}
	for k, v := range r.PostForm {
		switch k {
		case "client_secret", "client_assertion", "client_assertion_type":
			continue
		}
		params[k] = v
	}
	if params.Has("request_uri") || (params.Get("client_id") != "" && params.Get("client_id") != c.ID) {
		fail(http.StatusBadRequest, "invalid_request")
		return
	}
	params.Set("client_id", c.ID)
	if !slices.Contains(c.RedirectURIs, params.Get("redirect_uri")) {
		fail(http.StatusBadRequest, "invalid_request")
		return
	}
	uri := "urn:ietf:params:oauth:request_uri:" + randomID()
	l.mu.Lock()
	l.pushed[uri] = &pushedRequest{client: c.ID, params: params, expires: time.Now().Add(time.Minute)}
	l.mu.Unlock()
	l.pushes.Add(1)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{"request_uri": uri, "expires_in": 60})
}

// oauthError answers an OAuth error (RFC 6749 §5.2): the JSON body with
// its error code, never cached.
func oauthError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}
