package bench

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	jwtmiddleware "github.com/auth0/go-jwt-middleware/v2"
	auth0jwks "github.com/auth0/go-jwt-middleware/v2/jwks"
	auth0validator "github.com/auth0/go-jwt-middleware/v2/validator"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/jwx/v3/jwk"
	jwxjwt "github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/tokenguard/tokenguard/middleware"
)

// A contestant is one library's full middleware path around a handler: it
// extracts the Bearer token from the request, verifies it against the
// env's JWKS (fetched over HTTP and cached by the library's own cache),
// checks the claims and hands the request on. Each is set up the way its
// README recommends; where a library has no middleware, a minimal one
// (bearerMiddleware) stands in for all of them alike.
type contestant struct {
	// name is the benchmark's sub-name: BenchmarkGuard for tokenguard,
	// BenchmarkPeer/<name> for the peers.
	name string
	// newHandler builds the contestant around next for env's issuer and
	// algorithm; background work stops when tb ends.
	newHandler func(tb testing.TB, env *issuerEnv, next http.Handler) http.Handler
}

// contestants lists tokenguard (cache off and on) and every peer.
var contestants = []contestant{
	{"tokenguard", func(tb testing.TB, e *issuerEnv, next http.Handler) http.Handler {
		return newTokenguard(tb, e, false, next)
	}},
	{"tokenguard-cached", func(tb testing.TB, e *issuerEnv, next http.Handler) http.Handler {
		return newTokenguard(tb, e, true, next)
	}},
	{"auth0", newAuth0},
	{"keyfunc", newKeyfunc},
	{"go-oidc", newGoOIDC},
	{"jwx", newJWX},
}

// peers are the contestants measured by BenchmarkPeer.
var peers = contestants[2:]

// newTokenguard is the guard with its token cache on or off, requiring
// the scope every token carries.
func newTokenguard(tb testing.TB, e *issuerEnv, cache bool, next http.Handler) http.Handler {
	tb.Helper()
	guard, err := middleware.New(context.Background(), middleware.Config{
		Audience:          audience,
		Issuers:           []middleware.Issuer{{Issuer: e.iss.URL(), JWKSURI: e.jwksURL}},
		DisableTokenCache: !cache,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { guard.Close() })
	if !guard.Ready() {
		tb.Fatal("guard not ready")
	}
	return guard.Require(scope)(next)
}

// newAuth0 is github.com/auth0/go-jwt-middleware/v2 as its README and
// examples set it up: a validator over the caching JWKS provider, inside
// the library's own middleware (jwtmiddleware.New(...).CheckJWT). The
// validator pins one algorithm, so each algorithm gets its own.
func newAuth0(tb testing.TB, e *issuerEnv, next http.Handler) http.Handler {
	tb.Helper()
	issuerURL, err := url.Parse(e.iss.URL())
	if err != nil {
		tb.Fatal(err)
	}
	jwksURL, err := url.Parse(e.jwksURL)
	if err != nil {
		tb.Fatal(err)
	}
	provider := auth0jwks.NewCachingProvider(issuerURL, 5*time.Minute, auth0jwks.WithCustomJWKSURI(jwksURL))
	v, err := auth0validator.New(provider.KeyFunc, auth0validator.SignatureAlgorithm(e.alg), e.iss.URL(), []string{audience})
	if err != nil {
		tb.Fatal(err)
	}
	return jwtmiddleware.New(v.ValidateToken).CheckJWT(next)
}

// newKeyfunc is github.com/golang-jwt/jwt/v5 with
// github.com/MicahParks/keyfunc/v3's refreshing JWKS (NewDefaultCtx),
// parsing into jwt.MapClaims as the README does, with the parser options
// that make it check what the others check.
func newKeyfunc(tb testing.TB, e *issuerEnv, next http.Handler) http.Handler {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel) // ends keyfunc's refresh goroutine
	k, err := keyfunc.NewDefaultCtx(ctx, []string{e.jwksURL})
	if err != nil {
		tb.Fatal(err)
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{e.alg}),
		jwt.WithAudience(audience),
		jwt.WithIssuer(e.iss.URL()),
		jwt.WithExpirationRequired(),
	)
	return bearerMiddleware(func(_ context.Context, tok string) (any, error) {
		t, err := parser.Parse(tok, k.Keyfunc)
		if err != nil {
			return nil, err
		}
		return t.Claims, nil
	})(next)
}

// newGoOIDC is github.com/coreos/go-oidc/v3's verifier over its remote
// key set, with the audience as ClientID. go-oidc is built for ID tokens:
// it checks the signature, iss, aud, exp and nbf (TestPeerDifferences),
// and nothing of RFC 9068.
func newGoOIDC(tb testing.TB, e *issuerEnv, next http.Handler) http.Handler {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	keySet := oidc.NewRemoteKeySet(ctx, e.jwksURL)
	v := oidc.NewVerifier(e.iss.URL(), keySet, &oidc.Config{ClientID: audience, SupportedSigningAlgs: []string{e.alg}})
	return bearerMiddleware(func(ctx context.Context, tok string) (any, error) {
		return v.Verify(ctx, tok)
	})(next)
}

// newJWX is github.com/lestrrat-go/jwx/v3's own jwt.Parse over a
// jwk.Cache (the library tokenguard uses for JWKS fetching, here on the
// per-request path too).
func newJWX(tb testing.TB, e *issuerEnv, next http.Handler) http.Handler {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	cache, err := jwk.NewCache(ctx, httprc.NewClient())
	if err != nil {
		tb.Fatal(err)
	}
	if err := cache.Register(ctx, e.jwksURL, jwk.WithWaitReady(true)); err != nil {
		tb.Fatal(err)
	}
	set, err := cache.CachedSet(e.jwksURL)
	if err != nil {
		tb.Fatal(err)
	}
	iss := e.iss.URL()
	return bearerMiddleware(func(_ context.Context, tok string) (any, error) {
		return jwxjwt.ParseString(tok, jwxjwt.WithKeySet(set), jwxjwt.WithAudience(audience), jwxjwt.WithIssuer(iss))
	})(next)
}

// claimsKey carries a peer's verified claims in the request context.
type claimsKey struct{}

// bearerMiddleware is the minimal middleware for peers that have none:
// take the Bearer token (401 without one), verify it (401 on any error),
// and pass the claims on in a new request context. It does no more than
// any middleware must, so it flatters the peers if anything.
func bearerMiddleware(verify func(ctx context.Context, tok string) (any, error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := r.Header.Get("Authorization")
			scheme, tok, ok := strings.Cut(h, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
				w.Header().Set("WWW-Authenticate", "Bearer")
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			claims, err := verify(r.Context(), tok)
			if err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
		})
	}
}
