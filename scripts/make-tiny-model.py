#!/usr/bin/python3
"""Make a tiny random-weight Qwen2.5-VL model directory, deterministically.

It has the real Qwen2.5 tokenizer (tests/fixtures/tokenizer/qwen2.5-tokenizer.json.xz),
the published config layout (config.json with vision_config and rope_scaling
mrope_section, generation_config.json, preprocessor_config.json) and bf16 safetensors
with the published tensor names: it loads through exactly the code path of a real
checkpoint.  Its words are meaningless: it exists so that the daemon and the CLI run
end to end on a machine with no model download.

usage: make-tiny-model.py OUT_DIR [--seed N]
"""
import json
import lzma
import os
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER_XZ = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "qwen2.5-tokenizer.json.xz")

HIDDEN, LAYERS, HEADS, KV_HEADS, INTER = 64, 2, 4, 2, 128
V_DEPTH, V_HIDDEN, V_HEADS, V_INTER = 2, 64, 4, 128
VOCAB = 151936  # Qwen2.5's embedding rows (151,665 tokens, padded)


def bf16_bytes(a):
    """float32 array -> bf16 bytes, round to nearest even (as torch)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16).tobytes()


def tensors(rng):
    d, hd = HIDDEN, HIDDEN // HEADS
    out = {}

    def mat(name, rows, cols, scale=1.0):
        out[name] = rng.standard_normal((rows, cols)).astype(np.float32) * (scale / np.sqrt(cols))

    def vec(name, n, base=0.0, scale=0.02):
        out[name] = (base + scale * rng.standard_normal(n)).astype(np.float32)

    out["visual.patch_embed.proj.weight"] = (
        rng.standard_normal((V_HIDDEN, 3, 2, 14, 14)).astype(np.float32) / np.sqrt(1176))
    for b in range(V_DEPTH):
        p = f"visual.blocks.{b}."
        vec(p + "norm1.weight", V_HIDDEN, 1.0, 0.1)
        vec(p + "norm2.weight", V_HIDDEN, 1.0, 0.1)
        mat(p + "attn.qkv.weight", 3 * V_HIDDEN, V_HIDDEN)
        vec(p + "attn.qkv.bias", 3 * V_HIDDEN)
        mat(p + "attn.proj.weight", V_HIDDEN, V_HIDDEN)
        vec(p + "attn.proj.bias", V_HIDDEN)
        for n in ("gate_proj", "up_proj"):
            mat(p + f"mlp.{n}.weight", V_INTER, V_HIDDEN)
            vec(p + f"mlp.{n}.bias", V_INTER)
        mat(p + "mlp.down_proj.weight", V_HIDDEN, V_INTER)
        vec(p + "mlp.down_proj.bias", V_HIDDEN)
    vec("visual.merger.ln_q.weight", V_HIDDEN, 1.0, 0.1)
    mat("visual.merger.mlp.0.weight", 4 * V_HIDDEN, 4 * V_HIDDEN)
    vec("visual.merger.mlp.0.bias", 4 * V_HIDDEN)
    mat("visual.merger.mlp.2.weight", d, 4 * V_HIDDEN)
    vec("visual.merger.mlp.2.bias", d)
    out["model.embed_tokens.weight"] = rng.standard_normal((VOCAB, d)).astype(np.float32) * 0.5
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        vec(p + "input_layernorm.weight", d, 1.0, 0.1)
        vec(p + "post_attention_layernorm.weight", d, 1.0, 0.1)
        mat(p + "self_attn.q_proj.weight", HEADS * hd, d)
        vec(p + "self_attn.q_proj.bias", HEADS * hd)
        for n in ("k_proj", "v_proj"):
            mat(p + f"self_attn.{n}.weight", KV_HEADS * hd, d)
            vec(p + f"self_attn.{n}.bias", KV_HEADS * hd)
        mat(p + "self_attn.o_proj.weight", d, HEADS * hd)
        mat(p + "mlp.gate_proj.weight", INTER, d)
        mat(p + "mlp.up_proj.weight", INTER, d)
        mat(p + "mlp.down_proj.weight", d, INTER)
    vec("model.norm.weight", d, 1.0, 0.1)
    return out


def write_safetensors(path, ts):
    header, blobs, off = {}, [], 0
    for name in sorted(ts):
        b = bf16_bytes(ts[name])
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


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 1
    os.makedirs(out, exist_ok=True)
    hd = HIDDEN // HEADS
    config = {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "model_type": "qwen2_5_vl",
        "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "intermediate_size": INTER, "vocab_size": VOCAB,
        "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "rope_scaling": {"type": "mrope", "mrope_section": [hd // 8, 3 * hd // 16, 3 * hd // 16]},
        "max_position_embeddings": 128000, "tie_word_embeddings": True,
        "bos_token_id": 151643, "eos_token_id": 151645,
        "vision_start_token_id": 151652, "vision_end_token_id": 151653,
        "vision_token_id": 151654, "image_token_id": 151655, "video_token_id": 151656,
        "torch_dtype": "bfloat16",
        "vision_config": {
            "depth": V_DEPTH, "hidden_size": V_HIDDEN, "num_heads": V_HEADS,
            "intermediate_size": V_INTER, "out_hidden_size": HIDDEN, "hidden_act": "silu",
            "patch_size": 14, "temporal_patch_size": 2, "spatial_merge_size": 2,
            "in_chans": 3, "window_size": 112, "fullatt_block_indexes": [V_DEPTH - 1],
            "tokens_per_second": 2,
        },
        "_comment": "tiny random weights made by scripts/make-tiny-model.py: meaningless words",
    }
    assert sum(config["rope_scaling"]["mrope_section"]) == hd // 2
    gen = {"bos_token_id": 151643, "eos_token_id": [151645, 151643], "do_sample": False,
           "repetition_penalty": 1.05}
    pre = {"min_pixels": 3136, "max_pixels": 64 * 28 * 28, "patch_size": 14,
           "temporal_patch_size": 2, "merge_size": 2,
           "image_mean": [0.48145466, 0.4578275, 0.40821073],
           "image_std": [0.26862954, 0.26130258, 0.27577711],
           "image_processor_type": "Qwen2VLImageProcessor"}
    for name, obj in (("config.json", config), ("generation_config.json", gen),
                      ("preprocessor_config.json", pre)):
        with open(os.path.join(out, name), "w") as f:
            json.dump(obj, f, indent=2)
    with lzma.open(TOKENIZER_XZ) as src, open(os.path.join(out, "tokenizer.json"), "wb") as dst:
        dst.write(src.read())
    write_safetensors(os.path.join(out, "model.safetensors"), tensors(np.random.RandomState(seed)))
    print(f"make-tiny-model: wrote {out}")


if __name__ == "__main__":
    main()
