package grpcguard

import (
	"context"
	"crypto/x509"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/tokenguard/tokenguard/internal/rpcguard"
	"github.com/tokenguard/tokenguard/middleware"
)

// UnaryServerInterceptor returns an interceptor that lets a unary call
// reach its handler only when guard allows it under rules, with the
// token's Principal in the handler's context (middleware.PrincipalFrom).
// A denial is returned as a gRPC status, with its challenges in the
// "www-authenticate" response header metadata (see the package
// documentation). It panics on a nil guard or bad rules.
func UnaryServerInterceptor(guard *middleware.Guard, rules Rules) grpc.UnaryServerInterceptor {
	g := compile(guard, rules)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		p, hdr, err := g.check(ctx, info.FullMethod)
		if err != nil {
			if hdr != nil {
				_ = grpc.SetHeader(ctx, hdr) // fails only once headers are sent: never before the handler
			}
			return nil, err
		}
		return handler(middleware.ContextWithPrincipal(ctx, p), req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streaming calls:
// the decision is made once, when the stream opens and before its
// handler runs, and the handler's stream's Context carries the
// Principal. It panics on a nil guard or bad rules.
func StreamServerInterceptor(guard *middleware.Guard, rules Rules) grpc.StreamServerInterceptor {
	g := compile(guard, rules)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		p, hdr, err := g.check(ctx, info.FullMethod)
		if err != nil {
			if hdr != nil {
				_ = ss.SetHeader(hdr)
			}
			return err
		}
		return handler(srv, &serverStream{ServerStream: ss, ctx: middleware.ContextWithPrincipal(ctx, p)})
	}
}

// serverStream is a grpc.ServerStream whose Context carries the
// Principal.
type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context returns the stream's context with the Principal.
func (s *serverStream) Context() context.Context { return s.ctx }

// Metadata keys, as gRPC carries them (lower case).
const (
	mdAuthorization   = "authorization"
	mdDPoP            = "dpop"
	mdWWWAuthenticate = "www-authenticate"
	mdDPoPNonce       = "dpop-nonce"
)

// peerCertificate returns the leaf certificate the client presented on
// the call's TLS connection (credentials.NewTLS on the server, with
// ClientAuth asking for one), or nil: what a certificate-bound token (RFC
// 8705) is checked against.
func peerCertificate(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return nil
	}
	return ti.State.PeerCertificates[0]
}

// errNotListed refuses a method that Rules does not list.
var errNotListed = status.Error(codes.PermissionDenied, "grpcguard: method not allowed by the server's rules")

// check decides on a call to fullMethod whose incoming metadata ctx
// carries. It returns the Principal, or the status error to return and
// the response header metadata (challenges, DPoP nonce) to set with it.
func (g *guarded) check(ctx context.Context, fullMethod string) (*middleware.Principal, metadata.MD, error) {
	decide, htu, ok := g.Lookup(fullMethod)
	if !ok {
		return nil, nil, errNotListed
	}
	md, _ := metadata.FromIncomingContext(ctx)
	req := middleware.Request{Method: "POST", URL: htu, ClientCertificate: peerCertificate(ctx)}
	rpcguard.Credentials(&req, md[mdAuthorization], md[mdDPoP])
	p, err := decide(ctx, req)
	if err == nil {
		return p, nil, nil
	}
	var d *middleware.Denial
	if !errors.As(err, &d) {
		// Not a denial: a programming error Checker rules out (its policy
		// was checked by compile). Refuse without detail.
		return nil, nil, status.Error(codes.Internal, "grpcguard: internal error")
	}
	var hdr metadata.MD
	if len(d.Challenges) > 0 || d.DPoPNonce != "" {
		hdr = metadata.MD{}
		if len(d.Challenges) > 0 {
			hdr[mdWWWAuthenticate] = d.Challenges
		}
		if d.DPoPNonce != "" {
			hdr[mdDPoPNonce] = []string{d.DPoPNonce}
		}
	}
	return nil, hdr, status.Error(codeFor(d.Status), message(d))
}

// codeFor is the status code for a denial's HTTP status (rpcguard.Code).
func codeFor(httpStatus int) codes.Code { return codes.Code(rpcguard.Code(httpStatus)) }

// message is a denial's status message (rpcguard.Message).
func message(d *middleware.Denial) string { return rpcguard.Message(d) }
