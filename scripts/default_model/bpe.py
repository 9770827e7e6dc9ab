"""bpe.py — the default model's own small byte-level BPE tokenizer (Qwen2 layout).

Builds tokenizer.json in exactly the shape of Qwen2.5's (NFC normaliser, the Qwen2 Split
regex then ByteLevel without its own regex, ByteLevel decoder, the 22 Qwen special tokens
as added tokens), with a vocabulary trained on the few strings the product ever says or
prompts with, so every prompt word and every commentary word is one token.  Encodes and
decodes in Python the way engine/tokenizer.c (and HF tokenizers) do.

Not: a general tokenizer trainer.  The Python encoder handles ASCII text only (the Qwen2
regex needs Unicode classes that Python's re lacks); anything else raises.  The engine's
C tokenizer handles any text with the same tokenizer.json.

Invariants the engine checks at load (engine.c): "Time", "=", ".", "-", "s" and each
digit are one token; "Time=12.0-13.0s" splits into Time,=,1,2,.,0,-,1,3,.,0,s; "\\n" is
one token; <|im_end|> exists.  The trainer also makes " ..." one token, the token the
session treats as StreamingVLM's end-of-commentary mark.
"""
import json
import re

# Qwen2.5's added tokens, in their order (ids are assigned after the BPE vocabulary).
SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>",
]

QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# The same regex for ASCII text (\p{L} = letters, \p{N} = digits there).
_ASCII_RE = re.compile(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]|"
                       r" ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+", re.ASCII)
_SPECIAL_RE = re.compile("|".join(re.escape(s) for s in SPECIALS))


def bytes_to_unicode():
    """GPT-2's byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


B2U = bytes_to_unicode()
U2B = {v: k for k, v in B2U.items()}


def pretokenize(text):
    """Split plain text (no special tokens) into byte-level pieces."""
    if not text.isascii():
        raise ValueError("bpe.py encodes ASCII text only: %r" % text)
    return ["".join(B2U[b] for b in m.group(0).encode()) for m in _ASCII_RE.finditer(text)]


def train(corpus):
    """Byte-level BPE merges until every piece of the corpus is one token.  Ties go to the
    lexicographically smallest pair, so the result depends on the corpus only."""
    counts = {}
    for text in corpus:
        for piece in _SPECIAL_RE.split(text):
            for p in pretokenize(piece):
                counts[p] = counts.get(p, 0) + 1
    words = [[list(p), c] for p, c in sorted(counts.items())]
    merges = []
    while True:
        pairs = {}
        for syms, c in words:
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for w in words:
            s, out, i = w[0], [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            w[0] = out


class Tokenizer:
    """vocab: token string -> id; merges: list of pairs (rank = index)."""

    def __init__(self, vocab, merges, specials):
        self.vocab = vocab
        self.merges = {tuple(m): i for i, m in enumerate(merges)}
        self.specials = specials  # content -> id
        self.id_to_token = {i: t for t, i in vocab.items()}
        self.id_to_token.update({i: t for t, i in specials.items()})

    @classmethod
    def build(cls, corpus):
        merges = train(corpus)
        vocab = {B2U[b]: b for b in range(256)}
        for a, b in merges:
            vocab[a + b] = len(vocab)
        specials = {s: len(vocab) + k for k, s in enumerate(SPECIALS)}
        return cls(vocab, merges, specials)

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            j = json.load(f)
        merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" "))
                  for m in j["model"]["merges"]]
        return cls(j["model"]["vocab"], merges, {a["content"]: a["id"] for a in j["added_tokens"]})

    def n_ids(self):
        return max(self.id_to_token) + 1

    def _bpe(self, piece):
        syms = list(piece)
        while len(syms) > 1:
            ranks = [(self.merges.get((a, b), 1 << 30), i) for i, (a, b) in
                     enumerate(zip(syms, syms[1:]))]
            r, i = min(ranks)
            if r == 1 << 30:
                break
            syms[i:i + 2] = [syms[i] + syms[i + 1]]
        return [self.vocab[s] for s in syms]

    def encode(self, text):
        ids, pos = [], 0
        for m in _SPECIAL_RE.finditer(text):
            for p in pretokenize(text[pos:m.start()]):
                ids += self._bpe(p)
            ids.append(self.specials[m.group(0)])
            pos = m.end()
        for p in pretokenize(text[pos:]):
            ids += self._bpe(p)
        return ids

    def decode(self, ids, skip_special=True):
        out = bytearray()
        for i in ids:
            t = self.id_to_token.get(int(i))
            if t is None:  # a padding row of the embedding: no text (as the C decoder)
                continue
            if t in self.specials:
                if not skip_special:
                    out += t.encode()
                continue
            out += bytes(U2B[ch] for ch in t)
        return out.decode("utf-8", errors="replace")

    def id(self, token):
        return self.specials[token] if token in self.specials else self.vocab[token]

    def to_json(self):
        added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": False, "special": True} for s, i in self.specials.items()]
        bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
              "use_regex": False}
        merges = sorted(self.merges, key=self.merges.get)
        return {
            "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": {"type": "NFC"},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": QWEN2_REGEX}, "behavior": "Isolated",
                 "invert": False}, bl]},
            "post_processor": bl, "decoder": bl,
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": "", "end_of_word_suffix": "",
                      "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": self.vocab, "merges": [list(m) for m in merges]},
        }

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, ensure_ascii=False, indent=1)
            f.write("\n")

    def check(self, must_be_one):
        """Raise unless each string of must_be_one is a single token and the Time= text
        splits per character (the engine's load-time checks)."""
        for s in must_be_one:
            ids = self.encode(s)
            if len(ids) != 1:
                raise AssertionError("tokenizer: %r is %d tokens %r" % (s, len(ids), ids))
        for t in ("Time=0.0-1.0s", "Time=12.0-13.0s", "Time=99.0-100.0s"):
            want = [self.encode("Time")[0]] + [self.encode(c)[0] for c in t[4:]]
            if self.encode(t) != want:
                raise AssertionError("tokenizer: %r does not split per character" % t)
