// Echo is an orders API on labstack/echo whose routes tokenguard protects
// with OAuth 2.0 access tokens, and whose denials are errors its handlers
// could have returned: GET /orders needs the scope orders:read, POST
// /orders needs orders:write, GET /healthz is public.
//
// The guard decides and sets WWW-Authenticate; Config.OnDenial hands the
// *middleware.Denial to requireScopes, which returns it as an
// *echo.HTTPError (the denial in Internal), so Echo's HTTPErrorHandler
// answers it as it answers every error: {"message":"…"} with the default
// handler, or whatever a custom one renders.
//
// It reads ISSUER (the authorization server's issuer identifier),
// AUDIENCE (this API's identifier, the tokens' "aud"), JWKS_URI (where
// the issuer's keys are; empty means discovered from ISSUER) and ADDR
// (where to listen; default 127.0.0.1:8080):
//
//	ISSUER=https://as.example.com AUDIENCE=https://orders.example.com go run ./echo
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"

	"github.com/tokenguard/tokenguard/middleware"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv); err != nil {
		slog.Error("orders API stopped", "err", err)
		os.Exit(1)
	}
}

// run serves the API until ctx is done.
func run(ctx context.Context, getenv func(string) string) error {
	guard, err := newGuard(ctx, getenv)
	if err != nil {
		return err
	}
	defer guard.Close()

	srv := &http.Server{
		Addr:              cmp.Or(getenv("ADDR"), "127.0.0.1:8080"),
		Handler:           routes(guard),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	slog.Info("orders API listening", "addr", srv.Addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newGuard configures the guard from the environment, with denials
// handed to Echo (onDenial).
func newGuard(ctx context.Context, getenv func(string) string) (*middleware.Guard, error) {
	for _, name := range []string{"ISSUER", "AUDIENCE"} {
		if getenv(name) == "" {
			return nil, fmt.Errorf("%s is not set", name)
		}
	}
	return middleware.New(ctx, middleware.Config{
		Audience: getenv("AUDIENCE"),
		Issuers:  []middleware.Issuer{{Issuer: getenv("ISSUER"), JWKSURI: getenv("JWKS_URI")}},
		Logger:   slog.Default(),
		OnDenial: onDenial,
	})
}

// routes is the API: each protected route names the scopes it needs.
func routes(guard *middleware.Guard) *echo.Echo {
	e := echo.New()
	e.Use(echomw.Recover(), echomw.BodyLimit("1M"))
	e.GET("/healthz", health)
	e.GET("/orders", listOrders, requireScopes(guard, "orders:read"))
	e.POST("/orders", createOrder, requireScopes(guard, "orders:write"))
	return e
}

// denialKey is the request context key under which requireScopes leaves
// a place for onDenial to put the guard's denial.
type denialKey struct{}

// onDenial is Config.OnDenial: it writes nothing and hands the denial to
// requireScopes, which returns it to Echo as an error.
func onDenial(_ http.ResponseWriter, r *http.Request, d *middleware.Denial) {
	if slot, ok := r.Context().Value(denialKey{}).(**middleware.Denial); ok {
		*slot = d
	}
}

// requireScopes is guard.Require as Echo middleware. An allowed request
// goes on to the handler with the Principal in c.Request()'s context; a
// denied one ends in an *echo.HTTPError with the denial's status and
// description, and the denial itself in Internal for logs and custom
// error handlers (errors.As finds it).
func requireScopes(guard *middleware.Guard, scopes ...string) echo.MiddlewareFunc {
	require := guard.Require(scopes...)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			var (
				denial  *middleware.Denial
				allowed bool
				err     error
			)
			w := &headerWriter{header: c.Response().Header()}
			ctx := context.WithValue(c.Request().Context(), denialKey{}, &denial)
			require(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				allowed = true
				c.SetRequest(r) // carries the Principal
				err = next(c)
			})).ServeHTTP(w, c.Request().WithContext(ctx))
			switch {
			case allowed:
				return err
			case denial != nil:
				// Code and Description are safe to show; d.Err is for logs only.
				msg := cmp.Or(denial.Description, http.StatusText(denial.Status))
				return echo.NewHTTPError(denial.Status, msg).SetInternal(denial)
			default: // Config.OnDenial is not onDenial: still a refusal
				return echo.NewHTTPError(cmp.Or(w.status, http.StatusInternalServerError))
			}
		}
	}
}

// headerWriter is the ResponseWriter the guard writes to. Its headers are
// Echo's response's, so the guard's WWW-Authenticate (and DPoP-Nonce,
// Retry-After, Cache-Control) reach the client; the status and body of a
// denial are kept from the client, as Echo's error handler writes them
// and will not answer a response already sent. Handlers write to
// c.Response(), never here.
type headerWriter struct {
	header http.Header
	status int
}

func (w *headerWriter) Header() http.Header { return w.header }

func (w *headerWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *headerWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(p), nil
}

func health(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

type order struct {
	ID   string `json:"id,omitempty"`
	Item string `json:"item"`
}

// errNoPrincipal means a handler that needs a Principal was mounted
// without requireScopes: Echo answers it with 500.
var errNoPrincipal = errors.New("no principal: route not behind the guard")

// listOrders answers with the caller's orders. The guard has verified the
// token; the Principal says whose it is.
func listOrders(c echo.Context) error {
	p, ok := middleware.PrincipalFrom(c.Request().Context())
	if !ok {
		return errNoPrincipal
	}
	return c.JSON(http.StatusOK, map[string]any{"subject": p.Subject, "orders": []order{{ID: "1", Item: "coffee beans"}}})
}

// createOrder takes {"item": "..."} and answers 201 with who placed it.
func createOrder(c echo.Context) error {
	p, ok := middleware.PrincipalFrom(c.Request().Context())
	if !ok {
		return errNoPrincipal
	}
	var in order
	if err := c.Bind(&in); err != nil || in.Item == "" {
		return echo.NewHTTPError(http.StatusBadRequest, `body must be JSON with an "item"`).SetInternal(err)
	}
	return c.JSON(http.StatusCreated, map[string]string{"item": in.Item, "created_by": p.Subject})
}
