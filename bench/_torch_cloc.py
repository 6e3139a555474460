#!/usr/bin/python3
"""PyTorch CPU peer for `deno task bench`: the CLOC model of spec/model.md and its training step.

Reads a reference-bundle-shaped safetensors file written by cli/bench.ts (the parameters under their
OpenCLIP names, the batch as `input.*`, the config JSON in `__metadata__.config`), so it starts from the
same parameters and batch as clocgpu and tfjs. Prints one JSON line:

    {"loss0": {...}, "ms_per_step": ..., "steps_per_s": ..., "images_per_s": ..., "torch": "...", "threads": 2}

The model is written the plain way, in float32: the Prompter's block runs over the full sequence
[prompt tokens, image tokens] of every prompt, and (like clocgpu and the tfjs peer) the text tower runs
only the positions up to the batch's longest caption. AdamW is torch.optim.AdamW with decay on the
parameters of 2+ dims, then logit_scale is clamped to [0, logit_scale_max].

    /usr/bin/python3 bench/_torch_cloc.py FILE.safetensors [--steps 5] [--warmup 1] [--threads 2]
"""

import argparse
import json
import math
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    """Returns ({name: tensor}, metadata) for the F32 and I32 tensors of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", {})
    base = 8 + n
    dtypes = {"F32": np.float32, "I32": np.int32}
    tensors = {}
    for name, entry in header.items():
        start, end = entry["data_offsets"]
        array = np.frombuffer(data[base + start:base + end], dtype=dtypes[entry["dtype"]])
        tensors[name] = torch.from_numpy(array.reshape(entry["shape"]).copy())
    return tensors, metadata


class Cloc:
    """The forward pass and losses over a dict of parameters `p` (OpenCLIP names)."""

    def __init__(self, config, params):
        self.c = config
        self.p = params
        self.act = F.gelu if config["act"] == "gelu" else (lambda x: x * torch.sigmoid(1.702 * x))

    def linear(self, x, prefix, weight=".weight", bias=".bias"):
        return F.linear(x, self.p[prefix + weight], self.p[prefix + bias])

    def ln(self, x, prefix):
        return F.layer_norm(x, x.shape[-1:], self.p[prefix + ".weight"], self.p[prefix + ".bias"], 1e-5)

    def attention(self, x, prefix, heads, mask=None):
        n, t, w = x.shape
        d = w // heads
        qkv = self.linear(x, prefix, ".in_proj_weight", ".in_proj_bias")
        q, k, v = qkv.view(n, t, 3, heads, d).permute(2, 0, 3, 1, 4)  # each [n, H, T, d]
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)
        if mask is not None:
            scores = scores + mask
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, t, w)
        return self.linear(out, prefix + ".out_proj")

    def block(self, x, prefix, heads, mask=None):
        x = x + self.attention(self.ln(x, prefix + ".ln_1"), prefix + ".attn", heads, mask)
        h = self.act(self.linear(self.ln(x, prefix + ".ln_2"), prefix + ".mlp.c_fc"))
        return x + self.linear(h, prefix + ".mlp.c_proj")

    def image_tokens(self, images):
        v = self.c["vision"]
        b, s, p, w = images.shape[0], v["image_size"], v["patch_size"], v["width"]
        g = s // p
        patches = images.view(b, 3, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, 3 * p * p)
        x = patches @ self.p["visual.conv1.weight"].view(w, -1).t()
        cls = self.p["visual.class_embedding"].view(1, 1, w).expand(b, 1, w)
        x = self.ln(torch.cat([cls, x], 1) + self.p["visual.positional_embedding"], "visual.ln_pre")
        for i in range(v["layers"]):
            x = self.block(x, f"visual.transformer.resblocks.{i}", v["heads"])
        return x

    def text_features(self, tokens):
        t = self.c["text"]
        n, ctx = tokens.shape
        is_eot = tokens == t["eot_token_id"]
        pooled = torch.where(is_eot.any(1), is_eot.int().argmax(1), torch.full((n,), ctx - 1))
        length = int(pooled.max()) + 1  # positions past the last EOT cannot reach a pooled row
        mask = torch.full((length, length), -math.inf).triu(1)
        x = self.p["token_embedding.weight"][tokens[:, :length]] + self.p["positional_embedding"][:length]
        for i in range(t["layers"]):
            x = self.block(x, f"transformer.resblocks.{i}", t["heads"], mask)
        rows = x[torch.arange(n), pooled]
        return self.ln(rows, "ln_final") @ self.p["text_projection"]

    def prompter_block(self, prompts, image):
        """block([prompts, T_img]) over the full sequence, read at the prompt positions."""
        out = self.block(torch.cat([prompts, image], 1), "prompter.block", self.c["prompter"]["heads"])
        return out[:, :prompts.shape[1]]

    def losses(self, batch, sine_code):
        b, m = batch["input.region_valid"].shape
        e = self.c["embed_dim"]
        tokens = self.image_tokens(batch["input.images"])
        image = self.ln(tokens[:, 0], "visual.ln_post") @ self.p["visual.proj"]
        text = self.text_features(batch["input.text"])
        region_text = F.normalize(self.text_features(batch["input.region_text"].view(b * m, -1)), dim=-1)
        per_slot = tokens.repeat_interleave(m, 0)  # [B*M, N, W]
        prompts = sine_code + self.p["prompter.corner_embed"]
        region = self.ln(self.prompter_block(prompts, per_slot).mean(1), "prompter.ln_post") @ self.p["prompter.proj"]
        prompt = self.linear(region_text, "prompter.text_in").unsqueeze(1)
        h = self.ln(self.prompter_block(prompt, per_slot)[:, 0], "prompter.ln_post")
        boxes = torch.sigmoid(self.linear(self.act(self.linear(h, "prompter.box_head.fc1")), "prompter.box_head.fc2"))

        loss_cfg = self.c["loss"]
        scale = self.p["logit_scale"].clamp(max=loss_cfg["logit_scale_max"]).exp()

        def symmetric_ce(logits):
            target = torch.arange(logits.shape[0])
            return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2

        clip = symmetric_ce(scale * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).t())
        valid = batch["input.region_valid"].view(-1) != 0
        z = F.normalize(region[valid], dim=-1)
        y = region_text[valid]
        with torch.no_grad():
            similar = (y @ y.t() > loss_cfg["text_filter_threshold"]) & ~torch.eye(len(y), dtype=torch.bool)
        cloc = symmetric_ce((scale * z @ y.t()).masked_fill(similar, -math.inf))
        ground = F.mse_loss(boxes[valid], batch["input.region_boxes"].view(-1, 4)[valid])
        weight = loss_cfg["region_weight"] * float((batch["input.region_valid"] != 0).any(1).sum()) / b
        return {"loss": clip + weight * (cloc + ground), "clip": clip, "cloc": cloc, "ground": ground}


def box_sine_code(boxes, width):
    """The DETR sine code of each box's two corners: [n, 4] -> [n, 2, W] (spec "Box prompt")."""
    half = width // 2
    k = torch.arange(half)
    t = 10000.0 ** (2 * (k // 2) / half)
    corners = boxes.view(-1, 2, 2)  # [n, corner, (x, y)]
    angle = 2 * math.pi * corners.unsqueeze(-1) / t  # [n, 2, 2, half]
    code = torch.where(k % 2 == 0, angle.sin(), angle.cos())
    return code.reshape(-1, 2, width)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", help="safetensors file with parameters, input.* and __metadata__.config")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    tensors, metadata = read_safetensors(args.bundle)
    config = json.loads(metadata["config"])
    batch = {k: v for k, v in tensors.items() if k.startswith("input.")}
    batch["input.text"] = batch["input.text"].long()
    batch["input.region_text"] = batch["input.region_text"].long()
    params = {k: v.requires_grad_() for k, v in tensors.items() if not k.startswith("input.")}
    model = Cloc(config, params)
    sine_code = box_sine_code(batch["input.region_boxes"].view(-1, 4), config["vision"]["width"])

    with torch.no_grad():
        loss0 = {k: float(v) for k, v in model.losses(batch, sine_code).items()}

    decayed = [p for p in params.values() if p.dim() >= 2]
    plain = [p for p in params.values() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decayed, "weight_decay": 0.2}, {"params": plain, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.98), eps=1e-6,
    )

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model.losses(batch, sine_code)["loss"]
        loss.backward()
        opt.step()
        with torch.no_grad():
            params["logit_scale"].clamp_(0, config["loss"]["logit_scale_max"])
        return loss

    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - t0) / args.steps
    b = batch["input.images"].shape[0]
    json.dump({
        "loss0": loss0,
        "ms_per_step": seconds * 1e3,
        "steps_per_s": 1 / seconds,
        "images_per_s": b / seconds,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }, sys.stdout)
    print()


if __name__ == "__main__":
    main()
