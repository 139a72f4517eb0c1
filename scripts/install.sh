#!/usr/bin/env bash
# Installs everything fcvm needs on a fresh Debian 12 machine (as root), builds fcvm,
# puts `fcvm` on PATH and runs `fcvm setup`. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then echo "install.sh: run me as root (sudo $0)" >&2; exit 1; fi

PKGS=(debootstrap cpio kmod podman skopeo busybox-static
      e2fsprogs util-linux bubblewrap xz-utils iproute2 iptables uidmap ca-certificates
      lz4 btrfs-progs slirp4netns passt)
# For the tests only: gcc, libc6-dev and git for the volprobe fixture and the bb-git image; zsh
# and fish for the completion scripts' tests;
# docker-registry, apache2-utils (htpasswd) and openssl for a real registry (plain HTTP, TLS
# with a CA of their own, basic auth).
PKGS+=(gcc libc6-dev git zsh fish docker-registry apache2-utils openssl)
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
# QEMU 10 from Debian's bookworm-backports: bookworm's QEMU 7.2 keeps running a stale
# translation of kernel code that one vCPU patched while another ran it (a guest that
# flips a static key, e.g. at a container's start, then hangs for good under TCG).
QEMU_MIN_MAJOR=10
qemu_major() { dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null | awk '/ok installed/ { sub(/^[0-9]+:/, "", $4); split($4, v, "."); print v[1]; exit }'; }
if [ "$(qemu_major qemu-system-x86)" != "" ] && [ "$(qemu_major qemu-system-x86)" -ge $QEMU_MIN_MAJOR ] && [ "$(qemu_major qemu-utils)" != "" ]; then :; else
  if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      > /etc/apt/sources.list.d/fcvm-bookworm-backports.sources
  fi
  apt-get update -qq
  echo "install.sh: apt-get install -t bookworm-backports qemu-system-x86 qemu-utils"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 qemu-utils >/dev/null
fi
# The package starts a registry on every address's port 5000 where systemd runs; the tests
# start their own on the loopback, so keep the system one off.
if [ -d /run/systemd/system ] && systemctl is-enabled --quiet docker-registry 2>/dev/null; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

echo "install.sh: building fcvm"
npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
npm install -g . --no-audit --no-fund --loglevel=error >/dev/null

echo "install.sh: fcvm setup (with the nested kernel profile, for fcvm inside fcvm and the KVM suite)"
fcvm setup --kernel-profile nested
