"""Times transformers' prompt lookup decoding against its plain greedy on the request lmdecode-bench's
speculative scenario builds (benchmarks/bench.cpp): 64 tokens T (prompts_of), the model's own
128-token greedy continuation C of T, then T again; 128 new tokens (min_new_tokens = 128, so EOS
cannot end it), prompt_lookup_num_tokens = 10. On the Qwen2.5-0.5B-shaped random weights of
hf_decode_timing.py (saved to MODEL_DIR where absent), for scripts/compare-peers.sh.

    python3 hf_speculative_timing.py MODEL_DIR THREADS JSON_OUT
"""
import json
import os
import statistics
import sys
import time

import torch
from transformers import Qwen2ForCausalLM

from hf_decode_timing import prompts_of, random_model

NEW = 128
DRAFTS = 10


def main():
    model_dir, threads, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    torch.set_num_threads(threads)
    if not os.path.exists(os.path.join(model_dir, "config.json")):
        random_model().save_pretrained(model_dir)
    model = Qwen2ForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    text = prompts_of(1, 64, model.config.vocab_size)[0]

    def greedy(ids, **extra):
        ids = torch.tensor([ids])
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW, min_new_tokens=NEW,
                                 do_sample=False, **extra)
        return out[0, ids.shape[1]:].tolist()

    prompt = text + greedy(text) + text
    rows = {}
    for name, extra in (("plain", {}), ("prompt_lookup", {"prompt_lookup_num_tokens": DRAFTS})):
        times = []
        for _ in range(2):
            start = time.perf_counter()
            tokens = greedy(prompt, **extra)
            times.append(time.perf_counter() - start)
        ms = statistics.median(times) * 1000
        rows[name] = dict(ms=ms, tokens_per_s=1000 * NEW / ms, tokens=tokens)
        print(f"transformers {name}: {ms:.0f} ms for {NEW} tokens ({1000 * NEW / ms:.1f} tokens/s)", flush=True)
    plain, lookup = rows["plain"]["tokens"], rows["prompt_lookup"]["tokens"]
    # Its prompt lookup may return more than NEW tokens (an accepted run past the limit): say so, and
    # compare the first NEW apart.
    print(f"transformers prompt lookup / plain: {rows['plain']['ms'] / rows['prompt_lookup']['ms']:.2f}x; "
          f"tokens: {len(plain)} and {len(lookup)}; same tokens: {plain == lookup}; "
          f"the first {NEW} the same: {plain[:NEW] == lookup[:NEW]}", flush=True)
    with open(out, "w") as f:
        json.dump(dict(transformers=__import__("transformers").__version__, torch=torch.__version__, threads=threads,
                       prompt=prompt, rows=rows), f)


if __name__ == "__main__":
    main()
