"""session.py — engine/session.c in Python: the retained token sequence of one stream
(ids with a role and a round each), StreamingVLM's eviction (A: the oldest round's
commentary moves into the previous-text block; B: old vision; C: old user turn; D: the
previous-text sink + window), the chunk's prompt turn, the 3-D M-RoPE positions, and —
with a model — the KV-cached prefill/decode that reuses moved tokens' keys and values.

Used twice: by training, to lay every sample out exactly as the session will (teacher
forcing: each round's commentary is its label), and by the logits test, to replay a
stream with the PyTorch model the way the C session does (reference.py).
Keep in step with engine/session.c: the functions below mirror its evict(),
append_turn() and positions() line by line.
"""
import torch

SYSTEM, PREV_HEADER, PREV_INITIAL, PREV_MOVED, PREV_FOOTER = 0, 1, 2, 3, 4
USER_HEADER, USER_TIME, VISION_START, VIDEO_PAD, VISION_END = 5, 6, 7, 8, 9
QUERY, USER_FOOTER = 10, 11
ASSISTANT_HEADER, ASSISTANT_CONTENT, ASSISTANT_END, ASSISTANT_NEWLINE = 12, 13, 14, 15
NO_ROUND = None


class Pieces:
    """Token ids of the prompt pieces, made with the model's tokenizer (engine.c)."""

    def __init__(self, tok, system="You are a helpful assistant.", previous_text="",
                 query="Commentate on this match"):
        enc = tok.encode
        self.system_block = enc("<|im_start|>system\n%s<|im_end|>\n" % system)
        self.prev_header = enc("<|im_start|>previous text\n")
        self.prev_initial = enc(previous_text)
        self.prev_footer = enc("<|im_end|>\n")
        self.user_header = enc("<|im_start|>user\n")
        self.user_footer = enc("<|im_end|>\n")
        self.assistant_header = enc("<|im_start|>assistant\n")
        self.query = enc(query) if query else []
        (self.newline,) = enc("\n")
        self.im_end = tok.id("<|im_end|>")
        self.vision_start = tok.id("<|vision_start|>")
        self.vision_end = tok.id("<|vision_end|>")
        self.video_pad = tok.id("<|video_pad|>")
        self.time = {ch: enc(ch)[0] for ch in "=.-s0123456789"}
        self.time["Time"] = enc("Time")[0]

    def time_text(self, t0, t1):
        return [self.time["Time"]] + [self.time[ch] for ch in "=%.1f-%.1fs" % (t0, t1)]


class Policy:
    def __init__(self, V=16, T=16, S=512, W=512, M=20, off_by_one=False):
        self.V, self.T, self.S, self.W, self.M, self.off_by_one = V, T, S, W, M, off_by_one


class Stream:
    """The retained sequence of a vlm_session.  merged_grid: (t, h, w) of a chunk's
    vision block in merge units; n_vis = t*h*w tokens."""

    def __init__(self, pieces, policy, merged_grid, tokens_per_second=2):
        self.pc, self.pol = pieces, policy
        self.grid = merged_grid
        self.n_vis = merged_grid[0] * merged_grid[1] * merged_grid[2]
        self.tps = tokens_per_second
        self.ids, self.roles, self.rounds = [], [], []
        self.row = []        # cache row of each token, -1 if not cached (eviction scratch)
        self.n_cached = 0
        self.chunk = 0
        self.query_pending = False

    def __len__(self):
        return len(self.ids)

    # -- helpers (session.c) --

    def find_role(self, start, lo, hi, rnd=NO_ROUND):
        for i in range(start, len(self.ids)):
            if lo <= self.roles[i] <= hi and (rnd is NO_ROUND or self.rounds[i] == rnd):
                return i
        return -1

    def run_end(self, a, lo, hi, rnd):
        b = a
        while b + 1 < len(self.ids) and lo <= self.roles[b + 1] <= hi and self.rounds[b + 1] == rnd:
            b += 1
        return b

    def delete(self, a, b):
        for arr in (self.ids, self.roles, self.rounds, self.row):
            del arr[a:b + 1]

    def delete_run(self, lo, hi, rnd):
        a = self.find_role(0, lo, hi, rnd)
        if a >= 0:
            self.delete(a, self.run_end(a, lo, hi, rnd))

    def rotate(self, a, r, b):
        for arr in (self.ids, self.roles, self.rounds, self.row):
            arr[a:b + 1] = arr[a + r:b + 1] + arr[a:a + r]

    def append(self, ids, role, rnd):
        for t in ids:
            self.ids.append(t)
            self.roles.append(role)
            self.rounds.append(rnd)
            self.row.append(-1)

    # -- the steps --

    def evict(self, i):
        """Step 1 of chunk i > 0.  Returns (gather, first_changed): the old cache rows in
        their new order and the first retained index whose cache row moved."""
        p = self.pol
        T, V = p.T, p.V
        self.row = [j if j < self.n_cached else -1 for j in range(len(self.ids))]
        if T >= 0 and i >= T:  # A
            a0 = self.find_role(0, ASSISTANT_HEADER, ASSISTANT_NEWLINE)
            r = self.rounds[a0] if a0 >= 0 else -1
            if a0 >= 0:
                cs = self.find_role(a0, ASSISTANT_CONTENT, ASSISTANT_CONTENT, r)
                if cs >= 0:
                    ce = self.run_end(cs, ASSISTANT_CONTENT, ASSISTANT_CONTENT, r)
                    if ce > cs:  # all but the last content token (the trained " ...")
                        pf = self.find_role(0, PREV_FOOTER, PREV_FOOTER)
                        self.rotate(pf, cs - pf, ce - 1)
                        for j in range(pf, pf + (ce - cs)):
                            self.roles[j] = PREV_MOVED
                if V < 0 or V > T:
                    self.delete_run(USER_TIME, USER_TIME, r)
                self.delete_run(ASSISTANT_HEADER, ASSISTANT_NEWLINE, r)
        if V >= 0 and i >= V and (T < 0 or V < T):  # B
            a = self.find_role(0, VISION_START, VISION_START)
            if a >= 0:
                self.delete_run(VISION_START, VISION_END, self.rounds[a])
        if T >= 0 and V >= 0 and i >= max(V, T):  # C
            a = self.find_role(0, USER_HEADER, USER_FOOTER)
            if a >= 0:
                self.delete_run(USER_HEADER, USER_FOOTER, self.rounds[a])
        if p.S >= 0:  # D
            a = self.find_role(0, PREV_INITIAL, PREV_MOVED)
            if a >= 0:
                c = 0
                while a + c < len(self.ids) and self.roles[a + c] in (PREV_INITIAL, PREV_MOVED):
                    c += 1
                keep = p.W - (1 if p.off_by_one else 0)
                if c > p.S + keep:
                    self.delete(a + p.S, a + c - keep - 1)
        nc = 0
        while nc < len(self.ids) and self.row[nc] >= 0:
            nc += 1
        assert all(r < 0 for r in self.row[nc:]), "cached token after an uncached one"
        gather = self.row[:nc]
        first = next((j for j in range(nc) if gather[j] != j), nc)
        self.n_cached = nc
        return gather, first

    def append_turn(self, i, t0, t1):
        """Step 3: chunk i's user turn and the assistant header."""
        pc, r = self.pc, i
        if i == 0:
            self.append(pc.system_block, SYSTEM, -1)
            self.append(pc.prev_header, PREV_HEADER, -1)
            self.append(pc.prev_initial, PREV_INITIAL, -1)
            self.append(pc.prev_footer, PREV_FOOTER, -1)
        elif not self.ids or self.ids[-1] != pc.newline:
            self.append([pc.newline], ASSISTANT_NEWLINE, r - 1)
        self.append(pc.user_header, USER_HEADER, r)
        self.append(pc.time_text(t0, t1), USER_TIME, r)
        self.append([pc.vision_start], VISION_START, r)
        self.append([pc.video_pad] * self.n_vis, VIDEO_PAD, r)
        self.append([pc.vision_end], VISION_END, r)
        if i == 0 or self.query_pending:
            self.append(pc.query, QUERY, r)
            self.query_pending = False
        self.append(pc.user_footer, USER_FOOTER, r)
        self.append(pc.assistant_header, ASSISTANT_HEADER, r)

    def set_query(self, ids):
        self.pc.query = list(ids)
        self.query_pending = len(ids) > 0

    def positions(self):
        """Step 4: [3, n] (t, h, w) positions of the whole retained sequence."""
        pt, ph, pw = [], [], []
        p, j, n = 0, 0, len(self.ids)
        gt, gh, gw = self.grid
        while j < n:
            if self.roles[j] != VIDEO_PAD:
                pt.append(p), ph.append(p), pw.append(p)
                p += 1
                j += 1
                continue
            maxp = p
            for k in range(gt * gh * gw):
                if j >= n:
                    break
                ti, hi, wi = k // (gh * gw), (k // gw) % gh, k % gw
                tpos = p + ti * self.tps
                pt.append(tpos), ph.append(p + hi), pw.append(p + wi)
                maxp = max(maxp, tpos, p + hi, p + wi)
                j += 1
            p = maxp + 1
        return torch.tensor([pt, ph, pw], dtype=torch.float32)

    def close_turn(self, generated):
        """Steps 6-7 without a model: append the round's tokens (content, then <|im_end|>
        as generated or appended), as the session leaves them."""
        r = self.chunk
        for g in generated:
            self.append([g], ASSISTANT_END if g == self.pc.im_end else ASSISTANT_CONTENT, r)
        if self.ids[-1] != self.pc.im_end:
            self.append([self.pc.im_end], ASSISTANT_END, r)
        self.n_cached = len(self.ids) - (1 if generated and generated[-1] == self.pc.im_end else 2)
        self.chunk += 1

    def step_text(self, t0, t1, content):
        """One chunk without a model (training layout): evict, append the turn, then the
        round's commentary ids + <|im_end|> as if generated."""
        if self.chunk > 0:
            self.evict(self.chunk)
        self.append_turn(self.chunk, t0, t1)
        self.close_turn(list(content) + [self.pc.im_end])


class ModelSession(Stream):
    """A Stream run by the PyTorch model with the engine's KV-cache semantics: moved and
    kept tokens keep the K/V computed when they were first forwarded, keys are re-rotated
    at the new positions, only the uncached tail is prefilled, greedy decoding."""

    def __init__(self, model, pieces, policy, merged_grid, hook=None):
        super().__init__(pieces, policy, merged_grid, model.cfg.tokens_per_second)
        from vlm import KVCache
        self.model = model
        self.cache = KVCache(model.cfg.n_layers)
        self.hook = hook

    @torch.no_grad()
    def push_chunk(self, pixels, grid, t0, t1):
        """pixels [Np, patch_in] of the chunk's 2 frames; returns the generated ids."""
        m, i = self.model, self.chunk
        first = self.cache.n
        if i > 0:
            gather, first = self.evict(i)
            self.cache.compact(gather)
        if self.hook:
            self.hook("evicted", self)
        vis = m.vision(pixels[None], grid)[0]
        if self.hook:
            self.hook("vision", vis)
        self.append_turn(i, t0, t1)
        pos = self.positions()
        self.cache.rerotate(m.cfg, first, pos[:, first:self.cache.n])
        if self.hook:
            self.hook("prompt", pos)
        base = self.cache.n
        ids = torch.tensor(self.ids[base:])
        logits = m.llm(ids, pos[:, base:], vis, self.cache, logits_rows=[-1])[0]
        gen = []
        p_last = pos[0, -1].item()
        while True:
            if self.hook:
                self.hook("logits", logits)
            g = int(torch.argmax(logits))
            gen.append(g)
            end = g == self.pc.im_end
            self.append([g], ASSISTANT_END if end else ASSISTANT_CONTENT, i)
            if end or len(gen) >= self.pol.M:
                break
            p_last += 1
            logits = m.llm(torch.tensor([g]), torch.full((3, 1), p_last), None, self.cache,
                           logits_rows=[-1])[0]
        if self.ids[-1] != self.pc.im_end:
            self.append([self.pc.im_end], ASSISTANT_END, i)
        self.n_cached = self.cache.n
        if self.hook:
            self.hook("final", gen)
        self.chunk += 1
        return gen
