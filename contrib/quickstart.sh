#!/usr/bin/env bash
# crpfs on one machine, on the embedded default: file-backed members.
#
# Installs the build dependencies, builds and installs crpfs (PREFIX=/usr so
# that mount -t crpfs finds /usr/sbin/mount.crpfs), creates four 1 GiB
# sparse member images, formats them as RAID-5, mounts the filesystem, writes
# and reads a file, and shows the array's status.  Run as root.
#
#   CRPFS_DEMO_DIR   where the member images go (/var/lib/crpfs-demo)
#   CRPFS_DEMO_MNT   the mount point (/mnt/crpfs)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${CRPFS_DEMO_DIR:-/var/lib/crpfs-demo}
mnt=${CRPFS_DEMO_MNT:-/mnt/crpfs}

bash contrib/install-deps.sh
make -j2
make install PREFIX=/usr

mkdir -p "$dir" "$mnt"
if mountpoint -q "$mnt"; then
	umount "$mnt"
fi
members=()
for i in 0 1 2 3; do
	members+=("file:$dir/member$i")
done
# -f: this demo reformats its own images on every run.
mkfs.crpfs -f -l 5 -c 64K -s 1G -L demo "${members[@]}"
list=$(IFS=,; echo "${members[*]}")
mount -t crpfs "$list" "$mnt"

echo "crpfs is mounted on $mnt:"
date > "$mnt/hello.txt"
cp /etc/os-release "$mnt/"
cat "$mnt/os-release" | head -n 2
ls -l "$mnt"
cat "$mnt/hello.txt"
df -h "$mnt"
crpfs status "$mnt"
echo
echo "Unmount with: umount $mnt"
