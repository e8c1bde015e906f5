// Gin is an orders API on gin whose routes tokenguard protects with OAuth
// 2.0 access tokens, and whose denials are gin errors like any other:
// GET /orders needs the scope orders:read, POST /orders needs
// orders:write, GET /healthz is public.
//
// The guard decides and sets WWW-Authenticate; Config.OnDenial hands the
// *middleware.Denial to requireScopes, which aborts the chain and records
// it with c.Error; renderErrors, the API's one error renderer, answers it
// as {"error":{"code":"…","message":"…"}} with the denial's status, the
// same shape as the handlers' own errors.
//
// It reads ISSUER (the authorization server's issuer identifier),
// AUDIENCE (this API's identifier, the tokens' "aud"), JWKS_URI (where
// the issuer's keys are; empty means discovered from ISSUER) and ADDR
// (where to listen; default 127.0.0.1:8080):
//
//	ISSUER=https://as.example.com AUDIENCE=https://orders.example.com go run ./gin
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

	"github.com/gin-gonic/gin"

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
// handed to gin (onDenial).
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
func routes(guard *middleware.Guard) *gin.Engine {
	r := gin.New()
	_ = r.SetTrustedProxies(nil) // no proxy in front: c.ClientIP is the peer
	r.Use(gin.Logger(), gin.Recovery(), renderErrors)
	r.GET("/healthz", health)
	r.GET("/orders", requireScopes(guard, "orders:read"), listOrders)
	r.POST("/orders", requireScopes(guard, "orders:write"), createOrder)
	return r
}

// denialKey is the request context key under which requireScopes leaves
// a place for onDenial to put the guard's denial.
type denialKey struct{}

// onDenial is Config.OnDenial: it writes nothing and hands the denial to
// requireScopes, so that gin's error handling answers it. The guard has
// set WWW-Authenticate (and DPoP-Nonce, Retry-After, Cache-Control) on
// the response and its status with c.Writer.WriteHeader, which gin only
// records: renderErrors still chooses the body.
func onDenial(_ http.ResponseWriter, r *http.Request, d *middleware.Denial) {
	if slot, ok := r.Context().Value(denialKey{}).(**middleware.Denial); ok {
		*slot = d
	}
}

// requireScopes is guard.Require as gin middleware. An allowed request
// goes on down the chain with the Principal in c.Request's context; a
// denied one is aborted and its *middleware.Denial recorded with c.Error.
func requireScopes(guard *middleware.Guard, scopes ...string) gin.HandlerFunc {
	require := guard.Require(scopes...)
	return func(c *gin.Context) {
		var denial *middleware.Denial
		allowed := false
		next := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			allowed = true
			c.Request = r // carries the Principal
			c.Next()
		})
		ctx := context.WithValue(c.Request.Context(), denialKey{}, &denial)
		require(next).ServeHTTP(c.Writer, c.Request.WithContext(ctx))
		if allowed {
			return
		}
		c.Abort()
		if denial != nil {
			_ = c.Error(denial) // private: gin.Logger logs it, clients never see d.Err
		}
	}
}

// apiError is the body of every error the API answers, as
// {"error":{"code":"…","message":"…"}}.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// errNoPrincipal means a handler that needs a Principal was mounted
// without requireScopes.
var errNoPrincipal = errors.New("no principal: route not behind the guard")

// renderErrors is the API's one error renderer: after the handlers have
// run, it answers the last error they recorded with c.Error, a denial from
// the guard or a handler's own.
func renderErrors(c *gin.Context) {
	c.Next()
	last := c.Errors.Last()
	if last == nil || c.Writer.Written() {
		return
	}
	var d *middleware.Denial
	switch {
	case errors.As(last.Err, &d):
		// Code and Description are safe to show; d.Err is for logs only.
		c.JSON(d.Status, gin.H{"error": apiError{Code: d.Code, Message: cmp.Or(d.Description, http.StatusText(d.Status))}})
	case last.IsType(gin.ErrorTypeBind):
		c.JSON(http.StatusBadRequest, gin.H{"error": apiError{Code: "invalid_body", Message: `body must be JSON with an "item"`}})
	default:
		c.JSON(http.StatusInternalServerError, gin.H{"error": apiError{Code: "internal", Message: "internal error"}})
	}
}

func health(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

type order struct {
	ID   string `json:"id,omitempty"`
	Item string `json:"item" binding:"required"`
}

// listOrders answers with the caller's orders. The guard has verified the
// token; the Principal says whose it is.
func listOrders(c *gin.Context) {
	p, ok := middleware.PrincipalFrom(c.Request.Context())
	if !ok {
		_ = c.Error(errNoPrincipal)
		return
	}
	c.JSON(http.StatusOK, gin.H{"subject": p.Subject, "orders": []order{{ID: "1", Item: "coffee beans"}}})
}

// createOrder takes {"item": "..."} and answers 201 with who placed it.
func createOrder(c *gin.Context) {
	p, ok := middleware.PrincipalFrom(c.Request.Context())
	if !ok {
		_ = c.Error(errNoPrincipal)
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, 1<<20)
	var in order
	if err := c.ShouldBindJSON(&in); err != nil {
		_ = c.Error(err).SetType(gin.ErrorTypeBind)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"item": in.Item, "created_by": p.Subject})
}
