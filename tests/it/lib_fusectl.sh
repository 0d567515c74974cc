# Sourced by lib.sh and lib_multihost.sh: the FUSE connection of each
# daemon, for the one case where a dead daemon needs it aborted.
#
# A daemon killed (kill -9) while its invalidation thread waits in the
# kernel for a directory's lock, held by an application whose request in
# that directory the dead daemon will never answer, keeps that thread in
# the kernel, and with it the process (a zombie whose PID stays), until
# the connection is aborted, as an administrator does through
# /sys/fs/fuse/connections/N/abort (mount.crpfs(8)).  The helpers here do
# that, by the connection recorded for that PID at mount time only.

# fuse_note_conn PID MNT: record the connection of PID's mount on MNT.
fuse_note_conn() {
	local dev
	dev=$(awk -v d="$2" '$5 == d { dev = $3 } END { print dev }' /proc/self/mountinfo)
	[ -n "$dev" ] && echo "$1 ${dev#*:}" >>"$T/fuseconns"
	return 0
}

# fuse_abort_conn PID: abort the connection recorded for PID; status 1
# if there is none (never recorded, or gone with its daemon).
fuse_abort_conn() {
	local c d=/sys/fs/fuse/connections
	c=$(awk -v p="$1" '$1 == p { c = $2 } END { print c }' "$T/fuseconns" 2>/dev/null)
	[ -n "$c" ] || return 1
	[ -e "$d/$c/abort" ] || mountpoint -q "$d" || mount -t fusectl none "$d" 2>/dev/null
	[ -e "$d/$c/abort" ] || return 1
	echo 1 >"$d/$c/abort"
}

# fuse_gone PID SECS: wait up to SECS for PID to be gone; if it is still
# there, abort its connection (saying so) and wait as long again.
# Status 1 if it still stays.
fuse_gone() {
	local p=$1 secs=$2 i
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$p" 2>/dev/null || return 0
		sleep 0.1
	done
	fuse_abort_conn "$p" || return 1
	echo "  daemon $p stayed in the kernel after its end: its FUSE connection was aborted" >&2
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$p" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}
