//! The HMM detector: forward-algorithm mean surprisal over the sequence.

use super::Detector;
use crate::model::{Hmm, HmmConfig, ModelError};
use crate::syscalls::Sym;

/// A trained HMM detector.
#[derive(Debug, Clone)]
pub struct HmmDetector {
    hmm: Hmm,
}

impl HmmDetector {
    /// Trains the HMM with Baum-Welch on normal sequences.
    pub fn train(training: &[&[Sym]], config: HmmConfig) -> Result<Self, ModelError> {
        Ok(Self {
            hmm: Hmm::train(training, config)?,
        })
    }
}

impl Detector for HmmDetector {
    fn name(&self) -> &'static str {
        "hmm"
    }

    fn score(&self, events: &[Sym]) -> f64 {
        let mut state = self.hmm.start();
        let total: f64 = events.iter().map(|&s| self.hmm.step(&mut state, s)).sum();
        total / events.len().max(1) as f64
    }
}
