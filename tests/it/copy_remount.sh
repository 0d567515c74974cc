#!/usr/bin/env bash
# Acceptance: copy a real tree (part of /usr/include: its top level,
# linux/, glib-2.0/ and x86_64-linux-gnu/, about 1,800 files, with
# symlinks, hard links, owners, modes, nanosecond times, xattrs and ACLs
# added) plus a sparse 5 GiB file and a dense 64 MiB file into crpfs; the
# checksum listing of the mount equals the source's, and still does after
# unmount and mount; crpfs fsck then finds nothing.
. "$(dirname "$0")/lib.sh"

crp_setup getfattr setfattr setfacl find
[ -d /usr/include ] || crp_fail "cannot run: /usr/include is missing"

# The listing of a tree: one line per entry with type, mode, owner, size,
# links (not for directories: their size and link count are the
# filesystem's business), mtime to the nanosecond and symlink target;
# then every regular file's sha256; then every xattr; then the groups of
# names that share an inode.
listing() {
	local root=$1
	(
		cd "$root"
		find . -mindepth 1 \( -type d -printf '%P d %#m %U %G - - %T@\n' \) -o \
			-printf '%P %y %#m %U %G %s %n %T@ %l\n' | LC_ALL=C sort
		echo "--- contents"
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
		echo "--- xattrs"
		getfattr -R -P -h -d -m - -e hex . 2>/dev/null |
			awk '/^# file: / { f = substr($0, 9); next } NF { print f " " $0 }' | LC_ALL=C sort
		echo "--- hard links"
		find . -type f -links +1 -printf '%i %P\n' | LC_ALL=C sort -k2 |
			awk '{ g[$1] = g[$1] " " $2 } END { for (i in g) print g[i] }' | LC_ALL=C sort
	)
}

make_source() {
	local s=$T/src
	mkdir -p "$s"
	# Not all of /usr/include (8,000 files and more): this test is about
	# what a copy keeps, and the time goes to creates.
	mkdir "$s/include"
	find /usr/include -mindepth 1 -maxdepth 1 ! -type d -exec cp -a {} "$s/include/" \;
	for d in linux glib-2.0 x86_64-linux-gnu; do
		[ -d "/usr/include/$d" ] || crp_fail "cannot run: /usr/include/$d is missing"
		cp -a "/usr/include/$d" "$s/include/$d"
	done
	mkdir "$s/extra"
	# Hard links: two names in one directory, three across directories.
	echo "linked twice" >"$s/extra/a"
	ln "$s/extra/a" "$s/extra/a.link"
	echo "linked three times" >"$s/extra/b"
	ln "$s/extra/b" "$s/include/b.link"
	ln "$s/extra/b" "$s/extra/b.link2"
	# Owners, modes, times.
	echo owned >"$s/extra/owned"
	chown 1000:1001 "$s/extra/owned"
	chmod 0640 "$s/extra/owned"
	echo setuid >"$s/extra/setuid"
	chmod 4755 "$s/extra/setuid"
	mkdir -m 1777 "$s/extra/sticky"
	touch -d '@1500000000.123456789' "$s/extra/owned"
	touch -h -d '@1400000000.987654321' "$s/include/b.link"
	ln -s ../include/stdio.h "$s/extra/stdio.link"
	ln -s /nonexistent/target "$s/extra/dangling"
	mkfifo "$s/extra/fifo"
	# Extended attributes and ACLs.
	setfattr -n user.origin -v copy-test "$s/extra/a"
	setfattr -n user.binary -v 0x00ff00ff "$s/extra/owned"
	setfattr -n user.dir -v yes "$s/extra"
	setfacl -m u:65534:rw,g:65534:r "$s/extra/b"
	setfacl -d -m u:65534:rwx "$s/extra/sticky"
	# A sparse 5 GiB file with data at 0, 3 GiB and its end; a dense 64 MiB file.
	truncate -s 5G "$s/extra/sparse-5g"
	dd if=/dev/urandom of="$s/extra/sparse-5g" bs=1M count=1 conv=notrunc status=none
	dd if=/dev/urandom of="$s/extra/sparse-5g" bs=1M seek=3072 count=2 conv=notrunc status=none
	dd if=/dev/urandom of="$s/extra/sparse-5g" bs=4096 seek=$((5 * 262144 - 1)) count=1 \
		conv=notrunc status=none
	head -c $((64 * 1024 * 1024)) /dev/urandom >"$s/extra/dense-64m"
	# Directory times last, after their contents changed.
	touch -d '@1600000000.5' "$s/extra"
}

make_source
listing "$T/src" >"$T/list.src"
crp_note "source listing: $(grep -c . "$T/list.src") lines"

crp_mkfs --size 1G
crp_mount
t_copy() {
	cp -a "$T/src/." "$MNT/" 2>"$T/cp.err" || crp_fail "cp -a into crpfs failed: $(head -n 5 "$T/cp.err")"
	listing "$MNT" >"$T/list.mnt"
	diff -u "$T/list.src" "$T/list.mnt" >"$T/diff.1" ||
		crp_fail "the copy differs from the source: $(head -n 40 "$T/diff.1")"
	# The sparse file stays sparse.
	[ "$(stat -c %b "$MNT/extra/sparse-5g")" -lt $((64 * 2048)) ] ||
		crp_fail "the sparse 5 GiB file uses $(stat -c %b "$MNT/extra/sparse-5g") blocks of 512"
}
t_remount() {
	crp_umount
	crp_mount
	listing "$MNT" >"$T/list.mnt2"
	diff -u "$T/list.src" "$T/list.mnt2" >"$T/diff.2" ||
		crp_fail "after unmount and mount the tree differs: $(head -n 40 "$T/diff.2")"
	crp_umount
}
t_fsck() {
	crp_fsck
}

# Sequential steps that depend on each other: not run through crp_run.
CRP_TEST=copy t_copy
CRP_TEST=remount t_remount
CRP_TEST=fsck t_fsck
echo "copy_remount: copy, remount and fsck passed"
