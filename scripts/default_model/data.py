"""data.py — the training data of the default model: a pool of rendered 1-s chunks, and
training samples laid out exactly as the streaming session runs them.

Pool (made once by `make default-model`, build/default-model/data/): segments of
consecutive chunks of one scene, each chunk its two frames at the model's input size
(364x196) and its commentary.  Three ways in, as in the product:
  cli     SeekRenderer at 1280x720, resized by the engine's resize (`commentary run`);
  daemon  SeekRenderer through videoconvert ! videoscale to 364x196 (the daemon's ingest);
  h264    clips with scene changes, x264enc (ultrafast/superfast/veryfast, 1-4 Mbit/s)
          and avdec_h264, then the engine's resize (what `commentary run` sees in an MP4).
Held-out ball scenes (scenes.HELD_OUT_*) never enter the pool.  Two worker processes
with fixed job lists (videotestsrc's snow generator is per-process state, so the same
jobs in the same order give the same bytes).

Samples: a stream of pool chunks (runs of consecutive chunks of random segments, ball
runs flipped / time-reversed with their labels mapped), a policy (V = T, S, W: the
daemon's scaled-down 4/4/64/64, the CLI's 16/16/512/512, or random), a chunk index, time
offset, query and previous text; session.Stream lays the retained sequence out with
every earlier round's label as its commentary (a quarter of them replaced by a wrong
one, so that the picture, not the history, decides); the loss is on each retained round's
commentary + <|im_end|>, except the replaced ones.
"""
import json
import multiprocessing as mp
import os
import random

import numpy as np

import scenes as S

QUERIES = ["Commentate on this match", "Describe what happens on screen.",
           "What do you see?", "Describe the video.", "Comment on the test pattern.", ""]
PREVIOUS = ["", "", "", "", "", "", "", "This is a test stream.",
            "GStreamer test source, live.", "A camera feed from the lab."]
SYSTEM = "You are a helpful assistant."
# (V, T, S, W): the shipped daemon config, the CLI's StreamingVLM defaults, then others
POLICIES = [(4, 4, 64, 64), (16, 16, 512, 512)]
ALL_TEXTS = S.all_texts()
WRONG_HISTORY = 0.25  # chance that an earlier round's commentary is replaced (random_sample)


def corpus():
    """Every string the prompts and the commentary are made of (the tokenizer's)."""
    out = ["<|im_start|>system\n%s<|im_end|>\n<|im_start|>previous text\n<|im_end|>\n"
           "<|im_start|>user\nTime=0.0-1.0s<|vision_start|><|video_pad|><|vision_end|>"
           "<|im_end|>\n<|im_start|>assistant\n" % SYSTEM]
    out += QUERIES + PREVIOUS
    out += [" " + t + " ..." for t in S.all_texts()]
    return out


# ---- the pool ---------------------------------------------------------------------------

def plan(seed=0):
    """Deterministic job lists for the two workers.  A job is ("seek", size, [(scene,
    start_second, n), ...]) or ("clip", encoder, [(scene, n), ...])."""
    rng = random.Random(seed)
    C = list(S.COLORS)
    balls = [S.scene("ball", f, b, m) for f in C for b in C if f != b for m in S.MOTIONS]
    balls = [s for s in balls if not S.held_out(s)]
    pairs = [(f, b) for f in C for b in C if f != b]
    start = lambda: rng.randrange(0, 3600)

    def static(size, k):
        segs = [(S.scene("smpte"), start(), 3) for _ in range(2 * k)]
        segs += [(S.scene("checkers-8"), start(), 3) for _ in range(k)]
        segs += [(S.scene("solid-color", c), start(), 3) for c in C for _ in range(k)]
        segs += [(S.scene("snow", f, b), start(), 3) for f, b in pairs[::3 - k]]
        return ("seek", size, segs)

    jobs = [("seek", None, [(s, start(), 4) for s in balls for _ in range(4)]),
            ("seek", (S.MODEL_W, S.MODEL_H), [(s, start(), 4) for s in balls]),
            static(None, 2), static((S.MODEL_W, S.MODEL_H), 1)]
    encoders = ["x264enc speed-preset=%s bitrate=%d" % (p, b)
                for p in ("ultrafast", "superfast", "veryfast") for b in (1024, 2048, 4096)]
    for k in range(8):
        sched, n = [], 0
        while n < 40:
            u = rng.random()
            if u < 0.5:
                s = rng.choice(balls)
            elif u < 0.7:
                s = S.scene("snow", *rng.choice(pairs))
            elif u < 0.8:
                s = S.scene("smpte")
            elif u < 0.9:
                s = S.scene("checkers-8")
            else:
                s = S.scene("solid-color", rng.choice(C))
            m = rng.randint(2, 6)
            sched.append((s, m))
            n += m
        jobs.append(("clip", encoders[k % len(encoders)] if k < 6 else rng.choice(encoders), sched))
    # static partition, costs roughly balanced: worker 0 the CLI balls, 1 the rest
    return [[jobs[0]], jobs[1:]]


def run_jobs(jobs, out_prefix):
    import torch
    torch.set_num_threads(1)
    frames, meta = [], []
    seg = 0
    for kind, arg, items in jobs:
        if kind == "seek":
            r = S.SeekRenderer(arg)
            path = "daemon" if arg else "cli"
            for s, t0, n in items:
                fr = np.stack([np.stack([r.frame(s, S.FPS * (t0 + i)),
                                         r.frame(s, S.FPS * (t0 + i) + S.FPS // 2)])
                               for i in range(n)])
                labels = [S.label(s, f[0], f[1]) for f in fr]
                if arg is None:
                    fr = S.resize(fr.reshape(-1, S.SRC_H, S.SRC_W, 3)).reshape(
                        n, 2, S.MODEL_H, S.MODEL_W, 3)
                for i in range(n):
                    frames.append(fr[i])
                    meta.append({"scene": list(s), "label": labels[i], "seg": seg, "path": path})
                seg += 1
            r.close()
        else:
            labels, sc, raw, dec = S.render_clip(items, encoder=arg, decode=True)
            dec = S.resize(dec.reshape(-1, S.SRC_H, S.SRC_W, 3)).reshape(
                len(labels), 2, S.MODEL_H, S.MODEL_W, 3)
            prev = None
            for i in range(len(labels)):
                if sc[i] != prev:
                    seg += 1
                    prev = sc[i]
                frames.append(dec[i])
                meta.append({"scene": list(sc[i]), "label": labels[i], "seg": seg, "path": "h264"})
            seg += 1
    np.save(out_prefix + ".npy", np.stack(frames))
    with open(out_prefix + ".json", "w") as f:
        json.dump(meta, f)


def make_pool(out_dir, seed=0):
    os.makedirs(out_dir, exist_ok=True)
    parts = plan(seed)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=run_jobs, args=(jobs, os.path.join(out_dir, "part%d" % k)))
             for k, jobs in enumerate(parts)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit("data: a render worker failed (exit %d)" % p.exitcode)


class Pool:
    def __init__(self, out_dir):
        fr, meta, off = [], [], 0
        for k in range(2):
            fr.append(np.load(os.path.join(out_dir, "part%d.npy" % k)))
            with open(os.path.join(out_dir, "part%d.json" % k)) as f:
                m = json.load(f)
            for e in m:
                e["seg"] = (k, e["seg"])
            meta += m
        self.frames = np.concatenate(fr)
        self.meta = meta
        segs = {}
        for i, e in enumerate(meta):
            segs.setdefault(e["seg"], []).append(i)
        self.by_kind = {}
        for idx in segs.values():
            self.by_kind.setdefault(meta[idx[0]]["scene"][0], []).append(idx)

    def __len__(self):
        return len(self.meta)


# ---- samples ---------------------------------------------------------------------------

FLIP = {"h": {"left": "right", "right": "left"}, "v": {"up": "down", "down": "up"}}
AUX_DIRS = ("left", "right", "up", "down", "still")
AUX_T = 19  # columns of Chunk.aux_targets


def random_colour(rng):
    """An RGB colour whose channels are often 0 or 255 (the named colours are corners
    of the cube) and otherwise anywhere."""
    return np.array([rng.choice((0, 255)) if rng.random() < 0.5 else rng.randrange(256)
                     for _ in range(3)], np.float32)


def nearest(c):
    """The named colour nearest to RGB c."""
    return min(S.COLORS, key=lambda n: float(((S.rgb(n) - c) ** 2).sum()))


def flipped_label(label, h, v, rev):
    if ", moving " not in label:
        return label
    head, d = label.rsplit(" ", 1)
    if h:
        d = FLIP["h"].get(d, d)
    if v:
        d = FLIP["v"].get(d, d)
    if rev:
        d = {"left": "right", "right": "left", "up": "down", "down": "up"}[d]
    return head + " " + d


class Chunk:
    """A pool chunk as one stream round: its frames (or, shifted, the second frame of
    chunk i and the first of chunk i + 1: the chunk half a second later; frozen: the
    first frame twice), flipped and time-reversed as asked, and its commentary."""

    def __init__(self, pool, i, h=False, v=False, rev=False, shift=False, frozen=False):
        self.pool, self.i, self.h, self.v, self.rev = pool, i, h, v, rev
        self.shift, self.frozen = shift, frozen
        if shift or frozen:
            s = S.Scene(*pool.meta[i]["scene"])
            f = self.frames()
            self.label = S.label(s, f[0], f[1])
        else:
            self.label = flipped_label(pool.meta[i]["label"], h, v, rev)

    def recoloured(self, rng):
        """Training-only (the vision stage): the chunk's frames with the ball and its
        background (or a solid screen) repainted in random colours, and the aux targets
        of the repainted chunk (aux_targets).  Any colour, not just the six, so that the
        vision tower cannot learn colour pairs by heart: what it learns is the colour of
        the ball and the colour around it, which carries over to pairs never seen.
        Colours whose nearest named colours make a held-out pair are never drawn."""
        s = S.Scene(*self.pool.meta[self.i]["scene"])
        f = self.frames()
        if s.pattern not in ("ball", "solid-color") or rng.random() < 0.25:
            return f, self.aux_targets(f, s, S.rgb(s.fg), S.rgb(s.bg))
        while True:
            fg, bg = random_colour(rng), random_colour(rng)
            if np.abs(fg - bg).max() >= 96 and (nearest(fg), nearest(bg)) not in S.HELD_OUT_PAIRS:
                break
        if s.pattern == "solid-color":
            out = np.broadcast_to(fg.astype(np.uint8), f.shape)
        else:
            F, B = S.rgb(s.fg).astype(np.float32), S.rgb(s.bg).astype(np.float32)
            d = F - B
            a = ((f.astype(np.float32) - B) @ d / float(d @ d)).clip(-0.25, 1.25)[..., None]
            out = (bg + a * (fg - bg)).round().clip(0, 255).astype(np.uint8)
        return np.ascontiguousarray(out), self.aux_targets(f, s, fg, bg)

    def aux_targets(self, f, s, fg, bg, unit=28):
        """Per merged token of frames f (pixels of the named scene s): [tokens, AUX_T]
        = ball presence in frame 0 and 1 (fraction of the token's unit x unit pixels
        closer to the ball's colour than the background's), the token's colour / 255
        (the ball's where the ball is, else the background's; NaN: not applicable), then
        the chunk's scene, fg colour / 255, bg colour / 255, direction class, and
        displacement (dx, dy) / frame width, the same on every token, then the ball's
        centroid in frame 0 and in frame 1 relative to the token's centre / frame
        width."""
        h, w = f.shape[1] // unit, f.shape[2] // unit
        out = np.full((h * w, AUX_T), np.nan, np.float32)
        out[:, :2] = 0.0
        out[:, 5] = S.PATTERNS.index(s.pattern)
        if s.pattern == "ball":
            for t in range(2):
                x = f[t].astype(np.int32)
                m = ((x - S.rgb(s.fg)) ** 2).sum(-1) < ((x - S.rgb(s.bg)) ** 2).sum(-1)
                out[:, t] = m.reshape(h, unit, w, unit).mean((1, 3)).reshape(-1)
            ball = out[:, 0] + out[:, 1] > 0.2
            out[:, 2:5] = np.where(ball[:, None], fg, bg) / 255.0
            dx, dy = S.displacement(f[0], f[1], s.fg, s.bg)
            out[:, 6:9], out[:, 9:12] = fg / 255.0, bg / 255.0
            out[:, 12] = AUX_DIRS.index(self.label.rsplit(" ", 1)[1])
            out[:, 13], out[:, 14] = dx / f.shape[2], dy / f.shape[2]
            # where the ball is from each token, in each frame: dense targets whose
            # difference between the frames is the motion, the same for every token
            v, u = np.divmod(np.arange(h * w), w)
            for t in range(2):
                c = S.centroid(f[t], s.fg, s.bg)
                if c is not None:
                    out[:, 15 + 2 * t] = (c[0] - (u + 0.5) * unit) / f.shape[2]
                    out[:, 16 + 2 * t] = (c[1] - (v + 0.5) * unit) / f.shape[2]
        elif s.pattern == "solid-color":
            out[:, 2:5] = out[:, 6:9] = fg / 255.0
        return out

    def frames(self):
        fr = self.pool.frames
        f = np.stack([fr[self.i][1], fr[self.i + 1][0]]) if self.shift else fr[self.i]
        if self.frozen:
            f = np.stack([f[0], f[0]])
        if self.h:
            f = f[:, :, ::-1]
        if self.v:
            f = f[:, ::-1]
        if self.rev:
            f = f[::-1]
        return np.ascontiguousarray(f)


def random_stream(rng, pool, n):
    """n chunks: runs of 1-6 consecutive chunks of random segments (ball runs flipped,
    time-reversed or shifted by half a second at random)."""
    kinds = [("ball", 0.6), ("snow", 0.1), ("smpte", 0.1), ("checkers-8", 0.1),
             ("solid-color", 0.1)]
    out = []
    while len(out) < n:
        u, acc = rng.random(), 0.0
        for kind, p in kinds:
            acc += p
            if u < acc:
                break
        seg = rng.choice(pool.by_kind[kind])
        shift = kind == "ball" and len(seg) > 1 and rng.random() < 0.5
        avail = len(seg) - (1 if shift else 0)
        m = min(rng.randint(1, 6), avail)
        a = rng.randrange(0, avail - m + 1)
        idx = seg[a:a + m]
        h = v = rev = False
        if kind == "ball":
            h, v, rev = rng.random() < 0.5, rng.random() < 0.5, rng.random() < 0.5
            if rev:
                idx = idx[::-1]
        out += [Chunk(pool, i, h, v, rev, shift, kind == "ball" and rng.random() < 0.02)
                for i in idx]
    return out[:n]


class Sample:
    """One training sequence: ids, positions, the chunks whose vision it holds (in pad
    order) and the target index list (predict ids[j] from position j-1)."""

    def __init__(self, ids, pos, chunks, targets):
        self.ids, self.pos, self.chunks, self.targets = ids, pos, chunks, targets


def random_sample(rng, pool, tok, merged_grid):
    from session import Pieces, Policy, Stream, VIDEO_PAD, ASSISTANT_CONTENT, ASSISTANT_END
    u = rng.random()
    if u < 0.35:
        V, T, Sk, W = POLICIES[0]
    elif u < 0.5:
        V, T, Sk, W = POLICIES[1]
    else:
        V = T = rng.choice([1, 2, 3, 5, 6, 8, 12])
        Sk, W = rng.choice([0, 4, 16, 32, 128, 256]), rng.choice([1, 8, 32, 64, 128, 256])
    i = rng.randrange(0, T) if rng.random() < 0.3 else rng.randrange(T, T + 9)
    offset = 0 if rng.random() < 0.6 else rng.randrange(1, 20000)
    pc = Pieces(tok, SYSTEM, rng.choice(PREVIOUS), rng.choice(QUERIES))
    st = Stream(pc, Policy(V, T, Sk, W, 20), merged_grid)
    chunks = random_stream(rng, pool, i + 1)
    requery = rng.randrange(1, i + 1) if i > 0 and rng.random() < 0.1 else -1
    content, wrong = {}, set()
    for k, ch in enumerate(chunks):
        if k == requery:
            st.set_query(tok.encode(rng.choice(QUERIES[:-1])))
        text = ch.label
        # Consecutive chunks mostly share a label, so a model trained on true history
        # learns to repeat its previous answer and, once wrong, stays wrong.  Some earlier
        # rounds therefore say something else (and are not targets): the picture decides.
        if k < i and rng.random() < WRONG_HISTORY:
            text = rng.choice([t for t in ALL_TEXTS if t != ch.label])
            wrong.add(k)
        c = content.setdefault(text, tok.encode(" " + text + " ..."))
        st.step_text(float(offset + k), float(offset + k + 1), c)
    vis_rounds = []
    for j in range(len(st.ids)):
        if st.roles[j] == VIDEO_PAD and (j == 0 or st.roles[j - 1] != VIDEO_PAD):
            vis_rounds.append(st.rounds[j])
    have = set(vis_rounds)
    targets = [j for j in range(len(st.ids))
               if st.roles[j] in (ASSISTANT_CONTENT, ASSISTANT_END) and st.rounds[j] in have
               and st.rounds[j] not in wrong]
    return Sample(st.ids, st.positions(), [chunks[r] for r in vis_rounds], targets)
