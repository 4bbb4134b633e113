//! SentencePiece BPE as llama.cpp runs it (`llm_tokenizer_spm`).
//!
//! Why: LLaMA-family GGUF files (`tokenizer.ggml.model = "llama"`) ship pieces with scores
//! rather than merges. Spaces become `▁`, the text is split into characters, and the
//! adjacent pair whose concatenation is a vocabulary piece with the highest score is
//! merged until none is left; characters that are no piece fall back to `<0xXX>` tokens.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::error::TokenizerError;

/// The SentencePiece word-boundary marker that stands for a space.
pub(crate) const SPACE_MARK: char = '▁';

/// Scores and byte-fallback tokens of an SPM vocabulary.
#[derive(Debug)]
pub(crate) struct Spm {
    scores: Vec<f32>,
    /// Whether token `i` may come out of merging text: only ordinary pieces, so text
    /// that spells `<s>` or `<0x41>` never becomes that control or byte token.
    mergeable: Vec<bool>,
    byte_tokens: [Option<u32>; 256],
    unk: Option<u32>,
}

/// A candidate merge of the symbols starting at `left` and `right`.
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    len: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Highest score first, then leftmost (llama.cpp's comparator).
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// One symbol of the linked list being merged: a byte range of the text.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl Spm {
    /// `scores[i]` is token `i`'s score; byte tokens are found by their `<0xXX>` text;
    /// `mergeable[i]` says whether token `i` is an ordinary piece.
    pub(crate) fn new(
        scores: Vec<f32>,
        mergeable: Vec<bool>,
        token_ids: &HashMap<String, u32>,
        unk: Option<u32>,
    ) -> Spm {
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            *slot = token_ids.get(&format!("<0x{b:02X}>")).copied();
        }
        Spm {
            scores,
            mergeable,
            byte_tokens,
            unk,
        }
    }

    /// The ordinary piece spelled exactly `piece`, if any.
    fn piece(&self, token_ids: &HashMap<String, u32>, piece: &str) -> Option<u32> {
        let id = *token_ids.get(piece)?;
        self.mergeable
            .get(id as usize)
            .copied()
            .unwrap_or(false)
            .then_some(id)
    }

    /// Appends the tokens of `text` (spaces already replaced by `▁`) to `out`.
    pub(crate) fn encode(
        &self,
        text: &str,
        token_ids: &HashMap<String, u32>,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        let mut symbols: Vec<Symbol> = Vec::new();
        for (i, (start, c)) in text.char_indices().enumerate() {
            symbols.push(Symbol {
                start,
                len: c.len_utf8(),
                prev: i.checked_sub(1),
                next: None,
            });
            if let Some(p) = i.checked_sub(1) {
                symbols[p].next = Some(i);
            }
        }
        let mut queue = BinaryHeap::new();
        let try_add =
            |queue: &mut BinaryHeap<Bigram>, symbols: &[Symbol], left: usize, right: usize| {
                let (l, r) = (symbols[left], symbols[right]);
                let piece = &text[l.start..r.start + r.len];
                if let Some(id) = self.piece(token_ids, piece) {
                    let score = self
                        .scores
                        .get(id as usize)
                        .copied()
                        .unwrap_or(f32::NEG_INFINITY);
                    queue.push(Bigram {
                        score,
                        left,
                        right,
                        len: piece.len(),
                    });
                }
            };
        for i in 1..symbols.len() {
            try_add(&mut queue, &symbols, i - 1, i);
        }
        while let Some(b) = queue.pop() {
            let (l, r) = (symbols[b.left], symbols[b.right]);
            // Skip candidates made stale by an earlier merge.
            if l.len == 0 || r.len == 0 || l.len + r.len != b.len || l.next != Some(b.right) {
                continue;
            }
            symbols[b.left].len += r.len;
            symbols[b.right].len = 0;
            symbols[b.left].next = r.next;
            if let Some(n) = r.next {
                symbols[n].prev = Some(b.left);
            }
            if let Some(p) = symbols[b.left].prev {
                try_add(&mut queue, &symbols, p, b.left);
            }
            if let Some(n) = symbols[b.left].next {
                try_add(&mut queue, &symbols, b.left, n);
            }
        }
        let mut i = if symbols.is_empty() { None } else { Some(0) };
        while let Some(s) = i {
            let sym = symbols[s];
            let piece = &text[sym.start..sym.start + sym.len];
            match self.piece(token_ids, piece) {
                Some(id) => out.push(id),
                None => {
                    for byte in piece.bytes() {
                        let id = self.byte_tokens[usize::from(byte)]
                            .or(self.unk)
                            .ok_or(TokenizerError::UnencodableByte { byte })?;
                        out.push(id);
                    }
                }
            }
            i = sym.next;
        }
        Ok(())
    }
}
