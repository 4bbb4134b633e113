//! The plan file: round trip, and damaged files give typed errors, never a panic.

mod common;

use common::{model_input, rng};
use powerinfer_placement::{
    PLAN_MAGIC, PlacementPlan, PlacementProblem, PlanFileProblem, solve_greedy,
};
use proptest::prelude::*;

fn plan() -> PlacementPlan {
    let mut input = model_input(&mut rng(42), (4, 4), (40, 40), 16);
    input.min_neurons_per_layer = 4;
    input.group_size = 2;
    let problem = PlacementProblem::new(input).expect("valid input");
    let plan = solve_greedy(&problem);
    assert!(
        plan.layers()
            .iter()
            .any(|l| !l.accelerator_neurons().is_empty())
    );
    assert!(plan.dense().iter().any(|d| d.on_accelerator));
    plan
}

/// Re-seals a payload edited in place so that it passes the checksum.
fn reseal(bytes: &mut [u8]) {
    let crc = crc32fast::hash(&bytes[24..]);
    bytes[20..24].copy_from_slice(&crc.to_le_bytes());
}

fn problem_of(bytes: &[u8]) -> PlanFileProblem {
    match PlacementPlan::from_bytes(bytes) {
        Ok(_) => panic!("damaged plan was accepted"),
        Err(e) => e.problem,
    }
}

#[test]
fn round_trips_through_bytes_and_files() {
    let plan = plan();
    let bytes = plan.to_bytes();
    assert_eq!(&bytes[..8], &PLAN_MAGIC);
    assert_eq!(PlacementPlan::from_bytes(&bytes).expect("decodes"), plan);

    let path = std::env::temp_dir().join(format!("placement-{}.plan", std::process::id()));
    plan.write_to(&path).expect("writes");
    let read = PlacementPlan::read_from(&path);
    std::fs::remove_file(&path).expect("cleanup");
    assert_eq!(read.expect("reads"), plan);
}

#[test]
fn every_truncation_is_a_typed_error() {
    let bytes = plan().to_bytes();
    for len in 0..bytes.len() {
        match problem_of(&bytes[..len]) {
            PlanFileProblem::Truncated { .. } => {}
            other => panic!("truncated to {len}: unexpected {other:?}"),
        }
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        problem_of(&longer),
        PlanFileProblem::TrailingBytes(1)
    ));
}

#[test]
fn every_bit_flip_is_a_typed_error() {
    let bytes = plan().to_bytes();
    for byte in 0..bytes.len() {
        for bit in 0..8 {
            let mut damaged = bytes.clone();
            damaged[byte] ^= 1 << bit;
            let problem = problem_of(&damaged);
            let expected = match byte {
                0..8 => matches!(problem, PlanFileProblem::BadMagic),
                8..12 => matches!(problem, PlanFileProblem::UnsupportedVersion { .. }),
                12..20 => matches!(
                    problem,
                    PlanFileProblem::Truncated { .. } | PlanFileProblem::TrailingBytes(_)
                ),
                _ => matches!(problem, PlanFileProblem::ChecksumMismatch { .. }),
            };
            assert!(expected, "bit {bit} of byte {byte}: unexpected {problem:?}");
        }
    }
}

#[test]
fn resealed_inconsistent_payloads_are_malformed() {
    let bytes = plan().to_bytes();
    // Payload starts at 24: budget (8), reserved (8), layer count (4), then layer 0:
    // neurons (4), bytes per neuron (8), activations (16), hot count (4), indices.
    let layer0 = 24 + 8 + 8 + 4;
    let mut zero_neurons = bytes.clone();
    zero_neurons[layer0..layer0 + 4].copy_from_slice(&0u32.to_le_bytes());
    reseal(&mut zero_neurons);
    assert!(matches!(
        problem_of(&zero_neurons),
        PlanFileProblem::Malformed(_)
    ));

    let mut huge_layer = bytes.clone();
    huge_layer[layer0..layer0 + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    reseal(&mut huge_layer);
    assert!(matches!(
        problem_of(&huge_layer),
        PlanFileProblem::Malformed(m) if m.contains("neurons in total")
    ));

    let mut reserved_over_budget = bytes.clone();
    reserved_over_budget[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
    reseal(&mut reserved_over_budget);
    assert!(matches!(
        problem_of(&reserved_over_budget),
        PlanFileProblem::Malformed(m) if m.contains("budget")
    ));
}

#[test]
fn file_errors_name_the_path() {
    let path = std::env::temp_dir().join("placement-does-not-exist.plan");
    let err = PlacementPlan::read_from(&path).expect_err("missing file");
    assert!(matches!(err.problem, PlanFileProblem::Io(_)));
    assert!(
        err.to_string().contains("placement-does-not-exist.plan"),
        "{err}"
    );

    let bad = std::env::temp_dir().join(format!("placement-bad-{}.plan", std::process::id()));
    std::fs::write(&bad, b"not a plan at all, clearly").expect("write");
    let err = PlacementPlan::read_from(&bad).expect_err("bad magic");
    std::fs::remove_file(&bad).expect("cleanup");
    assert!(matches!(err.problem, PlanFileProblem::BadMagic));
    assert!(
        err.to_string().contains(&bad.display().to_string()),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary edits that keep a valid checksum decode to a plan or a typed error.
    #[test]
    fn resealed_random_edits_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut bytes = plan().to_bytes();
        let payload = bytes.len() - 24;
        for (at, value) in edits {
            bytes[24 + at % payload] = value;
        }
        let keep = 24 + cut % (payload + 1);
        bytes.truncate(keep);
        let len = (keep - 24) as u64;
        bytes[12..20].copy_from_slice(&len.to_le_bytes());
        reseal(&mut bytes);
        if let Ok(decoded) = PlacementPlan::from_bytes(&bytes) {
            prop_assert!(decoded.accelerator_bytes() <= decoded.accelerator_budget());
        }
    }
}
