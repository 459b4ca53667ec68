#!/usr/bin/env bash
# Sets up, builds and runs the demo: a real generation on the bundled qwen2-tiny checkpoint.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${LMDECODE_BUILD_DIR:-$root/build}"
"$root/scripts/setup-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target lmdecode-demo -j2
"$build/examples/lmdecode-demo" "$@"
