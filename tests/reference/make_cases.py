#!/usr/bin/env python3
"""Makes golden generate() cases with transformers, in the schema of README.md in this folder.

Runs where transformers and torch are installed (a Debian sid chroot: tests/reference/make-golden-cases.sh
makes one and runs this there). Two jobs:

  make_cases.py --models DIR --out FILE
      writes FILE (cases-generated.json): the close-EOS model's cases, made by this script from
      qwen2-tiny (model DIR/qwen2-tiny-close-eos is written too), and beam cases of the two
      original models with per-token scores (`token_logprobs` and `token_scores`, from
      compute_transition_scores), greedy and beam cases that keep every step's scores and logits,
      9 cases on each tiny family model (FAMILY_MODELS, written to DIR too), and cases of the trained
      demo model DIR/fortunes-llama prompted with text (each keeps its `texts`).
  make_cases.py --models DIR --bf16 --out FILE
      writes FILE (cases-bf16.json): bfloat16 copies of the golden models (DIR/bf16/NAME, written
      too) and, for each, the cases its original has, run in float32 (f32 blocks only).
  make_cases.py --models DIR --reproduce cases.json
      reruns every case of an existing file and reports the ones whose tokens differ: shows that
      this script reproduces the data it did not make.

Everything runs on the CPU with eager attention; decoding is deterministic (no sampling).
"""
import argparse
import functools
import json
import math
import random
import shutil
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM
from transformers.generation.stopping_criteria import StopStringCriteria

PAD = 3


@functools.lru_cache(maxsize=None)
def load(folder, dtype):
    """The model of `folder` in `dtype`, loaded once (generate() leaves it as it was)."""
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32)
    return model.to(dtype).eval()


def eos_ids(model):
    eos = model.generation_config.eos_token_id
    return set(eos if isinstance(eos, list) else [eos])


def left_pad(prompts):
    width = max(len(p) for p in prompts)
    ids = [[PAD] * (width - len(p)) + p for p in prompts]
    mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
    return torch.tensor(ids), torch.tensor(mask), width


def new_token_count(row, width, eos, stop=None):
    """Tokens a greedy row generated: up to and including its first EOS, or the token that completes
    a stop string (`stop(prefix)`); transformers pads the row after either."""
    new = row[width:]
    for i, t in enumerate(new):
        if t in eos or (stop and stop(row[:width + i + 1])):
            return i + 1
    return len(new)


def strict_json_rows(step):
    """A step's [rows, vocab] scores as lists, -inf (a banned token) as null (strict JSON); None
    where a value is NaN or +inf. transformers keeps them in float32 (also for a float64 model):
    9 significant digits give each float32 back exactly."""
    values = step.float().tolist()
    if any(math.isnan(v) or v == math.inf for row in values for v in row):
        return None
    return [[float(f"{v:.9g}") if math.isfinite(v) else None for v in row] for row in values]


@functools.lru_cache(maxsize=None)
def tokenizer_of(folder):
    return transformers.AutoTokenizer.from_pretrained(folder)


def stop_string_test(model, params):
    """transformers' StopStringCriteria for the case's stop_strings, as a test of a token list; or None."""
    if "stop_strings" not in params:
        return None
    criteria = StopStringCriteria(tokenizer_of(model.name_or_path), params["stop_strings"])
    return lambda row: bool(criteria(torch.tensor([row]), None)[0])


def run_case(model, kind, prompts, params, step_outputs=False):
    """One generate() call; returns the block {sequences, scores...} or None when a score is not finite.
    With step_outputs the block also keeps every step's processed scores and raw logits. Stop strings
    are matched with the model folder's tokenizer, as generate() needs it."""
    ids, mask, width = left_pad(prompts)
    eos = eos_ids(model)
    tokenizer = {"tokenizer": tokenizer_of(model.name_or_path)} if "stop_strings" in params else {}
    with torch.no_grad():
        out = model.generate(ids, attention_mask=mask, do_sample=False, return_dict_in_generate=True,
                             output_scores=True, output_logits=step_outputs, **tokenizer, **{"pad_token_id": PAD, **params})
    sequences = out.sequences.tolist()
    block = {"sequences": sequences}
    beam_indices = out.beam_indices if kind == "beam" else None
    transition = model.compute_transition_scores(out.sequences, out.scores, beam_indices, normalize_logits=False)
    stop = stop_string_test(model, params)
    if kind == "greedy":
        steps = torch.stack(out.scores, 1).float().log_softmax(-1)  # [rows, steps, vocab]
        logprobs = []
        for r, row in enumerate(sequences):
            new = row[width:]
            n = new_token_count(row, width, eos, stop)
            logprobs.append([steps[r, j, new[j]].item() for j in range(n)])
        block["token_logprobs"] = logprobs
        block["token_scores"] = [transition[r][:len(lp)].tolist() for r, lp in enumerate(logprobs)]
    else:
        block["sequences_scores"] = out.sequences_scores.tolist()
        used = (out.beam_indices[:, :transition.size(1)] >= 0)
        block["token_logprobs"] = [transition[r][used[r]].tolist() for r in range(transition.size(0))]
        block["token_scores"] = block["token_logprobs"]
        block["beam_indices"] = out.beam_indices.tolist()
    if step_outputs:
        block["step_scores"] = [strict_json_rows(step) for step in out.scores]
        block["step_logits"] = [strict_json_rows(step) for step in out.logits]
        if None in block["step_scores"] + block["step_logits"]:
            return None
    finals = [row[width + len(lp) - 1] if lp else None for row, lp in zip(sequences, block["token_logprobs"])]
    block["finish_reasons"] = ["eos" if f in eos else "stop_string" if stop and stop(row[:width + len(lp)]) else "length"
                               for f, row, lp in zip(finals, sequences, block["token_logprobs"])]
    flat = [s for key in ("token_logprobs", "token_scores") for row in block[key] for s in row]
    flat += block.get("sequences_scores", [])
    if not all(math.isfinite(s) for s in flat):
        return None
    return block


def make_case(models_dir, name, kind, prompts, params, step_outputs=False):
    folder = models_dir / name
    case = {"model": name, "kind": kind, "prompts": prompts, "params": params}
    if name.startswith(BF16_DIR + "/"):
        return bf16_case(folder, case, step_outputs)
    f64 = run_case(load(folder, torch.float64), kind, prompts, params, step_outputs)
    f32 = run_case(load(folder, torch.float32), kind, prompts, params, step_outputs)
    if f32 is None:
        raise RuntimeError(f"float32 scores not finite: {case}")
    if f64 is not None:
        case["f64"] = f64
    else:
        case["f64_note"] = "transformers' float64 run gives NaN scores here (left padding, see DECODING_RULES.md §6)"
    case["f32"] = f32
    case["f32_matches_f64"] = f64 is not None and f64["sequences"] == f32["sequences"]
    # A float64 run whose tokens differ from float32's is still transformers' answer in float64.
    case["check"] = (["f64"] if f64 is not None else []) + ["f32"]
    return case


def bf16_case(folder, case, step_outputs):
    """A case of a bfloat16-stored checkpoint: only its float32 run (transformers widens each weight
    exactly), which both lmdecode weight formats must reproduce."""
    f32 = run_case(load(folder, torch.float32), case["kind"], case["prompts"], case["params"], step_outputs)
    if f32 is None:
        raise RuntimeError(f"float32 scores not finite: {case}")
    return {**case, "f32": f32, "f32_matches_f64": False, "check": ["f32"]}


def make_close_eos_model(models_dir):
    """qwen2-tiny with both EOS rows of the output layer pointed along the mean final hidden state,
    row 3 a near copy of row 2: both EOS ids score alike and high at many steps, so they crowd the
    top candidates of beam search (the max(2, 1 + #EOS) x num_beams rule decides the beams)."""
    source, target = models_dir / "qwen2-tiny", models_dir / "qwen2-tiny-close-eos"
    model = load.__wrapped__(source, torch.float32)  # a fresh copy: its output layer is changed below
    rng = random.Random(1)
    contexts = torch.tensor([[rng.randrange(4, 320) for _ in range(12)] for _ in range(64)])
    gen = torch.Generator().manual_seed(34)
    with torch.no_grad():
        hidden = model.model(contexts).last_hidden_state.reshape(-1, model.config.hidden_size)
        mean = hidden.mean(0)
        head = model.lm_head.weight
        # A logit of about 6 along the mean (the top logit averages 8.4): EOS is among the top 4
        # tokens at about half the steps and the two EOS log-probs differ by about 0.14.
        head[2] = 0.3 * head[2] + 6.0 * mean / mean.norm() ** 2
        head[3] = head[2] + 0.05 * torch.randn(head.size(1), generator=gen) * head[2].abs().mean()
    if target.exists():
        shutil.rmtree(target)
    model.save_pretrained(target)
    return target.name


def close_eos_cases(models_dir, name):
    rng = random.Random(2204)
    cases = []
    for _ in range(14):
        prompt = [rng.randrange(4, 320) for _ in range(rng.randrange(2, 7))]
        for beams in (2, 3, 4):
            for early in (True, False, "never"):
                for penalty in (1.0, 2.0, -0.5):
                    params = {"num_beams": beams, "max_new_tokens": rng.choice([6, 12, 20]),
                              "length_penalty": penalty, "early_stopping": early,
                              "num_return_sequences": rng.randrange(1, beams + 1)}
                    cases.append(make_case(models_dir, name, "beam", [prompt], params))
    batch = [[rng.randrange(4, 320) for _ in range(n)] for n in (3, 6)]
    for early in (True, False, "never"):
        cases.append(make_case(models_dir, name, "beam", batch, {"num_beams": 3, "max_new_tokens": 12,
                                                                "length_penalty": 1.0, "early_stopping": early,
                                                                "num_return_sequences": 2}))
    processors = ({"repetition_penalty": 1.3}, {"no_repeat_ngram_size": 2}, {"min_new_tokens": 3})
    for extra in processors:
        params = {"num_beams": 4, "max_new_tokens": 12, "length_penalty": 1.0, "early_stopping": True, **extra}
        cases.append(make_case(models_dir, name, "beam", [batch[1]], params))
        cases.append(make_case(models_dir, name, "greedy", batch, {"num_beams": 1, "max_new_tokens": 12, **extra}))
    cases.append(make_case(models_dir, name, "greedy", [batch[0]], {"num_beams": 1, "max_new_tokens": 16}))
    return cases


def scored_beam_cases(models_dir):
    """Beam cases of the original models, kept for their per-token scores."""
    rng = random.Random(30)
    cases = []
    for name in ("qwen2-tiny", "gpt2-tiny"):
        for early in (True, False, "never"):
            prompt = [rng.randrange(4, 320) for _ in range(4)]
            params = {"num_beams": 4, "max_new_tokens": 16, "length_penalty": rng.choice([1.0, 2.0, 0.5]),
                      "early_stopping": early, "num_return_sequences": 4}
            cases.append(make_case(models_dir, name, "beam", [prompt], params))
        batch = [[rng.randrange(4, 320) for _ in range(n)] for n in (2, 5)]
        params = {"num_beams": 3, "max_new_tokens": 10, "length_penalty": 1.0, "early_stopping": False,
                  "num_return_sequences": 3, "repetition_penalty": 1.2}
        cases.append(make_case(models_dir, name, "beam", batch, params))
    return cases


def step_output_cases(models_dir):
    """Greedy and beam cases of the original models that keep every step's processed scores and raw
    logits (output_scores, output_logits), with processors that ban and penalise tokens."""
    rng = random.Random(3030)
    cases = []
    extra = {"repetition_penalty": 1.3, "no_repeat_ngram_size": 2, "min_new_tokens": 2}
    for name in ("qwen2-tiny", "gpt2-tiny"):
        batch = [[rng.randrange(4, 320) for _ in range(n)] for n in (3, 5)]
        cases.append(make_case(models_dir, name, "greedy", batch, {"num_beams": 1, "max_new_tokens": 5, **extra},
                               step_outputs=True))
        params = {"num_beams": 3, "max_new_tokens": 5, "length_penalty": 1.0, "early_stopping": False,
                  "num_return_sequences": 2, **extra}
        cases.append(make_case(models_dir, name, "beam", batch, params, step_outputs=True))
    return cases


# Tiny random checkpoints of the rotary families, each with what sets it apart from qwen2-tiny.
FAMILY_MODELS = {
    # Llama 3.x: llama3 RoPE scaling over a 32-token pretraining context (so prompts of 40 tokens
    # cross it), an explicit head_dim unlike hidden / heads, tied embeddings, attention and MLP biases.
    "llama3-tiny": (transformers.LlamaConfig, dict(
        head_dim=24, tie_word_embeddings=True, attention_bias=True, mlp_bias=True, max_position_embeddings=256,
        rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 32})),
    # Llama with linear RoPE scaling (positions / 4), untied, no biases.
    "llama-linear-tiny": (transformers.LlamaConfig, dict(
        tie_word_embeddings=False, max_position_embeddings=256,
        rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0})),
    # Qwen3: q_norm / k_norm over each head before RoPE, head_dim 32 with hidden 64 and 4 heads.
    "qwen3-tiny": (transformers.Qwen3Config, dict(
        head_dim=32, tie_word_embeddings=False, max_position_embeddings=256,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})),
    # Mistral: every layer attends to the last 8 positions only.
    "mistral-tiny": (transformers.MistralConfig, dict(
        sliding_window=8, tie_word_embeddings=False, max_position_embeddings=256)),
    # Phi-3: fused qkv_proj and gate_up_proj, half of each head rotating, a sliding window of 12.
    "phi3-tiny": (transformers.Phi3Config, dict(
        sliding_window=12, tie_word_embeddings=False, max_position_embeddings=256, original_max_position_embeddings=256,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5})),
    # Qwen2 with use_sliding_window: layers from max_window_layers (1) on slide, over 6 positions.
    "qwen2-sliding-tiny": (transformers.Qwen2Config, dict(
        use_sliding_window=True, sliding_window=6, max_window_layers=1, tie_word_embeddings=False,
        max_position_embeddings=256)),
    # Gemma 3: one sliding layer (window 6, rotary base 10000) and one full layer (base 1000, linear
    # scaling by 2), head_dim 32 beside hidden / heads = 16, q.k scaled by 24^-0.5, soft-capped
    # logits, embeddings tied (its default) and scaled by sqrt(64). attn_logit_softcapping is set,
    # but transformers' Gemma3Attention does not apply it: the cases show what it does instead.
    "gemma3-tiny": (transformers.Gemma3TextConfig, dict(
        head_dim=32, query_pre_attn_scalar=24, sliding_window=6, layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=256, attn_logit_softcapping=3.0, final_logit_softcapping=2.5,
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                         "full_attention": {"rope_type": "linear", "rope_theta": 1000.0, "factor": 2.0}})),
}


def make_family_model(models_dir, name):
    """A tiny random `name` saved with save_pretrained: norms and biases perturbed so they matter, the
    EOS row of the output layer scaled so EOS is reached. Gemma's norms multiply by (1 + weight), so
    their weights scatter around 0, the others' around 1."""
    config_class, extra = FAMILY_MODELS[name]
    config = config_class(vocab_size=320, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, initializer_range=0.1,
                          bos_token_id=1, eos_token_id=2, pad_token_id=PAD, **extra)
    torch.manual_seed(29)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    norm_center = 0.0 if config.model_type == "gemma3_text" else 1.0
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if param_name.endswith("norm.weight"):
                param.copy_(norm_center + 0.3 * torch.randn_like(param))
            elif param_name.endswith(".bias"):
                param.copy_(0.2 * torch.randn_like(param))
        model.get_output_embeddings().weight[2] *= 3.0
    target = models_dir / name
    if target.exists():
        shutil.rmtree(target)
    model.save_pretrained(target)
    return name


def family_cases(models_dir, name):
    """Greedy (one prompt, a long one past the llama3 context, a left-padded batch), beam search in
    every early_stopping mode, and processors, on one family model."""
    rng = random.Random(sum(map(ord, name)))
    prompt = lambda n: [rng.randrange(4, 320) for _ in range(n)]
    cases = [make_case(models_dir, name, "greedy", [prompt(5)], {"num_beams": 1, "max_new_tokens": 20}),
             make_case(models_dir, name, "greedy", [prompt(40)], {"num_beams": 1, "max_new_tokens": 24}),
             make_case(models_dir, name, "greedy", [prompt(n) for n in (2, 6, 4)], {"num_beams": 1, "max_new_tokens": 12})]
    for early in (True, False, "never"):
        params = {"num_beams": 3, "max_new_tokens": 14, "length_penalty": 1.0, "early_stopping": early,
                  "num_return_sequences": 2}
        cases.append(make_case(models_dir, name, "beam", [prompt(6)], params))
    cases.append(make_case(models_dir, name, "beam", [prompt(36), prompt(3)],
                           {"num_beams": 2, "max_new_tokens": 10, "early_stopping": False, "num_return_sequences": 2}))
    processors = {"repetition_penalty": 1.3, "no_repeat_ngram_size": 2, "min_new_tokens": 3}
    cases.append(make_case(models_dir, name, "greedy", [prompt(5), prompt(3)], {"num_beams": 1, "max_new_tokens": 12, **processors}))
    cases.append(make_case(models_dir, name, "beam", [prompt(5)], {"num_beams": 3, "max_new_tokens": 12,
                                                                  "early_stopping": True, **processors}))
    return cases


# The demo model, trained on Debian's fortunes (tests/reference/train-demo-model.sh): trained weights give
# peaked distributions, early EOS and close beam races that random weights never do.
TRAINED_MODEL = "fortunes-llama"
TRAINED_PROMPTS = ["The secret of a happy life is", "A computer is", "Q: What do you call", "Never trust a man who",
                   "Love is", "It is a truth universally acknowledged that"]


def trained_model_cases(models_dir, name=TRAINED_MODEL):
    """Greedy, beam in every early_stopping mode, padded batches and processors on the demo model,
    prompted with text its own tokenizer.json encodes (HF tokenizers); each case keeps the texts."""
    from tokenizers import Tokenizer
    tokenizer = Tokenizer.from_file(str(models_dir / name / "tokenizer.json"))
    texts = lambda *indices: [TRAINED_PROMPTS[i] for i in indices]
    def case(kind, indices, params):
        # Its own pad id is 0 (its EOS): the params say that these cases pad with 3, as all others do.
        params = {"pad_token_id": PAD, **params}
        made = make_case(models_dir, name, kind, [tokenizer.encode(t).ids for t in texts(*indices)], params)
        return {"texts": texts(*indices), **made}
    beam = {"num_beams": 4, "max_new_tokens": 32, "length_penalty": 1.0, "num_return_sequences": 2}
    processors = {"repetition_penalty": 1.2, "no_repeat_ngram_size": 3}
    cases = [case("greedy", [0], {"num_beams": 1, "max_new_tokens": 48}),
             case("greedy", [1, 2, 3], {"num_beams": 1, "max_new_tokens": 32})]
    cases += [case("beam", [0], {**beam, "early_stopping": early}) for early in (True, False, "never")]
    cases += [case("beam", [3, 4], {"num_beams": 3, "max_new_tokens": 24, "early_stopping": False, "num_return_sequences": 2}),
              case("greedy", [4], {"num_beams": 1, "max_new_tokens": 32, **processors}),
              case("beam", [5], {**beam, "length_penalty": 2.0, "early_stopping": True, **processors})]
    # Stop strings: within a token, across tokens, reaching into the prompt ("is a" after "... is"),
    # one that never comes; greedy on a padded batch and beam search, where a candidate that
    # completes one finishes as an EOS would.
    stops = {"stop_strings": [" the", "ness", "s a", "--", "zzz"]}
    cases += [case("greedy", [0, 1, 4], {"num_beams": 1, "max_new_tokens": 32, **stops}),
              case("greedy", [2], {"num_beams": 1, "max_new_tokens": 32, "stop_strings": ["\n"]}),
              case("beam", [0], {**beam, "early_stopping": True, **stops}),
              case("beam", [3, 5], {"num_beams": 3, "max_new_tokens": 24, "early_stopping": False,
                                    "num_return_sequences": 2, "stop_strings": ["ing", "\t"]})]
    write_token_texts(models_dir / name)
    return cases


def write_token_texts(folder):
    """token_texts.json: each id's bytes, hex, as transformers' StopStringCriteria matches them
    (clean_tokenizer_vocab in its byte-level mode), for a runner without a tokenizer."""
    tokenizer = tokenizer_of(str(folder))
    mode = StopStringCriteria._get_stop_string_matching_mode(tokenizer)
    texts, ids = StopStringCriteria.clean_tokenizer_vocab(tokenizer, stop_string_matching_mode=mode)
    by_id = [""] * (max(ids) + 1)
    for text, i in zip(texts, ids):
        by_id[i] = (text if isinstance(text, bytes) else text.encode("utf-8")).hex()
    (folder / "token_texts.json").write_text(json.dumps({"matching_mode": mode, "hex": by_id}) + "\n")


# bfloat16 copies of the golden models (saved as HF checkpoints are published: every floating-point
# tensor in bfloat16), under DIR/bf16/, each with the cases its float32 original has.
BF16_DIR = "bf16"
BF16_MODELS = ["qwen2-tiny", "gpt2-tiny", *FAMILY_MODELS, TRAINED_MODEL]
BF16_KEPT_FILES = ["generation_config.json", "tokenizer.json", "tokenizer_config.json", "token_texts.json"]


def make_bf16_model(models_dir, name):
    source, target = models_dir / name, models_dir / BF16_DIR / name
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    if target.exists():
        shutil.rmtree(target)
    model.to(torch.bfloat16).save_pretrained(target)
    for kept in BF16_KEPT_FILES:
        if (source / kept).exists():
            shutil.copy(source / kept, target / kept)
    return f"{BF16_DIR}/{name}"


def bf16_cases(models_dir):
    cases = []
    for name in BF16_MODELS:
        made = make_bf16_model(models_dir, name)
        if name == TRAINED_MODEL:
            cases += trained_model_cases(models_dir, made)
        else:
            cases += family_cases(models_dir, made)
    return cases


def reproduce(models_dir, cases_path):
    data = json.loads(Path(cases_path).read_text())
    differing = 0
    for index, case in enumerate(data["cases"]):
        for dtype_name, dtype in (("f64", torch.float64), ("f32", torch.float32)):
            if dtype_name not in case["check"]:
                continue
            block = run_case(load(models_dir / case["model"], dtype), case["kind"], case["prompts"], case["params"])
            if block is None or block["sequences"] != case[dtype_name]["sequences"]:
                differing += 1
                print(f"case {index} {dtype_name}: tokens differ", flush=True)
    print(f"{len(data['cases'])} cases rerun, {differing} (case, dtype) pairs differ")
    return 1 if differing else 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", required=True, type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--reproduce", type=Path)
    parser.add_argument("--bf16", action="store_true", help="write the bfloat16 models' cases to --out instead")
    args = parser.parse_args()
    torch.manual_seed(0)
    transformers.utils.logging.disable_progress_bar()
    if args.reproduce:
        return reproduce(args.models, args.reproduce)
    if args.bf16:
        cases = bf16_cases(args.models)
    else:
        name = make_close_eos_model(args.models)
        cases = close_eos_cases(args.models, name) + scored_beam_cases(args.models) + step_output_cases(args.models)
        for family in FAMILY_MODELS:
            cases += family_cases(args.models, make_family_model(args.models, family))
        cases += trained_model_cases(args.models)
    header = {"transformers": transformers.__version__, "torch": torch.__version__,
              "made_by": "tests/reference/make_cases.py", "pad_token_id": PAD, "cases": cases}
    args.out.write_text(json.dumps(header, indent=None, separators=(",", ":")) + "\n")
    print(f"{len(cases)} cases written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
