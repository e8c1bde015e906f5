package connectguard

import (
	"context"
	"errors"
	"net/http"

	"connectrpc.com/connect"

	"github.com/tokenguard/tokenguard/internal/rpcguard"
	"github.com/tokenguard/tokenguard/middleware"
)

// NewInterceptor returns a connect.Interceptor that lets a call reach its
// handler only when guard allows it under rules, with the token's
// Principal in the handler's context (middleware.PrincipalFrom). Install
// it on handlers with connect.WithInterceptors; on a client it does
// nothing. A denial is returned as a *connect.Error whose metadata
// carries the challenges (see the package documentation). It panics on a
// nil guard or bad rules.
func NewInterceptor(guard *middleware.Guard, rules Rules) connect.Interceptor {
	return &interceptor{g: compile(guard, rules)}
}

// interceptor is NewInterceptor's connect.Interceptor.
type interceptor struct{ g *guarded }

// WrapUnary guards a unary handler; a client's calls pass through.
func (i *interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		spec := req.Spec()
		if spec.IsClient {
			return next(ctx, req)
		}
		var out http.Header // the response's headers, when connect gives them
		if info, ok := connect.CallInfoForHandlerContext(ctx); ok {
			out = info.ResponseHeader()
		}
		p, err := i.g.check(ctx, spec.Procedure, req.HTTPMethod(), req.Header(), out)
		if err != nil {
			return nil, err
		}
		return next(middleware.ContextWithPrincipal(ctx, p), req)
	}
}

// WrapStreamingClient returns next: clients are not guarded.
func (i *interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler guards a streaming handler: the decision is made
// once, when the stream opens and before the handler runs.
func (i *interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		p, err := i.g.check(ctx, conn.Spec().Procedure, http.MethodPost, conn.RequestHeader(), conn.ResponseHeader())
		if err != nil {
			return err
		}
		return next(middleware.ContextWithPrincipal(ctx, p), conn)
	}
}

// The request and response headers the interceptor reads and writes, as
// http.Header keys them.
const (
	headerAuthorization   = "Authorization"
	headerDPoP            = "Dpop"
	headerWWWAuthenticate = "Www-Authenticate"
	headerDPoPNonce       = "Dpop-Nonce"
)

// errNotListed refuses a procedure that Rules does not list. It is made
// for each refusal: a *connect.Error's metadata may be changed by later
// interceptors.
func errNotListed() error {
	return connect.NewError(connect.CodePermissionDenied, errors.New("connectguard: procedure not allowed by the server's rules"))
}

// check decides on a call to procedure sent with HTTP method method and
// request headers h. It returns the Principal, or the *connect.Error to
// answer with, having added the denial's challenges and DPoP nonce to out,
// the response's headers.
//
// They go in the response headers, not in the error's metadata: the gRPC
// protocol sends that metadata as HTTP trailers, and net/http drops
// WWW-Authenticate from trailers (RFC 9110 §6.5.1: a field a client must
// see before the content). Clients see response headers in every protocol,
// and find them in the *connect.Error's Meta, which on a client is the
// union of the response's headers and trailers. When out is nil (no
// CallInfo in a unary handler's context, which connect always provides)
// they go in the error's metadata.
func (g *guarded) check(ctx context.Context, procedure, method string, h, out http.Header) (*middleware.Principal, error) {
	decide, htu, ok := g.Lookup(procedure)
	if !ok {
		return nil, errNotListed()
	}
	if method == "" {
		method = http.MethodPost
	}
	req := middleware.Request{Method: method, URL: htu}
	rpcguard.Credentials(&req, h[headerAuthorization], h[headerDPoP])
	p, err := decide(ctx, req)
	if err == nil {
		return p, nil
	}
	var d *middleware.Denial
	if !errors.As(err, &d) {
		// Not a denial: a programming error Checker rules out (its policy
		// was checked by compile). Refuse without detail.
		return nil, connect.NewError(connect.CodeInternal, errors.New("connectguard: internal error"))
	}
	e := connect.NewError(codeFor(d.Status), errors.New(message(d)))
	if out == nil {
		out = e.Meta()
	}
	for _, c := range d.Challenges {
		out.Add(headerWWWAuthenticate, c)
	}
	if d.DPoPNonce != "" {
		out.Set(headerDPoPNonce, d.DPoPNonce)
	}
	return nil, e
}

// codeFor is the status code for a denial's HTTP status (rpcguard.Code).
func codeFor(httpStatus int) connect.Code { return connect.Code(rpcguard.Code(httpStatus)) }

// message is a denial's status message (rpcguard.Message).
func message(d *middleware.Denial) string { return rpcguard.Message(d) }

// Interface guard.
var _ connect.Interceptor = (*interceptor)(nil)
