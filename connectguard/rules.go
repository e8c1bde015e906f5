package connectguard

import (
	"github.com/tokenguard/tokenguard/internal/rpcguard"
	"github.com/tokenguard/tokenguard/middleware"
)

// Rules maps procedures, "/pkg.Service/Method" as connect.Spec.Procedure
// has them, to the scopes a call must be granted (every one of them;
// none: any valid token). A procedure that is not listed is refused with
// CodePermissionDenied unless Rules has the key "*", whose scopes apply
// to every procedure not listed. It is grpcguard.Rules for Connect.
type Rules map[string][]string

// guarded is Rules compiled for one guard (see rpcguard.Table).
type guarded struct{ *rpcguard.Table }

func compile(guard *middleware.Guard, rules Rules) *guarded {
	return &guarded{rpcguard.Compile("connectguard", "a procedure", guard, rules)}
}
