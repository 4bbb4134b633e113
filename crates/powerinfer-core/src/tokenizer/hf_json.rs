//! Hugging Face `tokenizer.json` → GGUF `tokenizer.ggml.*` metadata.
//!
//! Why metadata, not a second tokenizer: a model converted from a Hugging Face checkpoint
//! gets its tokenizer as GGUF keys, so the converted file carries it like any llama.cpp
//! GGUF, and [`Tokenizer::from_gguf`] stays the one place that builds tokenizers.
//!
//! What is supported and how it maps: [`tokenizer_json_metadata`].

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value as Json};

use super::error::TokenizerError;
use super::spm::SPACE_MARK;
use super::{
    TOKEN_TYPE_BYTE, TOKEN_TYPE_CONTROL, TOKEN_TYPE_NORMAL, TOKEN_TYPE_UNKNOWN,
    TOKEN_TYPE_USER_DEFINED, Tokenizer, parse_byte_token,
};
use crate::gguf::{GgufFile, GgufWriter, Value, ValueType};

/// GPT-2's pre-tokenizer regex as `tokenizers` writes it in a `Split` pre-tokenizer.
const GPT2_REGEX: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Llama 3's pre-tokenizer regex, as its `tokenizer.json` writes it in a `Split`.
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The regex of Falcon's last pre-tokenizer step (numbers in groups of three digits).
const FALCON_DIGITS_REGEX: &str = "[0-9][0-9][0-9]";

/// Special tokens that end a sequence, in the order we look for them when the
/// post-processor names none.
const EOS_NAMES: [&str; 5] = [
    "</s>",
    "<|endoftext|>",
    "<|im_end|>",
    "<|end_of_text|>",
    "<eos>",
];

/// Special tokens that start a sequence, when the post-processor names none.
const BOS_NAMES: [&str; 4] = ["<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"];

/// The most merges whose ranks are exact as `f32` scores (2²⁴).
const MAX_SPM_MERGES: usize = 1 << 24;

/// GGUF `tokenizer.ggml.*` metadata equivalent to a Hugging Face `tokenizer.json`.
///
/// Why: a converter from a Hugging Face checkpoint directory puts these keys into the
/// GGUF it builds, so the converted model carries its tokenizer; [`Tokenizer::from_gguf`]
/// reads them back. `bytes` is the file's content, `file` its path for error messages.
///
/// Two shapes of `model.type = "BPE"` are translated (anything else is a typed
/// [`TokenizerError::HfUnsupported`]):
///
/// - Byte-level BPE: model `gpt2`, the merges as `"left right"` strings (both the string
///   and the pair form of `model.merges` are read), and `tokenizer.ggml.pre` from the
///   pre-tokenizer: `gpt-2` for a `ByteLevel` with GPT-2's regex (GPT-2, OPT), `smollm`
///   for the same after `Digits(individual_digits)` (SmolLM2, StarCoder), `llama-bpe` for
///   `Split(Llama 3's regex)` then `ByteLevel(use_regex=false)` (Llama 3, ProSparse and
///   TurboSparse on it), `falcon` for `Punctuation(Contiguous)`, `ByteLevel`,
///   `Digits(individual_digits=false)`, `Split("[0-9][0-9][0-9]")` (Falcon, ReLU-Falcon).
/// - SentencePiece-style BPE (Llama 2, Mistral, ReLU-LLaMA, Bamboo): `byte_fallback` with
///   all 256 `<0xXX>` tokens and a `▁` normalizer (`Prepend` + `Replace`) or `Metaspace`
///   pre-tokenizer becomes model `llama` with scores. A token first made by merge number
///   `r` scores `-r`: the score-ordered merge loop then merges the pair of lowest rank
///   first, as Hugging Face does, provided every way of building a token from two pieces
///   is a listed merge and each token's merges are consecutive. Files converted from
///   SentencePiece (all of the above) are built that way; other files are rejected with
///   [`TokenizerError::HfMergeOrder`] rather than encoded differently.
///
/// Added tokens marked `special` become CONTROL, other added tokens USER_DEFINED (as
/// llama.cpp's converter does); `<0xXX>` become BYTE and `model.unk_token` UNKNOWN. BOS
/// comes from a `TemplateProcessing` post-processor (a special token before `$A` sets
/// `add_bos_token`), EOS from a special token after `$A` or else from the first special
/// token named `</s>`, `<|endoftext|>`, `<|im_end|>`, `<|end_of_text|>`, `<eos>`. Only
/// `tokenizer.json` is read: `tokenizer_config.json` may name other BOS/EOS tokens.
///
/// Differences that remain: non-special added tokens are matched in text by Hugging Face
/// but are USER_DEFINED (special) here, so [`Tokenizer::encode`] encodes them as text
/// unless they are whitespace; [`Tokenizer::encode_with_special_tokens`] matches CONTROL
/// and USER_DEFINED tokens but not the UNKNOWN `<unk>`; a post-processor's EOS after `$A` is recorded as
/// `tokenizer.ggml.add_eos_token` but [`Tokenizer::encode`] does not append it.
pub fn tokenizer_json_metadata(
    bytes: &[u8],
    file: &str,
) -> Result<Vec<(String, Value)>, TokenizerError> {
    let root: Json = serde_json::from_slice(bytes).map_err(|source| TokenizerError::HfJson {
        file: file.to_string(),
        source,
    })?;
    let cx = Cx { file };
    let root = cx.object(&root, "(top level)")?;
    let model = cx.object(cx.field(root, "model", "model")?, "model")?;
    let kind = cx.str(cx.field(model, "type", "model.type")?, "model.type")?;
    if kind != "BPE" {
        return Err(cx.unsupported("model type", kind.to_string(), "BPE"));
    }
    cx.check_bpe_options(model)?;
    let vocab = Vocab::read(&cx, root, model)?;
    if vocab.tokens.is_empty() {
        return Err(cx.field_error("model.vocab", "no tokens"));
    }
    let byte_fallback = cx.opt_bool(model, "byte_fallback", "model.byte_fallback")?;
    let pre = present(root.get("pre_tokenizer"));
    let normalizer = present(root.get("normalizer"));
    let byte_level = pre.is_some_and(has_byte_level);
    let post = Post::read(&cx, present(root.get("post_processor")), &vocab)?;

    let mut meta: Vec<(String, Value)> = Vec::new();
    let mut add = |k: &str, v: Value| meta.push((format!("tokenizer.ggml.{k}"), v));
    if byte_level {
        if byte_fallback == Some(true) {
            return Err(cx.unsupported(
                "model option",
                "byte_fallback with a ByteLevel pre-tokenizer".into(),
                "byte_fallback false for byte-level BPE",
            ));
        }
        if let Some(n) = normalizer {
            return Err(cx.unsupported("normalizer", short(n), "none for byte-level BPE"));
        }
        let pre_name = byte_level_pre(&cx, pre)?;
        let merges = vocab.merges(&cx, model)?;
        let merge_strings = merges
            .iter()
            .enumerate()
            .map(|(index, m)| {
                let (l, r) = (vocab.text(m.left), vocab.text(m.right));
                if l.contains(' ') {
                    return Err(TokenizerError::BadMerge {
                        file: file.to_string(),
                        index,
                        merge: format!("{l} {r}"),
                        problem: "the left part has a space, which GGUF's \"left right\" form \
                                  cannot express"
                            .into(),
                    });
                }
                Ok(format!("{l} {r}"))
            })
            .collect::<Result<Vec<String>, TokenizerError>>()?;
        let types = vocab.token_types(false);
        add("model", "gpt2".into());
        add("pre", pre_name.into());
        add("tokens", Value::string_array(vocab.tokens.iter().cloned()));
        add("token_type", Value::array(ValueType::I32, types));
        add("merges", Value::string_array(merge_strings));
    } else if byte_fallback == Some(true) {
        if let Some(b) = (0..=255u8).find(|b| !vocab.ids.contains_key(&format!("<0x{b:02X}>"))) {
            return Err(cx.unsupported(
                "model option",
                format!("byte_fallback without the token <0x{b:02X}>"),
                "byte_fallback with all 256 <0xXX> tokens",
            ));
        }
        let (add_space_prefix, split) = spm_space(&cx, normalizer, pre)?;
        let types = vocab.token_types(true);
        let merges = vocab.merges(&cx, model)?;
        let scores = spm_scores(&cx, &vocab, &types, &merges)?;
        if split {
            check_metaspace_split(&cx, &vocab, &types)?;
        }
        add("model", "llama".into());
        add("tokens", Value::string_array(vocab.tokens.iter().cloned()));
        add("token_type", Value::array(ValueType::I32, types));
        add("scores", Value::array(ValueType::F32, scores));
        add("add_space_prefix", add_space_prefix.into());
    } else {
        return Err(cx.unsupported(
            "pre-tokenizer",
            pre.map_or_else(|| "none".to_string(), short),
            "ByteLevel (byte-level BPE), or byte_fallback with a ▁ normalizer or Metaspace \
             (SentencePiece-style BPE)",
        ));
    }
    let bos = post.bos.or_else(|| vocab.named_special(&BOS_NAMES));
    let eos = post.eos.or_else(|| vocab.named_special(&EOS_NAMES));
    for (key, id) in [("bos", bos), ("eos", eos), ("unknown", vocab.unk)] {
        if let Some(id) = id {
            add(&format!("{key}_token_id"), id.into());
        }
    }
    add("add_bos_token", post.add_bos.into());
    if post.add_eos {
        add("add_eos_token", true.into());
    }
    Ok(meta)
}

impl Tokenizer {
    /// Builds the tokenizer of a Hugging Face `tokenizer.json` (`bytes`, read from `file`).
    ///
    /// Why: to use a Hugging Face checkpoint's tokenizer without converting the model;
    /// this is [`tokenizer_json_metadata`] read back by [`Tokenizer::from_gguf`], so it
    /// behaves exactly as the converted GGUF will.
    pub fn from_tokenizer_json(bytes: &[u8], file: &str) -> Result<Tokenizer, TokenizerError> {
        let mut w = GgufWriter::new();
        for (key, value) in tokenizer_json_metadata(bytes, file)? {
            w.add(&key, value);
        }
        let gguf = GgufFile::from_bytes(&w.to_bytes()?)?.with_name(file);
        Tokenizer::from_gguf(&gguf)
    }
}

/// `Some` for a value that is present and not `null`.
fn present(v: Option<&Json>) -> Option<&Json> {
    v.filter(|v| !v.is_null())
}

/// The `type` of a component object.
fn type_of(v: &Json) -> Option<&str> {
    v.get("type").and_then(Json::as_str)
}

/// A component's JSON for an error message, at most about 200 characters.
fn short(v: &Json) -> String {
    let s = v.to_string();
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// The error context: the file name.
struct Cx<'a> {
    file: &'a str,
}

impl Cx<'_> {
    fn field_error(&self, field: &str, problem: impl Into<String>) -> TokenizerError {
        TokenizerError::HfField {
            file: self.file.to_string(),
            field: field.to_string(),
            problem: problem.into(),
        }
    }

    fn unsupported(
        &self,
        component: &'static str,
        found: String,
        supported: &'static str,
    ) -> TokenizerError {
        TokenizerError::HfUnsupported {
            file: self.file.to_string(),
            component,
            found,
            supported,
        }
    }

    fn field<'j>(
        &self,
        obj: &'j Map<String, Json>,
        key: &str,
        path: &str,
    ) -> Result<&'j Json, TokenizerError> {
        obj.get(key)
            .ok_or_else(|| self.field_error(path, "missing"))
    }

    fn object<'j>(&self, v: &'j Json, path: &str) -> Result<&'j Map<String, Json>, TokenizerError> {
        v.as_object()
            .ok_or_else(|| self.field_error(path, format!("not an object: {}", short(v))))
    }

    fn str<'j>(&self, v: &'j Json, path: &str) -> Result<&'j str, TokenizerError> {
        v.as_str()
            .ok_or_else(|| self.field_error(path, format!("not a string: {}", short(v))))
    }

    fn opt_bool(
        &self,
        obj: &Map<String, Json>,
        key: &str,
        path: &str,
    ) -> Result<Option<bool>, TokenizerError> {
        match present(obj.get(key)) {
            None => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.field_error(path, format!("not a bool: {}", short(v)))),
        }
    }

    /// Rejects BPE options that change how words are merged and that we do not run.
    fn check_bpe_options(&self, model: &Map<String, Json>) -> Result<(), TokenizerError> {
        let set = |key: &str| present(model.get(key));
        if let Some(d) = set("dropout")
            && d.as_f64() != Some(0.0)
        {
            return Err(self.unsupported("model option", format!("dropout {d}"), "no dropout"));
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let Some(v) = set(key)
                && v.as_str() != Some("")
            {
                return Err(self.unsupported(
                    "model option",
                    format!("{key} {v}"),
                    "no subword prefix or suffix",
                ));
            }
        }
        if self.opt_bool(model, "ignore_merges", "model.ignore_merges")? == Some(true) {
            return Err(self.unsupported(
                "model option",
                "ignore_merges true".into(),
                "ignore_merges false",
            ));
        }
        Ok(())
    }
}

/// One merge: the ids of its parts and of the token it makes.
struct Merge {
    left: u32,
    right: u32,
    merged: u32,
}

/// The tokens of a file laid out by id, with what `added_tokens` says about them.
struct Vocab {
    /// Token `i`'s text.
    tokens: Vec<String>,
    /// Text → id, over `model.vocab` and `added_tokens`.
    ids: HashMap<String, u32>,
    /// `Some(special)` for the ids listed in `added_tokens`.
    added: Vec<Option<bool>>,
    /// The id of `model.unk_token`.
    unk: Option<u32>,
}

impl Vocab {
    fn read(
        cx: &Cx<'_>,
        root: &Map<String, Json>,
        model: &Map<String, Json>,
    ) -> Result<Vocab, TokenizerError> {
        let vocab = cx.object(cx.field(model, "vocab", "model.vocab")?, "model.vocab")?;
        let added: &[Json] = match present(root.get("added_tokens")) {
            None => &[],
            Some(Json::Array(a)) => a,
            Some(v) => {
                return Err(cx.field_error("added_tokens", format!("not an array: {}", short(v))));
            }
        };
        // With no holes, every id is below the number of entries: a larger one is
        // rejected before anything is allocated for it.
        let limit = vocab.len() + added.len();
        let id_of = |token: &str, v: &Json| -> Result<u32, TokenizerError> {
            v.as_u64()
                .filter(|&id| id < limit as u64)
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| TokenizerError::HfIdOutOfRange {
                    file: cx.file.to_string(),
                    token: token.to_string(),
                    id: v.to_string(),
                    limit,
                })
        };
        let mut slots: Vec<Option<String>> = vec![None; limit];
        let mut flags: Vec<Option<bool>> = vec![None; limit];
        let mut ids: HashMap<String, u32> = HashMap::with_capacity(limit);
        let mut place =
            |slots: &mut Vec<Option<String>>, token: &str, id: u32| -> Result<(), TokenizerError> {
                let slot = slots
                    .get_mut(id as usize)
                    .ok_or_else(|| cx.field_error("model.vocab", "id beyond the limit"))?;
                match slot {
                    Some(t) if t == token => return Ok(()),
                    Some(t) => {
                        return Err(TokenizerError::HfDuplicateId {
                            file: cx.file.to_string(),
                            id,
                            first: t.clone(),
                            second: token.to_string(),
                        });
                    }
                    None => *slot = Some(token.to_string()),
                }
                if let Some(&first) = ids.get(token) {
                    return Err(TokenizerError::HfDuplicateToken {
                        file: cx.file.to_string(),
                        token: token.to_string(),
                        first,
                        second: id,
                    });
                }
                ids.insert(token.to_string(), id);
                Ok(())
            };
        for (token, v) in vocab {
            place(&mut slots, token, id_of(token, v)?)?;
        }
        for (i, a) in added.iter().enumerate() {
            let path = format!("added_tokens[{i}]");
            let a = cx.object(a, &path)?;
            let content = cx.str(
                cx.field(a, "content", &format!("{path}.content"))?,
                &format!("{path}.content"),
            )?;
            let id = id_of(content, cx.field(a, "id", &format!("{path}.id"))?)?;
            let special = cx
                .opt_bool(a, "special", &format!("{path}.special"))?
                .unwrap_or(false);
            place(&mut slots, content, id)?;
            if let Some(f) = flags.get_mut(id as usize) {
                *f = Some(special);
            }
        }
        let n = slots.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
        slots.truncate(n);
        flags.truncate(n);
        let tokens = slots
            .into_iter()
            .enumerate()
            .map(|(id, t)| {
                t.ok_or(TokenizerError::HfMissingId {
                    file: cx.file.to_string(),
                    id: id as u32,
                    vocab_size: n,
                })
            })
            .collect::<Result<Vec<String>, TokenizerError>>()?;
        let unk = match present(model.get("unk_token")) {
            None => None,
            Some(v) => {
                let t = cx.str(v, "model.unk_token")?;
                Some(*ids.get(t).ok_or_else(|| {
                    cx.field_error("model.unk_token", format!("{t:?} is not a token"))
                })?)
            }
        };
        Ok(Vocab {
            tokens,
            ids,
            added: flags,
            unk,
        })
    }

    /// Token `id`'s text (ids come from this vocabulary).
    fn text(&self, id: u32) -> &str {
        self.tokens.get(id as usize).map_or("", String::as_str)
    }

    /// The first of `names` that is a special added token.
    fn named_special(&self, names: &[&str]) -> Option<u32> {
        names.iter().find_map(|name| {
            let id = *self.ids.get(*name)?;
            (self.added.get(id as usize) == Some(&Some(true))).then_some(id)
        })
    }

    /// GGUF token types; `spm` adds BYTE for `<0xXX>`.
    fn token_types(&self, spm: bool) -> Vec<i32> {
        (0..self.tokens.len())
            .map(|id| {
                if self.unk == Some(id as u32) {
                    TOKEN_TYPE_UNKNOWN
                } else if spm && parse_byte_token(&self.tokens[id]).is_some() {
                    TOKEN_TYPE_BYTE
                } else {
                    match self.added.get(id) {
                        Some(Some(true)) => TOKEN_TYPE_CONTROL,
                        Some(Some(false)) => TOKEN_TYPE_USER_DEFINED,
                        _ => TOKEN_TYPE_NORMAL,
                    }
                }
            })
            .collect()
    }

    /// `model.merges` (`"left right"` strings or `[left, right]` pairs) as ids, each
    /// checked against the vocabulary.
    fn merges(&self, cx: &Cx<'_>, model: &Map<String, Json>) -> Result<Vec<Merge>, TokenizerError> {
        let list: &[Json] = match present(model.get("merges")) {
            None => &[],
            Some(Json::Array(a)) => a,
            Some(v) => {
                return Err(cx.field_error("model.merges", format!("not an array: {}", short(v))));
            }
        };
        let mut seen = HashSet::with_capacity(list.len());
        let mut out = Vec::with_capacity(list.len());
        for (index, m) in list.iter().enumerate() {
            let bad = |problem: &str| TokenizerError::BadMerge {
                file: cx.file.to_string(),
                index,
                merge: short(m),
                problem: problem.to_string(),
            };
            let (l, r) = match m {
                // Hugging Face splits the string form at every space and wants two parts.
                Json::String(s) => match s.split(' ').collect::<Vec<_>>()[..] {
                    [l, r] => (l, r),
                    _ => return Err(bad("not two parts separated by one space")),
                },
                Json::Array(a) => match &a[..] {
                    [Json::String(l), Json::String(r)] => (l.as_str(), r.as_str()),
                    _ => return Err(bad("not a pair of strings")),
                },
                _ => return Err(bad("neither a string nor a pair")),
            };
            let id = |s: &str| self.ids.get(s).copied();
            let (Some(left), Some(right)) = (id(l), id(r)) else {
                return Err(bad("a part is not in the vocabulary"));
            };
            let merged = id(&format!("{l}{r}"))
                .ok_or_else(|| bad("the merged token is not in the vocabulary"))?;
            if !seen.insert((left, right)) {
                return Err(bad("the pair is listed twice"));
            }
            out.push(Merge {
                left,
                right,
                merged,
            });
        }
        Ok(out)
    }
}

/// What the post-processor adds around a sequence.
#[derive(Default)]
struct Post {
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    add_eos: bool,
}

impl Post {
    fn read(cx: &Cx<'_>, post: Option<&Json>, vocab: &Vocab) -> Result<Post, TokenizerError> {
        let mut out = Post::default();
        if let Some(p) = post {
            out.add(cx, p, vocab, 0)?;
        }
        Ok(out)
    }

    fn add(
        &mut self,
        cx: &Cx<'_>,
        p: &Json,
        vocab: &Vocab,
        depth: usize,
    ) -> Result<(), TokenizerError> {
        const SUPPORTED: &str = "ByteLevel, TemplateProcessing, RobertaProcessing, \
                                 BertProcessing, a Sequence of them";
        let unsupported = || cx.unsupported("post-processor", short(p), SUPPORTED);
        match type_of(p) {
            Some("ByteLevel") => {}
            Some("Sequence") if depth < 4 => {
                let list = p
                    .get("processors")
                    .and_then(Json::as_array)
                    .ok_or_else(unsupported)?;
                for q in list {
                    self.add(cx, q, vocab, depth + 1)?;
                }
            }
            Some("TemplateProcessing") => {
                let single = p
                    .get("single")
                    .and_then(Json::as_array)
                    .ok_or_else(unsupported)?;
                let special_id = |item: &Json| -> Result<Option<u32>, TokenizerError> {
                    let Some(name) = item
                        .get("SpecialToken")
                        .and_then(|s| s.get("id"))
                        .and_then(Json::as_str)
                    else {
                        return Ok(None);
                    };
                    // The token's ids, from the template's table or else the vocabulary.
                    let listed = p
                        .get("special_tokens")
                        .and_then(|t| t.get(name))
                        .and_then(|t| t.get("ids"))
                        .and_then(Json::as_array);
                    let id = match listed.map(Vec::as_slice) {
                        Some([id]) => id
                            .as_u64()
                            .and_then(|id| u32::try_from(id).ok())
                            .filter(|&id| (id as usize) < vocab.tokens.len()),
                        Some(_) => None,
                        None => vocab.ids.get(name).copied(),
                    };
                    id.map(Some).ok_or_else(|| {
                        cx.field_error(
                            "post_processor.special_tokens",
                            format!("{name:?} is not one token of the vocabulary"),
                        )
                    })
                };
                let seq = single
                    .iter()
                    .position(|i| i.get("Sequence").is_some())
                    .ok_or_else(unsupported)?;
                let (before, after) = single.split_at(seq);
                let after = after.get(1..).unwrap_or(&[]);
                match before {
                    [] => {}
                    [b] => {
                        self.bos = Some(special_id(b)?.ok_or_else(unsupported)?);
                        self.add_bos = true;
                    }
                    _ => return Err(unsupported()),
                }
                match after {
                    [] => {}
                    [e] => {
                        self.eos = Some(special_id(e)?.ok_or_else(unsupported)?);
                        self.add_eos = true;
                    }
                    _ => return Err(unsupported()),
                }
            }
            Some("RobertaProcessing" | "BertProcessing") => {
                let id = |key: &str| {
                    p.get(key)
                        .and_then(|v| v.get(1))
                        .and_then(Json::as_u64)
                        .and_then(|id| u32::try_from(id).ok())
                        .filter(|&id| (id as usize) < vocab.tokens.len())
                        .ok_or_else(unsupported)
                };
                self.bos = Some(id("cls")?);
                self.eos = Some(id("sep")?);
                self.add_bos = true;
                self.add_eos = true;
            }
            _ => return Err(unsupported()),
        }
        Ok(())
    }
}

/// Whether a pre-tokenizer is or contains (in a `Sequence`) a `ByteLevel`.
fn has_byte_level(pre: &Json) -> bool {
    match type_of(pre) {
        Some("ByteLevel") => true,
        Some("Sequence") => pre
            .get("pretokenizers")
            .and_then(Json::as_array)
            .is_some_and(|l| l.iter().any(|p| type_of(p) == Some("ByteLevel"))),
        _ => false,
    }
}

/// The `tokenizer.ggml.pre` name of a byte-level pre-tokenizer.
fn byte_level_pre(cx: &Cx<'_>, pre: Option<&Json>) -> Result<&'static str, TokenizerError> {
    #[derive(PartialEq)]
    enum Part {
        IndividualDigits,
        /// `Digits(individual_digits=false)`: runs of digits.
        DigitRuns,
        Gpt2Split,
        Llama3Split,
        FalconDigitsSplit,
        /// `Punctuation(Contiguous)`.
        Punctuation,
        ByteLevel {
            regex: bool,
        },
        Other,
    }
    let classify = |p: &Json| {
        let flag = |key: &str, default: bool| p.get(key).and_then(Json::as_bool).unwrap_or(default);
        let str_of = |key: &str| p.get(key).and_then(Json::as_str);
        match type_of(p) {
            Some("Digits") if flag("individual_digits", false) => Part::IndividualDigits,
            Some("Digits") => Part::DigitRuns,
            Some("Split") if str_of("behavior") == Some("Isolated") && !flag("invert", false) => {
                match p
                    .get("pattern")
                    .and_then(|r| r.get("Regex"))
                    .and_then(Json::as_str)
                {
                    Some(GPT2_REGEX) => Part::Gpt2Split,
                    Some(LLAMA3_REGEX) => Part::Llama3Split,
                    Some(FALCON_DIGITS_REGEX) => Part::FalconDigitsSplit,
                    _ => Part::Other,
                }
            }
            // Hugging Face's default behaviour is Isolated: each punctuation character
            // alone; only Contiguous (Falcon's) is implemented.
            Some("Punctuation") if str_of("behavior") == Some("Contiguous") => Part::Punctuation,
            // `add_prefix_space` (default true) would put a space before every text.
            Some("ByteLevel") if !flag("add_prefix_space", true) => Part::ByteLevel {
                regex: flag("use_regex", true),
            },
            _ => Part::Other,
        }
    };
    let Some(pre) = pre else {
        return Err(cx.unsupported("pre-tokenizer", "none".into(), SUPPORTED_PRE));
    };
    let parts: Vec<Part> = match type_of(pre) {
        Some("Sequence") => pre
            .get("pretokenizers")
            .and_then(Json::as_array)
            .map(|l| l.iter().map(classify).collect())
            .unwrap_or_default(),
        _ => vec![classify(pre)],
    };
    use Part::*;
    match parts[..] {
        [ByteLevel { regex: true }] | [Gpt2Split, ByteLevel { regex: false }] => Ok("gpt-2"),
        [IndividualDigits, ByteLevel { regex: true }]
        | [IndividualDigits, Gpt2Split, ByteLevel { regex: false }] => Ok("smollm"),
        [Llama3Split, ByteLevel { regex: false }] => Ok("llama-bpe"),
        [
            Punctuation,
            ByteLevel { regex: true },
            DigitRuns,
            FalconDigitsSplit,
        ] => Ok("falcon"),
        _ => Err(cx.unsupported("pre-tokenizer", short(pre), SUPPORTED_PRE)),
    }
}

/// The byte-level pre-tokenizers we recognise, for error messages.
const SUPPORTED_PRE: &str = "ByteLevel(add_prefix_space=false) with GPT-2's regex, \
    optionally after Digits(individual_digits=true); or Split(GPT-2's regex) then \
    ByteLevel(use_regex=false); Split(Llama 3's regex) then ByteLevel(use_regex=false); \
    Falcon's Punctuation(Contiguous), ByteLevel, Digits, Split([0-9][0-9][0-9])";

/// `(add_space_prefix, splits at ▁)` of a SentencePiece-style normalizer or Metaspace
/// pre-tokenizer.
fn spm_space(
    cx: &Cx<'_>,
    normalizer: Option<&Json>,
    pre: Option<&Json>,
) -> Result<(bool, bool), TokenizerError> {
    const SUPPORTED_NORM: &str = "Sequence[Prepend(\"▁\"), Replace(\" \", \"▁\")] or \
        Replace(\" \", \"▁\"), with no pre-tokenizer; or Metaspace(\"▁\") without normalizer";
    let mark = SPACE_MARK.to_string();
    let is_prepend = |n: &Json| {
        type_of(n) == Some("Prepend") && n.get("prepend").and_then(Json::as_str) == Some(&mark)
    };
    let is_replace = |n: &Json| {
        type_of(n) == Some("Replace")
            && n.get("pattern")
                .and_then(|p| p.get("String"))
                .and_then(Json::as_str)
                == Some(" ")
            && n.get("content").and_then(Json::as_str) == Some(&mark)
    };
    if let Some(n) = normalizer {
        if let Some(p) = pre {
            return Err(cx.unsupported("pre-tokenizer", short(p), SUPPORTED_NORM));
        }
        let parts: Vec<&Json> = match type_of(n) {
            Some("Sequence") => n
                .get("normalizers")
                .and_then(Json::as_array)
                .map(|l| l.iter().collect())
                .unwrap_or_default(),
            _ => vec![n],
        };
        return match parts[..] {
            [p, r] if is_prepend(p) && is_replace(r) => Ok((true, false)),
            [r] if is_replace(r) => Ok((false, false)),
            _ => Err(cx.unsupported("normalizer", short(n), SUPPORTED_NORM)),
        };
    }
    let Some(p) = pre.filter(|p| {
        type_of(p) == Some("Metaspace")
            && p.get("replacement").and_then(Json::as_str) == Some(&mark)
    }) else {
        let found = pre.map_or_else(|| "none".to_string(), short);
        return Err(cx.unsupported("pre-tokenizer", found, SUPPORTED_NORM));
    };
    let prefix = match p.get("prepend_scheme").and_then(Json::as_str) {
        Some("always" | "first") => true,
        Some("never") => false,
        Some(_) => return Err(cx.unsupported("pre-tokenizer", short(p), SUPPORTED_NORM)),
        None => p
            .get("add_prefix_space")
            .and_then(Json::as_bool)
            .unwrap_or(true),
    };
    let split = p.get("split").and_then(Json::as_bool).unwrap_or(true);
    Ok((prefix, split))
}

/// Scores for a SentencePiece-style vocabulary: `-r` for a token first made by merge `r`,
/// after checking that the score-ordered merge loop reproduces the merge-rank order (see
/// the module documentation).
fn spm_scores(
    cx: &Cx<'_>,
    vocab: &Vocab,
    types: &[i32],
    merges: &[Merge],
) -> Result<Vec<f32>, TokenizerError> {
    let bad = |problem: String| TokenizerError::HfMergeOrder {
        file: cx.file.to_string(),
        problem,
    };
    if merges.len() > MAX_SPM_MERGES {
        return Err(bad(format!(
            "{} merges, more than the {MAX_SPM_MERGES} whose ranks are exact f32 scores",
            merges.len()
        )));
    }
    let normal = |id: u32| types.get(id as usize) == Some(&TOKEN_TYPE_NORMAL);
    let n = vocab.tokens.len();
    let mut first_rank: Vec<Option<usize>> = vec![None; n];
    let mut pairs = HashSet::with_capacity(merges.len());
    // The first-rank of the tokens made so far never decreases: each token's merges are
    // consecutive. (Merges making a non-NORMAL token are never used from text.)
    let mut last = 0;
    for (rank, m) in merges.iter().enumerate() {
        if !normal(m.merged) {
            continue;
        }
        let Some(slot) = first_rank.get_mut(m.merged as usize) else {
            continue;
        };
        let first = *slot.get_or_insert(rank);
        if first < last {
            return Err(bad(format!(
                "merge #{rank} makes {:?}, first made by merge #{first}, after merges of \
                 other tokens",
                vocab.text(m.merged)
            )));
        }
        last = first;
        pairs.insert((m.left, m.right));
    }
    // Every split of a token into two symbols the loop could hold (a single character or
    // an ordinary token) must be a merge, or the loop would merge what Hugging Face does not.
    for (id, t) in vocab.tokens.iter().enumerate() {
        if !normal(id as u32) || t.chars().nth(1).is_none() {
            continue;
        }
        for (i, _) in t.char_indices().skip(1) {
            let (a, b) = t.split_at(i);
            let symbol = |s: &str| -> Option<Option<u32>> {
                let id = vocab.ids.get(s).copied();
                let single = s.chars().nth(1).is_none();
                match id {
                    Some(id) if normal(id) || single => Some(Some(id)),
                    None if single => Some(None),
                    _ => None,
                }
            };
            let (Some(la), Some(lb)) = (symbol(a), symbol(b)) else {
                continue;
            };
            let listed = matches!((la, lb), (Some(l), Some(r)) if pairs.contains(&(l, r)));
            if !listed {
                return Err(bad(format!(
                    "{t:?} can be made from {a:?} + {b:?}, which is not a merge"
                )));
            }
        }
    }
    let unmerged = -(merges.len() as f32) - 1.0;
    Ok(first_rank
        .iter()
        .map(|r| r.map_or(unmerged, |r| -(r as f32)))
        .collect())
}

/// A `Metaspace` that splits at `▁` runs the merges word by word; the whole-text merge loop
/// agrees only if no ordinary token has a `▁` after its first character.
fn check_metaspace_split(cx: &Cx<'_>, vocab: &Vocab, types: &[i32]) -> Result<(), TokenizerError> {
    for (t, ty) in vocab.tokens.iter().zip(types) {
        if *ty == TOKEN_TYPE_NORMAL && t.chars().skip(1).any(|c| c == SPACE_MARK) {
            return Err(TokenizerError::HfMergeOrder {
                file: cx.file.to_string(),
                problem: format!(
                    "the Metaspace pre-tokenizer splits at ▁ but token {t:?} spans one"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRE: &str = r#"{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}"#;

    /// A byte-level tokenizer.json with `vocab`, `merges` and `added` (JSON texts).
    fn json(vocab: &str, merges: &str, added: &str) -> String {
        format!(
            r#"{{"added_tokens":{added},"normalizer":null,"pre_tokenizer":{PRE},
            "post_processor":null,"decoder":{{"type":"ByteLevel"}},
            "model":{{"type":"BPE","vocab":{vocab},"merges":{merges}}}}}"#
        )
    }

    fn err(text: &str) -> TokenizerError {
        match tokenizer_json_metadata(text.as_bytes(), "t.json") {
            Ok(m) => panic!("accepted: {m:?}"),
            Err(e) => {
                assert!(e.to_string().starts_with("t.json: "), "{e}");
                e
            }
        }
    }

    #[test]
    fn a_minimal_file_translates() {
        let m = tokenizer_json_metadata(
            json(r#"{"a":0,"b":1,"ab":2}"#, r#"["a b"]"#, "[]").as_bytes(),
            "t.json",
        )
        .unwrap();
        let get = |k: &str| m.iter().find(|(key, _)| key == k).map(|(_, v)| v);
        assert_eq!(get("tokenizer.ggml.model"), Some(&Value::from("gpt2")));
        assert_eq!(get("tokenizer.ggml.pre"), Some(&Value::from("gpt-2")));
        assert_eq!(
            get("tokenizer.ggml.merges"),
            Some(&Value::string_array(["a b"]))
        );
        let tok = Tokenizer::from_tokenizer_json(
            json(r#"{"a":0,"b":1,"ab":2}"#, r#"[["a","b"]]"#, "[]").as_bytes(),
            "t.json",
        )
        .unwrap();
        assert_eq!(tok.encode("ab", false).unwrap(), [2]);
    }

    #[test]
    fn not_json_or_wrong_shape() {
        assert!(matches!(err("{not json"), TokenizerError::HfJson { .. }));
        assert!(matches!(err(""), TokenizerError::HfJson { .. }));
        assert!(matches!(err("[1,2]"), TokenizerError::HfField { .. }));
        assert!(matches!(err("{}"), TokenizerError::HfField { field, .. } if field == "model"));
        assert!(matches!(
            err(r#"{"model":{"type":"BPE"}}"#),
            TokenizerError::HfField { field, .. } if field == "model.vocab"
        ));
        assert!(matches!(
            err(&json(r#"{"a":0}"#, r#"{"x":1}"#, "[]")),
            TokenizerError::HfField { .. }
        ));
        assert!(matches!(
            err(&json("{}", "[]", "[]")),
            TokenizerError::HfField { .. }
        ));
        // Deep nesting is refused by the parser, not a stack overflow.
        let deep = "[".repeat(100_000);
        assert!(matches!(err(&deep), TokenizerError::HfJson { .. }));
    }

    #[test]
    fn other_model_types_are_unsupported() {
        for ty in ["WordPiece", "Unigram", "WordLevel"] {
            let text = format!(r#"{{"model":{{"type":"{ty}","vocab":{{}}}}}}"#);
            assert!(matches!(
                err(&text),
                TokenizerError::HfUnsupported { component: "model type", found, .. } if found == ty
            ));
        }
    }

    #[test]
    fn unsupported_components_are_named() {
        let base = json(r#"{"a":0,"b":1,"ab":2}"#, r#"["a b"]"#, "[]");
        let replace = |from: &str, to: &str| {
            assert!(base.contains(from), "{from}");
            base.replace(from, to)
        };
        let cases = [
            (replace(PRE, r#"{"type":"Whitespace"}"#), "pre-tokenizer"),
            (
                replace(r#""add_prefix_space":false"#, r#""add_prefix_space":true"#),
                "pre-tokenizer",
            ),
            (
                replace(r#""normalizer":null"#, r#""normalizer":{"type":"NFC"}"#),
                "normalizer",
            ),
            (
                replace(
                    r#""post_processor":null"#,
                    r#""post_processor":{"type":"X"}"#,
                ),
                "post-processor",
            ),
            (
                replace(r#""type":"BPE","#, r#""type":"BPE","dropout":0.1,"#),
                "model option",
            ),
            (
                replace(r#""type":"BPE","#, r#""type":"BPE","ignore_merges":true,"#),
                "model option",
            ),
        ];
        for (text, what) in cases {
            assert!(
                matches!(err(&text), TokenizerError::HfUnsupported { component, .. } if component == what),
                "{what}"
            );
        }
    }

    #[test]
    fn bad_merges_are_rejected() {
        let vocab = r#"{"a":0,"b":1,"ab":2}"#;
        for merges in [
            r#"["a c"]"#,
            r#"["b a"]"#,
            r#"["a b c"]"#,
            r#"["ab"]"#,
            r#"[["a"]]"#,
            r#"[["a",1]]"#,
            r#"[7]"#,
            r#"["a b","a b"]"#,
        ] {
            assert!(
                matches!(err(&json(vocab, merges, "[]")), TokenizerError::BadMerge { index, .. } if index < 2),
                "{merges}"
            );
        }
    }

    #[test]
    fn ids_must_be_a_permutation_of_0_to_n() {
        let e = |vocab: &str, added: &str| err(&json(vocab, "[]", added));
        assert!(matches!(
            e(r#"{"a":0,"b":4000000000}"#, "[]"),
            TokenizerError::HfIdOutOfRange { .. }
        ));
        assert!(matches!(
            e(r#"{"a":0,"b":-1}"#, "[]"),
            TokenizerError::HfIdOutOfRange { .. }
        ));
        assert!(matches!(
            e(r#"{"a":0,"b":1.5}"#, "[]"),
            TokenizerError::HfIdOutOfRange { .. }
        ));
        assert!(matches!(
            e(r#"{"a":0,"b":0}"#, "[]"),
            TokenizerError::HfDuplicateId { id: 0, .. }
        ));
        // An added token repeating a vocabulary entry is fine; one at a taken id is not.
        assert!(
            tokenizer_json_metadata(
                json(
                    r#"{"a":0,"b":1}"#,
                    "[]",
                    r#"[{"id":1,"content":"b","special":true}]"#
                )
                .as_bytes(),
                "t.json"
            )
            .is_ok()
        );
        assert!(matches!(
            e(
                r#"{"a":0,"b":1}"#,
                r#"[{"id":1,"content":"<s>","special":true}]"#
            ),
            TokenizerError::HfDuplicateId { id: 1, .. }
        ));
        assert!(matches!(
            e(
                r#"{"a":0,"b":1}"#,
                r#"[{"id":2,"content":"a","special":true}]"#
            ),
            TokenizerError::HfDuplicateToken {
                first: 0,
                second: 2,
                ..
            }
        ));
        // A hole: id 1 has no token.
        assert!(matches!(
            e(r#"{"a":0,"c":2}"#, r#"[{"id":0,"content":"a"}]"#),
            TokenizerError::HfMissingId { id: 1, .. }
        ));
        assert!(matches!(
            e(r#"{"a":0}"#, r#"[{"content":"x"}]"#),
            TokenizerError::HfField { field, .. } if field == "added_tokens[0].id"
        ));
    }

    /// A SentencePiece-style file over a, b, c, ab, bc, abc with `merges`.
    fn spm(merges: &str) -> String {
        let mut vocab: Vec<String> = ["<unk>", "<s>", "</s>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        vocab.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
        vocab.extend(["a", "b", "c", "ab", "bc", "abc"].map(String::from));
        let vocab: Vec<String> = vocab
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{t:?}:{i}"))
            .collect();
        format!(
            r#"{{"added_tokens":[{{"id":1,"content":"<s>","special":true}}],
            "normalizer":{{"type":"Sequence","normalizers":[{{"type":"Prepend","prepend":"▁"}},
              {{"type":"Replace","pattern":{{"String":" "}},"content":"▁"}}]}},
            "pre_tokenizer":null,
            "model":{{"type":"BPE","byte_fallback":true,"unk_token":"<unk>",
              "vocab":{{{}}},"merges":{merges}}}}}"#,
            vocab.join(",")
        )
    }

    #[test]
    fn sentencepiece_merges_must_be_closed_and_grouped() {
        // Every split of every piece is a merge, each piece's merges together: accepted.
        let good = spm(r#"["a b","b c","a bc","ab c"]"#);
        let tok = Tokenizer::from_tokenizer_json(good.as_bytes(), "t.json").unwrap();
        let abc = tok.token_id("abc").unwrap();
        assert_eq!(tok.encode("abc", false).unwrap().last(), Some(&abc));
        // "abc" = "a" + "bc" is not listed: the score loop would merge it, HF would not.
        assert!(matches!(
            err(&spm(r#"["a b","b c","ab c"]"#)),
            TokenizerError::HfMergeOrder { .. }
        ));
        // The merges of "abc" are split by one of "bc".
        assert!(matches!(
            err(&spm(r#"["a b","a bc","b c","ab c"]"#)),
            TokenizerError::HfMergeOrder { .. }
        ));
        // Byte fallback without every byte token.
        let missing = spm(r#"["a b","b c","a bc","ab c"]"#).replace("\"<0x41>\"", "\"<0xZZ>\"");
        assert!(matches!(
            err(&missing),
            TokenizerError::HfUnsupported {
                component: "model option",
                ..
            }
        ));
    }

    #[test]
    fn truncated_and_mangled_files_never_panic() {
        let good = spm(r#"["a b","b c","a bc","ab c"]"#);
        let bytes = good.as_bytes();
        for end in 0..bytes.len() {
            let _ = tokenizer_json_metadata(&bytes[..end], "t.json");
        }
        for i in (0..bytes.len()).step_by(7) {
            for b in [b'0', b'"', b'[', b'}', b'-', 0xff] {
                let mut m = bytes.to_vec();
                m[i] = b;
                if let Ok(meta) = tokenizer_json_metadata(&m, "t.json") {
                    let _ = Tokenizer::from_tokenizer_json(&m, "t.json");
                    assert!(!meta.is_empty());
                }
            }
        }
    }
}
