#!/usr/bin/env bash
# POSIX namespace behaviour on a real crpfs mount: mkdir, rmdir, rename
# (across directories, over existing entries, RENAME_NOREPLACE and
# RENAME_EXCHANGE), hard links, symlinks, mknod of FIFOs, sockets and
# device nodes.
. "$(dirname "$0")/lib.sh"

crp_setup mknod
crp_mkfs
crp_mount

t_mkdir() {
	mkdir "$MNT/d1" || crp_fail "mkdir failed"
	[ -d "$MNT/d1" ] || crp_fail "mkdir did not make a directory"
	crp_eq "$(stat -c %a "$MNT/d1")" "$(printf '%o' $((0777 & ~$(umask))))" "mode of a new directory"
	mkdir -p "$MNT/d1/a/b/c" || crp_fail "mkdir -p of nested directories"
	[ -d "$MNT/d1/a/b/c" ] || crp_fail "nested directory missing"
	if mkdir "$MNT/d1" 2>/dev/null; then crp_fail "mkdir of an existing name succeeded"; fi
	crp_eq "$(ls -a "$MNT/d1/a/b/c" | tr '\n' ' ')" ". .. " "a new directory holds . and .. only"
	crp_eq "$(stat -c %i "$MNT/d1/a/b/c/..")" "$(stat -c %i "$MNT/d1/a/b")" ".. is the parent"
	# Many entries in one directory, all listed once.
	mkdir "$MNT/many"
	(cd "$MNT/many" && seq 1 2000 | xargs touch)
	crp_eq "$(ls "$MNT/many" | wc -l)" 2000 "entries listed in a directory of 2000 files"
	crp_eq "$(ls "$MNT/many" | sort -n | uniq | wc -l)" 2000 "distinct entries listed"
	[ -e "$MNT/many/1234" ] || crp_fail "lookup of an entry in a large directory"
}

t_rmdir() {
	mkdir -p "$MNT/rd/full"
	touch "$MNT/rd/full/f"
	mkdir "$MNT/rd/empty"
	rmdir "$MNT/rd/empty" || crp_fail "rmdir of an empty directory failed"
	[ ! -e "$MNT/rd/empty" ] || crp_fail "rmdir left the directory"
	if rmdir "$MNT/rd/full" 2>"$T/rmdir.err"; then crp_fail "rmdir of a non-empty directory succeeded"; fi
	grep -q "not empty" "$T/rmdir.err" || crp_fail "rmdir of a non-empty directory: $(cat "$T/rmdir.err")"
	if rmdir "$MNT/rd/full/f" 2>/dev/null; then crp_fail "rmdir of a file succeeded"; fi
	rm "$MNT/rd/full/f"
	rmdir "$MNT/rd/full" || crp_fail "rmdir after emptying failed"
	rmdir "$MNT/rd" || crp_fail "rmdir of the parent failed"
}

t_rename_across() {
	mkdir -p "$MNT/ra/src" "$MNT/ra/dst"
	echo payload >"$MNT/ra/src/f"
	mv "$MNT/ra/src/f" "$MNT/ra/dst/g" || crp_fail "rename across directories failed"
	[ ! -e "$MNT/ra/src/f" ] || crp_fail "the old name survives a rename"
	crp_eq "$(cat "$MNT/ra/dst/g")" payload "content after rename across directories"
	mkdir -p "$MNT/ra/src/sub/deeper"
	echo deep >"$MNT/ra/src/sub/deeper/x"
	mv "$MNT/ra/src/sub" "$MNT/ra/dst/sub" || crp_fail "rename of a directory across directories"
	crp_eq "$(cat "$MNT/ra/dst/sub/deeper/x")" deep "content under a moved directory"
	crp_eq "$(stat -c %i "$MNT/ra/dst/sub/..")" "$(stat -c %i "$MNT/ra/dst")" ".. of a moved directory"
	if mv -T "$MNT/ra/dst" "$MNT/ra/dst/sub/inside" 2>/dev/null; then
		crp_fail "a directory was moved under itself"
	fi
}

t_rename_over() {
	mkdir -p "$MNT/ro"
	echo new >"$MNT/ro/a"
	echo old >"$MNT/ro/b"
	crp_eq "$("$HELPER" rename2 "$MNT/ro/a" "$MNT/ro/b" none)" ok "rename over an existing file"
	crp_eq "$(cat "$MNT/ro/b")" new "content after rename over a file"
	[ ! -e "$MNT/ro/a" ] || crp_fail "source name survives rename over a file"
	mkdir -p "$MNT/ro/d1/x" "$MNT/ro/d2" "$MNT/ro/d3"
	crp_eq "$("$HELPER" rename2 "$MNT/ro/d1" "$MNT/ro/d2" none)" ok "rename a directory over an empty one"
	[ -d "$MNT/ro/d2/x" ] || crp_fail "content of a directory renamed over an empty one"
	crp_eq "$("$HELPER" rename2 "$MNT/ro/d3" "$MNT/ro/d2" none)" ENOTEMPTY "rename over a non-empty directory"
	crp_eq "$("$HELPER" rename2 "$MNT/ro/b" "$MNT/ro/d3" none)" EISDIR "rename a file over a directory"
	crp_eq "$("$HELPER" rename2 "$MNT/ro/d3" "$MNT/ro/b" none)" ENOTDIR "rename a directory over a file"
	crp_eq "$("$HELPER" rename2 "$MNT/ro/nonexistent" "$MNT/ro/z" none)" ENOENT "rename of a missing name"
	# Renaming a file onto a hard link of itself changes nothing.
	ln "$MNT/ro/b" "$MNT/ro/b2"
	crp_eq "$("$HELPER" rename2 "$MNT/ro/b" "$MNT/ro/b2" none)" ok "rename onto a hard link of itself"
	[ -e "$MNT/ro/b" ] && [ -e "$MNT/ro/b2" ] || crp_fail "rename onto its own hard link removed a name"
}

t_rename_noreplace() {
	mkdir -p "$MNT/rn"
	echo a >"$MNT/rn/a"
	echo b >"$MNT/rn/b"
	crp_eq "$("$HELPER" rename2 "$MNT/rn/a" "$MNT/rn/b" noreplace)" EEXIST "RENAME_NOREPLACE over an existing name"
	crp_eq "$(cat "$MNT/rn/a") $(cat "$MNT/rn/b")" "a b" "both files unchanged after a refused RENAME_NOREPLACE"
	crp_eq "$("$HELPER" rename2 "$MNT/rn/a" "$MNT/rn/c" noreplace)" ok "RENAME_NOREPLACE to a free name"
	crp_eq "$(cat "$MNT/rn/c")" a "content after RENAME_NOREPLACE"
	[ ! -e "$MNT/rn/a" ] || crp_fail "RENAME_NOREPLACE left the old name"
}

t_rename_exchange() {
	mkdir -p "$MNT/rx/d1" "$MNT/rx/d2/sub"
	echo one >"$MNT/rx/d1/f"
	crp_eq "$("$HELPER" rename2 "$MNT/rx/d1/f" "$MNT/rx/d2/sub" exchange)" ok "RENAME_EXCHANGE file <-> directory"
	[ -d "$MNT/rx/d1/f" ] || crp_fail "after RENAME_EXCHANGE the file's name is not the directory"
	crp_eq "$(cat "$MNT/rx/d2/sub")" one "after RENAME_EXCHANGE the directory's name is the file"
	crp_eq "$(stat -c %i "$MNT/rx/d1/f/..")" "$(stat -c %i "$MNT/rx/d1")" ".. of an exchanged directory"
	echo x >"$MNT/rx/x"
	echo y >"$MNT/rx/y"
	crp_eq "$("$HELPER" rename2 "$MNT/rx/x" "$MNT/rx/y" exchange)" ok "RENAME_EXCHANGE of two files"
	crp_eq "$(cat "$MNT/rx/x") $(cat "$MNT/rx/y")" "y x" "contents after RENAME_EXCHANGE"
	crp_eq "$("$HELPER" rename2 "$MNT/rx/x" "$MNT/rx/missing" exchange)" ENOENT "RENAME_EXCHANGE with a missing target"
}

t_hard_links() {
	mkdir -p "$MNT/hl/a" "$MNT/hl/b"
	echo shared >"$MNT/hl/a/f"
	ln "$MNT/hl/a/f" "$MNT/hl/b/g" || crp_fail "link failed"
	crp_eq "$(stat -c %h "$MNT/hl/a/f")" 2 "nlink after link"
	crp_eq "$(stat -c %i "$MNT/hl/a/f")" "$(stat -c %i "$MNT/hl/b/g")" "inode of both names"
	echo more >>"$MNT/hl/b/g"
	crp_eq "$(cat "$MNT/hl/a/f")" $'shared\nmore' "a write through one name is seen through the other"
	rm "$MNT/hl/a/f"
	crp_eq "$(stat -c %h "$MNT/hl/b/g")" 1 "nlink after unlinking one name"
	crp_eq "$(cat "$MNT/hl/b/g")" $'shared\nmore' "content after unlinking the first name"
	if ln "$MNT/hl/a" "$MNT/hl/dirlink" 2>/dev/null; then crp_fail "a hard link to a directory was made"; fi
	if ln "$MNT/hl/b/g" "$MNT/hl/b/g" 2>/dev/null; then crp_fail "link over an existing name succeeded"; fi
}

t_symlinks() {
	local long
	mkdir -p "$MNT/sl/dir"
	echo target >"$MNT/sl/dir/file"
	ln -s dir/file "$MNT/sl/rel" || crp_fail "symlink failed"
	ln -s "$MNT/sl/dir" "$MNT/sl/abs"
	ln -s nowhere "$MNT/sl/dangling"
	crp_eq "$(readlink "$MNT/sl/rel")" dir/file "readlink of a relative symlink"
	crp_eq "$(cat "$MNT/sl/rel")" target "reading through a symlink"
	crp_eq "$(cat "$MNT/sl/abs/file")" target "a path through an absolute symlink to a directory"
	crp_eq "$(stat -c %F "$MNT/sl/dangling")" "symbolic link" "lstat of a dangling symlink"
	crp_eq "$(stat -c %s "$MNT/sl/rel")" 8 "size of a symlink is its target's length"
	[ ! -e "$MNT/sl/dangling" ] || crp_fail "a dangling symlink resolves"
	long=$(printf 'x%.0s' $(seq 1 4095))
	ln -s "$long" "$MNT/sl/long" || crp_fail "symlink with a 4095-byte target"
	crp_eq "$(readlink "$MNT/sl/long")" "$long" "readlink of a 4095-byte target"
	rm "$MNT/sl/rel"
	crp_eq "$(cat "$MNT/sl/dir/file")" target "removing a symlink leaves its target"
}

t_mknod() {
	mkfifo "$MNT/fifo" || crp_fail "mkfifo failed"
	crp_eq "$(stat -c %F "$MNT/fifo")" fifo "type of a FIFO"
	# Data passes through a FIFO on crpfs (the kernel handles the pipe).
	(echo through-fifo >"$MNT/fifo") &
	crp_eq "$(timeout 10 cat "$MNT/fifo")" through-fifo "data through a FIFO"
	wait
	crp_eq "$("$HELPER" mksock "$MNT/sock")" ok "mknod of a socket"
	crp_eq "$(stat -c %F "$MNT/sock")" socket "type of a socket node"
	mknod "$MNT/null" c 1 3 || crp_fail "mknod of a character device"
	crp_eq "$(stat -c '%F %t %T' "$MNT/null")" "character special file 1 3" "character device numbers"
	mknod "$MNT/blk" b 8 17 || crp_fail "mknod of a block device"
	crp_eq "$(stat -c '%F %t %T' "$MNT/blk")" "block special file 8 11" "block device numbers"
	mknod "$MNT/bigdev" c 300 70000
	crp_eq "$(stat -c '%t %T' "$MNT/bigdev")" "12c 11170" "device numbers beyond 8 bits"
	# Device nodes on a FUSE mount are inert (nodev): opening fails.
	if echo x 2>/dev/null >"$MNT/null"; then crp_fail "a device node on crpfs could be opened (nodev expected)"; fi
}

rc=0
crp_run t_mkdir t_rmdir t_rename_across t_rename_over t_rename_noreplace t_rename_exchange \
	t_hard_links t_symlinks t_mknod || rc=1
crp_umount
exit $rc
