#!/usr/bin/env bash
# Side-by-side benchmarks of tokenguard and its peers, with one command:
#
#   cd bench && ./run.sh                      # ROUNDS=5 BENCHTIME=1s: about 15 minutes on 2 cores
#   ROUNDS=1 BENCHTIME=200x ./run.sh          # a quick smoke run (figures meaningless)
#
# 1. Proves every contestant accepts the valid token and refuses the bad
#    ones (TestContestantsCheck) and checks allocations (TestAllocGuard),
#    before anything is timed.
# 2. Compiles the test binary once, then runs ROUNDS rounds; each round
#    runs every contestant's benchmarks once, starting at a different
#    contestant each round, so a noisy neighbour hits all of them alike.
# 3. Measures memory per entry (once), records mutex/block profiles of the
#    cached parallel path, counts instructions per request with valgrind
#    if it is installed (instructions.sh), runs the gateway load generator
#    (bench/load), and writes results/results.md, results/ratios.svg and
#    the results section of ../BENCHMARKS.md (cmd/benchreport).
#
# Environment: ROUNDS (default 5), BENCHTIME (go test -benchtime, default
# 1s), LOAD_DURATION (default 10s). Needs Go; redis-server for the Redis
# DPoP rows (skipped without it). Binds 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")"

ROUNDS=${ROUNDS:-5}
BENCHTIME=${BENCHTIME:-1s}
LOAD_DURATION=${LOAD_DURATION:-10s}
if ! [[ "$ROUNDS" =~ ^[0-9]+$ ]] || [ "$ROUNDS" -lt 1 ] || [ "$ROUNDS" -gt 50 ]; then
	echo "run.sh: ROUNDS must be a whole number from 1 to 50, got '$ROUNDS'" >&2
	exit 2
fi
if ! [[ "$BENCHTIME" =~ ^[0-9]+(x|ns|us|ms|s|m)$ ]]; then
	echo "run.sh: BENCHTIME must look like 1s, 500ms or 200x, got '$BENCHTIME'" >&2
	exit 2
fi

OUT=results
RAW=$OUT/raw
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
BIN=$TMP/bench.test

# Each entry is one contestant: a -bench pattern (levels split on '/').
# Each entry is one contestant: one or more -bench patterns (levels split
# on '/'), separated by ';' and run back to back. Every contestant compared
# with the floor runs right after its own floor run, so its ratio compares
# measurements taken seconds apart: on a shared VM the floor itself drifts
# by tens of percent over minutes. BenchmarkDPoP and BenchmarkIntrospected
# carry their own baselines; the cached path is judged in absolute time.
CONTESTANTS=(
	'^BenchmarkFloor$;^BenchmarkGuard$/./^cache=off$'
	'^BenchmarkGuard$/./^cache=on$;^BenchmarkControl$'
	'^BenchmarkFloor$;^BenchmarkPeer$/^auth0$'
	'^BenchmarkFloor$;^BenchmarkPeer$/^keyfunc$'
	'^BenchmarkFloor$;^BenchmarkPeer$/^go-oidc$'
	'^BenchmarkFloor$;^BenchmarkPeer$/^jwx$'
	'^BenchmarkDPoP$'
	'^BenchmarkIntrospected$'
)

started=$(date +%s)
echo "== $(go version); $(nproc) CPUs; ROUNDS=$ROUNDS BENCHTIME=$BENCHTIME"

echo "== correctness before timing: every contestant accepts the valid token and refuses the bad ones; allocation guard"
go test -count=1 -run '^(TestContestantsCheck|TestAllocGuard)$' .

echo "== compiling the benchmark binary once"
go test -c -o "$BIN" .

rm -rf "$RAW"
mkdir -p "$RAW"
n=${#CONTESTANTS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
	echo "== round $r of $ROUNDS"
	for ((i = 0; i < n; i++)); do
		IFS=';' read -r -a patterns <<<"${CONTESTANTS[$(((i + r - 1) % n))]}"
		for pattern in "${patterns[@]}"; do
			echo "   $pattern"
			# -test.timeout bounds a stuck run; a failure stops the script.
			"$BIN" -test.run '^$' -test.bench "$pattern" -test.benchmem -test.count 1 \
				-test.benchtime "$BENCHTIME" -test.timeout 10m >>"$RAW/round-$r.txt"
		done
	done
done

echo "== memory per entry (replay store with 1,000,000 entries, token cache)"
"$BIN" -test.run '^$' -test.bench '^BenchmarkMemory$' -test.benchtime 1x -test.timeout 5m >"$RAW/memory.txt"

echo "== mutex and block profiles of the cached parallel path"
"$BIN" -test.run '^$' -test.bench '^BenchmarkGuard$/^ES256$/^cache=on$/^parallel$' -test.benchtime "$BENCHTIME" \
	-test.mutexprofile "$TMP/mutex.out" -test.mutexprofilefraction 1 \
	-test.blockprofile "$TMP/block.out" -test.blockprofilerate 1 -test.timeout 5m >"$TMP/contention-bench.txt"
{
	echo "Mutex and block profiles of BenchmarkGuard/ES256/cache=on/parallel (run.sh, $(date -u '+%Y-%m-%d %H:%M UTC'))."
	echo "Contention on the hot path would show here as tokenguard frames."
	echo
	cat "$TMP/contention-bench.txt"
	echo
	echo "--- mutex profile (delay) ---"
	go tool pprof -top -nodecount 20 "$BIN" "$TMP/mutex.out" 2>&1 || true
	echo
	echo "--- block profile (delay) ---"
	go tool pprof -top -nodecount 20 "$BIN" "$TMP/block.out" 2>&1 || true
} >"$OUT/contention.txt"

rm -f "$OUT/instructions.txt"
if command -v valgrind >/dev/null; then
	echo "== instructions per request (callgrind; ./instructions.sh)"
	# A failure here (an instruction valgrind does not know, a timeout)
	# must not throw away the rounds above: the counts are left out.
	if ! INSTR_OUT="$OUT/instructions.txt" ./instructions.sh; then
		echo "run.sh: instructions.sh failed; instruction counts left out" >&2
		rm -f "$OUT/instructions.txt"
	fi
else
	echo "== no valgrind: instruction counts left out (apt-get install valgrind)"
fi

rm -f "$OUT/load.md"
if [ -d load ]; then
	echo "== gateway load generator (bench/load), $LOAD_DURATION"
	if ! go run ./load -duration "$LOAD_DURATION" -out "$OUT/load.md"; then
		echo "run.sh: the load generator failed; its section is left out" >&2
		rm -f "$OUT/load.md"
	fi
fi

echo "== report"
go run ./cmd/benchreport -raw "$RAW" -out "$OUT" -benchmarks ../BENCHMARKS.md -go "$(go version)" \
	-benchtime "$BENCHTIME" -load "$OUT/load.md" -instructions "$OUT/instructions.txt"
echo "== done in $(($(date +%s) - started)) s: $OUT/results.md, $OUT/ratios.svg, ../BENCHMARKS.md"
