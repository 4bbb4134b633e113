//! Byte-level BPE (GPT-2 style): merges applied by rank to the bytes of each pre-token.
//!
//! Why by hand: the algorithm is a few dozen lines, and the `tokenizers` crate costs
//! minutes of build time for it. This is OpenAI's `encoder.py` algorithm: start from one
//! symbol per byte, repeatedly merge the adjacent pair with the lowest merge rank.

use std::collections::HashMap;

use super::byte_level::byte_to_char;
use super::error::TokenizerError;

/// Merge ranks over token ids, plus the byte → token map.
#[derive(Debug)]
pub(crate) struct Bpe {
    /// `(left, right)` → `(rank, merged)`.
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Token of each single byte's character, if the vocabulary has it.
    byte_tokens: [Option<u32>; 256],
}

impl Bpe {
    /// Builds the merge table from GGUF's `"left right"` merge strings.
    pub(crate) fn new(
        file: &str,
        token_ids: &HashMap<String, u32>,
        merges: &[&str],
    ) -> Result<Bpe, TokenizerError> {
        let chars = byte_to_char();
        let mut byte_tokens = [None; 256];
        for (slot, c) in byte_tokens.iter_mut().zip(chars) {
            *slot = token_ids.get(c.encode_utf8(&mut [0; 4]) as &str).copied();
        }
        let mut table = HashMap::with_capacity(merges.len());
        for (index, merge) in merges.iter().enumerate() {
            let bad = |problem: &str| TokenizerError::BadMerge {
                file: file.to_string(),
                index,
                merge: merge.to_string(),
                problem: problem.to_string(),
            };
            let (left, right) = merge
                .split_once(' ')
                .ok_or_else(|| bad("no space between the two parts"))?;
            let id = |s: &str| token_ids.get(s).copied();
            let (Some(l), Some(r)) = (id(left), id(right)) else {
                return Err(bad("a part is not in the vocabulary"));
            };
            let merged = id(&format!("{left}{right}"))
                .ok_or_else(|| bad("the merged token is not in the vocabulary"))?;
            let rank = u32::try_from(index).map_err(|_| bad("too many merges"))?;
            // The first (lowest-rank) occurrence of a pair wins, as in every implementation.
            table.entry((l, r)).or_insert((rank, merged));
        }
        Ok(Bpe {
            merges: table,
            byte_tokens,
        })
    }

    /// Appends the tokens of one pre-token `word` to `out`.
    pub(crate) fn encode_word(&self, word: &str, out: &mut Vec<u32>) -> Result<(), TokenizerError> {
        let mut symbols = word
            .bytes()
            .map(|b| {
                self.byte_tokens[usize::from(b)].ok_or(TokenizerError::UnencodableByte { byte: b })
            })
            .collect::<Result<Vec<u32>, _>>()?;
        loop {
            // The adjacent pair with the lowest rank (leftmost on ties).
            let best = symbols
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| {
                    self.merges
                        .get(&(w[0], w[1]))
                        .map(|&(rank, merged)| (rank, i, merged))
                })
                .min();
            let Some((_, i, merged)) = best else { break };
            symbols[i] = merged;
            symbols.remove(i + 1);
        }
        out.extend_from_slice(&symbols);
        Ok(())
    }
}
