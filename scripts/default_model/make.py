#!/usr/bin/python3
"""make.py — `make default-model`: tokenizer, data, training and export of the default
model (models/default), reproducibly on the CPU with Debian's python3-torch.

    /usr/bin/python3 scripts/default_model/make.py [--out models/default]
        [--work build/default-model] [--steps N] [--seed N] [--skip-data]

Steps: 1. the tokenizer (bpe.py) from the product's strings; 2. the chunk pool
(data.py, two render processes, ~5 min); 3. training (AdamW, warmup + cosine, ~16
chunks of vision per step, every retained round's commentary is a target); 4. export:
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
VISION = {"depth": 4, "hidden_size": 64, "num_heads": 4, "intermediate_size": 128,
          "patch_size": 14, "temporal_patch_size": 2, "spatial_merge_size": 2,
          "in_chans": 3, "window_size": 112, "fullatt_block_indexes": [3],
          "tokens_per_second": 2, "hidden_act": "silu"}
TEXT = {"hidden_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4,
        "num_key_value_heads": 2, "intermediate_size": 384}
PREPROCESSOR = {"min_pixels": 100 * 28 * 28, "max_pixels": 100 * 28 * 28, "patch_size": 14,
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
           "rope_theta": 1000000.0,
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


def batch_forward(model, samples, lut):
    """Mean cross-entropy over the samples' targets (and the token accuracy)."""
    chunks = [c for s in samples for c in s.chunks]
    fr = torch.from_numpy(np.stack([c.frames() for c in chunks]))
    vis = model.vision(vlm.patchify(fr, lut, model.cfg), GRID)
    loss, n_tok, n_ok, k = 0.0, 0, 0, 0
    for s in samples:
        nv = len(s.chunks)
        v = vis[k:k + nv].reshape(-1, vis.shape[-1])
        k += nv
        ids = torch.tensor(s.ids)
        tg = torch.tensor(s.targets)
        logits = model.llm(ids, s.pos, v, logits_rows=tg - 1)
        loss = loss + torch.nn.functional.cross_entropy(logits, ids[tg], reduction="sum")
        n_tok += len(tg)
        n_ok += int((logits.argmax(-1) == ids[tg]).sum())
    return loss / n_tok, n_ok / n_tok


def train(model, pool, tok, steps, seed, log_path, vis_per_step=16):
    rng = random.Random(seed)
    lut = vlm.pixel_lut(PREPROCESSOR)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    other = [p for n, p in model.named_parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": other, "weight_decay": 0.0}], lr=2e-3, betas=(0.9, 0.98))
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(
            math.pi * min(1.0, s / steps)))))
    t0, ema, ema_acc = time.time(), None, None
    with open(log_path, "w") as lf:
        for step in range(steps):
            samples, nv = [], 0
            while nv < vis_per_step:
                s = data.random_sample(rng, pool, tok, MERGED)
                samples.append(s)
                nv += len(s.chunks)
            loss, acc = batch_forward(model, samples, lut)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
            ema_acc = acc if ema_acc is None else 0.95 * ema_acc + 0.05 * acc
            lf.write(json.dumps({"step": step, "loss": round(loss.item(), 5), "acc": round(acc, 4),
                                 "chunks": nv, "s": round(time.time() - t0, 1)}) + "\n")
            if step % 50 == 0 or step == steps - 1:
                lf.flush()
                log("step %d/%d loss %.4f (ema %.4f) token acc %.3f, %.0f s" %
                    (step, steps, loss.item(), ema, ema_acc, time.time() - t0))
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
    """CLI-path frames (1280x720 rendered, the engine's resize) and labels of sched."""
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "default"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "default-model"))
    ap.add_argument("--steps", type=int, default=1400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-data", action="store_true", help="reuse the work folder's pool")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    t_all = time.time()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.work, exist_ok=True)

    tok = bpe.Tokenizer.build(data.corpus())
    tok.check(["Time", " ...", "\n", "=", ".", "-", "s"] + [str(d) for d in range(10)] +
              [" %s" % w for t in S.all_texts() for w in t.replace(",", "").split()])
    cfg_json, gen_json = configs(tok)
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
    log("model: %d parameters" % sum(p.numel() for p in model.parameters()))
    t = time.time()
    loss, acc = train(model, pool, tok, a.steps, a.seed, os.path.join(a.work, "train.log"))
    t_train = time.time() - t
    log("trained %d steps in %.0f s: loss %.4f, token accuracy %.4f" % (a.steps, t_train, loss, acc))

    model.round_bf16()
    os.makedirs(a.out, exist_ok=True)
    for name, obj in (("config.json", cfg_json), ("generation_config.json", gen_json),
                      ("preprocessor_config.json", PREPROCESSOR)):
        with open(os.path.join(a.out, name), "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
    tok.save(os.path.join(a.out, "tokenizer.json"))
    model.save(os.path.join(a.out, "model.safetensors"))
    log("exported %s (%d bytes of weights)" % (a.out, os.path.getsize(
        os.path.join(a.out, "model.safetensors"))))

    model.eval()
    frames, labels = render_heldout(heldout_streams(a.seed))
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
