package grpcguard

import (
	"github.com/tokenguard/tokenguard/internal/rpcguard"
	"github.com/tokenguard/tokenguard/middleware"
)

// Rules maps gRPC full method names, "/pkg.Service/Method", to the scopes
// a call must be granted (every one of them; none: any valid token). A
// method that is not listed is refused with PermissionDenied unless Rules
// has the key "*", whose scopes apply to every method not listed.
type Rules map[string][]string

// guarded is Rules compiled for one guard (see rpcguard.Table).
type guarded struct{ *rpcguard.Table }

func compile(guard *middleware.Guard, rules Rules) *guarded {
	return &guarded{rpcguard.Compile("grpcguard", "a full method name", guard, rules)}
}
