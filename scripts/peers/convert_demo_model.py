"""Runs llama.cpp's convert_hf_to_gguf.py (Debian's llama.cpp-tools) on the demo model, whose
tokenizer.json llama.cpp does not know by its hash: the demo model's pre-tokenizer is byte-level BPE
with GPT-2's split pattern (tests/reference/train_demo_model.py), so the GGUF file is told "gpt-2".

  python3 convert_demo_model.py MODEL_DIR --outtype f32 --outfile FILE.gguf
"""
import runpy
import sys

sys.path.insert(1, "/usr/share/llama.cpp/llama.cpp-tools")
from conversion import base  # noqa: E402  (the module the script imports; patched before it runs)

base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
script = "/usr/share/doc/llama.cpp-tools/scripts/convert_hf_to_gguf.py"
sys.argv = [script] + sys.argv[1:]
runpy.run_path(script, run_name="__main__")
