//! Which neurons count as *active* for a token: the profiler's events and the
//! predictors' training targets use this one definition, so they agree with each other
//! and with the sweep's oracle.

/// The definition of an active neuron, given its activation `a` (`act(gate·x)·(up·x)`
/// for gated FFNs, `act(fc1·x)` otherwise).
///
/// Why two rules: in the ReLU family a neuron either fires (`a ≠ 0`) or not; SwiGLU has
/// no exact zeros, so "active" means "among the neurons that matter most for this
/// token": the top `density` share by `|a|` (per token and layer, as the sweep's oracle
/// keeps them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ActiveRule {
    /// `a ≠ 0` (ReLU, ReGLU, dReLU).
    NonZero,
    /// The `round(density · n_ff)` neurons of largest `|a|` of each token.
    TopDensity(f32),
}

impl ActiveRule {
    /// The cut `c` such that neuron `i` is active iff `|a_i| > c`. `scratch` is reused.
    pub fn cut(&self, a: &[f32], scratch: &mut Vec<f32>) -> f32 {
        match *self {
            ActiveRule::NonZero => 0.0,
            ActiveRule::TopDensity(d) => {
                let n = a.len();
                let keep = ((n as f64) * f64::from(d)).round() as usize;
                if keep >= n {
                    return -1.0;
                }
                if keep == 0 {
                    return f32::INFINITY;
                }
                scratch.clear();
                scratch.extend(a.iter().map(|v| v.abs()));
                let (_, c, _) = scratch.select_nth_unstable_by(n - keep - 1, f32::total_cmp);
                *c
            }
        }
    }

    /// A valid rule: a density in (0, 1].
    pub fn validate(&self) -> Result<(), crate::PredictorError> {
        match *self {
            ActiveRule::NonZero => Ok(()),
            ActiveRule::TopDensity(d) if d > 0.0 && d <= 1.0 => Ok(()),
            ActiveRule::TopDensity(d) => Err(crate::PredictorError::Invalid(format!(
                "target density {d} must be in (0, 1]"
            ))),
        }
    }

    pub(crate) fn code(&self) -> (u8, f32) {
        match *self {
            ActiveRule::NonZero => (0, 0.0),
            ActiveRule::TopDensity(d) => (1, d),
        }
    }

    pub(crate) fn from_code(code: u8, d: f32) -> Option<ActiveRule> {
        match code {
            0 => Some(ActiveRule::NonZero),
            1 if d > 0.0 && d <= 1.0 => Some(ActiveRule::TopDensity(d)),
            _ => None,
        }
    }
}

impl std::fmt::Display for ActiveRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ActiveRule::NonZero => write!(f, "a ≠ 0"),
            ActiveRule::TopDensity(d) => write!(f, "top {:.0}% of |a| per token", d * 100.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_density_keeps_exactly_k_distinct_values() {
        let a: Vec<f32> = (0..100).map(|i| ((i * 37) % 100) as f32 - 50.25).collect();
        let mut s = Vec::new();
        for d in [0.01f32, 0.1, 0.33, 0.5, 0.99] {
            let c = ActiveRule::TopDensity(d).cut(&a, &mut s);
            let k = a.iter().filter(|v| v.abs() > c).count();
            assert_eq!(k, (100.0 * d).round() as usize, "density {d}");
        }
        assert_eq!(ActiveRule::TopDensity(1.0).cut(&a, &mut s), -1.0);
        assert_eq!(ActiveRule::NonZero.cut(&a, &mut s), 0.0);
    }
}
