//! Streaming detokenization: text increments as tokens arrive.
//!
//! Why: a byte-level BPE token can end in the middle of a UTF-8 character (emoji, CJK), so
//! printing each token's text separately would print garbage; the decoder holds back an
//! incomplete character until the token that completes it arrives.

use super::{Tokenizer, TokenizerError};

/// Turns a sequence of token ids into text increments whose concatenation equals
/// [`Tokenizer::decode`] of the whole sequence.
///
/// It does not borrow the tokenizer, so an engine can own both side by side.
#[derive(Debug, Default)]
pub struct TokenDecoder {
    pending: Vec<u8>,
    started: bool,
}

impl TokenDecoder {
    /// A decoder at the start of a sequence: as in [`Tokenizer::decode`], the first
    /// token's SentencePiece dummy-prefix space is dropped.
    pub fn new() -> TokenDecoder {
        TokenDecoder::default()
    }

    /// A decoder for tokens that continue a sequence already under way (an answer
    /// after its prompt): the first token keeps its leading space, so "France is" +
    /// "▁Paris" prints "France is Paris", not "France isParis".
    pub fn continuing() -> TokenDecoder {
        TokenDecoder {
            pending: Vec::new(),
            started: true,
        }
    }

    /// Adds token `id`; returns the text that is now complete (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String, TokenizerError> {
        tokenizer.piece_bytes(id, !self.started, &mut self.pending)?;
        self.started = true;
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return Ok(out);
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // The prefix is valid UTF-8 by construction.
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // An incomplete character at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return Ok(out);
                        }
                        // Bytes that can never be UTF-8: replace them, as the full decode does.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Ends the sequence; returns held-back bytes (an incomplete character) as U+FFFD.
    pub fn finish(self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }
}
