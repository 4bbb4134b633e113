//! Tokenizers built from a GGUF file's `tokenizer.ggml.*` metadata.
//!
//! Why from the model file: the vocabulary, merges and special tokens must be exactly the
//! ones the weights were trained with, and GGUF carries them; no separate
//! `tokenizer.json` is needed. A Hugging Face `tokenizer.json` is translated into the same
//! metadata ([`tokenizer_json_metadata`], [`Tokenizer::from_tokenizer_json`]).
//!
//! Two models are implemented:
//! - `gpt2`: byte-level BPE with merges (SmolLM2, StarCoder, GPT-2, Llama 3, Falcon …),
//!   pre-tokenized by `tokenizer.ggml.pre` (`smollm`/`starcoder`/`refact`: each digit
//!   alone, then GPT-2's regex; `gpt-2`: GPT-2's regex; `llama-bpe`: Llama 3's regex;
//!   `falcon`: punctuation runs, GPT-2's regex, digit groups of three).
//! - `llama`: SentencePiece BPE with scores and `<0xXX>` byte fallback, as llama.cpp does.
//!
//! Special tokens (token type CONTROL or USER_DEFINED, such as `<|im_start|>`) are never
//! produced from text by [`Tokenizer::encode`]: text that spells one is encoded as
//! ordinary text, so user input cannot forge a chat turn. Templates are built from token
//! ids ([`Tokenizer::chat_tokens`]); [`Tokenizer::encode_with_special_tokens`] is the
//! explicit opt-in for trusted text that writes special tokens literally.

// bpe and spm index their own symbol lists (indices made by the code, bounded by the
// list it built), never a count or offset read from input, so `indexing_slicing` stays
// allowed there; the parsers of file bytes (`gguf::parse`, `gguf::file`) deny it.
mod bpe;
mod byte_level;
mod error;
mod hf_json;
mod pretokenize;
mod spm;
mod stream;
mod write;

use std::collections::HashMap;

use crate::gguf::{GgufFile, OptionalKey};

use bpe::Bpe;
use byte_level::char_to_byte;
pub use error::TokenizerError;
pub use hf_json::tokenizer_json_metadata;
use pretokenize::{PreKind, PreTokenizer};
use spm::{SPACE_MARK, Spm};
pub use stream::TokenDecoder;
pub use write::{SpmPiece, add_spm_vocabulary, spm_base_vocabulary};

/// GGUF token type of an ordinary token.
pub const TOKEN_TYPE_NORMAL: i32 = 1;
/// GGUF token type of the unknown token.
pub const TOKEN_TYPE_UNKNOWN: i32 = 2;
/// GGUF token type of control tokens (`<|im_start|>`, `<s>`, …).
pub const TOKEN_TYPE_CONTROL: i32 = 3;
/// GGUF token type of tokens added by the user (treated as special, like llama.cpp).
pub const TOKEN_TYPE_USER_DEFINED: i32 = 4;
/// GGUF token type of SentencePiece byte tokens `<0xXX>`.
pub const TOKEN_TYPE_BYTE: i32 = 6;

/// The ChatML turn opener; a vocabulary with it gets ChatML prompts.
const IM_START: &str = "<|im_start|>";
/// The ChatML turn closer.
const IM_END: &str = "<|im_end|>";

/// Which algorithm splits text into tokens.
#[derive(Debug)]
enum Model {
    Gpt2 { bpe: Bpe, pre: PreTokenizer },
    Spm { spm: Spm, add_space_prefix: bool },
}

/// A piece of input text: plain text, or a special token written literally.
enum Fragment<'t> {
    Text(&'t str),
    Special(u32),
}

/// A tokenizer for one model: encode text to ids, decode ids to text.
#[derive(Debug)]
pub struct Tokenizer {
    model: Model,
    tokens: Vec<String>,
    token_types: Vec<i32>,
    token_ids: HashMap<String, u32>,
    /// Special tokens, longest text first (so `<|im_start|>` wins over any prefix of it).
    specials: Vec<(String, u32)>,
    /// The USER_DEFINED tokens that are whitespace runs, longest first: matched whole in
    /// any text (see [`Tokenizer::encode`]).
    whitespace: Vec<(String, u32)>,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    default_system: Option<String>,
}

impl Tokenizer {
    /// Builds the tokenizer described by `file`'s `tokenizer.ggml.*` keys.
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer, TokenizerError> {
        let name = file.name();
        let bad = |problem: String| TokenizerError::BadVocab {
            file: name.to_string(),
            problem,
        };
        let kind = file.get_str("tokenizer.ggml.model")?;
        let tokens: Vec<String> = file
            .get_str_array("tokenizer.ggml.tokens")?
            .into_iter()
            .map(str::to_string)
            .collect();
        let n = tokens.len();
        if u32::try_from(n).is_err() {
            return Err(bad(format!("{n} tokens do not fit u32 ids")));
        }
        let token_types = match file.get_i32_array("tokenizer.ggml.token_type").optional()? {
            Some(t) if t.len() == n => t,
            Some(t) => return Err(bad(format!("{} token types for {n} tokens", t.len()))),
            None => vec![TOKEN_TYPE_NORMAL; n],
        };
        let mut token_ids = HashMap::with_capacity(n);
        for (id, t) in tokens.iter().enumerate() {
            // Duplicated texts (rare) resolve to the first id, as in llama.cpp.
            token_ids.entry(t.clone()).or_insert(id as u32);
        }
        let special_id = |key: &str| -> Result<Option<u32>, TokenizerError> {
            match file.get_u32(key).optional()? {
                Some(id) if id as usize >= n => Err(bad(format!("{key} = {id} is not below {n}"))),
                id => Ok(id),
            }
        };
        let bos = special_id("tokenizer.ggml.bos_token_id")?;
        let eos = special_id("tokenizer.ggml.eos_token_id")?;
        let unk = special_id("tokenizer.ggml.unknown_token_id")?;

        let model = match kind {
            "gpt2" => {
                let pre_name = file
                    .get_str("tokenizer.ggml.pre")
                    .optional()?
                    .unwrap_or("gpt-2");
                let pre =
                    PreKind::from_name(pre_name).ok_or_else(|| TokenizerError::UnsupportedPre {
                        file: name.to_string(),
                        pre: pre_name.to_string(),
                        supported: PreKind::SUPPORTED,
                    })?;
                let merges = file.get_str_array("tokenizer.ggml.merges")?;
                let special = |id: u32| {
                    token_types
                        .get(id as usize)
                        .is_some_and(|&t| matches!(t, TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED))
                };
                Model::Gpt2 {
                    bpe: Bpe::new(name, &token_ids, &merges, special)?,
                    pre: PreTokenizer::new(pre),
                }
            }
            "llama" => {
                let scores = file.get_f32_array("tokenizer.ggml.scores")?;
                if scores.len() != n {
                    return Err(bad(format!("{} scores for {n} tokens", scores.len())));
                }
                let add_space_prefix = file
                    .get_bool("tokenizer.ggml.add_space_prefix")
                    .optional()?
                    .unwrap_or(true);
                let mergeable = token_types
                    .iter()
                    .map(|&t| t == TOKEN_TYPE_NORMAL)
                    .collect();
                Model::Spm {
                    spm: Spm::new(scores, mergeable, &token_ids, unk),
                    add_space_prefix,
                }
            }
            other => {
                return Err(TokenizerError::UnsupportedModel {
                    file: name.to_string(),
                    model: other.to_string(),
                });
            }
        };
        let add_bos = file
            .get_bool("tokenizer.ggml.add_bos_token")
            .optional()?
            .unwrap_or(matches!(model, Model::Spm { .. }));

        let mut specials: Vec<(String, u32)> = tokens
            .iter()
            .zip(&token_types)
            .enumerate()
            .filter(|(_, (t, ty))| {
                !t.is_empty() && matches!(**ty, TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED)
            })
            .map(|(id, (t, _))| (t.clone(), id as u32))
            .collect();
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        // Whitespace runs stored as USER_DEFINED tokens (Gemma's "\n", "\n\n", "  ", …)
        // are text, not markers: llama.cpp matches every USER_DEFINED token in any
        // text; we match these ones only, so that untrusted text still cannot spell a
        // marker such as `<start_of_image>`.
        let whitespace: Vec<(String, u32)> = specials
            .iter()
            .filter(|(t, id)| {
                token_types.get(*id as usize) == Some(&TOKEN_TYPE_USER_DEFINED)
                    && t.chars().all(char::is_whitespace)
            })
            .cloned()
            .collect();

        let default_system = file
            .get_str("tokenizer.chat_template")
            .optional()?
            .and_then(default_system_prompt);

        Ok(Tokenizer {
            model,
            tokens,
            token_types,
            token_ids,
            specials,
            whitespace,
            bos,
            eos,
            add_bos,
            default_system,
        })
    }

    /// Number of tokens in the vocabulary (ids are `0..vocab_size()`).
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// Beginning-of-sequence token, if the model defines one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// End-of-sequence token (generation stops on it), if the model defines one.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// Whether the model expects BOS before a prompt (`tokenizer.ggml.add_bos_token`;
    /// default: yes for SentencePiece vocabularies, no for GPT-2 ones).
    pub fn adds_bos(&self) -> bool {
        self.add_bos
    }

    /// The id of the token whose text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.token_ids.get(text).copied()
    }

    /// Whether `id` is a special token (CONTROL or USER_DEFINED: `<|im_start|>`, `<s>`),
    /// which [`Tokenizer::encode`] never produces from text.
    pub fn is_special(&self, id: u32) -> bool {
        self.token_types
            .get(id as usize)
            .is_some_and(|&t| matches!(t, TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED))
    }

    /// The stored text of token `id` (byte-level or `▁`-escaped, as in the vocabulary).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Encodes `text` as text, with BOS first when `add_bos` is set and the model has
    /// one. Text that spells a special token (`<|im_start|>`, `<s>`) is encoded like any
    /// other text, never as the special token: this is the call for untrusted input.
    /// Whitespace runs the vocabulary holds as USER_DEFINED tokens (Gemma's newlines
    /// and indents) are matched whole, as llama.cpp does.
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>, TokenizerError> {
        let mut out = self.start(text, add_bos);
        self.encode_fragments(self.fragments(text, &self.whitespace), &mut out)?;
        Ok(out)
    }

    /// Encodes trusted `text` in which special tokens are written literally: each
    /// occurrence of a special token's text (longest match) becomes that one token.
    ///
    /// Why opt-in: a prompt template written as text needs this, but applied to user
    /// input it lets the user forge system or assistant turns. Build templates from ids
    /// ([`Tokenizer::chat_tokens`]) where you can.
    pub fn encode_with_special_tokens(
        &self,
        text: &str,
        add_bos: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut out = self.start(text, add_bos);
        self.encode_fragments(self.fragments(text, &self.specials), &mut out)?;
        Ok(out)
    }

    /// Appends the ids of `fragments`: a matched token as itself, text through the
    /// model.
    fn encode_fragments(
        &self,
        fragments: Vec<Fragment<'_>>,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        // SentencePiece's dummy prefix goes before text that starts the input or follows
        // a matched token (llama.cpp's rule).
        let mut after_special = true;
        for fragment in fragments {
            match fragment {
                Fragment::Special(id) => {
                    out.push(id);
                    after_special = true;
                }
                Fragment::Text(t) => {
                    self.encode_text(t, after_special, out)?;
                    after_special = false;
                }
            }
        }
        Ok(())
    }

    /// The output buffer of an encode: BOS when asked for and defined.
    fn start(&self, text: &str, add_bos: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_bos && let Some(bos) = self.bos {
            out.push(bos);
        }
        out
    }

    fn encode_text(
        &self,
        text: &str,
        after_special: bool,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        match &self.model {
            Model::Gpt2 { bpe, pre } => {
                let mut result = Ok(());
                pre.split(text, &mut |word| {
                    if result.is_ok() {
                        result = bpe.encode_word(word, out);
                    }
                });
                result
            }
            Model::Spm {
                spm,
                add_space_prefix,
            } => {
                let mut escaped = String::with_capacity(text.len() + 3);
                if *add_space_prefix && after_special {
                    escaped.push(SPACE_MARK);
                }
                escaped.extend(text.chars().map(|c| if c == ' ' { SPACE_MARK } else { c }));
                spm.encode(&escaped, &self.token_ids, out)
            }
        }
    }

    /// Splits `text` at the literal tokens of `pieces` (longest first: the longest match
    /// at each position).
    fn fragments<'t>(&self, text: &'t str, pieces: &[(String, u32)]) -> Vec<Fragment<'t>> {
        let mut out = Vec::new();
        let (mut start, mut pos) = (0, 0);
        while pos < text.len() {
            let rest = &text[pos..];
            if let Some((s, id)) = pieces.iter().find(|(s, _)| rest.starts_with(s.as_str())) {
                if start < pos {
                    out.push(Fragment::Text(&text[start..pos]));
                }
                out.push(Fragment::Special(*id));
                pos += s.len();
                start = pos;
            } else {
                pos += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
        if start < text.len() {
            out.push(Fragment::Text(&text[start..]));
        }
        out
    }

    /// Appends the raw bytes of token `id` to `out`. `first` marks the first token of a
    /// decode, whose SentencePiece dummy-prefix space is dropped.
    fn piece_bytes(&self, id: u32, first: bool, out: &mut Vec<u8>) -> Result<(), TokenizerError> {
        let unknown = || TokenizerError::UnknownId {
            id,
            vocab_size: self.tokens.len(),
        };
        let text = self.tokens.get(id as usize).ok_or_else(unknown)?;
        let ty = self
            .token_types
            .get(id as usize)
            .copied()
            .unwrap_or(TOKEN_TYPE_NORMAL);
        if matches!(
            ty,
            TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED | TOKEN_TYPE_UNKNOWN
        ) {
            out.extend_from_slice(text.as_bytes());
            return Ok(());
        }
        match &self.model {
            Model::Gpt2 { .. } => {
                for c in text.chars() {
                    match char_to_byte(c) {
                        Some(b) => out.push(b),
                        // Not a byte-level character: pass it through (Hugging Face does).
                        None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
            }
            Model::Spm {
                add_space_prefix, ..
            } => {
                if ty == TOKEN_TYPE_BYTE
                    && let Some(b) = parse_byte_token(text)
                {
                    out.push(b);
                    return Ok(());
                }
                let mut s = text.replace(SPACE_MARK, " ");
                if first && *add_space_prefix && s.starts_with(' ') {
                    s.remove(0);
                }
                out.extend_from_slice(s.as_bytes());
            }
        }
        Ok(())
    }

    /// The bytes `ids` stand for (special tokens included as their text).
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>, TokenizerError> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for (i, &id) in ids.iter().enumerate() {
            self.piece_bytes(id, i == 0, &mut out)?;
        }
        Ok(out)
    }

    /// Decodes `ids` to text; nothing is skipped (special tokens appear as their text).
    /// Byte sequences that are not UTF-8 (a sequence cut inside a character) become
    /// U+FFFD, as [`String::from_utf8_lossy`] does.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let bytes = self.decode_bytes(ids)?;
        Ok(String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    /// The tokens of a ChatML prompt for one user turn, ready for generation, when the
    /// vocabulary has `<|im_start|>`:
    /// `<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n`,
    /// with BOS first if the model [adds one](Tokenizer::adds_bos).
    ///
    /// The turn markers are token ids; `system` and `user` are encoded as text
    /// ([`Tokenizer::encode`]), so a `<|im_start|>` typed by the user stays text and
    /// cannot open a turn. Without `system`, the default system prompt of the model's
    /// chat template is used if it has one (SmolLM2: "You are a helpful AI assistant
    /// named SmolLM, trained by Hugging Face"), as the template does; otherwise the
    /// system turn is omitted. Models without ChatML tokens get `user` encoded alone.
    pub fn chat_tokens(
        &self,
        system: Option<&str>,
        user: &str,
    ) -> Result<Vec<u32>, TokenizerError> {
        if self.token_id(IM_START).is_none() {
            return self.encode(user, self.add_bos);
        }
        let user = ChatMessage::new(ChatRole::User, user);
        match system {
            Some(sys) => self.chat_conversation(&[ChatMessage::new(ChatRole::System, sys), user]),
            None => self.chat_conversation(&[user]),
        }
    }

    /// The tokens of a ChatML conversation (the turns of `messages` in order, then the
    /// assistant's opener), as [`Tokenizer::chat_tokens`] builds one turn: markers are ids,
    /// contents are text, and the role is a [`ChatRole`], never text from the caller. When
    /// the first message is not a system message, the template's default system prompt
    /// (if any) goes first. Models without ChatML tokens get the contents joined by
    /// newlines, encoded as text.
    pub fn chat_conversation(
        &self,
        messages: &[ChatMessage<'_>],
    ) -> Result<Vec<u32>, TokenizerError> {
        let (Some(start), Some(end)) = (self.token_id(IM_START), self.token_id(IM_END)) else {
            let text: Vec<&str> = messages.iter().map(|m| m.content).collect();
            return self.encode(&text.join("\n"), self.add_bos);
        };
        let mut out = self.start("", self.add_bos);
        let turn = |role: ChatRole, content: &str, out: &mut Vec<u32>| {
            out.push(start);
            self.encode_text(&format!("{}\n{content}", role.name()), true, out)?;
            out.push(end);
            self.encode_text("\n", true, out)
        };
        let has_system = messages.first().is_some_and(|m| m.role == ChatRole::System);
        if !has_system && let Some(sys) = self.default_system.as_deref() {
            turn(ChatRole::System, sys, &mut out)?;
        }
        for m in messages {
            turn(m.role, m.content, &mut out)?;
        }
        out.push(start);
        self.encode_text("assistant\n", true, &mut out)?;
        Ok(out)
    }
}

/// Who speaks a chat turn. An enum, not a string, so a role cannot carry text into the
/// template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatRole {
    /// Instructions for the assistant.
    System,
    /// The user.
    User,
    /// The model's earlier answers.
    Assistant,
}

impl ChatRole {
    /// The role's name in ChatML (`system`, `user`, `assistant`).
    pub const fn name(self) -> &'static str {
        match self {
            ChatRole::System => "system",
            ChatRole::User => "user",
            ChatRole::Assistant => "assistant",
        }
    }

    /// Parses [`ChatRole::name`] back (what OpenAI-style requests send).
    pub fn from_name(name: &str) -> Option<ChatRole> {
        [ChatRole::System, ChatRole::User, ChatRole::Assistant]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// One turn of a conversation for [`Tokenizer::chat_conversation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChatMessage<'a> {
    /// Who speaks.
    pub role: ChatRole,
    /// What they say (encoded as text).
    pub content: &'a str,
}

impl<'a> ChatMessage<'a> {
    /// A turn of `role` saying `content`.
    pub fn new(role: ChatRole, content: &'a str) -> ChatMessage<'a> {
        ChatMessage { role, content }
    }
}

/// The byte of a SentencePiece `<0xXX>` token.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// The literal default system message of a ChatML Jinja template, if it has one: the text
/// between `<|im_start|>system\n` and `<|im_end|>` inside a string literal.
fn default_system_prompt(template: &str) -> Option<String> {
    let opener = format!("{IM_START}system\n");
    let start = template.find(&opener)? + opener.len();
    let len = template[start..].find(IM_END)?;
    let text = &template[start..start + len];
    // A template expression (e.g. `' + message['content'] + '`) is not a literal default.
    (!text.contains(['\'', '"', '{', '}'])).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_tokens_and_default_system_prompt_parse() {
        assert_eq!(parse_byte_token("<0x0A>"), Some(10));
        assert_eq!(parse_byte_token("<0xA>"), None);
        assert_eq!(parse_byte_token("a"), None);
        let t = "{{ '<|im_start|>system\nBe brief.<|im_end|>\n' }}{{'<|im_start|>' + message['role'] }}";
        assert_eq!(default_system_prompt(t).as_deref(), Some("Be brief."));
        let t = "{{'<|im_start|>system\n' + message['content'] + '<|im_end|>'}}";
        assert_eq!(default_system_prompt(t), None);
    }
}
