#!/usr/bin/env bash
# Acceptance (issue 4): `crpfs hosts MEMBERS --json` and `crpfs hosts
# MOUNTPOINT` (text and --json) list the slots with host names, last
# heartbeat and states: a, b and c alive, each in its own slot, their
# heartbeats moving; a second mount with host=a while a is alive is
# refused with a clear error and changes nothing; after kill -9 of c and
# its recovery, c no longer holds a live slot (dead, then free) while a and
# b stay alive; after unmounting all, no slot is alive.  Both lock modes.
. "$(dirname "$0")/lib_multihost.sh"

# The heartbeat value of a slot, whatever the key is called.
HB='(.heartbeat // .last_heartbeat // .heartbeat_counter // .heartbeat_ns // .heartbeat_wall_ns)'

hb_of() {	# hb_of TARGET HOST: HOST's heartbeat from crpfs hosts --json
	mh_slots_json "$1" | jq -r --arg h "$2" "[.[] | select(.host == \$h and .state == \"alive\") | $HB] | .[0]"
}

hb_moved() {	# hb_moved TARGET HOST BEFORE
	local now
	now=$(hb_of "$1" "$2") || return 1
	[ -n "$now" ] && [ "$now" != null ] && [ "$now" != "$3" ]
}

# check_alive TARGET HOST...: each HOST holds exactly one slot, alive,
# with a heartbeat; no two hosts share a slot.
check_alive() {
	local target=$1 js h n st hb
	shift
	js=$(mh_slots_json "$target")
	for h in "$@"; do
		n=$(printf '%s\n' "$js" | jq --arg h "$h" '[.[] | select(.host == $h and .state != "free")] | length')
		[ "$n" = 1 ] || mh_fail "crpfs hosts $target --json lists $n taken slots for host $h, expected 1: $js"
		st=$(printf '%s\n' "$js" | jq -r --arg h "$h" '.[] | select(.host == $h and .state != "free") | .state')
		[ "$st" = alive ] || mh_fail "crpfs hosts $target --json: host $h is '$st', expected alive: $js"
		hb=$(printf '%s\n' "$js" | jq -r --arg h "$h" ".[] | select(.host == \$h and .state == \"alive\") | $HB")
		[ -n "$hb" ] && [ "$hb" != null ] ||
			mh_fail "crpfs hosts $target --json: no last heartbeat for host $h: $js"
		printf '%s\n' "$js" | jq -e --arg h "$h" '.[] | select(.host == $h and .state == "alive") | .slot | numbers' >/dev/null ||
			mh_fail "crpfs hosts $target --json: no slot number for host $h: $js"
	done
	n=$(printf '%s\n' "$js" | jq '[.[] | select(.state == "alive") | .slot] | (length - (unique | length))')
	[ "$n" = 0 ] || mh_fail "crpfs hosts $target --json: two live hosts share a slot: $js"
}

# text_has TARGET HOST STATE: the text listing of `crpfs hosts TARGET` has
# a line naming HOST with STATE.
text_has() {
	local out
	out=$(timeout -s KILL 20 "$CRPFS" hosts "$1" 2>&1) || return 1
	printf '%s\n' "$out" | grep -Ewq "$2" &&
		printf '%s\n' "$out" | grep -Ew "$2" | grep -Ewq "$3"
}

gone() {	# gone TARGET HOST: HOST holds no live slot (free, dead or none)
	mh_host_gone "$1" "$2"
}
freed() {	# freed TARGET HOST: HOST's slot is free (or no slot names it)
	local st
	st=$(mh_slot_state "$1" "$2") || return 1
	! grep -qvx 'free\|none' <<<"$st"
}

t_hosts() {
	local h hb0 out log_from
	mh_lab_start 4 256M
	mh_mkfs "$MODE"
	for h in a b c; do
		mh_mount "$h"
	done

	check_alive "$MEMBERS" a b c
	check_alive "$(mh_mnt a)" a b c
	for h in a b c; do
		text_has "$(mh_mnt b)" "$h" alive ||
			mh_fail "crpfs hosts $(mh_mnt b) has no line naming host $h as alive: $(timeout -s KILL 20 "$CRPFS" hosts "$(mh_mnt b)" 2>&1 || true)"
	done
	hb0=$(hb_of "$MEMBERS" a)
	mh_wait_for "$MH_ATTR_WAIT" hb_moved "$MEMBERS" a "$hb0" ||
		mh_fail "host a's heartbeat in crpfs hosts --json stays at $hb0 for $MH_ATTR_WAIT s (heartbeat=${MH_HEARTBEAT_MS} ms)"
	mh_note "crpfs hosts: a, b and c alive with moving heartbeats"

	# A second mount under a live host's name is refused.
	log_from=$(wc -l <"$(mh_log a)")
	if mh_try_mount a "$T/a2"; then
		mh_fail "a second mount with host=a while a is alive was accepted (on $T/a2)"
	fi
	out=$(tail -n +$((log_from + 1)) "$(mh_log a)" | grep -v '^=== mount' || true)
	[ "$MH_EXIT" != 0 ] || mh_fail "the refused second mount of host a exited 0: $out"
	printf '%s\n' "$out" | grep -Eqi "(host|name)[^a-z0-9]+'?a'?([^a-z0-9]|$)" &&
		printf '%s\n' "$out" | grep -Eqi 'alive|already|in use|mounted|busy' ||
		mh_fail "the refused second mount of host a does not say that host a is alive or mounted: $out"
	mh_note "second mount as a refused: $(printf '%s\n' "$out" | head -n 1)"
	check_alive "$MEMBERS" a b c
	echo still >"$(mh_mnt a)/still" && [ "$(cat "$(mh_mnt a)/still")" = still ] ||
		mh_fail "host a no longer works after the refused second mount"

	# Kill c: dead (or being recovered), then free; a and b stay alive.
	kill -9 "${MPID[c]}"
	mh_wait_exit "${MPID[c]}" 10 || mh_fail "the daemon of host c survived kill -9"
	unset "MPID[c]"
	mh_lazy_umount c
	mh_wait_for "$MH_CALL_WAIT" gone "$MEMBERS" c ||
		mh_fail "crpfs hosts still shows host c alive $MH_CALL_WAIT s after kill -9: $(mh_slots_json "$MEMBERS")"
	mh_wait_for "$MH_CALL_WAIT" freed "$MEMBERS" c ||
		mh_fail "host c's slot is not freed $MH_CALL_WAIT s after kill -9 (no recovery?): $(mh_slots_json "$MEMBERS")"
	check_alive "$MEMBERS" a b
	out=$(timeout -s KILL 20 "$CRPFS" hosts "$(mh_mnt a)" 2>&1 || true)
	text_has "$(mh_mnt a)" a alive && text_has "$(mh_mnt a)" b alive ||
		mh_fail "crpfs hosts $(mh_mnt a) after the recovery of c does not show a and b alive: $out"
	! text_has "$(mh_mnt a)" c alive ||
		mh_fail "crpfs hosts $(mh_mnt a) still shows c alive after its recovery: $out"
	mh_note "after kill -9 and recovery: c's slot free, a and b alive"

	mh_umount a
	mh_umount b
	out=$(mh_slots_json "$MEMBERS")
	printf '%s\n' "$out" | jq -e '[.[] | select(.state == "alive")] | length == 0' >/dev/null ||
		mh_fail "slots still alive after every host unmounted: $out"
	mh_fsck
}

mh_setup
mh_run_modes t_hosts reserve pr
