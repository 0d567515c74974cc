#!/usr/bin/env bash
# Acceptance (issue 7): the racing-rename storm.  Three hosts on one tgtd
# (RAID-5, 4 LUNs) each run crp_storm: create with O_CREAT|O_TRUNC, write
# and read back, rename across two shared directories over whatever is
# there, write and read back through the still-open descriptor, close,
# unlink, on names that collide between the hosts.  No call on an open
# descriptor may fail (no ESTALE, no EIO) and every byte reads back; after
# unmounting, crpfs fsck finds no problem (no block both free and in use,
# none leaked) and every stripe's parity verifies.  Both lock modes.
#
# CRPFS_STORM_ITERATIONS (default 300) and CRPFS_STORM_ROUNDS (default 1)
# make it longer: each round is a fresh storm on the same filesystem,
# checked by fsck before the next.
. "$(dirname "$0")/lib_multihost.sh"

STORM=$CRPFS_BUILD/tests/crp_storm
HOSTS=(a b c)
ITERATIONS=${CRPFS_STORM_ITERATIONS:-300}
ROUNDS=${CRPFS_STORM_ROUNDS:-1}
NAMES=6

storm_done() {
	local h
	for h in "${HOSTS[@]}"; do
		[ -f "$T/storm.rc.$h" ] || return 1
	done
}

storm_progress() {
	cat "$T"/storm.prog.* 2>/dev/null | awk '{ n += $1 } END { print n + 0 }'
}

t_storm() {
	local h round rc out
	[ -x "$STORM" ] || mh_fail "cannot run: $STORM is not built (run make)"
	mh_lab_start 4 256M
	mh_mkfs "$MODE"
	for round in $(seq 1 "$ROUNDS"); do
		for h in "${HOSTS[@]}"; do
			mh_mount "$h"
		done
		mkdir -p "$(mh_mnt a)/d1" "$(mh_mnt a)/d2"
		for h in b c; do
			mh_wait_for "$MH_ATTR_WAIT" test -d "$(mh_mnt "$h")/d2" ||
				mh_fail "the directories made on A are not seen on $h"
		done
		rm -f "$T"/storm.*
		for h in "${HOSTS[@]}"; do
			(
				rc=0
				"$STORM" "$(mh_mnt "$h")" "$h$round" "$ITERATIONS" "$NAMES" \
					"$T/storm.prog.$h" >"$T/storm.out.$h" 2>&1 || rc=$?
				echo "$rc" >"$T/storm.rc.$h"
			) &
			mh_bg_job "$!"
		done
		# The kernels forget inodes while the storm runs (as memory
		# pressure makes them do), so that forgets race the others too.
		(
			while [ ! -f "$T/storm.stop" ]; do
				echo 2 >/proc/sys/vm/drop_caches 2>/dev/null || true
				sleep 0.5
			done
		) &
		mh_bg_job "$!"
		mh_wait_progress "storm round $round" storm_done storm_progress ||
			mh_fail "round $round: the storm stopped making progress after $MH_PROGRESS of $((3 * ITERATIONS)) iterations"
		touch "$T/storm.stop"
		for h in "${HOSTS[@]}"; do
			rc=$(cat "$T/storm.rc.$h")
			out=$(cat "$T/storm.out.$h")
			[ "$rc" = 0 ] || mh_fail "round $round: host $h: $out"
			mh_note "round $round host $h: $out"
		done
		for h in "${HOSTS[@]}"; do
			mh_umount "$h"
		done
		mh_fsck
	done
}

mh_setup
mh_run_modes t_storm reserve pr
