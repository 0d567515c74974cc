#!/usr/bin/env bash
# Ordinary users on a mount made by root, as on a local filesystem: root's
# mount serves every user (allow_other by default), the kernel checks each
# access against the mode (default_permissions), and the errors are the
# ones ext4 gives.  With owner_only, other users are kept out.
. "$(dirname "$0")/lib.sh"

crp_setup setpriv
crp_mkfs
chmod 0755 "$T"

USER_UID=1000
OTHER_UID=1001

as_user() {	# as_user UID CMD...: run as an ordinary user with no groups
	local uid=$1
	shift
	setpriv --reuid="$uid" --regid="$uid" --clear-groups "$@"
}

fsop_as() {	# fsop_as UID ARGS...: crp_fsop's verdict ("ok..." or an errno name)
	local uid=$1
	shift
	as_user "$uid" "$HELPER" "$@"
}

t_root_mount_serves_users() {
	local v
	crp_mount
	echo "for everyone" >"$MNT/public"
	chmod 0644 "$MNT/public"
	echo "root only" >"$MNT/secret"
	chmod 0600 "$MNT/secret"
	mkdir -m 0777 "$MNT/pub"
	mkdir -m 1777 "$MNT/sticky"
	as_user "$OTHER_UID" sh -c "echo theirs >'$MNT/sticky/theirs'" ||
		crp_fail "user $OTHER_UID cannot create in a 1777 directory"

	v=$(fsop_as "$USER_UID" stat "$MNT")
	[[ $v == ok* ]] || crp_fail "user $USER_UID: stat of the mount point: $v"
	as_user "$USER_UID" ls "$MNT" >/dev/null || crp_fail "user $USER_UID cannot list the mount"
	crp_eq "$(as_user "$USER_UID" cat "$MNT/public")" "for everyone" "a world-readable file read by user $USER_UID"
	as_user "$USER_UID" sh -c "echo mine >'$MNT/pub/mine'" ||
		crp_fail "user $USER_UID cannot create a file in a 0777 directory"
	crp_eq "$(stat -c %u "$MNT/pub/mine")" "$USER_UID" "owner of the file user $USER_UID created"
	crp_eq "$(fsop_as "$USER_UID" chmod "$MNT/pub/mine" 0600)" ok "chmod of one's own file"
	crp_eq "$(stat -c %a "$MNT/pub/mine")" 600 "mode after the user's chmod"

	# Refusals, with ext4's errors.
	crp_eq "$(fsop_as "$USER_UID" open "$MNT/secret" rdonly)" EACCES "user $USER_UID opens root's 0600 file"
	crp_eq "$(fsop_as "$USER_UID" open "$MNT/public" wronly)" EACCES "user $USER_UID writes root's 0644 file"
	crp_eq "$(fsop_as "$USER_UID" chmod "$MNT/public" 0666)" EPERM "user $USER_UID chmods root's file"
	crp_eq "$(fsop_as "$USER_UID" rename2 "$MNT/sticky/theirs" "$MNT/sticky/taken" none)" EPERM \
		"user $USER_UID renames user $OTHER_UID's file in a sticky directory"
	crp_eq "$(fsop_as "$USER_UID" unlink "$MNT/sticky/theirs")" EPERM \
		"user $USER_UID removes user $OTHER_UID's file in a sticky directory"
	crp_eq "$(fsop_as "$USER_UID" open "$MNT/newfile" wronly,creat)" EACCES \
		"user $USER_UID creates a file in root's 0755 directory"
	# What was refused changed nothing.
	crp_eq "$(cat "$MNT/sticky/theirs")" theirs "the other user's file after the refusals"
	crp_eq "$(stat -c %a "$MNT/public")" 644 "root's file mode after the refused chmod"
	crp_umount
	crp_fsck
}

t_owner_only() {
	crp_use_dir "$T/own"
	crp_mkfs
	crp_mount -o owner_only
	echo x >"$MNT/f"
	chmod 0644 "$MNT/f"
	crp_eq "$(fsop_as "$USER_UID" stat "$MNT/f")" EACCES "user $USER_UID on an owner_only mount"
	crp_eq "$(cat "$MNT/f")" x "root on its owner_only mount"
	crp_umount
}

crp_run t_root_mount_serves_users t_owner_only
