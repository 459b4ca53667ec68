#!/usr/bin/env python3
"""Trains the demo model: a small Llama-style causal LM and its byte-level BPE tokenizer, on the
quotations of Debian's `fortunes` package, with transformers and tokenizers on the CPU.

  train.py --corpus /usr/share/games/fortunes --out DIR [--steps N] [--threads T]
           [--tokenizer DIR] [--layers N --hidden N --intermediate N --heads N --kv-heads N]

The defaults make fortunes-llama. Its draft model (fortunes-llama-draft, for speculative decoding)
reuses its tokenizer (--tokenizer) so that the two share a vocabulary, with 1 layer, hidden 128.

Writes a Hugging Face checkpoint into DIR (config.json, model.safetensors, generation_config.json,
tokenizer.json, tokenizer_config.json) and training.json: the settings, the held-out loss, the
unigram baseline's loss on the same tokens, and the time taken. Deterministic for one thread count.
"""
import argparse
import json
import math
import random
import time
from collections import Counter
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

EOS = "<|endoftext|>"
VOCAB = 4096
CONTEXT = 128
BATCH = 32
HELD_OUT_EVERY = 20  # every 20th quotation is held out: about 5% of the corpus
SKIPPED_FILES = {"ascii-art", "art"}  # pictures drawn with characters, not text


def read_quotations(corpus):
    """The quotations of every text file in `corpus` (fortune files: entries separated by "%" lines)."""
    quotations = []
    for path in sorted(Path(corpus).iterdir()):
        if path.suffix or path.is_symlink() or path.name in SKIPPED_FILES or not path.is_file():
            continue  # .dat indexes and .u8 links
        text = path.read_text(encoding="utf-8", errors="replace")
        quotations += [q.strip("\n") for q in text.split("\n%\n") if q.strip()]
    return quotations


def train_tokenizer(texts):
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=[EOS], min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def token_stream(tokenizer, texts, eos_id):
    """Every text's ids followed by EOS, one after another."""
    ids = []
    for encoding in tokenizer.encode_batch(texts):
        ids += encoding.ids + [eos_id]
    return torch.tensor(ids)


def whole_windows(stream):
    """The stream cut to a whole number of CONTEXT-token windows (plus the last window's target)."""
    usable = (len(stream) - 1) // CONTEXT * CONTEXT
    return stream[:usable + 1]


def mean_loss(model, stream):
    """Mean next-token cross entropy (nats) over `stream`, in windows of CONTEXT tokens."""
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(stream) - 1, CONTEXT * BATCH):
            rows = [stream[s:s + CONTEXT + 1] for s in range(start, min(start + CONTEXT * BATCH, len(stream) - 1), CONTEXT)]
            rows = [r for r in rows if len(r) == CONTEXT + 1]
            if not rows:
                break
            batch = torch.stack(rows)
            logits = model(batch[:, :-1]).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), batch[:, 1:].reshape(-1), reduction="sum")
            total, count = total + loss.item(), count + batch[:, 1:].numel()
    return total / count


def unigram_loss(train_stream, held_out_stream):
    """Cross entropy (nats) of the held-out tokens under the training tokens' frequencies (add-one)."""
    counts = Counter(train_stream.tolist())
    total = len(train_stream) + VOCAB
    return -sum(math.log((counts[t] + 1) / total) for t in held_out_stream[1:].tolist()) / (len(held_out_stream) - 1)


def make_model(eos_id, args):
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=args.hidden, intermediate_size=args.intermediate,
                         num_hidden_layers=args.layers, num_attention_heads=args.heads,
                         num_key_value_heads=args.kv_heads, max_position_embeddings=512,
                         rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
                         bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id)
    return LlamaForCausalLM(config)


def train(model, stream, steps, log):
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    generator = random.Random(0)
    model.train()
    for step in range(steps):
        starts = [generator.randrange(0, len(stream) - CONTEXT - 1) for _ in range(BATCH)]
        batch = torch.stack([stream[s:s + CONTEXT + 1] for s in starts])
        logits = model(batch[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), batch[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"step {step} loss {loss.item():.3f}")
    model.eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="/usr/share/games/fortunes")
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokenizer", help="a folder whose tokenizer.json to reuse instead of training one")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--intermediate", type=int, default=768)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-heads", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started = time.time()
    log = lambda message: print(f"[{time.time() - started:7.1f} s] {message}", flush=True)

    quotations = read_quotations(args.corpus)
    held_out = quotations[::HELD_OUT_EVERY]
    training = [q for i, q in enumerate(quotations) if i % HELD_OUT_EVERY]
    log(f"{len(quotations)} quotations, {sum(len(q) for q in quotations)} characters; {len(held_out)} held out")

    tokenizer = Tokenizer.from_file(str(Path(args.tokenizer) / "tokenizer.json")) if args.tokenizer else train_tokenizer(training)
    eos_id = tokenizer.token_to_id(EOS)
    train_stream = token_stream(tokenizer, training, eos_id)
    held_out_stream = whole_windows(token_stream(tokenizer, held_out, eos_id))
    log(f"tokens: {len(train_stream)} training, {len(held_out_stream)} held out")

    model = make_model(eos_id, args)
    train(model, train_stream, args.steps, log)
    held_out_loss = mean_loss(model, held_out_stream)
    baseline = unigram_loss(train_stream, held_out_stream)
    log(f"held-out loss {held_out_loss:.3f} nats/token, unigram baseline {baseline:.3f}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    GenerationConfig(bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id, max_new_tokens=48).save_pretrained(out)
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, pad_token=EOS, model_max_length=512).save_pretrained(out)
    report = {"corpus": "Debian package fortunes (fortune-mod quotations, BSD-4-clause), files " +
                        "of " + args.corpus + " except " + ", ".join(sorted(SKIPPED_FILES)),
              "quotations": len(quotations), "held_out_every": HELD_OUT_EVERY,
              "training_tokens": len(train_stream), "held_out_tokens": len(held_out_stream),
              "vocab_size": VOCAB, "context": CONTEXT, "batch": BATCH, "steps": args.steps, "threads": args.threads,
              "layers": args.layers, "hidden": args.hidden, "intermediate": args.intermediate, "heads": args.heads,
              "kv_heads": args.kv_heads, "tokenizer": "reused from " + args.tokenizer if args.tokenizer else "trained here",
              "held_out_loss_nats": round(held_out_loss, 4), "unigram_baseline_nats": round(baseline, 4),
              "seconds": round(time.time() - started, 1),
              "torch": torch.__version__, "transformers": __import__("transformers").__version__,
              "tokenizers": __import__("tokenizers").__version__}
    (out / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"saved {out}")


if __name__ == "__main__":
    main()
