#!/usr/bin/env bash
# POSIX file behaviour on a real crpfs mount: create, open flags, read,
# write, pread/pwrite, sparse files and SEEK_DATA/SEEK_HOLE, truncate,
# fallocate, open-unlinked files, files over 4 GiB, 255-byte names.
. "$(dirname "$0")/lib.sh"

crp_setup fallocate od cmp
crp_mkfs
crp_mount

t_create() {
	local f=$MNT/create.txt
	: >"$f" || crp_fail "cannot create $f"
	[ -f "$f" ] || crp_fail "$f does not exist after creation"
	crp_eq "$(stat -c %s "$f")" 0 "size of a new empty file"
	crp_eq "$(stat -c %a "$f")" "$(printf '%o' $((0666 & ~$(umask))))" "mode of a new file (umask applied)"
	crp_eq "$(stat -c '%u:%g' "$f")" "$(id -u):$(id -g)" "owner of a new file"
	ls "$MNT" | grep -qx create.txt || crp_fail "new file not listed by readdir"
}

t_open_excl() {
	local f=$MNT/excl
	crp_eq "$("$HELPER" open "$f" wronly,creat,excl)" ok "first O_CREAT|O_EXCL"
	crp_eq "$("$HELPER" open "$f" wronly,creat,excl)" EEXIST "O_CREAT|O_EXCL on an existing file"
	crp_eq "$("$HELPER" open "$f" wronly,creat)" ok "O_CREAT without O_EXCL on an existing file"
	ln -s excl "$MNT/excl-link"
	crp_eq "$("$HELPER" open "$MNT/excl-link" wronly,creat,excl)" EEXIST "O_CREAT|O_EXCL on a symlink"
}

t_open_trunc() {
	local f=$MNT/trunc
	printf 'some content here' >"$f"
	crp_eq "$("$HELPER" open "$f" wronly,trunc)" ok "open O_TRUNC"
	crp_eq "$(stat -c %s "$f")" 0 "size after O_TRUNC"
	printf 'abc' >"$f"
	crp_eq "$("$HELPER" open "$f" rdonly)" ok "open O_RDONLY"
	crp_eq "$(cat "$f")" abc "content after rewrite of a truncated file"
}

t_open_append() {
	local f=$MNT/append
	printf 'one\n' >"$f"
	crp_eq "$("$HELPER" open "$f" wronly,append $'two\n')" ok "write with O_APPEND"
	crp_eq "$("$HELPER" open "$f" wronly,append $'three\n')" ok "second write with O_APPEND"
	crp_eq "$(cat "$f")" $'one\ntwo\nthree' "O_APPEND writes go to the end despite lseek(0)"
	echo four >>"$f"
	crp_eq "$(tail -n 1 "$f")" four "shell >> append"
}

t_read_write() {
	local src=$T/rw.src f=$MNT/rw
	head -c $((3 * 1024 * 1024 + 12345)) /dev/urandom >"$src"
	cp "$src" "$f"
	cmp "$src" "$f" || crp_fail "content read back differs from what was written"
	# Rewrite the middle with other data, unaligned.
	dd if=/dev/urandom of="$src" bs=1 seek=777777 count=100000 conv=notrunc status=none
	dd if="$src" of="$f" bs=65536 iflag=skip_bytes,count_bytes oflag=seek_bytes \
		skip=777777 seek=777777 count=100000 conv=notrunc status=none
	cmp "$src" "$f" || crp_fail "unaligned overwrite in the middle of a file"
	crp_eq "$(stat -c %s "$f")" "$(stat -c %s "$src")" "size after overwrite"
}

t_pread_pwrite() {
	local f=$MNT/pio off
	for off in 0 100 4095 8192 65535 131072 1048575 10000000 $((1 << 31)); do
		crp_eq "$("$HELPER" pwrite "$f" "$off" "at-$off")" ok "pwrite at $off"
	done
	for off in 0 100 4095 8192 65535 131072 1048575 10000000 $((1 << 31)); do
		crp_eq "$("$HELPER" pread "$f" "$off" $((${#off} + 3)))" "at-$off" "pread at $off"
	done
	crp_eq "$(stat -c %s "$f")" $(((1 << 31) + 3 + 10)) "size after the last pwrite"
	# Bytes between the writes read as zeros.
	crp_eq "$("$HELPER" pread "$f" 20000000 8 | od -An -tx1 | tr -d ' ')" 0000000000000000 \
		"bytes never written read as zeros"
	# pread past the end returns nothing.
	crp_eq "$("$HELPER" pread "$f" $(((1 << 31) + 100)) 10 | wc -c)" 0 "pread past the end"
}

t_sparse_seek() {
	local f=$MNT/sparse mib=$((1024 * 1024))
	truncate -s $((64 * mib)) "$f"
	dd if=/dev/urandom of="$f" bs=1M seek=8 count=1 conv=notrunc status=none
	dd if=/dev/urandom of="$f" bs=1M seek=40 count=2 conv=notrunc status=none
	crp_eq "$(stat -c %s "$f")" $((64 * mib)) "size of the sparse file"
	[ "$(stat -c %b "$f")" -lt $((20 * 2048)) ] ||
		crp_fail "a 64 MiB file with 3 MiB of data uses $(stat -c %b "$f") blocks of 512"
	crp_eq "$("$HELPER" seek "$f" data 0)" $((8 * mib)) "SEEK_DATA from 0"
	crp_eq "$("$HELPER" seek "$f" hole $((8 * mib)))" $((9 * mib)) "SEEK_HOLE from the first data"
	crp_eq "$("$HELPER" seek "$f" data $((9 * mib)))" $((40 * mib)) "SEEK_DATA from the first hole"
	crp_eq "$("$HELPER" seek "$f" hole $((40 * mib)))" $((42 * mib)) "SEEK_HOLE from the second data"
	crp_eq "$("$HELPER" seek "$f" hole $((50 * mib)))" $((50 * mib)) "SEEK_HOLE inside the last hole"
	crp_eq "$("$HELPER" seek "$f" data $((42 * mib)))" ENXIO "SEEK_DATA past the last data"
	crp_eq "$("$HELPER" seek "$f" data $((64 * mib)))" ENXIO "SEEK_DATA at the end"
	crp_eq "$("$HELPER" pread "$f" $((20 * mib)) 16 | od -An -tx1 | tr -d ' ')" \
		00000000000000000000000000000000 "a hole reads as zeros"
}

t_truncate() {
	local f=$MNT/trunc2
	head -c 100000 /dev/urandom >"$T/t2"
	cp "$T/t2" "$f"
	truncate -s 5000 "$f"
	crp_eq "$(stat -c %s "$f")" 5000 "size after truncate down"
	cmp -n 5000 "$T/t2" "$f" || crp_fail "data before the new end changed by truncate down"
	truncate -s 300000 "$f"
	crp_eq "$(stat -c %s "$f")" 300000 "size after truncate up"
	cmp -n 5000 "$T/t2" "$f" || crp_fail "data changed by truncate up"
	crp_eq "$("$HELPER" pread "$f" 5000 16 | od -An -tx1 | tr -d ' ')" \
		00000000000000000000000000000000 "old data past a truncate down must read as zeros"
	crp_eq "$(tail -c 1 "$f" | od -An -tx1 | tr -d ' ')" 00 "the last byte after truncate up"
	truncate -s 0 "$f"
	crp_eq "$(stat -c %s "$f")" 0 "truncate to zero"
}

t_fallocate() {
	local f=$MNT/falloc mib=$((1024 * 1024)) before after
	fallocate -l $((8 * mib)) "$f" || crp_fail "fallocate -l 8M failed"
	crp_eq "$(stat -c %s "$f")" $((8 * mib)) "size after fallocate"
	[ "$(stat -c %b "$f")" -ge $((8 * 2048)) ] ||
		crp_fail "fallocate 8 MiB allocated only $(stat -c %b "$f") blocks of 512"
	crp_eq "$("$HELPER" pread "$f" 12345 8 | od -An -tx1 | tr -d ' ')" 0000000000000000 \
		"preallocated space reads as zeros"
	fallocate -n -o $((8 * mib)) -l $((4 * mib)) "$f" || crp_fail "fallocate --keep-size failed"
	crp_eq "$(stat -c %s "$f")" $((8 * mib)) "size after fallocate --keep-size"
	head -c $((8 * mib)) /dev/urandom >"$T/falloc"
	cp "$T/falloc" "$f"
	before=$(stat -c %b "$f")
	fallocate -p -o $((2 * mib)) -l $((2 * mib)) "$f" || crp_fail "fallocate --punch-hole failed"
	after=$(stat -c %b "$f")
	[ "$after" -lt "$before" ] || crp_fail "punching 2 MiB freed nothing ($before -> $after blocks)"
	crp_eq "$(stat -c %s "$f")" $((8 * mib)) "size after punch hole"
	crp_eq "$("$HELPER" pread "$f" $((3 * mib)) 8 | od -An -tx1 | tr -d ' ')" 0000000000000000 \
		"a punched range reads as zeros"
	cmp -n $((2 * mib)) "$T/falloc" "$f" || crp_fail "data before the punched range changed"
}

t_unlink_open() {
	local out
	out=$("$HELPER" unlinked "$MNT/unlinked" 2>&1) || crp_fail "$out"
	crp_eq "$out" ok "open-unlinked file"
	[ ! -e "$MNT/unlinked" ] || crp_fail "the unlinked file came back"
	echo data >"$MNT/gone"
	rm "$MNT/gone"
	[ ! -e "$MNT/gone" ] || crp_fail "unlink did not remove the name"
	! ls "$MNT" | grep -qx gone || crp_fail "readdir still lists an unlinked file"
}

t_large_file() {
	local f=$MNT/big off=$((5 * 1024 * 1024 * 1024 + 12345))
	head -c 4096 /dev/urandom >"$T/big.head"
	head -c 4096 /dev/urandom >"$T/big.tail"
	dd if="$T/big.head" of="$f" bs=4096 count=1 status=none
	dd if="$T/big.tail" of="$f" bs=4096 seek="$off" oflag=seek_bytes conv=notrunc status=none
	crp_eq "$(stat -c %s "$f")" $((off + 4096)) "size of a file over 4 GiB"
	cmp "$T/big.tail" <(tail -c 4096 "$f") || crp_fail "data written past 4 GiB reads back wrong"
	cmp "$T/big.head" <(head -c 4096 "$f") || crp_fail "data at 0 of a file over 4 GiB"
	crp_eq "$("$HELPER" pread "$f" $((4 * 1024 * 1024 * 1024)) 8 | od -An -tx1 | tr -d ' ')" \
		0000000000000000 "the hole at 4 GiB reads as zeros"
	truncate -s $((4 * 1024 * 1024 * 1024 + 1)) "$f"
	crp_eq "$(stat -c %s "$f")" $((4 * 1024 * 1024 * 1024 + 1)) "truncate to 4 GiB + 1"
}

t_long_names() {
	local n255 n256 d
	n255=$(printf 'n%.0s' $(seq 1 255))
	n256=${n255}x
	echo long >"$MNT/$n255" || crp_fail "cannot create a file with a 255-byte name"
	crp_eq "$(cat "$MNT/$n255")" long "content of the 255-byte name"
	ls "$MNT" | grep -qx "$n255" || crp_fail "readdir does not list the 255-byte name"
	if echo x 2>/dev/null >"$MNT/$n256"; then
		crp_fail "a 256-byte name was accepted"
	fi
	d=$(printf 'é%.0s' $(seq 1 127))x	# 255 bytes of UTF-8
	mkdir "$MNT/$d" || crp_fail "cannot mkdir a 255-byte UTF-8 name"
	mv "$MNT/$n255" "$MNT/$d/$n255" || crp_fail "cannot rename a 255-byte name"
	crp_eq "$(cat "$MNT/$d/$n255")" long "content after rename of the 255-byte name"
}

rc=0
crp_run t_create t_open_excl t_open_trunc t_open_append t_read_write t_pread_pwrite \
	t_sparse_seek t_truncate t_fallocate t_unlink_open t_large_file t_long_names || rc=1
crp_umount
exit $rc
