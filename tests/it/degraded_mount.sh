#!/usr/bin/env bash
# Acceptance (issue 8) on file: members, one host: a member named missing
# mounts degraded and says so, every file reads back and writing goes on;
# with too many gone the mount is refused, clearly, and nothing is
# written; the old member given back is stale; crpfs replace rebuilds a
# new member online while a writer runs, and after kill -9 of the
# rebuild it resumes from its checkpoint (not from the start); at the end
# the array is redundant again: status clean, fsck clean with every
# stripe's parity verified, every file identical.
. "$(dirname "$0")/lib.sh"

crp_setup jq sha256sum

NFILES=30

snapshot() {	# snapshot FILE: sha256 of every file under the mount, sorted
	(cd "$MNT" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$1"
}

status_json() {
	"$CRPFS" status "$1" --json >"$T/st.json" 2>"$T/st.err" ||
		crp_fail "crpfs status $1: $(cat "$T/st.err")"
}

fill() {
	local i
	mkdir -p "$MNT/data"
	for ((i = 0; i < NFILES; i++)); do
		head -c $(((i * 7919) % 300000 + i * 4096 + 1)) /dev/urandom >"$MNT/data/f$i"
	done
}

t_degraded() {
	local rc=0 before
	crp_use_dir "$T/deg"
	crp_mkfs --size 96M
	crp_mount
	fill
	snapshot "$D/sums"
	crp_umount

	# Member 1 named missing: a degraded mount that says so.
	MEMBERS="file:$D/m0,missing,file:$D/m2"
	crp_mount
	grep -q "runs degraded" "$T/daemon.log" || crp_fail "the degraded mount does not say so: $(tail -n 3 "$T/daemon.log")"
	snapshot "$D/sums.deg"
	cmp -s "$D/sums" "$D/sums.deg" || crp_fail "degraded: files differ: $(diff "$D/sums" "$D/sums.deg" | head -n 3)"
	head -c 500000 /dev/urandom >"$MNT/data/written-degraded"
	sha256sum <"$MNT/data/written-degraded" >"$D/new.sum"
	status_json "$MNT"
	crp_eq "$(jq -r .state "$T/st.json")" degraded "array state"
	crp_eq "$(jq -r .members[1].state "$T/st.json")" failed "state of member 1"
	snapshot "$D/sums"
	crp_umount
	crp_note "one member missing: mounted degraded, every file read back, writing goes on"

	# Two gone: refused, and nothing written.
	before=$(sha256sum "$D/m0" "$D/m2" | awk '{ print $1 }' | tr '\n' ' ')
	MEMBERS="missing,missing,file:$D/m2"
	crp_try_mount -f && crp_fail "mounted with two of three members gone"
	crp_eq "$CRP_EXIT" 32 "exit status of the refused mount"
	grep -q "cannot run" "$D/try.log" || crp_fail "the refusal does not say why: $(cat "$D/try.log")"
	crp_eq "$(sha256sum "$D/m0" "$D/m2" | awk '{ print $1 }' | tr '\n' ' ')" "$before" "members after a refused mount"

	# The old member given back: stale, never read.
	MEMBERS="file:$D/m0,file:$D/m1,file:$D/m2"
	status_json "$MEMBERS"
	crp_eq "$(jq -r .members[1].state "$T/st.json")" stale "state of the old member given back"
	crp_mount
	snapshot "$D/sums.stale"
	cmp -s "$D/sums" "$D/sums.stale" || crp_fail "with the stale member given back, files differ"

	# A device that holds another array is refused, and nothing changes.
	for i in 0 1 2; do truncate -s 96M "$D/other$i"; done
	"$MKFS" "file:$D/other0" "file:$D/other1" "file:$D/other2" >/dev/null ||
		crp_fail "mkfs of the other array"
	local other_sum events_before
	other_sum=$(sha256sum <"$D/other0")
	status_json "$MNT"
	events_before=$(jq -r .events "$T/st.json")
	rc=0
	"$CRPFS" replace "$MNT" 1 "file:$D/other0" >"$D/refused.out" 2>&1 || rc=$?
	crp_eq "$rc" 1 "crpfs replace onto another array's member: exit status"
	grep -q "holds crpfs already; give --force" "$D/refused.out" ||
		crp_fail "the refusal does not say why: $(cat "$D/refused.out")"
	crp_eq "$(sha256sum <"$D/other0")" "$other_sum" "the other array's member after the refused replace"
	status_json "$MNT"
	crp_eq "$(jq -r .events "$T/st.json")" "$events_before" "member table events after the refused replace"
	rm -f "$D"/other*
	rc=0

	# Replace it online while a writer writes.
	truncate -s 96M "$D/new1"
	(
		i=0
		while [ ! -e "$D/stop" ] && [ "$i" -lt 400 ]; do
			head -c 65536 /dev/urandom >"$MNT/data/during.$((i % 20))" || exit 1
			i=$((i + 1))
		done
	) &
	echo "$!" >>"$T/pids"
	local writer=$!
	"$CRPFS" replace "$MNT" 1 "file:$D/new1" --json >"$D/replace.out" 2>"$D/replace.err" || rc=$?
	touch "$D/stop"
	wait "$writer" || crp_fail "the writer failed during the rebuild"
	crp_eq "$rc" 0 "crpfs replace exit status ($(tail -n 2 "$D/replace.err"))"
	jq -e 'select(.state == "done")' "$D/replace.out" >/dev/null ||
		crp_fail "crpfs replace did not say done: $(tail -n 2 "$D/replace.out")"
	status_json "$MNT"
	crp_eq "$(jq -r .state "$T/st.json")" clean "array state after the rebuild"
	crp_eq "$(jq -r .members[1].spec "$T/st.json")" "file:$D/new1" "member 1 after the rebuild"
	snapshot "$D/sums"
	crp_umount
	MEMBERS="file:$D/m0,file:$D/new1,file:$D/m2"
	"$CRPFS" fsck "$MEMBERS" >"$D/fsck.out" 2>&1 || crp_fail "fsck after the rebuild: $(tail -n 5 "$D/fsck.out")"
	grep -q " 0 problems found" "$D/fsck.out" || crp_fail "fsck after the rebuild: $(tail -n 2 "$D/fsck.out")"
	crp_mount
	snapshot "$D/sums.after"
	cmp -s "$D/sums" "$D/sums.after" || crp_fail "after the rebuild, files differ"
	crp_umount
	# A host with the old list (its fstab) finds the new member under the
	# name the replace recorded: with the old member there (stale), and
	# with it gone.
	MEMBERS="file:$D/m0,file:$D/m1,file:$D/m2"
	: >"$T/daemon.log"
	crp_mount
	grep -q "position 1 is served by file:$D/new1" "$T/daemon.log" ||
		crp_fail "the old list (old member there) did not find the new member: $(tail -n 3 "$T/daemon.log")"
	status_json "$MNT"
	crp_eq "$(jq -r .state "$T/st.json")" clean "array state mounted with the old list"
	crp_umount
	rm -f "$D/m1"
	: >"$T/daemon.log"
	crp_mount
	grep -q "position 1 is served by file:$D/new1" "$T/daemon.log" ||
		crp_fail "the old list (old member gone) did not find the new member: $(tail -n 3 "$T/daemon.log")"
	snapshot "$D/sums.old"
	cmp -s "$D/sums" "$D/sums.old" || crp_fail "mounted with the old list, files differ"
	crp_umount
	crp_note "replaced online under a writer: status clean, fsck clean, files identical; the old member list finds the new member"
}

t_rebuild_resumes() {
	local pid pct=0 first rc=0 i
	crp_use_dir "$T/resume"
	crp_mkfs --size 96M
	crp_mount
	fill
	snapshot "$D/sums"
	crp_umount
	MEMBERS="file:$D/m0,file:$D/m1,missing"
	truncate -s 96M "$D/new2"
	# Slowly (4 MiB/s), so that it can be killed half way.
	"$CRPFS" replace "$MEMBERS" 2 "file:$D/new2" --json --rate 4 >"$D/r1.out" 2>"$D/r1.err" &
	pid=$!
	echo "$pid" >>"$T/pids"
	for ((i = 0; i < 1200; i++)); do
		pct=$(jq -r 'select(.percent) | .percent' "$D/r1.out" 2>/dev/null | tail -n 1)
		[ -n "$pct" ] && awk -v p="$pct" 'BEGIN { exit !(p >= 30) }' && break
		kill -0 "$pid" 2>/dev/null || crp_fail "crpfs replace ended early: $(cat "$D/r1.err")"
		sleep 0.1
	done
	awk -v p="$pct" 'BEGIN { exit !(p >= 30) }' || crp_fail "the rebuild made no progress: $(tail -n 2 "$D/r1.out")"
	kill -9 "$pid"
	wait "$pid" 2>/dev/null || true
	crp_note "rebuild killed at $pct%"
	# Again: it goes on from its checkpoint.  (Its own dead slot is taken
	# back by the new run.)
	MEMBERS="file:$D/m0,file:$D/m1,file:$D/new2"
	"$CRPFS" replace "$MEMBERS" 2 "file:$D/new2" --json >"$D/r2.out" 2>"$D/r2.err" || rc=$?
	crp_eq "$rc" 0 "the resumed crpfs replace ($(tail -n 2 "$D/r2.err"))"
	first=$(jq -r 'select(.resumed_at != null) | .resumed_at' "$D/r2.out" | head -n 1)
	[ -n "$first" ] && [ "$first" -gt 0 ] || crp_fail "the rebuild started over (resumed at ${first:-?})"
	crp_note "resumed at stripe $first"
	"$CRPFS" fsck "$MEMBERS" >"$D/fsck.out" 2>&1 || crp_fail "fsck after the resumed rebuild: $(tail -n 5 "$D/fsck.out")"
	crp_mount
	snapshot "$D/sums.after"
	cmp -s "$D/sums" "$D/sums.after" || crp_fail "after the resumed rebuild, files differ"
	crp_umount
}

crp_run ${CRP_TESTS:-t_degraded t_rebuild_resumes}
