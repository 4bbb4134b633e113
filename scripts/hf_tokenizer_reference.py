#!/usr/bin/env python3
"""Reference data for loading Hugging Face `tokenizer.json` files (tests/hf_tokenizer.rs).

Why: `powerinfer_core::tokenizer::tokenizer_json_metadata` translates a `tokenizer.json`
into GGUF `tokenizer.ggml.*` metadata, and our hand-written tokenizer must then encode
exactly like Hugging Face's own `tokenizers` library, the independent reference here.

Run once by hand (not in CI), after scripts/fetch-assets.sh (for data/botchan.txt and,
for --smollm2, the SmolLM2 model):

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install numpy gguf tokenizers==0.23.*
    /tmp/venv/bin/python scripts/hf_tokenizer_reference.py [--data DIR] [--models DIR]

It writes, under crates/powerinfer-core/tests/data/hf_tokenizer/:

- `bytelevel.tokenizer.json`: a byte-level BPE (vocabulary 1000) trained with
  `tokenizers`' BpeTrainer on the first half of botchan.txt, pre-tokenized as SmolLM2 is
  (Digits(individual_digits) then ByteLevel with GPT-2's regex), with special tokens
  `<|endoftext|>`, `<|im_start|>`, `<|im_end|>`.
- `spm.tokenizer.json`: a SentencePiece-style BPE (byte_fallback, `<0x00>`..`<0xFF>`,
  normalizer Prepend("▁") + Replace(" ", "▁"), `<s>` added by the post-processor) trained
  on the same text. Its merges are then rebuilt the way transformers' SentencePiece
  converter writes them for Llama 2 / Mistral (every split of a piece into two pieces,
  ordered by the piece's rank): the form such files have, and the one a score-based
  SentencePiece merge loop reproduces exactly.
- `cases.json`: {"bytelevel": [...], "spm": [...]} with, per text, `ids` (HF's
  `encode(text, add_special_tokens=False)`, which matches special tokens written in the
  text) and `ids_split_special` (the same with `encode_special_tokens = True`: special
  tokens written in the text are encoded as text), and for spm `ids_bos` (as
  `ids_split_special`, with `add_special_tokens=True`: `<s>` first).
- `llama3.tokenizer.json`, `falcon.tokenizer.json`: byte-level BPEs (vocabulary 1000,
  same text) with Llama 3's pre-tokenizer (Split(Llama 3's regex) + ByteLevel without
  regex) and post-processor (`<|begin_of_text|>` first), and with tiiuae/falcon-7b's
  (Punctuation(Contiguous), ByteLevel, Digits(individual_digits=false),
  Split("[0-9][0-9][0-9]")).
- `cases_pre.json`: {"llama3": [...], "falcon": [...]} as `cases.json` (llama3 with
  `ids_bos`), for the same texts plus PRE_EDGE and 40 seeded random strings.

With --smollm2 it also builds a tokenizer.json from the SmolLM2 GGUF's vocabulary
(models/SmolLM2-135M-Instruct.Q4_1.gguf), checks that `tokenizers` encodes the texts of
tests/data/tokenizer_smollm2.json to the ids recorded there, and writes it gzipped as
`smollm2.tokenizer.json.gz`.
"""

import argparse
import gzip
import json
import os

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import Regex, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "crates", "powerinfer-core", "tests", "data")
OUT = os.path.join(TESTS, "hf_tokenizer")

EDGE = [
    "",
    " ",
    "   ",
    "\n",
    "\n\n  \n",
    "a  b   c    ",
    " leading space",
    "trailing space ",
    "12345",
    "3.14159 and 1,000,000 yen",
    "café 日本語 🙂",
    "²³ ٣ digits that are not ASCII",
    "tabs\tand\r\nCRLF",
    "don't you'll we've I'm he'd they're it's",
    "ALL CAPS and MiXeD",
    "<|im_start|>user\nHello<|im_end|>",
    "text with <|im_start|> inside",
    "<s> and </s> and <unk>",
    "<0x41> is not a byte token in text",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa ===================",
    "▁ already has the marker",
]

# Extra texts for the Llama 3 and Falcon pre-tokenizers: whitespace runs before words and
# around newlines, tabs, digit groups, contractions, punctuation runs, non-ASCII.
PRE_EDGE = [
    "a  b",
    "a   \n\n  b",
    "\t\tx",
    "x  ",
    "  x",
    "1234567",
    "12 345 6789",
    "don't WE'LL",
    "hello!!! ...?",
    "(a+b)*c",
    "naïve café",
    "日本語のテキスト",
    "x\r\ny",
    "   ",
    "\n",
    "🙂🙂 ok",
    "\n\nx",
    " \n x",
    "a \t\nb",
    "\u00a0x and\u3000y",
    "²½ 12²345 ٣٤٥٦",
    "’s ‘q’ — «x» ¿qué?",
    "$5+<=>^`|~ @#%&",
    "It'S 2024's BEST: 100,000,000 items (I think)...\n\n\tDone.  \r\n",
]

# Llama 3's pre-tokenizer regex, as its tokenizer.json writes it.
LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def lines(path):
    text = open(path, encoding="utf-8").read().lstrip("\ufeff")
    return [l for l in text.split("\n") if l.strip()]


def train_bytelevel(train):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(train, trainer)
    return tok


def train_pre(train, pre, specials, post):
    """A byte-level BPE (vocabulary 1000) trained with the pre-tokenizer `pre`."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = post
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(train, trainer)
    return tok


def train_llama3(train):
    """Llama 3's pre-tokenizer and post-processor (meta-llama/Meta-Llama-3-8B)."""
    pre = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    post = processors.Sequence(
        [
            processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A",
                pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                special_tokens=[("<|begin_of_text|>", 0)],
            ),
        ]
    )
    return train_pre(train, pre, specials, post)


def train_falcon(train):
    """Falcon's pre-tokenizer (tiiuae/falcon-7b's tokenizer.json)."""
    pre = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Punctuation("contiguous"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
            pre_tokenizers.Digits(individual_digits=False),
            pre_tokenizers.Split(Regex("[0-9][0-9][0-9]"), behavior="isolated", invert=False),
        ]
    )
    specials = [">>TITLE<<", ">>ABSTRACT<<", "<|endoftext|>"]
    return train_pre(train, pre, specials, processors.ByteLevel(trim_offsets=False))


def close_merges(vocab, specials):
    """Merges as transformers' SentencePieceExtractor writes them: every split of every
    piece into two pieces, pieces in rank (id) order, splits by the parts' ids."""
    merges = []
    for piece, _ in sorted(vocab.items(), key=lambda kv: kv[1]):
        if piece in specials:
            continue
        local = []
        for i in range(1, len(piece)):
            l, r = piece[:i], piece[i:]
            if l in vocab and r in vocab and l not in specials and r not in specials:
                local.append((l, r))
        local.sort(key=lambda lr: (vocab[lr[0]], vocab[lr[1]]))
        merges.extend(local)
    return merges


def train_spm(train):
    bytes_ = [f"<0x{b:02X}>" for b in range(256)]
    specials = ["<unk>", "<s>", "</s>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    # Train on ▁-prefixed words (as SentencePiece does), then drop the pre-tokenizer:
    # the saved file has Llama 2's normalizer and no pre-tokenizer.
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=1000, special_tokens=specials + bytes_, show_progress=False
    )
    tok.train_from_iterator(train, trainer)
    vocab = tok.get_vocab()
    merges = close_merges(vocab, set(specials + bytes_))
    model = models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True)
    out = Tokenizer(model)
    out.add_special_tokens(specials)
    out.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    out.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    out.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    return out


def cases(tok, texts, bos):
    out = []
    for t in texts:
        tok.encode_special_tokens = False
        case = {"text": t, "ids": tok.encode(t, add_special_tokens=False).ids}
        tok.encode_special_tokens = True
        case["ids_split_special"] = tok.encode(t, add_special_tokens=False).ids
        if bos:
            case["ids_bos"] = tok.encode(t, add_special_tokens=True).ids
        tok.encode_special_tokens = False
        out.append(case)
    return out


def smollm2(models_dir):
    from gguf import GGUFReader

    r = GGUFReader(os.path.join(models_dir, "SmolLM2-135M-Instruct.Q4_1.gguf"))

    def strings(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    tokens = strings("tokenizer.ggml.tokens")
    merges = strings("tokenizer.ggml.merges")
    f = r.fields["tokenizer.ggml.token_type"]
    types = [int(f.parts[i][0]) for i in f.data]
    vocab = {t: i for i, t in enumerate(tokens)}
    model = models.BPE(vocab, [tuple(m.split(" ", 1)) for m in merges])
    tok = Tokenizer(model)
    tok.add_special_tokens([t for t, ty in zip(tokens, types) if ty == 3])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    ref = json.load(open(os.path.join(TESTS, "tokenizer_smollm2.json"), encoding="utf-8"))
    for case in ref:
        got = tok.encode(case["text"], add_special_tokens=False).ids
        assert got == case["ids"], (case["text"], got, case["ids"])
    print(f"smollm2: tokenizers matches all {len(ref)} recorded encodings")
    # Merges as "left right" strings (the older form, shorter than pairs; tokenizers reads
    # both), re-read to check the file encodes the same.
    j = json.loads(tok.to_str())
    j["model"]["merges"] = [" ".join(m) for m in j["model"]["merges"]]
    s = json.dumps(j, ensure_ascii=False, separators=(",", ":"))
    again = Tokenizer.from_str(s)
    for case in ref:
        assert again.encode(case["text"], add_special_tokens=False).ids == case["ids"]
    path = os.path.join(OUT, "smollm2.tokenizer.json.gz")
    with gzip.GzipFile(path, "wb", mtime=0) as g:
        g.write(s.encode("utf-8"))
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def random_texts():
    """40 seeded random strings of the pieces pre-tokenizers treat differently."""
    import random

    rng = random.Random(0)
    alphabet = [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "a", "Bc", "é", "日本", "🙂", "1",
                "2345", "²", "٣", "'s", "'LL", "'", "!", "...", "(", "-", "$", "_", "x"]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(3, 16))) for _ in range(40)]


def pre_cases(train, texts):
    """llama3.tokenizer.json, falcon.tokenizer.json and their cases_pre.json."""
    data = {}
    for name, tok, bos in [("llama3", train_llama3(train), True), ("falcon", train_falcon(train), False)]:
        path = os.path.join(OUT, f"{name}.tokenizer.json")
        tok.save(path, pretty=False)
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")
        data[name] = cases(tok, texts, bos)
        for case in data[name]:
            back = tok.decode(case["ids"], skip_special_tokens=False)
            assert back == case["text"], (name, case["text"], back)
    path = os.path.join(OUT, "cases_pre.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=0)
    print(f"wrote {path} ({len(texts)} texts)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "data"))
    ap.add_argument("--models", default=os.path.join(ROOT, "models"))
    ap.add_argument("--smollm2", action="store_true")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)

    text = lines(os.path.join(args.data, "botchan.txt"))
    half = len(text) // 2
    train, held = text[:half], text[half:]
    # 30 held-out lines spread over the second half, plus one multi-line paragraph.
    step = len(held) // 30
    texts = [held[i * step] for i in range(30)] + ["\n".join(held[100:106])] + EDGE

    bl = train_bytelevel(train)
    spm = train_spm(train)
    for name, tok in [("bytelevel", bl), ("spm", spm)]:
        path = os.path.join(OUT, f"{name}.tokenizer.json")
        tok.save(path, pretty=False)
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    data = {"bytelevel": cases(bl, texts, False), "spm": cases(spm, texts, True)}
    for name, tok in [("bytelevel", bl), ("spm", spm)]:
        for case in data[name]:
            back = tok.decode(case["ids"], skip_special_tokens=False)
            if back != case["text"]:
                print(f"{name}: HF does not decode {case['text']!r} back (gives {back!r})")
    path = os.path.join(OUT, "cases.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=0)
    print(f"wrote {path} ({len(texts)} texts)")
    pre_cases(train, texts + PRE_EDGE + random_texts())
    if args.smollm2:
        smollm2(args.models)


if __name__ == "__main__":
    main()
