#!/usr/bin/env python3
"""Independent numpy reference implementation of the powerinfer-rs forward pass.

Produces the reference data under crates/powerinfer-core/tests/data/ that the
Rust implementation is tested against.  This script is run ONCE BY HAND (it is
not part of CI); its outputs are committed.

How to run
----------
    python3 -m venv /work/venv            # any venv will do
    /work/venv/bin/pip install numpy gguf tokenizers
    # default model (fetched by scripts/fetch-assets.sh):
    #   models/SmolLM2-135M-Instruct.Q4_1.gguf
    #   sha256 b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
    /work/venv/bin/python scripts/reference.py                 # everything
    /work/venv/bin/python scripts/reference.py --tiny-only     # skip SmolLM2
    /work/venv/bin/python scripts/reference.py --model PATH    # other model path

Outputs (all in crates/powerinfer-core/tests/data/):
    ref_<name>.gguf            tiny random models (written with gguf.GGUFWriter)
    ref_<name>.logits.f32      logits, float32 little-endian, row-major
                               [positions x vocab]
    ref_smollm2_<k>.logits.f32 last-position logits of the real default model
    ref_index.json             index of all of the above (tokens, greedy
                               continuations, FFN densities, ...)

Conventions (mirrored exactly by the Rust side; see tests/data/README.md)
-------------------------------------------------------------------------
* GGUF dims are in ggml order: dims[0] = columns (contiguous), dims[1] = rows.
  gguf.GGUFReader exposes `tensor.shape` in ggml order and `tensor.data`
  reshaped to the REVERSED dims, i.e. a weight with GGUF dims [in, out] comes
  out as a numpy array of shape (out, in) (for quantized types: (out,
  bytes_per_row), which gguf.quants.dequantize turns into (out, in)).  We apply
  it as y = W @ x.  GGUFWriter does the inverse: a numpy (out, in) array is
  stored with GGUF dims [in, out].
* Every computation is done in float64 on the DEQUANTIZED weights read back
  from the GGUF file (so the reference sees exactly the numbers the Rust
  loader sees); logits are cast to float32 at the end.
* RoPE: llama.cpp NORM mode (adjacent pairs (x[2i], x[2i+1]) inside each head,
  angle = p * base^(-2i/hd), p = 0-based position).
* FFN activations: silu -> h = silu(gate x) * (up x); relu -> h = relu(gate x)
  * (up x); drelu -> h = relu(gate x) * relu(up x).  `powerinfer.ffn_activation`
  selects; default silu for llama, drelu for bamboo.  OPT: fc2(relu(fc1 x+b1))+b2.
* FFN density = fraction of FFN neurons whose hidden value h_i is non-zero,
  i.e. relu pre-activation(s) > 0 (gate > 0 for relu; gate > 0 and up > 0 for
  drelu; fc1 x + b1 > 0 for opt).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "crates" / "powerinfer-core" / "tests" / "data"
DEFAULT_MODEL = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

F64 = np.float64

# --------------------------------------------------------------------------
# GGUF loading
# --------------------------------------------------------------------------


def field_value(reader: gguf.GGUFReader, key: str, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


class Model:
    """A model loaded from GGUF with all tensors dequantized to float64."""

    def __init__(self, path: Path):
        r = gguf.GGUFReader(str(path))
        self.path = path
        self.arch = field_value(r, "general.architecture")
        a = self.arch
        if a not in ("llama", "bamboo", "opt"):
            raise ValueError(f"unsupported arch {a}")
        self.n_ctx = int(field_value(r, f"{a}.context_length"))
        self.d = int(field_value(r, f"{a}.embedding_length"))
        self.n_layer = int(field_value(r, f"{a}.block_count"))
        self.n_ff = int(field_value(r, f"{a}.feed_forward_length"))
        self.n_head = int(field_value(r, f"{a}.attention.head_count"))
        if a == "opt":
            self.n_kv = self.n_head
            self.eps = float(field_value(r, f"{a}.attention.layer_norm_epsilon"))
            self.act = "relu"
        else:
            self.n_kv = int(field_value(r, f"{a}.attention.head_count_kv", self.n_head))
            self.eps = float(field_value(r, f"{a}.attention.layer_norm_rms_epsilon"))
            self.rope_base = float(field_value(r, f"{a}.rope.freq_base", 10000.0))
            self.act = field_value(r, "powerinfer.ffn_activation",
                                   "drelu" if a == "bamboo" else "silu")
        self.hd = self.d // self.n_head
        self.t = {}
        self.types = {}
        self.dims = {}
        for t in r.tensors:
            arr = gguf.quants.dequantize(t.data, t.tensor_type)
            arr = np.asarray(arr, dtype=np.float32).astype(F64)
            ggml_dims = [int(x) for x in t.shape]
            # numpy shape must be the reversed ggml dims
            assert tuple(arr.shape) == tuple(reversed(ggml_dims)), (t.name, arr.shape, ggml_dims)
            self.t[t.name] = arr
            self.types[t.name] = t.tensor_type.name
            self.dims[t.name] = ggml_dims
        self.vocab = self.t["token_embd.weight"].shape[0]
        self.tied = "output.weight" not in self.t
        self.reader = r

    def w(self, name):
        return self.t[name]

    def ffn_down(self, l):
        """Returns the down matrix as (d, n_ff) (rows = out)."""
        if f"blk.{l}.ffn_down.weight" in self.t:
            return self.t[f"blk.{l}.ffn_down.weight"]
        # ffn_down_t: GGUF dims [d, n_ff] -> numpy (n_ff, d): row i = neuron i
        return self.t[f"blk.{l}.ffn_down_t.weight"].T


# --------------------------------------------------------------------------
# Forward pass (float64, whole sequence at once with a causal mask)
# --------------------------------------------------------------------------


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def layernorm(x, w, b, eps):
    mu = np.mean(x, axis=-1, keepdims=True)
    var = np.mean((x - mu) ** 2, axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def rope_norm(x, n_heads, hd, base, positions):
    """llama.cpp NORM mode: rotate adjacent pairs within each head."""
    T = x.shape[0]
    x = x.reshape(T, n_heads, hd // 2, 2)
    i = np.arange(hd // 2, dtype=F64)
    theta = base ** (-2.0 * i / hd)                      # (hd/2,)
    ang = positions[:, None].astype(F64) * theta[None]   # (T, hd/2)
    c = np.cos(ang)[:, None, :]
    s = np.sin(ang)[:, None, :]
    a = x[..., 0]
    b = x[..., 1]
    out = np.stack([a * c - b * s, a * s + b * c], axis=-1)
    return out.reshape(T, n_heads * hd)


def silu(x):
    return x / (1.0 + np.exp(-x))


def attention(q, k, v, n_head, n_kv, hd):
    T = q.shape[0]
    q = q.reshape(T, n_head, hd)
    k = k.reshape(T, n_kv, hd)
    v = v.reshape(T, n_kv, hd)
    group = n_head // n_kv
    mask = np.triu(np.ones((T, T), dtype=bool), k=1)    # True where key > query
    out = np.empty((T, n_head, hd), dtype=F64)
    for j in range(n_head):
        kv = j // group
        s = (q[:, j, :] @ k[:, kv, :].T) / np.sqrt(hd)  # (Tq, Tk)
        s = np.where(mask, -np.inf, s)
        s = s - s.max(axis=-1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=-1, keepdims=True)
        out[:, j, :] = p @ v[:, kv, :]
    return out.reshape(T, n_head * hd)


def forward(m: Model, tokens, last_only=False, stats=None):
    """Returns logits (T, vocab) (or (1, vocab) if last_only).

    stats, if a list, receives per layer an array (T,) of FFN density.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    T = len(tokens)
    assert T <= m.n_ctx
    pos = np.arange(T)
    x = m.w("token_embd.weight")[tokens].copy()
    if m.arch == "opt":
        x = x + m.w("position_embd.weight")[pos]
    for l in range(m.n_layer):
        p = f"blk.{l}."
        if m.arch == "opt":
            h = layernorm(x, m.w(p + "attn_norm.weight"), m.w(p + "attn_norm.bias"), m.eps)
            q = h @ m.w(p + "attn_q.weight").T + m.w(p + "attn_q.bias")
            k = h @ m.w(p + "attn_k.weight").T + m.w(p + "attn_k.bias")
            v = h @ m.w(p + "attn_v.weight").T + m.w(p + "attn_v.bias")
            a = attention(q, k, v, m.n_head, m.n_kv, m.hd)
            x = x + a @ m.w(p + "attn_output.weight").T + m.w(p + "attn_output.bias")
            h = layernorm(x, m.w(p + "ffn_norm.weight"), m.w(p + "ffn_norm.bias"), m.eps)
            pre = h @ m.w(p + "ffn_up.weight").T + m.w(p + "ffn_up.bias")
            act = np.maximum(pre, 0.0)
            active = pre > 0
            x = x + act @ m.ffn_down(l).T + m.w(p + "ffn_down.bias")
        else:
            h = rmsnorm(x, m.w(p + "attn_norm.weight"), m.eps)
            q = h @ m.w(p + "attn_q.weight").T
            k = h @ m.w(p + "attn_k.weight").T
            v = h @ m.w(p + "attn_v.weight").T
            q = rope_norm(q, m.n_head, m.hd, m.rope_base, pos)
            k = rope_norm(k, m.n_kv, m.hd, m.rope_base, pos)
            a = attention(q, k, v, m.n_head, m.n_kv, m.hd)
            x = x + a @ m.w(p + "attn_output.weight").T
            h = rmsnorm(x, m.w(p + "ffn_norm.weight"), m.eps)
            g = h @ m.w(p + "ffn_gate.weight").T
            u = h @ m.w(p + "ffn_up.weight").T
            if m.act == "silu":
                act = silu(g) * u
                active = np.ones_like(g, dtype=bool)
            elif m.act == "relu":
                act = np.maximum(g, 0.0) * u
                active = g > 0
            elif m.act == "drelu":
                act = np.maximum(g, 0.0) * np.maximum(u, 0.0)
                active = (g > 0) & (u > 0)
            else:
                raise ValueError(m.act)
            x = x + act @ m.ffn_down(l).T
        if stats is not None:
            stats.append(active.mean(axis=-1))
    if last_only:
        x = x[-1:]
    if m.arch == "opt":
        h = layernorm(x, m.w("output_norm.weight"), m.w("output_norm.bias"), m.eps)
    else:
        h = rmsnorm(x, m.w("output_norm.weight"), m.eps)
    out = m.w("token_embd.weight") if m.tied else m.w("output.weight")
    return h @ out.T


# --------------------------------------------------------------------------
# Tiny random models
# --------------------------------------------------------------------------

D, N_HEAD, N_KV, HD, N_FF, N_LAYER, VOCAB, N_CTX = 64, 4, 2, 16, 160, 2, 96, 32
TOKENS = [1, 17, 42, 5, 88, 17, 60, 3, 95]   # 9 ids, with a repeat (17)
# Row-shift (bias through the constant embedding channel 0) for ReLU gates.
CONST_CH = 1.0


def rnd(rng, shape, std):
    return (rng.standard_normal(shape) * std).astype(np.float32)


def make_weights(rng, arch, n_kv, relu_shift=0.0, up_shift=0.0, tied=False):
    """Random float32 weights, numpy shapes (out, in)."""
    d, nff = D, N_FF
    W = {}
    # Tied output: a small embedding keeps the logits from being dominated by
    # e_tok . e_tok (which would make argmax == input token everywhere).
    emb = rnd(rng, (VOCAB, d), 0.3 if tied else 1.0)
    if arch != "opt" and (relu_shift or up_shift):
        # A constant channel in every embedding: the gate/up column on that
        # channel then acts as a (negative) bias -> sparse ReLU activations.
        emb[:, 0] = CONST_CH
    W["token_embd.weight"] = emb
    if arch == "opt":
        W["position_embd.weight"] = rnd(rng, (N_CTX, d), 0.5)

    def norm_w():
        return (1.0 + rnd(rng, (d,), 0.1)).astype(np.float32)

    for l in range(N_LAYER):
        p = f"blk.{l}."
        W[p + "attn_norm.weight"] = norm_w()
        if arch == "opt":
            W[p + "attn_norm.bias"] = rnd(rng, (d,), 0.05)
        W[p + "attn_q.weight"] = rnd(rng, (N_HEAD * HD, d), 1.5 / np.sqrt(d))
        W[p + "attn_k.weight"] = rnd(rng, (n_kv * HD, d), 1.5 / np.sqrt(d))
        W[p + "attn_v.weight"] = rnd(rng, (n_kv * HD, d), 1.0 / np.sqrt(d))
        W[p + "attn_output.weight"] = rnd(rng, (d, N_HEAD * HD), 0.7 / np.sqrt(N_HEAD * HD))
        if arch == "opt":
            for n, o in (("attn_q", N_HEAD * HD), ("attn_k", n_kv * HD),
                         ("attn_v", n_kv * HD), ("attn_output", d)):
                W[p + n + ".bias"] = rnd(rng, (o,), 0.1)
        W[p + "ffn_norm.weight"] = norm_w()
        if arch == "opt":
            W[p + "ffn_norm.bias"] = rnd(rng, (d,), 0.05)
            W[p + "ffn_up.weight"] = rnd(rng, (nff, d), 1.0 / np.sqrt(d))
            W[p + "ffn_up.bias"] = (rnd(rng, (nff,), 0.2) - relu_shift).astype(np.float32)
            W[p + "ffn_down.weight"] = rnd(rng, (d, nff), 1.5 / np.sqrt(nff))
            W[p + "ffn_down.bias"] = rnd(rng, (d,), 0.1)
        else:
            gate = rnd(rng, (nff, d), 1.0 / np.sqrt(d))
            up = rnd(rng, (nff, d), 1.0 / np.sqrt(d))
            if relu_shift:
                gate[:, 0] = -relu_shift / CONST_CH
            if up_shift:
                up[:, 0] = -up_shift / CONST_CH
            W[p + "ffn_gate.weight"] = gate
            W[p + "ffn_up.weight"] = up
            dstd = (1.0 if arch == "llama" and not relu_shift else 2.0) / np.sqrt(nff)
            W[p + "ffn_down.weight"] = rnd(rng, (d, nff), dstd)
    W["output_norm.weight"] = norm_w()
    if arch == "opt":
        W["output_norm.bias"] = rnd(rng, (d,), 0.05)
    if not tied:
        W["output.weight"] = rnd(rng, (VOCAB, d), 2.0 / np.sqrt(d))
    return W


def write_gguf(path: Path, arch, W, types, act=None, n_kv=N_KV, name=None):
    """types: function(tensor_name) -> GGMLQuantizationType."""
    w = gguf.GGUFWriter(str(path), arch)   # writes general.architecture itself
    w.add_name(name or path.stem)
    w.add_uint32(f"{arch}.context_length", N_CTX)
    w.add_uint32(f"{arch}.embedding_length", D)
    w.add_uint32(f"{arch}.block_count", N_LAYER)
    w.add_uint32(f"{arch}.feed_forward_length", N_FF)
    w.add_uint32(f"{arch}.attention.head_count", N_HEAD)
    w.add_uint32(f"{arch}.vocab_size", VOCAB)
    if arch == "opt":
        w.add_float32(f"{arch}.attention.layer_norm_epsilon", 1e-5)
    else:
        w.add_uint32(f"{arch}.attention.head_count_kv", n_kv)
        w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)
        w.add_float32(f"{arch}.rope.freq_base", 10000.0)
        w.add_uint32(f"{arch}.rope.dimension_count", HD)
    if act is not None:
        w.add_string("powerinfer.ffn_activation", act)
    for n, arr in W.items():
        qt = types(n) if arr.ndim == 2 else QT.F32
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if qt == QT.F32:
            w.add_tensor(n, arr)
        elif qt == QT.F16:
            w.add_tensor(n, arr.astype(np.float16))
        else:
            q = gguf.quants.quantize(arr, qt)
            w.add_tensor(n, q, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def all_f32(_n):
    return QT.F32


def types_q(n):
    if n == "token_embd.weight":
        return QT.Q8_0
    return QT.Q4_1


def types_mixed(n):
    if n == "token_embd.weight":
        return QT.F16
    if n == "output.weight":
        return QT.BF16
    if ".attn_" in n:
        return QT.F16
    if ".ffn_gate." in n or ".ffn_up." in n:
        return QT.Q8_0
    if ".ffn_down" in n:
        return QT.Q4_0
    raise ValueError(n)


def own_dequant(raw: np.ndarray, qt, shape):
    """Independent re-implementation of the ggml block formats (checks that the
    gguf package's dequantizer matches the layout the Rust kernels implement)."""
    b = np.ascontiguousarray(raw).view(np.uint8).reshape(-1)
    n = int(np.prod(shape))
    if qt == QT.F32:
        return b.view("<f4")[:n].reshape(shape)
    if qt == QT.F16:
        return b.view("<f2")[:n].astype(np.float32).reshape(shape)
    if qt == QT.BF16:
        return (b.view("<u2")[:n].astype(np.uint32) << 16).view(np.float32).reshape(shape)
    if qt == QT.Q8_0:                       # 34 bytes: f16 d, 32 x i8
        blk = b.reshape(-1, 34)
        d = blk[:, :2].copy().view("<f2").astype(np.float32)
        q = blk[:, 2:].view(np.int8).astype(np.float32)
        return (d * q).reshape(shape)
    if qt in (QT.Q4_0, QT.Q4_1):            # 18 bytes: d, 16 nibble bytes / 20: d, m, 16
        hdr = 2 if qt == QT.Q4_0 else 4
        blk = b.reshape(-1, hdr + 16)
        d = blk[:, :2].copy().view("<f2").astype(np.float32)
        qs = blk[:, hdr:]
        # byte j: value j in the low nibble, value j+16 in the high nibble
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)
        if qt == QT.Q4_0:
            return (d * (q - 8.0)).reshape(shape)
        m = blk[:, 2:4].copy().view("<f2").astype(np.float32)
        return (d * q + m).reshape(shape)
    raise NotImplementedError(qt)


def check_dequant(path: Path, names=None):
    r = gguf.GGUFReader(str(path))
    for t in r.tensors:
        if names is not None and t.name not in names:
            continue
        shape = tuple(reversed([int(x) for x in t.shape]))
        ours = own_dequant(t.data, t.tensor_type, shape)
        theirs = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        assert ours.shape == theirs.shape and np.array_equal(ours, theirs), (path, t.name)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_causal(m: Model, tokens, full):
    for cut in (1, 4, len(tokens) - 1):
        part = forward(m, tokens[:cut])
        err = np.abs(part - full[:cut]).max()
        assert err < 1e-9, f"causality violated at cut {cut}: {err}"


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def gen_tiny(entries, report):
    specs = [
        # name, arch, act key, types, tied, relu_shift, up_shift, ffn_down_t
        ("llama_f32", "llama", None, all_f32, False, 0.0, 0.0, False),
        ("llama_q", "llama", None, types_q, True, 0.0, 0.0, False),
        ("llama_mixed", "llama", None, types_mixed, False, 0.0, 0.0, False),
        ("relu_llama", "llama", "relu", all_f32, True, 0.6, 0.0, False),
        ("relu_llama_t", "llama", "relu", all_f32, True, 0.6, 0.0, True),
        ("bamboo", "bamboo", None, all_f32, True, 0.2, 0.2, False),
        ("opt", "opt", None, all_f32, True, 0.7, 0.0, False),
    ]
    seeds = {"llama_f32": 1, "llama_q": 2, "llama_mixed": 3, "relu_llama": 4,
             "relu_llama_t": 4, "bamboo": 5, "opt": 6}
    for name, arch, act, types, tied, shift, ushift, down_t in specs:
        rng = np.random.default_rng(1000 + seeds[name])
        n_kv = N_HEAD if arch == "opt" else N_KV
        W = make_weights(rng, arch, n_kv, shift, ushift, tied)
        if down_t:
            W2 = {}
            for n, a in W.items():
                if n.endswith(".ffn_down.weight"):
                    # numpy (n_ff, d) -> GGUF dims [d, n_ff]; row i = neuron i
                    W2[n.replace("ffn_down", "ffn_down_t")] = np.ascontiguousarray(a.T)
                else:
                    W2[n] = a
            W = W2
        path = DATA / f"ref_{name}.gguf"
        write_gguf(path, arch, W, types, act=act, n_kv=n_kv, name=f"powerinfer-rs ref {name}")
        check_dequant(path)
        m = Model(path)
        stats = []
        logits = forward(m, TOKENS, stats=stats)
        check_causal(m, TOKENS, logits)
        lf = DATA / f"ref_{name}.logits.f32"
        logits.astype("<f4").tofile(lf)
        probs = softmax(logits)
        e = {
            "name": name,
            "file": path.name,
            "arch": arch,
            "activation": m.act,
            "ffn_down_transposed": down_t,
            "tied_output": m.tied,
            "tensor_types": sorted(set(m.types.values())),
            "tokens": TOKENS,
            "logits_file": lf.name,
            "positions": "all",
            "vocab": m.vocab,
            "argmax": [int(i) for i in logits.argmax(-1)],
            "logit_std": float(logits.std()),
            "max_abs_logit": float(np.abs(logits).max()),
        }
        if m.act in ("relu", "drelu"):
            dens = np.stack(stats)          # (layers, T)
            e["ffn_density"] = {
                "definition": "fraction of FFN neurons with nonzero hidden value "
                              "(relu pre-activation(s) > 0)",
                "mean": float(dens.mean()),
                "per_layer_mean": [float(x) for x in dens.mean(axis=1)],
                "per_position_layer": [[float(x) for x in row] for row in dens.T],
            }
        entries.append(e)
        report.append(
            f"{name:13s} arch={arch:6s} act={m.act:5s} types={e['tensor_types']} "
            f"logit std={logits.std():.3f} maxabs={np.abs(logits).max():.2f} "
            f"max p={probs.max(-1).mean():.3f} argmax={e['argmax']}"
            + (f" density={e['ffn_density']['mean']:.3f} per-layer={e['ffn_density']['per_layer_mean']}"
               if "ffn_density" in e else ""))
    # relu_llama and relu_llama_t must agree exactly
    a = np.fromfile(DATA / "ref_relu_llama.logits.f32", dtype="<f4")
    b = np.fromfile(DATA / "ref_relu_llama_t.logits.f32", dtype="<f4")
    assert np.array_equal(a, b), "ffn_down_t model disagrees with ffn_down model"


# --------------------------------------------------------------------------
# SmolLM2 (real default model)
# --------------------------------------------------------------------------

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time"]


def build_tokenizer(m: Model):
    from tokenizers import Tokenizer, Regex, models, pre_tokenizers, decoders
    r = m.reader
    assert field_value(r, "tokenizer.ggml.model") == "gpt2"
    toks = field_value(r, "tokenizer.ggml.tokens")
    merges = field_value(r, "tokenizer.ggml.merges")
    vocab = {t: i for i, t in enumerate(toks)}
    merges = [tuple(x.split(" ", 1)) for x in merges]
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    # llama.cpp pre-tokenizer "smollm": digits isolated, then GPT-2 regex.
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tk.decoder = decoders.ByteLevel()
    return tk, toks


def gen_smollm2(model_path: Path, entries, report):
    check_dequant(model_path, {"token_embd.weight", "blk.0.attn_q.weight", "blk.0.ffn_down.weight",
                               "blk.29.ffn_gate.weight", "output_norm.weight"})
    m = Model(model_path)
    r = m.reader
    facts = dict(arch=m.arch, n_layer=m.n_layer, d=m.d, n_ff=m.n_ff, n_head=m.n_head,
                 n_kv=m.n_kv, rope_base=m.rope_base, eps=m.eps, vocab=m.vocab,
                 tied=m.tied, token_embd_type=m.types["token_embd.weight"],
                 add_bos=field_value(r, "tokenizer.ggml.add_bos_token"),
                 rope_dim=field_value(r, "llama.rope.dimension_count"),
                 act=m.act)
    report.append(f"SmolLM2 facts: {facts}")
    assert (m.arch, m.n_layer, m.d, m.n_ff, m.n_head, m.n_kv) == ("llama", 30, 576, 1536, 9, 3)
    assert m.rope_base == 100000.0 and m.tied and facts["token_embd_type"] == "Q8_0"
    tk, toks = build_tokenizer(m)
    for k, prompt in enumerate(PROMPTS):
        ids = tk.encode(prompt, add_special_tokens=False).ids
        assert tk.decode(ids) == prompt
        # no BOS (tokenizer.ggml.add_bos_token = false)
        logits = forward(m, ids, last_only=True)[0]
        lf = DATA / f"ref_smollm2_{k}.logits.f32"
        logits.astype("<f4").tofile(lf)
        seq = list(ids)
        greedy, margins = [], []
        step_logits = logits
        for _ in range(8):
            nxt = int(np.argmax(step_logits))
            top2 = np.sort(step_logits)[-2:]
            margins.append(float(top2[1] - top2[0]))
            greedy.append(nxt)
            seq.append(nxt)
            step_logits = forward(m, seq, last_only=True)[0]
        top5 = np.argsort(-logits)[:5]
        e = {
            "name": f"smollm2_{k}",
            "file": "default",
            "model_sha256": DEFAULT_MODEL_SHA256,
            "arch": "llama",
            "activation": "silu",
            "prompt": prompt,
            "tokens": [int(i) for i in ids],
            "token_strings": [toks[i] for i in ids],
            "logits_file": lf.name,
            "positions": "last",
            "vocab": m.vocab,
            "greedy_next": greedy,
            "greedy_text": tk.decode(greedy),
            "greedy_top2_margins": margins,
            "top5_last": [int(i) for i in top5],
            "top2_margin": float(np.sort(logits)[-1] - np.sort(logits)[-2]),
        }
        entries.append(e)
        report.append(f"smollm2_{k}: {prompt!r} ids={ids} {[toks[i] for i in ids]} -> greedy {greedy} "
                      f"{tk.decode(greedy)!r} margins={np.round(margins, 3).tolist()} top5={[toks[i] for i in top5]} margin={e['top2_margin']:.3f}")
        if k == 0:
            assert toks[greedy[0]] == "ĠParis", toks[greedy[0]]
            # causality check on the real model
            full = forward(m, seq)
            pre = forward(m, ids)
            assert np.abs(full[: len(ids)] - pre).max() < 1e-8
            assert np.abs(pre[-1] - logits).max() < 1e-8
    # perplexity-ish sanity: mean NLL of a plain English sentence
    text = "The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is Rome."
    ids = tk.encode(text, add_special_tokens=False).ids
    lg = forward(m, ids)
    lp = lg - lg.max(-1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
    nll = -lp[np.arange(len(ids) - 1), ids[1:]]
    report.append(f"SmolLM2 sanity: mean NLL {nll.mean():.3f} nats (ppl {np.exp(nll.mean()):.2f}) over "
                  f"{len(ids) - 1} tokens; uniform would be {np.log(m.vocab):.2f}; per-token "
                  f"{np.round(nll, 2).tolist()}")
    assert nll.mean() < 4.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--tiny-only", action="store_true")
    args = ap.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    entries, report = [], []
    gen_tiny(entries, report)
    if not args.tiny_only:
        if not args.model.exists():
            sys.exit(f"model not found: {args.model} (run scripts/fetch-assets.sh or pass --model)")
        digest = sha256(args.model)
        if digest != DEFAULT_MODEL_SHA256:
            sys.exit(f"unexpected sha256 {digest} for {args.model}")
        gen_smollm2(args.model, entries, report)
    elif (DATA / "ref_index.json").exists():
        # keep previously generated SmolLM2 entries
        old = json.loads((DATA / "ref_index.json").read_text())
        entries += [e for e in old["entries"] if e["file"] == "default"]
    index = {
        "note": ("Logits files are raw float32 little-endian, row-major [positions x vocab]; "
                 "positions 'all' = one row per input token (row p = logits after token p), "
                 "'last' = a single row for the last input token. Computed in float64 by "
                 "scripts/reference.py (numpy) from the dequantized GGUF weights, then cast "
                 "to float32. Token ids are fed directly (no BOS is added). file 'default' = "
                 "models/SmolLM2-135M-Instruct.Q4_1.gguf."),
        "dtype": "f32le",
        "generator": "scripts/reference.py",
        "entries": entries,
    }
    (DATA / "ref_index.json").write_text(json.dumps(index, indent=1) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
