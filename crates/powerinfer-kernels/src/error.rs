//! The kernels' one error type.

use crate::WType;

/// Why a kernel call was refused. Every check happens at the safe API boundary, so the
/// kernels underneath can index without bounds surprises.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// An operation that does not exist for these operands (e.g. a layout that only
    /// some weight types have).
    #[error("{0}")]
    Unsupported(String),
    /// A row length that is not a whole number of blocks of its type.
    #[error("{cols} columns is not a multiple of the {wtype} block size {block}")]
    NotBlockAligned {
        /// Weight type.
        wtype: WType,
        /// Requested columns.
        cols: usize,
        /// The type's block size.
        block: usize,
    },
    /// A byte size that does not fit in `usize`.
    #[error("matrix size overflows usize")]
    SizeOverflow,
    /// A weight buffer whose length does not match its declared shape.
    #[error("{what}: expected {expected} bytes for a {rows}x{cols} {wtype} matrix, got {got}")]
    WeightBytes {
        /// Which operand.
        what: &'static str,
        /// Weight type.
        wtype: WType,
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// Expected byte length.
        expected: usize,
        /// Actual byte length.
        got: usize,
    },
    /// A vector whose length does not match the operation's shape.
    #[error("{what}: expected length {expected}, got {got}")]
    Length {
        /// Which operand.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// An index list that is not strictly increasing or points past the last row.
    #[error(
        "index list: entry {position} ({index}) is out of range for {rows} rows or not strictly increasing"
    )]
    BadIndex {
        /// Position in the list.
        position: usize,
        /// The offending index.
        index: u32,
        /// Rows in the matrix.
        rows: usize,
    },
    /// A forced ISA level that this CPU does not have.
    #[error("instruction set {0} is not available on this CPU")]
    IsaUnavailable(&'static str),
    /// A thread count outside `1..=max`.
    #[error("{threads} threads: the thread count must be between 1 and {max}")]
    Threads {
        /// The count asked for.
        threads: usize,
        /// [`crate::MAX_THREADS`].
        max: usize,
    },
    /// The rayon thread pool could not be built.
    #[error("could not build the thread pool: {0}")]
    ThreadPool(String),
}
