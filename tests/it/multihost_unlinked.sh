#!/usr/bin/env bash
# Acceptance (issue 7): open files survive their unlink by another host.
# Host A holds a file open (crp_holder); host B unlinks it, or renames
# another file over it.  A keeps reading and writing it through its
# descriptor, every byte intact, and the space stays allocated while A
# holds it; after A closes, the space is free again (statfs, seen from B).
# A killed with kill -9 while it holds an unlinked file: the survivors'
# recovery frees it.  crpfs fsck is clean at the end.  Both lock modes.
. "$(dirname "$0")/lib_multihost.sh"

HOLDER=$CRPFS_BUILD/tests/crp_holder
SIZE=$((8 * 1024 * 1024))	# bytes written through the held descriptor, each time
BLOCKS=$((SIZE / 4096))
SLACK=16			# blocks: directory and extent blocks come and go

free_blocks() {	# free_blocks HOST: statfs free blocks seen on HOST
	stat -f -c %f "$(mh_mnt "$1")"
}

# hold_start HOST PATH: crp_holder on HOST's mount, as coprocess HOLD.
hold_start() {
	local ans
	coproc HOLD { exec "$HOLDER" "$1"; }
	mh_bg_job "$HOLD_PID"
	read -r -t "$MH_CALL_WAIT" -u "${HOLD[0]}" ans || mh_fail "crp_holder $1 did not answer"
	[ "$ans" = open ] || mh_fail "crp_holder could not open $1: $ans"
}

# hold WHAT CMD: one command to the holder; its answer must be "ok".
hold() {
	local what=$1 ans
	echo "$2" >&"${HOLD[1]}"
	read -r -t "$MH_CALL_WAIT" -u "${HOLD[0]}" ans ||
		mh_fail "$what: the holder did not answer within $MH_CALL_WAIT s"
	[ "$ans" = ok ] || mh_fail "$what: $ans"
}

space_back() {	# space_back HOST LIMIT: free blocks on HOST at least LIMIT
	[ "$(free_blocks "$1")" -ge "$2" ]
}

# held_case HOW: A holds a file, B removes its name (rm, or mv over it).
held_case() {
	local how=$1 f0 f1 fb
	f0=$(free_blocks b)
	hold_start "$(mh_mnt a)/held.$how"
	hold "A writes the file it holds" "write 0 $SIZE 1"
	mh_wait_for "$MH_ATTR_WAIT" test -f "$(mh_mnt b)/held.$how" ||
		mh_fail "B does not see the file A created"
	if [ "$how" = unlink ]; then
		rm "$(mh_mnt b)/held.$how" || mh_fail "B cannot unlink the file A holds"
	else
		echo "the new one" >"$(mh_mnt b)/other.$how"
		mv "$(mh_mnt b)/other.$how" "$(mh_mnt b)/held.$how" ||
			mh_fail "B cannot rename a file over the one A holds"
	fi
	hold "after B's $how, A reads what it wrote" "check 0 $SIZE 1"
	hold "after B's $how, A writes more" "write $SIZE $SIZE 2"
	hold "after B's $how, A reads back the new part" "check $SIZE $SIZE 2"
	hold "after B's $how, A reads back the first part" "check 0 $SIZE 1"
	f1=$(free_blocks b)
	[ "$f1" -lt $((f0 - 2 * BLOCKS + SLACK)) ] ||
		mh_fail "after B's $how the space of the file A holds is free already ($f1 free blocks, $f0 before the file)"
	mh_note "$how: A read and wrote 16 MiB through its descriptor; B sees $((f0 - f1)) blocks still in use"
	hold "A closes the file" close
	wait "$HOLD_PID" 2>/dev/null || true
	if ! mh_wait_for "$MH_CALL_WAIT" space_back b $((f0 - SLACK)); then
		fb=$(free_blocks b)
		mh_fail "after A closed the file B unlinked ($how), its space is not free: $fb free blocks, $f0 before"
	fi
	mh_note "$how: after A's close, B sees the space free again ($(free_blocks b) blocks free, $f0 before)"
	if [ "$how" = rename ]; then
		[ "$(cat "$(mh_mnt a)/held.$how")" = "the new one" ] ||
			mh_fail "the file renamed over the held one does not read back on A"
	fi
}

t_unlinked() {
	local f0 fb
	[ -x "$HOLDER" ] || mh_fail "cannot run: $HOLDER is not built (run make)"
	mh_lab_start 4 256M
	mh_mkfs "$MODE"
	mh_mount a
	mh_mount b
	mh_mount c
	held_case unlink
	held_case rename

	# A dies holding an unlinked file: its recovery frees it.
	f0=$(free_blocks b)
	hold_start "$(mh_mnt a)/held.kill"
	hold "A writes the file it holds" "write 0 $SIZE 3"
	mh_wait_for "$MH_ATTR_WAIT" test -f "$(mh_mnt b)/held.kill" ||
		mh_fail "B does not see the file A created"
	rm "$(mh_mnt b)/held.kill"
	hold "after B's unlink, A reads what it wrote" "check 0 $SIZE 3"
	[ "$(free_blocks b)" -lt $((f0 - BLOCKS + SLACK)) ] ||
		mh_fail "the space of the unlinked file A holds is free before A died"
	kill -9 "${MPID[a]}"
	kill -9 "$HOLD_PID" 2>/dev/null || true
	wait "${MPID[a]}" 2>/dev/null || true
	unset "MPID[a]"
	mh_lazy_umount a
	mh_wait_for "$MH_CALL_WAIT" mh_slot_freed a ||
		mh_fail "A's slot is not freed $MH_CALL_WAIT s after kill -9 (no recovery?)"
	if ! mh_wait_for "$MH_CALL_WAIT" space_back b $((f0 - SLACK)); then
		fb=$(free_blocks b)
		mh_fail "after A's recovery the unlinked file it held is not freed: $fb free blocks, $f0 before"
	fi
	mh_note "kill: A's recovery freed the unlinked file it held ($(free_blocks b) blocks free, $f0 before)"
	mh_umount b
	mh_umount c
	mh_fsck
}

mh_setup
mh_run_modes t_unlinked reserve pr
