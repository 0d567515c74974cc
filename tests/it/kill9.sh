#!/usr/bin/env bash
# Acceptance: kill -9 of the daemon in the middle of heavy writes.  Files
# written and fsync'd (or fdatasync'd) before the kill must be intact after
# the dead mount is cleaned and the filesystem mounted again (the journal
# replays), and crpfs fsck must then find nothing.  The mount keeps
# operations for a group commit for up to 2 s, so that the kill finds a
# large batch not yet committed: it must go whole, taking nothing synced.
. "$(dirname "$0")/lib.sh"

crp_setup
crp_mkfs --size 512M
crp_mount -o commit=2000
mkdir "$MNT/heavy" "$MNT/sync" "$MNT/meta"

WRITERS=()
stop_writers() {
	local p
	for p in "${WRITERS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${WRITERS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	WRITERS=()
}

# Heavy background load: two streaming writers and one metadata churner.
# Each stops by itself when the mount goes away.
for w in 1 2; do
	(
		i=0
		while [ -d "$MNT/heavy" ]; do
			dd if=/dev/urandom of="$MNT/heavy/w$w.$((i % 12))" bs=1M count=4 status=none \
				2>/dev/null || exit 0
			i=$((i + 1))
		done
	) &
	WRITERS+=($!)
done
(
	i=0
	while [ -d "$MNT/meta" ]; do
		mkdir -p "$MNT/meta/d$((i % 20))" 2>/dev/null || exit 0
		touch "$MNT/meta/d$((i % 20))/f$i" 2>/dev/null || exit 0
		mv "$MNT/meta/d$((i % 20))/f$i" "$MNT/meta/d$(((i + 7) % 20))/g$i" 2>/dev/null || exit 0
		[ $((i % 3)) = 0 ] && rm -f "$MNT/meta/d$(((i + 7) % 20))/g$((i - 30))" 2>/dev/null
		i=$((i + 1))
	done
) &
WRITERS+=($!)

# Files made durable while the load runs; their checksums are recorded.
: >"$T/sums"
for i in $(seq 1 24); do
	head -c $((4096 * (i * 37 % 97) + i * 1111)) /dev/urandom >"$T/src.$i"
	if [ $((i % 2)) = 0 ]; then
		dd if="$T/src.$i" of="$MNT/sync/f$i" bs=64k conv=fsync status=none ||
			crp_fail "dd conv=fsync of file $i failed"
	else
		# fdatasync through the helper: it writes its own pattern.
		out=$("$HELPER" fsync "$MNT/sync/f$i" data $((i * 12345))) || true
		[ "$out" = ok ] || crp_fail "write + fdatasync of file $i: $out"
		cp "$MNT/sync/f$i" "$T/src.$i"
	fi
	(cd "$T" && sha256sum "src.$i") >>"$T/sums"
done
# One more overwritten in place and fsync'd: the new content must win.
head -c 100000 /dev/urandom >"$T/src.over"
dd if="$T/src.over" of="$MNT/sync/f2" bs=64k conv=fsync,notrunc status=none
dd if="$T/src.over" of="$T/src.2" bs=64k conv=notrunc status=none
sed -i "/ src\.2\$/d" "$T/sums"
(cd "$T" && sha256sum src.2) >>"$T/sums"
sleep 2	# let the load run on after the last fsync

crp_note "kill -9 of daemon $CRP_PID under load"
kill -9 "$CRP_PID"
wait "$CRP_PID" 2>/dev/null || true
umount -l "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null ||
	crp_fail "cannot clean the dead mount at $MNT"
stop_writers
crp_is_mounted "$MNT" && crp_fail "the dead mount is still listed"

t_replay_mount() {
	crp_mount
}
t_fsynced_intact() {
	local i
	for i in $(seq 1 24); do
		[ -f "$MNT/sync/f$i" ] || crp_fail "fsync'd file f$i is missing after the crash"
		cmp -s "$T/src.$i" "$MNT/sync/f$i" ||
			crp_fail "fsync'd file f$i differs after the crash ($(stat -c %s "$MNT/sync/f$i") bytes, expected $(stat -c %s "$T/src.$i"))"
	done
}
t_all_readable() {
	find "$MNT" -type f -exec cat {} + >/dev/null 2>"$T/read.err" ||
		crp_fail "files unreadable after replay: $(head -n 5 "$T/read.err")"
	ls -lR "$MNT" >/dev/null 2>"$T/ls.err" || crp_fail "ls -lR after replay: $(head -n 5 "$T/ls.err")"
	# The filesystem still takes writes.
	echo after >"$MNT/after" && [ "$(cat "$MNT/after")" = after ] ||
		crp_fail "cannot write after the replay"
}
t_umount_fsck() {
	crp_umount
	crp_fsck
}

CRP_TEST=replay t_replay_mount
rc=0
crp_run t_fsynced_intact t_all_readable || rc=1
CRP_TEST=fsck t_umount_fsck
exit $rc
