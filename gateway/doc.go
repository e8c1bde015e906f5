// Package gateway is tokenguard's gateway: a reverse proxy in front of any
// HTTP API that forwards a request only when the access token it carries
// (and, for DPoP, its proof) was verified for this request by package
// middleware, with the scopes and policy of the request's route. The
// tokenguard command is this package behind a few flags; a Go program can
// embed the whole gateway, or only its handler, in its own server.
//
//	cfg, err := gateway.LoadConfig("tokenguard.yaml", nil) // every mistake, with its line
//	if err != nil {
//		log.Fatal(err)
//	}
//	gw, err := gateway.New(cfg, gateway.Options{})
//	if err != nil {
//		log.Fatal(err)
//	}
//	err = gw.Run(ctx) // serves listen and metrics_listen until ctx is done, then drains
//
// or, in a server of your own:
//
//	mux.Handle("/", gw.Handler())
//	defer gw.Shutdown(context.Background())
//
// # Lifecycle
//
// LoadConfig (or ParseConfig) reads and validates a configuration without
// network I/O and returns an immutable Config; Config.Check runs the rest
// of the checks New would, still offline (the "tokenguard check" command).
// New builds the guard, the replay store, the proxy and the handlers; the
// issuers' keys start loading in the background. Start binds the
// listeners, serves /healthz and /readyz at once, waits up to startup_wait
// for the keys, then serves the proxy. Run is Start, then serving until
// its context ends, then Shutdown as configured: /readyz answers 503,
// serving goes on for drain_delay, and in-flight requests get up to
// shutdown_timeout. The configuration file's keys are listed, with types,
// defaults and meanings, in docs/config.md.
//
// # What a request goes through
//
// In order: the concurrency limit (max_concurrent_requests; beyond it 503
// with Retry-After at once, never a queue); request hygiene
// (middleware.Guard.Hygiene: a request-target an upstream could read as
// another path is 400 {"error":"invalid_path"}, an Upgrade to anything but
// WebSocket is 400 {"error":"invalid_request"}, a Host not in allowed_hosts
// is 421 {"error":"misdirected_request"}); the routes, Go ServeMux
// patterns matched on exactly the path that is forwarded (no route: 404
// {"error":"not_found"}); the route's guard (RFC 6750, RFC 9068, RFC 9449,
// RFC 7662, RFC 9470: 401, 403 or 503 with a challenge); and the proxy.
// With a cors block, the CORS headers go on every answer to an allowed
// origin (before hygiene, so refusals carry them) and preflights are
// answered after hygiene, never forwarded (in forward auth they are
// decided like any request). A public route has no guard, and forwards no
// credential. Routes match the host in lower case without a trailing dot;
// a path that selects a guarded route only in lower case is 400.
//
// # Behind another ingress
//
// With forward_auth, an ingress that proxies itself (nginx auth_request,
// Caddy forward_auth, Traefik forwardAuth) asks GET or POST
// forward_auth.path about each request, described in X-Forwarded-* or
// X-Original-* headers (X-Forwarded-Host required); only peers in
// trusted_proxies may ask. A described request carrying a method, URL or
// client-address override header is refused, since the ingress would pass
// it on. The request described is built and served through the same
// chain, CORS to guard, whose last handler answers 200 with the identity
// headers instead of proxying; a denial is proxy mode's. upstream is
// optional then. client_cert_header cannot be combined with it.
//
// # Certificate-bound tokens
//
// The guard accepts a token with cnf."x5t#S256" (RFC 8705) only with the
// client certificate it names. With tls.client_certs: request the gateway
// asks every TLS client for one (never verifying its chain); with
// client_cert_header a proxy in front that terminates TLS reports it in
// RFC 9440's Client-Cert, believed only from trusted_proxies and the only
// source for their requests. That header and Client-Cert-Chain never
// reach the upstream (clientcert.go).
//
// To the upstream it forwards the request with HeaderSubject,
// HeaderClientID and HeaderScope set from the verified token. Every
// header a client sends that an upstream could read as one of those (any
// letter case, '_' for '-', as CGI, WSGI, PHP and Rack fold names), every
// Forwarded and X-Forwarded-* header (replaced by the gateway's own: the
// TCP peer, the Host asked for, the scheme; a peer in trusted_proxies has
// its X-Forwarded-For, -Host and -Proto passed on), the client-address and
// URL/method-override headers frameworks read (X-Real-Ip, True-Client-IP,
// X-Original-URL, X-HTTP-Method-Override, ...) and request trailers are
// removed first; so, unless allow_underscore_headers is set, is every
// header with an underscore in its name. The upstream connection pool never
// uses HTTP_PROXY; request and response bodies stream as they come (SSE,
// uploads, WebSocket); an upstream that fails gets 502
// {"error":"bad_gateway"}, one too slow 504 {"error":"gateway_timeout"},
// never naming it. Every response carries X-Request-Id (the client's when
// it is at most 128 characters of [A-Za-z0-9._:-], else a new one), which
// is forwarded too.
//
// GET /metrics (Prometheus), /healthz and /readyz are served only by
// MetricsHandler, on metrics_listen; Handler never serves those paths, even
// where a route would match them.
//
// # Logs
//
// One "access" line per request at Info: request_id, method, path (as
// escaped, never the query), status, decision (allow, deny, public,
// preflight, not_found, reject or none), forwarded_method and
// forwarded_path for a forward-auth subrequest, reason (the guard's, such as expired or
// insufficient_scope; "ok" when allowed), duration_ms, bytes, remote,
// proto, and upstream_status or upstream_error. Tokens, proofs, query
// strings and header values are never logged; neither is a value that came
// from the environment, nor a Redis URL.
//
// # Concurrency
//
// A Config is read-only and may back several Gateways. A Gateway's
// methods are safe for concurrent use; Shutdown may be called more than
// once.
package gateway
