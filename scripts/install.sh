#!/usr/bin/env bash
# Installs everything fcvm needs on a fresh Debian 12 machine (as root), builds fcvm,
# puts `fcvm` on PATH and runs `fcvm setup`. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then echo "install.sh: run me as root (sudo $0)" >&2; exit 1; fi

PKGS=(qemu-system-x86 qemu-utils debootstrap cpio kmod podman skopeo busybox-static
      e2fsprogs util-linux bubblewrap xz-utils iproute2 iptables uidmap ca-certificates
      lz4 btrfs-progs slirp4netns passt
      gcc libc6-dev git)  # the last three for tests: the volprobe fixture and the bb-git image
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
# apt's lists are needed by `fcvm setup` (apt-get download) even when nothing is missing.
if [ "${#missing[@]}" -gt 0 ] || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
  apt-get update -qq
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install.sh: apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "install.sh: building fcvm"
npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
npm install -g . --no-audit --no-fund --loglevel=error >/dev/null

echo "install.sh: fcvm setup"
fcvm setup
