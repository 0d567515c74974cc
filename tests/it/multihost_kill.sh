#!/usr/bin/env bash
# Acceptance (issue 4): kill -9 of one host's daemon (b) during heavy writes
# from all three.  The other two keep working: their calls complete (each
# bounded by $MH_CALL_WAIT s, far above the 2 s dead timeout plus
# recovery) and their background writers go on; a survivor recovers b
# exactly once (the survivors' logs name one recovery, the slot ends free);
# every file any host wrote with dd conv=fsync before the kill is intact;
# the killed host mounts again (after umount -l of its dead mount point)
# and sees everything; after unmounting all, crpfs fsck is clean and has
# verified the parity.  Both lock modes.
. "$(dirname "$0")/lib_multihost.sh"

HOSTS=(a b c)
VICTIM=b
SURVIVORS=(a c)

# load HOST: a streaming writer and a metadata churner on HOST until
# $T/stop exists; progress (completed rounds) in $T/prog.HOST.  A failed
# call is recorded in $T/werr.HOST unless HOST is the victim (its calls
# fail once it is killed).
load() {
	local h=$1 mnt i=0
	mnt=$(mh_mnt "$h")
	while [ ! -e "$T/stop" ]; do
		if ! dd if=/dev/urandom of="$mnt/heavy/$h.$((i % 6))" bs=1M count=2 status=none 2>>"$T/wlog.$h" ||
			! mkdir -p "$mnt/heavy/meta-$h/d$((i % 7))" 2>>"$T/wlog.$h" ||
			! touch "$mnt/heavy/meta-$h/d$((i % 7))/f$i" 2>>"$T/wlog.$h" ||
			! mv "$mnt/heavy/meta-$h/d$((i % 7))/f$i" "$mnt/heavy/meta-$h/g$i" 2>>"$T/wlog.$h" ||
			! rm -f "$mnt/heavy/meta-$h/g$((i - 5))" 2>>"$T/wlog.$h"; then
			[ -e "$T/stop" ] && exit 0
			[ "$h" = "$VICTIM" ] && [ -e "$T/killed" ] && exit 0
			echo "host $h: load round $i failed: $(tail -n 1 "$T/wlog.$h")" >>"$T/werr.$h"
			exit 1
		fi
		i=$((i + 1))
		echo "$i" >"$T/prog.$h"
	done
}

progress() {	# progress HOST: completed load rounds
	cat "$T/prog.$1" 2>/dev/null || echo 0
}

progressed() {	# progressed HOST N: HOST's load went past round N
	[ "$(progress "$1")" -gt "$2" ]
}

t_kill() {
	local h i p mnt loads=() p0 n
	mh_lab_start 4 256M
	mh_mkfs "$MODE"
	for h in "${HOSTS[@]}"; do
		mh_mount "$h"
	done
	mkdir "$(mh_mnt a)/heavy" "$(mh_mnt a)/sync" "$(mh_mnt a)/after"
	for h in b c; do
		mh_wait_for "$MH_ATTR_WAIT" test -d "$(mh_mnt "$h")/sync" ||
			mh_fail "the directories made on A are not seen on $h"
	done
	rm -f "$T/stop" "$T/killed"
	for h in "${HOSTS[@]}"; do
		load "$h" &
		loads+=($!)
		mh_bg_job "$!"
	done

	# Files made durable on every host while the load runs.
	: >"$T/sums"
	for i in 1 2 3 4 5; do
		for h in "${HOSTS[@]}"; do
			head -c $((4096 * (i * 37 % 97) + i * 1111 + 65536 * i)) /dev/urandom >"$T/src.$h.$i"
			dd if="$T/src.$h.$i" of="$(mh_mnt "$h")/sync/$h.$i" bs=64k conv=fsync status=none ||
				mh_fail "dd conv=fsync of sync/$h.$i on host $h failed"
			echo "$(mh_sha "$T/src.$h.$i") sync/$h.$i" >>"$T/sums"
		done
	done
	# One overwritten in place on the victim and fsync'd: the new content wins.
	head -c 100000 /dev/urandom >"$T/over"
	dd if="$T/over" of="$(mh_mnt b)/sync/b.2" bs=64k conv=fsync,notrunc status=none ||
		mh_fail "dd conv=fsync,notrunc of sync/b.2 on host b failed"
	dd if="$T/over" of="$T/src.b.2" bs=64k conv=notrunc status=none
	sed -i '/ sync\/b\.2$/d' "$T/sums"
	echo "$(mh_sha "$T/src.b.2") sync/b.2" >>"$T/sums"
	for h in "${HOSTS[@]}"; do
		mh_wait_for "$MH_CALL_WAIT" progressed "$h" 2 ||
			mh_fail "host $h's load made no progress before the kill: $(cat "$T/werr.$h" 2>/dev/null)"
	done

	mh_note "kill -9 of host $VICTIM (daemon ${MPID[$VICTIM]}) under load"
	touch "$T/killed"
	kill -9 "${MPID[$VICTIM]}"
	mh_wait_exit "${MPID[$VICTIM]}" 10 || mh_fail "the daemon of host $VICTIM survived kill -9"
	unset "MPID[$VICTIM]"
	mh_lazy_umount "$VICTIM"

	# The survivors keep working: new calls complete, the loads go on.
	for h in "${SURVIVORS[@]}"; do
		p0=$(progress "$h")
		mnt=$(mh_mnt "$h")
		for i in 1 2 3; do
			head -c $((200000 + i * 4096)) /dev/urandom >"$T/post.$h.$i"
			mh_call "$h" "a write + fsync after the kill of $VICTIM (dead timeout $((MH_DEAD_MS / 1000)) s)" \
				dd if="$T/post.$h.$i" of="$mnt/after/$h.$i" bs=64k conv=fsync status=none
			echo "$(mh_sha "$T/post.$h.$i") after/$h.$i" >>"$T/sums"
		done
		mh_call "$h" "mkdir after the kill of $VICTIM" mkdir "$mnt/after/dir-$h"
		mh_call "$h" "readdir after the kill of $VICTIM" ls "$mnt/sync"
		mh_wait_for "$MH_CALL_WAIT" progressed "$h" $((p0 + 2)) ||
			mh_fail "host $h's background load stopped after the kill of $VICTIM (round $(progress "$h"), was $p0): $(cat "$T/werr.$h" 2>/dev/null)"
	done
	mh_note "survivors a and c kept working"

	# Recovery, once.
	mh_wait_for "$MH_CALL_WAIT" mh_slot_freed "$VICTIM" ||
		mh_fail "host $VICTIM's slot is not freed $MH_CALL_WAIT s after the kill (slot states: $(mh_status_slot_state "$VICTIM"))"
	n=$(mh_recoveries_of "$VICTIM" "${SURVIVORS[@]}")
	[ "$n" = 1 ] ||
		mh_fail "the survivors' logs show $n recoveries of host $VICTIM ('recovered dead host $VICTIM'), expected exactly 1: $(grep -h "recover" "$(mh_log a)" "$(mh_log c)" | head -n 6 || true)"
	mh_note "host $VICTIM recovered once: $(grep -h "recovered dead host $VICTIM " "$(mh_log a)" "$(mh_log c)" || true)"

	touch "$T/stop"
	for p in "${loads[@]}"; do
		mh_wait_exit "$p" "$MH_CALL_WAIT" || mh_fail "a load still runs $MH_CALL_WAIT s after it was told to stop"
	done
	for h in "${SURVIVORS[@]}"; do
		[ ! -s "$T/werr.$h" ] || mh_fail "$(cat "$T/werr.$h")"
	done

	# The killed host mounts again and sees everything; so do the survivors.
	mh_mount "$VICTIM"
	for h in "${HOSTS[@]}"; do
		mnt=$(mh_mnt "$h")
		while read -r want path; do
			[ -f "$mnt/$path" ] || mh_fail "host $h: $path (written with fsync) is missing"
			[ "$(mh_sha "$mnt/$path")" = "$want" ] ||
				mh_fail "host $h: $path (written with fsync) differs ($(stat -c %s "$mnt/$path") bytes)"
		done <"$T/sums"
		find "$mnt" -type f -exec cat {} + >/dev/null 2>"$T/read.err" ||
			mh_fail "host $h: files unreadable after the recovery: $(head -n 3 "$T/read.err")"
	done
	mh_note "every host, $VICTIM remounted, reads all $(wc -l <"$T/sums") fsync'd files intact"

	for h in "${HOSTS[@]}"; do
		mh_umount "$h"
	done
	mh_fsck
}

mh_setup
mh_run_modes t_kill reserve pr
