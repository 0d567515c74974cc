#!/usr/bin/env bash
# Acceptance: bad arguments to every tool (mkfs.crpfs, mount.crpfs, crpfs)
# give a usage message or a sentence naming what is wrong, a failing exit
# status, and leave the members untouched (sha256 of every image compared).
. "$(dirname "$0")/lib.sh"

crp_setup
# Small members: every bad run below is followed by a checksum of them all.
crp_mkfs --size 32M
SUMS=$(crp_member_sums)
mkdir -p "$T/notdir.parent"
touch "$T/notadir"

# run_bad EXPECT_CODE USAGE|MESSAGE TOOL ARGS...
#   EXPECT_CODE: a number, or "nonzero"; USAGE: stderr must show the usage.
run_bad() {
	local want=$1 kind=$2 rc=0
	shift 2
	"$@" >"$T/out" 2>"$T/err" </dev/null || rc=$?
	local what="${*}"
	what=${what//$T\//}
	[ "$rc" -lt 128 ] || crp_fail "$what: crashed (status $rc)"
	if [ "$want" = nonzero ]; then
		[ "$rc" != 0 ] || crp_fail "$what: exited 0"
	else
		crp_eq "$rc" "$want" "$what: exit status"
	fi
	if [ "$kind" = USAGE ]; then
		grep -qi usage "$T/err" || crp_fail "$what: no usage message on stderr: $(cat "$T/err")"
	else
		[ -s "$T/err" ] || crp_fail "$what: nothing said on stderr"
	fi
	crp_eq "$(crp_member_sums)" "$SUMS" "$what: member images changed"
	crp_is_mounted "$MNT" && crp_fail "$what: something got mounted"
	return 0
}

t_mkfs() {
	local m="file:$T/m0 file:$T/m1 file:$T/m2"
	run_bad nonzero USAGE "$MKFS"
	run_bad nonzero USAGE "$MKFS" --no-such-option $m
	run_bad nonzero MESSAGE "$MKFS" -l 7 $m
	run_bad nonzero MESSAGE "$MKFS" -l 6 "file:$T/m0" "file:$T/m1" "file:$T/m2"
	run_bad nonzero MESSAGE "$MKFS" -c 3000 $m
	run_bad nonzero MESSAGE "$MKFS" -c banana $m
	run_bad nonzero MESSAGE "$MKFS" -n 0 $m
	run_bad nonzero MESSAGE "$MKFS" -m sometimes $m
	run_bad nonzero MESSAGE "$MKFS" -s -5 $m
	run_bad nonzero MESSAGE "$MKFS" "file:$T/m0" "file:$T/m0" "file:$T/m1"
	run_bad nonzero MESSAGE "$MKFS" "file:$T/m0" "file:$T/m1"
	run_bad nonzero MESSAGE "$MKFS" $m	# already crpfs, no -f
	run_bad nonzero MESSAGE "$MKFS" "nfs://host/x" "file:$T/m1" "file:$T/m2"
	[ ! -e "$T/m3" ] || crp_fail "mkfs created a member"
}

t_mount() {
	local rc
	run_bad 1 USAGE "$MOUNT_CRPFS"
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS"
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" extra
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" -x
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" -o
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" -o no_such_option
	grep -q no_such_option "$T/err" || crp_fail "the unknown option is not named: $(cat "$T/err")"
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" -o rw,bogus=1
	grep -q bogus "$T/err" || crp_fail "the unknown option bogus=1 is not named"
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" -o host=
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" -o 'host=bad name'
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" -o attr_timeout=soon
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" -o timeout=0
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" -o commit=soon
	grep -q "commit=soon" "$T/err" || crp_fail "the bad commit= value is not named: $(cat "$T/err")"
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" -o commit=60001
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" -o peer_commit=1001
	grep -q "peer_commit=1001" "$T/err" || crp_fail "the bad peer_commit= value is not named: $(cat "$T/err")"
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" -o peer_commit=soon
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" -o peer_commit
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" -o readahead=65537
	grep -q "readahead=65537" "$T/err" || crp_fail "the bad readahead= value is not named: $(cat "$T/err")"
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" -o readahead=-1
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" -o readahead=1k
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" -o readahead
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" -o commit
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$MNT" -o ro=yes
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$T/notadir"
	run_bad 1 USAGE "$MOUNT_CRPFS" "$MEMBERS" "$T/does/not/exist"
	run_bad 1 USAGE "$MOUNT_CRPFS" "file:$T/m0,,file:$T/m2" "$MNT"
	run_bad 1 USAGE "$MOUNT_CRPFS" "bogus://x,file:$T/m1,file:$T/m2" "$MNT"
	# A list that names paths that do not exist for members that are there
	# under the names mkfs gave them: refused (not guessed, not recorded
	# failed), naming both.  (-f under a timeout: a daemon that wrongly
	# mounts must not hang the test)
	echo "$MNT" >>"$T/mounts"
	run_bad 32 MESSAGE timeout 60 "$MOUNT_CRPFS" "file:$T/m0,file:$T/absent1,file:$T/absent2" "$MNT" -f
	sed "s|file:$T/m0,file:$T/absent1,file:$T/absent2||g" "$T/err" | grep -q absent2 || crp_fail "the wrong name is not named: $(cat "$T/err")"
	grep -q "position 2's member, file:$T/m2 (its name at mkfs)" "$T/err" || crp_fail "the refusal does not name the member that is there: $(cat "$T/err")"
	[ ! -e "$T/absent1" ] && [ ! -e "$T/absent2" ] || crp_fail "mount.crpfs created a missing member"
	# More members really gone than RAID-5 survives: refused at mount,
	# naming them.  (One missing mounts degraded: see degraded_mount.)
	mv "$T/m1" "$T/m1.away"
	mv "$T/m2" "$T/m2.away"
	rc=0
	timeout 60 "$MOUNT_CRPFS" "file:$T/m0,file:$T/m1,file:$T/m2" "$MNT" -f >"$T/out" 2>"$T/err" </dev/null || rc=$?
	mv "$T/m1.away" "$T/m1"
	mv "$T/m2.away" "$T/m2"
	crp_eq "$rc" 32 "mount with two members gone: exit status"
	crp_eq "$(crp_member_sums)" "$SUMS" "mount with two members gone: member images changed"
	crp_is_mounted "$MNT" && crp_fail "mounted with two members gone"
	grep -q "cannot run" "$T/err" || crp_fail "the refusal does not say the array cannot run: $(cat "$T/err")"
	grep -q "position 2 missing" "$T/err" || crp_fail "the missing member is not named: $(cat "$T/err")"
	# A file that is not crpfs.
	head -c $((256 * 1024 * 1024)) /dev/zero >"$T/zeros" 2>/dev/null || truncate -s 256M "$T/zeros"
	run_bad 32 MESSAGE timeout 60 "$MOUNT_CRPFS" "file:$T/zeros,file:$T/m1,file:$T/m2" "$MNT" -f
	sed "s|file:$T/zeros,file:$T/m1,file:$T/m2||g" "$T/err" | grep -q zeros || crp_fail "the foreign member is not named: $(cat "$T/err")"
	rm -f "$T/zeros"
}

t_crpfs() {
	local rc
	run_bad 2 USAGE "$CRPFS"
	run_bad 2 USAGE "$CRPFS" frobnicate
	run_bad 2 USAGE "$CRPFS" status
	run_bad 2 USAGE "$CRPFS" status --no-such-flag "$MEMBERS"
	run_bad 2 USAGE "$CRPFS" status "$MEMBERS" extra
	run_bad 2 USAGE "$CRPFS" status "$MEMBERS" --repair
	run_bad 2 USAGE "$CRPFS" status "file:$T/m0,,file:$T/m2"
	run_bad 16 USAGE "$CRPFS" fsck
	run_bad 16 USAGE "$CRPFS" fsck --no-such-flag "$MEMBERS"
	run_bad 16 USAGE "$CRPFS" fsck "$MEMBERS" --json
	run_bad 16 USAGE "$CRPFS" fsck "$MEMBERS" extra
	# Right syntax, wrong target: a message (not usage), not a crash.
	run_bad 1 MESSAGE "$CRPFS" status "$T"	# a directory that is no mount point
	grep -q "not a crpfs mount point" "$T/err" || crp_fail "status on a plain directory: $(cat "$T/err")"
	# A member gone: status still answers, says which, and writes nothing.
	mv "$T/m2" "$T/m2.away"
	rc=0
	"$CRPFS" status "file:$T/m0,file:$T/m1,file:$T/m2" --json >"$T/out" 2>"$T/err" || rc=$?
	mv "$T/m2.away" "$T/m2"
	crp_eq "$rc" 0 "crpfs status with a member gone: exit status ($(cat "$T/err"))"
	crp_eq "$(jq -r .state "$T/out")" degraded "array state with a member gone"
	crp_eq "$(jq -r '[.members[] | select(.state == "missing")] | length' "$T/out")" 1 "members missing"
	crp_eq "$(crp_member_sums)" "$SUMS" "crpfs status with a member gone changed the members"
	[ ! -e "$T/absent" ] || crp_fail "crpfs status created a missing member"
	run_bad 8 MESSAGE "$CRPFS" fsck "file:$T/absent1,file:$T/absent2,file:$T/absent3"
	# And the good form works on the untouched members.
	"$CRPFS" status "$MEMBERS" >"$T/out" 2>"$T/err" || crp_fail "crpfs status after the bad calls: $(cat "$T/err")"
	crp_fsck
	crp_eq "$(crp_member_sums)" "$SUMS" "crpfs fsck (no --repair) changed the members"
}

crp_run t_mkfs t_mount t_crpfs
