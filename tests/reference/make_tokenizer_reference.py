#!/usr/bin/env python3
"""Writes what Hugging Face's Rust tokenizers (the `tokenizers` package) make of each corpus line.

  make_tokenizer_reference.py --tokenizer tokenizer.json --corpus tokenizer_corpus.jsonl --out REFERENCE.jsonl

One JSON object a line, in corpus order: {"ids": ids without special tokens, "ids_special": ids with
them (add_special_tokens=True: the post-processor's BOS/EOS), "text": the ids decoded back,
"text_special": the special ids decoded back with the special tokens kept}.
Run by tests/reference/make-tokenizer-reference.sh in a Debian sid chroot (python3-tokenizers).
"""
import argparse
import json

from tokenizers import Tokenizer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    tokenizer = Tokenizer.from_file(args.tokenizer)
    with open(args.corpus, encoding="utf-8") as corpus, open(args.out, "w", encoding="utf-8") as out:
        for line in corpus:
            if not line.strip():
                continue
            text = json.loads(line)
            plain = tokenizer.encode(text, add_special_tokens=False).ids
            special = tokenizer.encode(text, add_special_tokens=True).ids
            record = {"ids": plain, "ids_special": special,
                      "text": tokenizer.decode(plain, skip_special_tokens=False),
                      "text_special": tokenizer.decode(special, skip_special_tokens=False)}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
