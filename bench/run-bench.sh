#!/usr/bin/env bash
# Runs every benchmark in ${BUILD:-build}/bench/ in name order and prints
# one table:
#
#   | area | benchmark | value | unit | baseline | baseline value | ratio |
#
# Table rows (lines starting with "| ") go to standard output, everything
# else a benchmark prints (progress, notes) to standard error.  Builds
# nothing: run `make` first.  Exits non-zero, naming them, if any benchmark
# failed or none was found.  Benchmarks that need tgtd start their own.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
dir=$BUILD/bench

header='| area | benchmark | value | unit | baseline | baseline value | ratio |'
echo "$header"
echo '|---|---|---|---|---|---|---|'

benches=()
if [ -d "$dir" ]; then
	while IFS= read -r -d '' f; do
		benches+=("$f")
	done < <(find "$dir" -maxdepth 1 -type f -perm -u+x -print0 | LC_ALL=C sort -z)
fi
if [ "${#benches[@]}" -eq 0 ]; then
	echo "run-bench: no benchmarks in $dir: build them with make first" >&2
	exit 1
fi

failed=()
for b in "${benches[@]}"; do
	name=$(basename "$b")
	echo "run-bench: $name" >&2
	# Rows to stdout; a bench's own header or separator, and any other
	# line, to stderr so that the table has exactly one header.
	"$b" | while IFS= read -r line; do
		case $line in
		"$header" | "|---"*) printf '%s\n' "$line" >&2 ;;
		"| "*) printf '%s\n' "$line" ;;
		*) printf '%s\n' "$line" >&2 ;;
		esac
	done
	rc=${PIPESTATUS[0]}
	if [ "$rc" -ne 0 ]; then
		echo "run-bench: $name failed (exit status $rc)" >&2
		failed+=("$name")
	fi
done

if [ "${#failed[@]}" -gt 0 ]; then
	echo "run-bench: failed: ${failed[*]}" >&2
	exit 1
fi
exit 0
