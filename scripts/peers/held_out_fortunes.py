"""Writes the demo model's held-out text: the fortunes quotations its trainer left out (every 20th,
tests/reference/train_demo_model.py), one after another with fortune's own "%" lines between them.
For lmdecode-perplexity and llama-perplexity on the same text.

  python3 held_out_fortunes.py CORPUS_DIR OUT_FILE      (CORPUS_DIR: /usr/share/games/fortunes)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "reference"))
from train_demo_model import HELD_OUT_EVERY, read_quotations  # noqa: E402

held_out = read_quotations(sys.argv[1])[::HELD_OUT_EVERY]
Path(sys.argv[2]).write_text("\n%\n".join(held_out) + "\n", encoding="utf-8")
print(f"{len(held_out)} quotations, {sum(len(q) for q in held_out)} characters written to {sys.argv[2]}")
