#!/usr/bin/env bash
# Acceptance (issue 8): a MEDIUM ERROR costs a block, never a member.
#
# On file members, RAID-5 (4 members) and RAID-6 (6 members): a file's
# data block and another file's inode-table block are made to read back
# MEDIUM ERROR (until written, as a disk's bad sector; crp_inject) on the
# members that hold them.  A mount reads both files identical, the daemon
# says it rebuilt each block from parity and wrote it back, the injection
# lists are empty again (the writes remapped the sectors), every member is
# still in sync (status: clean), and fsck finds nothing.
# Beyond parity: on RAID-5 a data block and the parity of its stripe both
# bad: reading that file fails with EIO (never other data), the other file
# reads, and no member is failed.  On RAID-6 the same two bad blocks are
# rebuilt from Q, and the file reads back identical.
. "$(dirname "$0")/lib.sh"

crp_setup jq
LOCATE=$CRPFS_BUILD/tests/crp_locate
INJECT=$CRPFS_BUILD/tests/crp_inject
for t in "$LOCATE" "$INJECT"; do
	[ -x "$t" ] || crp_fail "cannot run: $t is not built (run make)"
done

# array LEVEL N: format N members of 64 MiB, mount, write the two files,
# note their checksums, unmount.
array() {
	local level=$1 n=$2 i
	crp_use_dir "$T/$CRP_TEST"
	MEMBERS=
	for i in $(seq 0 $((n - 1))); do
		MEMBERS="$MEMBERS${MEMBERS:+,}file:$D/m$i"
	done
	"$MKFS" -l "$level" -n 2 -s 64M $(echo "$MEMBERS" | tr , ' ') >"$D/mkfs.log" 2>&1 ||
		crp_fail "mkfs.crpfs failed: $(cat "$D/mkfs.log")"
	crp_mount
	head -c 3000000 /dev/urandom >"$MNT/big"
	echo "a small file, whose inode we damage" >"$MNT/small"
	sync
	sha256sum "$MNT/big" "$MNT/small" | awk '{ print $1 }' >"$D/sums"
	crp_umount
}

# bad SPEC_PATH BYTE_OFFSET: the 4096-byte block there reads MEDIUM ERROR.
bad() {
	"$INJECT" "$1" medium $(($2 / 512)) 8 || crp_fail "crp_inject $1 medium failed"
}

# bad_count: bad ranges left on every member.
bad_count() {
	local f n=0
	for f in "$D"/m[0-9]; do
		n=$((n + $("$INJECT" "$f" list | grep -c '^medium:' || true)))
	done
	echo "$n"
}

# locate WHAT ARGS...: sets L_IDX L_PATH L_OFF L_P L_Q.
locate() {
	local line
	line=$("$LOCATE" "$MEMBERS" "$@") || crp_fail "crp_locate $*: failed"
	read -r _ L_IDX L_SPEC L_OFF L_P L_Q <<<"$line"
	L_PATH=${L_SPEC#file:}
}

status_clean() {
	"$CRPFS" status "$MNT" --json >"$D/st.json" 2>"$D/st.err" || crp_fail "crpfs status: $(cat "$D/st.err")"
	crp_eq "$(jq -r .state "$D/st.json")" clean "array state $1"
	crp_eq "$(jq -r '[.members[] | select(.state != "ok")] | length' "$D/st.json")" 0 "members not ok $1"
}

one_each() {
	local level=$1 n=$2 reads
	array "$level" "$n"
	locate data /big 100
	bad "$L_PATH" "$L_OFF"
	locate itable /small
	bad "$L_PATH" "$L_OFF"
	crp_eq "$(bad_count)" 2 "bad ranges injected"
	crp_mount
	sha256sum "$MNT/big" "$MNT/small" | awk '{ print $1 }' >"$D/sums.now"
	cmp -s "$D/sums" "$D/sums.now" || crp_fail "with two bad blocks, the files do not read back identical"
	reads=$(grep -c "unreadable block at array offset .* rebuilt from parity and rewritten" "$T/daemon.log" || true)
	[ "$reads" -ge 2 ] || crp_fail "the daemon did not say it rebuilt both blocks: $(tail -n 5 "$T/daemon.log")"
	crp_eq "$(bad_count)" 0 "bad ranges left after the rewrite"
	status_clean "after the medium errors"
	crp_umount
	crp_fsck
	crp_note "RAID-$level: a bad data block and a bad inode-table block rebuilt, rewritten; no member lost"
}

beyond_parity() {
	local level=$1 n=$2 rc=0
	array "$level" "$n"
	locate data /big 200
	bad "$L_PATH" "$L_OFF"
	# The parity of the same stripe sits at the same offset of member P.
	bad "$D/m$L_P" "$L_OFF"
	crp_mount
	if [ "$level" = 6 ]; then
		sha256sum "$MNT/big" "$MNT/small" | awk '{ print $1 }' >"$D/sums.now"
		cmp -s "$D/sums" "$D/sums.now" || crp_fail "RAID-6: data and P bad, the files differ"
		crp_eq "$(bad_count)" 0 "bad ranges left after the rewrite"
		crp_note "RAID-6: a data block and its stripe's P both bad: rebuilt from Q, identical"
	else
		cat "$MNT/big" >/dev/null 2>"$D/read.err" || rc=$?
		[ "$rc" != 0 ] || crp_fail "RAID-5: a block and its parity both bad, yet the file read"
		grep -q "Input/output error" "$D/read.err" ||
			crp_fail "RAID-5: the read failed otherwise than with EIO: $(cat "$D/read.err")"
		crp_eq "$(sha256sum <"$MNT/small" | awk '{ print $1 }')" "$(sed -n 2p "$D/sums")" \
			"the other file"
		crp_note "RAID-5: a block and its parity both bad: EIO on that file, the rest reads"
	fi
	status_clean "after the medium errors"
	crp_umount
	for f in "$D"/m[0-9]; do "$INJECT" "$f" clear; done
}

t_raid5_medium() {
	one_each 5 4
}

t_raid6_medium() {
	one_each 6 6
}

t_raid5_beyond_parity() {
	beyond_parity 5 4
}

t_raid6_two_bad() {
	beyond_parity 6 6
}

crp_run t_raid5_medium t_raid6_medium t_raid5_beyond_parity t_raid6_two_bad
