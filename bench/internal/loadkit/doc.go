// Package loadkit holds what the bench's load generators share: the
// log-linear latency [Histogram], CPU time from /proc ([ProcessCPU],
// [TreeCPU]), child processes that never outlive the generator ([Child]),
// the upstream and bare-proxy helper processes ([RunHelper]), the
// tokenguard gateway's benchmark configuration ([StartGateway]) and the
// in-process development issuer ([StartIssuer]).
//
// Everything listens on 127.0.0.1 only.
package loadkit
