"""Times transformers' prefill on the Qwen2.5-0.5B-shaped random weights that hf_decode_timing.py
saved, for scripts/compare-peers.sh prefill.

    python3 hf_prefill_timing.py MODEL_DIR THREADS JSON_OUT

For prompts of 128 and 1024 tokens (prompts_of in benchmarks/bench.cpp), batch 1: one forward with
the cache on, the last position's logits only (logits_to_keep=1, as generate() prefills), with the
"sdpa" attention (transformers' default) and with "eager"; the median of 5 after a warm-up.
"""
import json
import statistics
import sys
import time

import torch
from transformers import AutoModelForCausalLM

from hf_decode_timing import prompts_of

PROMPTS = [128, 1024]


def main():
    model_dir, threads, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    torch.set_num_threads(threads)
    rows = []
    for attention in ("sdpa", "eager"):
        model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation=attention, dtype=torch.float32).eval()
        for prompt in PROMPTS:
            ids = torch.tensor(prompts_of(1, prompt, model.config.vocab_size))
            times = []
            with torch.no_grad():
                for run in range(6):
                    start = time.perf_counter()
                    model(ids, attention_mask=torch.ones_like(ids), use_cache=True, logits_to_keep=1)
                    if run:
                        times.append((time.perf_counter() - start) * 1000)
            row = dict(attention=attention, prompt=prompt, prefill_ms=statistics.median(times))
            rows.append(row)
            print(f"transformers {attention} prefill {prompt}: {row['prefill_ms']:.1f} ms "
                  f"({1000 * prompt / row['prefill_ms']:.0f} tokens/s)", flush=True)
    with open(out, "w") as f:
        json.dump(dict(transformers=__import__("transformers").__version__, torch=torch.__version__, threads=threads,
                       rows=rows), f)


if __name__ == "__main__":
    main()
