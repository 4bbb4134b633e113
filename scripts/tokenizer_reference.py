#!/usr/bin/env python3
"""Independent reference token ids for the SmolLM2 tokenizer test.

Why: the Rust tokenizer is hand-written; this is a second, independent implementation of
GPT-2 byte-level BPE (OpenAI's classic `encoder.py` algorithm: bytes_to_unicode, then
merge the lowest-ranked adjacent pair until none applies), with the `regex` package for
the pre-tokenizer pattern and no Hugging Face `tokenizers` code. SmolLM2's pre-tokenizer
("smollm") first isolates every numeric character, then applies GPT-2's pattern.
Special tokens (token type CONTROL=3 / USER_DEFINED=4) written in the text are single
tokens.

Run once by hand (not in CI), after scripts/fetch-assets.sh:

    python3 -m venv /work/venv && /work/venv/bin/pip install numpy gguf regex
    /work/venv/bin/python scripts/tokenizer_reference.py
    /work/venv/bin/python scripts/tokenizer_reference.py --spm   # see below

It writes crates/powerinfer-core/tests/data/tokenizer_smollm2.json: [{"text", "ids"}, ...].

With `--spm` (needs `/work/venv/bin/pip install sentencepiece==0.2.0`) it instead trains a
small SentencePiece BPE model (byte fallback, identity normalisation) on data/botchan.txt
with Google's `sentencepiece` library and writes tokenizer_spm_botchan.json: the pieces
(text, score, GGUF token type) and reference ids from `sentencepiece` itself, an
independent check of our llama.cpp-style SentencePiece merge loop.
"""

import json
import os
import sys

import regex
from gguf import GGUFReader

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(ROOT, "crates", "powerinfer-core", "tests", "data", "tokenizer_smollm2.json")

GPT2_PATTERN = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)
DIGIT = regex.compile(r"\p{N}")


def bytes_to_unicode():
    """OpenAI's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def get_pairs(word):
    return {(word[i], word[i + 1]) for i in range(len(word) - 1)}


class Gpt2Bpe:
    def __init__(self, tokens, merges, token_types, pre):
        self.encoder = {}
        for i, t in enumerate(tokens):
            self.encoder.setdefault(t, i)
        self.ranks = {}
        for i, m in enumerate(merges):
            a, b = m.split(" ", 1)
            self.ranks.setdefault((a, b), i)
        self.byte_encoder = bytes_to_unicode()
        specials = [t for t, ty in zip(tokens, token_types) if ty in (3, 4) and t]
        specials.sort(key=len, reverse=True)
        self.special_re = regex.compile("|".join(regex.escape(s) for s in specials))
        if pre not in ("smollm", "starcoder", "refact", "gpt-2"):
            sys.exit(f"unsupported pre-tokenizer {pre}")
        self.split_digits = pre != "gpt-2"
        self.cache = {}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token)
        pairs = get_pairs(word)
        while pairs:
            bigram = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if bigram not in self.ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        self.cache[token] = word
        return word

    def pretokenize(self, text):
        pieces = []
        chunks = []
        if self.split_digits:
            start = 0
            for m in DIGIT.finditer(text):
                chunks.append(text[start : m.start()])
                chunks.append(m.group())
                start = m.end()
            chunks.append(text[start:])
        else:
            chunks = [text]
        for chunk in chunks:
            pieces.extend(GPT2_PATTERN.findall(chunk))
        return pieces

    def encode_text(self, text):
        ids = []
        for piece in self.pretokenize(text):
            mapped = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(mapped))
        return ids

    def encode(self, text):
        ids = []
        start = 0
        for m in self.special_re.finditer(text):
            ids.extend(self.encode_text(text[start : m.start()]))
            ids.append(self.encoder[m.group()])
            start = m.end()
        ids.extend(self.encode_text(text[start:]))
        return ids


HUMANEVAL_LIKE = '''from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    """ Check if in given list of numbers, are any two numbers closer to each other than
    given threshold.
    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)
    False
    >>> has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)
    True
    """
    for idx, elem in enumerate(numbers):
        for idx2, elem2 in enumerate(numbers):
            if idx != idx2:
                distance = abs(elem - elem2)
                if distance < threshold:
                    return True

    return False
'''

TEXTS = [
    "",
    "Hello world!",
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France? The capital of France is Paris.",
    "I'm sure you'll see they've done what we'd said; it's John's.",
    "SHOUTING ISN'T IT? We'LL see.",
    HUMANEVAL_LIKE,
    "def f(x):\n\treturn x  # tab-indented\n\n\n",
    "if (a && b) { return a->c[0] != NULL; }",
    "12345 3.14159",
    "In 2024, 1,000,000 people paid $19.99 (about 42%).",
    "phone: +1-555-0100, ratio 16:9, v2.0.1",
    "Café naïve résumé façade Ångström",
    "日本語のテキストと中文文本。",
    "Привет, мир! Как дела?",
    "Ελληνικά και العربية и עברית",
    "emoji: 😀🎉👍🏽 and 🇫🇷 flags",
    "   leading spaces",
    "trailing spaces   ",
    "multiple     spaces    between   words",
    " ",
    "\n",
    "line one\nline two\r\nline three\n\n\nafter blank lines",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n",
    "text<|endoftext|>more<file_sep>end",
    "<|im_start <|im_end| not specials",
    "Mixed: abc123def ４５６ ½ Ⅷ",
    "URL https://example.com/path?q=1&r=two#frag",
    "JSON {\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
    "  \t  mixed\t whitespace \t ",
    "a" * 50 + " " + "=" * 40,
]


SPM_TEXTS = [
    "",
    "Hello world",
    "I was a wild, reckless boy.",
    "  two leading spaces and two trailing  ",
    "multiple     spaces",
    "line one\nline two",
    "Café, naïve, 日本語, Привет!",
    "emoji 😀 and numbers 12345",
    "tabs\tand\ttabs",
]


def spm_main():
    import tempfile

    import sentencepiece as spm

    botchan = os.path.join(ROOT, "data", "botchan.txt")
    out_path = os.path.join(os.path.dirname(OUT), "tokenizer_spm_botchan.json")
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "botchan")
        spm.SentencePieceTrainer.train(
            input=botchan,
            model_prefix=prefix,
            vocab_size=700,
            model_type="bpe",
            byte_fallback=True,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=True,
            character_coverage=0.9995,
            num_threads=1,
            minloglevel=2,
        )
        sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    pieces = []
    for i in range(sp.get_piece_size()):
        if sp.is_unknown(i):
            ty = 2
        elif sp.is_control(i):
            ty = 3
        elif sp.is_byte(i):
            ty = 6
        elif sp.is_unused(i):
            ty = 5
        else:
            ty = 1
        pieces.append([sp.id_to_piece(i), sp.get_score(i), ty])
    lines = [l for l in open(botchan, encoding="utf-8").read().split("\n") if l.strip()]
    texts = SPM_TEXTS + lines[100:110]
    cases = [{"text": t, "ids": sp.encode(t)} for t in texts]
    with open(out_path, "w", encoding="utf-8") as out:
        out.write('{"unk": %d, "bos": %d, "eos": %d,\n' % (sp.unk_id(), sp.bos_id(), sp.eos_id()))
        out.write('"pieces": ' + json.dumps(pieces, ensure_ascii=False) + ",\n")
        out.write('"cases": [\n')
        out.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
        out.write("\n]}\n")
    print(f"wrote {len(pieces)} pieces and {len(cases)} cases to {out_path}")


def main():
    if "--spm" in sys.argv[1:]:
        spm_main()
        return
    reader = GGUFReader(MODEL)
    f = reader.fields
    model = f["tokenizer.ggml.model"].contents()
    if model != "gpt2":
        sys.exit(f"expected a gpt2 vocabulary, found {model}")
    bpe = Gpt2Bpe(
        f["tokenizer.ggml.tokens"].contents(),
        f["tokenizer.ggml.merges"].contents(),
        f["tokenizer.ggml.token_type"].contents(),
        f["tokenizer.ggml.pre"].contents(),
    )
    cases = [{"text": t, "ids": bpe.encode(t)} for t in TEXTS]
    with open(OUT, "w", encoding="utf-8") as out:
        # One case per line keeps diffs readable.
        out.write("[\n")
        out.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
        out.write("\n]\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
