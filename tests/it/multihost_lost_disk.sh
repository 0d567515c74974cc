#!/usr/bin/env bash
# Acceptance (issue 8): a disk lost under three hosts.  RAID-5 on 4 LUNs
# (one LUN deleted at the target) and RAID-6 on 6 LUNs (two deleted), on a
# real tgtd, three hosts writing while it happens.  Every write that
# returned success is intact afterwards, every file reads identically on
# every host, and writing goes on; the member is recorded failed and
# crpfs status says so.  Then crpfs replace puts a fresh LUN in while a
# host writes; at the end the array is clean again, the content checksums
# match, crpfs fsck is clean and every stripe's parity verifies.  Both lock
# modes (RAID-5 in one, RAID-6 in the other, unless CRPFS_LOST_LEVEL says).
. "$(dirname "$0")/lib_multihost.sh"

HOSTS=(a b c)
# Which arrays each lock mode runs: by default RAID-5 in reserve mode and
# RAID-6 in pr mode (each level and each mode once); CRPFS_LOST_LEVEL=5,
# 6 or both runs that in each mode.
LEVEL=${CRPFS_LOST_LEVEL:-by-mode}

state_is() {		# state_is TARGET STATE
	[ "$(status_state "$1")" = "$2" ]
}

# check_all: every file listed reads back with its sum on every host (one
# sha256sum -c per host, the hosts side by side).
check_all() {
	local h i pids=()
	awk '{ print $1 "  " $2 }' "$T"/sums.* >"$T/manifest"
	for h in "${HOSTS[@]}"; do
		(cd "$(mh_mnt "$h")" && sha256sum --quiet -c "$T/manifest") >"$T/check.$h" 2>&1 &
		pids+=("$!")
		mh_bg_job "$!"
	done
	for i in "${!HOSTS[@]}"; do
		h=${HOSTS[$i]}
		wait "${pids[$i]}" || mh_fail "host $h: files differ from what was written ($1): $(head -n 3 "$T/check.$h")"
	done
}

status_state() {	# status_state TARGET: the array's state
	timeout -s KILL "$MH_TOOL_WAIT" "$CRPFS" status "$1" --json 2>/dev/null | jq -r .state
}

lost_case() {
	local level=$1 nluns=$2 ndel=$3 h n0 newm rc=0 pos
	mh_lab_start "$nluns" 64M
	timeout -s KILL "$MH_TOOL_WAIT" "$MKFS" -l "$level" -m "$MODE" -n 6 "${MEMBER_ARGS[@]}" \
		>"$T/mkfs.out" 2>&1 || mh_fail "mkfs.crpfs -l $level failed: $(tail -n 3 "$T/mkfs.out")"
	for h in "${HOSTS[@]}"; do
		mh_mount "$h"
	done
	mkdir "$(mh_mnt a)/w"
	for h in b c; do
		mh_wait_for "$MH_ATTR_WAIT" test -d "$(mh_mnt "$h")/w" || mh_fail "w/ not seen on $h"
	done
	rm -f "$T"/sums.* "$T"/prog.* "$T"/werr.* "$T"/wfail.* "$T/stop"
	for h in "${HOSTS[@]}"; do
		mh_sum_writer "$h" 2000 200000 &
		mh_bg_job "$!"
	done
	n0=$(mh_written)
	mh_wait_for "$MH_CALL_WAIT" mh_written_past $((n0 + 30)) ||
		mh_fail "the writers made no progress"
	# LUN 2 (and 5) deleted at the target, mid-write.
	timeout -s KILL "$MH_TOOL_WAIT" "$LAB" lun-del 2 --dir "$LAB_DIR" >"$T/lab.out" 2>&1 ||
		mh_fail "crpfs-lab lun-del 2 failed: $(tail -n 3 "$T/lab.out")"
	if [ "$ndel" = 2 ]; then
		timeout -s KILL "$MH_TOOL_WAIT" "$LAB" lun-del 5 --dir "$LAB_DIR" >/dev/null ||
			mh_fail "crpfs-lab lun-del 5 failed"
	fi
	mh_note "RAID-$level: deleted $ndel LUN(s) at the target under three writers"
	n0=$(mh_written)
	mh_wait_for "$MH_CALL_WAIT" mh_written_past $((n0 + 60)) ||
		mh_fail "writing stopped after the LUN went: $(cat "$T"/werr.* 2>/dev/null | head -n 3)"
	[ -z "$(cat "$T"/wfail.* 2>/dev/null || true)" ] ||
		mh_fail "writes failed while the array was degraded: $(cat "$T"/wfail.* "$T"/werr.* | head -n 4)"
	mh_wait_for "$MH_CALL_WAIT" state_is "$(mh_mnt a)" degraded ||
		mh_fail "crpfs status does not say degraded: $(status_state "$(mh_mnt a)")"
	mh_note "writing went on; every host sees the array degraded"

	# A fresh LUN in, rebuilt while the writers go on.
	for ((k = 1; k <= ndel; k++)); do
		newm=$(timeout -s KILL "$MH_TOOL_WAIT" "$LAB" lun-add 64M --dir "$LAB_DIR" |
			sed -n 's/^member: *//p')
		[ -n "$newm" ] || mh_fail "crpfs-lab lun-add printed no member"
		pos=$([ "$k" = 1 ] && echo 1 || echo 4)	# LUN 2 is position 1, LUN 5 position 4
		rc=0
		timeout -s KILL 600 "$CRPFS" replace "$(mh_mnt a)" "$pos" "$newm" --json \
			>"$T/replace.$k" 2>"$T/replace.$k.err" || rc=$?
		[ "$rc" = 0 ] || mh_fail "crpfs replace position $pos exited $rc: $(tail -n 3 "$T/replace.$k.err")"
		jq -e 'select(.state == "done")' "$T/replace.$k" >/dev/null ||
			mh_fail "crpfs replace did not finish: $(tail -n 2 "$T/replace.$k")"
	done
	touch "$T/stop"
	mh_wait_for "$MH_CALL_WAIT" state_is "$(mh_mnt b)" clean ||
		mh_fail "the array is not clean after the rebuild: $("$CRPFS" status "$(mh_mnt b)" --json 2>"$T/status.err" | jq -c '[.state, (.members[] | [.state, .spec, .detail])]' 2>&1 || true) $(tail -n 3 "$T/status.err"); replace said: $(tail -n 2 "$T"/replace.*)"
	[ -z "$(cat "$T"/wfail.* 2>/dev/null || true)" ] ||
		mh_fail "writes failed during the rebuild: $(cat "$T"/wfail.* "$T"/werr.* | head -n 4)"
	mh_note "rebuilt onto fresh LUNs under the writers; $(cat "$T"/sums.* | wc -l) files written"
	sleep 1
	check_all "after the rebuild"
	for h in "${HOSTS[@]}"; do
		mh_umount "$h"
	done
	MEMBERS=$(timeout -s KILL "$MH_TOOL_WAIT" "$CRPFS" status "$MEMBERS" --json | jq -r '[.members[].spec] | join(",")')
	mh_fsck
}

t_lost() {
	local level=$LEVEL

	[ "$level" != by-mode ] || level=$([ "$MODE" = reserve ] && echo 5 || echo 6)
	case $level in
	5) lost_case 5 4 1 ;;
	6) lost_case 6 6 2 ;;
	*)
		lost_case 5 4 1
		mh_teardown
		mh_scratch_clear
		lost_case 6 6 2
		;;
	esac
}

mh_setup
mh_run_modes t_lost ${CRPFS_MODES:-reserve pr}
