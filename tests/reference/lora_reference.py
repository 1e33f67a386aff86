#!/usr/bin/env python3
"""The LoRA-augmented forward of golf-eval's LoRA TTT, computed independently of model/model.cpp.

The C++ applies each delta on the activation side, batched over rows: x -> x W^T + s (x A_b^T) B_b^T.
Here every batch row b runs through the PyTorch twin (golf_model.py) alone, with the deltas merged
into the weights of each layer visit instead — W_q, W_k, W_v, W_o -> W + s B_b A_b for that visit
only — plus the MLP's parallel adapter s (u A^T) B^T added to the MLP output and the head's added
to the logits before the softcap.

usage: lora_reference.py IN.safetensors OUT.safetensors
  IN:  weights/<name>, tokens (B, T) int64, lora/<visit>/<site>/{a,b} with a (B, r, in) and
       b (B, out, r) for site in q, k, v, o, mlp (any may be absent), lora/head/{a,b};
       metadata "config" (ENV-style keys) and "scale", "looping"
  OUT: logits (B, T, V) fp32
"""
import dataclasses
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golf_model import GolfModel, ModelConfig  # noqa: E402


class LoraTwin(GolfModel):
    def __init__(self, cfg, lora, row, scale):
        super().__init__(cfg)
        self.lora, self.row, self.scale, self.visit = lora, row, scale, 0

    def delta_weight(self, site):
        key = f"lora/{self.visit}/{site}/"
        if key + "a" not in self.lora:
            return None
        a, b = self.lora[key + "a"][self.row], self.lora[key + "b"][self.row]  # (r, in), (out, r)
        return self.scale * (b @ a)  # (out, in)

    def mixer(self, i, u, seg, pos):
        L = self.cfg.num_layers
        saved = {n: self.params[n].data.clone() for n in ("qo_bank", "kv_bank")}
        with torch.no_grad():
            for site, bank, row in (("q", "qo_bank", i), ("o", "qo_bank", L + i), ("k", "kv_bank", i), ("v", "kv_bank", L + i)):
                dw = self.delta_weight(site)
                if dw is not None:
                    self.params[bank].data[row] += dw
        try:
            return super().mixer(i, u, seg, pos)
        finally:
            with torch.no_grad():
                for n, t in saved.items():
                    self.params[n].data.copy_(t)

    def mlp(self, i, u):
        out = super().mlp(i, u)
        key = f"lora/{self.visit}/mlp/"
        if key + "a" in self.lora:
            a, b = self.lora[key + "a"][self.row], self.lora[key + "b"][self.row]
            out = out + self.scale * (u @ a.T) @ b.T
        self.visit += 1  # each visit calls mixer, then mlp
        return out

    def logits(self, tokens, looping):
        self.visit = 0
        h = self.forward_hidden(tokens, looping)
        z = h @ self.p("tok_emb.weight").T
        if "lora/head/a" in self.lora:
            a, b = self.lora["lora/head/a"][self.row], self.lora["lora/head/b"][self.row]
            z = z + self.scale * (h @ a.T) @ b.T
        cap = self.cfg.logit_softcap
        return cap * torch.tanh(z.float() / cap)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    tensors = load_file(src)
    with open(src, "rb") as f:  # the safetensors header holds the metadata
        n = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(n))["__metadata__"]
    config = json.loads(meta["config"])
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    cfg = ModelConfig(**{k.lower(): v for k, v in config.items() if k.lower() in fields})
    scale, looping = float(meta["scale"]), meta["looping"] == "1"
    tokens = tensors["tokens"]
    out = []
    with torch.no_grad():
        for row in range(tokens.shape[0]):
            model = LoraTwin(cfg, tensors, row, scale)
            for name, p in model.state().items():
                p.data.copy_(tensors[f"weights/{name}"])
            out.append(model.logits(tokens[row : row + 1], looping))
    save_file({"logits": torch.cat(out).contiguous()}, dst)


if __name__ == "__main__":
    main()
