#!/usr/bin/env bash
# Instructions per request (TestInstructionsGateway, -gwinstr.what):
#
#   off, on  a request without a token through the gateway's own handler
#            chain, in process (no network, no upstream), answered 401:
#            what the gateway adds around the guard's cheapest decision.
#            Tracing off (no OTEL_* variable), and tracing on
#            (OTEL_EXPORTER_OTLP_ENDPOINT set; spans are batched and never
#            exported during the run).
#   cached   a GET with a Bearer token the guard has cached, from a client
#            in the process over one keep-alive loopback connection to the
#            gateway's server (Start), proxied to an upstream in a child
#            process (callgrind does not follow it: not counted), 200.
#            Tracing off.
#   bare     the same through a bare httputil.ReverseProxy with the same
#            Transport settings (netutil.ConfigureProxy) on an http.Server
#            with the gateway's header and idle timeouts, as bench/load's
#            bare proxy. cached - bare is what the gateway adds to a
#            proxied request; the client and the Transport cancel out.
#
# Same method as instructions.sh: two runs of N1 and N2 requests, per
# request = the difference / (N2 - N1).
#
#   cd bench && ./gateway_instructions.sh   # about five minutes; writes results/gateway-instructions.txt
set -euo pipefail
cd "$(dirname "$0")/.."

N1=${INSTR_N1:-200}
N2=${INSTR_N2:-1200}
OUT=${INSTR_OUT:-bench/results/gateway-instructions.txt}
if ! command -v valgrind >/dev/null; then
	echo "gateway_instructions.sh: valgrind not found (apt-get install valgrind)" >&2
	exit 2
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
go test -c -o "$TMP/gateway.test" ./gateway

# count WHAT N [VAR=VALUE...] prints the instructions of one run of N
# requests of kind WHAT.
count() {
	local what=$1 n=$2
	shift 2
	if ! env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT -u OTEL_TRACES_EXPORTER \
		"$@" GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off GOGC=off GOMAXPROCS=1 \
		timeout 600 valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" \
		"$TMP/gateway.test" -test.run '^TestInstructionsGateway$' -test.count 1 -gwinstr.what "$what" -gwinstr.n "$n" >"$TMP/out" 2>"$TMP/err"; then
		echo "gateway_instructions.sh: $what n=$n $* failed:" >&2
		cat "$TMP/out" "$TMP/err" >&2
		exit 1
	fi
	if ! grep -q "^instructions: gateway n=$n done$" "$TMP/out"; then
		echo "gateway_instructions.sh: $what n=$n did not run:" >&2
		cat "$TMP/out" >&2
		exit 1
	fi
	sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p' "$TMP/err"
}

{
	echo "# $(go version | cut -d' ' -f3), $(date -u '+%Y-%m-%d %H:%M UTC'), N1=$N1 N2=$N2: instructions per request; off/on: gateway.Handler, 401 without a token, tracing off/on; cached: a cached Bearer GET from a client in the process through the gateway's server, proxied to an upstream in a child process (not counted); bare: the same through a bare httputil.ReverseProxy; cached - bare: what the gateway adds"
	echo "# label count(N1) count(N2) per-request"
	row() {
		local label=$1 what=$2 a b
		shift 2
		a=$(count "$what" "$N1" "$@")
		b=$(count "$what" "$N2" "$@")
		echo "$label $a $b $(((b - a) / (N2 - N1)))"
	}
	row off deny
	row on deny OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9 OTEL_BSP_SCHEDULE_DELAY=600000
	row cached cached
	row bare bare
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
