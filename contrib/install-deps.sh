#!/usr/bin/env bash
# Installs what crpfs needs to build and to run its tests, on Debian 12.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
# Never with recommends: fuse2fs (make bench's baseline) recommends the fuse
# package, which would remove fuse3.
apt-get install -y --no-install-recommends \
	build-essential pkg-config ca-certificates \
	libfuse3-dev fuse3 \
	libiscsi-dev libiscsi-bin \
	libsgutils2-dev \
	libisal-dev \
	libglib2.0-dev \
	libxxhash-dev \
	check \
	tgt \
	attr acl jq util-linux mount coreutils findutils diffutils procps psmisc \
	fuse2fs e2fsprogs fio \
	clang libclang-rt-14-dev
