#!/usr/bin/env bash
# Runs crpfs's tests and prints one closing line: "N passed, N failed".
#
#   tests/run-tests.sh unit         Check suites that need no target daemon
#   tests/run-tests.sh integration  suites against a real tgtd, and the
#                                   shell tests in tests/it/ on real mounts
#   tests/run-tests.sh all          both
#   tests/run-tests.sh asan         the unit suites of a sanitizer build
#                                   (BUILD=build-asan), without the fuzzer
#   tests/run-tests.sh lanes        all, and asan of $ASAN_BUILD, in two
#                                   lanes side by side: integration in one,
#                                   unit then asan in the other
#
# A test that cannot run (no root, no /dev/fuse, no tgtd) fails and says why:
# nothing here skips.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
what=${1:-all}

if [ "$what" = lanes ]; then
	# The unit suites need no target; the integration tests spend most of
	# their time waiting on I/O and on each other.  The second lane's output
	# is kept and shown after the first's, so that neither is torn.
	lanes=$(mktemp -d /tmp/crpfs-lanes.XXXXXX)
	(
		BUILD=$BUILD "$0" unit
		u=$?
		BUILD=${ASAN_BUILD:-build-asan} "$0" asan
		a=$?
		[ "$u" = 0 ] && [ "$a" = 0 ]
	) >"$lanes/unit" 2>&1 &
	lane_pid=$!
	trap 'kill "$lane_pid" 2>/dev/null; rm -rf "$lanes"' EXIT
	BUILD=$BUILD "$0" integration | tee "$lanes/integration"
	rc1=${PIPESTATUS[0]}
	wait "$lane_pid"
	rc2=$?
	echo "=== the second lane: the unit suites, plain and under the sanitizers"
	cat "$lanes/unit"
	echo "=== both lanes (integration; unit; unit under the sanitizers):"
	cat "$lanes/integration" "$lanes/unit" | grep -E '^failed: '
	cat "$lanes/integration" "$lanes/unit" | grep -E '^[0-9]+ passed, [0-9]+ failed$' |
		awk '{ print; p += $1; f += $3 } END { print "in all: " p " passed, " f " failed" }'
	[ "$rc1" = 0 ] && [ "$rc2" = 0 ]
	exit
fi
if [ "$what" = asan ]; then
	export CRPFS_NO_FUZZ=1 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
	what=unit
fi
export CRPFS_BUILD=$PWD/$BUILD
export CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-300}

passed=0
failed=0
failures=()
logs=$(mktemp -d /tmp/crpfs-tests.XXXXXX)
trap 'rm -rf "$logs"' EXIT

# Each test's output goes to the terminal and to a log; the end of a failed
# test's log is shown again before the closing line, where it is seen.
run() {
	local name=$1
	shift
	local start=$SECONDS rc
	echo "=== $name"
	"$@" 2>&1 | tee "$logs/$name.log"
	rc=${PIPESTATUS[0]}
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		echo "--- PASS $name ($((SECONDS - start)) s)"
	else
		failed=$((failed + 1))
		failures+=("$name")
		echo "--- FAIL $name ($((SECONDS - start)) s, exit $rc)"
	fi
}

is_integration() {
	case "$1" in
	check_tgt_* | check_it_*) return 0 ;;
	*) return 1 ;;
	esac
}

if [ "$what" = unit ] || [ "$what" = all ]; then
	for t in "$BUILD"/tests/check_*; do
		[ -x "$t" ] || continue
		n=$(basename "$t")
		is_integration "$n" && continue
		run "$n" "$t"
	done
fi

if [ "$what" = unit ] || [ "$what" = all ]; then
	# The decoder fuzzer runs briefly on every check; its corpus starts empty.
	for f in tests/fuzz/fuzz_*.c; do
		[ -f "$f" ] || continue
		n=$(basename "$f" .c)
		if [ -z "${CRPFS_NO_FUZZ:-}" ]; then
			run "$n" bash -c "b=build-fuzz/$n; [ -x \$b ] || { echo \"\$b missing: make fuzz (needs clang)\"; exit 1; }; \
				d=\$(mktemp -d); \$b -max_total_time=${FUZZ_SECONDS:-15} -rss_limit_mb=2048 \$d >\$d.log 2>&1; rc=\$?; \
				tail -n 3 \$d.log; rm -rf \$d \$d.log; exit \$rc"
		fi
	done
fi

if [ "$what" = integration ] || [ "$what" = all ]; then
	for t in "$BUILD"/tests/check_*; do
		[ -x "$t" ] || continue
		n=$(basename "$t")
		is_integration "$n" || continue
		run "$n" "$t"
	done
	for t in tests/it/*.sh; do
		[ -f "$t" ] || continue
		case $(basename "$t") in lib*.sh) continue ;; esac # shared helpers, not a test
		run "$(basename "$t" .sh)" bash "$t"
	done
fi

for name in "${failures[@]}"; do
	echo "=== end of the output of failed $name:"
	grep -v '^stripe [0-9]*: ' "$logs/$name.log" | tail -n 40
done
if [ "$failed" -gt 0 ]; then
	echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
