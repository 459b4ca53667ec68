#!/usr/bin/env bash
# Installs what lmdecode needs to build and test on Debian bookworm, and nothing when all is there.
# Run as root (or with sudo available).
set -euo pipefail
# libopenblas0-pthread: Debian's libtorch calls the system BLAS, which is otherwise the slow reference one.
# libcpp-httplib-dev (with pkgconf, which reads its build flags): lmdecode-serve and its tests.
packages=(cmake g++ make libtorch-dev catch2 libfmt-dev nlohmann-json3-dev libcli11-dev libopenblas0-pthread
          libpcre2-dev libutf8proc-dev clang libcpp-httplib-dev pkgconf)
# node and npm fetch and run the tokenizer's reference (tests only).
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup-deps: installing ${missing[*]}"
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -qq
$sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
