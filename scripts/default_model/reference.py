#!/usr/bin/python3
"""reference.py — a stream fixture (docs/STREAM_FIXTURES.md layout) for a model folder,
made by this folder's PyTorch implementation, so `commentary check` can compare the C
engine with it: every chunk's pixel values, vision embeddings, retained ids/roles/
rounds after eviction, appended ids, 3-D positions, every prefill/decode logits row,
the greedy tokens and the final sequence.

    /usr/bin/python3 scripts/default_model/reference.py MODEL_DIR OUT_DIR [--chunks N]

Frames are drawn with numpy (a ball of one colour moving over another, solid screens)
at the model's frame size for a 16:9 source, so the model says real commentary and the session moves real commentary
into the previous text.  The policy is small (V = T = 3, S = 4, W = 6, M = 12) so that
every eviction step runs within a few chunks.  Also writes OUT_DIR/tokenize.json: strings
and this tokenizer's ids, for comparing with the C tokenizer.
Needs python3-torch and python3-numpy only.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np
import torch

import bpe
import vlm
from session import ModelSession, Pieces, Policy

COLORS = {"black": (0, 0, 0), "white": (255, 255, 255), "red": (255, 0, 0),
          "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}


def draw(k, h, w):
    """Chunk k's two frames: balls moving in different directions, a solid screen
    (positions in fractions of the frame)."""
    plan = [("red", "blue", (.15, .2), (.3, .2)), ("red", "blue", (.3, .2), (.45, .2)),
            ("white", "black", (.7, .8), (.7, .55)), ("yellow", None, None, None),
            ("green", "white", (.45, .4), (.3, .4)), ("blue", "yellow", (.1, .2), (.11, .2)),
            ("black", "green", (.9, .25), (.9, .5)), ("white", "red", (.5, .5), (.4, .35))]
    fg, bg, p0, p1 = plan[k % len(plan)]
    out = np.empty((2, h, w, 3), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    for f, p in enumerate((p0, p1)):
        if bg is None:
            out[f] = COLORS[fg]
            continue
        out[f] = COLORS[bg]
        out[f][(xx - p[0] * w) ** 2 + (yy - p[1] * h) ** 2 <= (w / 64) ** 2] = COLORS[fg]
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    model_dir, out = sys.argv[1], sys.argv[2]
    n_chunks = int(sys.argv[sys.argv.index("--chunks") + 1]) if "--chunks" in sys.argv else 10
    torch.set_num_threads(2)
    cfg = vlm.Config.load(model_dir)
    model = vlm.VLM(cfg)
    model.load(os.path.join(model_dir, "model.safetensors"))
    with open(os.path.join(model_dir, "preprocessor_config.json")) as f:
        pre = json.load(f)
    lut = vlm.pixel_lut(pre)
    tok = bpe.Tokenizer.load(os.path.join(model_dir, "tokenizer.json"))
    pc = Pieces(tok, previous_text="This is a test stream.", query="Commentate on this match")
    pol = Policy(V=3, T=3, S=4, W=6, M=12)
    H, W = vlm.frame_size(pre)  # what the daemon feeds: a 16:9 source's size
    grid = (1, H // cfg.patch, W // cfg.patch)
    merged = (1, grid[1] // 2, grid[2] // 2)
    os.makedirs(os.path.join(out, "ref"), exist_ok=True)
    arrays = {}

    def put(name, a, dtype):
        a = np.ascontiguousarray(np.asarray(a), dtype=dtype)
        a.tofile(os.path.join(out, "ref", name + ".bin"))
        arrays[name] = {"file": name + ".bin", "dtype": np.dtype(dtype).name,
                        "shape": list(a.shape)}

    state = {"logits": [], "appended_from": 0, "forwarded": 0}

    def hook(stage, x):
        c = "c%02d_" % sess.chunk
        if stage == "evicted":
            state["appended_from"] = len(sess.ids)
            if sess.chunk > 0:
                put(c + "evicted_ids", sess.ids, np.int64)
                put(c + "evicted_roles", sess.roles, np.int32)
                put(c + "evicted_rounds", sess.rounds, np.int32)
        elif stage == "vision":
            put(c + "video_embeds", x.numpy(), np.float32)
        elif stage == "prompt":
            put(c + "appended_ids", sess.ids[state["appended_from"]:], np.int64)
            put(c + "prompt_positions", x.numpy(), np.int64)
        elif stage == "logits":
            state["logits"].append(x.numpy().copy())
        elif stage == "final":
            put(c + "logits", np.stack(state["logits"]), np.float32)
            state["logits"] = []
            put(c + "generated_ids", x, np.int64)
            put(c + "final_ids", sess.ids, np.int64)
            put(c + "final_roles", sess.roles, np.int32)
            put(c + "final_rounds", sess.rounds, np.int32)

    sess = ModelSession(model, pc, pol, merged, hook)
    texts = []
    for k in range(n_chunks):
        fr = draw(k, H, W)
        put("c%02d_frames_uint8" % k, fr, np.uint8)
        px = vlm.patchify(torch.from_numpy(fr)[None], lut, cfg)[0]
        put("c%02d_pixel_values_videos" % k, px.numpy(), np.float32)
        gen = sess.push_chunk(px, grid, float(k), float(k + 1))
        texts.append(tok.decode(gen))
    serials = sum(len(np.fromfile(os.path.join(out, "ref", "c%02d_appended_ids.bin" % k),
                                  np.int64)) + 20 for k in range(n_chunks))
    tt = {ch: pc.time[ch] for ch in ("Time", "=", ".", "-", "s")}
    manifest = {
        "format_version": 1, "kind": "stream",
        "generator": "scripts/default_model/reference.py (commentaryd's PyTorch Qwen2.5-VL)",
        "policy": {"T": pol.T, "V": pol.V, "S": pol.S, "W": pol.W, "M": pol.M,
                   "window_off_by_one": pol.off_by_one},
        "pieces": {"newline": pc.newline, "im_end": pc.im_end, "vision_start": pc.vision_start,
                   "vision_end": pc.vision_end, "video_pad": pc.video_pad,
                   "time_tokens": tt, "digit_tokens": [pc.time[str(d)] for d in range(10)],
                   "system_block": pc.system_block, "previous_text_header": pc.prev_header,
                   "previous_text_initial": pc.prev_initial,
                   "previous_text_footer": pc.prev_footer, "user_header": pc.user_header,
                   "query": pc.query, "user_footer": pc.user_footer,
                   "assistant_header": pc.assistant_header},
        "n_chunks": n_chunks, "frame_height": H, "frame_width": W,
        "kv_serials_total": serials, "texts": texts, "arrays": arrays,
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    strings = ["<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
               "<|im_start|>previous text\n", "This is a test stream.", "Commentate on this match",
               "Describe what happens on screen.", "Time=12.0-13.0s", "\n",
               " red ball on blue, moving left ...", " solid yellow screen ...",
               " color bars ...", "What's new? 42 balls, 3.5 s...", "<|im_end|>\n"]
    with open(os.path.join(out, "tokenize.json"), "w") as f:
        json.dump([{"text": s, "ids": tok.encode(s)} for s in strings], f)
    print("reference: %d chunks -> %s" % (n_chunks, out))
    for k, t in enumerate(texts):
        print("  chunk %d: %r" % (k, t))


if __name__ == "__main__":
    main()
