#!/usr/bin/env bash
# Acceptance (issue 4): three hosts see each other's changes.  A file
# created and written on A reads identically (sha256) on B and C; data
# rewritten and closed on A is what B and C read after they open it again;
# a rename on B is seen on A and C; a remove on C is seen on A and B; a
# chmod on A is seen on B.  Each change is seen within the attribute
# timeout (default 1 s; polled up to $MH_ATTR_WAIT s) by a host that only
# looks (stat, readdir), and at once by an open() of the path on another,
# even though every observer had the old state in its caches.  Both lock
# modes.
. "$(dirname "$0")/lib_multihost.sh"

# warm HOST NAME...: the host looks at the directory and the names (so the
# kernel caches the old state, negative lookups included).
warm() {
	local mnt n
	mnt=$(mh_mnt "$1")
	shift
	ls -la "$mnt/dir" >/dev/null
	for n in "$@"; do
		stat "$mnt/dir/$n" >/dev/null 2>&1 || true
		[ -f "$mnt/dir/$n" ] && cat "$mnt/dir/$n" >/dev/null
	done
	return 0
}

listed() {	# listed HOST NAME: readdir on HOST shows NAME
	ls -a "$(mh_mnt "$1")/dir" | grep -qxF "$2"
}
unlisted() {
	! ls -a "$(mh_mnt "$1")/dir" | grep -qxF "$2"
}
stat_missing() {	# stat_missing HOST NAME: lookup on HOST says ENOENT
	! stat "$(mh_mnt "$1")/dir/$2" >/dev/null 2>&1
}
mode_is() {	# mode_is HOST NAME MODE: stat (no open) on HOST shows MODE
	[ "$(stat -c %04a "$(mh_mnt "$1")/dir/$2")" = "$3" ]
}

t_coherence() {
	local A B C h got want want2
	mh_lab_start 4 256M
	mh_mkfs "$MODE"
	mh_mount a
	mh_mount b
	mh_mount c
	A=$(mh_mnt a) B=$(mh_mnt b) C=$(mh_mnt c)
	mkdir "$A/dir"
	mh_wait_for "$MH_ATTR_WAIT" test -d "$B/dir" || mh_fail "directory made on A not seen on B"
	mh_wait_for "$MH_ATTR_WAIT" test -d "$C/dir" || mh_fail "directory made on A not seen on C"

	# ---- create and write on A
	warm b f1
	warm c f1
	head -c $((3 * 1024 * 1024 + 12345)) /dev/urandom >"$T/src1"
	want=$(mh_sha "$T/src1")
	cp "$T/src1" "$A/dir/f1"
	got=$(mh_probe "$B/dir/f1")
	[ "$got" = "ok $(stat -c %04a "$T/src1") $(stat -c %s "$T/src1")" ] ||
		mh_fail "open() on B of the file just created on A: $got (B had looked the name up before: ENOENT)"
	[ "$(mh_sha "$B/dir/f1")" = "$want" ] ||
		mh_fail "the file written on A reads differently on B (open at once): sha256 $(mh_sha "$B/dir/f1"), expected $want"
	mh_wait_for "$MH_ATTR_WAIT" listed c f1 ||
		mh_fail "the name created on A is not listed on C within $MH_ATTR_WAIT s"
	mh_wait_for "$MH_ATTR_WAIT" test -e "$C/dir/f1" ||
		mh_fail "the name created on A is not found by a lookup on C within $MH_ATTR_WAIT s"
	[ "$(mh_sha "$C/dir/f1")" = "$want" ] ||
		mh_fail "the file written on A reads differently on C: sha256 $(mh_sha "$C/dir/f1"), expected $want"
	mh_note "create on A: B and C read the same sha256"

	# ---- rewrite in place and close on A: B and C had the old data cached
	head -c $((1024 * 1024)) /dev/urandom >"$T/patch"
	cp "$T/src1" "$T/src1b"
	dd if="$T/patch" of="$T/src1b" bs=64k seek=7 conv=notrunc status=none
	dd if="$T/patch" of="$A/dir/f1" bs=64k seek=7 conv=notrunc status=none
	want2=$(mh_sha "$T/src1b")
	for h in b c; do
		got=$(mh_sha "$(mh_mnt "$h")/dir/f1")
		[ "$got" = "$want2" ] ||
			mh_fail "data rewritten and closed on A: host $h reads the old or a mixed content after open (sha256 $got, expected $want2)"
	done
	mh_note "rewrite on A: B and C read the new data after open"

	# ---- rename on B: A opens at once, C looks
	warm a f1 f2
	warm c f1 f2
	mv "$B/dir/f1" "$B/dir/f2"
	got=$(mh_probe "$A/dir/f2")
	[ "${got%% *}" = ok ] ||
		mh_fail "open() on A of the new name right after the rename on B: $got"
	got=$(mh_probe "$A/dir/f1")
	[ "$got" = ENOENT ] ||
		mh_fail "open() on A of the old name right after the rename on B: '$got', expected ENOENT"
	[ "$(mh_sha "$A/dir/f2")" = "$want2" ] || mh_fail "the renamed file reads differently on A"
	mh_wait_for "$MH_ATTR_WAIT" listed c f2 ||
		mh_fail "the new name from the rename on B is not listed on C within $MH_ATTR_WAIT s"
	mh_wait_for "$MH_ATTR_WAIT" unlisted c f1 ||
		mh_fail "the old name from the rename on B is still listed on C after $MH_ATTR_WAIT s"
	mh_wait_for "$MH_ATTR_WAIT" stat_missing c f1 ||
		mh_fail "the old name from the rename on B is still found by stat on C after $MH_ATTR_WAIT s"
	mh_wait_for "$MH_ATTR_WAIT" test -e "$C/dir/f2" ||
		mh_fail "the new name from the rename on B is not found by stat on C within $MH_ATTR_WAIT s"
	[ "$(mh_sha "$C/dir/f2")" = "$want2" ] || mh_fail "the renamed file reads differently on C"
	mh_note "rename on B: seen on A (open) and C (stat, readdir)"

	# ---- remove on C: A opens at once, B looks
	warm a f2
	warm b f2
	rm "$C/dir/f2"
	got=$(mh_probe "$A/dir/f2")
	[ "$got" = ENOENT ] ||
		mh_fail "open() on A right after the remove on C: '$got', expected ENOENT"
	mh_wait_for "$MH_ATTR_WAIT" stat_missing b f2 ||
		mh_fail "the name removed on C is still found by stat on B after $MH_ATTR_WAIT s"
	mh_wait_for "$MH_ATTR_WAIT" unlisted b f2 ||
		mh_fail "the name removed on C is still listed on B after $MH_ATTR_WAIT s"
	mh_note "remove on C: seen on A (open) and B (stat, readdir)"

	# ---- chmod on A: B looks (stat), then B opens at once
	echo perms >"$A/dir/p"
	chmod 0644 "$A/dir/p"
	mh_wait_for "$MH_ATTR_WAIT" mode_is b p 0644 || mh_fail "the file p made on A is not seen on B"
	chmod 0600 "$A/dir/p"
	mh_wait_for "$MH_ATTR_WAIT" mode_is b p 0600 ||
		mh_fail "chmod 0600 on A: B still shows mode $(stat -c %04a "$B/dir/p") after $MH_ATTR_WAIT s"
	warm b p
	chmod 0751 "$A/dir/p"
	got=$(mh_probe "$B/dir/p")
	[ "$got" = "ok 0751 6" ] ||
		mh_fail "chmod 0751 on A: open() + fstat on B right after shows '$got', expected 'ok 0751 6'"
	mh_note "chmod on A: seen on B (stat within the attribute timeout, open at once)"

	mh_umount a
	mh_umount b
	mh_umount c
	mh_fsck
}

mh_setup
mh_run_modes t_coherence reserve pr
