# Shared helpers of the multi-host integration tests (tests/it/multihost_*.sh).
#
# Three crpfs daemons on one machine act as three hosts (host=a, b, c: each
# its own iSCSI initiator name, derived from the host name, and its own mount
# point) over one loopback SAN: a private tgtd on 127.0.0.1 started by
# contrib/crpfs-lab on a free port in the test's scratch directory.
#
#   . "$(dirname "$0")/lib_multihost.sh"
#   mh_setup
#   t_case() {                 # runs once per lock mode, $MODE set
#           mh_lab_start 4 256M
#           mh_mkfs "$MODE"
#           mh_mount a; mh_mount b; mh_mount c
#           ...; mh_fail "what went wrong"
#   }
#   mh_run_modes t_case reserve pr
#
# Each mode runs in a subshell with errexit on, so a failure in one mode
# does not hide the other; everything a mode started (daemons, mounts,
# background jobs, the lab) is torn down by PID after it, and again by the
# EXIT trap.  Waits are bounded: a condition is polled against a deadline.
# A test that cannot run fails and says why: nothing here skips.

set -euo pipefail
set -E
. "$(dirname "${BASH_SOURCE[0]}")/lib_fusectl.sh"

MH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CRPFS_BUILD=${CRPFS_BUILD:-$MH_ROOT/build}
export CRPFS_BUILD
MKFS=$CRPFS_BUILD/mkfs.crpfs
MOUNT_CRPFS=$CRPFS_BUILD/mount.crpfs
CRPFS=$CRPFS_BUILD/crpfs
LAB=$MH_ROOT/contrib/crpfs-lab

# Short intervals keep the suite fast: a host is dead 2 s after its last beat.
MH_HEARTBEAT_MS=200
MH_DEAD_MS=2000
MH_OPTS="heartbeat=$MH_HEARTBEAT_MS,dead_timeout=$MH_DEAD_MS"
# Bounds of the waits (never timing assertions: a call that has not
# returned by then is taken as hung).  Each bounds one step that normally
# takes a second or two, generously, so that a slow but healthy machine
# passes; a load of many steps is bounded by its progress instead
# (mh_wait_progress: nothing moved for MH_STALL_WAIT s).
MH_ATTR_WAIT=15		# s: a change seen through the attribute timeout (1 s)
MH_CALL_WAIT=60		# s: one call on a survivor, dead timeout and recovery included
MH_MOUNT_WAIT=120	# s: a daemon mounts (joining watches the slots for the dead timeout)
MH_EXIT_WAIT=60		# s: a daemon exits after unmount
MH_TOOL_WAIT=300	# s: crpfs-lab, mkfs.crpfs, crpfs
MH_STALL_WAIT=60	# s: a load of many steps that made no progress at all

MH_NAME=$(basename "$0" .sh)
T=		# scratch directory
MODE=		# the lock mode of the current run
LAB_DIR=	# the current lab
PORT=		# its portal port
MEMBERS=	# its member list, comma-separated
MEMBER_ARGS=()	# the same, one argument each
declare -A MPID=()	# host -> PID of its daemon
# Registries (files, so that what a subshell started is torn down too):
# $T/pids daemons, $T/mounts mount points, $T/jobs background jobs,
# $T/labs lab directories.

# With CRPFS_TEST_STACKS=1 (and gdb installed), a failure also prints the
# thread stacks of every daemon still running: what a hang waits for.
mh_fail() {
	local h
	echo "FAIL [$MH_NAME${MODE:+ $MODE}]: $*" >&2
	if [ -n "${CRPFS_TEST_STACKS:-}" ] && command -v gdb >/dev/null; then
		for h in "${!MPID[@]}"; do
			kill -0 "${MPID[$h]}" 2>/dev/null || continue
			echo "--- threads of host $h (pid ${MPID[$h]}):" >&2
			timeout 60 gdb -batch -p "${MPID[$h]}" -ex "thread apply all bt" 2>/dev/null |
				grep -E '^(Thread|#)' >&2 || true
		done
	fi
	exit 1
}

mh_note() {
	echo "  [$MH_NAME${MODE:+ $MODE}] $*"
}

mh_mnt() {
	echo "$T/$1"
}

mh_log() {
	echo "$T/$1.log"
}

# Fail (not skip) when the machine cannot run the test.
mh_require() {
	local tool
	[ "$(id -u)" = 0 ] || mh_fail "cannot run: needs root (FUSE mounts, iSCSI lab)"
	[ -c /dev/fuse ] || mh_fail "cannot run: /dev/fuse is missing (modprobe fuse)"
	for tool in "$MKFS" "$MOUNT_CRPFS" "$CRPFS"; do
		[ -x "$tool" ] || mh_fail "cannot run: $tool is not built (run make)"
	done
	[ -x "$LAB" ] || mh_fail "cannot run: $LAB is missing or not executable"
	for tool in tgtd tgtadm; do
		command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || [ -x "/sbin/$tool" ] ||
			mh_fail "cannot run: $tool is missing (install the Debian package 'tgt')"
	done
	for tool in fusermount3 umount ss ps sha256sum jq perl timeout cmp awk "$@"; do
		command -v "$tool" >/dev/null ||
			mh_fail "cannot run: the tool '$tool' is missing (install its package)"
	done
}

mh_is_mounted() {
	awk -v d="$1" '$5 == d { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# mh_kill_tree SIG PID: signal PID and, first, its descendants (by PID).
mh_kill_tree() {
	local sig=$1 pid=$2 child
	for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
		mh_kill_tree "$sig" "$child"
	done
	kill "-$sig" "$pid" 2>/dev/null || true
}

# mh_bg_job PID: register a background job for teardown.
mh_bg_job() {
	echo "$1" >>"$T/jobs"
}

# Tear down everything registered: background jobs, mounts, daemons, labs.
mh_teardown() {
	local p m i d lpid
	set +e
	trap - ERR
	touch "$T/jobs" "$T/mounts" "$T/pids" "$T/labs"
	for p in $(cat "$T/pids"); do	# a stopped daemon cannot exit
		kill -CONT "$p" 2>/dev/null
	done
	for p in $(cat "$T/jobs"); do
		mh_kill_tree KILL "$p"
	done
	for m in $(sort -u "$T/mounts"); do
		for i in 1 2 3; do
			mh_is_mounted "$m" || break
			timeout 10 fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null ||
				fusermount3 -uz "$m" 2>/dev/null
		done
	done
	for p in $(cat "$T/pids"); do
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
		kill -0 "$p" 2>/dev/null || wait "$p" 2>/dev/null
	done
	for d in $(cat "$T/labs"); do
		[ -f "$d/lab.state" ] || continue
		timeout -s KILL "$MH_TOOL_WAIT" "$LAB" stop --dir "$d" >/dev/null 2>&1
		if [ -f "$d/lab.state" ]; then
			lpid=$(sed -n 's/^pid=\([0-9][0-9]*\)$/\1/p' "$d/lab.state")
			if [ -n "$lpid" ] && [ "$(cat "/proc/$lpid/comm" 2>/dev/null)" = tgtd ]; then
				echo "  cleanup: tgtd $lpid of $d did not stop, killing it" >&2
				kill -9 "$lpid" 2>/dev/null
			fi
		fi
	done
	: >"$T/jobs"
	: >"$T/mounts"
	: >"$T/pids"
	: >"$T/labs"
	set -e
	mh_err_trap
}

mh_dump_logs() {
	local f
	for f in "$T"/*.log; do
		[ -s "$f" ] || continue
		echo "--- last lines of $f:" >&2
		tail -n 15 "$f" >&2
		# CRPFS_KEEP_LOGS=DIR keeps every log of a failed case whole.
		if [ -n "${CRPFS_KEEP_LOGS:-}" ]; then
			mkdir -p "$CRPFS_KEEP_LOGS"
			cp "$f" "$CRPFS_KEEP_LOGS/${MH_NAME}.${MODE:-}.$(basename "$f")"
		fi
	done
}

mh_cleanup() {
	local rc=$?
	set +e
	trap - ERR
	[ -n "$T" ] && [ -d "$T" ] || exit "$rc"
	mh_teardown
	rm -rf "$T"
	exit "$rc"
}

mh_err_trap() {
	trap 'echo "FAIL [$MH_NAME${MODE:+ $MODE}]: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR
}

# mh_setup [TOOL...]: check the machine, make the scratch directory.
mh_setup() {
	mh_require "$@"
	# Short: tgtd's IPC socket lives under it (108 bytes at most).
	T=$(mktemp -d /tmp/crpfs-mh.XXXXXX)
	trap mh_cleanup EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT
	mh_err_trap
	touch "$T/pids" "$T/mounts" "$T/jobs" "$T/labs"
}

mh_free_port() {
	local i p
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 40000))
		if [ -z "$(ss -Hltn "sport = :$p")" ]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# mh_lab_start N SIZE: a fresh lab of N LUNs; sets LAB_DIR, PORT, MEMBERS.
mh_lab_start() {
	local n=$1 size=$2 try out
	for try in 1 2 3; do	# a port taken between the check and tgtd's bind
		PORT=$(mh_free_port) || mh_fail "cannot run: no free TCP port on 127.0.0.1"
		LAB_DIR=$(mktemp -d "$T/lab.XXXX")
		echo "$LAB_DIR" >>"$T/labs"
		if timeout -s KILL "$MH_TOOL_WAIT" "$LAB" start "$n" "$size" --dir "$LAB_DIR" \
			--port "$PORT" >"$LAB_DIR.out" 2>&1; then
			break
		fi
		grep -q 'port .* is in use\|cannot listen' "$LAB_DIR.out" && [ "$try" -lt 3 ] && continue
		mh_fail "cannot run: crpfs-lab start $n $size failed: $(tail -n 5 "$LAB_DIR.out")"
	done
	out=$(sed -n 's/^members: *//p' "$LAB_DIR.out")
	read -r -a MEMBER_ARGS <<<"$out"
	[ "${#MEMBER_ARGS[@]}" = "$n" ] ||
		mh_fail "crpfs-lab printed ${#MEMBER_ARGS[@]} members, expected $n: $(cat "$LAB_DIR.out")"
	MEMBERS=$(IFS=,; echo "${MEMBER_ARGS[*]}")
}

# mh_mkfs MODE [MKFS ARGS...]: RAID-5 over the lab's members, 4 host slots.
mh_mkfs() {
	local mode=$1
	shift
	timeout -s KILL "$MH_TOOL_WAIT" "$MKFS" -l 5 -m "$mode" -n 4 "$@" "${MEMBER_ARGS[@]}" \
		>"$T/mkfs.out" 2>&1 || mh_fail "mkfs.crpfs -m $mode failed: $(tail -n 5 "$T/mkfs.out")"
}

# mh_start HOST MNT [EXTRA OPTS]: a foreground daemon for HOST on MNT,
# stderr appended to the host's log; its PID in MH_PID.
mh_start() {
	local host=$1 mnt=$2 extra=${3:-} log
	log=$(mh_log "$host")
	mkdir -p "$mnt"
	echo "=== mount of host $host on $mnt ($(date +%T.%N))" >>"$log"
	"$MOUNT_CRPFS" "$MEMBERS" "$mnt" -f -o "host=$host,$MH_OPTS${extra:+,$extra}" >>"$log" 2>&1 &
	MH_PID=$!
	echo "$MH_PID" >>"$T/pids"
	echo "$mnt" >>"$T/mounts"
}

# mh_last_words HOST: the first lines the host's last daemon logged (an
# error comes before the usage text).
mh_last_words() {
	awk '/^=== mount of host / { n = 0; delete l; next } { l[++n] = $0 }
		END { for (i = 1; i <= n && i <= 2; i++) print l[i] }' "$(mh_log "$1")" | tr '\n' ' '
}

# mh_mount HOST [EXTRA OPTS]: mount HOST on $T/HOST; fails with the
# daemon's words if it exits instead.  MPID[HOST] is its PID.
mh_mount() {
	local host=$1 mnt i
	mnt=$(mh_mnt "$host")
	mh_start "$host" "$mnt" "${2:-}"
	MPID[$host]=$MH_PID
	for ((i = 0; i < MH_MOUNT_WAIT * 10; i++)); do
		mh_is_mounted "$mnt" && { fuse_note_conn "$MH_PID" "$mnt"; return 0; }
		if ! kill -0 "$MH_PID" 2>/dev/null; then
			wait "$MH_PID" || true
			mh_fail "mount.crpfs host=$host exited before mounting: $(mh_last_words "$host")"
		fi
		sleep 0.1
	done
	mh_fail "mount.crpfs host=$host did not mount $mnt within $MH_MOUNT_WAIT s"
}

# mh_try_mount HOST MNT [EXTRA OPTS]: like mh_mount on another mount point,
# but a daemon that exits instead is no failure: status 1, its exit status
# in MH_EXIT.  Status 0 (and MH_PID) when it mounted.
mh_try_mount() {
	local host=$1 mnt=$2 i
	MH_EXIT=
	mh_start "$host" "$mnt" "${3:-}"
	for ((i = 0; i < MH_MOUNT_WAIT * 10; i++)); do
		mh_is_mounted "$mnt" && { fuse_note_conn "$MH_PID" "$mnt"; return 0; }
		if ! kill -0 "$MH_PID" 2>/dev/null; then
			MH_EXIT=0
			wait "$MH_PID" || MH_EXIT=$?
			return 1
		fi
		sleep 0.1
	done
	mh_fail "mount.crpfs host=$host neither mounted $mnt nor exited within $MH_MOUNT_WAIT s"
}

# mh_wait_exit PID SECONDS: wait for the daemon to exit; its status in
# MH_EXIT; status 1 if it still runs at the deadline.
mh_wait_exit() {
	local p=$1 secs=$2
	fuse_gone "$p" "$secs" || return 1
	MH_EXIT=0
	wait "$p" || MH_EXIT=$?
	return 0
}

# mh_umount HOST: unmount HOST's mount point; its daemon must exit 0.
mh_umount() {
	local host=$1 mnt p
	mnt=$(mh_mnt "$host")
	p=${MPID[$host]}
	timeout 30 fusermount3 -u "$mnt" 2>>"$(mh_log "$host")" ||
		mh_fail "cannot unmount host $host's $mnt: $(tail -n 3 "$(mh_log "$host")")"
	mh_wait_exit "$p" "$MH_EXIT_WAIT" ||
		mh_fail "the daemon of host $host (pid $p) still runs $MH_EXIT_WAIT s after unmount"
	[ "$MH_EXIT" = 0 ] ||
		mh_fail "the daemon of host $host exited with status $MH_EXIT after unmount: $(tail -n 5 "$(mh_log "$host")")"
	unset "MPID[$host]"
}

# mh_lazy_umount HOST: detach the dead mount of a killed or fenced daemon.
mh_lazy_umount() {
	local mnt
	mnt=$(mh_mnt "$1")
	mh_is_mounted "$mnt" || return 0
	umount -l "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null ||
		mh_fail "cannot detach the dead mount of host $1 at $mnt"
	mh_is_mounted "$mnt" && mh_fail "the dead mount of host $1 at $mnt is still listed"
	return 0
}

# mh_wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds;
# status 1 at the deadline.
mh_wait_for() {
	local secs=$1 end
	shift
	end=$((SECONDS + secs))
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ "$SECONDS" -lt "$end" ] || break
		sleep 0.1
	done
	"$@" >/dev/null 2>&1
}

# mh_wait_progress WHAT DONE_CMD COUNT_CMD: wait until DONE_CMD succeeds,
# as long as the number COUNT_CMD prints keeps growing: status 1 (and
# MH_PROGRESS says how far it got) once it stood still for MH_STALL_WAIT s.
mh_wait_progress() {
	local what=$1 done_cmd=$2 count_cmd=$3 last=-1 now since=$SECONDS
	MH_PROGRESS=0
	while ! $done_cmd >/dev/null 2>&1; do
		now=$($count_cmd 2>/dev/null || echo 0)
		MH_PROGRESS=$now
		if [ "$now" != "$last" ]; then
			last=$now
			since=$SECONDS
		elif [ $((SECONDS - since)) -ge "$MH_STALL_WAIT" ]; then
			mh_note "$what: no progress for $MH_STALL_WAIT s, stuck at $now"
			return 1
		fi
		sleep 0.2
	done
	MH_PROGRESS=$($count_cmd 2>/dev/null || echo 0)
	return 0
}

# mh_call HOST WHAT CMD...: run CMD (a call on HOST's mount) bounded by
# $MH_CALL_WAIT s; fail saying whether it failed or never returned.
mh_call() {
	local host=$1 what=$2 rc=0
	shift 2
	timeout -s KILL "$MH_CALL_WAIT" "$@" >/dev/null 2>"$T/call.err" || rc=$?
	[ "$rc" != 137 ] || mh_fail "host $host: $what did not return within $MH_CALL_WAIT s"
	[ "$rc" = 0 ] || mh_fail "host $host: $what failed (status $rc): $(head -n 2 "$T/call.err")"
}

# mh_probe PATH: one open(2) of PATH for reading, then fstat of that file
# descriptor: "ok MODE SIZE", or the errno's name (ENOENT...).
mh_probe() {
	perl -e 'use POSIX; use Errno;
		if (open(my $f, "<", $ARGV[0])) {
			my @s = stat($f);
			printf "ok %04o %d\n", $s[2] & 07777, $s[7];
		} else {
			my %n = map { (eval "Errno::$_()") => $_ } grep { /^E/ } keys %!;
			print(($n{$! + 0} // ("errno " . ($! + 0))), "\n");
		}' "$1"
}

mh_sha() {
	sha256sum <"$1" | awk '{ print $1 }'
}

# mh_sum_writer HOST MAX SIZE: files of known content (4 KiB to SIZE
# bytes) written with fsync one after the other, until $T/stop or MAX of
# them; every file whose close succeeded is listed with its sum in
# $T/sums.HOST, every failure in $T/wfail.HOST; progress in $T/prog.HOST.
mh_sum_writer() {
	local h=$1 max=$2 size=$3 mnt i=0 f
	mnt=$(mh_mnt "$h")
	while [ ! -e "$T/stop" ] && [ "$i" -lt "$max" ]; do
		f="w/$h.$i"
		head -c $(((i * 7919) % size + 4096)) /dev/urandom >"$T/src.$h"
		if dd if="$T/src.$h" of="$mnt/$f" bs=64k conv=fsync status=none 2>>"$T/werr.$h"; then
			echo "$(mh_sha "$T/src.$h") $f" >>"$T/sums.$h"
		else
			echo "host $h: writing $f failed" >>"$T/wfail.$h"
		fi
		i=$((i + 1))
		echo "$i" >"$T/prog.$h"
	done
}

# Files the mh_sum_writers have written so far, all hosts together.
mh_written() {
	{ cat "$T"/prog.* 2>/dev/null || true; } | awk '{ n += $1 } END { print n + 0 }'
}

# mh_written_past N: more than N written so far (for mh_wait_for).
mh_written_past() {
	[ "$(mh_written)" -gt "$1" ]
}

# mh_fsck: crpfs fsck on the unmounted members must find nothing (exit
# 0), having checked the parity of stripes.
mh_fsck() {
	local rc=0 line
	timeout -s KILL "$MH_TOOL_WAIT" "$CRPFS" fsck "$MEMBERS" >"$T/fsck.out" 2>&1 || rc=$?
	[ "$rc" = 0 ] || mh_fail "crpfs fsck exited $rc: $(tail -n 20 "$T/fsck.out")"
	line=$(grep 'stripes checked' "$T/fsck.out" | tail -n 1)
	[[ $line =~ ([0-9]+)\ stripes\ checked ]] && [ "${BASH_REMATCH[1]}" -gt 0 ] ||
		mh_fail "crpfs fsck checked no stripe's parity: $(tail -n 3 "$T/fsck.out")"
	[[ $line == *" 0 problems found"* ]] ||
		mh_fail "crpfs fsck exited 0 but reports problems: $line"
	mh_note "fsck: $line"
}

# mh_slots_json TARGET: the slots as a JSON array of {slot, host, state,
# ...} from `crpfs hosts TARGET --json` (an object with "slots" or
# "hosts", or the array itself); stdout.  Fails with the tool's words.
mh_slots_json() {
	local out rc=0
	out=$(timeout -s KILL "$MH_TOOL_WAIT" "$CRPFS" hosts "$1" --json 2>&1) || rc=$?
	[ "$rc" = 0 ] || mh_fail "crpfs hosts $1 --json exited $rc: $out"
	printf '%s\n' "$out" | jq -e 'if type == "array" then . else (.slots // .hosts) end |
		if type == "array" then . else error("no slots") end' 2>/dev/null ||
		mh_fail "crpfs hosts $1 --json prints no slot list: $out"
}

# mh_slot_state TARGET HOST: the state of HOST's slot ("none" if no slot
# names it, several lines if several do).
mh_slot_state() {
	mh_slots_json "$1" | jq -r --arg h "$2" \
		'[.[] | select(.host == $h) | .state] | if length == 0 then "none" else .[] end'
}

# mh_host_gone TARGET HOST: HOST holds no live slot (free, dead, or none).
mh_host_gone() {
	local st
	st=$(mh_slot_state "$1" "$2") || return 1
	! grep -qx 'alive\|recovering' <<<"$st"
}

# mh_status_slot_state HOST: the states of the slots that name HOST, from
# `crpfs status MEMBERS --json` (comma-separated; empty if none).
# Fails (status 1) when crpfs status could not read the array (a member
# busy with another host's reservation, say): no answer is not "freed".
mh_status_slot_state() {
	local js
	js=$(timeout -s KILL 20 "$CRPFS" status "$MEMBERS" --json 2>/dev/null) || return 1
	[ -n "$js" ] || return 1
	printf '%s\n' "$js" |
		jq -er --arg h "$1" 'if any(.slots[]; .state == "unreadable") then error("unreadable slot")
			else [.slots[] | select(.host == $h) | .state] | join(",") end'
}

# mh_slot_freed HOST: no slot holds HOST any more, in any state (alive,
# dead, recovering, unknown); status --json names no host for a free slot.
mh_slot_freed() {
	local st
	st=$(mh_status_slot_state "$1") || return 1
	[ -z "$st" ]
}

# The line a survivor logs once it recovered a dead host.
mh_recoveries_of() {	# mh_recoveries_of DEAD HOST...: count in the hosts' logs
	local dead=$1 n=0 h c
	shift
	for h in "$@"; do
		c=$(grep -c "recovered dead host $dead " "$(mh_log "$h")" 2>/dev/null || true)
		n=$((n + ${c:-0}))
	done
	echo "$n"
}

# Empty the scratch directory for the next mode (the registries stay);
# never while something is still mounted below it.
mh_scratch_clear() {
	if awk -v t="$T/" 'index($5, t) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
		echo "FAIL [$MH_NAME]: mounts below $T survived the teardown; scratch files kept" >&2
		return 0
	fi
	find "$T" -mindepth 1 -maxdepth 1 ! -name pids ! -name mounts ! -name jobs ! -name labs \
		-exec rm -rf {} +
}

# mh_run_modes FUNC MODE...: run FUNC once per lock mode in a subshell
# with errexit on, tearing down what it started after each.
mh_run_modes() {
	local fn=$1 mode rc failed=0 names=()
	shift
	for mode in "$@"; do
		local start=$SECONDS
		set +e
		trap - ERR
		(
			set -e
			mh_err_trap
			MODE=$mode
			"$fn"
		)
		rc=$?
		set -e
		[ "$rc" = 0 ] || MODE=$mode mh_dump_logs
		mh_teardown
		mh_scratch_clear
		if [ "$rc" = 0 ]; then
			echo "  ok   $fn $mode ($((SECONDS - start)) s)"
		else
			echo "  FAIL $fn $mode ($((SECONDS - start)) s)"
			failed=$((failed + 1))
			names+=("$mode")
		fi
	done
	echo "$MH_NAME: $(($# - failed)) passed, $failed failed${names[*]:+ (${names[*]})}"
	[ "$failed" = 0 ] || exit 1
	mh_err_trap
}
