#!/usr/bin/env bash
# The GPU check, run on the device machine (see ../shared/GPU.md): builds against the PyTorch there,
# runs the CUDA tests (the golden cases on CUDA among them), times our decoders and
# transformers' generate() on the same Qwen2.5-0.5B-shaped bf16 weights and prints one table, with
# the operators (kernel launches) and device-to-host reads per step, then runs the CPU suite. If the
# build fails it still times transformers, so that a run is never wasted.
#
# Needs the headers of fmt, nlohmann-json and Catch2 v2 in .third_party/ (copied from this machine's
# /usr/include by `scripts/gpu-check.sh --prepare`), carried to the device machine.
#
# `scripts/gpu-check.sh --rehearse-on-cpu` runs the same steps on a CPU with a 2-layer model, a short
# prompt and few new tokens, where PyTorch and transformers are installed (scripts/rehearse-gpu-check.sh
# makes such a place from Debian's packages): everything but CUDA gets exercised before device time
# is spent.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ "${1:-}" = "--prepare" ]; then
  rm -rf "$root/.third_party"
  for lib in fmt nlohmann catch2; do  # one include folder per library (see CMakeLists.txt)
    mkdir -p "$root/.third_party/$lib" && cp -r "/usr/include/$lib" "$root/.third_party/$lib/"
  done
  exit 0
fi
device=cuda shape=qwen2.5-0.5b prompt=128 new=128
if [ "${1:-}" = "--rehearse-on-cpu" ]; then device=cpu shape=tiny prompt=32 new=32; fi
out="${OUT:-/tmp/gpu-check}"
mkdir -p "$out"
build=/tmp/lmdecode-gpu-build
log() { echo "== $*" | tee -a "$out/summary.txt"; }
hf_timing() {
  log "transformers generate() timing (saves the model)"
  python3 "$root/scripts/gpu/hf_generate_timing.py" /tmp/qwen05 $prompt $new "$out/hf.json" $device $shape 2>&1 | grep -v Warning | tee -a "$out/summary.txt"
}

if [ $device = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/summary.txt"
else
  echo "rehearsal on the CPU: $shape model, prompt $prompt, $new new tokens" | tee "$out/summary.txt"
fi
tp=$(python3 -c "import torch; print(torch.utils.cmake_prefix_path)")
log "configure + build"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$tp" \
  -DLMDECODE_THIRD_PARTY_HEADERS="$root/.third_party" -DLMDECODE_INSTALL=OFF >"$out/configure.log" 2>&1 \
  || { tail -30 "$out/configure.log"; exit 1; }
if ! cmake --build "$build" --target lmdecode_tests lmdecode-bench >"$out/build.log" 2>&1; then
  grep -m20 -E "error" "$out/build.log" | tee -a "$out/summary.txt"
  tail -20 "$out/build.log"
  hf_timing
  exit 1
fi

# Ordered by value, in case the time limit cuts the run short: correctness on CUDA, then the
# timings against transformers, then the CPU suite against this libtorch.
log "CUDA tests (golden cases on CUDA in f64 and f32, CPU vs CUDA, host reads per step)"
# On the device a missing GPU must fail the CUDA tests, not skip them (tests/support/cuda.hpp).
require_cuda=0
[ $device = cuda ] && require_cuda=1
LMDECODE_REQUIRE_CUDA=$require_cuda "$build/tests/lmdecode_tests" "[cuda]" 2>&1 | tee "$out/cuda-tests.log" | tail -15 | tee -a "$out/summary.txt"

hf_timing
log "lmdecode timing on the same weights"
"$build/benchmarks/lmdecode-bench" --model /tmp/qwen05 --device $device --dtype bf16 --repeats 3 \
  --compare-hf $prompt,$new --json "$out/ours.json" 2>&1 | tee -a "$out/summary.txt"
"$build/benchmarks/lmdecode-bench" --model /tmp/qwen05 --device $device --dtype bf16 --repeats 3 \
  --only bare_forward,greedy,beam,ops --json "$out/overheads.json" 2>&1 | tee -a "$out/summary.txt"
log "table"
python3 "$root/scripts/gpu/table.py" "$out/ours.json" "$out/hf.json" "$out/overheads.json" | tee -a "$out/summary.txt"

log "CPU test suite against this libtorch"
"$build/tests/lmdecode_tests" 2>&1 | tee "$out/cpu-tests.log" | tail -4 | tee -a "$out/summary.txt"
