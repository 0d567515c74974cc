#!/usr/bin/env bash
# POSIX attributes on a real crpfs mount: chmod, chown, utimens with
# nanoseconds, statfs, fsync/fdatasync, extended attributes (user.* and
# POSIX ACLs) and permission checks as a local filesystem makes them.
# Mounted with allow_other so that another user can try (and be refused by
# the mode bits, not by FUSE).
. "$(dirname "$0")/lib.sh"

crp_setup setfattr getfattr setfacl getfacl setpriv
crp_mkfs
chmod 0755 "$T"
crp_mount -o allow_other

as_nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

t_chmod() {
	local f=$MNT/chmod m
	touch "$f"
	for m in 600 644 755 700 000 4755 2755 1777 640; do
		chmod "$m" "$f" || crp_fail "chmod $m failed"
		crp_eq "$((8#$(stat -c %a "$f")))" "$((8#$m))" "mode after chmod $m"
	done
	mkdir "$MNT/chmod.d"
	chmod 2770 "$MNT/chmod.d"
	crp_eq "$(stat -c %a "$MNT/chmod.d")" 2770 "mode of a directory after chmod"
	crp_eq "$(stat -c %F "$MNT/chmod.d")" directory "chmod keeps the file type"
}

t_chown() {
	local f=$MNT/chown
	touch "$f"
	chown 65534:65534 "$f" || crp_fail "chown failed"
	crp_eq "$(stat -c '%u:%g' "$f")" 65534:65534 "owner after chown"
	chown 1234 "$f"
	crp_eq "$(stat -c '%u:%g' "$f")" 1234:65534 "chown of the owner only keeps the group"
	chgrp 4321 "$f"
	crp_eq "$(stat -c '%u:%g' "$f")" 1234:4321 "chgrp keeps the owner"
	chown 4000000000:4000000001 "$f"
	crp_eq "$(stat -c '%u:%g' "$f")" 4000000000:4000000001 "32-bit ids"
	ln -s chown "$MNT/chown.link"
	chown -h 77:88 "$MNT/chown.link"
	crp_eq "$(stat -c '%u:%g' "$MNT/chown.link")" 77:88 "lchown of a symlink"
	crp_eq "$(stat -c '%u:%g' "$f")" 4000000000:4000000001 "lchown left the target alone"
	# chown by root clears set-user-ID on a regular file (as local filesystems do).
	chmod 4755 "$f"
	chown 0:0 "$f"
	crp_eq "$(stat -c %a "$f")" 755 "set-user-ID cleared by chown"
	# An unprivileged owner cannot give a file away.
	touch "$MNT/chown.nobody"
	chown 65534:65534 "$MNT/chown.nobody"
	if as_nobody chown 0 "$MNT/chown.nobody" 2>/dev/null; then crp_fail "a non-root owner gave a file to root"; fi
}

t_utimens() {
	local f=$MNT/times
	touch "$f"
	touch -m -d '@1234567890.123456789' "$f"
	crp_eq "$(stat -c %.9Y "$f")" 1234567890.123456789 "mtime to the nanosecond"
	touch -a -d '@1000000001.000000001' "$f"
	crp_eq "$(stat -c %.9X "$f")" 1000000001.000000001 "atime to the nanosecond"
	crp_eq "$(stat -c %.9Y "$f")" 1234567890.123456789 "touch -a left mtime"
	touch -d '@4102444800.999999999' "$f"	# 2100-01-01: past 2038
	crp_eq "$(stat -c %.9Y "$f")" 4102444800.999999999 "mtime past 2038"
	touch -d '@-1.5' "$f"
	crp_eq "$(stat -c %.9Y "$f")" -1.500000000 "mtime before 1970"
	local before after
	before=$(stat -c %.9Z "$f")
	sleep 0.01
	touch "$f"
	after=$(stat -c %.9Z "$f")
	[ "$after" != "$before" ] || crp_fail "ctime did not move with touch ($before)"
	[ "$(stat -c %Y "$f")" -ge "$(($(date +%s) - 60))" ] || crp_fail "touch did not set mtime to now"
	echo more >>"$f"
	[ "$(stat -c %Y "$f")" -ge "$(($(date +%s) - 60))" ] || crp_fail "a write did not update mtime"
}

t_statfs() {
	local s bsize frsize blocks bfree bavail files ffree namemax free1 free2
	s=$("$HELPER" statvfs "$MNT")
	read -r bsize frsize blocks bfree bavail files ffree namemax <<<"$s"
	crp_eq "$namemax" 255 "f_namemax"
	[ "$frsize" -gt 0 ] && [ "$blocks" -gt 0 ] || crp_fail "statfs reports no blocks: $s"
	# Three 256 MiB members in RAID-5: about 512 MiB of data space.
	[ $((blocks * frsize)) -le $((512 * 1024 * 1024)) ] &&
		[ $((blocks * frsize)) -ge $((256 * 1024 * 1024)) ] ||
		crp_fail "total size $((blocks * frsize)) is not about two members' worth: $s"
	[ "$bfree" -le "$blocks" ] && [ "$bavail" -le "$bfree" ] || crp_fail "free counts inconsistent: $s"
	[ "$files" -gt 0 ] && [ "$ffree" -le "$files" ] || crp_fail "inode counts inconsistent: $s"
	free1=$((bfree * frsize))
	head -c $((64 * 1024 * 1024)) /dev/urandom >"$MNT/statfs.fill"
	sync -f "$MNT/statfs.fill"
	read -r bsize frsize blocks bfree bavail files ffree namemax <<<"$("$HELPER" statvfs "$MNT")"
	free2=$((bfree * frsize))
	[ $((free1 - free2)) -ge $((60 * 1024 * 1024)) ] ||
		crp_fail "writing 64 MiB lowered free space by only $((free1 - free2)) bytes"
	rm "$MNT/statfs.fill"
	sync -f "$MNT"
	read -r bsize frsize blocks bfree bavail files ffree namemax <<<"$("$HELPER" statvfs "$MNT")"
	[ $((bfree * frsize)) -ge $((free1 - 4 * 1024 * 1024)) ] ||
		crp_fail "removing the 64 MiB file did not give the space back ($free1 -> $((bfree * frsize)))"
	df -P "$MNT" >/dev/null || crp_fail "df failed on the mount"
}

t_fsync() {
	crp_eq "$("$HELPER" fsync "$MNT/fsync.full" full 3000000)" ok "write + fsync"
	crp_eq "$("$HELPER" fsync "$MNT/fsync.data" data 3000000)" ok "write + fdatasync"
	crp_eq "$(stat -c %s "$MNT/fsync.full")" 3000000 "size after fsync"
	cmp "$MNT/fsync.full" "$MNT/fsync.data" || crp_fail "fsync'd and fdatasync'd files differ"
	mkdir "$MNT/fsync.d"
	sync "$MNT/fsync.d" || crp_fail "fsync of a directory failed"
	sync -d "$MNT/fsync.full" || crp_fail "sync -d (fdatasync) failed"
	sync -f "$MNT" || crp_fail "syncfs failed"
}

t_xattr_user() {
	local f=$MNT/xattr big
	echo x >"$f"
	setfattr -n user.color -v blue "$f" || crp_fail "setfattr user.color failed"
	crp_eq "$(getfattr --only-values -n user.color "$f")" blue "getfattr of user.color"
	setfattr -n user.color -v green "$f"
	crp_eq "$(getfattr --only-values -n user.color "$f")" green "value after replace"
	setfattr -n user.empty "$f"
	crp_eq "$(getfattr --only-values -n user.empty "$f" | wc -c)" 0 "an empty value"
	# All of a file's attributes share about one 4 KiB block, as on ext4.
	big=$(head -c 2250 /dev/urandom | base64 -w0)
	setfattr -n user.big -v "$big" "$f" || crp_fail "setfattr of a 3000-byte value"
	crp_eq "$(getfattr --only-values -n user.big "$f")" "$big" "a 3000-byte value"
	crp_eq "$(getfattr -d -m '^user\.' "$f" 2>/dev/null | grep -c '^user\.')" 3 "listxattr shows three names"
	crp_eq "$("$HELPER" setxattr "$f" user.color red create)" EEXIST "XATTR_CREATE on an existing name"
	crp_eq "$("$HELPER" setxattr "$f" user.nothere red replace)" ENODATA "XATTR_REPLACE on a missing name"
	crp_eq "$("$HELPER" setxattr "$f" user.new red create)" ok "XATTR_CREATE on a new name"
	setfattr -x user.color "$f" || crp_fail "removexattr failed"
	if getfattr -n user.color "$f" 2>/dev/null; then crp_fail "a removed xattr is still there"; fi
	if setfattr -x user.color "$f" 2>/dev/null; then crp_fail "removing a missing xattr succeeded"; fi
	mkdir "$MNT/xattr.d"
	setfattr -n user.dir -v yes "$MNT/xattr.d"
	crp_eq "$(getfattr --only-values -n user.dir "$MNT/xattr.d")" yes "an xattr on a directory"
	if setfattr -n bogus.ns -v 1 "$f" 2>/dev/null; then crp_fail "an xattr in an unknown namespace was accepted"; fi
	# user.* xattrs are checked like the file's data: nobody cannot write them on a 0644 root file.
	chmod 0644 "$f"
	if as_nobody setfattr -n user.evil -v 1 "$f" 2>/dev/null; then crp_fail "nobody set a user xattr on a root 0644 file"; fi
	crp_eq "$(as_nobody getfattr --only-values -n user.new "$f")" red "nobody reads a user xattr of a readable file"
}

t_acl_entries() {
	local f=$MNT/acl
	echo secret >"$f"
	chmod 0600 "$f"
	setfacl -m u:65534:r "$f" || crp_fail "setfacl -m u:65534:r failed"
	getfacl -cn "$f" 2>/dev/null | grep -qx 'user:65534:r--' ||
		crp_fail "getfacl does not show the entry: $(getfacl -cn "$f" 2>&1)"
	crp_eq "$(as_nobody cat "$f" 2>&1)" secret "nobody reads through a named-user ACL entry"
	setfacl -m u:65534:- "$f"
	if as_nobody cat "$f" 2>/dev/null; then crp_fail "nobody still reads after the ACL entry was emptied"; fi
	setfacl -b "$f"
	crp_eq "$(getfacl -cn "$f" 2>/dev/null | grep -c 'user:65534')" 0 "setfacl -b removed the entry"
}

# Setting an access ACL sets the mode's bits (owner, mask or group, other),
# and an ACL that says no more than the mode is the mode (cp -a sets one).
t_acl_mode() {
	local f=$MNT/acl.mode
	echo x >"$f"
	chmod 0600 "$f"
	setfacl -m u:65534:r "$f"
	crp_eq "$(stat -c %a "$f")" 640 "the mode's group bits show the ACL mask"
	setfacl -m m::rw "$f"
	crp_eq "$(stat -c %a "$f")" 660 "the mode after setting the mask"
	chmod 0604 "$f"
	getfacl -cn "$f" 2>/dev/null | grep -qx 'mask::---' ||
		crp_fail "chmod did not set the ACL mask: $(getfacl -cn "$f" 2>&1)"
	echo y >"$MNT/acl.min"
	chmod 0600 "$MNT/acl.min"
	setfacl --set u::rw,g::r,o::r "$MNT/acl.min" || crp_fail "setfacl --set of a minimal ACL failed"
	crp_eq "$(stat -c %a "$MNT/acl.min")" 644 "a minimal ACL sets the mode"
}

t_acl_default() {
	local d=$MNT/acl.d
	mkdir "$d"
	setfacl -d -m u:65534:rwx "$d" || crp_fail "setting a default ACL failed"
	getfacl -cn "$d" 2>/dev/null | grep -q '^default:user:65534:rwx' ||
		crp_fail "the default ACL is not stored: $(getfacl -cn "$d" 2>&1)"
	touch "$d/child"
	mkdir "$d/subdir"
	getfacl -cn "$d/child" 2>/dev/null | grep -q '^user:65534:rw' ||
		crp_fail "a new file does not inherit the default ACL: $(getfacl -cn "$d/child" 2>&1)"
	getfacl -cn "$d/subdir" 2>/dev/null | grep -q '^default:user:65534:rwx' ||
		crp_fail "a new directory does not inherit the default ACL as its default"
	as_nobody sh -c "echo inherited >'$d/child'" 2>/dev/null ||
		crp_fail "nobody cannot write a file through an inherited ACL entry"
}

t_permissions() {
	local f=$MNT/perm
	echo private >"$f"
	chmod 0600 "$f"
	if as_nobody cat "$f" >/dev/null 2>&1; then crp_fail "nobody read a 0600 root file"; fi
	chmod 0644 "$f"
	crp_eq "$(as_nobody cat "$f")" private "nobody reads a 0644 root file"
	if as_nobody sh -c "echo x >>'$f'" 2>/dev/null; then crp_fail "nobody wrote a 0644 root file"; fi
	if as_nobody touch "$MNT/perm.new" 2>/dev/null; then crp_fail "nobody created a file in a 0755 root directory"; fi
	if as_nobody rm -f "$f" 2>/dev/null && [ ! -e "$f" ]; then crp_fail "nobody removed a file from a 0755 root directory"; fi
	mkdir -m 0700 "$MNT/perm.d"
	if as_nobody ls "$MNT/perm.d" >/dev/null 2>&1; then crp_fail "nobody listed a 0700 root directory"; fi
	# Sticky directory: others' files cannot be removed.
	mkdir -m 1777 "$MNT/sticky"
	touch "$MNT/sticky/roots"
	if as_nobody rm -f "$MNT/sticky/roots" 2>/dev/null && [ ! -e "$MNT/sticky/roots" ]; then
		crp_fail "nobody removed root's file from a sticky directory"
	fi
	as_nobody touch "$MNT/sticky/mine" || crp_fail "nobody cannot create in a 1777 directory"
	crp_eq "$(stat -c '%u:%g' "$MNT/sticky/mine")" 65534:65534 "owner of a file created by nobody"
	as_nobody rm "$MNT/sticky/mine" || crp_fail "nobody cannot remove its own file in a sticky directory"
	# Execute permission.
	printf '#!/bin/sh\necho ran\n' >"$MNT/script"
	chmod 0744 "$MNT/script"
	# (through sh: setpriv's own exec of the target is not a fair check)
	if as_nobody sh -c "'$MNT/script'" 2>/dev/null; then crp_fail "nobody ran a 0744 root script"; fi
	chmod 0755 "$MNT/script"
	crp_eq "$(as_nobody sh -c "'$MNT/script'")" ran "nobody runs a 0755 script"
}

rc=0
crp_run t_chmod t_chown t_utimens t_statfs t_fsync t_xattr_user t_acl_entries t_acl_mode t_acl_default t_permissions || rc=1
crp_umount
exit $rc
