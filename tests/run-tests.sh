#!/usr/bin/env bash
# Runs crpfs's tests and prints one closing line: "N passed, N failed".
#
#   tests/run-tests.sh unit         Check suites that need no target daemon
#   tests/run-tests.sh integration  suites against a real tgtd, and the
#                                   shell tests in tests/it/ on real mounts
#   tests/run-tests.sh all          both
#
# A test that cannot run (no root, no /dev/fuse, no tgtd) fails and says why:
# nothing here skips.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
what=${1:-all}
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
