"""data.py — the training data of the default model: a pool of rendered 1-s chunks, and
training samples laid out exactly as the streaming session runs them.

Pool (made once by `make default-model`, build/default-model/data/): segments of
consecutive chunks of one scene, each chunk its two frames at the model's input size
(252x140) and its commentary.  Three ways in, as in the product:
  cli     SeekRenderer at the source size, resized by the engine's resize (`commentary run`);
  daemon  SeekRenderer through videoconvert ! videoscale to 252x140 (the daemon's ingest);
  h264    clips with scene changes, x264enc (ultrafast/superfast/veryfast, 1-4 Mbit/s)
          and avdec_h264, then the engine's resize (what `commentary run` sees in an MP4).
Held-out ball scenes (scenes.HELD_OUT_*) never enter the pool.  Two worker processes
with fixed job lists (videotestsrc's snow generator is per-process state, so the same
jobs in the same order give the same bytes).

Samples: a stream of pool chunks (runs of consecutive chunks of random segments, ball
runs flipped / time-reversed with their labels mapped), a policy (V = T, S, W: a
scaled-down 4/4/64/64, StreamingVLM's 16/16/512/512 (the daemon's and the CLI's), or
random), a chunk index, time offset, query and previous text; session.Stream lays the
retained sequence out with every earlier round's label as its commentary (a quarter of
them replaced by a wrong one, so that the picture, not the history, decides); the loss is
on each retained round's commentary + <|im_end|>, except the replaced ones.

Vision batches (FrameTable, vision_batch): single chunks for the vision tower's own
stage, built in torch over the batch, with per-token and per-chunk targets.
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
# (V, T, S, W): scaled down, then StreamingVLM's (the shipped config's and the CLI's)
POLICIES = [(4, 4, 64, 64), (16, 16, 512, 512)]
ALL_TEXTS = S.all_texts()
WRONG_HISTORY = 0.35  # chance that an earlier round's commentary is replaced (random_sample)
REPAINT = 0.5  # chance that a ball run of random_stream is repainted in another trained pair


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
    first frame twice), flipped, time-reversed and repainted in another colour pair
    (paint: (fg, bg) names) as asked, and its commentary."""

    def __init__(self, pool, i, h=False, v=False, rev=False, shift=False, frozen=False,
                 paint=None):
        self.pool, self.i, self.h, self.v, self.rev = pool, i, h, v, rev
        self.shift, self.frozen, self.paint = shift, frozen, paint
        s = S.Scene(*pool.meta[i]["scene"])
        if shift or frozen:
            f = self.frames()
            self.label = S.label(s._replace(fg=paint[0], bg=paint[1]) if paint else s,
                                 f[0], f[1])
        else:
            self.label = flipped_label(pool.meta[i]["label"], h, v, rev)
            if paint:
                self.label = "%s ball on %s,%s" % (paint[0], paint[1],
                                                   self.label.split(",", 1)[1])

    def frames(self):
        fr = self.pool.frames
        f = np.stack([fr[self.i][1], fr[self.i + 1][0]]) if self.shift else fr[self.i]
        if self.frozen:
            f = np.stack([f[0], f[0]])
        if self.paint:
            s = S.Scene(*self.pool.meta[self.i]["scene"])
            f = repaint(f, S.rgb(s.fg), S.rgb(s.bg), S.rgb(self.paint[0]), S.rgb(self.paint[1]))
        if self.h:
            f = f[:, :, ::-1]
        if self.v:
            f = f[:, ::-1]
        if self.rev:
            f = f[::-1]
        return np.ascontiguousarray(f)


def repaint(f, fg, bg, nfg, nbg):
    """Frames f ([..., 3], 0-255) of a fg ball on bg, as uint8 with the ball nfg on nbg
    (RGB arrays): each pixel keeps where it lies between bg and fg (the anti-aliased
    edge, the codec's ringing)."""
    d = (fg - bg).astype(np.float32)
    al = np.clip((f.astype(np.float32) - bg) @ d / float(d @ d), -0.25, 1.25)
    return np.clip(np.rint(nbg + al[..., None] * (nfg - nbg).astype(np.float32)),
                   0, 255).astype(np.uint8)


# The colour pairs a ball run may be repainted in: the trained ones (random_stream also
# leaves out the held-out pair + motion combinations).
TRAIN_PAINTS = [(f, b) for f in S.COLORS for b in S.COLORS
                if f != b and (f, b) not in S.HELD_OUT_PAIRS]


def random_stream(rng, pool, n):
    """n chunks: runs of 1-6 consecutive chunks of random segments (ball runs flipped,
    time-reversed, shifted by half a second or repainted in another trained colour pair
    at random: every pair then comes with every motion and place, and the commentary's
    colour words have to come from the colours, not from how the ball moves)."""
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
        paint = None
        if kind == "ball":
            h, v, rev = rng.random() < 0.5, rng.random() < 0.5, rng.random() < 0.5
            if rev:
                idx = idx[::-1]
            motion = pool.meta[seg[0]]["scene"][3]
            if rng.random() < REPAINT:
                paint = rng.choice([p for p in TRAIN_PAINTS
                                    if p + (motion,) not in S.HELD_OUT_COMBOS])
        out += [Chunk(pool, i, h, v, rev, shift, kind == "ball" and rng.random() < 0.02,
                      paint) for i in idx]
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


# ---- the vision stage's batches ------------------------------------------------------------

class FrameTable:
    """The pool as single frames for the vision stage, with what its targets need
    computed once: per frame the ball's centroid (pixels, NaN: no ball) and per merged
    token (unit x unit pixels) the fraction covered by the ball.  Any two frames half a
    second apart in one segment make a chunk: the pool's own pairs (30 i, 30 i + 15) and
    the shifted ones (30 i + 15, 30 (i + 1)), so twice the motions of the chunks."""

    def __init__(self, pool, unit=28):
        import torch
        n, _, h, w, _ = pool.frames.shape
        self.h, self.w, self.unit = h, w, unit
        self.frames = torch.from_numpy(pool.frames.reshape(2 * n, h, w, 3))
        self.scene = [S.Scene(*pool.meta[i // 2]["scene"]) for i in range(2 * n)]
        self.centroid = np.full((2 * n, 2), np.nan, np.float32)
        self.cover = np.zeros((2 * n, h // unit, w // unit), np.float32)
        for i in range(2 * n):
            s = self.scene[i]
            if s.pattern != "ball":
                continue
            f = pool.frames[i // 2, i % 2]
            m = S.ball_mask(f, s.fg, s.bg)
            self.cover[i] = m.reshape(h // unit, unit, w // unit, unit).mean((1, 3))
            c = S.centroid(f, s.fg, s.bg, m)
            if c is not None:
                self.centroid[i] = c
        self.pairs = {}
        for idx in pool.by_kind.values():
            for seg in idx:
                kind = pool.meta[seg[0]]["scene"][0]
                p = [(2 * i, 2 * i + 1) for i in seg]
                if kind == "ball":  # the chunk half a second later
                    p += [(2 * i + 1, 2 * j) for i, j in zip(seg, seg[1:]) if j == i + 1]
                self.pairs.setdefault(kind, []).extend(p)


def vision_batch(rng, table, n, cfg, mean, std, recolour=0.75):
    """n chunks for the vision stage: (pixels [n, Np, 3*2*14*14] as vlm.patchify lays
    them out, normalised by the preprocessor's mean and std [3] in float arithmetic:
    the same values as the engine's byte table, 3x faster; targets dict).  Ball chunks
    are flipped and time-reversed at random, ball and solid chunks mostly repainted in
    random colours (any colour, not just the six, never one whose nearest named colours
    make a held-out pair), so that the tower learns the colour of the ball and the
    colour around it, not the colour pairs it saw.  Targets, per merged token (rows of
    the token grid in natural order):
    'cover' [n, N, 2] whether the ball touches the token in each frame (1 or 0),
    'colour' [n, N, 3] what the token shows (the ball's colour where it is, else the
    background's; NaN for patterns without one); per chunk: 'scene' [n], 'fg' / 'bg'
    [n, 3] (NaN: none), 'dir' [n] (AUX_DIRS index, -1: not a ball), 'disp' [n, 2]
    (displacement / frame width, NaN: not a ball)."""
    import torch
    import vlm
    kinds = [("ball", 0.6), ("snow", 0.1), ("smpte", 0.1), ("checkers-8", 0.1),
             ("solid-color", 0.1)]
    h, w, u = table.h, table.w, table.unit
    frames = torch.empty(n, 2, h, w, 3)
    cover = torch.zeros(n, 2, h // u, w // u)
    colour = torch.full((n, h // u * (w // u), 3), float("nan"))
    scene = torch.zeros(n, dtype=torch.long)
    fgs, bgs = torch.full((n, 3), float("nan")), torch.full((n, 3), float("nan"))
    dirs = torch.full((n,), -1, dtype=torch.long)
    disp = torch.full((n, 2), float("nan"))
    for k in range(n):
        uu, acc = rng.random(), 0.0
        for kind, p in kinds:
            acc += p
            if uu < acc:
                break
        a, b = rng.choice(table.pairs[kind])
        s = table.scene[a]
        f = table.frames[[a, b]].float()
        scene[k] = S.PATTERNS.index(s.pattern)
        fg, bg = S.rgb(s.fg).astype(np.float32), S.rgb(s.bg).astype(np.float32)
        if s.pattern in ("ball", "solid-color") and rng.random() < recolour:
            while True:
                nfg, nbg = random_colour(rng), random_colour(rng)
                if np.abs(nfg - nbg).max() >= 96 and \
                        (nearest(nfg), nearest(nbg)) not in S.HELD_OUT_PAIRS:
                    break
            if s.pattern == "solid-color":
                f[:] = torch.from_numpy(nfg)
            else:
                f = torch.from_numpy(repaint(f.numpy(), fg, bg, nfg, nbg)).float()
            fg, bg = nfg, nbg
        cov = torch.from_numpy(table.cover[[a, b]])
        c = table.centroid[[a, b]].copy()
        if s.pattern == "ball":
            hf, vf, rev = rng.random() < 0.5, rng.random() < 0.5, rng.random() < 0.5
            if hf:
                f, cov, c[:, 0] = f.flip(2), cov.flip(2), w - 1 - c[:, 0]
            if vf:
                f, cov, c[:, 1] = f.flip(1), cov.flip(1), h - 1 - c[:, 1]
            if rev:
                f, cov, c = f.flip(0), cov.flip(0), c[::-1]
            dx, dy = (0.0, 0.0) if np.isnan(c).any() else c[1] - c[0]
            dirs[k] = AUX_DIRS.index(direction_of(dx / w, dy / w))
            disp[k] = torch.tensor([dx / w, dy / w])
            # a token shows the ball when the ball covers a few percent of it (the wavy
            # ball is about a token across, so edge tokens hold only a sliver)
            cover[k] = (cov > 0.04).float()
            ball = (cover[k].sum(0) > 0).reshape(-1, 1)
            colour[k] = torch.where(ball, torch.from_numpy(fg), torch.from_numpy(bg)) / 255.0
            fgs[k], bgs[k] = torch.from_numpy(fg) / 255.0, torch.from_numpy(bg) / 255.0
        elif s.pattern == "solid-color":
            colour[k] = torch.from_numpy(fg) / 255.0
            fgs[k] = torch.from_numpy(fg) / 255.0
        frames[k] = f
    x = vlm.patch_rows((frames / 255.0 - mean) / std, cfg)
    targets = {"cover": cover.flatten(2).transpose(1, 2), "colour": colour, "scene": scene,
               "fg": fgs, "bg": bgs, "dir": dirs, "disp": disp}
    return x.reshape(n, x.shape[1], -1).contiguous(), targets


def direction_of(dx, dy):
    """The issue's rule on a displacement in frame widths."""
    if max(abs(dx), abs(dy)) < 0.02:
        return "still"
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"
