#!/usr/bin/env python3
"""Writes what transformers' apply_chat_template makes of each conversation line.

  make_chat_reference.py --tokenizer-dir DIR --conversations chat_conversations.jsonl --out REFERENCE.jsonl

A conversation line is a JSON array of messages, or an object {"messages": [...], "tools": [...],
"add_generation_prompt": bool, any other key: a template variable such as enable_thinking}. The
generation prompt is added unless the line says otherwise. One JSON object a line, in order:
{"text": the rendered prompt} or {"error": the message transformers raised}.
Run by tests/reference/make-chat-template-reference.sh in a Debian sid chroot (transformers, python3-jinja2).
"""
import argparse
import json

from transformers import AutoTokenizer


def render(tokenizer, line):
    conversation = json.loads(line)
    variables = {"messages": conversation} if isinstance(conversation, list) else dict(conversation)
    messages = variables.pop("messages")
    tools = variables.pop("tools", None)
    add_generation_prompt = variables.pop("add_generation_prompt", True)
    try:
        text = tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=add_generation_prompt,
                                             tokenize=False, **variables)
        return {"text": text}
    except Exception as error:  # the template's raise_exception, a type error, an undefined attribute
        return {"error": f"{type(error).__name__}: {error}"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer-dir", required=True)
    parser.add_argument("--conversations", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer_dir)
    with open(args.conversations, encoding="utf-8") as lines, open(args.out, "w", encoding="utf-8") as out:
        for line in lines:
            if line.strip():
                out.write(json.dumps(render(tokenizer, line), ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
