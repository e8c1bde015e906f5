#!/usr/bin/env bash
# Instructions per request through the gateway's own handler chain, in
# process (no network, no upstream): a request without a token, answered
# 401, so the figure is what the gateway adds around the guard's cheapest
# decision. Counted twice: tracing off (no OTEL_* variable), and tracing on
# (OTEL_EXPORTER_OTLP_ENDPOINT set; spans are batched and never exported
# during the run). Same method as instructions.sh: two runs of N1 and N2
# requests, per request = the difference / (N2 - N1).
#
#   cd bench && ./gateway_instructions.sh   # about a minute; writes results/gateway-instructions.txt
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

# count N [VAR=VALUE...] prints the instructions of one run of N requests.
count() {
	local n=$1
	shift
	if ! env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT -u OTEL_TRACES_EXPORTER \
		"$@" GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off GOGC=off GOMAXPROCS=1 \
		timeout 600 valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" \
		"$TMP/gateway.test" -test.run '^TestInstructionsGateway$' -test.count 1 -gwinstr.n "$n" >"$TMP/out" 2>"$TMP/err"; then
		echo "gateway_instructions.sh: n=$n $* failed:" >&2
		cat "$TMP/out" "$TMP/err" >&2
		exit 1
	fi
	if ! grep -q "^instructions: gateway n=$n done$" "$TMP/out"; then
		echo "gateway_instructions.sh: n=$n did not run:" >&2
		cat "$TMP/out" >&2
		exit 1
	fi
	sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p' "$TMP/err"
}

{
	echo "# $(go version | cut -d' ' -f3), $(date -u '+%Y-%m-%d %H:%M UTC'), N1=$N1 N2=$N2: instructions per request through gateway.Handler (401, no token)"
	echo "# tracing count(N1) count(N2) per-request"
	a=$(count "$N1")
	b=$(count "$N2")
	echo "off $a $b $(((b - a) / (N2 - N1)))"
	on=(OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9 OTEL_BSP_SCHEDULE_DELAY=600000)
	a=$(count "$N1" "${on[@]}")
	b=$(count "$N2" "${on[@]}")
	echo "on $a $b $(((b - a) / (N2 - N1)))"
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
