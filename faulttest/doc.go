// Package faulttest holds fault tests that run the tokenguard gateway as a
// real process, on real loopback sockets, in front of real dependencies it
// cannot see into: a JWKS server, an RFC 7662 introspection endpoint and a
// redis-server, all of which the tests break on purpose while traffic
// flows.
//
// It has no API; everything is in its tests. TestMain builds
// cmd/tokenguard once (with -race when the tests run under the race
// detector, so the gateway's own races are caught under load), and each
// test starts the binary with a generated YAML configuration on ports it
// picked, drives it over HTTP and reads its Prometheus metrics.
//
// Every request a test sends has an expected outcome computed from what
// it sent and the state the test had set up at the time (which keys were
// published, whether the introspection endpoint or Redis was up, and for
// how long); a response outside the allowed set is a wrong decision and
// fails the test. The upstream behind the gateway records every request
// that reaches it, so "a DPoP proof accepted twice" is checked where it
// matters, not only from status codes.
//
// Flags (after -args): -faulttest.load (duration of the plain load run,
// default 30s; also FAULTTEST_LOAD) and -faulttest.workers (default 12).
// Nothing listens beyond 127.0.0.1; the tests need redis-server in PATH
// for the Redis case (skipped, with a message, when it is missing).
package faulttest
