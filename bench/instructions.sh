#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: the cost figure
# a shared, noisy machine cannot move (the same binary and inputs execute the
# same instructions, however busy the neighbours are). It complements the
# timed ratios of run.sh, which are what the targets are judged on.
#
#   cd bench && ./instructions.sh      # about 90 s on 2 cores; writes results/instructions.txt
#
# TestInstructionBudget (instructions_budget_test.go, run by CI) runs this
# script and fails when a row exceeds testdata/instruction-budget.txt.
#
# For each algorithm it counts four rows: floor (the bare signature
# check), guard (a full request, token cache off), cached (the same token
# again, cache on) and dpop (a DPoP request whose token is cached and whose
# proof is fresh, signed with that algorithm). Each runs twice, with N1 and
# N2 operations after identical set-up (fixed keys from testdata/keys, a
# fixed token, N2 proofs made for dpop in both runs); per operation =
# (count(N2) - count(N1)) / (N2 - N1), so process start, the JWKS fetch,
# proof making and the warm-up cancel out. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")"

N1=${INSTR_N1:-20}
N2=${INSTR_N2:-220}
# Counts run JOBS at a time: each is deterministic on its own, so running
# them side by side changes the wall time, not the figures.
JOBS=${INSTR_JOBS:-2}
OUT=${INSTR_OUT:-results/instructions.txt}
if ! [[ "$N1" =~ ^[0-9]+$ && "$N2" =~ ^[0-9]+$ ]] || [ "$N2" -le "$N1" ]; then
	echo "instructions.sh: INSTR_N1 and INSTR_N2 must be whole numbers with N2 > N1, got '$N1' '$N2'" >&2
	exit 2
fi
if ! [[ "$JOBS" =~ ^[1-9][0-9]*$ ]]; then
	echo "instructions.sh: INSTR_JOBS must be a whole number of at least 1, got '$JOBS'" >&2
	exit 2
fi
if ! command -v valgrind >/dev/null; then
	echo "instructions.sh: valgrind not found (apt-get install valgrind)" >&2
	exit 2
fi

TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait || true; rm -rf "$TMP"' EXIT
go test -c -o "$TMP/bench.test" .

# count WHAT ALG N writes the instructions callgrind counted for one run
# to $TMP/WHAT-ALG-N.count.
# Go's asynchronous preemption signals upset valgrind; it is turned off.
# valgrind 3.19 cannot decode RDTSCP, which the runtime reads the cycle
# counter with on CPUs that have it: the runtime is told not to use it.
# The collector is off and one processor runs Go code: when a collection
# happens and what its idle-time workers do depend on timing, which moved
# the dpop rows by several per cent between runs of the same binary.
# Allocation is still counted (mallocgc is on the path); collection is
# not, and allocations per request are held by the allocation guard
# (testdata/allocs.txt) instead.
count() {
	local base="$TMP/$1-$2-$3"
	if ! GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off GOGC=off GOMAXPROCS=1 timeout 600 valgrind --tool=callgrind --callgrind-out-file="$base.cg" \
		"$TMP/bench.test" -test.run '^TestInstructions$' -test.count 1 \
		-instr.what "$1" -instr.alg "$2" -instr.n "$3" -instr.prep "$N2" >"$base.out" 2>"$base.err"; then
		echo "instructions.sh: $1 $2 n=$3 failed:" >&2
		cat "$base.out" "$base.err" >&2
		return 1
	fi
	# The test prints this line only after every operation was accepted.
	if ! grep -q "^instructions: $1 $2 n=$3 done$" "$base.out"; then
		echo "instructions.sh: $1 $2 n=$3 did not run (skipped?):" >&2
		cat "$base.out" >&2
		return 1
	fi
	sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p' "$base.err" >"$base.count"
	rm -f "$base.cg"
}

ALGS=(ES256 RS256 EdDSA)
WHATS=(floor guard cached dpop)
# The runtime's own background work (sysmon wakes by the clock) moves a
# run's total by some tens of thousands of instructions, whatever N is:
# nothing against the other rows' 500,000 and more per operation, but
# several per cent of the cached path's 17,000. Its rows run CACHED_MULT
# times as many operations, which divides that noise by as much.
CACHED_MULT=10
# ops WHAT N: the operations a WHAT row runs where the others run N.
ops() {
	if [ "$1" = cached ]; then echo $(($2 * CACHED_MULT)); else echo "$2"; fi
}
# The slowest runs (RS256 dpop makes N2 RSA proofs) start first.
running=0
for alg in RS256 ES256 EdDSA; do
	for what in dpop guard floor cached; do
		for n in "$N2" "$N1"; do
			if [ "$running" -ge "$JOBS" ]; then
				wait -n || { echo "instructions.sh: a count failed" >&2; exit 1; }
				running=$((running - 1))
			fi
			count "$what" "$alg" "$(ops "$what" "$n")" &
			running=$((running + 1))
		done
	done
done
while [ "$running" -gt 0 ]; do
	wait -n || { echo "instructions.sh: a count failed" >&2; exit 1; }
	running=$((running - 1))
done

{
	echo "# $(go version | cut -d' ' -f3), $(date -u '+%Y-%m-%d %H:%M UTC'), N1=$N1 N2=$N2: instructions per operation (callgrind)"
	echo "# cached rows run N1×$CACHED_MULT and N2×$CACHED_MULT operations; per-op divides by their difference"
	echo "# what alg count(N1) count(N2) per-op"
	for alg in "${ALGS[@]}"; do
		for what in "${WHATS[@]}"; do
			n1=$(ops "$what" "$N1")
			n2=$(ops "$what" "$N2")
			a=$(cat "$TMP/$what-$alg-$n1.count")
			b=$(cat "$TMP/$what-$alg-$n2.count")
			if [ -z "$a" ] || [ -z "$b" ]; then
				echo "instructions.sh: $what $alg: callgrind printed no total" >&2
				exit 1
			fi
			echo "$what $alg $a $b $(((b - a) / (n2 - n1)))"
		done
	done
} >"$TMP/result"
mkdir -p "$(dirname "$OUT")"
mv "$TMP/result" "$OUT"
cat "$OUT"
