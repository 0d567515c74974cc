#!/usr/bin/env bash
# Acceptance: a corrupt label, superblock copy or superblock is refused at
# mount with a message that names the member and the problem, or is
# repaired from a copy or from parity (and then the files are intact and
# fsck is clean).  Never a crash: the daemon exits with a status, not a
# signal, and tools do not crash either.
. "$(dirname "$0")/lib.sh"

crp_setup jq cmp

# Each test: its own members with a few files, unmounted, then damaged.
prepare() {
	crp_use_dir "$T/$CRP_TEST"
	crp_mkfs
	crp_mount
	mkdir "$MNT/dir"
	head -c 300000 /dev/urandom >"$D/payload"
	cp "$D/payload" "$MNT/dir/payload"
	echo small >"$MNT/small"
	crp_umount
	"$CRPFS" status "$MEMBERS" --json >"$D/status.json" 2>"$D/status.err" ||
		crp_fail "crpfs status on a healthy array failed: $(cat "$D/status.err")"
}

# garbage MEMBER_INDEX OFFSET LENGTH
garbage() {
	dd if=/dev/urandom of="$D/m$1" bs=1 seek="$2" count="$3" conv=notrunc status=none
}

# The mount either refuses, naming the member, or mounts with intact files.
expect_refused_or_repaired() {
	local member=$1 what=$2
	if crp_try_mount; then
		crp_note "$what: mounted (repaired): checking the files"
		cmp -s "$D/payload" "$MNT/dir/payload" || crp_fail "$what: mounted, but the payload differs"
		crp_eq "$(cat "$MNT/small")" small "$what: mounted, small file"
		crp_umount
		crp_fsck
	else
		[ "$CRP_EXIT" -lt 128 ] || crp_fail "$what: mount.crpfs died with signal $((CRP_EXIT - 128)): $(cat "$D/try.log")"
		[ "$CRP_EXIT" != 0 ] || crp_fail "$what: mount.crpfs exited 0 without mounting"
		# (the member list itself, quoted by the message, does not count)
		sed "s|$MEMBERS||g" "$D/try.log" | grep -q "/m$member" ||
			crp_fail "$what: the refusal does not name member m$member: $(cat "$D/try.log")"
		crp_note "$what: refused: $(grep -m1 . "$D/try.log")"
	fi
}

t_label_garbage() {
	prepare
	garbage 1 0 4096
	expect_refused_or_repaired 1 "garbage over the label of m1"
}

t_label_zeroed() {
	prepare
	dd if=/dev/zero of="$D/m2" bs=4096 count=1 conv=notrunc status=none
	expect_refused_or_repaired 2 "zeros over the label of m2"
}

t_sb_copy_garbage() {
	prepare
	garbage 0 1024 1024	# the superblock copy inside the label
	expect_refused_or_repaired 0 "garbage over the superblock copy of m0"
}

t_one_byte_flip() {
	prepare
	printf '\x5a' | dd of="$D/m1" bs=1 seek=100 count=1 conv=notrunc status=none
	expect_refused_or_repaired 1 "one byte changed in the label of m1"
}

t_superblock_garbage() {
	local off
	prepare
	off=$(jq -r .data_offset "$D/status.json")
	[ "$off" -gt 0 ] 2>/dev/null || crp_fail "crpfs status --json gives no data_offset: $(cat "$D/status.json")"
	# RAID-5 left-symmetric, three members: stripe 0 has P on m2 and data
	# chunk 0 (array block 0, the superblock) on m0.
	garbage 0 "$off" 4096
	expect_refused_or_repaired 0 "garbage over the superblock (m0 at data_offset)"
}

t_all_labels_garbage() {
	prepare
	garbage 0 0 4096
	garbage 1 0 4096
	garbage 2 0 4096
	if crp_try_mount; then
		crp_fail "mounted with every label destroyed"
	fi
	[ "$CRP_EXIT" -lt 128 ] || crp_fail "mount.crpfs died with signal $((CRP_EXIT - 128))"
	sed "s|$MEMBERS||g" "$D/try.log" | grep -Eq '/m[012]' || crp_fail "the refusal names no member: $(cat "$D/try.log")"
	local rc=0
	"$CRPFS" status "$MEMBERS" >"$D/st.out" 2>&1 || rc=$?
	[ "$rc" -lt 128 ] || crp_fail "crpfs status crashed on destroyed labels"
	rc=0
	"$CRPFS" fsck "$MEMBERS" >"$D/fsck.out" 2>&1 || rc=$?
	[ "$rc" -lt 128 ] || crp_fail "crpfs fsck crashed on destroyed labels"
	[ "$rc" != 0 ] || crp_fail "crpfs fsck says destroyed labels are clean"
}

t_status_names_bad_member() {
	local rc=0 state
	prepare
	garbage 1 0 4096
	"$CRPFS" status "$MEMBERS" --json >"$D/st.json" 2>"$D/st.err" || rc=$?
	[ "$rc" -lt 128 ] || crp_fail "crpfs status crashed on a corrupt label"
	if [ "$rc" = 0 ]; then
		state=$(jq -r '.members[] | select(.spec | endswith("/m1")) | .state' "$D/st.json")
		[ -n "$state" ] && [ "$state" != ok ] ||
			crp_fail "crpfs status calls the member with a corrupt label '$state'"
	else
		sed "s|$MEMBERS||g" "$D/st.err" | grep -q /m1 || crp_fail "crpfs status fails without naming m1: $(cat "$D/st.err")"
	fi
}

crp_run t_label_garbage t_label_zeroed t_sb_copy_garbage t_one_byte_flip t_superblock_garbage \
	t_all_labels_garbage t_status_names_bad_member
