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
// A [MemoryStore] (the default) serves one process. Replicas share
// sessions through bff/redisstore, with Config.SessionKey: what a store
// outside the process keeps is encrypted with AES-256-GCM and bound to
// its entry. The gateway mounts this package with its bff block.
package bff
