#!/usr/bin/env bash
# Sets up, builds and runs every test (unit tests, golden conformance cases, package consumer).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${LMDECODE_BUILD_DIR:-$root/build}"
"$root/scripts/setup-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2
cd "$build"
ctest -j2 --output-on-failure
