//! Detectors: a trained model plus a rule that turns a sequence into one anomaly score.
//!
//! Higher scores are more anomalous. A threshold calibrated on held-back normal data
//! ([`stats::calibrate`]) turns scores into alarms at a target false-alarm rate.

mod baseline;
mod cover;
mod hmm;
mod ngram;
mod sets;
pub mod stats;

use std::fmt;
use std::str::FromStr;

pub use baseline::{Markov, Stide};
pub use cover::Cover;
pub use hmm::HmmDetector;
pub use ngram::{NgramDetector, NgramParams};
pub use sets::SetsThenCover;

use crate::model::{HmmConfig, ModelError};
use crate::syscalls::Sym;

/// A trained detector.
pub trait Detector: fmt::Debug + Send + Sync {
    /// The detector's name (as given to `--detector`).
    fn name(&self) -> &'static str;
    /// Adapts the detector to held-back normal sequences, the ones its alarm threshold is then
    /// calibrated on, for the target false-alarm rate `far`; called once, before scoring. Most
    /// detectors need nothing from them, and the default does nothing.
    fn calibrate(&mut self, _normal: &[&[Sym]], _far: f64) {}
    /// The anomaly score of one thread's whole sequence.
    fn score(&self, events: &[Sym]) -> f64;
}

/// The detectors `chaperone eval --detector` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Smoothed variable-order Markov model (back-off n-gram), mean surprisal.
    Ngram,
    /// First-order Markov chain, mean surprisal (a baseline).
    Markov,
    /// STIDE: fraction of never-seen 6-grams (a baseline).
    Stide,
    /// Discrete hidden Markov model, forward-algorithm mean surprisal.
    Hmm,
    /// Sequence covering: the fewest pieces of training sequences a sequence is made of, per
    /// syscall.
    Cover,
    /// Syscall-set novelty, then sequence covering: a sequence whose syscall set is farther
    /// from every training sequence's set than all but the target share of the calibration
    /// sequences ranks above the rest; `cover` orders each tier.
    Sets,
}

impl Kind {
    /// Every detector, the default (the one the shim runs) first.
    pub const ALL: [Kind; 6] = [
        Kind::Ngram,
        Kind::Sets,
        Kind::Cover,
        Kind::Hmm,
        Kind::Markov,
        Kind::Stide,
    ];

    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ngram => "ngram",
            Kind::Markov => "markov",
            Kind::Stide => "stide",
            Kind::Hmm => "hmm",
            Kind::Cover => "cover",
            Kind::Sets => "sets",
        }
    }

    /// Trains this detector on normal sequences.
    pub fn train(self, training: &[&[Sym]]) -> Result<Box<dyn Detector>, ModelError> {
        Ok(match self {
            Kind::Ngram => Box::new(NgramDetector::train(training, NgramParams::default())?),
            Kind::Markov => Box::new(Markov::train(training)?),
            Kind::Stide => Box::new(Stide::train(training, 6)),
            Kind::Hmm => Box::new(HmmDetector::train(training, HmmConfig::default())?),
            Kind::Cover => Box::new(Cover::train(training)),
            Kind::Sets => Box::new(SetsThenCover::train(training)),
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown detector name.
#[derive(Debug, thiserror::Error)]
#[error("unknown detector {name:?}; expected one of: {expected}")]
pub struct UnknownDetector {
    name: String,
    expected: String,
}

impl FromStr for Kind {
    type Err = UnknownDetector;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownDetector {
                name: s.to_owned(),
                expected: Kind::ALL.map(Kind::as_str).join(", "),
            })
    }
}
