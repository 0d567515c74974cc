#!/usr/bin/env bash
# Acceptance: a damaged block is rebuilt from parity, never taken for
# empty, and fsck --repair never throws away what parity can rebuild.
#
# On file members, RAID-5 (4 members) and RAID-6 (6 members): for each kind
# of block (superblock, shared state, block bitmap, inode bitmap, checksum
# table, inode table, directory bucket, extent block, xattr block, journal
# header, orphan list, open table, data), find the member that holds it
# (crp_locate), then, unmounted, (a) zero it on that member, (b) flip
# bytes in it (an open table: another slot's, which a mount never reads,
# and the mounting host's own, which it writes at once); each kind once
# per level, zeroed on one and flipped on the other.  Then:
#   - crpfs fsck (read-only) reports the block rebuilt, and writes nothing;
#   - a mount reads every file (identical to before) and lists every
#     directory; the daemon says what it rebuilt;
#   - crpfs fsck after the unmount: clean, except for a block the mount
#     never reads (another slot's open table), which it still reports;
#   - crpfs fsck --repair leaves every file present and identical, and a
#     second fsck is clean.
# RAID-6: one member's data region zeroed whole, then two members': every
# file reads back identical.  RAID-5 with one directory bucket zeroed on
# two members (beyond parity): fsck --repair names the files it held
# /lost+found/#INO (none freed), says which, and a second fsck is clean.
. "$(dirname "$0")/lib.sh"

crp_setup od dd cmp getfattr setfattr find sort
LOCATE=$CRPFS_BUILD/tests/crp_locate
[ -x "$LOCATE" ] || crp_fail "cannot run: $LOCATE is not built (run make)"

SIZE=32M

# use_array LEVEL N: the members of that array in the test's own
# directory, formatted once (prepare) and restored from the pristine copy
# for each case.
use_array() {
	local level=$1 n=$2 i
	crp_use_dir "$T/$CRP_TEST"
	NM=$n
	LEVEL=$level
	MEMBERS=
	for i in $(seq 0 $((n - 1))); do
		MEMBERS="$MEMBERS${MEMBERS:+,}file:$D/m$i"
	done
}

# The tree every case checks: small files in two directories (one large
# enough for several buckets), a file of more than 13 extents (an extent
# block), a file with extended attributes (an xattr block), a larger file.
populate() {
	local i
	mkdir "$MNT/d1" "$MNT/d2"
	for i in $(seq 1 300); do echo "small file $i" >"$MNT/d1/f$i"; done
	for i in $(seq 1 40); do head -c $((i * 1000)) /dev/urandom >"$MNT/d2/g$i"; done
	# Every other block written: 40 extents, more than the inode holds.
	for i in $(seq 0 2 78); do
		head -c 4096 /dev/urandom | dd of="$MNT/frag" bs=4096 seek="$i" conv=notrunc status=none
	done
	echo "has attributes" >"$MNT/x"
	setfattr -n user.colour -v "$(head -c 600 /dev/urandom | od -An -tx1 | tr -d ' \n')" "$MNT/x"
	head -c 2000000 /dev/urandom >"$MNT/big"
}

# The state to compare: every file's checksum, every directory's listing,
# the xattr.
snapshot() {
	local out=$1
	(
		cd "$MNT"
		find . -path ./lost+found -prune -o -type f -print | LC_ALL=C sort | xargs -d '\n' sha256sum
		find . -type d | LC_ALL=C sort | while read -r d; do
			echo "dir $d: $(ls -A "$d" | LC_ALL=C sort | tr '\n' ' ' | sha256sum | cut -c1-16)"
		done
		getfattr --only-values -n user.colour x | sha256sum
	) >"$out" || crp_fail "cannot read the tree back (see $out)"
}

prepare() {
	local i
	mkdir -p "$D/orig"
	"$MKFS" -l "$LEVEL" -n 2 -s "$SIZE" $(echo "$MEMBERS" | tr , ' ') >"$D/mkfs.log" 2>&1 ||
		crp_fail "mkfs.crpfs failed: $(cat "$D/mkfs.log")"
	crp_mount
	populate
	snapshot "$D/before"
	crp_umount
	crp_fsck
	# The frag file really has an extent chain.
	"$LOCATE" "$MEMBERS" extent /frag 0 >/dev/null 2>"$D/loc.err" ||
		crp_fail "/frag has no extent block: $(cat "$D/loc.err")"
	for i in $(seq 0 $((NM - 1))); do
		cp --sparse=always "$D/m$i" "$D/orig/m$i"
	done
}

restore() {
	local i
	for i in $(seq 0 $((NM - 1))); do
		cp --sparse=always "$D/orig/m$i" "$D/m$i"
	done
}

# flip FILE OFFSET: invert 8 bytes.
flip() {
	local f=$1 off=$2 b hex=""
	for b in $(od -An -tu1 -j "$off" -N 8 "$f"); do
		hex+=$(printf '\\x%02x' $((b ^ 0xff)))
	done
	printf "$hex" | dd of="$f" bs=1 seek="$off" count=8 conv=notrunc status=none
}

zero_block() {	# zero_block MEMBER_INDEX BYTE_OFFSET
	dd if=/dev/zero of="$D/m$1" bs=4096 seek=$(($2 / 4096)) count=1 conv=notrunc status=none
}

member_sums() {
	local i
	for i in $(seq 0 $((NM - 1))); do sha256sum <"$D/m$i"; done | awk '{ printf "%s", $1 }'
}

# fsck_rc [ARGS]: run crpfs fsck, its output in $D/fsck.out, status in RC.
fsck_rc() {
	RC=0
	"$CRPFS" fsck "$MEMBERS" "$@" >"$D/fsck.out" 2>&1 || RC=$?
	[ "$RC" -lt 8 ] || crp_fail "crpfs fsck $* could not run (exit $RC): $(tail -n 5 "$D/fsck.out")"
}

check_tree() {	# check_tree WHAT: mount, compare with the snapshot, unmount
	crp_mount
	snapshot "$D/after"
	diff "$D/before" "$D/after" >"$D/diff" || crp_fail "$1: the tree differs: $(head -n 5 "$D/diff")"
	crp_umount
}

# one_case KIND MODE LOCATE-ARGS...: damage the block, check everything.
one_case() {
	local kind=$1 mode=$2 blk member off k before
	shift 2
	restore
	read -r blk member _ off _ < <("$LOCATE" "$MEMBERS" "$@") ||
		crp_fail "$kind: crp_locate $* failed"
	if [ "$mode" = zero ]; then
		zero_block "$member" "$off"
	elif [ "$kind" = itable ]; then
		for k in 0 1 2 3 4 5 6 7; do flip "$D/m$member" $((off + 512 * k + 100)); done
	else
		flip "$D/m$member" $((off + 200))
		flip "$D/m$member" $((off + 24))
	fi
	crp_note "$kind ($mode): block $blk on m$member at byte $off"

	# Read-only fsck sees it, rebuilds it in memory, writes nothing.
	before=$(member_sums)
	fsck_rc
	[ "$RC" = 4 ] || crp_fail "$kind ($mode): read-only fsck exited $RC, not 4: $(cat "$D/fsck.out")"
	grep -q "(block $blk): .*; rebuilt from parity without member file:$D/m$member" "$D/fsck.out" ||
		crp_fail "$kind ($mode): read-only fsck does not report block $blk rebuilt: $(cat "$D/fsck.out")"
	[ "$(member_sums)" = "$before" ] || crp_fail "$kind ($mode): read-only fsck changed a member"

	# The mount reads through the damage.
	: >"$T/daemon.log"
	check_tree "$kind ($mode), first mount"
	if [ "$kind" != otable ]; then
		grep -q "block $blk, .*rebuilt from parity.*and repaired" "$T/daemon.log" ||
			crp_fail "$kind ($mode): the daemon does not say it repaired block $blk: $(grep -i rebuilt "$T/daemon.log" | head -n 3)"
	fi

	# What the mount repaired is gone; what it never read is still there.
	fsck_rc
	if [ "$kind" = otable ]; then
		[ "$RC" = 4 ] && grep -q "block $blk" "$D/fsck.out" ||
			crp_fail "$kind ($mode): fsck after the mount does not report block $blk (exit $RC): $(cat "$D/fsck.out")"
	else
		[ "$RC" = 0 ] || crp_fail "$kind ($mode): fsck after the mount exited $RC: $(cat "$D/fsck.out")"
	fi
	fsck_rc --repair
	[ "$RC" -le 1 ] || crp_fail "$kind ($mode): fsck --repair exited $RC: $(cat "$D/fsck.out")"
	if grep -Eq "freed|removed|lost\+found" "$D/fsck.out"; then
		crp_fail "$kind ($mode): fsck --repair gave something up: $(cat "$D/fsck.out")"
	fi
	fsck_rc
	[ "$RC" = 0 ] || crp_fail "$kind ($mode): second fsck exited $RC: $(cat "$D/fsck.out")"
	check_tree "$kind ($mode), after fsck --repair"
}

# all_kinds PHASE: every kind of block once, zeroed and flipped in turn
# (PHASE 0: the first kind zeroed, 1: flipped).  The two levels run in
# opposite phases, so that each kind is zeroed on one and flipped on the
# other: the damage is found the same way whatever the level, and each
# level rebuilds every kind.
all_kinds() {
	local modes=(zero flip) k=$1 kind args
	while read -r kind args <&3; do
		# shellcheck disable=SC2086 # args are words for crp_locate
		one_case "$kind" "${modes[$((k % 2))]}" $args
		k=$((k + 1))
	done 3<<-'EOF'
		sb sb
		shared shared
		bbitmap bbitmap 0
		ibitmap ibitmap 0
		csum csum /big 0
		itable itable /d1/f5
		dir dir /d1 0
		extent extent /frag 0
		xattr xattr /x
		jhdr jhdr 0
		orphan orphan 0
		otable otable 1 0
		own-otable otable 0 0
		data data /big 3
	EOF
}

t_raid5_each_block() {
	use_array 5 4
	prepare
	all_kinds 1
}

t_raid6_each_block() {
	use_array 6 6
	prepare
	all_kinds 0
}

# zero_region MEMBER...: everything from data_offset on.
zero_region() {
	local off m size
	off=$("$LOCATE" "$MEMBERS" dataoff) || crp_fail "crp_locate dataoff failed"
	for m in "$@"; do
		size=$(stat -c %s "$D/m$m")
		dd if=/dev/zero of="$D/m$m" bs=1M seek=$((off / 1048576)) \
			count=$(((size - off) / 1048576)) conv=notrunc status=none
	done
}

region_case() {
	local what=$1
	shift
	restore
	zero_region "$@"
	crp_note "$what: data regions of members $* zeroed"
	: >"$T/daemon.log"
	check_tree "$what, first mount"
	grep -q "rebuilt from parity without member .* and repaired" "$T/daemon.log" ||
		crp_fail "$what: the daemon rebuilt nothing"
	if [ $# = 2 ]; then
		grep -q "rebuilt from parity without member .* and member .* and repaired" "$T/daemon.log" ||
			crp_fail "$what: no block needed (or got) two columns rebuilt"
	fi
	fsck_rc --repair
	[ "$RC" -le 1 ] || crp_fail "$what: fsck --repair exited $RC: $(cat "$D/fsck.out")"
	if grep -Eq "freed|removed|lost\+found" "$D/fsck.out"; then
		crp_fail "$what: fsck --repair gave something up: $(cat "$D/fsck.out")"
	fi
	fsck_rc
	[ "$RC" = 0 ] || crp_fail "$what: second fsck exited $RC: $(cat "$D/fsck.out")"
	check_tree "$what, after fsck --repair"
}

t_raid6_member_regions() {
	use_array 6 6
	prepare
	region_case "one member" 1
	region_case "two members" 1 3
	region_case "two members, P and data of stripe 0" 5 2
}

t_raid5_bucket_beyond_parity() {
	local blk member off pm names moved n
	use_array 5 4
	prepare
	restore
	read -r blk member _ off pm _ < <("$LOCATE" "$MEMBERS" dir /d1 0) || crp_fail "crp_locate failed"
	# The bucket on its member, and the parity of its row: parity cannot
	# rebuild it.
	zero_block "$member" "$off"
	zero_block "$pm" "$off"
	fsck_rc
	[ "$RC" = 4 ] || crp_fail "read-only fsck exited $RC, not 4: $(cat "$D/fsck.out")"
	grep -q "block $blk of bucket 0 cannot be read even after reconstruction" "$D/fsck.out" ||
		crp_fail "read-only fsck does not name the bucket: $(head -n 20 "$D/fsck.out")"
	grep -q "freed" "$D/fsck.out" && crp_fail "read-only fsck speaks of freeing: $(cat "$D/fsck.out")"
	fsck_rc --repair
	[ "$RC" = 1 ] || crp_fail "fsck --repair exited $RC, not 1: $(cat "$D/fsck.out")"
	grep -q "freed" "$D/fsck.out" && crp_fail "fsck --repair freed something: $(grep freed "$D/fsck.out")"
	names=$(sed -n 's|.*has no name; named /lost+found/\(#[0-9]*\) (fixed)$|\1|p' "$D/fsck.out" | LC_ALL=C sort)
	n=$(echo "$names" | grep -c .)
	[ "$n" -gt 0 ] || crp_fail "fsck --repair names nothing in /lost+found: $(cat "$D/fsck.out")"
	crp_note "fsck --repair named $n files in /lost+found"
	fsck_rc
	[ "$RC" = 0 ] || crp_fail "second fsck exited $RC: $(cat "$D/fsck.out")"
	crp_mount
	moved=$(ls -A "$MNT/lost+found" | LC_ALL=C sort)
	[ "$moved" = "$names" ] || crp_fail "/lost+found holds '$moved', fsck said '$names'"
	crp_eq "$(stat -c %a "$MNT/lost+found")" 700 "mode of /lost+found"
	crp_eq "$(( $(ls "$MNT/d1" | wc -l) + n ))" 300 "files of d1 still named plus those in lost+found"
	# Every file is still there, under its name or in lost+found, whole.
	(cd "$MNT" && find . -type f -print0 | xargs -0 sha256sum | awk '{ print $1 }' | LC_ALL=C sort) >"$D/now"
	awk 'length($1) == 64 && $2 ~ /^\.\// { print $1 }' "$D/before" | LC_ALL=C sort >"$D/was"
	diff "$D/was" "$D/now" >"$D/diff" || crp_fail "the files' contents differ: $(head -n 5 "$D/diff")"
	crp_umount
}

crp_run t_raid5_each_block t_raid6_each_block t_raid6_member_regions t_raid5_bucket_beyond_parity
