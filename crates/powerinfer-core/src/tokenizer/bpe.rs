//! Byte-level BPE (GPT-2 style): merges applied by rank to the bytes of each pre-token.
//!
//! Why by hand: the algorithm is a few dozen lines, and the `tokenizers` crate costs
//! minutes of build time for it. This is OpenAI's `encoder.py` algorithm: start from one
//! symbol per byte, repeatedly merge the adjacent pair with the lowest merge rank
//! (leftmost on ties). The pairs wait in a priority queue over a linked list of symbols,
//! so a word of n bytes costs O(n log n), not the O(n²) of rescanning after each merge:
//! a 100 000-byte word without a break is an input a server must survive.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

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
        special: impl Fn(u32) -> bool,
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
            // Text never merges into a special token (it could forge a chat turn).
            if special(merged) {
                continue;
            }
            // The first (lowest-rank) occurrence of a pair wins, as in every implementation.
            table.entry((l, r)).or_insert((rank, merged));
        }
        Ok(Bpe {
            merges: table,
            byte_tokens,
        })
    }

    /// Appends the tokens of one pre-token `word` to `out`.
    pub(crate) fn encode_word(
        &self,
        word: &[u8],
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        let mut symbols = word
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                let token = self.byte_tokens[usize::from(b)]
                    .ok_or(TokenizerError::UnencodableByte { byte: b })?;
                Ok(Symbol {
                    token,
                    next: i + 1,
                    prev: i.checked_sub(1),
                })
            })
            .collect::<Result<Vec<Symbol>, TokenizerError>>()?;
        let n = symbols.len();
        // Min-heap of (rank, left symbol, left token, right token): the lowest rank
        // first, the leftmost among equal ranks.
        let mut queue = BinaryHeap::with_capacity(n);
        let candidate = |symbols: &[Symbol], left: usize| {
            let right = symbols.get(left)?.next;
            let (l, r) = (symbols[left].token, symbols.get(right)?.token);
            let &(rank, _) = self.merges.get(&(l, r))?;
            Some(Reverse((rank, left, l, r)))
        };
        queue.extend((0..n).filter_map(|i| candidate(&symbols, i)));
        while let Some(Reverse((_, left, l, r))) = queue.pop() {
            let right = symbols[left].next;
            // Stale: one side has merged since this pair was queued.
            if symbols[left].token != l || symbols.get(right).is_none_or(|s| s.token != r) {
                continue;
            }
            let Some(&(_, merged)) = self.merges.get(&(l, r)) else {
                continue;
            };
            let after = symbols[right].next;
            symbols[left].token = merged;
            symbols[left].next = after;
            symbols[right].token = DEAD;
            if let Some(s) = symbols.get_mut(after) {
                s.prev = Some(left);
            }
            if let Some(p) = symbols[left].prev {
                queue.extend(candidate(&symbols, p));
            }
            queue.extend(candidate(&symbols, left));
        }
        let mut i = if n == 0 { n } else { 0 };
        while let Some(s) = symbols.get(i) {
            out.push(s.token);
            i = s.next;
        }
        Ok(())
    }
}

/// The token of a symbol merged into its left neighbour (no vocabulary has 2³² tokens).
const DEAD: u32 = u32::MAX;

/// One symbol of a word being merged; `next == len` ends the list.
struct Symbol {
    token: u32,
    next: usize,
    prev: Option<usize>,
}
