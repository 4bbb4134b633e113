//! The engine end to end on a small reference model given a SentencePiece vocabulary:
//! the vocabulary check, the context's last slot, streamed text, token counts,
//! determinism and resource limits.

use std::path::PathBuf;

use powerinfer_core::gguf::{GgufFile, GgufWriter};
use powerinfer_core::sampler::SamplerParams;
use powerinfer_core::tokenizer::{SpmPiece, add_spm_vocabulary};
use powerinfer_core::{
    Engine, EngineError, EngineOptions, GenerateParams, KvCache, ModelError, Session,
};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// `ref_llama_f32.gguf` (vocabulary 96) with a `llama` tokenizer of `vocab` tokens:
/// `<unk>`, `<s>`, 30 UTF-8 lead bytes (each held back until finished), the pieces of
/// `▁w<digits>`, then `▁`-prefixed words. No EOS, so only `max_tokens` and the context end a generation.
fn model_with_spm(vocab_size: usize, name: &str) -> PathBuf {
    let f = GgufFile::open(data("ref_llama_f32.gguf")).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in f.metadata() {
        w.add(k, v.clone());
    }
    for t in f.tensors() {
        w.add_tensor(&t.name, &t.dims, t.wtype, f.tensor_data(t).to_vec())
            .unwrap();
    }
    let mut vocab = vec![SpmPiece::new("<unk>", 0.0, 2), SpmPiece::new("<s>", 0.0, 3)];
    vocab.extend((0xC2..0xE0u32).map(|b| SpmPiece::new(format!("<0x{b:02X}>"), 0.0, 6)));
    // The pieces that spell "▁w<digits>" by merges.
    vocab.extend(["▁", "w", "▁w"].map(|p| SpmPiece::new(p, 0.0, 1)));
    vocab.extend((0..10).map(|d| SpmPiece::new(d.to_string(), 0.0, 1)));
    let mut i = 0;
    while vocab.len() < vocab_size {
        vocab.push(SpmPiece::new(format!("▁w{i}"), 0.0, 1));
        i += 1;
    }
    vocab.truncate(vocab_size);
    add_spm_vocabulary(&mut w, &vocab, Some(1), None, Some(0));
    let path = std::env::temp_dir().join(format!("powerinfer-{}-{name}.gguf", std::process::id()));
    w.write(&path).unwrap();
    path
}

fn sampled(seed: u64, max_tokens: usize) -> GenerateParams {
    GenerateParams {
        max_tokens,
        sampler: SamplerParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            seed,
            ..SamplerParams::default()
        },
        ..GenerateParams::default()
    }
}

/// Regression: a tokenizer of another size than the model's vocabulary loaded, and the
/// sampler could pick ids the tokenizer cannot print (`UnknownId` mid-answer). A larger
/// tokenizer is refused at load; a smaller one (a padded embedding) samples its ids only.
#[test]
fn a_vocabulary_of_another_size_is_refused_or_sampled_within() {
    let path = model_with_spm(200, "vocab200");
    let e = Engine::load(&path, &EngineOptions::default())
        .err()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(
        matches!(
            e,
            EngineError::VocabMismatch {
                tokenizer: 200,
                model: 96,
                ..
            }
        ),
        "{e}"
    );
    let path = model_with_spm(64, "vocab64");
    let engine = Engine::load(&path, &EngineOptions::default()).unwrap();
    std::fs::remove_file(&path).unwrap();
    for seed in 0..8 {
        for t in engine.generate("w1 w2", &sampled(seed, 20)).unwrap() {
            assert!(t.unwrap().id < 64);
        }
    }
}

/// Regressions: the last context slot was never used, `generated` counted forward
/// passes, and a fresh decoder dropped the answer's first space ("France isParis")
/// and never flushed a character cut at the end.
#[test]
fn generation_fills_the_context_and_streams_the_decode() {
    let path = model_with_spm(96, "stream");
    let opts = EngineOptions {
        ctx_len: 12,
        threads: Some(1),
        ..EngineOptions::default()
    };
    let engine = Engine::load(&path, &opts).unwrap();
    std::fs::remove_file(&path).unwrap();
    let tok = engine.tokenizer();
    let prompt = "w3 w7 w11";
    let prompt_ids = tok.encode(prompt, true).unwrap();
    assert_eq!(prompt_ids.len(), 4, "{prompt_ids:?}");
    let mut cut_at_end = 0;
    for seed in 0..24 {
        let mut g = engine.generate(prompt, &sampled(seed, 100)).unwrap();
        let tokens: Vec<_> = g.by_ref().map(Result::unwrap).collect();
        let stats = g.stats();
        // Positions 0..12 hold the prompt and 8 answer tokens; the 9th is sampled from
        // the logits of the last slot and never fed back.
        assert_eq!(tokens.len(), 12 - 4 + 1, "seed {seed}");
        assert_eq!(stats.generated, tokens.len());
        assert_eq!(stats.decode_steps, tokens.len() - 1);
        // The streamed texts are exactly what the answer adds to the full decode.
        let ids: Vec<u32> = prompt_ids
            .iter()
            .copied()
            .chain(tokens.iter().map(|t| t.id))
            .collect();
        let text: String = tokens.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(
            format!("{}{text}", tok.decode(&prompt_ids).unwrap()),
            tok.decode(&ids).unwrap(),
            "seed {seed}"
        );
        let last = tokens.last().unwrap();
        cut_at_end += usize::from((2..32).contains(&last.id) && last.text.ends_with('\u{FFFD}'));
    }
    // Some answers end inside a character (a lone lead byte), which only `finish` prints.
    assert!(cut_at_end > 0);
    // A prompt of exactly the context still yields one token.
    let full = vec![1u32; 12];
    let g = engine.generate_tokens(full, &sampled(0, 5)).unwrap();
    assert_eq!(g.count(), 1);
    assert!(matches!(
        engine.generate_tokens(vec![1u32; 13], &sampled(0, 5)),
        Err(EngineError::PromptTooLong {
            prompt: 13,
            ctx_len: 12
        })
    ));
}

/// The same seed gives the same tokens across runs and thread counts.
#[test]
fn generation_is_deterministic_across_runs_and_threads() {
    let path = model_with_spm(96, "determinism");
    let run = |threads: usize, seed: u64| -> Vec<u32> {
        let opts = EngineOptions {
            threads: Some(threads),
            ..EngineOptions::default()
        };
        let engine = Engine::load(&path, &opts).unwrap();
        engine
            .generate("w1 w2 w3", &sampled(seed, 24))
            .unwrap()
            .map(|t| t.unwrap().id)
            .collect()
    };
    for seed in [1, 7] {
        let first = run(1, seed);
        assert_eq!(first.len(), 24);
        for threads in [1, 2, 3] {
            assert_eq!(run(threads, seed), first, "seed {seed}, {threads} threads");
        }
    }
    assert_ne!(run(1, 1), run(1, 7));
    std::fs::remove_file(&path).unwrap();
}

/// Regression: a huge context multiplied unchecked and aborted on allocation; thread
/// counts past any machine aborted inside rayon.
#[test]
fn resource_limits_are_typed_errors() {
    let path = model_with_spm(96, "limits");
    let e = Engine::load(
        &path,
        &EngineOptions {
            threads: Some(100_000),
            ..EngineOptions::default()
        },
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("100000 threads"), "{e}");
    for threads in [0, 100_000] {
        assert!(
            powerinfer_kernels::Kernels::new()
                .with_threads(threads)
                .is_err()
        );
    }
    assert!(matches!(
        Engine::load(
            &path,
            &EngineOptions {
                ctx_len: 0,
                ..EngineOptions::default()
            }
        ),
        Err(EngineError::ZeroContext)
    ));
    // KV caches past usize and past any machine: typed errors, not aborts.
    for (layers, ctx, kv_dim, bytes) in [
        (1 << 20, 1 << 24, 1 << 20, None),
        (64, 1 << 24, 4096, Some(64 << 24 << 12 << 3)),
    ] {
        let e = KvCache::new(layers, ctx, kv_dim).err().unwrap();
        assert!(
            matches!(&e, ModelError::Alloc { bytes: b, .. } if *b == bytes),
            "{e}"
        );
        assert!(
            e.to_string().contains("KV cache of 16777216 positions"),
            "{e}"
        );
    }
    let engine = Engine::load(&path, &EngineOptions::default()).unwrap();
    std::fs::remove_file(&path).unwrap();
    let model = engine.model();
    assert_eq!(
        Session::kv_cache_bytes(model, 8),
        Some(2 * 8 * model.config().kv_dim() * 4 * model.config().n_layers)
    );
}

/// The same on the real default model, whose matrices are large enough to be split
/// over the pool: sampled tokens do not depend on the thread count.
#[test]
fn default_model_is_deterministic_across_threads() {
    powerinfer_assets::ensure_assets().unwrap();
    let path = powerinfer_assets::default_model_path();
    let mut runs = Vec::new();
    for threads in [1, 2, 3] {
        let opts = EngineOptions {
            threads: Some(threads),
            ctx_len: 64,
            ..EngineOptions::default()
        };
        let engine = Engine::load(&path, &opts).unwrap();
        for _ in 0..2 {
            let g = engine
                .generate("The capital of France is", &sampled(42, 16))
                .unwrap();
            runs.push(g.map(|t| t.unwrap().id).collect::<Vec<u32>>());
        }
    }
    assert_eq!(runs[0].len(), 16);
    assert!(runs.iter().all(|r| *r == runs[0]), "{runs:?}");
}

/// `Engine::calibrated_policy` gives per-layer cuts that reach about the density asked.
#[test]
fn calibrated_policy_reaches_its_density() {
    let path = model_with_spm(96, "calibrated");
    let engine = Engine::load(&path, &EngineOptions::default()).unwrap();
    std::fs::remove_file(&path).unwrap();
    let text = "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20";
    let policy = engine.calibrated_policy(text, 0.3).unwrap();
    let powerinfer_core::FfnPolicy::Threshold { per_layer } = &policy else {
        panic!("{policy:?}");
    };
    assert_eq!(per_layer.len(), engine.model().config().n_layers);
    let mut s = engine.session().unwrap();
    s.forward(&engine.tokenizer().encode(text, true).unwrap(), &policy)
        .unwrap();
    for d in s.stats().density_per_layer() {
        assert!((0.2..0.4).contains(&d), "density {d}");
    }
}

/// `Engine` is documented as shareable across threads: hold it to that at compile time.
#[test]
fn engine_is_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Engine>();
    shareable::<std::sync::Arc<Engine>>();
}

/// An owning generation (`Engine::generate_shared`) moves into another thread and yields
/// exactly what the borrowing one yields for the same prompt and seed.
#[test]
fn shared_generations_move_into_threads_and_match() {
    let path = model_with_spm(96, "shared");
    let engine = std::sync::Arc::new(Engine::load(&path, &EngineOptions::default()).unwrap());
    std::fs::remove_file(&path).unwrap();
    let params = sampled(3, 12);
    let prompt = engine.prompt_tokens("w1 w2 w3", &params).unwrap();
    let borrowed: Vec<u32> = engine
        .generate_tokens(prompt.clone(), &params)
        .unwrap()
        .map(|t| t.unwrap().id)
        .collect();
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let g = engine.generate_shared(prompt.clone(), &params).unwrap();
            std::thread::spawn(move || g.map(|t| t.unwrap().id).collect::<Vec<u32>>())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), borrowed);
    }
    fn owned<T: Send + 'static>(_: &T) {}
    owned(&engine.generate_shared(prompt, &params).unwrap());
}

/// Each token's log-probability is the model's: the same as scoring the whole sequence
/// in one pass (`prompt_logprobs`), and under greedy decoding the best of its top list.
#[test]
fn token_logprobs_match_scoring_the_sequence() {
    let path = model_with_spm(96, "logprobs");
    let engine = Engine::load(&path, &EngineOptions::default()).unwrap();
    std::fs::remove_file(&path).unwrap();
    let params = GenerateParams {
        max_tokens: 8,
        logprobs: Some(3),
        ..GenerateParams::default()
    };
    let prompt = engine.prompt_tokens("w5 w6", &params).unwrap();
    let tokens: Vec<_> = engine
        .generate_tokens(prompt.clone(), &params)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(tokens.len(), 8);
    let all: Vec<u32> = prompt
        .iter()
        .copied()
        .chain(tokens.iter().map(|t| t.id))
        .collect();
    let scored = engine.prompt_logprobs(&all, &params.policy, 3).unwrap();
    assert_eq!(scored.len(), all.len() - 1);
    for (k, t) in tokens.iter().enumerate() {
        let lp = t.logprobs.as_ref().unwrap();
        assert!(lp.logprob <= 0.0);
        assert_eq!(lp.top.len(), 3);
        assert_eq!(lp.top[0].0, t.id, "greedy picks the most likely");
        assert!((lp.top[0].1 - lp.logprob).abs() < 1e-6);
        let s = &scored[prompt.len() - 1 + k];
        assert!((s.logprob - lp.logprob).abs() < 1e-3, "{k}: {s:?} vs {t:?}");
        assert_eq!(s.top[0].0, t.id);
    }
    // Scoring the prompt in the generation's own prefill gives the same scores as a
    // separate pass, and the same tokens as a generation that does not score it.
    let scoring = GenerateParams {
        prompt_logprobs: Some(3),
        ..params.clone()
    };
    let mut g = engine.generate_tokens(prompt.clone(), &scoring).unwrap();
    assert_eq!(
        g.prompt_logprobs(),
        engine.prompt_logprobs(&prompt, &params.policy, 3).unwrap()
    );
    let ids: Vec<u32> = g.by_ref().map(|t| t.unwrap().id).collect();
    assert_eq!(ids, tokens.iter().map(|t| t.id).collect::<Vec<_>>());
    // Not asked for, no token carries log-probabilities (none are computed).
    let plain = GenerateParams {
        logprobs: None,
        ..params.clone()
    };
    let untouched: Vec<_> = engine
        .generate_tokens(prompt.clone(), &plain)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(untouched.iter().all(|t| t.logprobs.is_none()));
    assert_eq!(
        untouched.iter().map(|t| t.id).collect::<Vec<_>>(),
        tokens.iter().map(|t| t.id).collect::<Vec<_>>()
    );
}

/// A chat continued in the session of its first turn prefills only what the session
/// cannot reuse, and answers exactly as a fresh session does (dense and sparse).
#[test]
fn a_continued_chat_reuses_its_prefix_and_answers_as_a_fresh_session() {
    use powerinfer_core::tokenizer::{ChatMessage, ChatRole};
    powerinfer_assets::ensure_assets().unwrap();
    let opts = EngineOptions {
        ctx_len: 256,
        ..EngineOptions::default()
    };
    let engine =
        std::sync::Arc::new(Engine::load(powerinfer_assets::default_model_path(), &opts).unwrap());
    let tok = engine.tokenizer();
    let botchan = std::fs::read_to_string(powerinfer_assets::data_path("botchan.txt")).unwrap();
    let sparse = engine.calibrated_policy(&botchan[..4000], 0.4).unwrap();
    for policy in [powerinfer_core::FfnPolicy::Dense, sparse] {
        let params = GenerateParams {
            max_tokens: 12,
            policy,
            ..GenerateParams::default()
        };
        let q1 = ChatMessage::new(ChatRole::User, "What is the capital of France?");
        let first = tok.chat_conversation(&[q1]).unwrap();
        let mut g = engine.generate_shared(first.clone(), &params).unwrap();
        let answer: Vec<_> = g.by_ref().map(Result::unwrap).collect();
        let text: String = answer.iter().map(|t| t.text.as_str()).collect();
        let session = g.into_session();
        // The prompt and the answer are cached (the last token too, unless the limit
        // stopped the generation before feeding it).
        let cached = session.tokens().count();
        assert!((first.len() + answer.len() - 1..=first.len() + answer.len()).contains(&cached));
        let turns = [
            q1,
            ChatMessage::new(ChatRole::Assistant, &text),
            ChatMessage::new(ChatRole::User, "And of Italy?"),
        ];
        let second = tok.chat_conversation(&turns).unwrap();
        let fresh: Vec<u32> = engine
            .generate_shared(second.clone(), &params)
            .unwrap()
            .map(|t| t.unwrap().id)
            .collect();
        let mut cont = engine
            .generate_continuing(session, second, &params)
            .unwrap();
        let continued: Vec<u32> = cont.by_ref().map(|t| t.unwrap().id).collect();
        assert_eq!(continued, fresh, "{:?}", params.policy);
        // The first turn's prompt came from a batched prefill and is reused; its answer
        // came from decode steps and is computed again.
        assert_eq!(cont.stats().reused_tokens, first.len());
    }
}
