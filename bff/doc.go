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
// A [MemoryStore] (the default) serves one process. Replicas share
// sessions through bff/redisstore, with Config.SessionKey: what a store
// outside the process keeps is encrypted with AES-256-GCM and bound to
// its entry. The gateway mounts this package with its bff block.
package bff
