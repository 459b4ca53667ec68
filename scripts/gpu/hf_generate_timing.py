"""Times transformers' generate() on a Qwen2.5-0.5B-shaped model with random weights (seed 0) and
saves that model with save_pretrained, so that lmdecode-bench can load the same weights.

    python3 hf_generate_timing.py MODEL_DIR PROMPT NEW JSON_OUT [DEVICE [SHAPE]]

DEVICE is cuda (default) or cpu; SHAPE is qwen2.5-0.5b (default) or tiny (2 layers, for a rehearsal
of scripts/gpu-check.sh on a CPU).

Prompts are the ones lmdecode-bench builds (prompts_of in benchmarks/bench.cpp); min_new_tokens =
max_new_tokens so EOS cannot end a run early. Each mode is warmed up once, then timed 3 times.
"""
import json
import statistics
import sys
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM


SHAPES = {
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=1000),
}


def prompts_of(batch, length, vocab):
    return [[3 + (b * 7919 + i * 104729) % (vocab - 3) for i in range(length)] for b in range(batch)]


def main():
    model_dir, prompt, new, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    device = sys.argv[5] if len(sys.argv) > 5 else "cuda"
    shape = SHAPES[sys.argv[6] if len(sys.argv) > 6 else "qwen2.5-0.5b"]
    config = Qwen2Config(**shape, max_position_embeddings=32768,
                         rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16).to(device).eval()
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    model.save_pretrained(model_dir)
    saved = json.load(open(f"{model_dir}/config.json"))
    print("saved config: rope", saved.get("rope_parameters", saved.get("rope_theta")), "attention", model.config._attn_implementation, flush=True)
    rows = []
    for batch, beams in [(1, 1), (8, 1), (1, 4)]:
        ids = torch.tensor(prompts_of(batch, prompt, config.vocab_size), device=device)
        mask = torch.ones_like(ids)
        for mode in ["default", "static"]:
            kwargs = dict(max_new_tokens=new, min_new_tokens=new, num_beams=beams, do_sample=False)
            if mode == "static":
                kwargs["cache_implementation"] = "static"
            try:
                start = time.perf_counter()
                model.generate(ids, attention_mask=mask, **kwargs)
                synchronize()
                warmup = time.perf_counter() - start
                times = []
                for _ in range(3):
                    start = time.perf_counter()
                    generated = model.generate(ids, attention_mask=mask, **kwargs)
                    synchronize()
                    times.append(time.perf_counter() - start)
                ms = statistics.median(times) * 1000 / new
                rows.append(dict(batch=batch, beams=beams, mode=mode, ms_per_step=ms, warmup_s=warmup,
                                 tokens=generated[0, prompt:].tolist()))
                print(f"HF {mode:8s} batch {batch} beams {beams}: {ms:.2f} ms/step (warm-up {warmup:.1f} s)", flush=True)
            except Exception as e:  # report, keep timing the other modes
                rows.append(dict(batch=batch, beams=beams, mode=mode, error=repr(e)[:300]))
                print(f"HF {mode} batch {batch} beams {beams}: failed: {e!r}"[:400], flush=True)
    with open(out, "w") as f:
        json.dump(dict(transformers=__import__("transformers").__version__, torch=torch.__version__, device=device,
                       shape=sys.argv[6] if len(sys.argv) > 6 else "qwen2.5-0.5b", rows=rows), f)


if __name__ == "__main__":
    main()
