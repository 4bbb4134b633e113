//! Run-time choice of instruction set.
//!
//! Why run time: a library built for a generic x86-64 target should still use the AVX2
//! (or better) unit of the CPU it lands on, and tests must be able to force every level,
//! the scalar reference included, on one machine.

use crate::KernelError;

/// An instruction-set level the kernels can run at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust, one value at a time: the reference that defines correct.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C micro-kernels.
    Avx2,
}

impl Isa {
    /// Every level, lowest first (some may be unavailable on this CPU).
    pub const ALL: [Isa; 2] = [Isa::Scalar, Isa::Avx2];

    /// The best level this CPU supports.
    pub fn detect() -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|i| i.is_available())
            .unwrap_or(Isa::Scalar)
    }

    /// Whether this CPU can run this level.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => avx2_available(),
        }
    }

    /// Proof that this level runs here, else [`KernelError::IsaUnavailable`].
    pub fn supported(self) -> Result<Supported, KernelError> {
        if self.is_available() {
            Ok(Supported(self))
        } else {
            Err(KernelError::IsaUnavailable(self.name()))
        }
    }

    /// Lower-case name (`scalar`, `avx2`).
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
        }
    }

    /// Parses [`Isa::name`] back.
    pub fn from_name(s: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| i.name() == s)
    }
}

/// Proof that this CPU runs an [`Isa`]: the only key the SIMD kernels accept.
///
/// Why a type: the dispatch functions run AVX2 code from safe fns, which is sound only
/// on a CPU with AVX2, FMA and F16C. A `Supported` can only be made by checking
/// ([`Isa::supported`], [`Supported::best`]), so that soundness rests on this type, not on
/// every caller remembering to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Supported(Isa);

impl Supported {
    /// The best level this CPU supports.
    pub fn best() -> Supported {
        Supported(Isa::detect())
    }

    /// The scalar reference, which every CPU runs.
    pub const fn scalar() -> Supported {
        Supported(Isa::Scalar)
    }

    /// The level this proves.
    pub const fn isa(self) -> Isa {
        self.0
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_available() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_available() -> bool {
    false
}
