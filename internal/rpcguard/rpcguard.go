// Package rpcguard is what grpcguard and connectguard share: rules
// compiled into one guard Checker per method, and how a denial becomes an
// RPC status. (Both are modules of their own; internal/ is shared by
// import path, so they may import it.)
package rpcguard

import (
	"context"
	"fmt"
	"strings"

	"github.com/tokenguard/tokenguard/middleware"
)

// AnyMethod is the rules key for every method not listed.
const AnyMethod = "*"

// Checker is one rule's decision, a middleware.Guard.Checker.
type Checker func(context.Context, middleware.Request) (*middleware.Principal, error)

// rule is a listed method's decision and the URL its DPoP proofs name.
type rule struct {
	check Checker
	htu   string
}

// Table is a set of rules compiled for one guard: read-only once made, so
// interceptors share it across goroutines without locks.
type Table struct {
	base     string           // the guard's PublicURL, "" when unset
	byMethod map[string]*rule // by full method
	fallback Checker          // the "*" rule; nil: unlisted methods are refused
}

// Credentials sets req's Authorization and DPoP from the values the call
// carried under those keys (metadata or headers may repeat a key): the
// first of each, and how many there were, so that the guard refuses
// repeated ones as Require refuses repeated headers, with its challenge,
// its metric and its log line.
func Credentials(req *middleware.Request, authz, proof []string) {
	req.AuthorizationCount, req.DPoPCount = len(authz), len(proof)
	if len(authz) > 0 {
		req.Authorization = authz[0]
	}
	if len(proof) > 0 {
		req.DPoP = proof[0]
	}
}

// Compile checks rules (full method "/pkg.Service/Method", or "*" for
// every method not listed, to scopes) and makes one Checker per rule,
// which also puts the rule's scopes in the guard's scopes_supported. A nil
// guard, empty rules, a key that is neither "*" nor "/pkg.Service/Method",
// or a scope the guard refuses is a programming error: it panics, as
// Guard.RequirePolicy does, so it shows when the server is set up. pkg
// names the caller's package in those messages and noun what a key is
// ("a full method name", "a procedure").
func Compile(pkg, noun string, guard *middleware.Guard, rules map[string][]string) *Table {
	if guard == nil {
		panic(pkg + ": nil *middleware.Guard")
	}
	if len(rules) == 0 {
		panic(pkg + ": Rules is empty: every call would be refused")
	}
	g := &Table{base: guard.PublicURL(), byMethod: make(map[string]*rule, len(rules))}
	for method, scopes := range rules {
		if method != AnyMethod && !FullMethodOK(method) {
			panic(fmt.Sprintf("%s: Rules: %q is not %s (/pkg.Service/Method) or \"*\"", pkg, method, noun))
		}
		p := middleware.Policy{Scopes: scopes}
		if err := guard.CheckPolicy(p); err != nil {
			panic(fmt.Sprintf("%s: Rules[%q]: %v", pkg, method, err))
		}
		c := guard.Checker(p)
		if method == AnyMethod {
			g.fallback = c
			continue
		}
		g.byMethod[method] = &rule{check: c, htu: g.base + method}
	}
	return g
}

// FullMethodOK reports whether s is a gRPC full method name:
// "/package.Service/Method", the service a dot-separated list of
// identifiers and the method an identifier (so "/pkg.Svc/*" is not one:
// Rules has no patterns).
func FullMethodOK(s string) bool {
	rest, ok := strings.CutPrefix(s, "/")
	if !ok {
		return false
	}
	svc, m, ok := strings.Cut(rest, "/")
	if !ok || !ident(m) {
		return false
	}
	for part := range strings.SplitSeq(svc, ".") {
		if !ident(part) {
			return false
		}
	}
	return true
}

// ident reports whether s is a protobuf identifier: a letter or "_", then
// letters, digits and "_".
func ident(s string) bool {
	for i, c := range s {
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// Lookup returns the decision for fullMethod and the URL a DPoP proof must
// name, or ok false when the rules neither list the method nor have "*".
func (g *Table) Lookup(fullMethod string) (Checker, string, bool) {
	if r, ok := g.byMethod[fullMethod]; ok {
		return r.check, r.htu, true
	}
	if g.fallback != nil {
		return g.fallback, g.base + fullMethod, true
	}
	return nil, "", false
}

// Code is the gRPC status code (Connect's codes have the same numbers) for
// a middleware.Denial's HTTP status: InvalidArgument (3) for 400,
// Unauthenticated (16) for 401, PermissionDenied (7) for 403,
// ResourceExhausted (8) for 429 and Unavailable (14) for 503. Any other
// 4xx (none that Check returns) is PermissionDenied, any other 5xx
// Unavailable, anything else Unknown (2).
func Code(httpStatus int) uint32 {
	switch {
	case httpStatus == 400:
		return 3
	case httpStatus == 401:
		return 16
	case httpStatus == 403:
		return 7
	case httpStatus == 429:
		return 8
	case httpStatus == 503:
		return 14
	case httpStatus >= 400 && httpStatus < 500:
		return 7
	case httpStatus >= 500 && httpStatus < 600:
		return 14
	}
	return 2
}

// Message is a denial's status message: its code and fixed description,
// never token bytes or claim values.
func Message(d *middleware.Denial) string {
	if d.Description == "" {
		return d.Code
	}
	return d.Code + ": " + d.Description
}
