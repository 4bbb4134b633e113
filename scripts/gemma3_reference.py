#!/usr/bin/env python3
"""Independent float64 numpy reference for the Gemma 3 architecture (gemma-3-270m Q4_K_M).

Writes crates/powerinfer-core/tests/data/gemma3_reference.json, which the Rust `gemma3`
implementation is tested against. Run ONCE BY HAND (not in CI); the JSON is committed,
the model is not (it is under the Gemma Terms of Use and fetched on demand).

How to run
----------
    scripts/fetch-assets.sh gemma3          # models/gemma-3-270m-q4_k_m.gguf (250 MB)
    python3 -m venv /tmp/venv
    /tmp/venv/bin/pip install numpy gguf transformers sentencepiece protobuf
    /tmp/venv/bin/python scripts/gemma3_reference.py [--model PATH] [--out PATH]

It also reads data/botchan.txt (scripts/fetch-assets.sh). Both files are looked for under
$POWERINFER_ASSETS_DIR when set, else under the repository root.

No torch is needed. Peak memory ~4 GB (the 262144 x 640 embedding in float64 is 1.3 GB).
About 6 minutes with one BLAS thread on a busy 2-core machine (1 min reading the
vocabulary and dequantizing, 3 min for the long prompt's five 645-token forwards).

The forward pass is written from the architecture facts (llama.cpp src/models/gemma3.cpp,
the iswa variant; hparams from src/llama-model.cpp `case LLM_ARCH_GEMMA3`;
convert_hf_to_gguf.py `Gemma3Model`), not from the Rust code:

* x = token_embd[t] * sqrt(n_embd)                    (sqrt(640), in float64 here)
* per layer l (18), all RMSNorms `x / sqrt(mean(x^2) + eps) * w`, eps 1e-6, with w the
  weight AS STORED (the converter already added Gemma's +1):
    h   = rms(x) * attn_norm
    q,k,v = Wq h, Wk h, Wv h; q: 4 heads x 256, k/v: 1 head x 256 (GQA 4:1)
    q   = rms_per_head(q) * attn_q_norm;  k = rms_per_head(k) * attn_k_norm   (before RoPE)
    RoPE NEOX (pairs (i, i + 128) in each 256-wide head), angle p * base^(-2i/256);
        base 1e6 on global layers (5, 11, 17), 1e4 on the sliding-window ones
    q  *= 1/sqrt(256) (= query_pre_attn_scalar^-1/2 for 270m); softmax(q k^T) v, causal;
        sliding layers: query p sees keys j with p - j < 512
    x  += rms(Wo attn) * post_attention_norm
    h   = rms(x) * ffn_norm
    x  += rms(Wdown (gelu_tanh(Wgate h) * (Wup h))) * post_ffw_norm
* logits = token_embd . (rms(x) * output_norm)        (tied head, no softcapping)

Weights are dequantized with gguf.quants.dequantize (the numbers the Rust loader sees)
and all math is float64. GGUF dims are ggml order: a weight with dims [in, out] comes out
of gguf as numpy (out, in) and is applied as W @ x (see scripts/reference.py).

Tokens: from transformers' own GGUF tokenizer builder
(transformers.integrations.gguf.gguf_tokenizer_mapping.convert_gguf_tokenizer, the code
AutoTokenizer.from_pretrained(dir, gguf_file=...) uses; called directly because that entry
point's GGUF reader imports torch), BOS (2) prepended. Cross-checked against a plain
llama.cpp-style SentencePiece-BPE tokenizer over the GGUF vocab/scores, written below;
the JSON records whether the two agree per prompt.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import os
import time
from pathlib import Path

import numpy as np
import gguf

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "crates" / "powerinfer-core" / "tests" / "data"
# Assets (models/, data/) under $POWERINFER_ASSETS_DIR when set, else the repository root,
# as for scripts/fetch-assets.sh.
ASSETS = Path(os.environ.get("POWERINFER_ASSETS_DIR") or REPO)
DEFAULT_MODEL = ASSETS / "models" / "gemma-3-270m-q4_k_m.gguf"
MODEL_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

F64 = np.float64
TOP_K = 16

SHORT_PROMPTS = [
    ("capital", "The capital of France is"),
    ("fibonacci", "def fibonacci(n):"),
    ("once", "Once upon a time"),
]
SHORT_GREEDY = 12
LONG_CHARS = 2500  # of data/botchan.txt, BOM dropped
LONG_MIN_TOKENS = 601
LONG_LAST = 32
LONG_GREEDY = 4


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def scalar(r: gguf.GGUFReader, key: str):
    return r.fields[key].contents()


def str_array(r: gguf.GGUFReader, key: str) -> list[str]:
    f = r.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def num_array(r: gguf.GGUFReader, key: str) -> list:
    f = r.fields[key]
    return [f.parts[i][0].item() for i in f.data]


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------


class Gemma3:
    def __init__(self, r: gguf.GGUFReader):
        assert scalar(r, "general.architecture") == "gemma3"
        a = "gemma3"
        self.d = int(scalar(r, f"{a}.embedding_length"))
        self.n_layer = int(scalar(r, f"{a}.block_count"))
        self.n_head = int(scalar(r, f"{a}.attention.head_count"))
        self.n_kv = int(scalar(r, f"{a}.attention.head_count_kv"))
        self.hd = int(scalar(r, f"{a}.attention.key_length"))
        assert self.hd == int(scalar(r, f"{a}.attention.value_length"))
        self.eps = float(scalar(r, f"{a}.attention.layer_norm_rms_epsilon"))
        self.base_global = float(scalar(r, f"{a}.rope.freq_base"))
        self.base_local = 10000.0  # not in the file: llama.cpp hard-codes it for gemma3
        self.window = int(scalar(r, f"{a}.attention.sliding_window"))
        for k in (f"{a}.rope.scaling.factor", f"{a}.final_logit_softcapping",
                  f"{a}.attn_logit_softcapping", f"{a}.rope.dimension_count"):
            assert k not in r.fields, k
        # every 6th layer (il % 6 == 5) is global, the others sliding-window
        self.is_swa = [il % 6 < 5 for il in range(self.n_layer)]
        self.attn_scale = 1.0 / np.sqrt(self.hd)
        self.t = {}
        for t in r.tensors:
            arr = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
            assert tuple(arr.shape) == tuple(reversed([int(x) for x in t.shape])), t.name
            self.t[t.name] = arr.astype(F64)
        assert "output.weight" not in self.t  # tied head
        self.vocab = self.t["token_embd.weight"].shape[0]

    def w(self, name):
        return self.t[name]


def rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x * x * x)))


def rope_neox(x, base, positions):
    """x: (T, heads, hd). NEOX: rotate (x[i], x[i + hd/2]) by p * base^(-2i/hd)."""
    hd = x.shape[-1]
    half = hd // 2
    theta = base ** (-2.0 * np.arange(half, dtype=F64) / hd)
    ang = positions[:, None].astype(F64) * theta[None, :]
    c = np.cos(ang)[:, None, :]
    s = np.sin(ang)[:, None, :]
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)


def final_hidden(m: Gemma3, tokens):
    """(T, d) final-normed hidden states for the whole sequence, batched over positions."""
    tokens = np.asarray(tokens, dtype=np.int64)
    T = len(tokens)
    pos = np.arange(T)
    x = m.w("token_embd.weight")[tokens] * np.sqrt(F64(m.d))
    qpos, kpos = pos[:, None], pos[None, :]
    causal = kpos > qpos
    swa_mask = causal | (qpos - kpos >= m.window)
    group = m.n_head // m.n_kv
    for l in range(m.n_layer):
        p = f"blk.{l}."
        h = rms(x, m.w(p + "attn_norm.weight"), m.eps)
        q = (h @ m.w(p + "attn_q.weight").T).reshape(T, m.n_head, m.hd)
        k = (h @ m.w(p + "attn_k.weight").T).reshape(T, m.n_kv, m.hd)
        v = (h @ m.w(p + "attn_v.weight").T).reshape(T, m.n_kv, m.hd)
        q = rms(q, m.w(p + "attn_q_norm.weight"), m.eps)
        k = rms(k, m.w(p + "attn_k_norm.weight"), m.eps)
        base = m.base_local if m.is_swa[l] else m.base_global
        q = rope_neox(q, base, pos) * m.attn_scale
        k = rope_neox(k, base, pos)
        mask = swa_mask if m.is_swa[l] else causal
        o = np.empty((T, m.n_head, m.hd), dtype=F64)
        for j in range(m.n_head):
            kv = j // group
            s = q[:, j, :] @ k[:, kv, :].T
            s = np.where(mask, -np.inf, s)
            s = s - s.max(axis=-1, keepdims=True)
            pr = np.exp(s)
            pr /= pr.sum(axis=-1, keepdims=True)
            o[:, j, :] = pr @ v[:, kv, :]
        o = o.reshape(T, m.n_head * m.hd) @ m.w(p + "attn_output.weight").T
        x = x + rms(o, m.w(p + "post_attention_norm.weight"), m.eps)
        h = rms(x, m.w(p + "ffn_norm.weight"), m.eps)
        g = gelu_tanh(h @ m.w(p + "ffn_gate.weight").T) * (h @ m.w(p + "ffn_up.weight").T)
        f = g @ m.w(p + "ffn_down.weight").T
        x = x + rms(f, m.w(p + "post_ffw_norm.weight"), m.eps)
    return rms(x, m.w("output_norm.weight"), m.eps)


def logits_of(m: Gemma3, hidden):
    return hidden @ m.w("token_embd.weight").T


def logsumexp(z):
    mx = z.max(axis=-1, keepdims=True)
    return (mx + np.log(np.exp(z - mx).sum(axis=-1, keepdims=True)))[..., 0]


def position_record(pos, z):
    top = np.argsort(-z, kind="stable")[:TOP_K]
    return {
        "pos": int(pos),
        "top": [[int(i), float(z[i])] for i in top],
        "logsumexp": float(logsumexp(z[None, :])[0]),
    }


def greedy(m: Gemma3, tokens, n):
    toks = list(tokens)
    out, margins = [], []
    for _ in range(n):
        z = logits_of(m, final_hidden(m, toks)[-1:])[0]
        top2 = np.argsort(-z, kind="stable")[:2]
        out.append(int(top2[0]))
        margins.append(float(z[top2[0]] - z[top2[1]]))
        toks.append(int(top2[0]))
    return out, margins


# --------------------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------------------


def hf_tokenizer(vocab):
    """transformers' tokenizer built from the GGUF metadata (torch-free entry point)."""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer

    d = {
        "tokenizer_type": "llama",
        "tokens": vocab["tokens"],
        "scores": vocab["scores"],
        "token_type": vocab["types"],
        "bos_token_id": 2,
        "eos_token_id": 1,
        "unk_token_id": 3,
        "pad_token_id": 0,
        "add_prefix_space": False,
    }
    tk, _ = convert_gguf_tokenizer("gemma3", d)
    return tk


class SpmTokenizer:
    """llama.cpp-style SentencePiece BPE over the GGUF vocab (the cross-check).

    USER_DEFINED (type 4) tokens are matched whole in the raw text first, longest first
    (llama.cpp always does; CONTROL ones only when parsing specials, which we never do).
    In the remaining fragments ' ' becomes U+2581 (add_space_prefix = false, so nothing is
    prepended); then, starting from single UTF-8 characters, the adjacent pair whose
    concatenation is a vocab token with the highest score is merged (leftmost on ties)
    until no pair merges. A leftover symbol not in the vocab becomes its UTF-8 bytes as
    <0xXX> tokens (byte fallback).
    """

    def __init__(self, vocab):
        self.tokens = vocab["tokens"]
        self.scores = vocab["scores"]
        self.id = {}
        for i, t in enumerate(self.tokens):
            self.id.setdefault(t, i)
        self.user = sorted((t for t, ty in zip(self.tokens, vocab["types"]) if ty == 4),
                           key=len, reverse=True)
        self.byte = {int(t[3:5], 16): i for i, (t, ty) in enumerate(zip(self.tokens, vocab["types"])) if ty == 6}

    def _partition(self, text):
        frags = [(text, False)]
        for u in self.user:
            nxt = []
            for s, done in frags:
                if done or u not in s:
                    nxt.append((s, done))
                    continue
                parts = s.split(u)
                for j, part in enumerate(parts):
                    if part:
                        nxt.append((part, False))
                    if j + 1 < len(parts):
                        nxt.append((u, True))
            frags = nxt
        return frags

    def _bpe(self, s):
        syms = list(s.replace(" ", "\u2581"))
        alive = [True] * len(syms)
        nxt = list(range(1, len(syms) + 1))
        prv = list(range(-1, len(syms) - 1))
        heap = []

        def push(i):
            j = nxt[i]
            if j < len(syms):
                t = self.id.get(syms[i] + syms[j])
                if t is not None:
                    heapq.heappush(heap, (-self.scores[t], i, syms[i] + syms[j], j))

        for i in range(len(syms) - 1):
            push(i)
        while heap:
            _, i, merged, j = heapq.heappop(heap)
            if not alive[i] or not alive[j] or nxt[i] != j or syms[i] + syms[j] != merged:
                continue
            syms[i] = merged
            alive[j] = False
            nxt[i] = nxt[j]
            if nxt[j] < len(syms):
                prv[nxt[j]] = i
            if prv[i] >= 0:
                push(prv[i])
            push(i)
        out = []
        for i, s in enumerate(syms):
            if not alive[i]:
                continue
            t = self.id.get(s)
            if t is not None:
                out.append(t)
            else:
                out.extend(self.byte[b] for b in s.encode("utf-8"))
        return out

    def encode(self, text):
        ids = []
        for s, special in self._partition(text):
            ids.extend([self.id[s]] if special else self._bpe(s))
        return ids


# --------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--out", type=Path, default=DATA / "gemma3_reference.json")
    args = ap.parse_args()
    t0 = time.time()

    sha = sha256(args.model)
    if sha != MODEL_SHA256:
        raise SystemExit(f"{args.model}: sha256 {sha}, expected {MODEL_SHA256}")
    r = gguf.GGUFReader(str(args.model))
    assert scalar(r, "tokenizer.ggml.model") == "llama"
    assert scalar(r, "tokenizer.ggml.add_space_prefix") is False
    bos = int(scalar(r, "tokenizer.ggml.bos_token_id"))
    assert bos == 2 and scalar(r, "tokenizer.ggml.add_bos_token") is True
    vocab = {
        "tokens": str_array(r, "tokenizer.ggml.tokens"),
        "scores": num_array(r, "tokenizer.ggml.scores"),
        "types": num_array(r, "tokenizer.ggml.token_type"),
    }
    print(f"[{time.time() - t0:6.1f}s] read metadata", flush=True)
    hf = hf_tokenizer(vocab)
    spm = SpmTokenizer(vocab)
    print(f"[{time.time() - t0:6.1f}s] built tokenizers", flush=True)
    m = Gemma3(r)
    print(f"[{time.time() - t0:6.1f}s] dequantized weights (vocab {m.vocab})", flush=True)

    botchan = (ASSETS / "data" / "botchan.txt").read_text(encoding="utf-8").lstrip("\ufeff")
    n_chars = LONG_CHARS
    while len(hf.encode(botchan[:n_chars]).ids) + 1 < LONG_MIN_TOKENS:
        n_chars += 250
    prompts = [(n, t, "all", SHORT_GREEDY) for n, t in SHORT_PROMPTS]
    prompts.append(("botchan_long", botchan[:n_chars], "last", LONG_GREEDY))

    records = []
    for name, text, which, n_greedy in prompts:
        t1 = time.time()
        ids_hf = [bos] + hf.encode(text).ids
        ids_spm = [bos] + spm.encode(text)
        toks = ids_hf
        hid = final_hidden(m, toks)
        first = 0 if which == "all" else len(toks) - LONG_LAST
        z = logits_of(m, hid[first:])
        positions = [position_record(first + i, z[i]) for i in range(z.shape[0])]
        gen, margins = greedy(m, toks, n_greedy)
        rec = {
            "name": name,
            "text": text,
            "tokens": toks,
            "n_tokens": len(toks),
            "tokenizers_agree": ids_hf == ids_spm,
            "positions": positions,
            "greedy": {
                "ids": gen,
                "text": hf.decode(gen),
                "top2_margins": margins,
            },
        }
        if ids_hf != ids_spm:
            rec["tokens_spm_check"] = ids_spm
        records.append(rec)
        print(f"[{time.time() - t0:6.1f}s] {name}: {len(toks)} tokens, agree={ids_hf == ids_spm}, "
              f"greedy {gen} {hf.decode(gen)!r} (min margin {min(margins):.3f}) "
              f"in {time.time() - t1:.1f}s", flush=True)

    out = {
        "generator": "scripts/gemma3_reference.py",
        "model_file": args.model.name,
        "model_sha256": sha,
        "tokenizer": "transformers convert_gguf_tokenizer('gemma3', GGUF metadata), BOS 2 prepended",
        "math": "float64 on gguf.quants.dequantize'd weights",
        "top_k": TOP_K,
        "positions_note": "pos p = logits after feeding tokens[0..=p]; 'all' positions for the "
                          f"short prompts, the last {LONG_LAST} for botchan_long; logsumexp over "
                          "the full vocab",
        "long_prompt_source": f"data/botchan.txt, BOM dropped, first {n_chars} characters",
        "prompts": records,
    }
    args.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"[{time.time() - t0:6.1f}s] wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
