#!/usr/bin/env bash
# Acceptance (issue 8): the write hole.  Three hosts write (files made
# durable with fsync, and a file rewritten without it) on a RAID-5 of 4
# LUNs at a real tgtd; all three are killed with -9 at once, then one LUN
# is deleted.  A host mounts again: the recovery of the dead hosts finds
# their dirty stripes with a member out, says what it proved with the
# block checksums and what it could not, and the mount works.  Every
# fsync'd file reads back identical; every other file reads back whole or
# fails with EIO, never anything else (never a wrong block).  Both lock
# modes.
. "$(dirname "$0")/lib_multihost.sh"

HOSTS=(a b c)

writer() {
	local h=$1 mnt i=0
	mnt=$(mh_mnt "$h")
	while [ ! -e "$T/stop" ] && [ "$i" -lt 4000 ]; do
		head -c $((16384 + (i * 4099) % 90000)) /dev/urandom >"$T/src.$h"
		if dd if="$T/src.$h" of="$mnt/d/$h.$i" bs=64k conv=fsync status=none 2>/dev/null; then
			echo "$(mh_sha "$T/src.$h") d/$h.$i" >>"$T/sums.$h"
		fi
		# And one file rewritten in place, never synced.
		dd if=/dev/urandom of="$mnt/d/$h.hot" bs=64k count=4 seek=$((i % 8)) conv=notrunc \
			status=none 2>/dev/null || true
		i=$((i + 1))
		echo "$i" >"$T/prog.$h"
	done
}

written_past() {
	[ "$({ cat "$T"/prog.* 2>/dev/null || true; } | awk '{ n += $1 } END { print n + 0 }')" -gt "$1" ]
}

t_hole() {
	local h rc want path n_ok=0 n_eio=0 f
	mh_lab_start 4 128M
	mh_mkfs "$MODE"
	for h in "${HOSTS[@]}"; do
		mh_mount "$h"
	done
	mkdir "$(mh_mnt a)/d"
	for h in b c; do
		mh_wait_for "$MH_ATTR_WAIT" test -d "$(mh_mnt "$h")/d" || mh_fail "d/ not seen on $h"
	done
	rm -f "$T"/sums.* "$T"/prog.* "$T/stop"
	for h in "${HOSTS[@]}"; do
		writer "$h" &
		mh_bg_job "$!"
	done
	mh_wait_for "$MH_CALL_WAIT" written_past 60 || mh_fail "the writers made no progress"
	# Every host dies at once, mid-write.
	for h in "${HOSTS[@]}"; do
		kill -9 "${MPID[$h]}"
	done
	for h in "${HOSTS[@]}"; do
		mh_wait_exit "${MPID[$h]}" 10 || mh_fail "host $h survived kill -9"
		unset "MPID[$h]"
		mh_lazy_umount "$h"
	done
	touch "$T/stop"
	timeout -s KILL "$MH_TOOL_WAIT" "$LAB" lun-del 3 --dir "$LAB_DIR" >"$T/lab.out" 2>&1 ||
		mh_fail "crpfs-lab lun-del 3 failed: $(tail -n 3 "$T/lab.out")"
	mh_note "all hosts killed mid-write, then LUN 3 deleted"

	# Mount again: the dead hosts are recovered on a degraded array.
	mh_mount a
	mh_wait_for "$MH_CALL_WAIT" test "$(grep -c "recovered dead host" "$(mh_log a)")" -ge 2 ||
		mh_fail "host a did not recover the dead hosts: $(tail -n 5 "$(mh_log a)")"
	grep -q "runs degraded" "$(mh_log a)" || mh_fail "the mount does not say it runs degraded"
	mh_note "recovery said: $(grep -h "could not be resynced\|resynced [0-9]* stripes" "$(mh_log a)" | tail -n 2 | tr '\n' ' ')"

	while read -r want path; do
		[ "$(mh_sha "$(mh_mnt a)/$path")" = "$want" ] ||
			mh_fail "$path, written with fsync, does not read back identical"
	done < <(cat "$T"/sums.*)
	# Every other file: whole, or EIO.
	for f in "$(mh_mnt a)"/d/*; do
		rc=0
		cat "$f" >/dev/null 2>"$T/read.err" || rc=$?
		if [ "$rc" = 0 ]; then
			n_ok=$((n_ok + 1))
		elif grep -q "Input/output error" "$T/read.err"; then
			n_eio=$((n_eio + 1))
		else
			mh_fail "reading $f failed otherwise than with EIO: $(cat "$T/read.err")"
		fi
	done
	mh_note "$(cat "$T"/sums.* | wc -l) fsync'd files identical; of all files, $n_ok read whole, $n_eio EIO"
	mh_umount a
}

mh_setup
mh_run_modes t_hole ${CRPFS_MODES:-reserve pr}
