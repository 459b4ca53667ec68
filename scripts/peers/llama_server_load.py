"""Closed-loop clients against llama.cpp's llama-server with the requests of lmdecode-bench --only engine,
for scripts/compare-peers.sh engine.

    python3 llama_server_load.py PORT VOCAB COUNT CLIENTS[,CLIENTS...] JSON_OUT

COUNT requests of mixed prompt (32, 64, 128 tokens, the token ids engine_requests() in
benchmarks/bench.cpp builds) and output lengths (16, 24, 32 new tokens, greedy, EOS ignored), run by
each number of clients in turn: each client posts its next request to /completion (streamed) when its
last one ended. Prints and saves aggregate new tokens/s, time to first token and time between tokens
(p50, p99), from the arrival of each streamed token; errors are counted, and must be 0; requests that
end before their tokens (the server's stop_type is shown) count with the tokens they gave.
"""
import json
import sys
import time
import urllib.request

from closed_loop import percentile, run_closed_loop


def requests_of(vocab, count):
    out = []
    for i in range(count):
        length = [32, 64, 128][i % 3]
        new_tokens = [16, 24, 32][(i // 3) % 3]
        prompt = [(3 + j * 104729 % (vocab + i - 3)) % vocab for j in range(length)]
        out.append((prompt, new_tokens))
    return out


def run_one(port, prompt, new_tokens):
    """Returns (submitted, [arrival of each token], why it stopped) or raises."""
    body = json.dumps({"prompt": prompt, "n_predict": new_tokens, "temperature": 0, "top_k": 1, "ignore_eos": True,
                       "stream": True, "return_tokens": True}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/completion", data=body,
                                     headers={"Content-Type": "application/json"})
    submitted = time.monotonic()
    arrivals, stop_type = [], None
    with urllib.request.urlopen(request, timeout=600) as response:
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            chunk = json.loads(line[6:])
            now = time.monotonic()
            arrivals.extend([now] * len(chunk.get("tokens", [])))
            if chunk.get("stop"):
                stop_type = chunk.get("stop_type")
                break
    return submitted, arrivals, stop_type


def load(port, requests, clients):
    results, errors, wall = run_closed_loop(len(requests), clients, lambda i: run_one(port, *requests[i]))
    done = [r for r in results if r]
    first = [1000 * (arrivals[0] - submitted) for submitted, arrivals, _ in done]
    between = [1000 * (b - a) for _, arrivals, _ in done for a, b in zip(arrivals, arrivals[1:])]
    tokens = sum(len(arrivals) for _, arrivals, _ in done)
    # Requests that ended before the tokens asked (counted with the tokens they gave).
    short = [f"request {i}: {len(r[1])} of {requests[i][1]} tokens, stop_type {r[2]}"
             for i, r in enumerate(results) if r and len(r[1]) != requests[i][1]]
    return {"name": "llama_server", "clients": clients, "requests": len(requests), "new_tokens": tokens,
            "wall_ms": 1000 * wall, "tokens_per_s": tokens / wall, "ttft_p50_ms": percentile(first, 0.5),
            "ttft_p99_ms": percentile(first, 0.99), "tbt_p50_ms": percentile(between, 0.5),
            "tbt_p99_ms": percentile(between, 0.99), "errors": len(errors), "error_texts": errors[:5], "short": short}


def main():
    port, vocab, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    client_counts = [int(c) for c in sys.argv[4].split(",")]
    requests = requests_of(vocab, count)
    load(port, requests[:1], 1)  # warm-up
    rows = []
    for clients in client_counts:
        row = load(port, requests, clients)
        rows.append(row)
        print(f"  llama-server {clients:2} clients  {row['tokens_per_s']:7.1f} tokens/s  first token p50 {row['ttft_p50_ms']:.0f} "
              f"p99 {row['ttft_p99_ms']:.0f} ms  between tokens p50 {row['tbt_p50_ms']:.1f} p99 {row['tbt_p99_ms']:.1f} ms  "
              f"errors {row['errors']}  ended short {len(row['short'])} {row['short'][:2]}", flush=True)
    with open(sys.argv[5], "w") as f:
        json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
