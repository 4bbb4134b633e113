//! The one fixed split of a text's tokens that every tool uses, so calibration
//! (profiles, thresholds, predictors) never sees evaluation tokens.
//!
//! ```text
//! tokens:  [ calibration: first 85%                         | evaluation: last 15% ]
//! calib:   [ training: first 90%            | held-out: 10% ]
//! ```
//! On `data/botchan.txt` with the default model that is about 54k training, 6k held-out
//! and 10.6k evaluation tokens.

/// Share of a text's tokens used for calibration; the rest is evaluation.
pub const CALIBRATION_SHARE: f64 = 0.85;
/// Share of the calibration tokens used for training; the rest is held out for
/// thresholds and operating points.
pub const TRAINING_SHARE: f64 = 0.90;

/// Characters of text the quick start-up calibration sample is cut from.
pub const QUICK_SAMPLE_CHARS: usize = 4000;
/// Tokens in the quick start-up calibration sample.
pub const QUICK_SAMPLE_TOKENS: usize = 256;

/// The quick calibration sample that `threshold:`/`static:` policies and quick split
/// profiles use when a tool starts (generate, the server): the first
/// [`QUICK_SAMPLE_TOKENS`] tokens of the first [`QUICK_SAMPLE_CHARS`] characters of
/// `text`. One definition, so every tool calibrates a policy string the same way.
pub fn quick_sample(
    tokenizer: &crate::tokenizer::Tokenizer,
    text: &str,
) -> Result<Vec<u32>, crate::tokenizer::TokenizerError> {
    let cut = text
        .char_indices()
        .nth(QUICK_SAMPLE_CHARS)
        .map_or(text.len(), |(i, _)| i);
    let mut tokens = tokenizer.encode(&text[..cut], false)?;
    tokens.truncate(QUICK_SAMPLE_TOKENS);
    Ok(tokens)
}

fn cut(tokens: &[u32], share: f64) -> usize {
    ((tokens.len() as f64) * share).round() as usize
}

/// (calibration, evaluation) tokens.
pub fn split(tokens: &[u32]) -> (&[u32], &[u32]) {
    tokens.split_at(cut(tokens, CALIBRATION_SHARE))
}

/// (training, held-out) parts of the calibration tokens.
pub fn split_calibration(calibration: &[u32]) -> (&[u32], &[u32]) {
    calibration.split_at(cut(calibration, TRAINING_SHARE))
}
