//! The published baselines, kept so every report shows the floor next to chaperone's detectors.

use rustc_hash::FxHashSet;

use super::Detector;
use crate::model::{Gram, ModelError, NgramCounts, NgramScorer, Smoothing};
use crate::syscalls::Sym;

/// STIDE (Forrest et al.): the fraction of a sequence's length-`n` windows never seen in training.
#[derive(Debug, Clone)]
pub struct Stide {
    n: usize,
    seen: FxHashSet<Gram>,
}

fn windows(events: &[Sym], n: usize) -> impl Iterator<Item = Gram> + '_ {
    let n = n.min(events.len()).max(1);
    events.windows(n).map(crate::model::pack_symbols)
}

impl Stide {
    /// Learns the set of windows of length `n` (at most 8).
    pub fn train(training: &[&[Sym]], n: usize) -> Self {
        let n = n.clamp(1, chaperone_config::MAX_ORDER);
        let mut seen = FxHashSet::default();
        for t in training {
            seen.extend(windows(t, n));
        }
        Self { n, seen }
    }
}

impl Detector for Stide {
    fn name(&self) -> &'static str {
        "stide"
    }

    fn score(&self, events: &[Sym]) -> f64 {
        let (mut total, mut unseen) = (0usize, 0usize);
        for w in windows(events, self.n) {
            total += 1;
            unseen += usize::from(!self.seen.contains(&w));
        }
        if total == 0 {
            0.0
        } else {
            unseen as f64 / total as f64
        }
    }
}

/// A first-order Markov chain with add-one smoothing, scored by mean surprisal.
#[derive(Debug, Clone)]
pub struct Markov {
    scorer: NgramScorer,
}

impl Markov {
    /// Learns transition counts.
    pub fn train(training: &[&[Sym]]) -> Result<Self, ModelError> {
        let mut counts = NgramCounts::new(2)?;
        for t in training {
            counts.learn_sequence(t);
        }
        let smoothing = Smoothing {
            alpha: 1.0,
            beta: 0.0,
        };
        Ok(Self {
            scorer: NgramScorer::new(&counts, smoothing)?,
        })
    }
}

impl Detector for Markov {
    fn name(&self) -> &'static str {
        "markov"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stide_scores_unseen_windows() {
        let s = Stide::train(&[&[1, 2, 3, 4, 5]], 3);
        assert_eq!(s.score(&[1, 2, 3, 4]), 0.0);
        assert_eq!(s.score(&[1, 2, 3, 9]), 0.5);
        assert_eq!(s.score(&[2, 3]), 1.0, "short traces are one window");
        assert_eq!(s.score(&[]), 0.0);
    }

    #[test]
    fn markov_prefers_learned_transitions() {
        let m = Markov::train(&[&[1, 2, 1, 2, 1, 2]]).unwrap();
        assert!(m.score(&[1, 2, 1, 2]) < m.score(&[2, 2, 1, 1]));
    }
}
