#!/usr/bin/env bash
# Sets up, builds and runs the demo: text from the bundled demo model (a toy trained on Debian's fortunes).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${LMDECODE_BUILD_DIR:-$root/build}"
"$root/scripts/setup-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target lmdecode-demo -j2
"$build/examples/lmdecode-demo" "$@"
