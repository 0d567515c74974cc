#!/usr/bin/env bash
# Acceptance (issue 8): a target that goes away for a moment costs no
# member.  Two hosts write fsync'd files to a RAID-5 of 4 LUNs on a real
# tgtd; the tgtd is stopped and started again under them (every session
# ends, every reservation with it; crpfs-lab restart).  Each host logs in
# again within its reconnect window: writing goes on, no member is
# recorded failed (crpfs status: clean on both hosts), every write that
# returned success reads back identical on both hosts, and after the
# unmount crpfs fsck is clean and every stripe's parity verifies.  Both
# lock modes.
. "$(dirname "$0")/lib_multihost.sh"

HOSTS=(a b)

status_state() {
	timeout -s KILL "$MH_TOOL_WAIT" "$CRPFS" status "$1" --json 2>/dev/null | jq -r .state
}

# How many lines of each host's log say "$1" (a b).
log_counts() {
	local h
	for h in "${HOSTS[@]}"; do
		printf '%s ' "$(grep -c -- "$1" "$(mh_log "$h")" || true)"
	done
}

# Have the writers written GOAL files in all?  (for mh_wait_progress)
at_goal() {
	mh_written_past "$GOAL"
}

t_restart() {
	local h path want p
	mh_lab_start 4 128M
	mh_mkfs "$MODE"
	for h in "${HOSTS[@]}"; do
		mh_mount "$h"
	done
	mkdir "$(mh_mnt a)/w"
	mh_wait_for "$MH_ATTR_WAIT" test -d "$(mh_mnt b)/w" || mh_fail "w/ not seen on b"
	rm -f "$T"/sums.* "$T"/prog.* "$T"/werr.* "$T"/wfail.* "$T/stop"
	for h in "${HOSTS[@]}"; do
		mh_sum_writer "$h" 3000 100000 &
		mh_bg_job "$!"
	done
	GOAL=$(($(mh_written) + 20))
	mh_wait_progress "writing before the restart" at_goal mh_written ||
		mh_fail "the writers made no progress: $(cat "$T"/werr.* 2>/dev/null | head -n 3)"
	timeout -s KILL "$MH_TOOL_WAIT" "$LAB" restart --dir "$LAB_DIR" >"$T/lab.out" 2>&1 ||
		mh_fail "crpfs-lab restart failed: $(tail -n 3 "$T/lab.out")"
	mh_note "tgtd restarted under two writers"
	GOAL=$(($(mh_written) + 40))
	mh_wait_progress "writing after the restart" at_goal mh_written ||
		mh_fail "writing stopped after the restart: $(cat "$T"/werr.* 2>/dev/null | head -n 3)"
	touch "$T/stop"
	for p in $(cat "$T/jobs"); do
		mh_wait_for "$MH_CALL_WAIT" eval "! kill -0 $p 2>/dev/null" || mh_fail "a writer did not stop"
	done
	[ -z "$(cat "$T"/wfail.* 2>/dev/null || true)" ] ||
		mh_fail "writes failed across the restart: $(cat "$T"/wfail.* "$T"/werr.* | head -n 4)"
	for h in "${HOSTS[@]}"; do
		[ "$(status_state "$(mh_mnt "$h")")" = clean ] ||
			mh_fail "host $h: the array is not clean after the restart: $("$CRPFS" status "$(mh_mnt "$h")" --json 2>&1 | jq -c '[.state, (.members[] | [.state, .detail])]')"
		while read -r want path; do
			[ "$(mh_sha "$(mh_mnt "$h")/$path")" = "$want" ] ||
				mh_fail "host $h: $path differs from what was written"
		done < <(cat "$T"/sums.*)
	done
	mh_note "$(cat "$T"/sums.* | wc -l) files written, none failed; the array stayed clean; reconnects: $(log_counts "logging in again"); batches of the other host waited for: $(log_counts "waiting for it to commit")"
	for h in "${HOSTS[@]}"; do
		mh_umount "$h"
	done
	mh_fsck
}

mh_setup
mh_run_modes t_restart ${CRPFS_MODES:-reserve pr}
