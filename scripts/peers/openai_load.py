"""Closed-loop streaming clients against an OpenAI-compatible /v1/completions (lmdecode-serve or
llama.cpp's llama-server), for scripts/compare-peers.sh serve.

    python3 openai_load.py NAME PORT COUNT CLIENTS[,CLIENTS...] NEW_TOKENS EXTRA_JSON JSON_OUT

COUNT requests (eight prompts in turn, greedy, NEW_TOKENS new tokens each: EXTRA_JSON makes each
server generate all of them, {"min_tokens": N} for lmdecode-serve, {"ignore_eos": true} for
llama-server) by each number of clients in turn: each client posts its next request (stream: true)
when its last one ended. Prints and saves requests/s, new tokens/s (from each answer's usage), time
to first token (the first chunk with text) p50/p99 and errors (a status other than 200, a stream
without [DONE], fewer tokens than asked), which must be 0. Standard library only.
"""
import http.client
import json
import sys
import time

from closed_loop import percentile, run_closed_loop

PROMPTS = [
    "The secret of a happy life is",
    "Once upon a time, in a land far away,",
    "The three most important things to know about the ocean are",
    "Write a short poem about the morning:",
    "In computer science, a hash table is",
    "My favourite recipe starts with",
    "The history of the printing press begins",
    "Here is a list of reasons to learn a new language:",
]


def run_one(port, prompt, new_tokens, extra):
    body = dict(prompt=prompt, max_tokens=new_tokens, temperature=0, stream=True, stream_options={"include_usage": True}, **extra)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    submitted = time.monotonic()
    connection.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"status {response.status}: {response.read()[:200]!r}")
    first, tokens, done = None, None, False
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            done = True
            break
        chunk = json.loads(line[6:])
        if first is None and any(c.get("text") for c in chunk.get("choices", [])):
            first = time.monotonic()
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
    connection.close()
    if not done or tokens != new_tokens:
        raise RuntimeError(f"stream ended {'with' if done else 'without'} [DONE], {tokens} of {new_tokens} tokens")
    return submitted, first, tokens


def load(name, port, count, clients, new_tokens, extra):
    results, errors, wall = run_closed_loop(count, clients, lambda i: run_one(port, PROMPTS[i % len(PROMPTS)], new_tokens, extra))
    results = [r for r in results if r]
    first = [1000 * (f - s) for s, f, _ in results if f is not None]
    tokens = sum(t for _, _, t in results)
    return {"name": name, "clients": clients, "requests": count, "completed": len(results), "new_tokens": tokens,
            "wall_ms": 1000 * wall, "requests_per_s": len(results) / wall, "tokens_per_s": tokens / wall,
            "ttft_p50_ms": percentile(first, 0.5), "ttft_p99_ms": percentile(first, 0.99), "errors": len(errors),
            "error_texts": errors[:5]}


def main():
    name, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    client_counts = [int(c) for c in sys.argv[4].split(",")]
    new_tokens, extra = int(sys.argv[5]), json.loads(sys.argv[6])
    load(name, port, 2, 1, new_tokens, extra)  # warm-up
    rows = []
    for clients in client_counts:
        row = load(name, port, count, clients, new_tokens, extra)
        rows.append(row)
        print(f"  {name:<14} {clients:2} clients  {row['requests_per_s']:6.2f} requests/s  {row['tokens_per_s']:7.1f} tokens/s  "
              f"first token p50 {row['ttft_p50_ms']:.0f} p99 {row['ttft_p99_ms']:.0f} ms  errors {row['errors']} {row['error_texts'][:2]}",
              flush=True)
    with open(sys.argv[7], "w") as f:
        json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
