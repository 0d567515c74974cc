#!/usr/bin/env bash
# Integration test of contrib/crpfs-lab, the loopback SAN for trying crpfs
# with several hosts on one machine.
#
# Starts a lab of four 64 MiB LUNs in a scratch directory on a free port and
# checks: the printed member lists; that every LUN answers on 127.0.0.1 with
# its size (libiscsi's iscsi-readcapacity16 and iscsi-inq); that tgtd listens
# on 127.0.0.1:PORT and nowhere else; that a second lab on the same directory
# and one on the same port are refused and leave nothing behind; status; a
# RAID-5 crpfs made by mkfs.crpfs over the lab's members and read back by
# `crpfs status --json`; restart (a new tgtd on the same port, every LUN
# back with its data: crpfs status reads the array again); lun-add (a new
# sparse LUN of its own size, its member printed) and lun-del (the LUN no
# longer a disk at the target, its file kept, still deleted after a
# restart); those commands on a lab that is not there; stop (the PID gone,
# the files removed, the port free); a lab whose tgtd died (kill -9) is
# reported, refused by start, started again by restart and cleaned up by
# stop; bad arguments exit 2; a missing tgtd names the package.
#
# A test that cannot run fails and says why.  The EXIT trap stops any lab the
# test started (crpfs-lab stop, then SIGKILL by the recorded PID) and removes
# the scratch directories.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LAB=$ROOT/contrib/crpfs-lab
CRPFS_BUILD=${CRPFS_BUILD:-$ROOT/build}
MKFS=$CRPFS_BUILD/mkfs.crpfs
CRPFS=$CRPFS_BUILD/crpfs
IQN=iqn.2026-11.org.crpfs.lab:san
NLUNS=4
LUN_BYTES=$((64 * 1024 * 1024))
TOOL_TIMEOUT=120 # s: one iSCSI tool or crpfs-lab command

fail() {
	echo "FAIL [crpfs_lab]: $*" >&2
	exit 1
}

note() {
	echo "  [crpfs_lab] $*"
}

DIRS=() # scratch directories, each possibly holding a lab

# Last resort for a lab that `crpfs-lab stop` could not stop: SIGKILL by the
# PID in its state file, and only if that PID is a tgtd.
kill_recorded() {
	local dir=$1 pid
	[ -f "$dir/lab.state" ] || return 0
	pid=$(sed -n 's/^pid=\([0-9][0-9]*\)$/\1/p' "$dir/lab.state")
	[ -n "$pid" ] || return 0
	if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = tgtd ]; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
}

cleanup() {
	local rc=$? d
	set +e
	for d in "${DIRS[@]}"; do
		if [ -f "$d/lab.state" ]; then
			timeout -s KILL "$TOOL_TIMEOUT" "$LAB" stop --dir "$d" >/dev/null 2>&1
			kill_recorded "$d"
		fi
		rm -rf "$d"
	done
	exit "$rc"
}
trap cleanup EXIT

# ---- can the test run at all? ---------------------------------------------

[ -x "$LAB" ] || fail "cannot run: $LAB is missing or not executable"
for t in tgtd tgtadm; do
	command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || [ -x "/sbin/$t" ] ||
		fail "cannot run: $t is missing (install the Debian package 'tgt')"
done
for t in iscsi-readcapacity16 iscsi-inq; do
	command -v "$t" >/dev/null ||
		fail "cannot run: $t is missing (install the Debian package 'libiscsi-bin', see contrib/install-deps.sh)"
done
command -v ss >/dev/null || fail "cannot run: ss is missing (install the Debian package 'iproute2')"
for t in "$MKFS" "$CRPFS"; do
	[ -x "$t" ] || fail "cannot run: $t is not built (run make)"
done

# ---- helpers --------------------------------------------------------------

OUT='' ERR='' RC=''
# lab ARGS...: run crpfs-lab; stdout in $OUT, stderr in $ERR, status in $RC.
lab() {
	local errf
	errf=$(mktemp)
	RC=0
	OUT=$(timeout -s KILL "$TOOL_TIMEOUT" "$LAB" "$@" 2>"$errf") || RC=$?
	ERR=$(cat "$errf")
	rm -f "$errf"
}

expect_rc() {
	local want=$1 what=$2
	[ "$RC" = "$want" ] ||
		fail "$what: exit status $RC, expected $want; stdout: $OUT; stderr: $ERR"
}

field() { # field LINE-PREFIX TEXT: the rest of the first line starting so
	printf '%s\n' "$2" | sed -n "s/^$1 *//p" | head -n 1
}

state() { # state DIR KEY
	sed -n "s/^$2=//p" "$1/lab.state"
}

alive() { # the process exists and is not a zombie
	local st
	st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# wait_pid_gone PID: bounded wait until /proc/PID is gone; a zombie left for
# a parent that is not init to reap is gone too (it holds nothing).
wait_pid_gone() {
	local pid=$1 i
	for ((i = 0; i < 100; i++)); do
		[ -d "/proc/$pid" ] || return 0
		sleep 0.1
	done
	! alive "$pid"
}

free_port() {
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

# tgtd processes other than PID serving portal 127.0.0.1:PORT.
other_tgtds() {
	local port=$1 pid=$2 p
	for p in $(pgrep -x tgtd || true); do
		[ "$p" != "$pid" ] || continue
		tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep "portal=127.0.0.1:$port " >/dev/null &&
			echo "$p"
	done
	return 0
}

NEW_DIR=
new_dir() { # a scratch directory in $NEW_DIR, removed by the EXIT trap
	NEW_DIR=$(mktemp -d /tmp/crpfs-lab-test.XXXXXX) || fail "cannot run: mktemp -d failed"
	DIRS+=("$NEW_DIR")
}

# ---- bad arguments and a missing tgtd -------------------------------------

new_dir
DIR=$NEW_DIR
lab
expect_rc 2 "crpfs-lab without arguments"
grep -q '^usage: ' <<<"$ERR" || fail "crpfs-lab without arguments: no usage message: $ERR"
lab start 4 64M --dir
expect_rc 2 "crpfs-lab start 4 64M --dir (no directory)"
for args in "frobnicate" "start" "start 4" "start 0 64M" "start 65 64M" "start x 64M" \
	"start 4 64Q" "start 4 512K" "start 4 1048577" "start 4 64M --port 0" \
	"start 4 64M --port 70000" "start 4 64M --bogus" "start 4 64M extra" "stop extra" \
	"status --port 3261" "lun-del" "lun-del x" "lun-del 0" "lun-del 1 2" "lun-del 1 --port 5" \
	"lun-add" "lun-add 64Q" "lun-add 512K" "lun-add 8M 8M" "restart extra" \
	"restart --port 3261"; do
	# shellcheck disable=SC2086 # the arguments are meant to split
	lab $args --dir "$DIR"
	expect_rc 2 "crpfs-lab $args"
	grep -q '^usage: ' <<<"$ERR" ||
		fail "crpfs-lab $args: no usage message on stderr: $ERR"
done
[ -z "$(ls -A "$DIR")" ] || fail "bad arguments left files in $DIR: $(ls -A "$DIR" | tr '\n' ' ')"
note "bad arguments exit 2 with a usage message"

for args in "lun-del 1" "lun-add 8M" "restart"; do
	# shellcheck disable=SC2086 # the arguments are meant to split
	lab $args --dir "$DIR"
	expect_rc 1 "crpfs-lab $args without a lab"
	grep -q "no lab in $DIR" <<<"$ERR" ||
		fail "crpfs-lab $args without a lab does not say there is none: $ERR"
done
[ -z "$(ls -A "$DIR")" ] || fail "commands without a lab left files in $DIR: $(ls -A "$DIR" | tr '\n' ' ')"
note "lun-del, lun-add and restart without a lab are refused"

RC=0
OUT=$(CRPFS_LAB_TGTD=$DIR/no-such-tgtd "$LAB" start 4 64M --dir "$DIR" 2>&1) || RC=$?
[ "$RC" = 1 ] || fail "a missing tgtd: exit status $RC, expected 1: $OUT"
grep -q "Debian package 'tgt'" <<<"$OUT" ||
	fail "a missing tgtd: the error does not name the Debian package 'tgt': $OUT"
[ -z "$(ls -A "$DIR")" ] || fail "a start without tgtd left files in $DIR: $(ls -A "$DIR" | tr '\n' ' ')"
note "a missing tgtd names the package: $OUT"

# ---- start ------------------------------------------------------------------

PORT=$(free_port) || fail "cannot run: no free TCP port found on 127.0.0.1"
lab start "$NLUNS" 64M --dir "$DIR" --port "$PORT"
expect_rc 0 "crpfs-lab start $NLUNS 64M --dir $DIR --port $PORT"
note "started: $(printf '%s\n' "$OUT" | head -n 1)"

members=()
for ((i = 1; i <= NLUNS; i++)); do
	members+=("iscsi://127.0.0.1:$PORT/$IQN/$i")
done
list=$(IFS=,; echo "${members[*]}")
[ "$(field members: "$OUT")" = "${members[*]}" ] ||
	fail "members line '$(field members: "$OUT")', expected '${members[*]}'"
[ "$(field mkfs: "$OUT")" = "mkfs.crpfs -l 5 ${members[*]}" ] ||
	fail "mkfs line '$(field mkfs: "$OUT")', expected 'mkfs.crpfs -l 5 ${members[*]}'"
[ "$(field mount: "$OUT")" = "mount -t crpfs -o host=a $list /mnt/a" ] ||
	fail "mount line '$(field mount: "$OUT")', expected 'mount -t crpfs -o host=a $list /mnt/a'"
START_OUT=$OUT

[ -f "$DIR/lab.state" ] || fail "no state file $DIR/lab.state after start"
PID=$(state "$DIR" pid)
[[ $PID =~ ^[0-9]+$ ]] || fail "the state file records no PID: $(cat "$DIR/lab.state")"
[ "$(state "$DIR" portal_port)" = "$PORT" ] ||
	fail "the state file records portal port '$(state "$DIR" portal_port)', expected $PORT"
[[ $(state "$DIR" control_port) =~ ^[0-9]+$ ]] ||
	fail "the state file records no control port: $(cat "$DIR/lab.state")"
[ "$(state "$DIR" dir)" = "$DIR" ] ||
	fail "the state file records dir '$(state "$DIR" dir)', expected $DIR"
alive "$PID" || fail "the recorded tgtd PID $PID does not run"
[ "$(cat "/proc/$PID/comm")" = tgtd ] ||
	fail "the recorded PID $PID is '$(cat "/proc/$PID/comm")', not tgtd"

for ((i = 1; i <= NLUNS; i++)); do
	f=$DIR/lun$i.img
	[ -f "$f" ] || fail "LUN file $f is missing"
	[ "$(stat -c %s "$f")" = "$LUN_BYTES" ] ||
		fail "LUN file $f has $(stat -c %s "$f") bytes, expected $LUN_BYTES"
	[ $(($(stat -c %b "$f") * $(stat -c %B "$f"))) -lt $((1024 * 1024)) ] ||
		fail "LUN file $f is not sparse ($(du -h "$f" | cut -f1) allocated)"
done
note "$NLUNS sparse LUN files of 64 MiB, tgtd pid $PID"

# ---- every LUN answers on 127.0.0.1 with its size -------------------------

for m in "${members[@]}"; do
	size=$(timeout -s KILL "$TOOL_TIMEOUT" iscsi-readcapacity16 -s "$m" 2>&1) ||
		fail "iscsi-readcapacity16 $m failed: $size"
	[ "$size" = "$LUN_BYTES" ] || fail "$m reports a capacity of '$size', expected $LUN_BYTES"
	inq=$(timeout -s KILL "$TOOL_TIMEOUT" iscsi-inq "$m" 2>&1) || fail "iscsi-inq $m failed: $inq"
	grep -q '^Peripheral Device Type:DIRECT_ACCESS' <<<"$inq" ||
		fail "iscsi-inq $m: not a direct-access device: $inq"
done
extra="iscsi://127.0.0.1:$PORT/$IQN/$((NLUNS + 1))"
if inq=$(timeout -s KILL "$TOOL_TIMEOUT" iscsi-inq "$extra" 2>&1) &&
	grep -q '^Peripheral Device Type:DIRECT_ACCESS' <<<"$inq"; then
	fail "LUN $((NLUNS + 1)) answers as a disk, but the lab has $NLUNS LUNs: $inq"
fi
note "LUNs 1-$NLUNS answer on 127.0.0.1:$PORT with $LUN_BYTES bytes; LUN $((NLUNS + 1)) is no disk"

# ---- tgtd listens on 127.0.0.1:PORT only ------------------------------------

listen=$(ss -Hltnp | awk -v p="pid=$PID," 'index($0, p) { print $4 }' | sort -u)
[ "$listen" = "127.0.0.1:$PORT" ] ||
	fail "tgtd (pid $PID) listens on '$(echo "$listen" | tr '\n' ' ')', expected 127.0.0.1:$PORT only; ss -ltnp: $(ss -Hltnp | grep "pid=$PID," || true)"
note "tgtd listens on 127.0.0.1:$PORT only"

# ---- a second lab on the same directory or port is refused ----------------

cp "$DIR/lab.state" "$DIR.state-before"
DIRS+=("$DIR.state-before")
PORT2=$(free_port) || fail "cannot run: no second free TCP port found on 127.0.0.1"
lab start 2 8M --dir "$DIR" --port "$PORT2"
expect_rc 1 "a second start on $DIR"
grep -q "already runs" <<<"$ERR" ||
	fail "a second start on $DIR does not say that a lab already runs: $ERR"
cmp -s "$DIR/lab.state" "$DIR.state-before" ||
	fail "a refused second start changed $DIR/lab.state: $(cat "$DIR/lab.state")"
alive "$PID" || fail "tgtd $PID died when a second start on its directory was refused"
[ -z "$(ss -Hltn "sport = :$PORT2")" ] ||
	fail "a refused second start left a listener on port $PORT2: $(ss -Hltnp "sport = :$PORT2")"
note "a second start on the same directory is refused: $ERR"

new_dir
DIR2=$NEW_DIR
lab start 2 8M --dir "$DIR2" --port "$PORT"
expect_rc 1 "a start on $DIR2 with the busy port $PORT"
grep -q "port $PORT is in use" <<<"$ERR" ||
	fail "a start on the busy port $PORT does not say the port is in use: $ERR"
grep -q -- "--port" <<<"$ERR" ||
	fail "a start on the busy port $PORT does not suggest --port: $ERR"
[ -z "$(ls -A "$DIR2")" ] || fail "a refused start left files in $DIR2: $(ls -A "$DIR2" | tr '\n' ' ')"
[ -z "$(other_tgtds "$PORT" "$PID")" ] ||
	fail "a refused start left a tgtd for port $PORT: pid $(other_tgtds "$PORT" "$PID")"
note "a start on a busy port is refused: $ERR"

# ---- status -------------------------------------------------------------------

lab status --dir "$DIR"
expect_rc 0 "crpfs-lab status on a running lab"
grep -q "running: tgtd pid $PID on 127.0.0.1:$PORT" <<<"${OUT%%$'\n'*}" ||
	fail "status does not report the running lab (pid $PID, port $PORT): $OUT"
[ "$(field members: "$OUT")" = "$(field members: "$START_OUT")" ] ||
	fail "status prints members '$(field members: "$OUT")', start printed '$(field members: "$START_OUT")'"
note "status reports the running lab"

# ---- crpfs over the lab's members ---------------------------------------------

mk=$(timeout -s KILL "$TOOL_TIMEOUT" "$MKFS" -l 5 "${members[@]}" 2>&1) ||
	fail "mkfs.crpfs -l 5 over the lab's members failed: $mk"
js=$(timeout -s KILL "$TOOL_TIMEOUT" "$CRPFS" status "$list" --json 2>&1) ||
	fail "crpfs status $list --json failed: $js"
grep -q '^  "level": 5,$' <<<"$js" ||
	fail "crpfs status --json does not report RAID level 5: $js"
for m in "${members[@]}"; do
	grep -F "\"spec\": \"$m\"" <<<"$js" | grep '"state": "ok"' >/dev/null ||
		fail "crpfs status --json does not list member $m as ok: $js"
done
note "mkfs.crpfs -l 5 over the lab's members; crpfs status --json reports level 5"

# ---- restart: the same port and LUNs, a new tgtd --------------------------------

lab restart --dir "$DIR"
expect_rc 0 "crpfs-lab restart"
NEWPID=$(state "$DIR" pid)
[[ $NEWPID =~ ^[0-9]+$ ]] && [ "$NEWPID" != "$PID" ] ||
	fail "restart recorded PID '$NEWPID' (was $PID): $(cat "$DIR/lab.state")"
alive "$NEWPID" && [ "$(cat "/proc/$NEWPID/comm")" = tgtd ] ||
	fail "the restarted tgtd (pid $NEWPID) does not run"
wait_pid_gone "$PID" || fail "the old tgtd $PID still runs after restart"
[ "$(state "$DIR" portal_port)" = "$PORT" ] ||
	fail "restart moved the portal to port '$(state "$DIR" portal_port)', not $PORT"
[ "$(field members: "$OUT")" = "${members[*]}" ] ||
	fail "restart prints members '$(field members: "$OUT")', expected '${members[*]}'"
listen=$(ss -Hltnp | awk -v p="pid=$NEWPID," 'index($0, p) { print $4 }' | sort -u)
[ "$listen" = "127.0.0.1:$PORT" ] ||
	fail "the restarted tgtd listens on '$(echo "$listen" | tr '\n' ' ')', expected 127.0.0.1:$PORT only"
js=$(timeout -s KILL "$TOOL_TIMEOUT" "$CRPFS" status "$list" --json 2>&1) ||
	fail "crpfs status $list --json after restart failed: $js"
for m in "${members[@]}"; do
	grep -F "\"spec\": \"$m\"" <<<"$js" | grep '"state": "ok"' >/dev/null ||
		fail "after restart, crpfs status --json does not list member $m as ok: $js"
done
PID=$NEWPID
note "restart: tgtd $PID on the same port, the array's labels read back intact"

# ---- lun-add and lun-del ------------------------------------------------------------

NEW=$((NLUNS + 1))
NEW_MEMBER="iscsi://127.0.0.1:$PORT/$IQN/$NEW"
lab lun-add 32M --dir "$DIR"
expect_rc 0 "crpfs-lab lun-add 32M"
[ "$(field member: "$OUT")" = "$NEW_MEMBER" ] ||
	fail "lun-add prints member '$(field member: "$OUT")', expected '$NEW_MEMBER': $OUT"
f=$DIR/lun$NEW.img
[ -f "$f" ] && [ "$(stat -c %s "$f")" = $((32 * 1024 * 1024)) ] ||
	fail "lun-add: the file $f is missing or not of 32 MiB"
[ $(($(stat -c %b "$f") * $(stat -c %B "$f"))) -lt $((1024 * 1024)) ] || fail "lun-add: $f is not sparse"
size=$(timeout -s KILL "$TOOL_TIMEOUT" iscsi-readcapacity16 -s "$NEW_MEMBER" 2>&1) ||
	fail "iscsi-readcapacity16 $NEW_MEMBER failed: $size"
[ "$size" = $((32 * 1024 * 1024)) ] || fail "$NEW_MEMBER reports a capacity of '$size', expected 32 MiB"
lab status --dir "$DIR"
expect_rc 0 "crpfs-lab status after lun-add"
[ "$(field members: "$OUT")" = "${members[*]} $NEW_MEMBER" ] ||
	fail "status after lun-add prints members '$(field members: "$OUT")'"
note "lun-add: LUN $NEW of 32 MiB answers, its member printed: $NEW_MEMBER"

lab lun-del "$NEW" --dir "$DIR"
expect_rc 0 "crpfs-lab lun-del $NEW"
if inq=$(timeout -s KILL "$TOOL_TIMEOUT" iscsi-inq "$NEW_MEMBER" 2>&1) &&
	grep -q '^Peripheral Device Type:DIRECT_ACCESS' <<<"$inq"; then
	fail "LUN $NEW still answers as a disk after lun-del: $inq"
fi
if size=$(timeout -s KILL "$TOOL_TIMEOUT" iscsi-readcapacity16 -s "$NEW_MEMBER" 2>&1); then
	fail "LUN $NEW still reports a capacity after lun-del: $size"
fi
[ -f "$f" ] || fail "lun-del removed the backing file $f"
lab status --dir "$DIR"
expect_rc 0 "crpfs-lab status after lun-del"
[ "$(field members: "$OUT")" = "${members[*]}" ] ||
	fail "status after lun-del prints members '$(field members: "$OUT")', expected '${members[*]}'"
grep -q "^deleted: *LUN $NEW " <<<"$OUT" ||
	fail "status after lun-del does not list LUN $NEW as deleted: $OUT"
lab lun-del "$NEW" --dir "$DIR"
expect_rc 1 "a second lun-del $NEW"
grep -q "deleted already" <<<"$ERR" || fail "a second lun-del does not say so: $ERR"
lab lun-del 99 --dir "$DIR"
expect_rc 1 "lun-del 99"
grep -q "has no LUN 99" <<<"$ERR" || fail "lun-del 99 does not say there is none: $ERR"
note "lun-del: LUN $NEW is no disk at the target, its file kept, a second delete refused"

lab restart --dir "$DIR"
expect_rc 0 "crpfs-lab restart with LUN $NEW deleted"
PID=$(state "$DIR" pid)
[ "$(field members: "$OUT")" = "${members[*]}" ] ||
	fail "restart with LUN $NEW deleted prints members '$(field members: "$OUT")'"
if inq=$(timeout -s KILL "$TOOL_TIMEOUT" iscsi-inq "$NEW_MEMBER" 2>&1) &&
	grep -q '^Peripheral Device Type:DIRECT_ACCESS' <<<"$inq"; then
	fail "LUN $NEW came back with the restart: $inq"
fi
size=$(timeout -s KILL "$TOOL_TIMEOUT" iscsi-readcapacity16 -s "${members[0]}" 2>&1) ||
	fail "iscsi-readcapacity16 ${members[0]} after the restart failed: $size"
note "a deleted LUN stays deleted across restart (tgtd $PID)"

# ---- stop -----------------------------------------------------------------------

lab stop --dir "$DIR"
expect_rc 0 "crpfs-lab stop"
wait_pid_gone "$PID" || fail "tgtd $PID still runs after stop"
[ -z "$(ss -Hltn "sport = :$PORT")" ] ||
	fail "port $PORT still has a listener after stop: $(ss -Hltnp "sport = :$PORT")"
[ -z "$(ls -A "$DIR")" ] || fail "stop left files in $DIR: $(ls -A "$DIR" | tr '\n' ' ')"
lab status --dir "$DIR"
expect_rc 3 "crpfs-lab status after stop"
grep -q "not running" <<<"$OUT" || fail "status after stop does not say 'not running': $OUT"
lab stop --dir "$DIR"
expect_rc 0 "a second crpfs-lab stop"
note "stop: tgtd $PID gone, port $PORT free, $DIR empty; status says not running"

# ---- a lab whose tgtd died --------------------------------------------------------

lab start 3 1M --dir "$DIR" --port "$PORT"
expect_rc 0 "a start on $DIR after stop (port $PORT again)"
PID=$(state "$DIR" pid)
alive "$PID" && [ "$(cat "/proc/$PID/comm")" = tgtd ] ||
	fail "the restarted lab's PID $PID is not a running tgtd"
kill -KILL "$PID"
wait_pid_gone "$PID" || fail "tgtd $PID survived SIGKILL"
lab status --dir "$DIR"
expect_rc 3 "crpfs-lab status after its tgtd was killed"
grep -q "is gone" <<<"$OUT" || fail "status does not say that tgtd $PID is gone: $OUT"
lab start 3 1M --dir "$DIR" --port "$PORT"
expect_rc 1 "a start over the state of a dead lab"
grep -q "stop --dir $DIR" <<<"$ERR" ||
	fail "a start over a dead lab's state does not point to stop: $ERR"
lab restart --dir "$DIR"
expect_rc 0 "crpfs-lab restart of a dead lab"
NEWPID=$(state "$DIR" pid)
[ "$NEWPID" != "$PID" ] && alive "$NEWPID" && [ "$(cat "/proc/$NEWPID/comm")" = tgtd ] ||
	fail "restart of a dead lab: PID '$NEWPID' is not a new running tgtd"
lab status --dir "$DIR"
expect_rc 0 "crpfs-lab status after restarting a dead lab"
lab stop --dir "$DIR"
expect_rc 0 "crpfs-lab stop of a restarted lab"
wait_pid_gone "$NEWPID" || fail "tgtd $NEWPID still runs after stop"
[ -z "$(ls -A "$DIR")" ] || fail "stop left files in $DIR: $(ls -A "$DIR" | tr '\n' ' ')"
note "a dead lab is reported by status, refused by start, started again by restart and cleaned up by stop"

echo "crpfs_lab: all checks passed"
