#!/usr/bin/env python3
"""Tiny random Hugging Face-format checkpoints plus independent float64 reference logits.

Writes small random checkpoints laid out exactly as `transformers`' save_pretrained would
write them (config.json with HF field names, `*.safetensors` with HF tensor names and
layouts, a sharded index for one of them, tokenizer.json), and the logits of an
INDEPENDENT numpy float64 forward that follows the Hugging Face modeling code
(modeling_llama / mistral / opt / falcon, and PowerInfer's Bamboo) -- not our Rust code and
not llama.cpp's GGUF layout (q/k weights are in HF order; no GGUF permutation).  This script
is run ONCE BY HAND (it is not part of CI); its outputs are committed.

How to run
----------
    python3 -m venv v && v/bin/pip install numpy safetensors tokenizers
    v/bin/python scripts/hf_reference.py

Everything is deterministic (fixed seeds, fixed embedded training text); rerunning
rewrites byte-identical files.  No torch, no transformers, no network.

Outputs (all under crates/powerinfer-core/tests/data/hf/)
---------------------------------------------------------
    <name>/config.json            HF config (json.dumps(indent=2, sort_keys=True) + "\\n")
    <name>/model.safetensors      weights (llama: model-0000{1,2}-of-00002.safetensors +
                                  model.safetensors.index.json)
    <name>/tokenizer.json         the shared byte-level BPE tokenizer (identical copies)
    <name>/reference.json         tokens, vocab, arch, note, logits file name, ...
    <name>/reference.logits.f32   float32 LE logits, row-major [10 positions x vocab];
                                  row p = logits after feeding tokens[0..=p]
    tokenizer_cases.json          [{"text", "ids"}] encoded with add_special_tokens=False

Models: llama (f16, GQA 4/2, untied, 2 shards), relu_llama (bf16, ReLU, MHA, tied),
mistral (f32, 1 KV head, theta 1e6, untied), bamboo (f16, dReLU, 4/2, untied), opt (f16,
pre-LN, biases, learned positions with offset 2, tied), falcon (f32, falcon-7b style:
multi_query, parallel attn, one LayerNorm, exact GELU, tied), falcon_relu (bf16,
falcon-40b style: new_decoder_architecture, 4 heads / 2 KV, ln_attn + ln_mlp, ReLU, tied).
All: hidden 64, 2 layers, 4 heads (head_dim 16), FFN 128, max_position_embeddings 64.

Weights are drawn in float64, rounded to the stored dtype FIRST (f16: numpy's
round-to-nearest-even; bf16: round-to-nearest-even on the f32 bits, stored as the upper 16
bits), and the reference is computed from the rounded values in float64.

HF semantics implemented here
-----------------------------
* RoPE (llama, mistral, bamboo, falcon): rotate_half style -- inside each head the pairs are
  (i, i + hd/2), inv_freq[i] = theta^(-2i/hd), i < hd/2, angle = p * inv_freq[i] with
  p = 0..T-1; x' = x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1), cos/sin
  = cat(cos(angle), cos(angle)) etc.  Applied to q and k over the whole head.
* Attention: softmax(q k^T / sqrt(hd)) v with a causal mask; GQA: query head h uses KV head
  h // (n_head / n_kv).  OPT multiplies q (after its bias) by hd^-0.5 instead -- the same.
* RMSNorm: x / sqrt(mean(x^2) + eps) * w.  LayerNorm: (x - mean) / sqrt(var + eps) * w + b
  (biased variance).  eps 1e-5 everywhere.
* llama / mistral / bamboo layer: x += o(attn(rms(x) * input_layernorm));
  h = rms(x) * post_attention_layernorm; x += down(act(gate h) * up h) with act = silu
  (llama, mistral) or relu (relu_llama); bamboo (dReLU): down(relu(gate h) * relu(up h)).
  logits = lm_head(rms(x) * model.norm) (tied: model.embed_tokens.weight).
* OPT (do_layer_norm_before): x = embed_tokens[tok] + embed_positions[p + 2];
  x += out_proj(MHA(self_attn_layer_norm(x))); x += fc2(relu(fc1(final_layer_norm(x))));
  logits = embed_tokens . model.decoder.final_layer_norm(x) (all linears with bias, lm_head
  without).
* Falcon (parallel_attn): h = x + dense(attn(ln1(x))) + dense_4h_to_h(act(dense_h_to_4h(ln2(x))))
  with ln1 = ln2 = input_layernorm (falcon) or ln1 = ln_attn, ln2 = ln_mlp (falcon_relu).
  Fused query_key_value: multi_query (old arch) -> view (T, n_head + 2, hd), q = [:-2],
  k = [-2], v = [-1]; new_decoder_architecture -> view (T, n_kv, n_head/n_kv + 2, hd),
  q = [:, :-2] flattened (kv-group major), k = [:, -2], v = [:, -1].  No biases.
  act: gelu = exact erf GELU (nn.GELU()), relu.  logits = word_embeddings . ln_f(x).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import safetensors.numpy
from safetensors import safe_open
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "crates" / "powerinfer-core" / "tests" / "data" / "hf"

F64 = np.float64
HIDDEN = 64
LAYERS = 2
HEADS = 4
HEAD_DIM = HIDDEN // HEADS
FFN = 128
MAX_POS = 64
EPS = 1e-5
N_TOKENS = 10
TRANSFORMERS_VERSION = "4.46.3"

# --------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------

TRAIN_TEXT = """\
The little town sat at the edge of a wide river, and every morning the fishermen pushed
their boats out into the grey water before the sun had risen above the hills. The baker on
the corner opened his shop at five o'clock, and the smell of fresh bread drifted down the
narrow streets while the children were still asleep. By seven the market square was full of
people: farmers with baskets of apples and pears, a woman selling honey in small glass jars,
an old man who repaired clocks and watches, and a boy who sold newspapers for a few coins.

In the afternoon the weather often changed. Clouds came in from the sea, the wind turned
cold, and the first drops of rain fell on the roofs. Then the square emptied quickly, and
the shopkeepers pulled their awnings down. Some people went home; others went into the
cafe by the bridge, where they drank hot coffee, read the paper and talked about the price
of fish, the new school, the election, and the strange lights that somebody had seen over
the forest last winter. Nobody could explain the lights, but everybody had an opinion.

The teacher at the new school was a patient woman who believed that every child could learn
to read, to write and to count if only they were given enough time. She taught them the
letters of the alphabet, the numbers from one to one hundred, and the names of the rivers,
mountains and countries of the world. On Fridays she read them stories about kings and
queens, about sailors who crossed the ocean in wooden ships, and about a fox who was
cleverer than all the other animals in the forest. The children loved those stories and
asked for them again and again, until they knew every word by heart.

When the summer came, the days grew long and warm. The river was calm, the fields turned
gold, and the farmers worked from dawn until dark to bring in the harvest. In the evenings
the whole town gathered by the water to eat, to sing and to dance, and the music could be
heard far across the valley. Visitors came from the city on the train, walked along the
river, took photographs of the old stone bridge and the church tower, and went back home
with bread, honey and apples in their bags. They always promised to come back next year,
and most of them did.

Years later, when the children had grown up and some of them had moved away to work in the
city, they still remembered the smell of the bakery, the sound of the rain on the roofs,
the teacher's stories and the music by the river. They told their own children about the
little town, and about the lights over the forest that nobody could explain. And sometimes,
on a quiet night, they thought they could see those lights again, far away, just above the
trees, shining for a moment before they disappeared into the dark.
"""

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VOCAB_TARGET = 384

TOKENIZER_CASES = [
    "The children loved those stories and asked for them again.",
    "  leading and trailing spaces  ",
    "Numbers: 0 7 42 1234567 3.14159 and 2024-06-01",
    "Punctuation!? (yes); [no] {maybe} \"quoted\" it's -- 'fine'... #1 @home 50% a+b=c",
    "line one\nline two\n\n\ttabbed line\r\nend",
    "café ünïcødé 日本",
    "",
    "hello world",
    "Emoji and symbols: \U0001F600 \u00a9 \u2192 \u00bd",
]


def build_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_TARGET,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    tok.train_from_iterator([TRAIN_TEXT], trainer=trainer)
    return tok


# --------------------------------------------------------------------------
# dtype rounding and safetensors writing
# --------------------------------------------------------------------------


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """f64 -> f32 -> bf16 with round-to-nearest-even; returns the uint16 bit patterns."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    assert np.all(np.isfinite(x))
    rounding = ((u >> 16) & 1) + 0x7FFF
    return ((u + rounding) >> 16).astype(np.uint16)


def bf16_to_f64(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(F64)


class Stored:
    """One tensor: the array as stored (f16/f32 numpy, or uint16 bf16 bits) and its f64 value."""

    def __init__(self, x: np.ndarray, dtype: str):
        self.dtype = dtype
        if dtype == "F32":
            self.raw = np.ascontiguousarray(x, dtype=np.float32)
            self.value = self.raw.astype(F64)
        elif dtype == "F16":
            self.raw = np.ascontiguousarray(x, dtype=np.float16)
            assert np.all(np.isfinite(self.raw))
            self.value = self.raw.astype(F64)
        elif dtype == "BF16":
            self.raw = bf16_bits(x)
            self.value = bf16_to_f64(self.raw)
        else:
            raise ValueError(dtype)


def write_bf16_safetensors(path: Path, tensors: dict[str, Stored]):
    """safetensors layout by hand (numpy has no bf16): u64 LE header length, JSON header
    (__metadata__ first, then tensors sorted by name, compact, space-padded to a multiple of
    8 like the safetensors library does), then the tensors' bytes contiguous in name order."""
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name]
        assert t.dtype == "BF16"
        b = t.raw.astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(t.raw.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_bf16_safetensors(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    out = {}
    end_max = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "BF16"
        s, e = info["data_offsets"]
        end_max = max(end_max, e)
        out[name] = np.frombuffer(body[s:e], dtype="<u2").reshape(info["shape"])
    assert end_max == len(body)
    return out


def write_safetensors(path: Path, tensors: dict[str, Stored]):
    dtypes = {t.dtype for t in tensors.values()}
    assert len(dtypes) == 1
    if dtypes == {"BF16"}:
        write_bf16_safetensors(path, tensors)
        back = read_bf16_safetensors(path)
        # the safetensors library must accept the header (it validates it on open)
        with safe_open(str(path), framework="numpy") as f:
            assert sorted(f.keys()) == sorted(tensors)
            assert f.metadata() == {"format": "pt"}
    else:
        safetensors.numpy.save_file({k: t.raw for k, t in tensors.items()}, str(path), metadata={"format": "pt"})
        back = safetensors.numpy.load_file(str(path))
    assert sorted(back) == sorted(tensors)
    for k, t in tensors.items():
        assert back[k].dtype == t.raw.dtype and back[k].shape == t.raw.shape, k
        assert np.array_equal(back[k].view(np.uint8), t.raw.view(np.uint8)), k


# --------------------------------------------------------------------------
# Forward building blocks (float64)
# --------------------------------------------------------------------------


def rmsnorm(x, w):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * w


def layernorm(x, w, b):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + EPS) * w + b


_erf = np.vectorize(math.erf, otypes=[F64])


def gelu_exact(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def silu(x):
    return x / (1.0 + np.exp(-x))


def relu(x):
    return np.maximum(x, 0.0)


def rope(x, theta):
    """x: (T, H, hd); HF rotate_half RoPE at positions 0..T-1."""
    T, _, hd = x.shape
    inv = theta ** (-np.arange(0, hd, 2, dtype=F64) / hd)
    ang = np.arange(T, dtype=F64)[:, None] * inv[None, :]
    emb = np.concatenate([ang, ang], axis=-1)
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
    rot = np.concatenate([-x2, x1], axis=-1)
    return x * cos + rot * sin


def attention(q, k, v):
    """q: (T, nh, hd), k/v: (T, nkv, hd) -> (T, nh*hd); causal, GQA h -> h // (nh/nkv)."""
    T, nh, hd = q.shape
    nkv = k.shape[1]
    group = nh // nkv
    out = np.zeros((T, nh, hd))
    mask = np.triu(np.ones((T, T), dtype=bool), 1)
    for h in range(nh):
        kh = h // group
        s = q[:, h] @ k[:, kh].T / math.sqrt(hd)
        s = np.where(mask, -np.inf, s)
        s = s - s.max(axis=-1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=-1, keepdims=True)
        out[:, h] = p @ v[:, kh]
    return out.reshape(T, nh * hd)


def lin(x, W, b=None):
    y = x @ W.T
    return y if b is None else y + b


# --------------------------------------------------------------------------
# Forwards, one per family; W maps HF tensor name -> f64 array; `pre` collects the relu
# pre-activations (to report how far from 0 they are)
# --------------------------------------------------------------------------


def llama_forward(W, cfg, tokens, pre):
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], HEAD_DIM
    theta = cfg["rope_theta"]
    act = cfg["hidden_act"]
    drelu = cfg["model_type"] == "bamboo"
    x = W["model.embed_tokens.weight"][tokens]
    T = len(tokens)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rmsnorm(x, W[p + "input_layernorm.weight"])
        q = lin(h, W[p + "self_attn.q_proj.weight"]).reshape(T, nh, hd)
        k = lin(h, W[p + "self_attn.k_proj.weight"]).reshape(T, nkv, hd)
        v = lin(h, W[p + "self_attn.v_proj.weight"]).reshape(T, nkv, hd)
        q, k = rope(q, theta), rope(k, theta)
        x = x + lin(attention(q, k, v), W[p + "self_attn.o_proj.weight"])
        h = rmsnorm(x, W[p + "post_attention_layernorm.weight"])
        g = lin(h, W[p + "mlp.gate_proj.weight"])
        u = lin(h, W[p + "mlp.up_proj.weight"])
        if drelu:
            assert act == "relu"
            pre += [g, u]
            m = relu(g) * relu(u)
        elif act == "relu":
            pre.append(g)
            m = relu(g) * u
        else:
            assert act == "silu"
            m = silu(g) * u
        x = x + lin(m, W[p + "mlp.down_proj.weight"])
    x = rmsnorm(x, W["model.norm.weight"])
    head = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    return lin(x, head)


def opt_forward(W, cfg, tokens, pre):
    nh, hd = cfg["num_attention_heads"], HEAD_DIM
    T = len(tokens)
    d = "model.decoder."
    x = W[d + "embed_tokens.weight"][tokens] + W[d + "embed_positions.weight"][np.arange(T) + 2]
    for i in range(cfg["num_hidden_layers"]):
        p = f"{d}layers.{i}."
        h = layernorm(x, W[p + "self_attn_layer_norm.weight"], W[p + "self_attn_layer_norm.bias"])
        a = p + "self_attn."
        q = lin(h, W[a + "q_proj.weight"], W[a + "q_proj.bias"]) * hd**-0.5
        k = lin(h, W[a + "k_proj.weight"], W[a + "k_proj.bias"])
        v = lin(h, W[a + "v_proj.weight"], W[a + "v_proj.bias"])
        # q already carries hd^-0.5; attention() divides by sqrt(hd) again, so undo that
        o = attention(q.reshape(T, nh, hd) * math.sqrt(hd), k.reshape(T, nh, hd), v.reshape(T, nh, hd))
        x = x + lin(o, W[a + "out_proj.weight"], W[a + "out_proj.bias"])
        h = layernorm(x, W[p + "final_layer_norm.weight"], W[p + "final_layer_norm.bias"])
        f = lin(h, W[p + "fc1.weight"], W[p + "fc1.bias"])
        pre.append(f)
        x = x + lin(relu(f), W[p + "fc2.weight"], W[p + "fc2.bias"])
    x = layernorm(x, W[d + "final_layer_norm.weight"], W[d + "final_layer_norm.bias"])
    return lin(x, W[d + "embed_tokens.weight"])


def falcon_forward(W, cfg, tokens, pre):
    nh, hd = cfg["num_attention_heads"], HEAD_DIM
    new_arch = cfg["new_decoder_architecture"]
    nkv = cfg["num_kv_heads"] if new_arch else (1 if cfg["multi_query"] else nh)
    theta = cfg["rope_theta"]
    T = len(tokens)
    x = W["transformer.word_embeddings.weight"][tokens]
    for i in range(cfg["num_hidden_layers"]):
        p = f"transformer.h.{i}."
        if new_arch:
            ha = layernorm(x, W[p + "ln_attn.weight"], W[p + "ln_attn.bias"])
            hm = layernorm(x, W[p + "ln_mlp.weight"], W[p + "ln_mlp.bias"])
        else:
            ha = hm = layernorm(x, W[p + "input_layernorm.weight"], W[p + "input_layernorm.bias"])
        qkv = lin(ha, W[p + "self_attention.query_key_value.weight"])
        if new_arch:
            qkv = qkv.reshape(T, nkv, nh // nkv + 2, hd)
            q = qkv[:, :, :-2].reshape(T, nh, hd)
            k, v = qkv[:, :, -2], qkv[:, :, -1]
        else:
            assert cfg["multi_query"]
            qkv = qkv.reshape(T, nh + 2, hd)
            q, k, v = qkv[:, :-2], qkv[:, -2:-1], qkv[:, -1:]
        q, k = rope(q, theta), rope(k, theta)
        attn = lin(attention(q, k, v), W[p + "self_attention.dense.weight"])
        f = lin(hm, W[p + "mlp.dense_h_to_4h.weight"])
        if cfg["activation"] == "relu":
            pre.append(f)
            f = relu(f)
        else:
            assert cfg["activation"] == "gelu"
            f = gelu_exact(f)
        x = x + attn + lin(f, W[p + "mlp.dense_4h_to_h.weight"])
    x = layernorm(x, W["transformer.ln_f.weight"], W["transformer.ln_f.bias"])
    return lin(x, W["transformer.word_embeddings.weight"])


# --------------------------------------------------------------------------
# Weights and configs
# --------------------------------------------------------------------------


class Init:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def mat(self, out, inp, scale=1.0):
        return self.rng.standard_normal((out, inp)) * (scale / math.sqrt(inp))

    def norm(self, n):
        return 1.0 + 0.1 * self.rng.standard_normal(n)

    def bias(self, n):
        return 0.1 * self.rng.standard_normal(n)

    def emb(self, rows, std):
        return self.rng.standard_normal((rows, HIDDEN)) * std


# embeddings: std 1 where the head is separate; std 0.25 when tied (the embedding is then also
# the output head, and 0.25 * sqrt(64) = 2 keeps the logits' spread O(1))
EMB_STD_UNTIED = 1.0
EMB_STD_TIED = 0.25


def llama_weights(ini: Init, cfg, V):
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    tied = cfg["tie_word_embeddings"]
    w = {"model.embed_tokens.weight": ini.emb(V, EMB_STD_TIED if tied else EMB_STD_UNTIED)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = ini.norm(HIDDEN)
        w[p + "self_attn.q_proj.weight"] = ini.mat(nh * HEAD_DIM, HIDDEN)
        w[p + "self_attn.k_proj.weight"] = ini.mat(nkv * HEAD_DIM, HIDDEN)
        w[p + "self_attn.v_proj.weight"] = ini.mat(nkv * HEAD_DIM, HIDDEN)
        w[p + "self_attn.o_proj.weight"] = ini.mat(HIDDEN, nh * HEAD_DIM)
        w[p + "post_attention_layernorm.weight"] = ini.norm(HIDDEN)
        w[p + "mlp.gate_proj.weight"] = ini.mat(FFN, HIDDEN)
        w[p + "mlp.up_proj.weight"] = ini.mat(FFN, HIDDEN)
        w[p + "mlp.down_proj.weight"] = ini.mat(HIDDEN, FFN)
    w["model.norm.weight"] = ini.norm(HIDDEN)
    if not tied:
        w["lm_head.weight"] = ini.mat(V, HIDDEN, 2.0)
    return w


def opt_weights(ini: Init, cfg, V):
    d = "model.decoder."
    w = {
        d + "embed_tokens.weight": ini.emb(V, EMB_STD_TIED),
        d + "embed_positions.weight": ini.emb(MAX_POS + 2, 0.25),
    }
    for i in range(LAYERS):
        p = f"{d}layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            w[p + f"self_attn.{n}.weight"] = ini.mat(HIDDEN, HIDDEN)
            w[p + f"self_attn.{n}.bias"] = ini.bias(HIDDEN)
        w[p + "self_attn_layer_norm.weight"] = ini.norm(HIDDEN)
        w[p + "self_attn_layer_norm.bias"] = ini.bias(HIDDEN)
        w[p + "fc1.weight"] = ini.mat(FFN, HIDDEN)
        w[p + "fc1.bias"] = ini.bias(FFN)
        w[p + "fc2.weight"] = ini.mat(HIDDEN, FFN)
        w[p + "fc2.bias"] = ini.bias(HIDDEN)
        w[p + "final_layer_norm.weight"] = ini.norm(HIDDEN)
        w[p + "final_layer_norm.bias"] = ini.bias(HIDDEN)
    w[d + "final_layer_norm.weight"] = ini.norm(HIDDEN)
    w[d + "final_layer_norm.bias"] = ini.bias(HIDDEN)
    return w


def falcon_weights(ini: Init, cfg, V):
    nh = cfg["num_attention_heads"]
    new_arch = cfg["new_decoder_architecture"]
    nkv = cfg["num_kv_heads"] if new_arch else 1
    qkv_rows = (nh + 2 * nkv) * HEAD_DIM
    w = {"transformer.word_embeddings.weight": ini.emb(V, EMB_STD_TIED)}
    for i in range(LAYERS):
        p = f"transformer.h.{i}."
        lns = ("ln_attn", "ln_mlp") if new_arch else ("input_layernorm",)
        for ln in lns:
            w[p + ln + ".weight"] = ini.norm(HIDDEN)
            w[p + ln + ".bias"] = ini.bias(HIDDEN)
        w[p + "self_attention.query_key_value.weight"] = ini.mat(qkv_rows, HIDDEN)
        w[p + "self_attention.dense.weight"] = ini.mat(HIDDEN, nh * HEAD_DIM)
        w[p + "mlp.dense_h_to_4h.weight"] = ini.mat(FFN, HIDDEN)
        w[p + "mlp.dense_4h_to_h.weight"] = ini.mat(HIDDEN, FFN)
    w["transformer.ln_f.weight"] = ini.norm(HIDDEN)
    w["transformer.ln_f.bias"] = ini.bias(HIDDEN)
    return w


TORCH_DTYPE = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def llama_config(V, bos, *, arch, model_type, act, nkv, theta, tied, dtype, mistral=False):
    c = {
        "architectures": [arch],
        "attention_dropout": 0.0,
        "bos_token_id": bos,
        "eos_token_id": bos,
        "head_dim": HEAD_DIM,
        "hidden_act": act,
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": FFN,
        "max_position_embeddings": MAX_POS,
        "model_type": model_type,
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": nkv,
        "rms_norm_eps": EPS,
        "rope_theta": theta,
        "tie_word_embeddings": tied,
        "torch_dtype": TORCH_DTYPE[dtype],
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "vocab_size": V,
    }
    if mistral:
        c["sliding_window"] = None
    else:
        c.update({"attention_bias": False, "mlp_bias": False, "pretraining_tp": 1, "rope_scaling": None})
    return c


def opt_config(V, bos, dtype):
    return {
        "_remove_final_layer_norm": False,
        "activation_dropout": 0.0,
        "activation_function": "relu",
        "architectures": ["OPTForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": bos,
        "do_layer_norm_before": True,
        "dropout": 0.1,
        "enable_bias": True,
        "eos_token_id": bos,
        "ffn_dim": FFN,
        "hidden_size": HIDDEN,
        "init_std": 0.02,
        "layer_norm_elementwise_affine": True,
        "layerdrop": 0.0,
        "max_position_embeddings": MAX_POS,
        "model_type": "opt",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "pad_token_id": bos,
        "prefix": "</s>",
        "tie_word_embeddings": True,
        "torch_dtype": TORCH_DTYPE[dtype],
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "vocab_size": V,
        "word_embed_proj_dim": HIDDEN,
    }


def falcon_config(V, bos, *, new_arch, nkv, act, dtype):
    return {
        "activation": act,
        "alibi": False,
        "apply_residual_connection_post_layernorm": False,
        "architectures": ["FalconForCausalLM"],
        "attention_dropout": 0.0,
        "bias": False,
        "bos_token_id": bos,
        "eos_token_id": bos,
        "ffn_hidden_size": FFN,
        "hidden_dropout": 0.0,
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "layer_norm_epsilon": EPS,
        "max_position_embeddings": MAX_POS,
        "model_type": "falcon",
        # falcon-7b and falcon-40b both say multi_query: true; with the old architecture it
        # means ONE kv head, with new_decoder_architecture it is ignored (num_kv_heads counts)
        "multi_query": True,
        "new_decoder_architecture": new_arch,
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        # FalconConfig stores num_kv_heads = num_attention_heads when not given, and
        # save_pretrained writes it out: the old architecture with multi_query ignores it
        "num_kv_heads": nkv,
        "num_ln_in_parallel_attn": 2 if new_arch else None,
        "parallel_attn": True,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "torch_dtype": TORCH_DTYPE[dtype],
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "vocab_size": V,
    }


def model_specs(V, bos):
    """name -> (config, weight builder, forward, stored dtype, seed, shards, note)"""
    return {
        "llama": (
            llama_config(V, bos, arch="LlamaForCausalLM", model_type="llama", act="silu", nkv=2,
                         theta=10000.0, tied=False, dtype="F16"),
            llama_weights, llama_forward, "F16", 11, 2,
            "LlamaForCausalLM, SwiGLU, GQA 4 heads / 2 KV, untied lm_head, f16, 2 shards + index",
        ),
        "relu_llama": (
            llama_config(V, bos, arch="LlamaForCausalLM", model_type="llama", act="relu", nkv=4,
                         theta=10000.0, tied=True, dtype="BF16"),
            llama_weights, llama_forward, "BF16", 12, 1,
            "ReLU-LLaMA: down(relu(gate x) * up x), MHA, tied (no lm_head.weight), bf16",
        ),
        "mistral": (
            llama_config(V, bos, arch="MistralForCausalLM", model_type="mistral", act="silu", nkv=1,
                         theta=1000000.0, tied=False, dtype="F32", mistral=True),
            llama_weights, llama_forward, "F32", 13, 1,
            "MistralForCausalLM, SwiGLU, 1 KV head, rope_theta 1e6, sliding_window null, untied, f32",
        ),
        "bamboo": (
            {**llama_config(V, bos, arch="BambooForCausalLM", model_type="bamboo", act="relu", nkv=2,
                            theta=10000.0, tied=False, dtype="F16", mistral=True)},
            llama_weights, llama_forward, "F16", 14, 1,
            "Bamboo: dReLU down(relu(gate x) * relu(up x)), Mistral layout, GQA 4/2, untied, f16",
        ),
        "opt": (
            opt_config(V, bos, "F16"), opt_weights, opt_forward, "F16", 15, 1,
            "OPTForCausalLM pre-LN, biases, learned positions (row p + 2), relu fc1/fc2, tied, f16",
        ),
        "falcon": (
            falcon_config(V, bos, new_arch=False, nkv=HEADS, act="gelu", dtype="F32"),
            falcon_weights, falcon_forward, "F32", 16, 1,
            "Falcon-7B style: multi_query (1 KV head; config num_kv_heads=4 is ignored), parallel "
            "attn+mlp on one input_layernorm, exact-erf GELU, no biases, tied, f32",
        ),
        "falcon_relu": (
            falcon_config(V, bos, new_arch=True, nkv=2, act="relu", dtype="BF16"),
            falcon_weights, falcon_forward, "BF16", 17, 1,
            "ReLU-Falcon-40B style: new_decoder_architecture, 4 heads / 2 KV (grouped fused qkv), "
            "ln_attn + ln_mlp, relu, no biases, tied, bf16",
        ),
    }


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def dump_json(path: Path, obj, **kw):
    path.write_text(json.dumps(obj, **kw) + "\n", encoding="utf-8")


def dump_json_lines(path: Path, obj):
    """A top-level dict (one key per line) or list (one item per line), values compact."""
    one = lambda v: json.dumps(v, ensure_ascii=False, separators=(", ", ": "))
    if isinstance(obj, dict):
        body = ",\n".join(f"  {json.dumps(k)}: {one(v)}" for k, v in obj.items())
        text = "{\n" + body + "\n}\n"
    else:
        text = "[\n" + ",\n".join(f"  {one(v)}" for v in obj) + "\n]\n"
    assert json.loads(text) == obj
    path.write_text(text, encoding="utf-8")


def main():
    tok = build_tokenizer()
    tok_json = tok.to_str(pretty=True)
    assert build_tokenizer().to_str(pretty=True) == tok_json, "tokenizer training is not deterministic"
    V = tok.get_vocab_size()
    bos = tok.token_to_id("<|endoftext|>")
    print(f"tokenizer: vocab {V}, <|endoftext|> = {bos}")
    OUT.mkdir(parents=True, exist_ok=True)

    cases = []
    for text in TOKENIZER_CASES:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert tok.decode(ids) == text, (text, tok.decode(ids))
        cases.append({"text": text, "ids": ids})
    dump_json_lines(OUT / "tokenizer_cases.json", cases)

    for name, (cfg, build, forward, dtype, seed, shards, note) in model_specs(V, bos).items():
        d = OUT / name
        d.mkdir(exist_ok=True)
        for old in d.glob("*.safetensors*"):
            old.unlink()
        ini = Init(seed)
        stored = {k: Stored(v, dtype) for k, v in build(ini, cfg, V).items()}
        W = {k: s.value for k, s in stored.items()}
        if cfg.get("tie_word_embeddings"):
            assert "lm_head.weight" not in stored

        # weights: one file, or shards split in state_dict order (the order built above)
        names = list(stored)
        if shards == 1:
            write_safetensors(d / "model.safetensors", stored)
        else:
            assert shards == 2
            cut = names.index("model.layers.1.input_layernorm.weight")
            parts = [names[:cut], names[cut:]]
            weight_map = {}
            for j, part in enumerate(parts):
                fname = f"model-{j + 1:05d}-of-{shards:05d}.safetensors"
                write_safetensors(d / fname, {k: stored[k] for k in part})
                weight_map.update({k: fname for k in part})
            total = sum(s.raw.nbytes for s in stored.values())
            dump_json(d / "model.safetensors.index.json",
                      {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2, sort_keys=True)
        dump_json(d / "config.json", cfg, indent=2, sort_keys=True)
        (d / "tokenizer.json").write_text(tok_json, encoding="utf-8")

        rng = np.random.default_rng(100 + seed)
        tokens = [bos] + [int(t) for t in rng.integers(len(SPECIAL_TOKENS), V, N_TOKENS - 1)]
        pre = []
        logits = forward(W, cfg, np.array(tokens), pre)
        assert logits.shape == (N_TOKENS, V)
        assert np.all(np.isfinite(logits))
        std = float(logits.std())
        assert std > 0.1, std
        # causality: a prefix gives the same rows
        for n in (1, 6):
            lp = forward(W, cfg, np.array(tokens[:n]), [])
            assert np.allclose(lp, logits[:n], rtol=0, atol=1e-10), (name, n)
        # a later token change must not move earlier rows, and must move its own
        t2 = list(tokens)
        t2[7] = bos if t2[7] != bos else 3
        l2 = forward(W, cfg, np.array(t2), [])
        assert np.allclose(l2[:7], logits[:7], rtol=0, atol=1e-10) and not np.allclose(l2[7], logits[7])

        logits.astype("<f4").tofile(d / "reference.logits.f32")
        top2 = np.sort(logits, axis=-1)[:, -2:]
        ref = {
            "arch": cfg["architectures"][0],
            "model_type": cfg["model_type"],
            "dtype": dtype,
            "note": note,
            "tokens": tokens,
            "vocab": V,
            "positions": "all",
            "logits": "reference.logits.f32",
            "argmax": [int(a) for a in logits.argmax(axis=-1)],
            "top2_margin_min": float((top2[:, 1] - top2[:, 0]).min()),
            "logits_std": std,
        }
        if pre:
            allpre = np.concatenate([p.ravel() for p in pre])
            ref["relu_min_abs_preactivation"] = float(np.abs(allpre).min())
            ref["relu_active_fraction"] = float((allpre > 0).mean())
        dump_json_lines(d / "reference.json", ref)
        extra = f", min|relu pre| {ref['relu_min_abs_preactivation']:.2e}" if pre else ""
        print(f"{name:12s} {dtype:4s} logits std {std:.3f} range [{logits.min():.2f}, {logits.max():.2f}]"
              f", min top2 margin {ref['top2_margin_min']:.3f}{extra}")


if __name__ == "__main__":
    main()
