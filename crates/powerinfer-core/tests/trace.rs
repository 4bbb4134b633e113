//! The `Trace` policy: each position computes exactly the neurons its trace draws, the
//! same as a static candidate list of those neurons would, and a trace of another shape
//! is refused.

mod common;

use std::sync::Arc;

use common::data;
use powerinfer_core::trace::ActivationTrace;
use powerinfer_core::{FfnPolicy, Model, ModelError, Session};
use powerinfer_kernels::Kernels;

#[test]
fn a_trace_computes_exactly_its_sampled_neurons() {
    let model = Model::open(data("ref_relu_llama.gguf")).unwrap();
    let (layers, n_ff) = (model.config().n_layers, model.config().n_ff);
    let trace = Arc::new(ActivationTrace::power_law(layers, n_ff, &[0.3], 1.0, 5).unwrap());
    let policy = FfnPolicy::Trace {
        trace: Arc::clone(&trace),
    };
    let tokens = [3u32, 1, 4, 1, 5, 9];
    let mut traced = Session::new(&model, Kernels::new(), 16).unwrap();
    let mut fixed = Session::new(&model, Kernels::new(), 16).unwrap();
    let mut drawn = 0;
    for (pos, &t) in tokens.iter().enumerate() {
        let per_layer: Vec<Vec<u32>> = (0..layers)
            .map(|l| {
                let mut s = Vec::new();
                trace.sample(l, pos, &mut s);
                s
            })
            .collect();
        drawn += per_layer.iter().map(Vec::len).sum::<usize>();
        let want = fixed
            .forward(&[t], &FfnPolicy::StaticHot { per_layer })
            .unwrap();
        assert_eq!(
            traced.forward(&[t], &policy).unwrap(),
            want,
            "position {pos}"
        );
    }
    let computed: u64 = traced.stats().active.iter().sum();
    assert_eq!(computed, drawn as u64);
    // Batched prefill draws the same sets per position.
    let mut batch = Session::new(&model, Kernels::new(), 16).unwrap();
    batch.forward_all(&tokens, &policy).unwrap();
    assert_eq!(batch.stats().active, traced.stats().active);
}

#[test]
fn a_trace_of_another_shape_is_refused() {
    let model = Model::open(data("ref_relu_llama.gguf")).unwrap();
    let layers = model.config().n_layers;
    let trace = ActivationTrace::power_law(layers, 7, &[0.3], 1.0, 5).unwrap();
    let policy = FfnPolicy::Trace {
        trace: Arc::new(trace),
    };
    let err = Session::new(&model, Kernels::new(), 16)
        .unwrap()
        .forward(&[1, 2], &policy)
        .unwrap_err();
    assert!(matches!(err, ModelError::Policy(_)), "{err}");
}
