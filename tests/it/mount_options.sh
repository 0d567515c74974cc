#!/usr/bin/env bash
# mount.crpfs as mount(8) and users call it: daemonized start-up, the
# generic mount options, ro, the fsname/type seen in mountinfo, crpfs
# status on a mount point and its JSON, and "mount -t crpfs" / an fstab
# line through mount(8) (in a private mount namespace, where a temporary
# /sbin/mount.crpfs is visible).
. "$(dirname "$0")/lib.sh"

crp_setup jq unshare mount umount
crp_mkfs

t_fsname_and_type() {
	local line
	crp_mount
	line=$(awk -v d="$MNT" '$5 == d' /proc/self/mountinfo)
	[ -n "$line" ] || crp_fail "no mountinfo line for $MNT"
	crp_eq "$(sed 's/.* - //' <<<"$line" | awk '{ print $1 }')" fuse.crpfs "type in mountinfo"
	crp_eq "$(sed 's/.* - //' <<<"$line" | awk '{ print $2 }')" "$MEMBERS" "source (fsname) in mountinfo"
	sed 's/ - .*//' <<<"$line" | grep -q nosuid || crp_fail "mounted without nosuid: $line"
	crp_umount
}

t_generic_options() {
	crp_mount -o defaults,rw,auto,nofail,_netdev,noatime,relatime,nodev,nosuid,noexec,async,x-systemd.automount,host=generic-host
	echo ok >"$MNT/generic" || crp_fail "cannot write on a mount with the generic options"
	crp_umount
}

t_attr_timeout_and_timeout() {
	crp_mount -o attr_timeout=0,timeout=10000
	echo x >"$MNT/at0"
	crp_eq "$(cat "$MNT/at0")" x "read on a mount with attr_timeout=0"
	crp_umount
	crp_mount -o attr_timeout=2.5
	crp_umount
}

# commit=0 mounts and works; with commit=60000 nothing commits on time
# during the test, so the 50 files are there after the unmount only if the
# unmount commits the batch.
t_commit_option() {
	crp_mount -o commit=0
	echo a >"$MNT/c0" || crp_fail "write on a mount with commit=0"
	crp_eq "$(cat "$MNT/c0")" a "read on a mount with commit=0"
	crp_umount
	crp_mount -o commit=60000
	for i in $(seq 1 50); do echo "$i" >"$MNT/batched.$i"; done
	crp_umount
	crp_mount
	for i in $(seq 1 50); do
		crp_eq "$(cat "$MNT/batched.$i" 2>/dev/null)" "$i" "file $i kept for a 60 s group commit, after unmount"
	done
	crp_umount
	crp_mount -o peer_commit=0
	echo p0 >"$MNT/p0" || crp_fail "write on a mount with peer_commit=0"
	crp_umount
	crp_mount -o peer_commit=1000
	crp_eq "$(cat "$MNT/p0")" p0 "read on a mount with peer_commit=1000"
	crp_umount
	crp_fsck
}

# The mount's readahead: 1024 KiB unless readahead= says otherwise (set
# from a thread of the daemon once the kernel's INIT is answered, so the
# check waits a little for it).
ra_of_mount() {
	cat "/sys/class/bdi/$(mountpoint -d "$MNT")/read_ahead_kb"
}

wait_ra() {
	local want=$1 i
	for i in $(seq 1 100); do
		[ "$(ra_of_mount)" = "$want" ] && return 0
		sleep 0.1
	done
	crp_fail "the mount's readahead is $(ra_of_mount) KiB, not $want"
}

t_readahead_option() {
	crp_mount
	wait_ra 1024
	crp_umount
	crp_mount -o readahead=4096
	wait_ra 4096
	head -c 3000000 /dev/urandom >"$T/ra-data"
	cp "$T/ra-data" "$MNT/ra-file"
	crp_umount
	crp_mount -o readahead=0
	cmp "$T/ra-data" "$MNT/ra-file" || crp_fail "a file reads back wrong with readahead=0"
	crp_umount
}

t_read_only() {
	crp_mount
	echo before >"$MNT/ro-file"
	crp_umount
	crp_mount -o ro
	crp_eq "$(cat "$MNT/ro-file")" before "read on a read-only mount"
	if echo x 2>"$T/ro.err" >"$MNT/ro-new"; then crp_fail "created a file on a read-only mount"; fi
	grep -qi "read-only" "$T/ro.err" || crp_fail "writing on ro: $(cat "$T/ro.err") (EROFS expected)"
	if touch "$MNT/ro-file" 2>/dev/null; then crp_fail "touched a file on a read-only mount"; fi
	if mkdir "$MNT/ro-dir" 2>/dev/null; then crp_fail "mkdir on a read-only mount"; fi
	crp_umount
}

t_daemonized() {
	local pid rc=0
	"$MOUNT_CRPFS" "$MEMBERS" "$MNT" >"$T/bg.out" 2>&1 || rc=$?
	echo "$MNT" >>"$T/mounts"
	crp_eq "$rc" 0 "exit status of a daemonized mount.crpfs ($(cat "$T/bg.out"))"
	crp_is_mounted "$MNT" || crp_fail "mount.crpfs returned before the mount was there"
	pid=$(crp_pids_of_mountpoint "$MNT")
	[ -n "$pid" ] || crp_fail "no daemon process for $MNT"
	echo "$pid" >>"$T/pids"
	crp_eq "$(awk '{ print $6 }' "/proc/$pid/stat")" "$pid" "the daemon leads its own session (setsid)"
	echo detached >"$MNT/bg"
	crp_eq "$(cat "$MNT/bg")" detached "I/O through a daemonized mount"
	umount "$MNT" || crp_fail "umount of the daemonized mount"
	for _ in $(seq 1 600); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && crp_fail "the daemon did not exit after umount"
	return 0
}

t_daemonized_error_reaches_terminal() {
	local rc=0
	# Two of three members gone: RAID-5 cannot run.
	"$MOUNT_CRPFS" "file:$T/m0,file:$T/gone,file:$T/nothere" "$MNT" >"$T/bg.out" 2>&1 || rc=$?
	crp_eq "$rc" 32 "exit status of a daemonized mount that fails"
	sed "s|file:$T/m0,file:$T/gone,file:$T/nothere||g" "$T/bg.out" | grep -q nothere || crp_fail "the daemon's error did not reach the terminal: $(cat "$T/bg.out")"
	crp_is_mounted "$MNT" && crp_fail "mounted despite the error"
	return 0
}

t_status_json() {
	local j i
	crp_mount
	"$CRPFS" status "$MNT" --json >"$T/st.json" 2>"$T/st.err" ||
		crp_fail "crpfs status MOUNTPOINT --json: $(cat "$T/st.err")"
	jq -e . "$T/st.json" >/dev/null || crp_fail "status --json is not JSON: $(head -c 500 "$T/st.json")"
	crp_eq "$(jq -r .level "$T/st.json")" 5 "level"
	[ "$(jq -r .chunk_size "$T/st.json")" -gt 0 ] || crp_fail "chunk_size not positive"
	[ "$(jq -r .data_offset "$T/st.json")" -gt 0 ] || crp_fail "data_offset not positive"
	crp_eq "$(jq -r '.members | length' "$T/st.json")" 3 "number of members"
	for i in 0 1 2; do
		crp_eq "$(jq -r ".members[$i].spec" "$T/st.json")" "file:$D/m$i" "spec of member $i"
		crp_eq "$(jq -r ".members[$i].state" "$T/st.json")" ok "state of member $i"
	done
	for j in uuid label lock_mode slots bytes_total bytes_used; do
		jq -e "has(\"$j\")" "$T/st.json" >/dev/null || crp_fail "status --json has no key $j"
	done
	crp_eq "$(jq -r '[.slots[] | select(.host != "")] | length' "$T/st.json")" 1 "one host slot in use while mounted"
	"$CRPFS" status "$MEMBERS" >"$T/st.txt" || crp_fail "crpfs status MEMBERS (text)"
	grep -q "$(jq -r .uuid "$T/st.json")" "$T/st.txt" || crp_fail "text status lacks the uuid"
	grep -q "RAID-5" "$T/st.txt" || crp_fail "text status lacks the level"
	crp_umount
	"$CRPFS" status "$MEMBERS" --json >"$T/st2.json" || crp_fail "status after unmount"
	crp_eq "$(jq -r '[.slots[] | select(.host != "")] | length' "$T/st2.json")" 0 "host slots in use after unmount"
}

# mount(8) finds /sbin/mount.crpfs: inside a private mount namespace a tmpfs
# over /usr/sbin (where /sbin points on Debian) holds a link to the build.
t_mount_t_and_fstab() {
	local sbin
	sbin=$(readlink -f /sbin)
	cat >"$T/ns.sh" <<-EOF
		set -euo pipefail
		mount --make-rprivate /
		mount -t tmpfs crpfs-test "$sbin"
		ln -s "$MOUNT_CRPFS" "$sbin/mount.crpfs"
		mount -t crpfs "$MEMBERS" "$MNT" -o host=via-mount8,_netdev
		grep -q " $MNT " /proc/self/mountinfo
		echo via-mount >"$MNT/m8"
		[ "\$(cat "$MNT/m8")" = via-mount ]
		umount "$MNT"
		echo "$MEMBERS $MNT crpfs defaults,_netdev,noatime,attr_timeout=1 0 0" >"$T/fstab"
		mount -T "$T/fstab" "$MNT"
		[ "\$(cat "$MNT/m8")" = via-mount ]
		umount "$MNT"
	EOF
	unshare -m bash "$T/ns.sh" >"$T/ns.out" 2>&1 || crp_fail "mount -t crpfs / fstab in a namespace: $(cat "$T/ns.out")"
	# The daemons exit after their umount.
	for _ in $(seq 1 100); do
		[ -z "$(crp_pids_of_mountpoint "$MNT")" ] && return 0
		sleep 0.1
	done
	crp_pids_of_mountpoint "$MNT" >>"$T/pids"
	crp_fail "a daemon started by mount(8) is still running after umount"
}

crp_run t_fsname_and_type t_generic_options t_attr_timeout_and_timeout t_commit_option t_readahead_option t_read_only t_daemonized \
	t_daemonized_error_reaches_terminal t_status_json t_mount_t_and_fstab
