#!/usr/bin/env bash
# Trains the demo model (tests/data/hf-reference/fortunes-llama) with transformers and tokenizers in a
# Debian sid chroot, on the quotations of Debian's `fortunes` package (fortune-mod, BSD-4-clause),
# by running tests/reference/train_demo_model.py there; then copies the checkpoint into tests/data.
#
#   sudo tests/reference/train-demo-model.sh [CHROOT_DIR] [-- TRAIN_ARGS...]   (default /srv/lmdecode-sid)
#   sudo tests/reference/train-demo-model.sh --draft [CHROOT_DIR]
#
# --draft trains fortunes-llama's draft model instead (tests/data/hf-reference/fortunes-llama-draft,
# for speculative decoding): fortunes-llama's tokenizer, 1 layer, hidden 128.
# Needs root and Debian's mirror (about 2 minutes to make the chroot); training takes about 26
# minutes on 2 cores (800 steps), the draft about 5. The corpus stays in the chroot, out of git.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
name=fortunes-llama
draft_args=()
if [ "${1:-}" = --draft ]; then
  shift
  name=fortunes-llama-draft
  draft_args=(--tokenizer /work/demo-model/tokenizer --layers 1 --hidden 128 --intermediate 384 --heads 4 --kv-heads 2)
fi
jail="${1:-/srv/lmdecode-sid}"
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
# libopenblas0-pthread: without it torch runs on the reference BLAS, several times slower.
"$root/scripts/sid-chroot.sh" "$jail" python3-torch python3-transformers python3-tokenizers python3-safetensors \
  fortunes libopenblas0-pthread

work="$jail/work/demo-model"
rm -rf "$work" && mkdir -p "$work"
cp "$root/tests/reference/train_demo_model.py" "$work/train.py"
mkdir -p "$work/tokenizer" && cp "$root/tests/data/hf-reference/fortunes-llama/tokenizer.json" "$work/tokenizer/"
chroot "$jail" bash -c "cd /work/demo-model && /usr/bin/python3 train.py --corpus /usr/share/games/fortunes --out out ${draft_args[*]} $*" \
  2>&1 | { grep -v -e 'UCX  ERROR' -e cpuinfo || true; }
target="$root/tests/data/hf-reference/$name"
rm -rf "$target" && cp -r "$work/out" "$target"
echo "saved $target"
