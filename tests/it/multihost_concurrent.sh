#!/usr/bin/env bash
# Acceptance (issue 4): three hosts with four writers each create 3,000
# files in one directory at the same time (250 per writer), and write
# disjoint 1 MiB ranges of one shared file at the same time (each writer its
# own range, content known).  Afterwards every host lists all 3,000 names
# and reads the shared file's exact expected content; every daemon unmounts
# cleanly; crpfs fsck is clean and has verified every stripe's parity.  Both
# lock modes.
. "$(dirname "$0")/lib_multihost.sh"

HOSTS=(a b c)
WRITERS=4
PER_WRITER=250
RANGE=$((1024 * 1024))

# writer HOST W K: 250 creates in dir/, with this writer's range of the
# shared file written (dd conv=notrunc, fsync) half way through.
writer() {
	local host=$1 w=$2 k=$3 mnt i
	mnt=$(mh_mnt "$host")
	for ((i = 0; i < PER_WRITER; i++)); do
		if [ "$i" = $((PER_WRITER / 2)) ]; then
			dd if="$T/piece.$k" of="$mnt/shared" bs=64k seek=$((k * RANGE / 65536)) \
				conv=notrunc,fsync status=none 2>>"$T/werr.$host.$w" ||
				{ echo "host $host writer $w: writing range $k of the shared file failed" >>"$T/werr.$host.$w"; exit 1; }
		fi
		{ echo "$host $w $i" >"$mnt/dir/$host-$w-$i"; } 2>>"$T/werr.$host.$w" ||
			{ echo "host $host writer $w: creating $host-$w-$i failed" >>"$T/werr.$host.$w"; exit 1; }
		echo "$i" >"$T/wprog.$host.$w"
	done
	echo done >"$T/wdone.$host.$w"
}

writers_done() {	# every writer finished, or one failed
	[ "$(ls "$T"/wdone.* 2>/dev/null | wc -l)" = 12 ] || [ -n "$(cat "$T"/werr.* 2>/dev/null)" ]
}

files_made() {		# files created so far by all writers
	cat "$T"/wprog.* 2>/dev/null | awk '{ n += $1 + 1 } END { print n + 0 }'
}

all_listed() {	# all_listed HOST: readdir on HOST gives exactly the expected names
	ls -A "$(mh_mnt "$1")/dir" | sort >"$T/list.$1"
	cmp -s "$T/list.$1" "$T/names"
}

t_concurrent() {
	local h w k pids=() p end want got n bad
	mh_lab_start 4 256M
	mh_mkfs "$MODE"
	for h in "${HOSTS[@]}"; do
		mh_mount "$h"
	done
	mkdir "$(mh_mnt a)/dir"
	# The shared file exists (sparse, full size) before the writers start.
	truncate -s $((${#HOSTS[@]} * WRITERS * RANGE)) "$(mh_mnt a)/shared"
	for h in b c; do
		mh_wait_for "$MH_ATTR_WAIT" test -d "$(mh_mnt "$h")/dir" ||
			mh_fail "the directory made on A is not seen on $h"
		mh_wait_for "$MH_ATTR_WAIT" test -f "$(mh_mnt "$h")/shared" ||
			mh_fail "the shared file made on A is not seen on $h"
	done
	: >"$T/expected"
	: >"$T/names"
	k=0
	for h in "${HOSTS[@]}"; do
		for ((w = 0; w < WRITERS; w++)); do
			head -c "$RANGE" /dev/urandom >"$T/piece.$k"
			cat "$T/piece.$k" >>"$T/expected"
			for ((n = 0; n < PER_WRITER; n++)); do
				echo "$h-$w-$n"
			done >>"$T/names"
			k=$((k + 1))
		done
	done
	LC_ALL=C sort -o "$T/names" "$T/names"
	[ "$(wc -l <"$T/names")" = 3000 ] || mh_fail "test bug: $(wc -l <"$T/names") names, not 3000"

	k=0
	for h in "${HOSTS[@]}"; do
		for ((w = 0; w < WRITERS; w++)); do
			writer "$h" "$w" "$k" &
			pids+=($!)
			mh_bg_job "$!"
			k=$((k + 1))
		done
	done
	mh_wait_progress "12 writers" writers_done files_made ||
		mh_fail "the writers stopped making progress: $MH_PROGRESS of 3000 files made, $(ls "$T"/wdone.* 2>/dev/null | wc -l) of 12 writers done; $(cat "$T"/werr.* 2>/dev/null | head -n 3)"
	for p in "${pids[@]}"; do
		wait "$p" || true
	done
	bad=$(cat "$T"/werr.* 2>/dev/null | head -n 6 || true)
	[ -z "$bad" ] || mh_fail "writers failed: $bad"
	[ "$(ls "$T"/wdone.* | wc -l)" = 12 ] || mh_fail "only $(ls "$T"/wdone.* | wc -l) of 12 writers finished"
	mh_note "12 writers on 3 hosts: 3,000 creates and 12 MiB of disjoint ranges done"

	want=$(mh_sha "$T/expected")
	for h in "${HOSTS[@]}"; do
		if ! mh_wait_for "$MH_ATTR_WAIT" all_listed "$h"; then
			n=$(wc -l <"$T/list.$h")
			mh_fail "host $h lists $n names in dir, expected 3000; missing: $(LC_ALL=C comm -13 "$T/list.$h" "$T/names" | head -n 5 | tr '\n' ' ') extra: $(LC_ALL=C comm -23 "$T/list.$h" "$T/names" | head -n 5 | tr '\n' ' ')"
		fi
		got=$(mh_sha "$(mh_mnt "$h")/shared")
		if [ "$got" != "$want" ]; then
			cmp "$(mh_mnt "$h")/shared" "$T/expected" >"$T/cmp.$h" 2>&1 || true
			mh_fail "host $h reads the shared file with sha256 $got, expected $want ($(stat -c %s "$(mh_mnt "$h")/shared") bytes; $(head -n 1 "$T/cmp.$h"))"
		fi
		# A sample of the small files reads back on every host.
		for n in a-0-0 b-3-249 c-2-125; do
			[ "$(cat "$(mh_mnt "$h")/dir/$n")" = "${n//-/ }" ] ||
				mh_fail "host $h reads dir/$n as '$(cat "$(mh_mnt "$h")/dir/$n")', expected '${n//-/ }'"
		done
	done
	mh_note "every host lists the 3,000 names and reads the shared file exactly"

	for h in "${HOSTS[@]}"; do
		mh_umount "$h"
	done
	mh_fsck
}

mh_setup
mh_run_modes t_concurrent reserve pr
