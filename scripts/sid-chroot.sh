#!/usr/bin/env bash
# Makes (once) a Debian sid chroot and installs the packages named, for the scripts that need what
# bookworm lacks: libtorch 2.x, transformers, llama.cpp. Mounts /proc and /dev into it.
#
#   sudo scripts/sid-chroot.sh CHROOT_DIR PACKAGE...
#
# Needs root (debootstrap, chroot, mount) and Debian's mirror: about 2 minutes the first time.
set -euo pipefail
jail="$1"; shift
# The mirror may serve a snapshot whose Release file has expired: accept it.
apt_opts=(-o Acquire::Check-Valid-Until=false -y -qq --no-install-recommends)

if [ ! -x "$jail/usr/bin/apt-get" ]; then
  command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install "${apt_opts[@]}" debootstrap; }
  debootstrap --variant=minbase sid "$jail" http://deb.debian.org/debian
fi
mountpoint -q "$jail/proc" || mount --bind /proc "$jail/proc"
mountpoint -q "$jail/dev" || mount --bind /dev "$jail/dev"
missing=()
for package in "$@"; do
  chroot "$jail" dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  chroot "$jail" apt-get -o Acquire::Check-Valid-Until=false update -qq
  chroot "$jail" env DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" "${missing[@]}"
fi
