#!/usr/bin/env bash
# Rehearses scripts/gpu-check.sh on this CPU-only machine, against a PyTorch and transformers much
# newer than bookworm's (Debian sid has libtorch 2.14 and transformers 5.12): makes a Debian sid
# chroot once, copies the working tree and the .third_party headers into it, and runs
# `gpu-check.sh --rehearse-on-cpu` there. So the device's 15 minutes are not spent finding out that
# the build, the fused kernels of libtorch >= 2.4, the transformers script or the table fail.
#
#   sudo scripts/rehearse-gpu-check.sh [CHROOT_DIR]    (default /srv/lmdecode-sid; the output goes
#                                                       to CHROOT_DIR/work/out/summary.txt)
#
# Needs root (debootstrap, chroot, mount) and Debian's mirror: about 2 minutes to make the chroot,
# then about 3 for a run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
jail="${1:-/srv/lmdecode-sid}"
# No fmt, Catch2 or nlohmann-json: like the device machine, the build takes them from .third_party.
"$root/scripts/sid-chroot.sh" "$jail" libtorch-dev g++ cmake ninja-build python3-torch python3-transformers \
  python3-safetensors python3-numpy

"$root/scripts/gpu-check.sh" --prepare
rm -rf "$jail/work/lmdecode" "$jail/work/out"
mkdir -p "$jail/work/lmdecode"
(cd "$root" && { git ls-files -co --exclude-standard; find .third_party -type f; } | tar -cf - -T -) | tar -C "$jail/work/lmdecode" -xf -
chroot "$jail" env OUT=/work/out bash /work/lmdecode/scripts/gpu-check.sh --rehearse-on-cpu
