#!/usr/bin/env bash
# Remakes tests/data/hf-reference/cases-generated.json, cases-bf16.json and the models they add
# (qwen2-tiny-close-eos, the family models, bf16/) with transformers, in a Debian sid chroot
# (torch 2.14, transformers 5.12), by running tests/reference/make_cases.py there; then reruns every case of cases.json (made with
# transformers 5.17 elsewhere) with the same script and reports any whose tokens differ.
#
#   sudo tests/reference/make-golden-cases.sh [CHROOT_DIR]     (default /srv/lmdecode-sid)
#
# Needs root and Debian's mirror (about 2 minutes to make the chroot); then about 2 minutes.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
jail="${1:-/srv/lmdecode-sid}"
"$root/scripts/sid-chroot.sh" "$jail" python3-torch python3-transformers python3-safetensors python3-numpy python3-tokenizers

data="$jail/work/hf-reference"
rm -rf "$data" && mkdir -p "$data"
cp -r "$root/tests/data/hf-reference/." "$data/"
cp "$root/tests/reference/make_cases.py" "$data/"
in_jail() {
  # One thread: the float32 kernels then sum in one order on every machine.
  chroot "$jail" env OMP_NUM_THREADS=1 bash -c "cd /work/hf-reference && /usr/bin/python3 make_cases.py --models . $*" \
    2>&1 | grep -v -e 'UCX  ERROR' -e cpuinfo
}
in_jail --out cases-generated.json
cp "$data/cases-generated.json" "$root/tests/data/hf-reference/"
for made in qwen2-tiny-close-eos llama3-tiny llama-linear-tiny qwen3-tiny mistral-tiny phi3-tiny qwen2-sliding-tiny gemma3-tiny; do  # the models make_cases.py writes
  rm -rf "$root/tests/data/hf-reference/$made"
  cp -r "$data/$made" "$root/tests/data/hf-reference/"
done
# The demo model's token texts for its stop-string cases (transformers' own, see make_cases.py).
cp "$data/fortunes-llama/token_texts.json" "$root/tests/data/hf-reference/fortunes-llama/"
# The bfloat16 copies of the models and their cases (cases-bf16.json).
in_jail --bf16 --out cases-bf16.json
cp "$data/cases-bf16.json" "$root/tests/data/hf-reference/"
rm -rf "$root/tests/data/hf-reference/bf16"
cp -r "$data/bf16" "$root/tests/data/hf-reference/"
in_jail --reproduce cases.json
