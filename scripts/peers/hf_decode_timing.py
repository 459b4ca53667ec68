"""Saves a Qwen2.5-0.5B-shaped model with random weights (float32, seed 0) with save_pretrained and
times transformers' generate() on it, for scripts/compare-peers.sh.

    python3 hf_decode_timing.py MODEL_DIR THREADS NEW JSON_OUT

For prompts 128 and 1024 (the prompts lmdecode-bench builds, prompts_of in benchmarks/bench.cpp) and
greedy batch 1, greedy batch 4 and 4 beams: one generate() of NEW tokens (min_new_tokens = NEW, so EOS
cannot end it), whose steps a stopping criterion timestamps. decode_ms is the median step after the
first (the first includes the prefill); generate_ms_per_step is the whole call over NEW.
"""
import json
import statistics
import sys
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM, StoppingCriteria, StoppingCriteriaList

RUNS = [(1, 1), (4, 1), (1, 4)]  # (batch, beams)
PROMPTS = [128, 1024]


def prompts_of(batch, length, vocab):
    return [[3 + (b * 7919 + i * 104729) % (vocab - 3) for i in range(length)] for b in range(batch)]


def random_model():
    """The Qwen2.5-0.5B shape with random weights (float32, seed 0)."""
    config = Qwen2Config(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768,
                         rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    return Qwen2ForCausalLM(config).eval()


class StepClock(StoppingCriteria):
    """Never stops; records when each step's criteria were asked (once a step)."""

    def __init__(self):
        self.times = []

    def __call__(self, input_ids, scores, **kwargs):
        self.times.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def main():
    model_dir, threads, new, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(threads)
    model = random_model()
    config = model.config
    model.save_pretrained(model_dir)
    rows = []
    for prompt in PROMPTS:
        for batch, beams in RUNS:
            ids = torch.tensor(prompts_of(batch, prompt, config.vocab_size))
            clock = StepClock()
            start = time.perf_counter()
            with torch.no_grad():
                model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                               num_beams=beams, do_sample=False, stopping_criteria=StoppingCriteriaList([clock]))
            total = time.perf_counter() - start
            steps = [b - a for a, b in zip(clock.times, clock.times[1:])]
            row = dict(prompt=prompt, batch=batch, beams=beams, new_tokens=new,
                       decode_ms=statistics.median(steps) * 1000, generate_ms_per_step=total * 1000 / new)
            rows.append(row)
            print(f"transformers prompt {prompt} batch {batch} beams {beams}: decode {row['decode_ms']:.1f} ms/step, "
                  f"generate {row['generate_ms_per_step']:.1f} ms/step", flush=True)
    with open(out, "w") as f:
        json.dump(dict(transformers=__import__("transformers").__version__, torch=torch.__version__, threads=threads,
                       rows=rows), f)


if __name__ == "__main__":
    main()
