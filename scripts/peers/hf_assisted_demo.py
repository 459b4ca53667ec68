"""Times transformers' assisted generation with the demo model and its draft (tests/data/hf-reference/
fortunes-llama and fortunes-llama-draft) against its plain greedy: the demo's prompt, 200 new tokens
(min_new_tokens = 200), one thread, the best of 3. Prints tokens/s, the model's forwards (steps) are
not exposed by transformers, so lmdecode-generate's --json gives ours.

    python3 hf_assisted_demo.py MODELS_DIR
"""
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

NEW = 200


def main():
    models = sys.argv[1]
    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(f"{models}/fortunes-llama")
    model = AutoModelForCausalLM.from_pretrained(f"{models}/fortunes-llama", dtype=torch.float32).eval()
    draft = AutoModelForCausalLM.from_pretrained(f"{models}/fortunes-llama-draft", dtype=torch.float32).eval()
    ids = tokenizer("The secret of a happy life is", return_tensors="pt").input_ids
    results = {}
    for name, extra in (("plain", {}), ("assisted", {"assistant_model": draft}), ("prompt_lookup", {"prompt_lookup_num_tokens": 10})):
        best = None
        for _ in range(3):
            start = time.perf_counter()
            with torch.no_grad():
                out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW, min_new_tokens=NEW,
                                     do_sample=False, **extra)
            seconds = time.perf_counter() - start
            best = seconds if best is None else min(best, seconds)
        results[name] = out[0, ids.shape[1]:].tolist()
        print(f"transformers {name}: {1000 * best:.0f} ms, {NEW / best:.0f} tokens/s; {len(results[name])} tokens, "
              f"same as plain: {results[name][:NEW] == results['plain'][:NEW]}", flush=True)


if __name__ == "__main__":
    main()
