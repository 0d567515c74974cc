#!/usr/bin/env bash
# crpfs scrub (issue 8) on a mounted filesystem, file: members: with a
# writer running, a data block damaged on one member (dd into the image,
# at the member offset crp_locate finds) under a file nobody writes is
# found and repaired by `crpfs scrub MOUNTPOINT --repair --json`, which
# reports the counts; the bytes on the member are the original ones
# again, the file reads back identical, fsck is clean.  A slow scrub
# (--rate 1) shows in crpfs status as "scrubbing", stops cleanly on
# SIGINT, and the status is clean again after.
. "$(dirname "$0")/lib.sh"

crp_setup jq sha256sum cmp dd
LOCATE=$CRPFS_BUILD/tests/crp_locate
[ -x "$LOCATE" ] || crp_fail "cannot run: $LOCATE is not built (run make)"

snapshot() {	# snapshot FILE: sha256 of every file under data/ but the writer's
	(cd "$MNT/data" && find . -type f ! -name 'during.*' -print0 | sort -z |
		xargs -0 sha256sum) >"$1"
}

fill() {	# fill N: N files of various sizes, and a 2 MiB victim
	local i
	mkdir -p "$MNT/data"
	for ((i = 0; i < $1; i++)); do
		head -c $(((i * 7919) % 300000 + i * 4096 + 1)) /dev/urandom >"$MNT/data/f$i"
	done
	head -c 2097152 /dev/urandom >"$MNT/data/victim"
}

start_writer() {
	: >"$D/writer.log"
	(
		i=0
		while [ ! -e "$D/stop" ] && [ "$i" -lt 2000 ]; do
			head -c 65536 /dev/urandom >"$MNT/data/during.$((i % 10))" || exit 1
			[ $((i % 7)) = 0 ] && rm -f "$MNT/data/during.$((i % 3))"
			i=$((i + 1))
		done
		echo "$i" >"$D/writer.log"
	) &
	WRITER=$!
	echo "$WRITER" >>"$T/pids"
}

stop_writer() {
	touch "$D/stop"
	wait "$WRITER" || crp_fail "the writer failed while the scrub ran"
	rm -f "$D/stop"
}

t_repair_online() {
	local pos spec off pblk stripe rc=0 last
	crp_use_dir "$T/repair"
	crp_mkfs --size 96M
	crp_mount
	fill 20
	snapshot "$D/sums"
	# Block 256 of the victim (1 MiB in): its stripe holds nothing else,
	# so no write of the writer's touches it.
	read -r pblk pos spec off _ _ < <("$LOCATE" "$MEMBERS" data /data/victim 256) ||
		crp_fail "crp_locate found no block 256 of /data/victim"
	stripe=$(( (off - $("$LOCATE" "$MEMBERS" dataoff)) / $("$CRPFS" status "$MNT" --json | jq .chunk_size) ))
	crp_note "victim block $pblk: position $pos ($spec) byte $off, stripe $stripe"
	dd if="$D/m$pos" of="$D/orig.bin" bs=1 skip=$((off + 100)) count=64 status=none
	dd if=/dev/urandom of="$D/m$pos" bs=1 seek=$((off + 100)) count=64 conv=notrunc status=none
	cmp -s "$D/orig.bin" <(dd if="$D/m$pos" bs=1 skip=$((off + 100)) count=64 status=none) &&
		crp_fail "the damage did not change the member"

	# Slowed a little (--rate), so that the writer's transactions come
	# in between the scrub's runs of stripes.
	start_writer
	"$CRPFS" scrub "$MNT" --repair --json --rate 40 >"$D/scrub.out" 2>"$D/scrub.err" || rc=$?
	stop_writer
	crp_eq "$rc" 0 "crpfs scrub --repair exit status ($(tail -n 3 "$D/scrub.err"))"
	last=$(tail -n 1 "$D/scrub.out")
	jq -e . >/dev/null <<<"$last" || crp_fail "the last line is not JSON: $last"
	crp_eq "$(jq -r .result <<<"$last")" repaired "result"
	crp_eq "$(jq -r .state <<<"$last")" done "state"
	crp_eq "$(jq -r .data_checksum_errors <<<"$last")" 1 "data checksum errors"
	crp_eq "$(jq -r .metadata_checksum_errors <<<"$last")" 0 "metadata checksum errors"
	crp_eq "$(jq -r .parity_mismatches.p <<<"$last")" 1 "P mismatches"
	crp_eq "$(jq -r .problem_stripes <<<"$last")" 1 "stripes with problems"
	crp_eq "$(jq -r .repaired <<<"$last")" 1 "chunks repaired"
	crp_eq "$(jq -r .unrecoverable <<<"$last")" 0 "unrecoverable"
	crp_eq "$(jq -c '[.bad_columns[] | [.position, .count]]' <<<"$last")" "[[$pos,1]]" "bad columns"
	[ "$(jq -r .stripes_checked <<<"$last")" -gt 0 ] || crp_fail "no stripe checked: $last"
	[ "$(jq -r .stripes_free <<<"$last")" -gt 0 ] || crp_fail "no free stripe skipped: $last"
	jq -s -e 'map(select(.op == "scrub" and .percent != null)) | length > 0' "$D/scrub.out" >/dev/null ||
		crp_fail "no JSON progress line: $(head -n 2 "$D/scrub.out")"
	grep -q "stripe $stripe: data block $pblk fails its checksum" "$D/scrub.err" ||
		crp_fail "the damaged block is not named: $(cat "$D/scrub.err")"
	cmp -s "$D/orig.bin" <(dd if="$D/m$pos" bs=1 skip=$((off + 100)) count=64 status=none) ||
		crp_fail "the member does not hold the original bytes again"
	crp_note "found and repaired under a writer ($(cat "$D/writer.log") writes): $(jq -c \
		'{stripes_checked, stripes_free, seconds}' <<<"$last")"

	# A second scrub is clean; the file reads back identical.
	"$CRPFS" scrub "$MNT" >"$D/scrub2.out" 2>&1 || crp_fail "second scrub: $(tail -n 3 "$D/scrub2.out")"
	grep -q "clean" "$D/scrub2.out" || crp_fail "second scrub: $(tail -n 2 "$D/scrub2.out")"
	echo 3 >/proc/sys/vm/drop_caches
	snapshot "$D/sums.after"
	cmp -s "$D/sums" "$D/sums.after" || crp_fail "files differ after the scrub: $(diff "$D/sums" "$D/sums.after" | head -n 3)"
	crp_umount
	crp_fsck
}

t_status_scrubbing() {
	local pid i st rc=0 last
	crp_use_dir "$T/status"
	crp_mkfs --size 96M
	crp_mount
	fill 10
	"$CRPFS" scrub "$MNT" --rate 1 --json >"$D/slow.out" 2>"$D/slow.err" &
	pid=$!
	echo "$pid" >>"$T/pids"
	st=
	for ((i = 0; i < 300; i++)); do
		"$CRPFS" status "$MNT" --json --watch 0 >"$D/st.json" 2>"$D/st.err" ||
			crp_fail "crpfs status: $(cat "$D/st.err")"
		st=$(jq -r .state "$D/st.json")
		[ "$st" = scrubbing ] && break
		kill -0 "$pid" 2>/dev/null || crp_fail "the slow scrub ended early: $(tail -n 3 "$D/slow.err")"
		sleep 0.1
	done
	crp_eq "$st" scrubbing "array state while a scrub runs"
	crp_eq "$(jq -r .scrub.active "$D/st.json")" true "scrub.active"
	case $(jq -r .scrub.host "$D/st.json") in
	*.admin) ;;
	*) crp_fail "scrub.host: $(jq -c .scrub "$D/st.json")" ;;
	esac
	"$CRPFS" status "$MNT" --watch 0 | grep -q "^scrub: *running" ||
		crp_fail "the text status shows no running scrub: $("$CRPFS" status "$MNT" --watch 0 | head -n 8)"
	# How far: the checkpoint (every five seconds) moves on.
	for ((i = 0; i < 300; i++)); do
		"$CRPFS" status "$MNT" --json --watch 0 >"$D/st.json"
		[ "$(jq -r .scrub.stripe "$D/st.json")" -gt 0 ] && break
		sleep 0.1
	done
	[ "$(jq -r .scrub.stripe "$D/st.json")" -gt 0 ] ||
		crp_fail "the scrub's checkpoint does not move: $(jq -c .scrub "$D/st.json")"
	crp_eq "$(jq -r .state "$D/st.json")" scrubbing "array state at a later checkpoint"
	crp_note "status while scrubbing: $(jq -c .scrub "$D/st.json")"
	kill -INT "$pid"
	wait "$pid" || rc=$?
	crp_eq "$rc" 1 "exit status of the scrub stopped by SIGINT"
	last=$(tail -n 1 "$D/slow.out")
	crp_eq "$(jq -r .state <<<"$last")" stopped "state of the stopped scrub"
	"$CRPFS" status "$MNT" --json --watch 0 >"$D/st.json"
	crp_eq "$(jq -r .state "$D/st.json")" clean "array state after the scrub stopped"
	crp_eq "$(jq -r .scrub.host "$D/st.json")" "" "scrub record after it stopped"
	crp_umount
	crp_fsck
}

crp_run ${CRP_TESTS:-t_repair_online t_status_scrubbing}
