// Package bff is a token handler: the Backend-for-Frontend of a browser
// app, which keeps OAuth tokens out of the browser altogether.
//
// The handler logs users in as a confidential client (the authorization
// code flow with PKCE S256, via golang.org/x/oauth2), verifies the ID
// token with the issuer's keys, and keeps the access, refresh and ID
// tokens server-side in a [Store]. The browser gets one cookie,
// [SessionCookie]: HttpOnly, Secure, SameSite=Strict, Path=/, 256 random
// bits. Its endpoints, under [Config.Path] ("/bff"):
//
//	GET  /bff/login?return_to=/x  302 to the authorization server
//	GET  /bff/callback            the code exchanged once; the session made; 302 to return_to
//	GET  /bff/user                the ID token's claims and the session's expiry
//	POST /bff/logout              refresh token revoked, session deleted, logout_url returned
//	POST /bff/backchannel         a logout token from the issuer ends its sessions (BackchannelLogout)
//
// [Handler.Authenticate] is the middleware for the API: a request with the
// session cookie and no Authorization header must carry X-CSRF: 1 and an
// allowed Origin; its session's access token, refreshed once per session
// when it is about to expire, becomes its Authorization: Bearer header,
// for a [github.com/tokenguard/tokenguard/middleware.Guard] after it to
// verify like any other. The session and login cookies never go further.
//
//	h, err := bff.New(bff.Config{
//		Issuer:       "https://as.example.com",
//		ClientID:     "orders-spa",
//		ClientSecret: os.Getenv("BFF_CLIENT_SECRET"),
//		Scopes:       []string{"openid", "offline_access", "orders:read"},
//		PublicURL:    "https://app.example.com",
//	})
//	...
//	mux.Handle("/bff/", h)
//	mux.Handle("/api/", h.Authenticate(guard.Require("orders:read")(api)))
//
// With [Config.BackchannelLogout], POST /bff/backchannel implements
// OpenID Connect Back-Channel Logout 1.0
// (https://openid.net/specs/openid-connect-backchannel-1_0.html): the
// authorization server posts a logout token (form field logout_token, no
// CSRF or Origin rule: it is not a browser). It is verified like an ID
// token from the issuer, with the same keys and algorithm rules: typ
// logout+jwt when present (an ID token or access token is refused), iss,
// aud naming the client, iat at most five minutes old (one minute of
// clock skew either way), exp and nbf when present, the back-channel
// logout event, sid or sub, no nonce, and a jti never seen before (kept
// in the [Store] for as long as the token could be accepted: 7 minutes).
// A valid token ends every session of its sid (and sub, when it has
// both), or with only a sub every session of that subject, on every
// replica, waiting like logout for a refresh in flight, and revokes their
// refresh tokens, best effort: 200, whether sessions matched or not. Any
// refusal is 400 {"error":"invalid_request"} and changes nothing. When
// the store, the metadata or the keys cannot be had the answer is 503,
// not 200, so that the authorization server retries (the jti is
// forgotten again for the retry). Sessions are found through indexes
// the [Store] keeps (IndexAdd, written at the callback before the session
// itself, for the session's lifetime, under hashes of the issuer and the
// sid or subject); sessions made while the option was off are not in
// them.
//
// [Config.PAR] decides when the authorization request is pushed (RFC 9126
// Pushed Authorization Requests, https://www.rfc-editor.org/rfc/rfc9126):
// [PARAuto], the default, whenever the issuer's metadata has a
// pushed_authorization_request_endpoint; [PARRequired] always, a login
// failing (503, logged) against an issuer without one; [PAROff] never, a
// login failing against an issuer that says
// require_pushed_authorization_requests. Auto is the default because it
// pushes wherever the server can take it, and without a push endpoint the
// front-channel request (PKCE, state, nonce) is still sound; required is
// for deployments that want the guarantee from configuration. A pushed
// request is a POST of every authorization parameter, client-authenticated
// as at the token endpoint; the browser then carries only client_id and
// the request_uri of the 201 answer. A push that fails fails the login:
// 503 when the endpoint is down, 502 for any answer but 201 with a
// request_uri (a printable string of at most 2 KiB) and a positive
// expires_in. It never falls back to the browser.
//
// With [Config.DPoP] the tokens of each new session are bound to a key of
// its own (RFC 9449, https://www.rfc-editor.org/rfc/rfc9449): an ES256
// (P-256) key derived at /login with HKDF-SHA256 from the key that seals
// login cookies (SessionKey, shared by replicas, or the handler's own)
// and the login's state, and derived again at the callback, so nothing is
// stored before the user has logged in and the key never reaches the
// browser, not even sealed: the login cookie keeps only its thumbprint.
// The thumbprint is sent as dpop_jkt (§10) with the authorization
// request; the code exchange and every refresh carry a proof by the key
// (htm POST, htu the token endpoint); a use_dpop_nonce answer (§8) gets
// one retry with the server's nonce, which is remembered for later
// requests; and an answer whose token_type is not DPoP is refused (no
// session at the login, the session ends at a refresh). The key is then
// kept in the session, encrypted in the store like the refresh token.
// Authenticate forwards a DPoP session's access token as
// Authorization: DPoP with a fresh proof: htm the request's method, htu
// [Config.PublicURL] + its path (what a middleware.Guard with the same
// PublicURL derives), ath the token's hash, and, with
// [Config.DPoPNonce], the resource server's nonce; it never retries a
// request that is refused. Revocation requests carry no proof: RFC 9449
// asks for none there.
//
// A [MemoryStore] (the default) serves one process. Replicas share
// sessions through bff/redisstore, with Config.SessionKey: what a store
// outside the process keeps is encrypted with AES-256-GCM and bound to
// its entry. The gateway mounts this package with its bff block.
package bff
