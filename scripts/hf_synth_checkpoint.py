#!/usr/bin/env python3
"""Write a random-weight Hugging Face LLaMA checkpoint of a real model's shape, for
measuring load and quantize-at-load time and memory on something bigger than the test
checkpoints (speed only: the weights are noise).

    python3 -m venv v && v/bin/pip install numpy
    v/bin/python scripts/hf_synth_checkpoint.py OUT_DIR [--shape tinyllama-1.1b] [--hidden-act relu]

Writes config.json, bf16 shards of at most 1 GB (`model-0000i-of-0000n.safetensors`,
written directly in the safetensors layout: u64 header length, JSON header, data) and
`model.safetensors.index.json`. No tokenizer: load it with `Model::open` or the
`convert` example (`generate` needs a tokenizer.json). Shapes:
  tinyllama-1.1b  dim 2048, 22 layers, FFN 5632, 32 heads / 4 KV, vocab 32000 (2.2 GB)
  llama-7b        dim 4096, 32 layers, FFN 11008, 32 heads, vocab 32000 (13.5 GB)
"""
import argparse
import json
import os
import struct

import numpy as np

SHAPES = {
    "tinyllama-1.1b": dict(hidden_size=2048, num_hidden_layers=22, intermediate_size=5632,
                           num_attention_heads=32, num_key_value_heads=4, vocab_size=32000),
    "llama-7b": dict(hidden_size=4096, num_hidden_layers=32, intermediate_size=11008,
                     num_attention_heads=32, num_key_value_heads=32, vocab_size=32000),
}
SHARD_BYTES = 1 << 30


def bf16(a):
    """f32 -> bf16 bit patterns, round to nearest even."""
    u = a.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def tensors(c):
    d, f, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    hd = d // c["num_attention_heads"]
    kv = c["num_key_value_heads"] * hd
    yield "model.embed_tokens.weight", (v, d)
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}"
        yield f"{p}.input_layernorm.weight", (d,)
        yield f"{p}.self_attn.q_proj.weight", (d, d)
        yield f"{p}.self_attn.k_proj.weight", (kv, d)
        yield f"{p}.self_attn.v_proj.weight", (kv, d)
        yield f"{p}.self_attn.o_proj.weight", (d, d)
        yield f"{p}.post_attention_layernorm.weight", (d,)
        yield f"{p}.mlp.gate_proj.weight", (f, d)
        yield f"{p}.mlp.up_proj.weight", (f, d)
        yield f"{p}.mlp.down_proj.weight", (d, f)
    yield "model.norm.weight", (d,)
    yield "lm_head.weight", (v, d)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--shape", default="tinyllama-1.1b", choices=sorted(SHAPES))
    ap.add_argument("--hidden-act", default="silu", choices=["silu", "relu"])
    args = ap.parse_args()
    c = dict(SHAPES[args.shape])
    c.update(model_type="llama", architectures=["LlamaForCausalLM"], hidden_act=args.hidden_act,
             max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0,
             tie_word_embeddings=False, torch_dtype="bfloat16", bos_token_id=1, eos_token_id=2)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    # Group tensors into shards of at most SHARD_BYTES.
    shards, cur, size = [], [], 0
    for name, shape in tensors(c):
        n = int(np.prod(shape)) * 2
        if cur and size + n > SHARD_BYTES:
            shards.append(cur)
            cur, size = [], 0
        cur.append((name, shape))
        size += n
    shards.append(cur)
    rng = np.random.default_rng(0)
    weight_map, total = {}, 0
    for k, shard in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        header, off = {}, 0
        for name, shape in shard:
            n = int(np.prod(shape)) * 2
            header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
            off += n
            weight_map[name] = fname
        header["__metadata__"] = {"format": "pt"}
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        with open(os.path.join(args.out, fname), "wb") as f:
            f.write(struct.pack("<Q", len(h)))
            f.write(h)
            for name, shape in shard:
                if len(shape) == 1:
                    a = 1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)
                else:
                    a = rng.standard_normal(shape, dtype=np.float32) / np.sqrt(shape[1])
                f.write(bf16(a).tobytes())
        total += off
        print(f"{fname}: {off / 1e9:.2f} GB")
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    print(f"{args.out}: {args.shape}, {total / 1e9:.2f} GB of bf16 in {len(shards)} shards")


if __name__ == "__main__":
    main()
