# Shared helpers of the integration tests on a real crpfs mount.
#
# A test script sources this file, calls crp_setup (which checks that the
# test can run at all, makes a scratch directory and installs the EXIT
# trap), formats and mounts, and hands its test functions to crp_run:
#
#   . "$(dirname "$0")/lib.sh"
#   crp_setup
#   crp_mkfs
#   crp_mount
#   t_something() { ...; crp_assert ... || crp_fail "what went wrong"; }
#   crp_run t_something t_other
#
# Every test function runs in a subshell with errexit on, so one failing
# behaviour does not hide the others; crp_run exits non-zero if any failed.
# A test that cannot run fails and says why: nothing here skips.
#
# Cleanup (EXIT trap): unmount (fusermount3 -u, falling back to umount -l),
# stop the daemons this script started by their PIDs, remove the scratch
# directory.

set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib_fusectl.sh"
set -E

CRPFS_BUILD=${CRPFS_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}
export CRPFS_BUILD
MKFS=$CRPFS_BUILD/mkfs.crpfs
MOUNT_CRPFS=$CRPFS_BUILD/mount.crpfs
CRPFS=$CRPFS_BUILD/crpfs
HELPER=$CRPFS_BUILD/tests/crp_fsop

T=			# scratch directory
D=			# where the members live ($T, or a test's own directory)
MNT=			# mount point
MEMBERS=		# the member list, comma-separated
CRP_PID=		# the daemon of the current mount
# Daemons started and mount points used are listed in $T/pids and
# $T/mounts, so that mounts made inside a test's subshell are cleaned too.
CRP_NAME=$(basename "$0" .sh)

crp_fail() {
	echo "FAIL [$CRP_NAME${CRP_TEST:+ $CRP_TEST}]: $*" >&2
	exit 1
}

crp_note() {
	echo "  [$CRP_NAME${CRP_TEST:+ $CRP_TEST}] $*"
}

# Fail (not skip) when the machine cannot run the test.
crp_require() {
	local tool
	[ "$(id -u)" = 0 ] || crp_fail "cannot run: needs root (FUSE mounts with allow_other, chown, mknod)"
	[ -c /dev/fuse ] || crp_fail "cannot run: /dev/fuse is missing (modprobe fuse)"
	for tool in "$MKFS" "$MOUNT_CRPFS" "$CRPFS" "$HELPER"; do
		[ -x "$tool" ] || crp_fail "cannot run: $tool is not built (run make)"
	done
	for tool in "$@"; do
		command -v "$tool" >/dev/null ||
			crp_fail "cannot run: the tool '$tool' is missing (install its package)"
	done
}

crp_is_mounted() {
	local dir=$1
	# Field 5 of mountinfo is the mount point (no spaces in our paths).
	awk -v d="$dir" '$5 == d { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# Unmount every mount point used and stop every daemon started (by PID);
# with SKIP_MOUNTS SKIP_PIDS, only those registered after the first
# SKIP_MOUNTS and SKIP_PIDS lines (what one test function added).
crp_unmount_all() {
	local skip_m=${1:-0} skip_p=${2:-0} m p i
	touch "$T/mounts" "$T/pids"
	for m in $(tail -n +$((skip_m + 1)) "$T/mounts" | sort -u); do
		for i in 1 2 3; do	# stacked mounts come off one at a time
			crp_is_mounted "$m" || break
			fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null ||
				umount -l "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null
		done
	done
	for p in $(tail -n +$((skip_p + 1)) "$T/pids"); do
		[ -n "$p" ] || continue
		for i in $(seq 1 100); do
			kill -0 "$p" 2>/dev/null || break
			[ "$i" = 50 ] && kill "$p" 2>/dev/null
			sleep 0.1
		done
		if kill -0 "$p" 2>/dev/null; then
			echo "  cleanup: daemon $p did not stop, killing it" >&2
			kill -9 "$p" 2>/dev/null
			fuse_gone "$p" 5 || echo "  cleanup: daemon $p stays after kill -9" >&2
		fi
	done
	head -n "$skip_m" "$T/mounts" >"$T/mounts.new" && mv "$T/mounts.new" "$T/mounts"
	head -n "$skip_p" "$T/pids" >"$T/pids.new" && mv "$T/pids.new" "$T/pids"
}

crp_cleanup() {
	local rc=$?
	set +e
	trap - ERR
	[ -n "$T" ] && [ -d "$T" ] || exit "$rc"
	if [ "$rc" != 0 ]; then
		# A daemon that died under a failing test: say how (signal or status).
		local p st
		for p in $(cat "$T/pids" 2>/dev/null); do
			kill -0 "$p" 2>/dev/null && continue
			st=0
			wait "$p" 2>/dev/null || st=$?
			[ "$st" = 127 ] || echo "--- daemon $p had exited with status $st" >&2
		done
	fi
	crp_unmount_all
	if [ "$rc" != 0 ] && [ -s "$T/daemon.log" ]; then
		echo "--- last lines of the daemon log ($T/daemon.log):" >&2
		tail -n 30 "$T/daemon.log" >&2
	fi
	rm -rf "$T"
	exit "$rc"
}

# crp_setup [TOOL...]: check the machine, make the scratch directory.
crp_setup() {
	crp_require fusermount3 sha256sum "$@"
	T=$(mktemp -d /tmp/crpfs-it.XXXXXX)
	trap crp_cleanup EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT
	trap 'echo "FAIL [$CRP_NAME${CRP_TEST:+ $CRP_TEST}]: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR
	touch "$T/pids" "$T/mounts"
	crp_use_dir "$T"
}

# crp_use_dir DIR: members DIR/m0..m2 and mount point DIR/mnt from now on
# (a test function that needs a filesystem of its own calls it).
crp_use_dir() {
	D=$1
	MNT=$D/mnt
	mkdir -p "$MNT"
	MEMBERS="file:$D/m0,file:$D/m1,file:$D/m2"
}

# crp_mkfs [MKFS ARGS...]: three 256 MiB file members by default.
crp_mkfs() {
	local size=256M
	if [ "${1:-}" = --size ]; then
		size=$2
		shift 2
	fi
	"$MKFS" -s "$size" "$@" "file:$D/m0" "file:$D/m1" "file:$D/m2" >"$D/mkfs.log" 2>&1 ||
		crp_fail "mkfs.crpfs failed: $(cat "$D/mkfs.log")"
}

# crp_mount [-o OPTS]: mount $MEMBERS on $MNT with a foreground daemon in
# the background; sets CRP_PID.  Fails with the daemon's words if it exits.
crp_mount() {
	local i
	"$MOUNT_CRPFS" "$MEMBERS" "$MNT" -f "$@" >>"$T/daemon.log" 2>&1 &
	CRP_PID=$!
	echo "$CRP_PID" >>"$T/pids"
	echo "$MNT" >>"$T/mounts"
	for i in $(seq 1 1200); do
		crp_is_mounted "$MNT" && { fuse_note_conn "$CRP_PID" "$MNT"; return 0; }
		if ! kill -0 "$CRP_PID" 2>/dev/null; then
			wait "$CRP_PID" || true
			crp_fail "mount.crpfs exited before mounting: $(tail -n 5 "$T/daemon.log")"
		fi
		sleep 0.1
	done
	crp_fail "mount.crpfs did not mount $MNT within 120 s"
}

# crp_try_mount [ARGS...]: like crp_mount, but a daemon that exits instead
# of mounting is not a failure: returns 1 with its exit status in CRP_EXIT
# and its words in $D/try.log.
crp_try_mount() {
	local i
	CRP_EXIT=
	: >"$D/try.log"
	"$MOUNT_CRPFS" "$MEMBERS" "$MNT" -f "$@" >>"$D/try.log" 2>&1 &
	CRP_PID=$!
	echo "$CRP_PID" >>"$T/pids"
	echo "$MNT" >>"$T/mounts"
	for i in $(seq 1 1200); do
		crp_is_mounted "$MNT" && return 0
		if ! kill -0 "$CRP_PID" 2>/dev/null; then
			CRP_EXIT=0
			wait "$CRP_PID" || CRP_EXIT=$?
			return 1
		fi
		sleep 0.1
	done
	crp_fail "mount.crpfs neither mounted $MNT nor exited within 120 s"
}

# PIDs of mount.crpfs processes whose command line names $1 (a mount point
# unique to this test): for daemons started by mount(8) or daemonized.
crp_pids_of_mountpoint() {
	local f pid
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		{ tr '\0' '\n' <"$f"; } 2>/dev/null | grep -qx "$1" || continue
		{ tr '\0' '\n' <"$f"; } 2>/dev/null | head -n 1 | grep -q 'mount\.crpfs$' || continue
		echo "$pid"
	done
}

# Wait for daemon $1 to exit; its exit status is returned.
crp_wait_pid() {
	local p=$1 i
	for i in $(seq 1 600); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$p" 2>/dev/null && crp_fail "daemon $p still running 60 s after unmount"
	wait "$p"
}

# crp_umount: unmount $MNT and wait for the daemon to flush and exit 0.
crp_umount() {
	local rc=0
	fusermount3 -u "$MNT" 2>>"$T/daemon.log" || umount "$MNT" ||
		crp_fail "cannot unmount $MNT"
	crp_wait_pid "$CRP_PID" || rc=$?
	[ "$rc" = 0 ] || crp_fail "mount.crpfs exited with status $rc after unmount"
	CRP_PID=
}

# crp_fsck: crpfs fsck on the members must find nothing (exit 0).
crp_fsck() {
	local rc=0
	"$CRPFS" fsck "$MEMBERS" >"$T/fsck.log" 2>&1 || rc=$?
	[ "$rc" = 0 ] || crp_fail "crpfs fsck exited $rc: $(tail -n 20 "$T/fsck.log")"
}

# sha256 of every member image, for "nothing was touched" (the images
# only: the file transport's .crpfs-scsi side files hold reservation state).
crp_member_sums() {
	sha256sum "$D/m0" "$D/m1" "$D/m2" | awk '{ print $1 }' | tr '\n' ' '
}

# crp_run TEST...: run each test function in a subshell; count failures.
crp_run() {
	local t rc failed=0 passed=0 names=() nm np start
	for t in "$@"; do
		start=$SECONDS
		nm=$(wc -l <"$T/mounts")
		np=$(wc -l <"$T/pids")
		set +e
		(
			set -e
			CRP_TEST=$t
			"$t"
		)
		rc=$?
		set -e
		if [ "$rc" != 0 ]; then
			# A failed test may leave its mount: clear it for the next.
			crp_unmount_all "$nm" "$np"
		fi
		if [ "$rc" = 0 ]; then
			echo "  ok   $t ($((SECONDS - start)) s)"
			passed=$((passed + 1))
		else
			echo "  FAIL $t ($((SECONDS - start)) s)"
			failed=$((failed + 1))
			names+=("$t")
		fi
	done
	echo "$CRP_NAME: $passed passed, $failed failed${names[*]:+ (${names[*]})}"
	[ "$failed" = 0 ]
}

# Assertions that say what they expected.
crp_eq() {	# crp_eq ACTUAL EXPECTED WHAT
	[ "$1" = "$2" ] || crp_fail "$3: expected '$2', got '$1'"
}

# Run directly (tests/run-tests.sh runs every tests/it/*.sh), this file is
# the preflight check: it fails, naming what is missing, when the machine
# cannot run the integration tests at all.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	CRP_NAME=preflight
	crp_require fusermount3 mount umount unshare setpriv fallocate setfattr getfattr setfacl \
		getfacl jq sha256sum cmp diff find awk mkfifo mknod truncate timeout
	[ -d /usr/include ] || crp_fail "cannot run: /usr/include is missing (libc6-dev)"
	echo "preflight: every tool the integration tests need is present"
fi
