//! Writing a vocabulary into a GGUF file: the inverse of [`Tokenizer::from_gguf`] for
//! SentencePiece models.
//!
//! Why: tools that build GGUF files (converters, test fixtures, synthetic models) need the
//! `tokenizer.ggml.*` keys exactly as the reader expects them, in one place.

use crate::gguf::{GgufWriter, Value, ValueType};

#[cfg(doc)]
use super::Tokenizer;

/// One SentencePiece vocabulary entry: piece text (`▁` for a space, `<0xXX>` for a byte
/// token), score (higher merges first) and GGUF token type (`TOKEN_TYPE_*`).
#[derive(Clone, Debug, PartialEq)]
pub struct SpmPiece {
    /// The piece text.
    pub text: String,
    /// Its merge score.
    pub score: f32,
    /// Its GGUF token type ([`super::TOKEN_TYPE_NORMAL`], …).
    pub kind: i32,
}

impl SpmPiece {
    /// A piece of `kind` with `score`.
    pub fn new(text: impl Into<String>, score: f32, kind: i32) -> SpmPiece {
        SpmPiece {
            text: text.into(),
            score,
            kind,
        }
    }
}

/// `<unk>`, `<s>`, `</s>` (ids 0, 1, 2) then the 256 `<0xXX>` byte-fallback pieces: the
/// start of every llama-family vocabulary, to which a vocabulary's own pieces are appended.
pub fn spm_base_vocabulary() -> Vec<SpmPiece> {
    let mut v = vec![
        SpmPiece::new("<unk>", 0.0, super::TOKEN_TYPE_UNKNOWN),
        SpmPiece::new("<s>", 0.0, super::TOKEN_TYPE_CONTROL),
        SpmPiece::new("</s>", 0.0, super::TOKEN_TYPE_CONTROL),
    ];
    v.extend(
        (0..=255u8).map(|b| SpmPiece::new(format!("<0x{b:02X}>"), 0.0, super::TOKEN_TYPE_BYTE)),
    );
    v
}

/// Adds a `llama` (SentencePiece BPE) tokenizer with `pieces` (token `i` is `pieces[i]`)
/// and the given special ids to `w`.
pub fn add_spm_vocabulary(
    w: &mut GgufWriter,
    pieces: &[SpmPiece],
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
) {
    w.add("tokenizer.ggml.model", "llama");
    w.add(
        "tokenizer.ggml.tokens",
        Value::string_array(pieces.iter().map(|p| p.text.clone())),
    );
    w.add(
        "tokenizer.ggml.token_type",
        Value::array(ValueType::I32, pieces.iter().map(|p| p.kind)),
    );
    w.add(
        "tokenizer.ggml.scores",
        Value::array(ValueType::F32, pieces.iter().map(|p| p.score)),
    );
    for (key, id) in [("bos", bos), ("eos", eos), ("unknown", unk)] {
        if let Some(id) = id {
            w.add(&format!("tokenizer.ggml.{key}_token_id"), id);
        }
    }
}
