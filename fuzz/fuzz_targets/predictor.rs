//! Any bytes as a predictor file and as an activation-stats file: `Ok` or a typed error,
//! never a panic; what parses round-trips. The first byte is a control byte: bit 0 picks
//! the format, bit 1 fixes the length and checksum first (to reach the payload parser).
#![no_main]

use libfuzzer_sys::fuzz_target;
use powerinfer_predictor::{ActivationStats, PredictorSet};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if which & 2 == 2 {
        powerinfer_fuzz::reseal(&mut bytes);
    }
    let bytes = &bytes[..];
    if which & 1 == 0 {
        if let Ok(set) = PredictorSet::from_bytes(bytes) {
            let again = PredictorSet::from_bytes(&set.to_bytes()).expect("a written set reads");
            assert_eq!(again.to_bytes(), set.to_bytes());
        }
    } else if let Ok(stats) = ActivationStats::from_bytes(bytes) {
        let again = ActivationStats::from_bytes(&stats.to_bytes()).expect("written stats read");
        assert_eq!(again, stats);
    }
});
