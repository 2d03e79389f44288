//! The per-image model of syscall sequences.
//!
//! - [`NgramCounts`] is what is learned and stored: exact counts of every n-gram (with a
//!   start-of-thread marker) up to the model order. Counting is incremental and two learners
//!   merge exactly ([`NgramCounts::merge`]).
//! - [`codec`] serializes counts compactly (a prefix trie with varints) behind a magic and a
//!   format version.
//! - [`NgramScorer`] compiles counts into a back-off automaton that scores a live stream event
//!   by event: one `u32` of state per thread, no allocation per event.
//! - [`Hmm`] is the second detector's model: a discrete hidden Markov model trained offline
//!   (Baum-Welch) and scored online with the forward algorithm.

pub mod codec;
mod counts;
mod hmm;
mod key;
mod scorer;

pub use counts::{NgramCounts, ThreadContext};
pub use hmm::{Hmm, HmmConfig, HmmState};
pub use key::{pack as pack_symbols, symbols as gram_symbols, Gram, BOS};
pub use scorer::{NgramScorer, Smoothing};

/// Errors of the model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The order is outside what the key packing supports.
    #[error("model order {order} is not between 1 and {max}")]
    Order {
        /// The requested order.
        order: usize,
        /// The largest order supported.
        max: usize,
    },
    /// Two learners of different order cannot be merged.
    #[error("cannot merge a model of order {theirs} into one of order {ours}")]
    MergeOrder {
        /// Our order.
        ours: usize,
        /// The other model's order.
        theirs: usize,
    },
    /// The bytes are not a chaperone model.
    #[error("not a chaperone model (bad magic)")]
    Magic,
    /// The bytes are a model of a format version this build does not read.
    #[error(
        "model format version {found} is not supported (this build reads version {supported})"
    )]
    Version {
        /// Version found in the data.
        found: u16,
        /// Version this build reads and writes.
        supported: u16,
    },
    /// The bytes end or contradict themselves.
    #[error("corrupt model data at byte {offset}: {reason}")]
    Corrupt {
        /// Where the problem was found.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A smoothing parameter is out of range.
    #[error("invalid smoothing: {reason}")]
    Smoothing {
        /// What is wrong.
        reason: &'static str,
    },
    /// An HMM parameter is out of range or training had no data.
    #[error("invalid hmm configuration: {reason}")]
    Hmm {
        /// What is wrong.
        reason: &'static str,
    },
}

/// `Result` with the model's error.
pub type Result<T> = std::result::Result<T, ModelError>;
