#!/usr/bin/python3
"""make-resize-fixtures.py — reference data for engine/preprocess.c's smart_resize and
antialiased bicubic resize, written to tests/fixtures/resize/.

    /usr/bin/python3 scripts/make-resize-fixtures.py [OUT_DIR]

Needs Debian's python3-numpy, python3-pil and python3-torchvision
(`apt-get install python3-torchvision`).  Deterministic: the same packages write the
same bytes.

What it writes (all raw uint8 RGB, HWC, C order):
  manifest.json        the cases, the smart_resize table, versions, checksums
  <case>.in.rgb        the source image, for cases small enough to store; larger sources
                       are made by gen_image() below, which tests/test-engine-preprocess.c
                       re-implements (the manifest holds an FNV-1a 64 of the pixels so the
                       test can prove both generators agree)
  <case>.ref.rgb       torchvision's resize of the source, only the rows listed in
                       the manifest ("rows") to keep the directory under ~3 MB

The reference resize is what qwen-vl-utils does to video frames (streamingvlm-spec §1.3):
torchvision.transforms.functional.resize(uint8 tensor, [h, w], BICUBIC, antialias=True),
which runs ATen's float32 antialiased bicubic and rounds back to uint8.  PIL's antialiased
bicubic (fixed point, uint8 between passes) is only compared, for information.

The smart_resize table is computed with qwen-vl-utils' formula, copied below.
"""
import hashlib
import json
import math
import os
import sys

import numpy as np
from PIL import Image

try:
    import torch
    import torchvision
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF
except ImportError:
    sys.exit("make-resize-fixtures.py: needs torchvision: apt-get install python3-torchvision")

# ---- qwen-vl-utils vision_process.py (>= 0.0.11; 0.0.10 lacks the max() in the floor
# branch, which only matters when it would return 0) -------------------------------------
MAX_RATIO = 200


def round_by_factor(number: int, factor: int) -> int:
    return round(number / factor) * factor  # Python round(): half to even


def ceil_by_factor(number: int, factor: int) -> int:
    return math.ceil(number / factor) * factor


def floor_by_factor(number: int, factor: int) -> int:
    return math.floor(number / factor) * factor


def smart_resize(height, width, factor, min_pixels, max_pixels):
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(
            f"absolute aspect ratio must be smaller than {MAX_RATIO}, "
            f"got {max(height, width) / min(height, width)}")
    h_bar = max(factor, round_by_factor(height, factor))
    w_bar = max(factor, round_by_factor(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, floor_by_factor(height / beta, factor))
        w_bar = max(factor, floor_by_factor(width / beta, factor))
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = ceil_by_factor(height * beta, factor)
        w_bar = ceil_by_factor(width * beta, factor)
    return h_bar, w_bar


# StreamingVLM's video bounds (spec §1.3) and Qwen2.5-VL's image defaults.
VIDEO_MIN, VIDEO_MAX = 100 * 28 * 28, 768 * 28 * 28
IMAGE_MIN, IMAGE_MAX = 56 * 56, 28 * 28 * 16384

# Spec §1.3's table: (height, width) -> (height, width).
SPEC_TABLE = [
    ((2160, 3840), (560, 1008)), ((1080, 1920), (560, 1008)), ((720, 1280), (560, 1008)),
    ((576, 1024), (560, 1008)), ((1080, 1440), (672, 896)), ((540, 960), (532, 952)),
    ((480, 854), (476, 840)), ((480, 640), (476, 644)), ((360, 640), (364, 644)),
    ((1920, 1080), (1008, 560)),
]


def smart_table():
    rows = []
    for (h, w), want in SPEC_TABLE:
        got = smart_resize(h, w, 28, VIDEO_MIN, VIDEO_MAX)
        assert got == want, f"spec table {h}x{w}: formula gives {got}, spec says {want}"
        rows.append((h, w, 28, VIDEO_MIN, VIDEO_MAX, "spec §1.3"))
    for h, w in [(480, 640), (1080, 1920), (4000, 6000), (10, 10), (28, 28), (14, 14),
                 (84, 112), (112, 168), (3000, 20)]:
        rows.append((h, w, 28, IMAGE_MIN, IMAGE_MAX, "qwen2.5-vl image defaults"))
    # Half-way roundings: h/28 = k + 0.5 rounds to even k (lround would go up).
    for h, w in [(14, 14), (42, 98), (70, 70), (126, 154), (182, 210), (1022, 1050)]:
        rows.append((h, w, 28, 1, 1 << 40, "half to even"))
    for h, w in [(48, 80), (16, 112)]:
        rows.append((h, w, 32, 1, 1 << 40, "half to even, factor 32"))
    rows += [
        (1, 1, 28, VIDEO_MIN, VIDEO_MAX, "ceil branch from 1x1"),
        (60, 100, 28, VIDEO_MIN, VIDEO_MAX, "ceil branch"),
        (1, 200, 28, VIDEO_MIN, VIDEO_MAX, "aspect exactly 200"),
        (28, 5600, 28, IMAGE_MIN, IMAGE_MIN, "floor branch clamped to factor"),
        (1, 201, 28, VIDEO_MIN, VIDEO_MAX, "aspect 201"),
        (250, 1, 28, VIDEO_MIN, VIDEO_MAX, "aspect 250"),
        (1000, 250000, 28, VIDEO_MIN, VIDEO_MAX, "aspect 250, large"),
    ]
    rng = np.random.default_rng(20240531)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 5000, 2))
        lo = int(rng.integers(1, 200000))
        hi = lo + int(rng.integers(0, 4000000))
        rows.append((h, w, int(rng.choice([14, 28, 32])), lo, hi, "random"))
    table = []
    for h, w, f, lo, hi, note in rows:
        e = {"h": h, "w": w, "factor": f, "min_pixels": lo, "max_pixels": hi, "note": note}
        try:
            e["out_h"], e["out_w"] = smart_resize(h, w, f, lo, hi)
        except ValueError as ex:
            e["error"] = str(ex)
        table.append(e)
    return table


# ---- test images: integer formulas, mirrored by gen_image() in the C test ------------------
M32 = 0xFFFFFFFF


def hash32(x, y, c, seed):
    """A 32-bit integer mix of (x, y, c, seed); arrays of uint64 in, uint64 in 0..2^32-1."""
    v = (x * 0x9E3779B1 + y * 0x85EBCA77 + c * 0xC2B2AE3D + seed * 0x27D4EB2F) & M32
    v ^= v >> 15
    v = (v * 0x2C1B3C6D) & M32
    v ^= v >> 12
    v = (v * 0x297A2D39) & M32
    v ^= v >> 15
    return v


def gen_image(pattern, h, w, seed):
    """uint8 [h, w, 3]: "gradient", "noise", "edges" or "mixed" (four vertical bands:
    gradient, noise, edges, gradient with noise)."""
    y = np.arange(h, dtype=np.uint64)[:, None, None]
    x = np.arange(w, dtype=np.uint64)[None, :, None]
    c = np.arange(3, dtype=np.uint64)[None, None, :]
    zero = np.zeros((h, w, 3), dtype=np.uint64)
    y, x, c = y + zero, x + zero, c + zero
    grad_r = x * 255 // max(w - 1, 1)
    grad_g = y * 255 // max(h - 1, 1)
    grad_b = (x + y) * 255 // max(w + h - 2, 1)
    grad = np.where(c == 0, grad_r, np.where(c == 1, grad_g, grad_b))
    noise = hash32(x, y, c, seed) >> 24
    edges = ((x // 11 + y // 7) % 2) * 215 + 20 + c * 10
    edges = np.where(x % 37 == 0, 255, np.where(y % 29 == 0, 0, edges))
    mixed = np.minimum(grad + (noise >> 2), 255)
    if pattern == "gradient":
        img = grad
    elif pattern == "noise":
        img = noise
    elif pattern == "edges":
        img = edges
    elif pattern == "mixed":
        band = (4 * x) // w
        img = np.where(band == 0, grad, np.where(band == 1, noise,
                                                 np.where(band == 2, edges, mixed)))
    else:
        raise ValueError(pattern)
    return img.astype(np.uint8)


def fnv1a64(a):
    """FNV-1a 64 of a uint8 array's bytes in C order (the C test computes the same)."""
    h = 0xCBF29CE484222325
    for byte in np.ascontiguousarray(a).tobytes():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def torch_resize(img, dh, dw):
    t = torch.from_numpy(img).permute(2, 0, 1).contiguous()[None]
    out = TF.resize(t, [dh, dw], interpolation=InterpolationMode.BICUBIC, antialias=True)
    return out[0].permute(1, 2, 0).contiguous().numpy()


# (name, pattern, seed, src h, src w, target, store source?, row step)
# target: ("smart", factor, min, max) or ("fixed", h, w)
CASES = [
    ("hd720", "mixed", 1, 720, 1280, ("smart", 28, VIDEO_MIN, VIDEO_MAX), False, 8),
    ("fhd", "mixed", 2, 1080, 1920, ("smart", 28, VIDEO_MIN, VIDEO_MAX), False, 8),
    ("portrait_fhd", "mixed", 3, 1920, 1080, ("smart", 28, VIDEO_MIN, VIDEO_MAX), False, 8),
    ("vga", "mixed", 4, 480, 640, ("smart", 28, VIDEO_MIN, VIDEO_MAX), False, 4),
    ("odd_333x517", "mixed", 5, 333, 517, ("smart", 28, VIDEO_MIN, VIDEO_MAX), True, 2),
    ("upscale_60x100", "edges", 6, 60, 100, ("smart", 28, VIDEO_MIN, VIDEO_MAX), True, 1),
    ("up_and_down", "mixed", 7, 90, 200, ("fixed", 120, 84), True, 1),
    ("tiny_3x5", "noise", 8, 3, 5, ("fixed", 28, 28), True, 1),
    ("tall_512x64", "noise", 9, 512, 64, ("fixed", 28, 28), True, 1),
    ("gradient_160x90", "gradient", 10, 90, 160, ("fixed", 56, 84), True, 1),
]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests/fixtures/resize")
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    cases = []
    for name, pattern, seed, sh, sw, target, store, step in CASES:
        img = gen_image(pattern, sh, sw, seed)
        if target[0] == "smart":
            dh, dw = smart_resize(sh, sw, *target[1:])
        else:
            dh, dw = target[1], target[2]
        ref = torch_resize(img, dh, dw)
        pil = np.asarray(Image.fromarray(img).resize((dw, dh), Image.BICUBIC))
        pd = np.abs(pil.astype(int) - ref.astype(int))
        rows = list(range(0, dh, step))
        if rows[-1] != dh - 1:
            rows.append(dh - 1)
        refrows = np.ascontiguousarray(ref[rows])
        with open(os.path.join(out_dir, f"{name}.ref.rgb"), "wb") as f:
            f.write(refrows.tobytes())
        c = {
            "name": name, "pattern": pattern, "seed": seed, "src_h": sh, "src_w": sw,
            "dst_h": dh, "dst_w": dw, "target": list(target),
            "src_fnv1a64": "%016x" % fnv1a64(img),
            "ref_file": f"{name}.ref.rgb", "rows": rows,
            "ref_sha256": hashlib.sha256(refrows.tobytes()).hexdigest(),
            "pil_vs_ref": {"max_abs": int(pd.max()), "frac_exact": float((pd == 0).mean())},
        }
        if store:
            with open(os.path.join(out_dir, f"{name}.in.rgb"), "wb") as f:
                f.write(img.tobytes())
            c["src_file"] = f"{name}.in.rgb"
        cases.append(c)
        print(f"{name}: {sh}x{sw} -> {dh}x{dw}, {len(rows)} rows kept, PIL vs torch: "
              f"max {pd.max()}, exact {(pd == 0).mean():.4f}")
    manifest = {
        "generator": "scripts/make-resize-fixtures.py",
        "reference": "torchvision.transforms.functional.resize(uint8 CHW tensor, [dst_h, dst_w], "
                     "InterpolationMode.BICUBIC, antialias=True)",
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                     "numpy": np.__version__, "pil": Image.__version__,
                     "python": sys.version.split()[0]},
        "layout": "raw uint8 RGB, HWC, C order; <name>.ref.rgb holds only the listed rows "
                  "of the [dst_h, dst_w, 3] output; sources without src_file come from "
                  "gen_image(pattern, src_h, src_w, seed)",
        "cases": cases,
        "smart_resize": smart_table(),
    }
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(out_dir, n)) for n in os.listdir(out_dir))
    print(f"wrote {out_dir}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
