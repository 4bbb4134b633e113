//! Any bytes as a placement plan file: `Ok` or a typed error, never a panic; a plan that
//! parses serializes back to the same plan. The first byte is a control byte: odd means
//! "fix the length and checksum first", to reach the payload parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use powerinfer_placement::PlacementPlan;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if control & 1 == 1 {
        powerinfer_fuzz::reseal(&mut bytes);
    }
    if let Ok(plan) = PlacementPlan::from_bytes(&bytes) {
        let again = PlacementPlan::from_bytes(&plan.to_bytes()).expect("a written plan reads");
        assert_eq!(again, plan);
    }
});
