"""Writes tests/data/gpt2-tiny-legacy.pt: the gpt2-tiny checkpoint as a TorchScript module with
Hugging Face's legacy interface,
    forward(input_ids, past_key_values: List[Tuple[Tensor, Tensor]], attention_mask, position_ids)
        -> Tuple[logits [rows, T, vocab], List[Tuple[Tensor, Tensor]]]
written from the GPT-2 equations with plain torch (no transformers), so that the C++ tests can check
our TorchScript adapter against the golden cases. Run with Debian's python3-torch:
    /usr/bin/python3 tests/reference/make_torchscript_fixture.py
"""
import json
import math
import struct
import sys
from pathlib import Path
from typing import List, Tuple

import torch

DATA = Path(__file__).resolve().parent.parent / "data"


def read_safetensors(path: Path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", name
        begin, end = info["data_offsets"]
        data = bytearray(raw[8 + n + begin:8 + n + end])
        out[name] = torch.frombuffer(data, dtype=torch.float32).reshape(info["shape"]).clone()
    return out


class Gpt2Legacy(torch.nn.Module):
    def __init__(self, weights, n_layer: int, n_head: int, eps: float):
        super().__init__()
        self.n_head = n_head
        self.eps = eps
        self.wte = torch.nn.Parameter(weights["transformer.wte.weight"], requires_grad=False)
        self.wpe = torch.nn.Parameter(weights["transformer.wpe.weight"], requires_grad=False)
        self.lnf_w = weights["transformer.ln_f.weight"]
        self.lnf_b = weights["transformer.ln_f.bias"]

        def per_layer(name: str) -> List[torch.Tensor]:
            return [weights["transformer.h." + str(i) + "." + name] for i in range(n_layer)]

        self.ln1_w, self.ln1_b = per_layer("ln_1.weight"), per_layer("ln_1.bias")
        self.ln2_w, self.ln2_b = per_layer("ln_2.weight"), per_layer("ln_2.bias")
        self.attn_w, self.attn_b = per_layer("attn.c_attn.weight"), per_layer("attn.c_attn.bias")
        self.proj_w, self.proj_b = per_layer("attn.c_proj.weight"), per_layer("attn.c_proj.bias")
        self.fc_w, self.fc_b = per_layer("mlp.c_fc.weight"), per_layer("mlp.c_fc.bias")
        self.out_w, self.out_b = per_layer("mlp.c_proj.weight"), per_layer("mlp.c_proj.bias")

    @staticmethod
    def conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return torch.addmm(bias, x.reshape(-1, x.size(-1)), weight).view(x.size(0), x.size(1), -1)

    def forward(self, input_ids: torch.Tensor, past_key_values: List[Tuple[torch.Tensor, torch.Tensor]],
                attention_mask: torch.Tensor, position_ids: torch.Tensor):
        rows, fed = input_ids.size(0), input_ids.size(1)
        e = self.wte.size(1)
        d = e // self.n_head
        cached = 0 if len(past_key_values) == 0 else past_key_values[0][0].size(2)
        causal = torch.arange(cached + fed, device=input_ids.device).unsqueeze(0) <= (
            torch.arange(fed, device=input_ids.device) + cached).unsqueeze(1)
        allowed = (attention_mask != 0)[:, None, None, :] & causal
        h = self.wte[input_ids] + self.wpe[position_ids]
        new_past: List[Tuple[torch.Tensor, torch.Tensor]] = []
        for i in range(len(self.ln1_w)):
            x = torch.nn.functional.layer_norm(h, [e], self.ln1_w[i], self.ln1_b[i], self.eps)
            q, k, v = self.conv1d(x, self.attn_w[i], self.attn_b[i]).split(e, dim=2)
            q = q.reshape(rows, fed, self.n_head, d).transpose(1, 2)
            k = k.reshape(rows, fed, self.n_head, d).transpose(1, 2)
            v = v.reshape(rows, fed, self.n_head, d).transpose(1, 2)
            if cached > 0:
                k = torch.cat([past_key_values[i][0], k], dim=2)
                v = torch.cat([past_key_values[i][1], v], dim=2)
            new_past.append((k, v))
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d)
            scores = scores.masked_fill(~allowed, -3.4028234663852886e38)
            a = torch.matmul(scores.softmax(-1), v).transpose(1, 2).reshape(rows, fed, e)
            h = self.conv1d(a, self.proj_w[i], self.proj_b[i]) + h
            x = torch.nn.functional.layer_norm(h, [e], self.ln2_w[i], self.ln2_b[i], self.eps)
            m = self.conv1d(x, self.fc_w[i], self.fc_b[i])
            m = 0.5 * m * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (m + 0.044715 * torch.pow(m, 3.0))))
            h = h + self.conv1d(m, self.out_w[i], self.out_b[i])
        h = torch.nn.functional.layer_norm(h, [e], self.lnf_w, self.lnf_b, self.eps)
        return torch.matmul(h, self.wte.t()), new_past


def main() -> int:
    folder = DATA / "hf-reference" / "gpt2-tiny"
    config = json.loads((folder / "config.json").read_text())
    module = Gpt2Legacy(read_safetensors(folder / "model.safetensors"), config["n_layer"], config["n_head"],
                        config["layer_norm_epsilon"])
    torch.jit.script(module).save(str(DATA / "gpt2-tiny-legacy.pt"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
