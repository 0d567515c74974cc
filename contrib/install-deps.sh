#!/usr/bin/env bash
# Installs what crpfs needs to build and to run its tests, on Debian 12.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
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
	clang libclang-rt-14-dev
