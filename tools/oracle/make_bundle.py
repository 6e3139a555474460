#!/usr/bin/python3
"""Independent PyTorch reference ("oracle") for the CLOC model of shared/spec/model.md.

Writes a reference bundle (safetensors, format "pt") holding the parameters under their OpenCLIP names,
the batch (`input.*`), the forward results and losses (`expect.*`), the gradient of the total loss
(`grad.<name>`) and every parameter after one torch.optim.AdamW step (`step.<name>`).

Written from the spec only (not from the TypeScript model). Everything is evaluated in float64 from
float32-rounded parameters and inputs; tensors are stored as float32 (token ids as int32).

Run with Debian's PyTorch: /usr/bin/python3 tools/oracle/make_bundle.py --help
"""

import argparse
import copy
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

LN_EPS = 1e-5
NORM_EPS = 1e-12
LN100 = math.log(100.0)
DT = torch.float64  # compute dtype of the model; --dtype float32 switches it for cross-checks

DEFAULT_CONFIG = {
    "embed_dim": 24,
    "act": "gelu",
    "vision": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "heads": 2, "mlp_ratio": 4},
    "text": {"vocab_size": 64, "context_length": 8, "width": 32, "layers": 2, "heads": 2, "mlp_ratio": 4,
             "eot_token_id": 63},
    "prompter": {"heads": 1, "mlp_ratio": 4},
    "loss": {"region_weight": 1.0, "text_filter_threshold": 0.9, "logit_scale_max": LN100},
}
# key order of the config JSON as written into __metadata__.config (same as the spec / tiny bundle)
CONFIG_ORDER = {
    None: ["embed_dim", "act", "vision", "text", "prompter", "loss"],
    "vision": ["image_size", "patch_size", "width", "layers", "heads", "mlp_ratio"],
    "text": ["vocab_size", "context_length", "width", "layers", "heads", "mlp_ratio", "eot_token_id"],
    "prompter": ["heads", "mlp_ratio"],
    "loss": ["region_weight", "text_filter_threshold", "logit_scale_max"],
}


def ordered_config(cfg):
    out = {}
    for k in CONFIG_ORDER[None]:
        v = cfg[k]
        if isinstance(v, dict):
            sub = {kk: v[kk] for kk in CONFIG_ORDER[k]}
            for kk in v:  # keep unknown keys (none expected) at the end
                if kk not in sub:
                    sub[kk] = v[kk]
            v = sub
        out[k] = v
    for k in cfg:
        if k not in out:
            out[k] = cfg[k]
    return out


def merge_config(base, over):
    cfg = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k].update(v)
        else:
            cfg[k] = v
    return cfg


def optimizer_meta(cfg):
    return {
        "type": "AdamW", "lr": 0.001, "betas": [0.9, 0.98], "eps": 1e-06, "weight_decay": 0.2,
        "weight_decay_applies_to": "parameters with ndim >= 2", "bias_correction": True, "steps": 1,
        "logit_scale_clamp_after_step": [0.0, cfg["loss"]["logit_scale_max"]],
    }


# ----------------------------------------------------------------------------------------------------
# safetensors I/O (struct + json; no safetensors package)

DTYPES = {"F32": np.float32, "I32": np.int32, "F64": np.float64, "I64": np.int64}
DTYPE_NAMES = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32"}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        tensors[name] = arr.copy()
    return tensors, meta


def write_safetensors(path, tensors, meta):
    header = {"__metadata__": meta}
    blobs = []
    off = 0
    for name in sorted(tensors):
        arr = np.array(tensors[name], order="C", copy=True)  # (np.ascontiguousarray would make 0-dim 1-dim)
        if arr.dtype not in DTYPE_NAMES:
            raise ValueError(f"{name}: unsupported dtype {arr.dtype}")
        raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": DTYPE_NAMES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for raw in blobs:
            f.write(raw)


# ----------------------------------------------------------------------------------------------------
# parameters

def block_shapes(prefix, w, ratio):
    r = ratio * w
    return [
        (f"{prefix}.ln_1.weight", [w], "ln_w"), (f"{prefix}.ln_1.bias", [w], "ln_b"),
        (f"{prefix}.attn.in_proj_weight", [3 * w, w], "lin"), (f"{prefix}.attn.in_proj_bias", [3 * w], "qkv_b"),
        (f"{prefix}.attn.out_proj.weight", [w, w], "lin"), (f"{prefix}.attn.out_proj.bias", [w], "bias"),
        (f"{prefix}.ln_2.weight", [w], "ln_w"), (f"{prefix}.ln_2.bias", [w], "ln_b"),
        (f"{prefix}.mlp.c_fc.weight", [r, w], "lin"), (f"{prefix}.mlp.c_fc.bias", [r], "bias"),
        (f"{prefix}.mlp.c_proj.weight", [w, r], "lin"), (f"{prefix}.mlp.c_proj.bias", [w], "bias"),
    ]


def param_shapes(cfg):
    v, t, pr = cfg["vision"], cfg["text"], cfg["prompter"]
    W, V, E = v["width"], t["width"], cfg["embed_dim"]
    p, g = v["patch_size"], v["image_size"] // v["patch_size"]
    out = [
        ("visual.conv1.weight", [W, 3, p, p], "lin"),
        ("visual.class_embedding", [W], "emb"),
        ("visual.positional_embedding", [1 + g * g, W], "emb"),
        ("visual.ln_pre.weight", [W], "ln_w"), ("visual.ln_pre.bias", [W], "ln_b"),
    ]
    for i in range(v["layers"]):
        out += block_shapes(f"visual.transformer.resblocks.{i}", W, v["mlp_ratio"])
    out += [("visual.ln_post.weight", [W], "ln_w"), ("visual.ln_post.bias", [W], "ln_b"),
            ("visual.proj", [W, E], "proj")]
    out += [("token_embedding.weight", [t["vocab_size"], V], "tok"),
            ("positional_embedding", [t["context_length"], V], "emb")]
    for i in range(t["layers"]):
        out += block_shapes(f"transformer.resblocks.{i}", V, t["mlp_ratio"])
    out += [("ln_final.weight", [V], "ln_w"), ("ln_final.bias", [V], "ln_b"),
            ("text_projection", [V, E], "proj"), ("logit_scale", [], "logit_scale")]
    out += [("prompter.corner_embed", [2, W], "emb"),
            ("prompter.text_in.weight", [W, E], "lin"), ("prompter.text_in.bias", [W], "bias")]
    out += block_shapes("prompter.block", W, pr["mlp_ratio"])
    out += [("prompter.ln_post.weight", [W], "ln_w"), ("prompter.ln_post.bias", [W], "ln_b"),
            ("prompter.proj", [W, E], "proj"),
            ("prompter.box_head.fc1.weight", [W, W], "lin"), ("prompter.box_head.fc1.bias", [W], "bias"),
            ("prompter.box_head.fc2.weight", [4, W], "lin"), ("prompter.box_head.fc2.bias", [4], "bias")]
    return out


def init_params(cfg, gen, logit_scale):
    """Random normal init with stds chosen so activations are O(1) and the losses non-trivial."""
    params = {}
    for name, shape, kind in param_shapes(cfg):
        z = torch.randn(shape, generator=gen, dtype=torch.float64)
        if kind == "lin":  # [out, in, ...]: std 1/sqrt(fan_in)
            fan_in = int(np.prod(shape[1:]))
            x = z / math.sqrt(fan_in)
        elif kind == "proj":  # [in, out] used as x @ proj
            x = z / math.sqrt(shape[0])
        elif kind == "ln_w":
            x = 1.0 + 0.1 * z
        elif kind == "ln_b":
            x = 0.05 * z
        elif kind == "bias":
            x = 0.2 * z
        elif kind == "qkv_b":
            # max |in_proj_bias| should exceed 1.25: the key-bias gradient is rounding noise (see the
            # WARNING in main) and AdamW can turn that into a step of up to lr
            x = 0.7 * z
        elif kind == "emb":
            x = 0.02 * z
        elif kind == "tok":  # larger than OpenCLIP's 0.02 so that captions give clearly different features
            x = 0.3 * z
        elif kind == "logit_scale":
            x = torch.tensor(logit_scale, dtype=torch.float64)
        else:
            raise AssertionError(kind)
        params[name] = x.float().double()  # round to float32
    return params


# ----------------------------------------------------------------------------------------------------
# model (functional, float64)

def act_fn(name):
    if name == "gelu":
        return lambda x: F.gelu(x)  # exact (erf)
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    raise ValueError(f"unknown act {name}")


def layer_norm(x, P, prefix):
    return F.layer_norm(x, (x.shape[-1],), P[prefix + ".weight"], P[prefix + ".bias"], LN_EPS)


def linear(x, P, prefix):
    return x @ P[prefix + ".weight"].t() + P[prefix + ".bias"]


def mha(x, P, prefix, heads, mask):
    n, L, w = x.shape
    d = w // heads
    qkv = x @ P[prefix + ".in_proj_weight"].t() + P[prefix + ".in_proj_bias"]
    q, k, v = qkv[..., :w], qkv[..., w:2 * w], qkv[..., 2 * w:]
    q = q.reshape(n, L, heads, d).transpose(1, 2)
    k = k.reshape(n, L, heads, d).transpose(1, 2)
    v = v.reshape(n, L, heads, d).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / math.sqrt(d)
    if mask is not None:
        s = s + mask
    a = torch.softmax(s, dim=-1)
    o = (a @ v).transpose(1, 2).reshape(n, L, w)
    return linear(o, P, prefix + ".out_proj")


def resblock(x, P, prefix, heads, act, mask=None):
    x = x + mha(layer_norm(x, P, prefix + ".ln_1"), P, prefix + ".attn", heads, mask)
    h = layer_norm(x, P, prefix + ".ln_2")
    x = x + linear(act(linear(h, P, prefix + ".mlp.c_fc")), P, prefix + ".mlp.c_proj")
    return x


def image_tower(images, P, cfg, act):
    v = cfg["vision"]
    p = v["patch_size"]
    B = images.shape[0]
    x = F.conv2d(images, P["visual.conv1.weight"], stride=p)  # [B, W, g, g]
    x = x.flatten(2).transpose(1, 2)  # [B, g*g, W], patches row-major
    cls = P["visual.class_embedding"].reshape(1, 1, -1).expand(B, 1, -1)
    x = torch.cat([cls, x], dim=1) + P["visual.positional_embedding"]
    x = layer_norm(x, P, "visual.ln_pre")
    for i in range(v["layers"]):
        x = resblock(x, P, f"visual.transformer.resblocks.{i}", v["heads"], act)
    t_img = x
    feats = layer_norm(t_img[:, 0], P, "visual.ln_post") @ P["visual.proj"]
    return feats, t_img


def eot_positions(tokens, eot):
    """First position holding eot, the last position if there is none."""
    tokens = tokens.reshape(-1, tokens.shape[-1])
    ctx = tokens.shape[-1]
    pos = []
    for row in tokens.tolist():
        pos.append(row.index(eot) if eot in row else ctx - 1)
    return torch.tensor(pos, dtype=torch.long)


def text_tower(tokens, P, cfg, act):
    t = cfg["text"]
    lead = tokens.shape[:-1]
    tok = tokens.reshape(-1, tokens.shape[-1]).long()
    n, ctx = tok.shape
    x = P["token_embedding.weight"][tok] + P["positional_embedding"]
    mask = torch.full((ctx, ctx), float("-inf"), dtype=DT).triu(1)  # j > i masked
    for i in range(t["layers"]):
        x = resblock(x, P, f"transformer.resblocks.{i}", t["heads"], act, mask)
    x = layer_norm(x, P, "ln_final")
    pos = eot_positions(tok, t["eot_token_id"])
    pooled = x[torch.arange(n), pos]
    feats = pooled @ P["text_projection"]
    return feats.reshape(*lead, -1)


def sine_code(v, width):
    """e(v): [..., width/2] DETR-style sine code of a coordinate in [0, 1]."""
    h = width // 2
    k = torch.arange(h, dtype=DT)
    t = 10000.0 ** (2.0 * torch.floor(k / 2.0) / h)
    arg = 2.0 * math.pi * v.unsqueeze(-1) / t
    even = (torch.arange(h) % 2) == 0
    return torch.where(even, torch.sin(arg), torch.cos(arg))


def corner_code(x, y, width):
    return torch.cat([sine_code(x, width), sine_code(y, width)], dim=-1)


def l2norm(x):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(NORM_EPS)


def forward(P, inputs, cfg):
    act = act_fn(cfg["act"])
    W = cfg["vision"]["width"]
    ph = cfg["prompter"]["heads"]
    images, text = inputs["images"], inputs["text"]
    boxes, rtext, valid = inputs["region_boxes"], inputs["region_text"], inputs["region_valid"]
    B, M = boxes.shape[:2]

    image_features, t_img = image_tower(images, P, cfg, act)
    text_features = text_tower(text, P, cfg, act)
    L = t_img.shape[1]
    t_rep = t_img.unsqueeze(1).expand(B, M, L, W).reshape(B * M, L, W)

    # box prompt -> region embedding
    tl = corner_code(boxes[..., 0], boxes[..., 1], W) + P["prompter.corner_embed"][0]
    br = corner_code(boxes[..., 2], boxes[..., 3], W) + P["prompter.corner_embed"][1]
    prompts = torch.stack([tl, br], dim=2).reshape(B * M, 2, W)
    seq = torch.cat([prompts, t_rep], dim=1)
    out = resblock(seq, P, "prompter.block", ph, act)
    h = out[:, 0:2].mean(dim=1)
    region_features = (layer_norm(h, P, "prompter.ln_post") @ P["prompter.proj"]).reshape(B, M, -1)

    # text prompt -> box head
    region_text_embeds = l2norm(text_tower(rtext, P, cfg, act))  # [B, M, E]
    tok = linear(region_text_embeds, P, "prompter.text_in").reshape(B * M, 1, W)
    seq = torch.cat([tok, t_rep], dim=1)
    out = resblock(seq, P, "prompter.block", ph, act)
    h = layer_norm(out[:, 0], P, "prompter.ln_post")
    h = linear(act(linear(h, P, "prompter.box_head.fc1")), P, "prompter.box_head.fc2")
    pred_boxes = torch.sigmoid(h).reshape(B, M, 4)

    return {
        "image_embeds": image_features, "text_embeds": text_features, "region_embeds": region_features,
        "region_text_embeds": region_text_embeds, "pred_boxes": pred_boxes,
    }


def ce(logits):
    n = logits.shape[0]
    return -torch.log_softmax(logits, dim=-1)[torch.arange(n), torch.arange(n)].mean()


def losses(P, out, inputs, cfg):
    lc = cfg["loss"]
    scale = torch.exp(torch.clamp(P["logit_scale"], max=lc["logit_scale_max"]))
    I, T = l2norm(out["image_embeds"]), l2norm(out["text_embeds"])
    logits = scale * I @ T.t()
    loss_clip = (ce(logits) + ce(logits.t())) / 2

    valid = inputs["region_valid"] > 0.5
    B, M = valid.shape
    flat = valid.reshape(-1)
    R = int(flat.sum())
    info = {"R": R, "masked": 0, "offdiag": R * (R - 1)}
    zero = torch.zeros((), dtype=DT)
    if R == 0:
        loss_cloc, loss_ground = zero, zero
    else:
        E = out["region_embeds"].shape[-1]
        Z = l2norm(out["region_embeds"]).reshape(-1, E)[flat]
        Y = out["region_text_embeds"].reshape(-1, E)[flat]
        Lr = scale * Z @ Y.t()
        with torch.no_grad():
            S = Y @ Y.t()
            off = ~torch.eye(R, dtype=torch.bool)
            fmask = (S > lc["text_filter_threshold"]) & off
        info["masked"] = int(fmask.sum())
        info["filter_margin"] = float((S[off] - lc["text_filter_threshold"]).abs().min()) if R > 1 else None
        Lr = Lr.masked_fill(fmask, float("-inf"))
        loss_cloc = (ce(Lr) + ce(Lr.t())) / 2
        pb = out["pred_boxes"].reshape(-1, 4)[flat]
        gt = inputs["region_boxes"].reshape(-1, 4)[flat]
        loss_ground = ((pb - gt) ** 2).mean()
    n_img = int(valid.any(dim=1).sum())
    lam = lc["region_weight"] * n_img / B
    info["lambda"] = lam
    loss = loss_clip + lam * (loss_cloc + loss_ground)
    return {"loss_clip": loss_clip, "loss_cloc": loss_cloc, "loss_ground": loss_ground, "loss": loss}, info


def adamw_step(params, grads, cfg):
    opt_meta = optimizer_meta(cfg)
    names = list(params)
    leaves = {n: params[n].detach().clone().requires_grad_(False) for n in names}
    for n in names:
        leaves[n].grad = grads[n].detach().clone()
    decay = [leaves[n] for n in names if leaves[n].ndim >= 2]
    no_decay = [leaves[n] for n in names if leaves[n].ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": opt_meta["weight_decay"]},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=opt_meta["lr"], betas=tuple(opt_meta["betas"]), eps=opt_meta["eps"])
    opt.step()
    lo, hi = opt_meta["logit_scale_clamp_after_step"]
    with torch.no_grad():
        leaves["logit_scale"].clamp_(lo, hi)
    return leaves


def run(params, inputs, cfg):
    P = {n: p.detach().to(DT).clone().requires_grad_(True) for n, p in params.items()}
    inputs = {k: (v.to(DT) if v.is_floating_point() else v) for k, v in inputs.items()}
    out = forward(P, inputs, cfg)
    L, info = losses(P, out, inputs, cfg)
    names = list(P)
    gs = torch.autograd.grad(L["loss"], [P[n] for n in names], allow_unused=True)
    grads = {n: (g if g is not None else torch.zeros_like(P[n])).detach() for n, g in zip(names, gs)}
    stepped = adamw_step({n: p.detach().to(DT) for n, p in params.items()}, grads, cfg)
    return out, L, grads, stepped, info


# ----------------------------------------------------------------------------------------------------
# inputs

def parse_slot(s, two=True):
    parts = [int(x) for x in s.split(",")]
    if two and len(parts) != 2 or not two and len(parts) != 1:
        raise argparse.ArgumentTypeError(f"bad slot {s!r}")
    return tuple(parts)


def make_valid(pattern, B, M, gen):
    if pattern == "all":
        return torch.ones(B, M, dtype=torch.float64)
    if pattern == "none":
        return torch.zeros(B, M, dtype=torch.float64)
    if pattern == "some":
        if B * M < 3:
            raise SystemExit("--valid some needs B*M >= 3")
        while True:
            v = (torch.rand(B, M, generator=gen, dtype=torch.float64) < 0.5).double()
            R = int(v.sum())
            if 2 <= R < B * M:
                return v
    if pattern == "one-empty-image":
        # one image (chosen at random, not the first/last when possible) has no valid region; every
        # other image has exactly one valid slot, so R = B - 1 is small
        if B < 2:
            raise SystemExit("--valid one-empty-image needs B >= 2")
        v = torch.zeros(B, M, dtype=torch.float64)
        empty = int(torch.randint(1, B - 1, (1,), generator=gen)) if B >= 3 else 0
        for b in range(B):
            if b != empty:
                v[b, int(torch.randint(0, M, (1,), generator=gen))] = 1.0
        return v
    # literal pattern: rows separated by ',' or ';', e.g. "010,000,110"
    rows = [r for r in pattern.replace(";", ",").split(",") if r]
    if len(rows) != B or any(len(r) != M or set(r) - {"0", "1"} for r in rows):
        raise SystemExit(f"--valid {pattern!r}: expected all|none|some|one-empty-image or {B} rows of {M} 0/1")
    return torch.tensor([[float(c) for c in r] for r in rows], dtype=torch.float64)


def random_caption(ctx, vocab, eot, gen, n_eot=1):
    """Random ids in [0, vocab) other than eot, with n_eot EOTs at random distinct positions."""
    ids = torch.randint(0, vocab - 1, (ctx,), generator=gen)
    ids = torch.where(ids >= eot, ids + 1, ids)
    if n_eot:
        pos = torch.randperm(ctx, generator=gen)[:n_eot].sort().values
        ids[pos] = eot
    return ids


def make_inputs(cfg, args, gen, notes):
    B, M = args.batch, args.regions
    v, t = cfg["vision"], cfg["text"]
    S, ctx, vocab, eot = v["image_size"], t["context_length"], t["vocab_size"], t["eot_token_id"]
    images = torch.randn(B, 3, S, S, generator=gen, dtype=torch.float64)
    text = torch.stack([random_caption(ctx, vocab, eot, gen) for _ in range(B)])
    rtext = torch.stack([torch.stack([random_caption(ctx, vocab, eot, gen) for _ in range(M)])
                         for _ in range(B)])
    u = torch.rand(B, M, 2, 2, generator=gen, dtype=torch.float64)
    lo, hi = u.min(dim=-1).values, u.max(dim=-1).values  # [B, M, 2(x,y)]
    boxes = torch.stack([lo[..., 0], lo[..., 1], hi[..., 0], hi[..., 1]], dim=-1)
    valid = make_valid(args.valid, B, M, gen)

    # duplicate region captions (exercise the text filter)
    dups = list(args.dup)
    if args.duplicates:
        slots = [(b, m) for b in range(B) for m in range(M) if valid[b, m] > 0.5]
        if len(slots) < 2:
            slots = [(b, m) for b in range(B) for m in range(M)]
        for _ in range(args.duplicates):
            i, j = torch.randperm(len(slots), generator=gen)[:2].tolist()
            dups.append((slots[i], slots[j]))
    for src, dst in dups:
        rtext[dst] = rtext[src]
    for src, dst in dups:
        notes.append(f"region caption {dst} duplicates {src}")

    for b in args.no_eot_text:
        text[b] = random_caption(ctx, vocab, eot, gen, n_eot=0)
        notes.append(f"no EOT in caption {b}")
    for b in args.two_eot_text:
        text[b] = random_caption(ctx, vocab, eot, gen, n_eot=2)
        p = (text[b] == eot).nonzero().flatten().tolist()
        notes.append(f"EOTs at positions {p[0]} and {p[1]} of caption {b}")
    for s in args.no_eot_region:
        rtext[s] = random_caption(ctx, vocab, eot, gen, n_eot=0)
        notes.append(f"no EOT in region caption {s}")
    for s in args.two_eot_region:
        rtext[s] = random_caption(ctx, vocab, eot, gen, n_eot=2)
        p = (rtext[s] == eot).nonzero().flatten().tolist()
        notes.append(f"EOTs at positions {p[0]} and {p[1]} of region caption {s}")

    return {
        "images": images.float().double(), "text": text.int(), "region_boxes": boxes.float().double(),
        "region_text": rtext.int(), "region_valid": valid,
    }


# ----------------------------------------------------------------------------------------------------
# main

def rel_err(a, ref):
    a = np.asarray(a, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    err = float(np.max(np.abs(a - ref))) if a.size else 0.0
    m = float(np.max(np.abs(ref))) if ref.size else 0.0
    return err / m if m > 0 else err


def f32(x):
    return x.detach().to(torch.float32).numpy()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="config JSON (a file path or a JSON string); merged over the spec's "
                    "default config, section by section")
    ap.add_argument("--batch", type=int, default=4, help="B")
    ap.add_argument("--regions", type=int, default=3, help="M (box slots per image)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--valid", default="some",
                    help="all | none | some | one-empty-image | a literal like 010,110 (B rows of M)")
    ap.add_argument("--logit-scale", type=float, default=math.log(1 / 0.07),
                    help="initial logit_scale (default ln(1/0.07)); above ln 100 exercises the clamp")
    ap.add_argument("--duplicates", type=int, default=0,
                    help="number of random duplicate region captions among valid slots")
    ap.add_argument("--dup", action="append", default=[], type=lambda s: tuple(parse_slot(x) for x in
                    s.split(":")), metavar="B,M:B2,M2", help="copy region caption (B,M) into (B2,M2)")
    ap.add_argument("--no-eot-region", action="append", default=[], type=parse_slot, metavar="B,M")
    ap.add_argument("--two-eot-region", action="append", default=[], type=parse_slot, metavar="B,M")
    ap.add_argument("--no-eot-text", action="append", default=[], type=int, metavar="B")
    ap.add_argument("--two-eot-text", action="append", default=[], type=int, metavar="B")
    ap.add_argument("--from-bundle", help="take config, parameters and inputs from an existing bundle")
    ap.add_argument("--check", action="store_true",
                    help="with --from-bundle: compare every expect/grad/step tensor with that bundle")
    ap.add_argument("--tol", type=float, default=4e-5, help="relative tolerance for --check")
    ap.add_argument("--out", help="output .safetensors")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                    help="compute dtype (bundles are made in float64; float32 is for cross-checks with --check)")
    args = ap.parse_args(argv)
    global DT
    DT = torch.float64 if args.dtype == "float64" else torch.float32
    torch.set_default_dtype(torch.float64)
    if args.out and DT != torch.float64:
        raise SystemExit("bundles are written from float64 runs only")

    notes = []
    if args.from_bundle:
        tens, meta = read_safetensors(args.from_bundle)
        cfg = json.loads(meta["config"])
        if args.config:
            cfg = merge_config(cfg, load_json(args.config))
        names = [n for n, _, _ in param_shapes(cfg)]
        params = {n: torch.from_numpy(tens[n].astype(np.float64)) for n in names}
        inputs = {
            "images": torch.from_numpy(tens["input.images"].astype(np.float64)),
            "text": torch.from_numpy(tens["input.text"]),
            "region_boxes": torch.from_numpy(tens["input.region_boxes"].astype(np.float64)),
            "region_text": torch.from_numpy(tens["input.region_text"]),
            "region_valid": torch.from_numpy(tens["input.region_valid"].astype(np.float64)),
        }
        B, M = inputs["region_boxes"].shape[:2]
        source = f"parameters and inputs taken from {os.path.basename(args.from_bundle)}"
    else:
        cfg = merge_config(DEFAULT_CONFIG, load_json(args.config) if args.config else {})
        check_config(cfg)
        gen = torch.Generator().manual_seed(args.seed)
        params = init_params(cfg, gen, args.logit_scale)
        inputs = make_inputs(cfg, args, gen, notes)
        B, M = args.batch, args.regions
        source = f"parameters and inputs drawn with seed {args.seed} and rounded to float32"
    cfg = ordered_config(cfg)

    out, L, grads, stepped, info = run(params, inputs, cfg)

    tensors = {}
    for n, p in params.items():
        tensors[n] = f32(p)
        tensors["grad." + n] = f32(grads[n])
        tensors["step." + n] = f32(stepped[n])
    tensors["input.images"] = f32(inputs["images"])
    tensors["input.text"] = inputs["text"].to(torch.int32).numpy()
    tensors["input.region_boxes"] = f32(inputs["region_boxes"])
    tensors["input.region_text"] = inputs["region_text"].to(torch.int32).numpy()
    tensors["input.region_valid"] = f32(inputs["region_valid"])
    for k, v in out.items():
        tensors["expect." + k] = f32(v)
    for k, v in L.items():
        tensors["expect." + k] = f32(v)

    print(f"B={B} M={M} R={info['R']} lambda={info['lambda']:.6g} text filter masked {info['masked']} of "
          f"{info['offdiag']} off-diagonal entries" + ("" if info.get("filter_margin") is None else
          f" (min |S - threshold| = {info['filter_margin']:.3g})"))
    if info.get("filter_margin") is not None and info["filter_margin"] < 1e-3:
        print("WARNING: an off-diagonal similarity is within 1e-3 of text_filter_threshold; "
              "a float32 run may mask differently")
    for k in ("loss_clip", "loss_cloc", "loss_ground", "loss"):
        print(f"  {k:12s} {float(L[k]):.8f}")
    print(f"  logit_scale {float(params['logit_scale']):.6f} grad {float(grads['logit_scale']):.6g} "
          f"step {float(stepped['logit_scale']):.6f}")

    # The key rows of every attn.in_proj_bias have a gradient that is exactly 0 in exact arithmetic (a
    # per-query constant added to all scores), so its computed value is rounding noise that AdamW's first
    # step turns into an update of up to lr. Relative to the tensor's max-abs value that must stay well
    # under the library's 1e-3 tolerance.
    lr = optimizer_meta(cfg)["lr"]
    for n, p in params.items():
        if n.endswith("attn.in_proj_bias") and lr / float(p.abs().max()) > 8e-4:
            print(f"WARNING: {n}: max |p| = {float(p.abs().max()):.3g}; noise in its (zero) key-bias gradient "
                  f"can move step.{n} by up to lr = {lr:g}, i.e. > 8e-4 relative")

    status = 0
    if args.check:
        if not args.from_bundle:
            raise SystemExit("--check needs --from-bundle")
        worst, worst_name, rows = 0.0, None, []
        for k in sorted(tensors):
            if not k.startswith(("expect.", "grad.", "step.")):
                continue
            if k not in tens:
                print(f"  MISSING in reference: {k}")
                status = 1
                continue
            if list(tens[k].shape) != list(tensors[k].shape):
                print(f"  SHAPE MISMATCH {k}: {tensors[k].shape} vs {tens[k].shape}")
                status = 1
                continue
            e = rel_err(tensors[k], tens[k])
            rows.append((e, k))
            if e > worst:
                worst, worst_name = e, k
        extra = [k for k in tens if k.startswith(("expect.", "grad.", "step.")) and k not in tensors]
        for k in extra:
            print(f"  not produced by the oracle: {k}")
            status = 1
        rows.sort(reverse=True)
        print(f"checked {len(rows)} tensors against {args.from_bundle}; worst relative error "
              f"{worst:.3e} ({worst_name})")
        for e, k in rows[:8]:
            print(f"  {e:.3e}  {k}")
        bad = [k for e, k in rows if e > args.tol]
        if bad:
            print(f"FAIL: {len(bad)} tensors above {args.tol:g}: {bad[:10]}")
            status = 1
        else:
            print(f"OK: all within {args.tol:g}")

    if args.out:
        desc = [f"B={B}, M={M}, valid slots R={info['R']}",
                f"images with a valid box {int((inputs['region_valid'] > 0.5).any(1).sum())} of {B}",
                f"text filter masked {info['masked']} of {info['offdiag']} off-diagonal entries"]
        ls0 = float(params["logit_scale"])
        if ls0 > cfg["loss"]["logit_scale_max"]:
            desc.append(f"logit_scale initialised to {ls0:g} > logit_scale_max, so its gradient is 0 and "
                        f"the step clamps it to {cfg['loss']['logit_scale_max']:.6g}")
        note = (f"clocgpu tools/oracle/make_bundle.py, PyTorch {torch.__version__}: {source}; forward, "
                f"autograd backward and torch.optim.AdamW step evaluated in float64 from those values, "
                f"stored as float32. " + "; ".join(desc + notes) + ".")
        meta = {"format": "pt", "config": json.dumps(cfg), "optimizer": json.dumps(optimizer_meta(cfg)),
                "generator": note}
        write_safetensors(args.out, tensors, meta)
        print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")
    return status


def load_json(s):
    if os.path.exists(s):
        with open(s) as f:
            return json.load(f)
    return json.loads(s)


def check_config(cfg):
    v, t, pr = cfg["vision"], cfg["text"], cfg["prompter"]
    assert cfg["act"] in ("gelu", "quick_gelu"), cfg["act"]
    assert v["image_size"] % v["patch_size"] == 0, "image_size must be a multiple of patch_size"
    assert v["width"] % v["heads"] == 0 and v["width"] % pr["heads"] == 0, "vision width vs heads"
    assert v["width"] % 2 == 0, "vision width must be even (corner sine code)"
    assert t["width"] % t["heads"] == 0, "text width vs heads"
    assert 0 <= t["eot_token_id"] < t["vocab_size"], "eot_token_id out of range"


if __name__ == "__main__":
    sys.exit(main())
