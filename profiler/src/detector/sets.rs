//! Syscall-set novelty first, sequence covering second (`sets`).
//!
//! Which syscalls a sequence uses at all says much about what the program did: a shell that
//! suddenly opens a socket, a server that suddenly forks. The detector keeps the distinct syscall
//! sets of the training sequences; a sequence's set distance is one minus the Jaccard similarity
//! of its set to the nearest of them (0: some training sequence used exactly these syscalls).
//!
//! On the held-back normal sequences the alarm threshold is calibrated on, the detector first
//! takes the set distance that at most the target false-alarm share of them exceed: the cut.
//! A sequence past the cut scores above every sequence within it, and [`Cover`] orders the
//! sequences inside each of the two tiers. So the alarms at the target rate are, first, the
//! sequences whose syscall sets are as far from training as only that share of normal ones are,
//! and the ranking below them is the one of sequence covering, which orders the bulk of normal
//! behaviour better than a set distance with its many ties does. ADR 0022 says why a tier and
//! not a weighted sum.

use super::{stats, Cover, Detector};
use crate::syscalls::Sym;

/// Added to the score of a sequence past the cut: above any `cover` score, which is at most 3
/// (one unseen syscall and both ends: 3 pieces for 1 syscall).
const TIER: f64 = 4.0;

/// A set of syscalls as a bit set over the syscalls seen in training, plus how many others.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct SymSet {
    words: Box<[u64]>,
    /// Distinct syscalls too large for `words` (only in scored sequences).
    beyond: u32,
}

impl SymSet {
    fn of(events: &[Sym], width: usize) -> Self {
        let mut words = vec![0_u64; width].into_boxed_slice();
        let mut beyond: Vec<Sym> = Vec::new();
        for &s in events {
            let (word, bit) = (usize::from(s) / 64, s % 64);
            match words.get_mut(word) {
                Some(w) => *w |= 1 << bit,
                None => beyond.push(s),
            }
        }
        beyond.sort_unstable();
        beyond.dedup();
        Self {
            words,
            beyond: u32::try_from(beyond.len()).expect("fewer than 2^32 syscalls"),
        }
    }

    fn len(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum::<u32>() + self.beyond
    }

    /// One minus the Jaccard similarity (0 for two empty sets).
    fn distance(&self, len: u32, other: &SymSet, other_len: u32) -> f64 {
        let common: u32 = self
            .words
            .iter()
            .zip(other.words.iter())
            .map(|(a, b)| (a & b).count_ones())
            .sum();
        let union = len + other_len - common;
        if union == 0 {
            return 0.0;
        }
        1.0 - f64::from(common) / f64::from(union)
    }
}

/// A trained set-then-cover detector.
#[derive(Debug, Clone)]
pub struct SetsThenCover {
    /// The distinct syscall sets of the training sequences, with their sizes.
    sets: Vec<(SymSet, u32)>,
    /// Bit-set words: one bit per syscall up to the largest seen in training.
    width: usize,
    cover: Cover,
    /// Set distances above this rank in the upper tier; infinite until calibrated.
    cut: f64,
}

impl SetsThenCover {
    /// Learns the training sequences' syscall sets and their substrings.
    pub fn train(training: &[&[Sym]]) -> Self {
        let top = training.iter().flat_map(|t| t.iter()).max().copied();
        let width = top.map_or(0, |s| usize::from(s) / 64 + 1);
        let mut sets: Vec<SymSet> = training.iter().map(|t| SymSet::of(t, width)).collect();
        sets.sort_unstable();
        sets.dedup();
        Self {
            sets: sets
                .into_iter()
                .map(|s| {
                    let len = s.len();
                    (s, len)
                })
                .collect(),
            width,
            cover: Cover::train(training),
            cut: f64::INFINITY,
        }
    }

    /// The distinct syscall sets learned.
    pub fn distinct_sets(&self) -> usize {
        self.sets.len()
    }

    /// One minus the Jaccard similarity of the syscalls in `events` to the nearest training
    /// set (1 when nothing was trained).
    pub fn set_distance(&self, events: &[Sym]) -> f64 {
        let query = SymSet::of(events, self.width);
        let len = query.len();
        self.sets
            .iter()
            .map(|(s, n)| query.distance(len, s, *n))
            .fold(1.0, f64::min)
    }

    /// The sequence covering that orders both tiers.
    pub fn cover(&self) -> &Cover {
        &self.cover
    }

    /// The set distance past which a sequence ranks in the upper tier.
    pub fn cut(&self) -> f64 {
        self.cut
    }
}

impl Detector for SetsThenCover {
    fn name(&self) -> &'static str {
        "sets"
    }

    fn calibrate(&mut self, normal: &[&[Sym]], far: f64) {
        let distances: Vec<f64> = normal.iter().map(|t| self.set_distance(t)).collect();
        self.cut = stats::calibrate(&distances, far).unwrap_or(f64::INFINITY);
    }

    fn score(&self, events: &[Sym]) -> f64 {
        let tier = if self.set_distance(events) > self.cut {
            TIER
        } else {
            0.0
        };
        tier + self.cover.score(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trained(training: &[&[Sym]]) -> SetsThenCover {
        SetsThenCover::train(training)
    }

    #[test]
    fn the_set_distance_is_to_the_nearest_training_set() {
        let d = trained(&[&[1, 2, 3, 1], &[1, 2], &[1, 2]]);
        assert_eq!(d.distinct_sets(), 2);
        assert_eq!(
            d.set_distance(&[3, 2, 1, 1]),
            0.0,
            "order and repeats do not count"
        );
        assert_eq!(d.set_distance(&[1]), 0.5, "{{1}} against {{1, 2}}");
        assert_eq!(
            d.set_distance(&[1, 2, 4]),
            1.0 - 2.0 / 3.0,
            "the nearer {{1, 2}}"
        );
        assert_eq!(d.set_distance(&[7, 8]), 1.0);
        // A syscall above every trained one still counts in the union.
        assert_eq!(d.set_distance(&[1, 2, 3, 900]), 0.25);
        assert_eq!(d.set_distance(&[]), 1.0);
        assert_eq!(trained(&[&[]]).set_distance(&[]), 0.0);
        assert_eq!(trained(&[]).set_distance(&[1]), 1.0);
    }

    #[test]
    fn before_calibration_it_scores_as_cover() {
        let training: [&[Sym]; 2] = [&[1, 2, 3, 4], &[5, 6]];
        let d = trained(&training);
        let cover = Cover::train(&training);
        for events in [&[1, 2, 3, 4][..], &[9, 9], &[4, 5], &[]] {
            assert_eq!(d.score(events), cover.score(events), "{events:?}");
        }
    }

    #[test]
    fn sequences_past_the_calibrated_cut_rank_above_the_rest() {
        let training: [&[Sym]; 3] = [&[1, 2, 3, 4], &[1, 2, 5], &[6, 7]];
        let mut d = trained(&training);
        // Twenty normal sequences: nineteen with a known set, one a little off.
        let mut normal: Vec<&[Sym]> = vec![&[1, 2, 3, 4]; 19];
        normal.push(&[1, 2, 3]);
        d.calibrate(&normal, 0.05);
        assert_eq!(d.cut(), 0.0, "one of twenty may lie above it");
        // A sequence of known syscalls in a never-seen order stays below the cut ...
        let shuffled: &[Sym] = &[4, 3, 2, 1, 4, 3, 2, 1];
        // ... one with a syscall set far from every training set goes above it, however
        // familiar its pieces.
        let odd_set: &[Sym] = &[1, 2, 6, 7];
        assert!(d.cover.score(shuffled) > d.cover.score(odd_set));
        assert!(d.score(odd_set) > d.score(shuffled));
        assert!(d.score(odd_set) > TIER && d.score(shuffled) < TIER);
        let scores: Vec<f64> = normal.iter().map(|t| d.score(t)).collect();
        let threshold = stats::calibrate(&scores, 0.05).unwrap();
        assert!(stats::alarm_rate(&scores, threshold) <= 0.05);
        assert!(d.score(odd_set) > threshold);
    }

    #[test]
    fn no_calibration_traces_leave_the_cut_infinite() {
        let mut d = trained(&[&[1, 2]]);
        d.calibrate(&[], 0.05);
        assert_eq!(d.cut(), f64::INFINITY);
        assert!(d.score(&[7, 8, 9]) < TIER);
    }
}
