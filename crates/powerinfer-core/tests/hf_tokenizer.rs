//! Hugging Face `tokenizer.json` loading against Hugging Face's own `tokenizers` (Python),
//! the independent reference: `scripts/hf_tokenizer_reference.py` trained the small
//! tokenizers under `tests/data/hf_tokenizer/` and recorded their encodings in `cases.json`
//! (GPT-2/SmolLM2-style byte level and SentencePiece style) and `cases_pre.json` (the Llama
//! 3 and Falcon pre-tokenizers, with extra texts that stress them).
//!
//! Which HF encoding each of our calls is compared with:
//! - [`Tokenizer::encode`] never produces a special token from text; it is compared with
//!   HF's `encode(text, add_special_tokens=False)` under `encode_special_tokens = True`
//!   (`ids_split_special`), where special tokens written in the text are text too.
//! - [`Tokenizer::encode_with_special_tokens`] matches them, like HF's default encoding
//!   (`ids`).

use std::io::Read;

use powerinfer_assets as assets;
use powerinfer_core::gguf::{GgufFile, GgufWriter, Value};
use powerinfer_core::tokenizer::{
    TOKEN_TYPE_BYTE, TOKEN_TYPE_CONTROL, TOKEN_TYPE_NORMAL, TOKEN_TYPE_UNKNOWN, Tokenizer,
    TokenizerError, tokenizer_json_metadata,
};

const BYTELEVEL: &str = include_str!("data/hf_tokenizer/bytelevel.tokenizer.json");
const SPM: &str = include_str!("data/hf_tokenizer/spm.tokenizer.json");
const LLAMA3: &str = include_str!("data/hf_tokenizer/llama3.tokenizer.json");
const FALCON: &str = include_str!("data/hf_tokenizer/falcon.tokenizer.json");

fn cases(name: &str) -> Vec<serde_json::Value> {
    let file = match name {
        "llama3" | "falcon" => include_str!("data/hf_tokenizer/cases_pre.json"),
        _ => include_str!("data/hf_tokenizer/cases.json"),
    };
    let all: serde_json::Value = serde_json::from_str(file).unwrap();
    all[name].as_array().unwrap().clone()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| u32::try_from(i.as_u64().unwrap()).unwrap())
        .collect()
}

fn meta<'m>(m: &'m [(String, Value)], key: &str) -> Option<&'m Value> {
    m.iter()
        .find(|(k, _)| k == &format!("tokenizer.ggml.{key}"))
        .map(|(_, v)| v)
}

/// Checks every recorded case; returns how many texts were checked.
fn check_cases(tok: &Tokenizer, name: &str, bos: bool) -> usize {
    let cases = cases(name);
    assert!(cases.len() >= 50, "{} cases", cases.len());
    for case in &cases {
        let text = case["text"].as_str().unwrap();
        let plain = tok.encode(text, false).unwrap();
        assert_eq!(
            plain,
            ids(&case["ids_split_special"]),
            "{name} encode {text:?}"
        );
        let with_specials = tok.encode_with_special_tokens(text, false).unwrap();
        if name == "spm" && text.contains("<unk>") {
            // Known difference: HF matches every added token in text, `<unk>` included;
            // ours matches CONTROL and USER_DEFINED tokens, and `<unk>` is UNKNOWN, so it
            // stays text (as in a llama.cpp GGUF read by this tokenizer).
            assert!(!with_specials.contains(&0), "{name} {text:?}");
            assert_ne!(with_specials, ids(&case["ids"]));
        } else {
            assert_eq!(
                with_specials,
                ids(&case["ids"]),
                "{name} encode_with_special_tokens {text:?}"
            );
        }
        if bos {
            assert_eq!(
                tok.encode(text, true).unwrap(),
                ids(&case["ids_bos"]),
                "{name} encode with BOS {text:?}"
            );
        }
        // SentencePiece text cannot hold a literal ▁: it reads back as a space.
        let expected = text.replace('▁', if name == "spm" { " " } else { "▁" });
        assert_eq!(
            tok.decode(&plain).unwrap(),
            expected,
            "{name} decode {text:?}"
        );
        // SentencePiece puts a dummy-prefix ▁ after each special token, which decodes as
        // a second space (HF decodes "<s> and </s>" to "<s>  and </s>" too).
        let specials = ids(&case["ids"]).iter().any(|&id| tok.is_special(id));
        if !(name == "spm" && specials) {
            assert_eq!(
                tok.decode(&ids(&case["ids"])).unwrap(),
                expected,
                "{name} decode with specials {text:?}"
            );
        }
    }
    cases.len()
}

#[test]
fn byte_level_bpe_encodes_like_hugging_face() {
    let tok = Tokenizer::from_tokenizer_json(BYTELEVEL.as_bytes(), "bytelevel.json").unwrap();
    assert_eq!(tok.vocab_size(), 1000);
    check_cases(&tok, "bytelevel", false);
    // A special token written in untrusted text stays text.
    let forged = tok.encode("<|im_start|>", false).unwrap();
    assert!(forged.len() > 1 && !forged.iter().any(|&id| tok.is_special(id)));
    assert_eq!(
        tok.encode_with_special_tokens("<|im_start|>", false)
            .unwrap(),
        [1]
    );
}

#[test]
fn byte_level_metadata_maps_pre_tokenizer_and_specials() {
    let m = tokenizer_json_metadata(BYTELEVEL.as_bytes(), "bytelevel.json").unwrap();
    assert_eq!(meta(&m, "model"), Some(&Value::from("gpt2")));
    // Digits(individual_digits) + ByteLevel(GPT-2 regex): SmolLM2's pre-tokenizer.
    assert_eq!(meta(&m, "pre"), Some(&Value::from("smollm")));
    assert_eq!(meta(&m, "eos_token_id"), Some(&Value::U32(0))); // <|endoftext|>
    assert_eq!(meta(&m, "bos_token_id"), None);
    assert_eq!(meta(&m, "add_bos_token"), Some(&Value::Bool(false)));
    let Some(Value::Array { items, .. }) = meta(&m, "token_type") else {
        panic!("token types")
    };
    let types: Vec<i32> = items
        .iter()
        .map(|v| i32::try_from(v.as_integer().unwrap()).unwrap())
        .collect();
    assert_eq!(types[..3], [TOKEN_TYPE_CONTROL; 3]);
    assert!(types[3..].iter().all(|&t| t == TOKEN_TYPE_NORMAL));
    let tok = Tokenizer::from_tokenizer_json(BYTELEVEL.as_bytes(), "bytelevel.json").unwrap();
    assert_eq!(
        (tok.bos_id(), tok.eos_id(), tok.adds_bos()),
        (None, Some(0), false)
    );
}

#[test]
fn merges_as_strings_and_as_pairs_give_the_same_metadata() {
    let mut json: serde_json::Value = serde_json::from_str(BYTELEVEL).unwrap();
    let merges = json["model"]["merges"].as_array_mut().unwrap();
    assert!(merges[0].is_array(), "tokenizers 0.23 writes pairs");
    for m in merges.iter_mut() {
        let pair = m.as_array().unwrap();
        *m = format!(
            "{} {}",
            pair[0].as_str().unwrap(),
            pair[1].as_str().unwrap()
        )
        .into();
    }
    let strings = serde_json::to_vec(&json).unwrap();
    assert_eq!(
        tokenizer_json_metadata(&strings, "x").unwrap(),
        tokenizer_json_metadata(BYTELEVEL.as_bytes(), "x").unwrap()
    );
}

#[test]
fn sentencepiece_bpe_encodes_like_hugging_face() {
    let tok = Tokenizer::from_tokenizer_json(SPM.as_bytes(), "spm.json").unwrap();
    assert_eq!(tok.vocab_size(), 1000);
    assert_eq!(
        (tok.bos_id(), tok.eos_id(), tok.adds_bos()),
        (Some(1), Some(2), true)
    );
    check_cases(&tok, "spm", true);
    // Characters outside the vocabulary fall back to bytes: 🙂 is four <0xXX>.
    let ids = tok.encode("🙂", false).unwrap();
    let bytes: Vec<&str> = ids.iter().map(|&i| tok.token_text(i).unwrap()).collect();
    assert_eq!(
        bytes[bytes.len() - 4..],
        ["<0xF0>", "<0x9F>", "<0x99>", "<0x82>"]
    );
}

#[test]
fn sentencepiece_metadata_has_scores_types_and_space_prefix() {
    let m = tokenizer_json_metadata(SPM.as_bytes(), "spm.json").unwrap();
    assert_eq!(meta(&m, "model"), Some(&Value::from("llama")));
    assert_eq!(meta(&m, "pre"), None);
    assert_eq!(meta(&m, "add_space_prefix"), Some(&Value::Bool(true)));
    assert_eq!(meta(&m, "add_bos_token"), Some(&Value::Bool(true)));
    assert_eq!(meta(&m, "unknown_token_id"), Some(&Value::U32(0)));
    let Some(Value::Array { items: types, .. }) = meta(&m, "token_type") else {
        panic!("token types")
    };
    let ty = |i: usize| types[i].as_integer().unwrap() as i32;
    assert_eq!(ty(0), TOKEN_TYPE_UNKNOWN);
    assert_eq!((ty(1), ty(2)), (TOKEN_TYPE_CONTROL, TOKEN_TYPE_CONTROL));
    assert!((3..259).all(|i| ty(i) == TOKEN_TYPE_BYTE));
    assert!((259..1000).all(|i| ty(i) == TOKEN_TYPE_NORMAL));
    // Scores: the first merge ("▁" "t") makes the highest-scoring piece.
    let Some(Value::Array { items: scores, .. }) = meta(&m, "scores") else {
        panic!("scores")
    };
    let tok = Tokenizer::from_tokenizer_json(SPM.as_bytes(), "spm.json").unwrap();
    let first = tok.token_id("▁t").unwrap() as usize;
    assert_eq!(scores[first], Value::F32(0.0));
    assert!(
        scores
            .iter()
            .enumerate()
            .all(|(i, s)| i == first || s.as_float().unwrap() < 0.0)
    );
}

/// The metadata written into a GGUF file and read back gives the same tokenizer as
/// `from_tokenizer_json` (what the checkpoint converter does).
#[test]
fn metadata_in_a_gguf_file_round_trips() {
    for (name, json) in [
        ("bytelevel", BYTELEVEL),
        ("spm", SPM),
        ("llama3", LLAMA3),
        ("falcon", FALCON),
    ] {
        let mut w = GgufWriter::new();
        w.add("general.architecture", "llama");
        for (k, v) in tokenizer_json_metadata(json.as_bytes(), name).unwrap() {
            w.add(&k, v);
        }
        let file = GgufFile::from_bytes(&w.to_bytes().unwrap()).unwrap();
        let a = Tokenizer::from_gguf(&file).unwrap();
        let b = Tokenizer::from_tokenizer_json(json.as_bytes(), name).unwrap();
        for case in cases(name) {
            let text = case["text"].as_str().unwrap();
            assert_eq!(a.encode(text, true).unwrap(), b.encode(text, true).unwrap());
        }
    }
}

/// The texts the script added for the Llama 3 and Falcon pre-tokenizers (whitespace runs,
/// tabs, CRLF, digit groups, contractions, punctuation runs, non-ASCII) are among the cases.
fn assert_has_pre_edge_cases(name: &str) {
    let texts: Vec<String> = cases(name)
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect();
    for t in [
        "a   \n\n  b",
        "\t\tx",
        "x  ",
        "12 345 6789",
        "don't WE'LL",
        "(a+b)*c",
        "x\r\ny",
        "🙂🙂 ok",
    ] {
        assert!(texts.iter().any(|x| x == t), "{name}: no case {t:?}");
    }
}

#[test]
fn llama3_bpe_encodes_like_hugging_face() {
    let tok = Tokenizer::from_tokenizer_json(LLAMA3.as_bytes(), "llama3.json").unwrap();
    assert_eq!(tok.vocab_size(), 1000);
    // <|begin_of_text|> from the TemplateProcessing inside the Sequence post-processor.
    assert_eq!(
        (tok.bos_id(), tok.eos_id(), tok.adds_bos()),
        (Some(0), Some(1), true)
    );
    assert_has_pre_edge_cases("llama3");
    check_cases(&tok, "llama3", true);
}

#[test]
fn falcon_encodes_like_hugging_face() {
    let tok = Tokenizer::from_tokenizer_json(FALCON.as_bytes(), "falcon.json").unwrap();
    assert_eq!(tok.vocab_size(), 1000);
    assert_eq!(
        (tok.bos_id(), tok.eos_id(), tok.adds_bos()),
        (None, Some(2), false)
    );
    assert_has_pre_edge_cases("falcon");
    check_cases(&tok, "falcon", false);
}

#[test]
fn llama3_and_falcon_pre_tokenizers_map_to_llama_cpp_names() {
    for (json, pre) in [(LLAMA3, "llama-bpe"), (FALCON, "falcon")] {
        let m = tokenizer_json_metadata(json.as_bytes(), pre).unwrap();
        assert_eq!(meta(&m, "model"), Some(&Value::from("gpt2")));
        assert_eq!(meta(&m, "pre"), Some(&Value::from(pre)));
    }
}

/// Near misses of the two shapes are rejected, not tokenized differently.
#[test]
fn altered_llama3_and_falcon_pre_tokenizers_are_unsupported() {
    let altered = |json: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut j: serde_json::Value = serde_json::from_str(json).unwrap();
        edit(&mut j["pre_tokenizer"]["pretokenizers"]);
        let err = tokenizer_json_metadata(&serde_json::to_vec(&j).unwrap(), "x").unwrap_err();
        assert!(
            matches!(
                err,
                TokenizerError::HfUnsupported {
                    component: "pre-tokenizer",
                    ..
                }
            ),
            "{err}"
        );
    };
    // Llama 3's regex without the 3-digit limit.
    altered(LLAMA3, &|p| {
        let re = p[0]["pattern"]["Regex"]
            .as_str()
            .unwrap()
            .replace("{1,3}", "+");
        p[0]["pattern"]["Regex"] = re.into();
    });
    altered(LLAMA3, &|p| p[1]["use_regex"] = true.into());
    // Punctuation's default behaviour, Isolated: each character alone.
    altered(FALCON, &|p| p[0]["behavior"] = "Isolated".into());
    altered(FALCON, &|p| p[2]["individual_digits"] = true.into());
    altered(FALCON, &|p| {
        p.as_array_mut().unwrap().pop();
    });
}

#[test]
fn unsupported_and_broken_files_name_the_file() {
    let mut json: serde_json::Value = serde_json::from_str(SPM).unwrap();
    json["model"]["type"] = "Unigram".into();
    let err = Tokenizer::from_tokenizer_json(&serde_json::to_vec(&json).unwrap(), "my/tok.json")
        .unwrap_err();
    assert!(matches!(
        err,
        TokenizerError::HfUnsupported {
            component: "model type",
            ..
        }
    ));
    assert!(err.to_string().starts_with("my/tok.json: "), "{err}");
}

fn smollm2_json() -> Vec<u8> {
    let gz = include_bytes!("data/hf_tokenizer/smollm2.tokenizer.json.gz");
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// SmolLM2's real vocabulary as a tokenizer.json (built from the GGUF by the script,
/// which checked that `tokenizers` reproduces tests/data/tokenizer_smollm2.json with it).
#[test]
fn smollm2_tokenizer_json_matches_the_recorded_ids() {
    let tok = Tokenizer::from_tokenizer_json(&smollm2_json(), "smollm2.json").unwrap();
    assert_eq!(tok.vocab_size(), 49_152);
    let cases: serde_json::Value =
        serde_json::from_str(include_str!("data/tokenizer_smollm2.json")).unwrap();
    for case in cases.as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            tok.encode_with_special_tokens(text, false).unwrap(),
            ids(&case["ids"]),
            "{text:?}"
        );
        assert_eq!(
            tok.decode(&ids(&case["ids"])).unwrap(),
            text,
            "decode {text:?}"
        );
    }
}

/// …and encodes every text like the tokenizer of the real model file.
#[test]
fn smollm2_tokenizer_json_encodes_like_the_gguf() {
    assets::ensure_assets().expect("assets");
    let gguf = GgufFile::open(assets::default_model_path()).unwrap();
    let real = Tokenizer::from_gguf(&gguf).unwrap();
    let tok = Tokenizer::from_tokenizer_json(&smollm2_json(), "smollm2.json").unwrap();
    assert_eq!(tok.vocab_size(), real.vocab_size());
    for id in 0..real.vocab_size() as u32 {
        assert_eq!(tok.token_text(id), real.token_text(id));
        assert_eq!(tok.is_special(id), real.is_special(id), "token {id}");
    }
    let botchan = std::fs::read_to_string(assets::data_path("botchan.txt")).unwrap();
    let cases: serde_json::Value =
        serde_json::from_str(include_str!("data/tokenizer_smollm2.json")).unwrap();
    let texts = cases
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_string())
        .chain(botchan.lines().take(400).map(str::to_string))
        .chain([botchan.chars().take(20_000).collect::<String>()]);
    for text in texts {
        assert_eq!(
            tok.encode(&text, false).unwrap(),
            real.encode(&text, false).unwrap()
        );
        assert_eq!(
            tok.encode_with_special_tokens(&text, false).unwrap(),
            real.encode_with_special_tokens(&text, false).unwrap()
        );
    }
    // tokenizer.json alone does not know the instruct model's BOS/EOS choice
    // (tokenizer_config.json does): EOS is <|endoftext|>, the GGUF says <|im_end|>.
    assert_eq!((tok.bos_id(), tok.eos_id()), (None, Some(0)));
    assert_eq!((real.bos_id(), real.eos_id()), (Some(1), Some(2)));
}
