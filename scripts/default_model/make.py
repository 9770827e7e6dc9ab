#!/usr/bin/python3
"""make.py — `make default-model`: tokenizer, data, training and export of the default
model (models/default), reproducibly on the CPU with Debian's python3-torch.

    /usr/bin/python3 scripts/default_model/make.py [--out models/default]
        [--work build/default-model] [--vision-steps N] [--steps N] [--seed N]
        [--skip-data] [--eval-only MODEL] [--init-only DIR] [--circuit-check]

Steps: 1. the tokenizer (bpe.py) from the product's strings; 2. the chunk pool
(data.py, two render processes, ~30 s); 3. training in two stages: (a) the vision tower
alone (~0.7 s a step of 24 chunks on 2 cores), with a training-only linear head on its
output tokens, on chunks repainted in random colours (per token: the ball in each frame,
the token's colour, and where the ball is, the direction and displacement; per chunk: the
scene, both colours, the direction and displacement), so that what it learns does not
hinge on the colour pairs it saw; the patch embedding (colour filters, stem_init),
block 0 and block 1's attention are a built-in motion circuit and stay fixed
(motion_circuit: where the ball was in each frame, compared along x and y); (b) the
LLM (~0.6 s a step) on the frozen tower's tokens (AdamW, warmup + cosine, ~16 chunks of
vision per step, every retained round's commentary is a target, some earlier rounds'
commentary replaced by wrong text so the picture decides, half the ball runs repainted
in another trained colour pair so the colour words follow the colours); 4. export:
config.json, generation_config.json, preprocessor_config.json, tokenizer.json,
model.safetensors (bf16); 5. a check on freshly rendered held-out scenes through the
PyTorch streaming session (greedy, the engine's cache semantics).  Prints the figures
the README quotes (time, final loss, held-out accuracy).  Everything is seeded; the
work folder holds the pool and a training log.
"""
import argparse
import json
import math
import os
import random
import sys
import time

# One pool of threads: OpenBLAS' own workers spinning beside torch's OpenMP ones made
# every step twice as slow on 2 cores (0.79 -> 0.38 s a vision step).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
ROOT = os.path.dirname(os.path.dirname(HERE))

try:
    import numpy as np
    import torch
    import torchvision  # noqa: F401 (scenes.resize)
except ImportError as e:
    sys.exit("make-default-model: %s: apt-get install -y python3-torch python3-torchvision "
             "(and run with /usr/bin/python3)" % e)

import bpe
import data
import scenes as S
import vlm
from session import ModelSession, Pieces, Policy

# The model: Qwen2.5-VL's architecture with small dimensions (≈1.4M parameters).
VISION = {"depth": 4, "hidden_size": 96, "num_heads": 3, "intermediate_size": 192,
          "patch_size": 14, "temporal_patch_size": 2, "spatial_merge_size": 2,
          "in_chans": 3, "window_size": 112, "fullatt_block_indexes": [0, 1, 2, 3],
          "tokens_per_second": 2, "hidden_act": "silu"}
TEXT = {"hidden_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4,
        "num_key_value_heads": 2, "intermediate_size": 384}
PREPROCESSOR = {"min_pixels": 50 * 28 * 28, "max_pixels": 50 * 28 * 28, "patch_size": 14,
                "temporal_patch_size": 2, "merge_size": 2,
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711],
                "image_processor_type": "Qwen2VLImageProcessor"}
assert vlm.frame_size(PREPROCESSOR) == (S.MODEL_H, S.MODEL_W)
GRID = (1, S.MODEL_H // 14, S.MODEL_W // 14)          # patches of one chunk (14 x 26)
MERGED = (1, GRID[1] // 2, GRID[2] // 2)              # its vision tokens (7 x 13 = 91)


def log(*a):
    print("make-default-model:", *a, flush=True)


def configs(tok):
    sid = tok.specials
    vocab = (tok.n_ids() + 63) // 64 * 64
    hd = TEXT["hidden_size"] // TEXT["num_attention_heads"]
    cfg = {"architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
           **TEXT, "vocab_size": vocab, "hidden_act": "silu", "rms_norm_eps": 1e-6,
           "rope_theta": 100.0,
           "rope_scaling": {"type": "mrope", "mrope_section": [hd // 8, 3 * hd // 16, 3 * hd // 16]},
           "max_position_embeddings": 32768, "tie_word_embeddings": True,
           "bos_token_id": sid["<|endoftext|>"], "eos_token_id": sid["<|im_end|>"],
           "vision_start_token_id": sid["<|vision_start|>"],
           "vision_end_token_id": sid["<|vision_end|>"],
           "vision_token_id": sid["<|vision_pad|>"], "image_token_id": sid["<|image_pad|>"],
           "video_token_id": sid["<|video_pad|>"], "torch_dtype": "bfloat16",
           "vision_config": {**VISION, "out_hidden_size": TEXT["hidden_size"]},
           "_comment": "commentaryd's default model: comments on GStreamer videotestsrc scenes; "
                       "made by `make default-model` (scripts/default_model/make.py)"}
    gen = {"bos_token_id": sid["<|endoftext|>"],
           "eos_token_id": [sid["<|im_end|>"], sid["<|endoftext|>"]],
           "do_sample": False, "repetition_penalty": 1.0}
    return cfg, gen


def stem_init(w):
    """Start the patch embedding w [vh, 3*2*14*14] (c, t, py, px) with colour filters:
    rows 0-5 the mean of each channel of each frame over the patch, rows 6-29 the same
    over each 7x7 quadrant (the rest stays random, halved), so that what colour is where
    in the patch, in each frame, is in the tokens from the first step."""
    ps = 14
    with torch.no_grad():
        w.mul_(0.5)
        rows = [(c, t, 0, ps, 0, ps) for c in range(3) for t in range(2)]
        rows += [(c, t, y, y + 7, x, x + 7) for c in range(3) for t in range(2)
                 for y in (0, 7) for x in (0, 7)]
        for k, (c, t, y0, y1, x0, x1) in enumerate(rows):
            m = torch.zeros(3, 2, ps, ps)
            m[c, t, y0:y1, x0:x1] = 4.0 / ((y1 - y0) * (x1 - x0))
            w[k] = m.reshape(-1)


# The motion circuit's residual dimensions (vision hidden 96): per (channel, frame) the
# patch's colour minus the frame's mean colour; how much the patch changed between the
# frames; ball in frame 0 minus ball in frame 1; and the ball's motion along x and y.
E0, CHANGED, P01, MOTION_X, MOTION_Y = 84, 90, 91, 92, 93


def motion_circuit(model, s=2.0, s2=1.0, beta=3.0, beta2=30.0, gamma0=2.0, gamma1=100.0,
                   self_q=10.5, gate=6.0, slope=2.5, sharp=10.0):
    """Write into the seeded vision tower a circuit that sees which way the ball went, and
    return gradient masks that keep it (1: trainable).  Learned from the data alone, the
    direction stayed at chance: the tower has no absolute position (2-D RoPE only), and a
    head that finds the ball's two positions by content and compares them by rotary phase
    was never reached by gradient descent on 2 cores.  So it starts built:
      block 0, head 1 attends to itself (query = key biases in the two fastest rotary
        pairs of each axis) and head 2 to every patch alike (no query): their values are
        the patch's mean colour per channel and frame (stem rows 0-5), and the projection
        writes self minus mean into E0..E0+5: the colour against the frame's background;
      block 0's MLP takes absolute values (silu(k a) + silu(-k a) ~ k |a|), summed over
        the channels: P01 = |colour0 - mean0| - |colour1 - mean1| (> 0 where the ball
        covers more of the patch in frame 0, < 0 where more in frame 1), CHANGED =
        |colour0 - colour1| (the patch changed);
      block 1, heads 0 (x), 1 (y) and 2: the key reads CHANGED in the slowest (static)
        rotary pair against a constant query, so attention goes to the patches that
        changed (the gate is moderate: block 1's RMS norm saturates CHANGED, and every
        changed patch should count about alike); in heads 0 and 1 a key bias a quarter
        turn from a query bias in the 0.03 rad/patch pair of the axis adds a score that
        falls slowly along it.  The value is P01 (after the norm about +1 where the ball
        was only in frame 0, -1 where only in frame 1).  With weights w ~ exp(-a x) over
        the changed patches, head 2 gives p0 - p1 (the two frames' shares of them) and
        heads 0 / 1 that plus 2 a p0 p1 (X1 - X0) to first order: the projection writes
        gamma1 (head 0 - head 2) to MOTION_X and (head 1 - head 2) to MOTION_Y, the
        per-frame centroids' difference along each axis times the same positive factor,
        > 0 moving right / down.  (Without head 2 the output is one moment of P01,
        which the ball's area differing between the frames -- partly off-frame,
        anti-aliased -- biases: 83% of directions as built, against 93-95% with it.)
    The stem (stem_init) and all of block 0 stay as built (see below); so does block 1's
    attention, whose three heads are the circuit's.  Everything else trains.
    The scales are set so that RMS norms keep the signs (they scale each patch by a
    positive number), the gate outweighs the slope across the 26-patch width and the
    slope stays where exp is close to linear.  Nothing after block 1's attention writes
    MOTION_X / MOTION_Y, so the merger gets them as made.  As built, before any training
    (--circuit-check), on 113 moving pool chunks: the sign of MOTION_X right on 100% of
    the mostly horizontal moves, and the larger of |MOTION_X| and |MOTION_Y| with its
    sign the right direction for 93% (the misses near the diagonal); the trained layers
    above take it from there."""
    c = model.cfg
    d, hd = c.v_hidden, c.v_head_dim
    W = lambda n: model.w(n).data
    masks = {}

    def mask(name):
        if name not in masks:
            masks[name] = torch.ones_like(model.w(name))
        return masks[name]

    def own(name, rows=None, cols=None, value=0.0):
        """Set rows x cols of weight `name` (all when None) to value and freeze them."""
        t, m = W(name), mask(name)
        r = slice(None) if rows is None else rows
        if t.dim() == 1:
            t[r] = value
            m[r] = 0
        else:
            cc = slice(None) if cols is None else cols
            if isinstance(r, list) and isinstance(cc, list):
                r = torch.tensor(r)[:, None]
                cc = torch.tensor(cc)[None, :]
            t[r, cc] = value
            m[r, cc] = 0

    circuit = list(range(E0, MOTION_Y + 1))
    stem = list(range(6))
    with torch.no_grad():
        pe = "visual.patch_embed.proj.weight"
        own(pe, circuit)                        # nothing else writes the circuit's dims
        head_rows = lambda part, h: list(range(part * d + h * hd, part * d + (h + 1) * hd))

        # block 0: head 1 = self, head 2 = mean
        b = "visual.blocks.0."
        for h in (1, 2):
            for part in range(3):
                own(b + "attn.qkv.weight", head_rows(part, h))
                own(b + "attn.qkv.bias", head_rows(part, h))
        for a in (0, 1, 8, 9):                  # rows: 1 and 0.32 rad/patch, columns alike
            W(b + "attn.qkv.bias")[hd + a] = self_q
            W(b + "attn.qkv.bias")[d + hd + a] = self_q
        for k in stem:
            for h in (1, 2):
                W(b + "attn.qkv.weight")[2 * d + h * hd + k, k] = 1.0
        pr = b + "attn.proj.weight"
        own(pr, circuit)
        own(pr, None, list(range(hd, 3 * hd)))
        own(b + "attn.proj.bias", circuit)
        for k in stem:
            W(pr)[E0 + k, hd + k] = gamma0
            W(pr)[E0 + k, 2 * hd + k] = -gamma0
        units = list(range(18))
        for n in ("mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.gate_proj.bias",
                  "mlp.up_proj.bias"):
            own(b + n, units)
        dn = b + "mlp.down_proj.weight"
        own(dn, circuit)
        own(dn, None, units)
        own(b + "mlp.down_proj.bias", circuit)

        def absval(j, sign, reads, out, gain):
            """Unit j adds gain * silu(sharp * sign * a) / sharp to out, a = reads . y: with
            its twin of the other sign, gain * a * tanh(sharp a / 2) ~ gain |a|."""
            for col, wgt in reads:
                W(b + "mlp.gate_proj.weight")[j, col] = sign * wgt * sharp
            W(b + "mlp.up_proj.bias")[j] = 1.0
            W(dn)[out, j] = gain / sharp
        for k in stem:                          # |colour - mean| per channel and frame
            for j, sign in ((2 * k, 1.0), (2 * k + 1, -1.0)):
                absval(j, sign, [(E0 + k, s)], P01, beta if k % 2 == 0 else -beta)
        for ch in range(3):                     # |colour0 - colour1| per channel
            for j, sign in ((12 + 2 * ch, 1.0), (13 + 2 * ch, -1.0)):
                absval(j, sign, [(2 * ch, s2), (2 * ch + 1, -s2)], CHANGED, beta2)
        for n in ("norm1.weight", "norm2.weight"):
            own(b + n, stem + circuit, value=1.0)

        # block 1: head 0 = motion along x, head 1 = along y, head 2 = the same without slope
        b = "visual.blocks.1."
        q8 = hd // 4
        for h, a in ((0, q8 + 3), (1, 3), (2, None)):
            for part in range(3):
                own(b + "attn.qkv.weight", head_rows(part, h))
                own(b + "attn.qkv.bias", head_rows(part, h))
            W(b + "attn.qkv.bias")[h * hd + q8 - 1] = gate          # static pair: the gate
            W(b + "attn.qkv.weight")[d + h * hd + q8 - 1, CHANGED] = 1.0
            if a is not None:
                W(b + "attn.qkv.bias")[h * hd + a] = slope           # the slope
                W(b + "attn.qkv.bias")[d + h * hd + a + hd // 2] = slope
            W(b + "attn.qkv.weight")[2 * d + h * hd, P01] = 1.0      # the value
        pr = b + "attn.proj.weight"
        own(pr, [MOTION_X, MOTION_Y])
        own(pr, None, list(range(0, 3 * hd)))
        own(b + "attn.proj.bias", [MOTION_X, MOTION_Y])
        W(pr)[MOTION_X, 0] = gamma1
        W(pr)[MOTION_Y, hd] = gamma1
        W(pr)[MOTION_X, 2 * hd] = -gamma1
        W(pr)[MOTION_Y, 2 * hd] = -gamma1
        own(b + "norm1.weight", [CHANGED, P01], value=1.0)
        # the stem and block 0 stay as built (the colour filters, the circuit, random
        # features elsewhere): trained, they grew the residual's other dims, block 1's RMS
        # norm then shrank CHANGED, the gate let the background in, and with seed 2 the
        # direction stayed at chance; frozen, block 1's inputs do not move and the other
        # targets train faster (aux loss 1.37 against 4.41 after 200 steps)
        for n in model.shapes:
            if n.startswith("visual.patch_embed.") or n.startswith("visual.blocks.0."):
                mask(n).zero_()
        # and nothing after block 1's attention writes over the motion: the later blocks'
        # random initial writes there were as large as it, and the direction stayed at
        # chance behind them
        for k in range(1, c.v_depth):
            b = "visual.blocks.%d." % k
            names = ["mlp.down_proj.weight", "mlp.down_proj.bias"]
            if k > 1:
                names += ["attn.proj.weight", "attn.proj.bias"]
            for n in names:
                own(b + n, [MOTION_X, MOTION_Y])
    return masks


def vision_batches(model, pool):
    """draw(rng, n): n vision-stage chunks of the pool (data.vision_batch), normalised
    with the preprocessor's mean and std."""
    table = data.FrameTable(pool)
    mean, std = torch.tensor(PREPROCESSOR["image_mean"]), torch.tensor(PREPROCESSOR["image_std"])
    return lambda rng, n: data.vision_batch(rng, table, n, model.cfg, mean, std)


@torch.no_grad()
def circuit_check(model, pool, n=200, seed=5):
    """The motion circuit as built, before any training: on n vision-stage chunks of the
    pool, how often the sign of MOTION_X is right on mostly horizontal moves, and how
    often the larger of |MOTION_X| and |MOTION_Y| with its sign names the direction of a
    moving ball (what the trained layers above it start from)."""
    px, tg = vision_batches(model, pool)(random.Random(seed), n)
    taps = []
    model.vision(px, GRID, taps)
    moving = (tg["dir"] >= 0) & (tg["dir"] != data.AUX_DIRS.index("still"))
    ox, oy = taps[1][moving][..., MOTION_X].mean(1), taps[1][moving][..., MOTION_Y].mean(1)
    dx, dy = tg["disp"][moving].unbind(-1)
    horiz = dx.abs() > dy.abs()
    sign_x = float(((ox > 0) == (dx > 0))[horiz].float().mean())
    pred = torch.where(ox.abs() >= oy.abs(), torch.where(ox > 0, 1, 0), torch.where(oy > 0, 3, 2))
    return sign_x, float((pred == tg["dir"][moving]).float().mean()), int(moving.sum())


def keep(model, masks):
    """Zero the gradient of what masks freezes (AdamW without weight decay then leaves it)."""
    for name, m in masks.items():
        model.w(name).register_hook(lambda g, m=m: g * m)


def masked_ce(logits, target):
    """Mean cross-entropy over the targets that are not -1 (0 when there are none)."""
    ok = target >= 0
    if not bool(ok.any()):
        return logits.sum() * 0.0
    return torch.nn.functional.cross_entropy(logits[ok], target[ok])


def masked_mse(pred, target):
    """Mean squared error over the rows whose target is not NaN."""
    ok = ~torch.isnan(target[..., 0])
    if not bool(ok.any()):
        return pred.sum() * 0.0
    return ((pred[ok] - target[ok]) ** 2).mean()


# The aux head's outputs per vision token: the ball in frame 0 and 1 (logits), the
# token's colour (3); the chunk's scene (5), ball / solid colour (3), background colour
# (3), direction (5), displacement (2); then the direction (5) and displacement (2) again,
# trained only on the tokens the ball touches (one attention hop from where the motion
# is seen; the chunk-wide copies need a second).
AUX_OUT = 30


def aux_loss(head, vis, tg):
    """Training-only loss on the vision tower's output tokens vis [B, N, d] against
    data.vision_batch's targets (the head is not part of the model)."""
    o = head(vis)
    n, N, _ = o.shape
    every = lambda x: x[:, None].expand(n, N, *x.shape[1:])
    local = torch.nn.functional.binary_cross_entropy_with_logits(
        o[..., 0:2], tg["cover"], pos_weight=torch.tensor([4.0, 4.0])) + \
        4.0 * masked_mse(o[..., 2:5], tg["colour"])
    glob = masked_ce(o[..., 5:10].reshape(-1, 5), every(tg["scene"]).reshape(-1)) + \
        4.0 * masked_mse(o[..., 10:13], every(tg["fg"])) + \
        4.0 * masked_mse(o[..., 13:16], every(tg["bg"])) + \
        masked_ce(o[..., 16:21].reshape(-1, 5), every(tg["dir"]).reshape(-1)) + \
        100.0 * masked_mse(o[..., 21:23], every(tg["disp"]))
    near = tg["cover"].sum(-1) > 0
    d = every(tg["dir"]).masked_fill(~near, -1)
    disp = every(tg["disp"]).masked_fill(~near[..., None], float("nan"))
    at_ball = masked_ce(o[..., 23:28].reshape(-1, 5), d.reshape(-1)) + \
        100.0 * masked_mse(o[..., 28:30], disp)
    return local + 0.5 * glob + at_ball


def parts(label):
    """(scene, ball / solid colour, background colour, direction) of a commentary, as
    names (None: not applicable)."""
    if " ball on " in label:
        f, rest = label.split(" ball on ")
        b, d = rest.split(", ")
        return ("ball", f, b, d.split(" ")[-1])
    if label.startswith("solid "):
        return ("solid-color", label.split(" ")[1], None, None)
    return ({"color bars": "smpte", "static noise": "snow", "checkerboard": "checkers-8"}[label],
            None, None, None)


@torch.no_grad()
def vision_probe(model, head, frames, labels, lut):
    """Accuracy of the aux head on frames: how much of the answer the vision tower alone
    carries.  Returns [scene, ball / solid colour, background, direction (chunk-wide
    outputs averaged over the tokens), direction (read where the head sees the ball)]."""
    fr = torch.from_numpy(np.stack(frames))
    o = head(model.vision(vlm.patchify(fr, lut, model.cfg), GRID))
    ball = torch.sigmoid(o[..., 0:2]).sum(-1)
    ball = ball / ball.sum(1, keepdim=True).clamp_min(1e-6)
    hits = [[] for _ in range(5)]
    for r, wb, label in zip(o, ball, labels):
        m, at = r.mean(0), (wb[:, None] * r).sum(0)
        got = (S.PATTERNS[int(m[5:10].argmax())], data.nearest(m[10:13].numpy() * 255),
               data.nearest(m[13:16].numpy() * 255), data.AUX_DIRS[int(m[16:21].argmax())],
               data.AUX_DIRS[int(at[23:28].argmax())])
        want = parts(label)
        want = want + (want[3],)
        for k in range(5):
            if want[k] is not None:
                hits[k].append(got[k] == want[k])
    return [sum(h) / max(1, len(h)) for h in hits]


def pretrain_vision(model, head, pool, steps, seed, probe, batch=24):
    """Stage 1: the vision tower and the aux head alone, on single repainted chunks
    (cheap: no LLM), so that the vision tokens carry the scene, both colours and the
    motion, in a form that does not depend on which colour pairs were seen."""
    rng = random.Random(seed + 7)
    draw = vision_batches(model, pool)
    params = [p for n, p in model.named_parameters() if n.startswith("visual")] + \
        list(head.parameters())
    opt = torch.optim.AdamW(params, lr=3e-3, betas=(0.9, 0.98), weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 20) * (0.05 + 0.95 * 0.5 * (1 + math.cos(
            math.pi * min(1.0, s / steps)))))
    t0 = time.time()
    for step in range(steps):
        pixels, tg = draw(rng, batch)
        loss = aux_loss(head, model.vision(pixels, GRID), tg)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            log("vision step %d/%d aux loss %.4f, held-out scene/colour/background/direction/"
                "direction-at-the-ball %s, %.0f s" % (
                    step, steps, loss.item(), "/".join("%.2f" % a for a in probe()),
                    time.time() - t0))


def batch_forward(model, samples, lut, watch=()):
    """Mean cross-entropy over the samples' targets, the token accuracy and the accuracy
    on the target ids in watch (the direction words: one token of a commentary, and the
    one that needs where the ball was in each frame).  The vision tower is frozen here
    (trained in stage 1), so it runs without gradients."""
    chunks = [c for s in samples for c in s.chunks]
    fr = torch.from_numpy(np.stack([c.frames() for c in chunks]))
    with torch.no_grad():
        vis = model.vision(vlm.patchify(fr, lut, model.cfg), GRID)
    loss, n_tok, n_ok, k, n_watch, ok_watch = 0.0, 0, 0, 0, 0, 0
    watch = torch.tensor(sorted(watch), dtype=torch.long)
    for s in samples:
        nv = len(s.chunks)
        v = vis[k:k + nv].reshape(-1, vis.shape[-1])
        k += nv
        ids = torch.tensor(s.ids)
        tg = torch.tensor(s.targets)
        logits = model.llm(ids, s.pos, v, logits_rows=tg - 1)
        loss = loss + torch.nn.functional.cross_entropy(logits, ids[tg], reduction="sum")
        hit = logits.argmax(-1) == ids[tg]
        watched = torch.isin(ids[tg], watch)
        n_tok += len(tg)
        n_ok += int(hit.sum())
        n_watch += int(watched.sum())
        ok_watch += int((hit & watched).sum())
    return loss / n_tok, n_ok / n_tok, ok_watch / max(1, n_watch)


def train(model, pool, tok, steps, seed, log_path, vis_per_step=16):
    """Stage 2: the LLM alone (the vision tower stays as stage 1 left it: fine-tuning it
    on the commentary would let it learn the training colour pairs by heart)."""
    rng = random.Random(seed)
    lut = vlm.pixel_lut(PREPROCESSOR)
    params = [(n, p) for n, p in model.named_parameters() if not n.startswith("visual")]
    decay = [p for n, p in params if p.dim() == 2]
    other = [p for n, p in params if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": other, "weight_decay": 0.0}], lr=2e-3, betas=(0.9, 0.98))
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(
            math.pi * min(1.0, s / steps)))))
    directions = {i for d in data.AUX_DIRS for i in tok.encode(" " + d)}
    t0, ema, ema_acc, ema_dir = time.time(), None, None, None
    with open(log_path, "w") as lf:
        for step in range(steps):
            samples, nv = [], 0
            while nv < vis_per_step:
                s = data.random_sample(rng, pool, tok, MERGED)
                samples.append(s)
                nv += len(s.chunks)
            loss, acc, acc_dir = batch_forward(model, samples, lut, directions)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
            opt.step()
            sched.step()
            ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
            ema_acc = acc if ema_acc is None else 0.95 * ema_acc + 0.05 * acc
            ema_dir = acc_dir if ema_dir is None else 0.95 * ema_dir + 0.05 * acc_dir
            lf.write(json.dumps({"step": step, "loss": round(loss.item(), 5), "acc": round(acc, 4),
                                 "acc_direction": round(acc_dir, 4),
                                 "chunks": nv, "s": round(time.time() - t0, 1)}) + "\n")
            if step % 50 == 0 or step == steps - 1:
                lf.flush()
                log("step %d/%d loss %.4f (ema %.4f) token acc %.3f, direction words %.3f, "
                    "%.0f s" % (step, steps, loss.item(), ema, ema_acc, ema_dir, time.time() - t0))
    return ema, ema_acc


def heldout_streams(seed):
    """Held-out scene schedules for the check after training (fresh renders, never in
    the pool): every held-out ball scene for 3 s, with other scenes between."""
    rng = random.Random(seed + 1000)
    C = list(S.COLORS)
    balls = [S.scene("ball", f, b, m) for f, b in sorted(S.HELD_OUT_PAIRS) for m in S.MOTIONS]
    balls += [S.scene("ball", f, b, m) for f, b, m in sorted(S.HELD_OUT_COMBOS)]
    rng.shuffle(balls)
    others = [S.scene("smpte"), S.scene("checkers-8"), S.scene("snow", "white", "black")] + \
             [S.scene("solid-color", c) for c in C]
    sched = []
    for k, b in enumerate(balls):
        sched.append((b, rng.randrange(0, 3000), 3))
        if k % 2:
            sched.append((rng.choice(others), rng.randrange(0, 3000), 1))
    return sched


def render_heldout(sched):
    """CLI-path frames (rendered at the source size, the engine's resize) and labels of sched."""
    r = S.SeekRenderer()
    frames, labels = [], []
    for s, t0, m in sched:
        for i in range(m):
            f = np.stack([r.frame(s, S.FPS * (t0 + i)), r.frame(s, S.FPS * (t0 + i) + S.FPS // 2)])
            labels.append(S.label(s, f[0], f[1]))
            frames.append(S.resize(f))
    r.close()
    return frames, labels


def evaluate(model, tok, frames, labels, policy):
    """Greedy streaming commentary through ModelSession (the engine's session in
    PyTorch); returns (exact, scene+colours) accuracy and the misses."""
    lut = vlm.pixel_lut(PREPROCESSOR)
    sess = ModelSession(model, Pieces(tok), Policy(*policy, 20), MERGED)
    ok = ok_sc = 0
    misses = []
    for n, (f, want) in enumerate(zip(frames, labels)):
        px = vlm.patchify(torch.from_numpy(f)[None], lut, model.cfg)[0]
        got = tok.decode(sess.push_chunk(px, GRID, float(n), float(n + 1))).strip()
        got = got[:-3].strip() if got.endswith("...") else got
        ok += got == want
        ok_sc += got.split(",")[0] == want.split(",")[0]
        if got != want:
            misses.append((n, want, got))
    return ok / len(labels), ok_sc / len(labels), misses


def export(model, tok, cfg_json, gen_json, out):
    """Write the model folder as Hugging Face lays one out (weights rounded to bf16)."""
    model.round_bf16()
    os.makedirs(out, exist_ok=True)
    for name, obj in (("config.json", cfg_json), ("generation_config.json", gen_json),
                      ("preprocessor_config.json", PREPROCESSOR)):
        with open(os.path.join(out, name), "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
    tok.save(os.path.join(out, "tokenizer.json"))
    model.save(os.path.join(out, "model.safetensors"))
    log("exported %s (%d bytes of weights)" % (out, os.path.getsize(
        os.path.join(out, "model.safetensors"))))


def build_tokenizer():
    tok = bpe.Tokenizer.build(data.corpus())
    tok.check(["Time", " ...", "\n", "=", ".", "-", "s"] + [str(d) for d in range(10)] +
              [" %s" % w for t in S.all_texts() for w in t.replace(",", "").split()])
    return tok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "default"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "default-model"))
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--vision-steps", type=int, default=1200)
    ap.add_argument("--eval-only", metavar="MODEL", help="evaluate an exported model")
    ap.add_argument("--init-only", metavar="DIR",
                    help="export the untrained model (seeded initial weights) to DIR: the "
                         "architecture alone, for the C-vs-PyTorch test")
    ap.add_argument("--circuit-check", action="store_true",
                    help="print how well the built-in motion circuit reads the direction "
                         "before training (on the work folder's pool), and stop")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-data", action="store_true", help="reuse the work folder's pool")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    t_all = time.time()
    torch.set_num_threads(a.threads)
    # Once attention sharpens, softmax underflows into denormals, and x86 computes with
    # those ~20x slower: a trained tower's forward + backward took 3.2 s with them, 1.7 s
    # flushed to zero (values under 1.2e-38, which change nothing the model computes).
    torch.set_flush_denormal(True)
    torch.manual_seed(a.seed)
    if a.eval_only:
        with open(os.path.join(a.eval_only, "config.json")) as f:
            model = vlm.VLM(vlm.Config(json.load(f)))
        model.load(os.path.join(a.eval_only, "model.safetensors"))
        model.eval()
        tok = bpe.Tokenizer.load(os.path.join(a.eval_only, "tokenizer.json"))
        frames, labels = render_heldout(heldout_streams(a.seed))
        for pol in data.POLICIES:
            ex, sc, misses = evaluate(model, tok, frames, labels, pol)
            log("held-out, policy %d/%d/%d/%d: exact %.3f, scene+colours %.3f" % (pol + (ex, sc)))
            for n, w, g in misses[:20]:
                log("   chunk %2d want %-32r got %r" % (n, w, g))
        return
    tok = build_tokenizer()
    cfg_json, gen_json = configs(tok)
    if a.init_only:
        model = vlm.VLM(vlm.Config(cfg_json))
        model.init_weights(torch.Generator().manual_seed(a.seed))
        export(model, tok, cfg_json, gen_json, a.init_only)
        return
    os.makedirs(a.work, exist_ok=True)
    log("tokenizer: %d ids, %d merges; vocab_size %d" % (tok.n_ids(), len(tok.merges),
                                                           cfg_json["vocab_size"]))

    data_dir = os.path.join(a.work, "data")
    if not a.skip_data:
        t = time.time()
        data.make_pool(data_dir, a.seed)
        log("data: rendered in %.0f s" % (time.time() - t))
    pool = data.Pool(data_dir)
    kinds = {}
    for e in pool.meta:
        kinds[e["path"]] = kinds.get(e["path"], 0) + 1
    log("data: %d chunks %s" % (len(pool), kinds))

    cfg = vlm.Config(cfg_json)
    model = vlm.VLM(cfg)
    gen = torch.Generator().manual_seed(a.seed)
    model.init_weights(gen)
    stem_init(model.w("visual.patch_embed.proj.weight").data)
    keep(model, motion_circuit(model))
    if a.circuit_check:
        sx, dr, n = circuit_check(model, pool)
        log("motion circuit as built, on %d moving pool chunks: the sign of MOTION_X right "
            "on %.3f of the mostly horizontal moves, the direction right on %.3f" % (n, sx, dr))
        return
    log("model: %d parameters" % sum(p.numel() for p in model.parameters()))
    frames, labels = render_heldout(heldout_streams(a.seed))
    lut = vlm.pixel_lut(PREPROCESSOR)
    head = torch.nn.Linear(model.cfg.hidden, AUX_OUT)  # training only, never exported
    probe = lambda: vision_probe(model, head, frames, labels, lut)
    t = time.time()
    pretrain_vision(model, head, pool, a.vision_steps, a.seed, probe)
    loss, acc = train(model, pool, tok, a.steps, a.seed, os.path.join(a.work, "train.log"))
    t_train = time.time() - t
    log("held-out vision probe scene/colour/background/direction/direction-at-the-ball: %s"
        % "/".join("%.3f" % v for v in probe()))
    log("trained %d steps in %.0f s: loss %.4f, token accuracy %.4f" % (a.steps, t_train, loss, acc))

    export(model, tok, cfg_json, gen_json, a.out)

    model.eval()
    held = {}
    for pol in data.POLICIES:
        ex, sc, misses = evaluate(model, tok, frames, labels, pol)
        held["%d/%d/%d/%d" % pol] = {"exact": round(ex, 4), "scene_colours": round(sc, 4)}
        log("held-out scenes, policy V/T/S/W %d/%d/%d/%d, %d chunks: exact %.3f, scene+colours "
            "%.3f" % (pol + (len(labels), ex, sc)))
        for n, w, g in misses[:12]:
            log("   chunk %2d want %-32r got %r" % (n, w, g))
    summary = {"train_seconds": round(t_train), "total_seconds": round(time.time() - t_all),
               "steps": a.steps, "final_loss_ema": round(loss, 5), "token_acc_ema": round(acc, 4),
               "heldout": held}
    with open(os.path.join(a.work, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    log("done in %.0f s: %s" % (time.time() - t_all, summary))


if __name__ == "__main__":
    main()
