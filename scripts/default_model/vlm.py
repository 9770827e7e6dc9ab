"""vlm.py — Qwen2.5-VL in compact PyTorch, exactly as engine/vision.c and engine/llm.c
compute it (streamingvlm-spec §4), for training the default model and as the reference
the logits test compares the C engine with.

  vision: patch embedding (the Conv3d as one matmul, no bias) -> rows permuted into
          window order (2x2 merge units move together) -> blocks: x += proj(attn(rope(q),
          rope(k), v)) over windows (or the whole frame in fullatt blocks), x += down(silu(
          gate(y)) * up(y)), RMSNorm pre-norms, every linear with bias, 2-D rotary angles
          (row, col) -> merger: RMSNorm, 4 rows as one, Linear, exact GELU, Linear -> back
          to natural (t, row, col) order;
  llm:    Qwen2 decoder: embeddings with vision rows in the <|video_pad|> slots, RMSNorm,
          q/k/v with bias, o/gate/up/down without, GQA, causal attention, 3-D M-RoPE
          (frequency j uses the t, h or w position per mrope_section), SwiGLU MLP, final
          norm, lm_head (tied to the embedding or not).
All math float32 (the engine's CPU reference).  Not: HF's bf16 rounding, sampling.

Tensor names and shapes are the published checkpoint's (model.embed_tokens.weight,
visual.blocks.N.attn.qkv.weight, ...); load()/save() read and write bf16 safetensors.
"""
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F


# ---- configuration ----------------------------------------------------------------------

class Config:
    """The fields of config.json the engine reads (engine/config.c)."""

    def __init__(self, j):
        self.json = j
        self.vocab = j["vocab_size"]
        self.hidden = j["hidden_size"]
        self.n_layers = j["num_hidden_layers"]
        self.n_heads = j["num_attention_heads"]
        self.n_kv_heads = j.get("num_key_value_heads", self.n_heads)
        self.head_dim = j.get("head_dim", self.hidden // self.n_heads)
        self.inter = j["intermediate_size"]
        self.eps = j.get("rms_norm_eps", 1e-6)
        self.theta = j.get("rope_theta", 1e6)
        self.mrope = j["rope_scaling"]["mrope_section"]
        self.tied = j.get("tie_word_embeddings", False)
        self.video_token_id = j["video_token_id"]
        v = j["vision_config"]
        self.v_depth, self.v_hidden, self.v_heads = v["depth"], v["hidden_size"], v["num_heads"]
        self.v_head_dim = self.v_hidden // self.v_heads
        self.v_inter = v["intermediate_size"]
        self.patch = v.get("patch_size", 14)
        self.tps = v.get("temporal_patch_size", 2)
        self.merge = v.get("spatial_merge_size", 2)
        self.window = v.get("window_size", 112)
        self.fullatt = set(v["fullatt_block_indexes"])
        self.tokens_per_second = v.get("tokens_per_second", 2)
        self.patch_in = 3 * self.tps * self.patch * self.patch

    @classmethod
    def load(cls, d):
        with open(os.path.join(d, "config.json")) as f:
            return cls(json.load(f))


# ---- geometry (host side in the engine) ---------------------------------------------------

def smart_resize(h, w, min_pixels, max_pixels, factor=28):
    """qwen-vl-utils' smart_resize (engine/preprocess.c vlm_smart_resize)."""
    hb, wb = max(factor, round(h / factor) * factor), max(factor, round(w / factor) * factor)
    if hb * wb > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        hb = max(factor, math.floor(h / beta / factor) * factor)
        wb = max(factor, math.floor(w / beta / factor) * factor)
    elif hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        hb, wb = math.ceil(h * beta / factor) * factor, math.ceil(w * beta / factor) * factor
    return hb, wb


def frame_size(pre, src_h=720, src_w=1280):
    """The engine's chunk frame size (vlm_engine_frame_size) for a source: StreamingVLM's
    video limits (100*28*28, 768*28*28) bounded by the preprocessor's (engine.c)."""
    mx = min(pre.get("max_pixels", 28 * 28 * 16384), 768 * 28 * 28)
    mn = min(100 * 28 * 28, mx)
    if mn < pre.get("min_pixels", 0) <= mx:
        mn = pre["min_pixels"]
    return smart_resize(src_h, src_w, mn, mx)


def f32_inv_freq(theta, k, dim):
    """1 / theta^(2k/dim) in float32, as the engine's powf."""
    e = np.float32(2 * k) / np.float32(dim)
    return np.float32(1.0) / np.power(np.float32(theta), e, dtype=np.float32)


def vision_geometry(cfg, grid):
    """For one (t, h, w) grid: rotary angles of each patch in natural order [Np, hd/2],
    the window order of merge units [Np/4] and the attention segments (patch index
    lists grouped by length) for window and full blocks.  Mirrors engine/vision.c."""
    t, h, w = grid
    sms = cfg.merge
    dim = cfg.v_head_dim // 2
    q = dim // 2
    inv = np.array([f32_inv_freq(10000.0, k, dim) for k in range(q)], np.float32)
    ang = []
    for _ in range(t):
        for bh in range(h // sms):
            for bw in range(w // sms):
                for mh in range(sms):
                    for mw in range(sms):
                        hp, wp = np.float32(bh * sms + mh), np.float32(bw * sms + mw)
                        ang.append(np.concatenate([hp * inv, wp * inv]))
    ang = np.stack(ang).astype(np.float32)
    ws = cfg.window // sms // cfg.patch
    lh, lw = h // sms, w // sms
    nwh, nww = (lh + ws - lh % ws) // ws, (lw + ws - lw % ws) // ws  # HF pads a whole window
    index, segs = [], []
    for ti in range(t):
        for wh in range(nwh):
            for ww in range(nww):
                units = [ti * lh * lw + y * lw + x
                         for y in range(wh * ws, wh * ws + ws)
                         for x in range(ww * ws, ww * ws + ws) if y < lh and x < lw]
                if units:
                    segs.append((len(index) * 4, len(units) * 4))
                    index += units
    full = [(ti * h * w, h * w) for ti in range(t)]
    return ang, np.array(index, np.int64), Segments(segs, t * h * w), Segments(full, t * h * w)


class Segments:
    """Attention segments of n rows (contiguous, in window order) padded to one length:
    gather [S, L] row indices (n = a zero pad row), bias [S, 1, 1, L] (0 or -inf for
    pad keys), back [n] the padded position of each row."""

    def __init__(self, segs, n):
        L = max(m for _, m in segs)
        gather = np.full((len(segs), L), n, np.int64)
        bias = np.full((len(segs), 1, 1, L), -np.inf, np.float32)
        back = np.zeros(n, np.int64)
        for k, (a, m) in enumerate(segs):
            gather[k, :m] = np.arange(a, a + m)
            bias[k, ..., :m] = 0.0
            back[a:a + m] = k * L + np.arange(m)
        self.L, self.n_seg = L, len(segs)
        self.padded = any(m < L for _, m in segs)
        self.gather = torch.from_numpy(gather.reshape(-1))
        self.bias = torch.from_numpy(bias)
        self.back = torch.from_numpy(back)


def mrope_cos_sin(cfg, pos):
    """pos: float tensor [3, n] (t, h, w) -> cos, sin [n, head_dim/2] (engine/llm.c)."""
    half = cfg.head_dim // 2
    s0, s1 = cfg.mrope[0], cfg.mrope[0] + cfg.mrope[1]
    inv = torch.tensor([f32_inv_freq(cfg.theta, j, cfg.head_dim) for j in range(half)])
    comp = torch.tensor([0 if j < s0 else 1 if j < s1 else 2 for j in range(half)])
    ang = pos[comp].T * inv  # [n, half]
    return torch.cos(ang), torch.sin(ang)


def rope(x, cos, sin):
    """Rotate-half: x [..., n, heads, d], cos/sin [n, d/2]."""
    half = x.shape[-1] // 2
    x0, x1 = x[..., :half], x[..., half:]
    c, s = cos[:, None, :], sin[:, None, :]
    return torch.cat([x0 * c - x1 * s, x1 * c + x0 * s], -1)


def causal_attention(q, k, v, past, block=384):
    """softmax(q·kᵀ)·v, q [n, H, d] (already scaled) of the tokens after `past` cached
    ones, k/v [past + n, KVH, d]; query head h reads kv head h / (H / KVH).  Query
    blocks read only the keys up to their own end (half the work of a full mask)."""
    n, H, d = q.shape
    rep = H // k.shape[1]
    qh = q.transpose(0, 1)
    kh = k.repeat_interleave(rep, 1).transpose(0, 1)
    vh = v.repeat_interleave(rep, 1).transpose(0, 1)
    outs = []
    for a in range(0, n, block):
        b = min(n, a + block)
        s = qh[:, a:b] @ kh[:, :past + b].transpose(1, 2)  # H, b-a, past+b
        tri = torch.ones(b - a, b - a, dtype=torch.bool).triu(1)
        bias = torch.zeros(b - a, past + b).masked_fill_(
            torch.cat([torch.zeros(b - a, past + a, dtype=torch.bool), tri], 1), float("-inf"))
        outs.append((s + bias).softmax(-1) @ vh[:, :past + b])
    return torch.cat(outs, 1).transpose(0, 1)


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


# ---- the model ---------------------------------------------------------------------------

def _p(*shape):
    return torch.nn.Parameter(torch.zeros(*shape))


class VLM(torch.nn.Module):
    """Parameters are named by their safetensors names (dots -> '__')."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = c = cfg
        vh, vi, d = c.v_hidden, c.v_inter, c.hidden
        P = {"visual.patch_embed.proj.weight": (vh, c.patch_in)}
        for b in range(c.v_depth):
            p = "visual.blocks.%d." % b
            P.update({p + "norm1.weight": (vh,), p + "norm2.weight": (vh,),
                      p + "attn.qkv.weight": (3 * vh, vh), p + "attn.qkv.bias": (3 * vh,),
                      p + "attn.proj.weight": (vh, vh), p + "attn.proj.bias": (vh,),
                      p + "mlp.gate_proj.weight": (vi, vh), p + "mlp.gate_proj.bias": (vi,),
                      p + "mlp.up_proj.weight": (vi, vh), p + "mlp.up_proj.bias": (vi,),
                      p + "mlp.down_proj.weight": (vh, vi), p + "mlp.down_proj.bias": (vh,)})
        P.update({"visual.merger.ln_q.weight": (vh,),
                  "visual.merger.mlp.0.weight": (4 * vh, 4 * vh),
                  "visual.merger.mlp.0.bias": (4 * vh,),
                  "visual.merger.mlp.2.weight": (d, 4 * vh), "visual.merger.mlp.2.bias": (d,),
                  "model.embed_tokens.weight": (c.vocab, d), "model.norm.weight": (d,)})
        qd, kd = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
        for l in range(c.n_layers):
            p = "model.layers.%d." % l
            P.update({p + "input_layernorm.weight": (d,),
                      p + "post_attention_layernorm.weight": (d,),
                      p + "self_attn.q_proj.weight": (qd, d), p + "self_attn.q_proj.bias": (qd,),
                      p + "self_attn.k_proj.weight": (kd, d), p + "self_attn.k_proj.bias": (kd,),
                      p + "self_attn.v_proj.weight": (kd, d), p + "self_attn.v_proj.bias": (kd,),
                      p + "self_attn.o_proj.weight": (d, qd),
                      p + "mlp.gate_proj.weight": (c.inter, d),
                      p + "mlp.up_proj.weight": (c.inter, d),
                      p + "mlp.down_proj.weight": (d, c.inter)})
        if not c.tied:
            P["lm_head.weight"] = (c.vocab, d)
        self.shapes = P
        for n, s in P.items():
            self.register_parameter(n.replace(".", "__"), _p(*s))
        self._geo = {}

    def w(self, name):
        return getattr(self, name.replace(".", "__"))

    def init_weights(self, gen):
        for n, s in self.shapes.items():
            t = self.w(n).data
            if n.endswith("norm1.weight") or n.endswith("norm2.weight") or "layernorm" in n \
                    or n.endswith("ln_q.weight") or n == "model.norm.weight":
                t.fill_(1.0)
            elif n.endswith(".bias"):
                t.zero_()
            elif n == "model.embed_tokens.weight" or n == "lm_head.weight":
                t.normal_(0.0, 0.02, generator=gen)
            else:
                t.normal_(0.0, 1.0 / math.sqrt(s[1]), generator=gen)
                if n.endswith("o_proj.weight") or n.endswith("down_proj.weight") or \
                        n.endswith("attn.proj.weight"):
                    t.mul_(0.5)

    # -- vision --

    def geometry(self, grid):
        if grid not in self._geo:
            ang, index, win, full = vision_geometry(self.cfg, grid)
            perm = torch.from_numpy((index[:, None] * 4 + np.arange(4)).reshape(-1))
            inv = torch.empty_like(torch.from_numpy(index))
            inv[torch.from_numpy(index)] = torch.arange(len(index))
            a = torch.from_numpy(ang)[perm]
            self._geo[grid] = (perm, inv, torch.cos(a), torch.sin(a), win, full)
        return self._geo[grid]

    def vision(self, pixels, grid, taps=None):
        """pixels [B, Np, C*tps*ps*ps] (B chunks of the same grid) -> [B, Np/4, hidden]
        merged embeddings in natural order (the <|video_pad|> slot order).  taps: a list
        that gets the residual stream after each block, patches in patch_rows' order."""
        c = self.cfg
        perm, inv, cos, sin, win, full = self.geometry(tuple(grid))
        B, Np, _ = pixels.shape
        H, hd = c.v_heads, c.v_head_dim
        x = (pixels @ self.w("visual.patch_embed.proj.weight").T)[:, perm]
        for b in range(c.v_depth):
            p = "visual.blocks.%d." % b
            y = rms_norm(x, self.w(p + "norm1.weight"), 1e-6)
            qkv = F.linear(y, self.w(p + "attn.qkv.weight"), self.w(p + "attn.qkv.bias"))
            q, k, v = qkv.view(B, Np, 3, H, hd).unbind(2)
            q, k = rope(q, cos, sin) * (1.0 / math.sqrt(hd)), rope(k, cos, sin)
            sg = full if b in c.fullatt else win
            pad = lambda t: torch.cat([t, t.new_zeros(B, 1, H, hd)], 1).index_select(
                1, sg.gather).view(B, sg.n_seg, sg.L, H, hd).transpose(2, 3)  # B,S,H,L,hd
            qs, ks, vs = pad(q), pad(k), pad(v)
            sc = qs @ ks.transpose(-1, -2)
            o = (sc + sg.bias if sg.padded else sc).softmax(-1) @ vs
            att = o.transpose(2, 3).reshape(B, -1, H, hd).index_select(1, sg.back)
            x = x + F.linear(att.reshape(B, Np, -1), self.w(p + "attn.proj.weight"),
                             self.w(p + "attn.proj.bias"))
            y = rms_norm(x, self.w(p + "norm2.weight"), 1e-6)
            g = F.linear(y, self.w(p + "mlp.gate_proj.weight"), self.w(p + "mlp.gate_proj.bias"))
            u = F.linear(y, self.w(p + "mlp.up_proj.weight"), self.w(p + "mlp.up_proj.bias"))
            x = x + F.linear(F.silu(g) * u, self.w(p + "mlp.down_proj.weight"),
                             self.w(p + "mlp.down_proj.bias"))
            if taps is not None:
                taps.append(x[:, perm.argsort()])
        y = rms_norm(x, self.w("visual.merger.ln_q.weight"), 1e-6).reshape(B, Np // 4, -1)
        y = F.gelu(F.linear(y, self.w("visual.merger.mlp.0.weight"),
                            self.w("visual.merger.mlp.0.bias")))
        y = F.linear(y, self.w("visual.merger.mlp.2.weight"), self.w("visual.merger.mlp.2.bias"))
        return y[:, inv]

    # -- llm --

    def lm_head(self):
        return self.w("model.embed_tokens.weight" if self.cfg.tied else "lm_head.weight")

    def llm(self, ids, pos, vis=None, cache=None, logits_rows=None):
        """ids [n] new tokens, pos [3, n] float positions of the new tokens, vis [n_vis, d]
        rows for the new tokens' <|video_pad|> slots in order.  cache: None (a fresh
        sequence) or a KVCache whose raw keys/values precede the new tokens and whose
        rotated keys are current.  Returns logits of rows logits_rows (all if None)."""
        c = self.cfg
        n = ids.shape[0]
        x = self.w("model.embed_tokens.weight")[ids]
        if vis is not None and vis.shape[0]:
            slots = (ids == c.video_token_id).nonzero().squeeze(1)
            x = x.index_put((slots,), vis)
        cos, sin = mrope_cos_sin(c, pos)
        H, KVH, hd = c.n_heads, c.n_kv_heads, c.head_dim
        past = cache.n if cache is not None else 0
        for l in range(c.n_layers):
            p = "model.layers.%d." % l
            y = rms_norm(x, self.w(p + "input_layernorm.weight"), c.eps)
            q = F.linear(y, self.w(p + "self_attn.q_proj.weight"), self.w(p + "self_attn.q_proj.bias"))
            k = F.linear(y, self.w(p + "self_attn.k_proj.weight"), self.w(p + "self_attn.k_proj.bias"))
            v = F.linear(y, self.w(p + "self_attn.v_proj.weight"), self.w(p + "self_attn.v_proj.bias"))
            q, k, v = q.view(n, H, hd), k.view(n, KVH, hd), v.view(n, KVH, hd)
            q, kr = rope(q, cos, sin) * (1.0 / math.sqrt(hd)), rope(k, cos, sin)
            if cache is not None:
                kr, v = cache.append(l, k, kr, v)
            o = causal_attention(q, kr, v, past).reshape(n, H * hd)
            x = x + F.linear(o, self.w(p + "self_attn.o_proj.weight"))
            y = rms_norm(x, self.w(p + "post_attention_layernorm.weight"), c.eps)
            g = F.linear(y, self.w(p + "mlp.gate_proj.weight"))
            u = F.linear(y, self.w(p + "mlp.up_proj.weight"))
            x = x + F.linear(F.silu(g) * u, self.w(p + "mlp.down_proj.weight"))
        if cache is not None:
            cache.n += n
        if logits_rows is not None:
            x = x[logits_rows]
        return F.linear(rms_norm(x, self.w("model.norm.weight"), c.eps), self.lm_head())

    # -- files --

    def state(self):
        return {n: self.w(n).detach() for n in self.shapes}

    def save(self, path):
        ts = {}
        for n, t in self.state().items():
            if n == "visual.patch_embed.proj.weight":
                t = t.reshape(self.cfg.v_hidden, 3, self.cfg.tps, self.cfg.patch, self.cfg.patch)
            ts[n] = t
        write_safetensors_bf16(path, ts)

    def load(self, path):
        for n, t in read_safetensors(path).items():
            self.w(n).data.copy_(t.reshape(self.shapes[n]))

    def round_bf16(self):
        """Round every weight to bf16 (what the exported file holds)."""
        with torch.no_grad():
            for n in self.shapes:
                self.w(n).data.copy_(self.w(n).data.to(torch.bfloat16).float())


class KVCache:
    """The engine's cache: per layer raw keys (before RoPE), rotated keys and values of
    the n cached tokens (engine/model.h vlm_ctx)."""

    def __init__(self, n_layers):
        self.k_raw = [None] * n_layers
        self.k_rot = [None] * n_layers
        self.v = [None] * n_layers
        self.n = 0

    def append(self, l, k, kr, v):
        cat = lambda a, b: b if a is None or a.shape[0] == 0 else torch.cat([a, b])
        self.k_raw[l], self.k_rot[l], self.v[l] = cat(self.k_raw[l], k), cat(self.k_rot[l], kr), \
            cat(self.v[l], v)
        return self.k_rot[l], self.v[l]

    def compact(self, rows):
        """Keep cached rows `rows` (in that order): vlm_kv_compact."""
        idx = torch.as_tensor(rows, dtype=torch.long)
        for l in range(len(self.v)):
            if self.v[l] is not None:
                self.k_raw[l], self.k_rot[l], self.v[l] = \
                    self.k_raw[l][idx], self.k_rot[l][idx], self.v[l][idx]
        self.n = len(rows)

    def rerotate(self, cfg, first, pos):
        """Rotate raw keys of rows [first, n) at positions pos [3, n - first]."""
        if first >= self.n:
            return
        cos, sin = mrope_cos_sin(cfg, pos)
        for l in range(len(self.v)):
            self.k_rot[l] = torch.cat([self.k_rot[l][:first], rope(self.k_raw[l][first:], cos, sin)])


def patch_rows(frames, cfg):
    """frames [B, 2, H, W, 3] (any dtype) -> [B, Np, 3, 2*14*14] in HF row order: t, 2x2
    merge groups, c, frame, py, px."""
    B, T, Hh, Ww, _ = frames.shape
    ps, ms = cfg.patch, cfg.merge
    x = frames.permute(0, 4, 1, 2, 3)  # B, C, T, H, W
    x = x.reshape(B, 3, T, Hh // ps // ms, ms, ps, Ww // ps // ms, ms, ps)
    x = x.permute(0, 3, 6, 4, 7, 1, 2, 5, 8)  # B, bh, bw, mh, mw, C, T, py, px
    return x.reshape(B, -1, 3, T * ps * ps)


def patchify(frames, lut, cfg):
    """frames uint8 [B, 2, H, W, 3] -> pixel rows [B, Np, 3*2*14*14] (patch_rows' order),
    normalised through the engine's table (moved as bytes: cheap)."""
    x = patch_rows(frames, cfg)
    x = x.long() + 256 * torch.arange(3).view(1, 1, 3, 1)
    return lut.reshape(-1)[x].reshape(x.shape[0], x.shape[1], -1)


def pixel_lut(pre):
    """The engine's normalisation table: float32((double)v * rescale) then (x - mean)/std
    in float32 (engine/preprocess.c)."""
    mean = np.array(pre.get("image_mean", [0.48145466, 0.4578275, 0.40821073]), np.float32)
    std = np.array(pre.get("image_std", [0.26862954, 0.26130258, 0.27577711]), np.float32)
    v = (np.arange(256, dtype=np.float64) * (1.0 / 255.0)).astype(np.float32)
    return torch.from_numpy(np.stack([(v - mean[c]) / std[c] for c in range(3)]).astype(np.float32))


# ---- safetensors ----------------------------------------------------------------------------

def write_safetensors_bf16(path, ts):
    header, blobs, off = {}, [], 0
    for name in sorted(ts):
        b = ts[name].detach().float().contiguous().to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": "BF16", "shape": list(ts[name].shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        raw = np.frombuffer(data[a:b], {"BF16": np.int16, "F32": np.float32}[e["dtype"]])
        t = torch.from_numpy(raw.copy())
        t = t.view(torch.bfloat16).float() if e["dtype"] == "BF16" else t
        out[name] = t.reshape(e["shape"])
    return out
