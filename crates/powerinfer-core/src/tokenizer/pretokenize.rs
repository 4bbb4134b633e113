//! GPT-2 style pre-tokenization: splitting text into the words BPE runs on.
//!
//! Why hand-assembled: GPT-2's pattern ends in `\s+(?!\S)`, a look-ahead the `regex` crate
//! does not support. We match `\s+` instead and give back the last whitespace character
//! when the run is followed by a non-space, which is exactly what the look-ahead does.

use regex::Regex;

/// GPT-2's pattern without the look-ahead alternative (see the module docs).
const GPT2_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+";

/// The pre-tokenizers we implement, named by `tokenizer.ggml.pre`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PreKind {
    /// GPT-2's regex only (`gpt-2`).
    Gpt2,
    /// Every numeric character on its own, then GPT-2's regex on the rest (`smollm`,
    /// `starcoder`, `refact`: llama.cpp and Hugging Face's `Digits(individual_digits)`).
    DigitsThenGpt2,
}

impl PreKind {
    /// The accepted `tokenizer.ggml.pre` values, for error messages.
    pub(crate) const SUPPORTED: &'static str = "gpt-2, smollm, starcoder, refact";

    /// The pre-tokenizer for a `tokenizer.ggml.pre` value.
    pub(crate) fn from_name(pre: &str) -> Option<PreKind> {
        match pre {
            "gpt-2" => Some(PreKind::Gpt2),
            "smollm" | "starcoder" | "refact" => Some(PreKind::DigitsThenGpt2),
            _ => None,
        }
    }
}

/// A compiled pre-tokenizer.
#[derive(Debug)]
pub(crate) struct PreTokenizer {
    kind: PreKind,
    gpt2: Regex,
    digit: Regex,
}

impl PreTokenizer {
    pub(crate) fn new(kind: PreKind) -> PreTokenizer {
        // Both patterns are constants, not input: they compile in every tokenizer test, so
        // a failure here is a bug in this file, never a property of a model file.
        #[allow(clippy::panic)]
        let compile =
            |p: &str| Regex::new(p).unwrap_or_else(|e| panic!("bad built-in regex {p}: {e}"));
        PreTokenizer {
            kind,
            gpt2: compile(GPT2_PATTERN),
            digit: compile(r"\p{N}"),
        }
    }

    /// Calls `f` on each pre-token of `text`, in order; the pieces concatenate to `text`.
    pub(crate) fn split<'t>(&self, text: &'t str, f: &mut dyn FnMut(&'t str)) {
        match self.kind {
            PreKind::Gpt2 => self.split_gpt2(text, f),
            PreKind::DigitsThenGpt2 => {
                let mut start = 0;
                for m in self.digit.find_iter(text) {
                    self.split_gpt2(&text[start..m.start()], f);
                    f(m.as_str());
                    start = m.end();
                }
                self.split_gpt2(&text[start..], f);
            }
        }
    }

    fn split_gpt2<'t>(&self, text: &'t str, f: &mut dyn FnMut(&'t str)) {
        let mut pos = 0;
        while pos < text.len() {
            let Some(m) = self.gpt2.find_at(text, pos) else {
                // Every character matches some alternative, so this is unreachable; keep
                // the text whole rather than lose it.
                f(&text[pos..]);
                return;
            };
            let mut end = m.end();
            let piece = m.as_str();
            // `\s+(?!\S)`: a whitespace run followed by a non-space keeps its last
            // character for the next word (e.g. "  x" → " ", " x").
            let next = text[end..].chars().next();
            if let Some(last) = piece.chars().last()
                && piece.len() > last.len_utf8()
                && piece.chars().all(char::is_whitespace)
                && next.is_some_and(|c| !c.is_whitespace())
            {
                end -= last.len_utf8();
            }
            f(&text[m.start()..end]);
            pos = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(kind: PreKind, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        PreTokenizer::new(kind).split(text, &mut |p| out.push(p.to_string()));
        out
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
}
