//! The n-gram detector: the smoothed back-off model scored by mean surprisal over the sequence.

use super::Detector;
use crate::model::{ModelError, NgramCounts, NgramScorer, Smoothing};
use crate::syscalls::Sym;

/// Settings of the n-gram detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NgramParams {
    /// Longest gram counted.
    pub order: usize,
    /// Dirichlet smoothing strength.
    pub smoothing: Smoothing,
}

impl Default for NgramParams {
    fn default() -> Self {
        Self {
            order: chaperone_config::DEFAULT_ORDER,
            smoothing: Smoothing::default(),
        }
    }
}

/// A trained n-gram detector.
#[derive(Debug, Clone)]
pub struct NgramDetector {
    scorer: NgramScorer,
}

impl NgramDetector {
    /// Learns the model from normal sequences.
    pub fn train(training: &[&[Sym]], params: NgramParams) -> Result<Self, ModelError> {
        let mut counts = NgramCounts::new(params.order)?;
        for t in training {
            counts.learn_sequence(t);
        }
        Self::from_counts(&counts, params.smoothing)
    }

    /// Compiles a detector from learned counts.
    pub fn from_counts(counts: &NgramCounts, smoothing: Smoothing) -> Result<Self, ModelError> {
        Ok(Self {
            scorer: NgramScorer::new(counts, smoothing)?,
        })
    }

    /// The compiled scorer.
    pub fn scorer(&self) -> &NgramScorer {
        &self.scorer
    }
}

impl Detector for NgramDetector {
    fn name(&self) -> &'static str {
        "ngram"
    }

    fn score(&self, events: &[Sym]) -> f64 {
        let mut state = self.scorer.start();
        let total: f64 = events
            .iter()
            .map(|&s| f64::from(self.scorer.step(&mut state, s).surprisal))
            .sum();
        total / events.len().max(1) as f64
    }
}
