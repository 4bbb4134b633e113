//! Arbitrary text through real tokenizers (SmolLM2's byte-level BPE, from the default
//! model, and an in-memory SentencePiece vocabulary): no panic; `decode(encode(s)) == s`
//! for the byte-level one; plain `encode` never yields a special token; arbitrary ids
//! decode or fail with a typed error.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use powerinfer_core::gguf::{GgufFile, GgufWriter};
use powerinfer_core::tokenizer::{
    SpmPiece, TokenDecoder, Tokenizer, TokenizerError, add_spm_vocabulary, spm_base_vocabulary,
};

fn smollm2() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let path = std::env::var("POWERINFER_MODEL").unwrap_or_else(|_| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../models/SmolLM2-135M-Instruct.Q4_1.gguf"
            )
            .into()
        });
        let file = GgufFile::open(&path).expect("the default model (run scripts/fetch-assets.sh)");
        Tokenizer::from_gguf(&file).expect("tokenizer")
    })
}

fn spm() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let mut vocab = spm_base_vocabulary();
        let pieces = [
            "▁", "a", "b", "ab", "▁a", "▁ab", "<", "s", ">", "<s", "s>", "é",
        ];
        vocab.extend(
            pieces
                .iter()
                .enumerate()
                .map(|(i, p)| SpmPiece::new(*p, -(i as f32) / 10.0, 1)),
        );
        let mut w = GgufWriter::new();
        add_spm_vocabulary(&mut w, &vocab, Some(1), None, Some(0));
        let file = GgufFile::from_bytes(&w.to_bytes().expect("writes")).expect("reads");
        Tokenizer::from_gguf(&file).expect("tokenizer")
    })
}

fuzz_target!(|data: &[u8]| {
    let gpt2 = smollm2();
    // Valid UTF-8 text: a lossless round trip, and no special token from plain text.
    if let Ok(text) = std::str::from_utf8(data) {
        // SmolLM2's vocabulary lacks a few byte tokens (controls such as U+001D, and bytes
        // no UTF-8 has): text with one is a typed error; any other text round-trips.
        match gpt2.encode(text, false) {
            Ok(ids) => {
                let special = ids.iter().any(|&i| gpt2.is_special(i));
                assert!(!special, "special id from text {text:?}: {ids:?}");
                assert_eq!(gpt2.decode(&ids).expect("decodes"), text);
            }
            Err(TokenizerError::UnencodableByte { byte }) => {
                assert!(text.as_bytes().contains(&byte), "{byte} is not in {text:?}")
            }
            Err(e) => panic!("{e}"),
        }
        let _ = gpt2.encode_with_special_tokens(text, true);
        let _ = gpt2.chat_tokens(Some(text), text);
        for tok in [spm()] {
            if let Ok(ids) = tok.encode(text, true) {
                let special = ids[1..].iter().any(|&i| tok.is_special(i));
                assert!(!special, "special id from text {text:?}: {ids:?}");
                let _ = tok.decode(&ids);
            }
            let _ = tok.encode_with_special_tokens(text, false);
        }
    }
    // Any ids: decode and stream-decode agree, or both refuse.
    let ids: Vec<u32> = data
        .chunks_exact(2)
        .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
        .collect();
    for tok in [gpt2, spm()] {
        let whole = tok.decode(&ids);
        let mut d = TokenDecoder::new();
        let mut streamed = String::new();
        let mut failed = false;
        for &id in &ids {
            match d.push(tok, id) {
                Ok(s) => streamed.push_str(&s),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        match whole {
            Ok(w) if !failed => assert_eq!(streamed + &d.finish(), w),
            Ok(_) => panic!("stream refused ids the full decode took"),
            Err(_) => assert!(failed),
        }
    }
});
