"""Prints the peer comparison of scripts/compare-peers.sh as one Markdown table.

    python3 table.py OURS_JSON HF_JSON LLAMA_JSON

OURS_JSON: lmdecode-bench --only peers; HF_JSON: hf_decode_timing.py; LLAMA_JSON: llama-bench -o json
with `-p 0 -n 32 -d 128,1024` (decode at that depth) and `-pg 128,32 -pg 1024,32` (prompt then 32 new
tokens). Times are ms per step (one new token for every row); "generate" is the whole call over the
new tokens, the prefill included.
"""
import json
import sys

ours = {(r["prompt"], r["batch"], r["beams"]): r for r in json.load(open(sys.argv[1]))["scenarios"] if r["name"] == "peers"}
hf_data = json.load(open(sys.argv[2]))
hf = {(r["prompt"], r["batch"], r["beams"]): r for r in hf_data["rows"]}
llama_decode, llama_generate = {}, {}
for t in json.load(open(sys.argv[3])):
    if t["n_prompt"] == 0 and t["n_gen"] > 0:
        llama_decode[t["n_depth"]] = 1000.0 / t["avg_ts"]
    elif t["n_prompt"] > 0 and t["n_gen"] > 0:  # -pg: avg_ts counts prompt and new tokens together
        llama_generate[t["n_prompt"]] = (t["n_prompt"] + t["n_gen"]) / t["avg_ts"] * 1000.0 / t["n_gen"]

print(f"threads {hf_data['threads']}; float32 Qwen2.5-0.5B-shaped random weights; transformers {hf_data['transformers']}, "
      f"torch {hf_data['torch']}; 32 new tokens")
print("| prompt | run | lmdecode decode | transformers decode | llama.cpp decode | lmdecode generate | transformers generate | "
      "llama.cpp generate | llama.cpp / lmdecode decode | transformers / lmdecode generate |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for prompt in (128, 1024):
    for (batch, beams), name in [((1, 1), "greedy batch 1"), ((4, 1), "greedy batch 4"), ((1, 4), "4 beams")]:
        o, h = ours.get((prompt, batch, beams), {}), hf.get((prompt, batch, beams), {})
        alone = batch == 1 and beams == 1
        ld = f"{llama_decode[prompt]:.1f}" if alone and prompt in llama_decode else ("no beam search" if beams > 1 else "no batch in llama-bench")
        lg = f"{llama_generate[prompt]:.1f}" if alone and prompt in llama_generate else "-"
        ratio = f"{llama_decode[prompt] / o['decode_ms']:.2f}x" if alone and prompt in llama_decode and o else "-"
        hf_ratio = f"{h['generate_ms_per_step'] / o['generate_ms_per_step']:.2f}x" if o and h else "-"
        cell = lambda r, k: f"{r[k]:.1f}" if k in r else "n/a"
        print(f"| {prompt} | {name} | {cell(o, 'decode_ms')} | {cell(h, 'decode_ms')} | {ld} | {cell(o, 'generate_ms_per_step')} | "
              f"{cell(h, 'generate_ms_per_step')} | {lg} | {ratio} | {hf_ratio} |")
