#!/usr/bin/env bash
# Acceptance (issue 4): a hung host is fenced.  Host b's daemon is stopped
# (kill -STOP, not killed) while it writes.  The survivors declare it dead
# and recover it (its slot freed, one recovery logged) and keep working.
# A write + fsync queued on b while it hung, and any write after kill
# -CONT, is refused; the daemon stops by itself (no signal) with a clear
# message in its log (it was declared dead / fenced); nothing it tried to
# write after it was declared dead is on disk; b re-joins through a fresh
# mount and sees the survivors' data; after unmounting all, crpfs fsck is
# clean.  pr mode (registration preempted) and reserve mode (the same
# lease fence: its slot was taken away).
. "$(dirname "$0")/lib_multihost.sh"

HUNG=b

# load HOST: writes files on HOST until it fails or $T/stop exists;
# progress in $T/prog.HOST.
load() {
	local h=$1 mnt i=0
	mnt=$(mh_mnt "$h")
	while [ ! -e "$T/stop" ]; do
		dd if=/dev/urandom of="$mnt/data/load-$h.$((i % 4))" bs=256k count=4 status=none \
			2>/dev/null || exit 0
		i=$((i + 1))
		echo "$i" >"$T/prog.$h"
	done
}

progressed() {
	[ "$(cat "$T/prog.$1" 2>/dev/null || echo 0)" -gt "$2" ]
}

recovered() {	# a survivor logged the recovery of the hung host
	[ "$(mh_recoveries_of "$HUNG" a c)" -ge 1 ]
}

t_fence() {
	local h mnt pid rc n want_before got
	mh_lab_start 4 256M
	mh_mkfs "$MODE"
	for h in a b c; do
		mh_mount "$h"
	done
	mkdir "$(mh_mnt a)/data"
	mh_wait_for "$MH_ATTR_WAIT" test -d "$(mh_mnt b)/data" || mh_fail "the directory made on A is not seen on b"
	head -c 300000 /dev/urandom >"$T/before"
	want_before=$(mh_sha "$T/before")
	dd if="$T/before" of="$(mh_mnt b)/data/before" bs=64k conv=fsync status=none ||
		mh_fail "host b: dd conv=fsync before the hang failed"
	rm -f "$T/stop"
	load "$HUNG" &
	mh_bg_job "$!"
	mh_wait_for "$MH_CALL_WAIT" progressed "$HUNG" 1 || mh_fail "host $HUNG's load made no progress"

	pid=${MPID[$HUNG]}
	mh_note "kill -STOP of host $HUNG's daemon $pid while it writes"
	kill -STOP "$pid"

	# Declared dead and recovered by a survivor; the survivors keep working.
	mh_wait_for "$MH_CALL_WAIT" recovered ||
		mh_fail "no survivor logged 'recovered dead host $HUNG' within $MH_CALL_WAIT s of SIGSTOP (dead timeout $((MH_DEAD_MS / 1000)) s): $(grep -h "host $HUNG" "$(mh_log a)" "$(mh_log c)" | tail -n 4 || true)"
	mh_wait_for "$MH_CALL_WAIT" mh_slot_freed "$HUNG" ||
		mh_fail "host $HUNG's slot is not freed after its recovery (slot states: $(mh_status_slot_state "$HUNG"))"
	for h in a c; do
		head -c 200000 /dev/urandom >"$T/post.$h"
		rc=0
		timeout -s KILL "$MH_CALL_WAIT" dd if="$T/post.$h" of="$(mh_mnt "$h")/data/post.$h" bs=64k \
			conv=fsync status=none || rc=$?
		[ "$rc" = 0 ] ||
			mh_fail "host $h: a write + fsync while $HUNG hangs failed or hung (status $rc)"
	done
	mh_note "survivors declared $HUNG dead, recovered it and keep working"

	# A write queued on the hung host, then SIGCONT.
	head -c 200000 /dev/urandom >"$T/fenced"
	(
		rc=0
		dd if="$T/fenced" of="$(mh_mnt "$HUNG")/data/fenced" bs=64k conv=fsync status=none \
			2>"$T/fenced.err" || rc=$?
		echo "$rc" >"$T/fenced.rc"
	) &
	mh_bg_job "$!"
	mh_note "kill -CONT of host $HUNG's daemon $pid"
	kill -CONT "$pid"
	mh_wait_for "$MH_CALL_WAIT" test -s "$T/fenced.rc" ||
		mh_fail "the write queued on fenced host $HUNG did not return within $MH_CALL_WAIT s of SIGCONT"
	[ "$(cat "$T/fenced.rc")" != 0 ] ||
		mh_fail "host $HUNG, declared dead and recovered by a survivor, completed a write + fsync after SIGCONT"
	mh_note "the queued write on $HUNG was refused: $(head -n 1 "$T/fenced.err")"
	rc=0
	timeout -s KILL "$MH_CALL_WAIT" dd if="$T/fenced" of="$(mh_mnt "$HUNG")/data/late" bs=64k \
		conv=fsync status=none 2>/dev/null || rc=$?
	[ "$rc" != 0 ] || mh_fail "host $HUNG completed a new write + fsync after it was fenced"

	# The daemon stops by itself, saying why.
	mh_wait_exit "$pid" "$MH_CALL_WAIT" ||
		mh_fail "the fenced daemon of host $HUNG still runs $MH_CALL_WAIT s after SIGCONT: $(tail -n 3 "$(mh_log "$HUNG")")"
	unset "MPID[$HUNG]"
	[ "$MH_EXIT" -lt 128 ] ||
		mh_fail "the fenced daemon of host $HUNG died of signal $((MH_EXIT - 128)) instead of stopping: $(tail -n 3 "$(mh_log "$HUNG")")"
	grep -Eq "declared dead|fenced" "$(mh_log "$HUNG")" ||
		mh_fail "the fenced daemon of host $HUNG exited ($MH_EXIT) without saying it was declared dead or fenced: $(tail -n 5 "$(mh_log "$HUNG")")"
	mh_note "host $HUNG's daemon exited $MH_EXIT: $(grep -Eh "declared dead|fenced" "$(mh_log "$HUNG")" | head -n 1)"
	touch "$T/stop"
	mh_lazy_umount "$HUNG"

	# Nothing the fenced host wrote is on disk; what it fsync'd before is.
	for h in a c; do
		mnt=$(mh_mnt "$h")
		for n in fenced late; do
			got=$(mh_probe "$mnt/data/$n")
			[ "$got" = ENOENT ] ||
				mh_fail "host $h finds data/$n, written by $HUNG after it was declared dead: $got"
		done
		[ "$(mh_sha "$mnt/data/before")" = "$want_before" ] ||
			mh_fail "host $h: data/before, fsync'd by $HUNG before it hung, differs"
	done

	# Re-joining takes a fresh mount, which sees everything.
	mh_mount "$HUNG"
	mnt=$(mh_mnt "$HUNG")
	for h in a c; do
		[ "$(mh_sha "$mnt/data/post.$h")" = "$(mh_sha "$T/post.$h")" ] ||
			mh_fail "host $HUNG, remounted, reads data/post.$h (written by $h during the hang) wrongly"
	done
	[ "$(mh_sha "$mnt/data/before")" = "$want_before" ] || mh_fail "host $HUNG, remounted: data/before differs"
	[ "$(mh_probe "$mnt/data/fenced")" = ENOENT ] || mh_fail "host $HUNG, remounted, finds data/fenced"
	echo rejoined >"$mnt/data/rejoined" || mh_fail "host $HUNG, remounted, cannot write"
	mh_wait_for "$MH_ATTR_WAIT" test -f "$(mh_mnt a)/data/rejoined" ||
		mh_fail "a file written by the remounted $HUNG is not seen on a"

	for h in a b c; do
		mh_umount "$h"
	done
	mh_fsck
}

mh_setup
mh_run_modes t_fence ${FENCE_MODES:-pr reserve}
