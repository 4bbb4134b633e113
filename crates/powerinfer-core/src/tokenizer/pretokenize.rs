//! Pre-tokenization: splitting text into the words byte-level BPE runs on.
//!
//! Each [`PreKind`] reproduces one Hugging Face `pre_tokenizer` (and the llama.cpp
//! `tokenizer.ggml.pre` of the same name) exactly, because BPE merges never cross a
//! pre-token boundary: a different split gives different ids.
//!
//! Why hand-assembled: GPT-2's and Llama 3's patterns contain `\s+(?!\S)`, a look-ahead
//! the `regex` crate does not support. We match `\s+` instead and give back the last
//! whitespace character when the run is followed by a non-space, which is exactly what
//! the look-ahead does ([`lookahead_end`]).
//!
//! Pieces are bytes, not `&str`: Falcon's later steps run on the byte-level alphabet and
//! can split inside a UTF-8 character (see [`PreKind::Falcon`]).

use regex::Regex;

use super::byte_level::byte_to_char;

/// GPT-2's pattern without the look-ahead alternative (see the module docs).
const GPT2_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+";

/// Llama 3's pattern without the look-ahead alternative `\s+(?!\S)` (see the module docs).
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+";

/// A run of punctuation as Hugging Face's `Punctuation` pre-tokenizer defines it:
/// `char::is_ascii_punctuation` (which includes symbols such as `$+<=>^|~`) or a Unicode
/// `P*` general category.
const PUNCTUATION_PATTERN: &str = r"[[:punct:]\p{P}]+";

/// The pre-tokenizers we implement, named by `tokenizer.ggml.pre`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PreKind {
    /// GPT-2's regex only (`gpt-2`).
    Gpt2,
    /// Every numeric character on its own, then GPT-2's regex on the rest (`smollm`,
    /// `starcoder`, `refact`: llama.cpp and Hugging Face's `Digits(individual_digits)`).
    DigitsThenGpt2,
    /// Llama 3's regex (`llama-bpe`, `llama3`, `llama-v3`): Hugging Face's
    /// `Split(Regex(..), Isolated)` then `ByteLevel(use_regex=false)`. Letters keep one
    /// leading non-letter (`"(a"`, `"\tx"`), numbers split in threes from the left, a
    /// whitespace run ends after its last newline.
    Llama3,
    /// Falcon's sequence (`falcon`): `Punctuation(Contiguous)`, then `ByteLevel` with
    /// GPT-2's regex on each piece, then, on the byte-level characters of each piece,
    /// `Digits(individual_digits=false)` (runs of `char::is_numeric`) and
    /// `Split("[0-9][0-9][0-9]", Isolated)`. The last two see the byte-level alphabet, in
    /// which bytes such as 0xB2 (`²`) are numeric: `"²"` (C2 B2) splits into two pieces,
    /// as Hugging Face does.
    Falcon,
}

impl PreKind {
    /// The accepted `tokenizer.ggml.pre` values, for error messages.
    pub(crate) const SUPPORTED: &'static str =
        "gpt-2, smollm, starcoder, refact, llama-bpe, llama3, llama-v3, falcon";

    /// The pre-tokenizer for a `tokenizer.ggml.pre` value.
    pub(crate) fn from_name(pre: &str) -> Option<PreKind> {
        match pre {
            "gpt-2" => Some(PreKind::Gpt2),
            "smollm" | "starcoder" | "refact" => Some(PreKind::DigitsThenGpt2),
            "llama-bpe" | "llama3" | "llama-v3" => Some(PreKind::Llama3),
            "falcon" => Some(PreKind::Falcon),
            _ => None,
        }
    }
}

/// A compiled pre-tokenizer: the patterns its [`PreKind`] uses.
#[derive(Debug)]
pub(crate) enum PreTokenizer {
    Gpt2 {
        gpt2: Regex,
    },
    DigitsThenGpt2 {
        digit: Regex,
        gpt2: Regex,
    },
    Llama3 {
        llama3: Regex,
    },
    Falcon {
        punctuation: Regex,
        gpt2: Regex,
        /// Which bytes stand for a numeric character in the byte-level alphabet (boxed:
        /// the table would triple the size of every tokenizer's pre-tokenizer).
        numeric: Box<[bool; 256]>,
    },
}

impl PreTokenizer {
    pub(crate) fn new(kind: PreKind) -> PreTokenizer {
        // The patterns are constants, not input: they compile in every tokenizer test, so
        // a failure here is a bug in this file, never a property of a model file.
        #[allow(clippy::panic)]
        let compile =
            |p: &str| Regex::new(p).unwrap_or_else(|e| panic!("bad built-in regex {p}: {e}"));
        match kind {
            PreKind::Gpt2 => PreTokenizer::Gpt2 {
                gpt2: compile(GPT2_PATTERN),
            },
            PreKind::DigitsThenGpt2 => PreTokenizer::DigitsThenGpt2 {
                digit: compile(r"\p{N}"),
                gpt2: compile(GPT2_PATTERN),
            },
            PreKind::Llama3 => PreTokenizer::Llama3 {
                llama3: compile(LLAMA3_PATTERN),
            },
            PreKind::Falcon => PreTokenizer::Falcon {
                punctuation: compile(PUNCTUATION_PATTERN),
                gpt2: compile(GPT2_PATTERN),
                numeric: Box::new(byte_to_char().map(char::is_numeric)),
            },
        }
    }

    /// Calls `f` on each pre-token of `text`, in order; the pieces concatenate to `text`'s
    /// bytes.
    pub(crate) fn split<'t>(&self, text: &'t str, f: &mut dyn FnMut(&'t [u8])) {
        match self {
            PreTokenizer::Gpt2 { gpt2 } => split_gpt2(gpt2, text, &mut |p| f(p.as_bytes())),
            PreTokenizer::DigitsThenGpt2 { digit, gpt2 } => {
                let mut emit = |p: &'t str| f(p.as_bytes());
                split_isolated(digit, text, &mut |p| split_gpt2(gpt2, p, &mut emit));
            }
            PreTokenizer::Llama3 { llama3 } => split_llama3(llama3, text, &mut |p| f(p.as_bytes())),
            PreTokenizer::Falcon {
                punctuation,
                gpt2,
                numeric,
            } => split_isolated(punctuation, text, &mut |piece| {
                split_gpt2(gpt2, piece, &mut |word| {
                    split_numeric(numeric, word.as_bytes(), f);
                })
            }),
        }
    }
}

/// Calls `f` on each match of `re` in `text` and each text between matches, in order:
/// Hugging Face's `Isolated` split behaviour, or `Contiguous` when `re` matches whole runs.
fn split_isolated<'t>(re: &Regex, text: &'t str, f: &mut dyn FnMut(&'t str)) {
    let mut start = 0;
    for m in re.find_iter(text) {
        if m.start() > start {
            f(&text[start..m.start()]);
        }
        f(m.as_str());
        start = m.end();
    }
    if start < text.len() {
        f(&text[start..]);
    }
}

/// Where a match of a pattern's final `\s+` alternative ends once the `\s+(?!\S)`
/// alternative before it is taken into account.
///
/// Why this is exact: the run `\s+` matched is maximal, so it is followed by a non-space
/// or the end. `\s+(?!\S)` (tried first) takes the whole run at the end of the text, the
/// run less its last character when that leaves at least one (`"  x"` → `" "`, `" x"`),
/// and fails on a single space before a non-space, where `\s+` takes it.
fn lookahead_end(text: &str, start: usize, end: usize) -> usize {
    let run = &text[start..end];
    let before_word = text[end..]
        .chars()
        .next()
        .is_some_and(|c| !c.is_whitespace());
    match run.chars().next_back() {
        Some(last) if before_word && run.len() > last.len_utf8() => end - last.len_utf8(),
        _ => end,
    }
}

/// GPT-2's regex (`'s|'t|… ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`).
fn split_gpt2<'t>(gpt2: &Regex, text: &'t str, f: &mut dyn FnMut(&'t str)) {
    // An all-whitespace match can only come from the final `\s+`: every other
    // alternative needs a non-space.
    split_words(
        gpt2,
        text,
        &|piece| piece.chars().all(char::is_whitespace),
        f,
    );
}

/// Llama 3's regex (see [`LLAMA3_PATTERN`] and [`PreKind::Llama3`]).
fn split_llama3<'t>(llama3: &Regex, text: &'t str, f: &mut dyn FnMut(&'t str)) {
    // An all-whitespace match comes from `\s*[\r\n]+` when it holds a newline (that
    // alternative matches wherever the whitespace run ahead holds one, and ends after its
    // last newline), otherwise from the final `\s+`.
    let final_alternative =
        |piece: &str| piece.chars().all(char::is_whitespace) && !piece.contains(['\r', '\n']);
    split_words(llama3, text, &final_alternative, f);
}

/// Splits `text` with a leftmost-first `pattern` whose final alternative is `\s+`, fixing
/// up the matches of that alternative (recognised by `from_final_space`) as the
/// look-ahead alternative `\s+(?!\S)` would have matched them.
fn split_words<'t>(
    pattern: &Regex,
    text: &'t str,
    from_final_space: &dyn Fn(&str) -> bool,
    f: &mut dyn FnMut(&'t str),
) {
    let mut pos = 0;
    while pos < text.len() {
        let Some(m) = pattern.find_at(text, pos) else {
            // Every character matches some alternative, so this is unreachable; keep
            // the text whole rather than lose it.
            f(&text[pos..]);
            return;
        };
        let end = if from_final_space(m.as_str()) {
            lookahead_end(text, m.start(), m.end())
        } else {
            m.end()
        };
        f(&text[pos..end]);
        pos = end;
    }
}

/// Falcon's steps after `ByteLevel` on one word: runs of numeric byte-level characters
/// isolated (`Digits(individual_digits=false)`), then each run of three ASCII digits
/// isolated (`Split("[0-9][0-9][0-9]")`, leftmost first).
fn split_numeric<'t>(numeric: &[bool; 256], word: &'t [u8], f: &mut dyn FnMut(&'t [u8])) {
    let is_numeric = |b: &u8| numeric[usize::from(*b)];
    for run in word.chunk_by(|a, b| is_numeric(a) == is_numeric(b)) {
        if !run.first().is_some_and(is_numeric) {
            f(run);
            continue;
        }
        let (mut start, mut i) = (0, 0);
        while let Some(three) = run.get(i..i + 3) {
            if three.iter().all(u8::is_ascii_digit) {
                if i > start {
                    f(&run[start..i]);
                }
                f(three);
                i += 3;
                start = i;
            } else {
                i += 1;
            }
        }
        if start < run.len() {
            f(&run[start..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(kind: PreKind, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        PreTokenizer::new(kind).split(text, &mut |p| {
            out.push(String::from_utf8(p.to_vec()).expect("whole characters"))
        });
        out
    }

    /// The pieces in the byte-level alphabet, as Hugging Face's `pre_tokenize_str` shows
    /// them (space → `Ġ`, …); pieces need not be whole characters.
    fn byte_level_pieces(kind: PreKind, text: &str) -> Vec<String> {
        let map = byte_to_char();
        let mut out = Vec::new();
        PreTokenizer::new(kind).split(text, &mut |p| {
            out.push(p.iter().map(|&b| map[usize::from(b)]).collect())
        });
        assert_eq!(out.concat(), byte_level_pieces_whole(text), "{text:?}");
        out
    }

    fn byte_level_pieces_whole(text: &str) -> String {
        let map = byte_to_char();
        text.bytes().map(|b| map[usize::from(b)]).collect()
    }

    #[test]
    fn gpt2_splits_like_the_reference_pattern() {
        assert_eq!(
            pieces(PreKind::Gpt2, "Hello world's  3.5x\n\n  end  "),
            [
                "Hello", " world", "'s", " ", " 3", ".", "5", "x", "\n\n ", " end", "  "
            ]
        );
        assert_eq!(pieces(PreKind::Gpt2, "a\tb"), ["a", "\t", "b"]);
        assert!(pieces(PreKind::Gpt2, "").is_empty());
    }

    #[test]
    fn digits_are_isolated_first() {
        assert_eq!(
            pieces(PreKind::DigitsThenGpt2, "x 123 ab4"),
            ["x", " ", "1", "2", "3", " ab", "4"]
        );
    }

    /// Expected pieces: Hugging Face `tokenizers` 0.23, `pre_tokenize_str` of
    /// `Sequence([Split(Regex(<Llama 3 pattern>), "isolated"),
    /// ByteLevel(add_prefix_space=False, use_regex=False)])`.
    #[test]
    fn llama3_splits_like_hugging_face() {
        let cases: &[(&str, &[&str])] = &[
            ("a  b", &["a", "Ġ", "Ġb"]),
            ("a   \n\n  b", &["a", "ĠĠĠĊĊ", "Ġ", "Ġb"]),
            ("\t\tx", &["ĉ", "ĉx"]),
            ("x  ", &["x", "ĠĠ"]),
            ("  x", &["Ġ", "Ġx"]),
            ("12 345 6789", &["12", "Ġ", "345", "Ġ", "678", "9"]),
            ("don't WE'LL", &["don", "'t", "ĠWE", "'LL"]),
            ("hello!!! ...?", &["hello", "!!!", "Ġ...?"]),
            ("(a+b)*c", &["(a", "+b", ")*", "c"]),
            ("x\r\ny", &["x", "čĊ", "y"]),
            ("\n\nx", &["ĊĊ", "x"]),
            (" \n x", &["ĠĊ", "Ġx"]),
            ("a \t\nb", &["a", "ĠĉĊ", "b"]),
            ("\u{a0}x", &["Âłx"]),
            ("²½ 12²345", &["Â²Â½", "Ġ", "12Â²", "345"]),
            ("   ", &["ĠĠĠ"]),
        ];
        for (text, expected) in cases {
            assert_eq!(
                byte_level_pieces(PreKind::Llama3, text),
                *expected,
                "{text:?}"
            );
        }
        assert!(pieces(PreKind::Llama3, "").is_empty());
    }

    /// Expected pieces: Hugging Face `tokenizers` 0.23, `pre_tokenize_str` of
    /// `Sequence([Punctuation("contiguous"), ByteLevel(add_prefix_space=False,
    /// use_regex=True), Digits(individual_digits=False), Split(Regex("[0-9][0-9][0-9]"),
    /// "isolated")])` (tiiuae/falcon-7b's pre-tokenizer).
    #[test]
    fn falcon_splits_like_hugging_face() {
        let cases: &[(&str, &[&str])] = &[
            ("a   \n\n  b", &["a", "ĠĠĠĊĊĠ", "Ġb"]),
            ("\t\tx", &["ĉ", "ĉ", "x"]),
            ("1234567", &["123", "456", "7"]),
            ("12 345 6789", &["12", "Ġ", "345", "Ġ", "678", "9"]),
            ("don't WE'LL", &["don", "'", "t", "ĠWE", "'", "LL"]),
            ("hello!!! ...?", &["hello", "!!!", "Ġ", "...?"]),
            ("(a+b)*c", &["(", "a", "+", "b", ")*", "c"]),
            ("x\r\ny", &["x", "č", "Ċ", "y"]),
            ("a \t\nb", &["a", "Ġĉ", "Ċ", "b"]),
            ("$5+<=>^`|~", &["$", "5", "+<=>^`|~"]),
            (
                "²½ 12²345",
                &["Â", "²", "Â", "½", "Ġ", "12", "Â", "²", "345"],
            ),
            (
                "’s ‘q’ — «x»",
                &[
                    "âĢĻ", "s", "Ġ", "âĢĺ", "q", "âĢĻ", "Ġ", "âĢĶ", "Ġ", "Â«", "x", "Â»",
                ],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                byte_level_pieces(PreKind::Falcon, text),
                *expected,
                "{text:?}"
            );
        }
        assert!(pieces(PreKind::Falcon, "").is_empty());
    }
}
