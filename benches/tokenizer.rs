//! Criterion benches of the tokenizer on the default model's vocabulary: ordinary prose,
//! and the adversarial case a server must survive, 100 000 characters without a break
//! (one pre-token for byte-level BPE). `cargo bench --bench tokenizer`.
//!
//! `tests/tokenizer.rs::long_words_encode_in_bounded_time` bounds the adversarial inputs
//! at two orders of magnitude above what this measures.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use powerinfer_assets as assets;
use powerinfer_core::gguf::GgufFile;
use powerinfer_core::tokenizer::Tokenizer;

fn tokenizer(c: &mut Criterion) {
    assets::ensure_assets().expect("assets (scripts/fetch-assets.sh)");
    let file = GgufFile::open(assets::default_model_path()).expect("default model");
    let tok = Tokenizer::from_gguf(&file).expect("tokenizer");
    let botchan = std::fs::read_to_string(assets::data_path("botchan.txt")).expect("botchan");
    let prose: String = botchan.chars().take(100_000).collect();
    let identifier: String = (0..100_000)
        .map(|i: u32| char::from(b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26))
        .collect();
    let cjk: String = (0..100_000)
        .filter_map(|i: u32| char::from_u32(0x4E00 + (i.wrapping_mul(40_503) % 20_000)))
        .collect();
    let mut g = c.benchmark_group("encode_100k_chars");
    g.measurement_time(Duration::from_secs(5)).sample_size(10);
    for (name, text) in [
        ("prose", &prose),
        ("identifier", &identifier),
        ("cjk", &cjk),
    ] {
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| tok.encode(text, false).expect("encodes"))
        });
    }
    g.finish();
}

criterion_group!(benches, tokenizer);
criterion_main!(benches);
