//! Sequence covering: how many pieces of training behaviour a sequence is made of.
//!
//! A sequence is cut into the fewest pieces that each occur, contiguously, somewhere in one
//! training sequence; a syscall never seen in training is a piece of its own. The score counts
//! the sequence's two ends as well, as the n-gram's start-of-thread marker does: a first piece
//! that is not the start of some training sequence, or a last one that is not an end, costs one
//! piece more. The score is pieces per syscall: 1/len for a sequence seen whole, (len + 2)/len
//! for one that shares nothing with training. Unlike a fixed-order n-gram it rewards long stretches
//! of known behaviour, however long, and unlike STIDE it does not count one novel junction once
//! per window that spans it.
//!
//! The substrings of the training sequences are held in a suffix automaton (the smallest
//! automaton that accepts exactly them; at most 2n states for n training syscalls). Cutting
//! greedily, each piece as long as it can be, gives the fewest pieces because every substring of
//! a piece is a piece too; scoring follows one transition per syscall, with no look-ahead, and so
//! needs one automaton state per thread and no allocation.

use super::Detector;
use crate::syscalls::Sym;

/// Marks where training sequences start and end. Never a syscall: a `BOUNDARY` inside a scored
/// sequence matches nothing, so no piece spans two training sequences.
const BOUNDARY: Sym = Sym::MAX;
const ROOT: u32 = 0;
const NONE: u32 = u32::MAX;

/// A trained sequence-covering detector.
#[derive(Debug, Clone)]
pub struct Cover {
    /// `edges[offsets[s]..offsets[s + 1]]` are state `s`'s transitions, sorted by syscall.
    offsets: Vec<u32>,
    edges: Vec<(Sym, u32)>,
}

/// A state of the automaton while it is being built.
#[derive(Debug, Clone)]
struct Node {
    len: u32,
    link: u32,
    next: Vec<(Sym, u32)>,
}

impl Node {
    fn get(&self, sym: Sym) -> Option<u32> {
        self.next
            .iter()
            .find(|&&(s, _)| s == sym)
            .map(|&(_, to)| to)
    }

    fn set(&mut self, sym: Sym, to: u32) {
        match self.next.iter_mut().find(|(s, _)| *s == sym) {
            Some(edge) => edge.1 = to,
            None => self.next.push((sym, to)),
        }
    }
}

/// The online suffix-automaton construction (Blumer et al.), one syscall at a time.
struct Builder {
    nodes: Vec<Node>,
    last: u32,
}

impl Builder {
    fn new() -> Self {
        let root = Node {
            len: 0,
            link: NONE,
            next: Vec::new(),
        };
        Self {
            nodes: vec![root],
            last: ROOT,
        }
    }

    fn push(&mut self, node: Node) -> u32 {
        let id =
            u32::try_from(self.nodes.len()).expect("a suffix automaton of under 2^31 syscalls");
        self.nodes.push(node);
        id
    }

    fn extend(&mut self, sym: Sym) {
        let cur = self.push(Node {
            len: self.nodes[self.last as usize].len + 1,
            link: ROOT,
            next: Vec::new(),
        });
        // Walk the suffix links from the previous end, giving each state without a transition on
        // `sym` one to the new state, up to the first that has one.
        let mut p = self.last;
        let found = loop {
            if p == NONE {
                break None;
            }
            match self.nodes[p as usize].get(sym) {
                Some(q) => break Some(q),
                None => {
                    self.nodes[p as usize].set(sym, cur);
                    p = self.nodes[p as usize].link;
                }
            }
        };
        if let Some(q) = found {
            if self.nodes[p as usize].len + 1 == self.nodes[q as usize].len {
                self.nodes[cur as usize].link = q;
            } else {
                // q also stands for longer substrings: split off the ones ending here.
                let clone = self.push(Node {
                    len: self.nodes[p as usize].len + 1,
                    ..self.nodes[q as usize].clone()
                });
                while p != NONE && self.nodes[p as usize].get(sym) == Some(q) {
                    self.nodes[p as usize].set(sym, clone);
                    p = self.nodes[p as usize].link;
                }
                self.nodes[q as usize].link = clone;
                self.nodes[cur as usize].link = clone;
            }
        }
        self.last = cur;
    }

    fn finish(self) -> Cover {
        let mut offsets = Vec::with_capacity(self.nodes.len() + 1);
        let mut edges = Vec::new();
        offsets.push(0);
        for mut node in self.nodes {
            node.next.sort_unstable_by_key(|&(s, _)| s);
            edges.extend(node.next);
            offsets.push(u32::try_from(edges.len()).expect("under 2^32 transitions"));
        }
        Cover { offsets, edges }
    }
}

impl Cover {
    /// Learns every substring of the training sequences.
    pub fn train(training: &[&[Sym]]) -> Self {
        let mut b = Builder::new();
        // Every sequence sits between two boundaries, so its start and its end are substrings.
        b.extend(BOUNDARY);
        for t in training {
            for &sym in t.iter().filter(|&&s| s != BOUNDARY) {
                b.extend(sym);
            }
            b.extend(BOUNDARY);
        }
        b.finish()
    }

    fn step(&self, state: u32, sym: Sym) -> Option<u32> {
        let s = state as usize;
        let out = &self.edges[self.offsets[s] as usize..self.offsets[s + 1] as usize];
        out.binary_search_by_key(&sym, |&(s, _)| s)
            .ok()
            .map(|i| out[i].1)
    }

    /// The fewest pieces of training sequences (or single unseen syscalls) `events` is made of.
    pub fn pieces(&self, events: &[Sym]) -> usize {
        self.walk(None, events).0
    }

    /// The fewest pieces of `events` with its two ends counted: the start of a training
    /// sequence, then `events`, then the end of one, so a sequence seen whole is one piece and
    /// one cut out of a longer one is three.
    pub fn anchored_pieces(&self, events: &[Sym]) -> usize {
        let start = self
            .step(ROOT, BOUNDARY)
            .expect("trained with a boundary first");
        let (pieces, last) = self.walk(Some(start), events);
        let ends = last.and_then(|s| self.step(s, BOUNDARY)).is_some();
        // The piece holding the start boundary, then one for the end boundary unless the last
        // piece is the end of a training sequence.
        1 + pieces + usize::from(!ends)
    }

    /// Cuts `events` greedily, the current piece starting at `state` (None: no piece open);
    /// returns the pieces started and the state the last one reached (None after an unseen
    /// syscall).
    fn walk(&self, mut state: Option<u32>, events: &[Sym]) -> (usize, Option<u32>) {
        let mut pieces = 0;
        for &sym in events {
            let step = |s| {
                if sym == BOUNDARY {
                    None
                } else {
                    self.step(s, sym)
                }
            };
            if let Some(next) = state.and_then(step) {
                state = Some(next);
                continue;
            }
            pieces += 1;
            state = step(ROOT);
        }
        (pieces, state)
    }

    /// Number of automaton states.
    pub fn states(&self) -> usize {
        self.offsets.len() - 1
    }
}

impl Detector for Cover {
    fn name(&self) -> &'static str {
        "cover"
    }

    fn score(&self, events: &[Sym]) -> f64 {
        if events.is_empty() {
            return 0.0;
        }
        self.anchored_pieces(events) as f64 / events.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Whether `piece` occurs contiguously in one of `training`.
    fn occurs(training: &[Vec<Sym>], piece: &[Sym]) -> bool {
        training
            .iter()
            .any(|t| t.windows(piece.len()).any(|w| w == piece))
    }

    /// The fewest pieces, by dynamic programming over every cut.
    fn fewest(training: &[Vec<Sym>], events: &[Sym]) -> usize {
        let n = events.len();
        let mut best = vec![usize::MAX; n + 1];
        best[0] = 0;
        for end in 1..=n {
            for start in 0..end {
                let piece = &events[start..end];
                if (piece.len() == 1 || occurs(training, piece)) && best[start] != usize::MAX {
                    best[end] = best[end].min(best[start] + 1);
                }
            }
        }
        best[n]
    }

    fn cover_of(training: &[Vec<Sym>]) -> Cover {
        let refs: Vec<&[Sym]> = training.iter().map(Vec::as_slice).collect();
        Cover::train(&refs)
    }

    #[test]
    fn a_sequence_is_cut_into_the_fewest_known_pieces() {
        let c = cover_of(&[vec![1, 2, 3, 4], vec![5, 6]]);
        assert_eq!(c.pieces(&[1, 2, 3, 4]), 1);
        assert_eq!(c.pieces(&[2, 3]), 1, "any substring is one piece");
        assert_eq!(c.pieces(&[3, 4, 1, 2]), 2);
        assert_eq!(
            c.pieces(&[1, 9, 2]),
            3,
            "an unseen syscall is a piece of its own"
        );
        assert_eq!(
            c.pieces(&[4, 5]),
            2,
            "no piece spans two training sequences"
        );
        assert_eq!(c.pieces(&[]), 0);
    }

    #[test]
    fn a_scored_sequence_pays_for_ends_that_no_training_sequence_has() {
        let c = cover_of(&[vec![1, 2, 3, 4], vec![5, 6]]);
        assert_eq!(c.anchored_pieces(&[1, 2, 3, 4]), 1, "seen whole");
        assert_eq!(c.anchored_pieces(&[1, 2]), 2, "a start, not an end");
        assert_eq!(c.anchored_pieces(&[3, 4]), 2, "an end, not a start");
        assert_eq!(c.anchored_pieces(&[2, 3]), 3, "cut out of the middle");
        assert_eq!(c.anchored_pieces(&[4, 5]), 4, "an end, then a start");
        assert_eq!(c.anchored_pieces(&[]), 2, "no training sequence is empty");
        assert_eq!(c.score(&[1, 2, 3, 4]), 0.25);
        assert_eq!(c.score(&[9, 9]), 2.0, "two unseen syscalls and both ends");
        assert_eq!(c.score(&[]), 0.0);
    }

    #[test]
    fn the_automaton_stays_within_two_states_per_syscall() {
        let training: Vec<Vec<Sym>> = (0..50)
            .map(|i| (0..40).map(|j| (i * j) % 7).collect())
            .collect();
        let total: usize = 1 + training.iter().map(|t| t.len() + 1).sum::<usize>();
        assert!(cover_of(&training).states() <= 2 * total);
    }

    proptest! {
        #[test]
        fn greedy_pieces_are_the_fewest(
            training in prop::collection::vec(prop::collection::vec(0u16..4, 0..12), 0..4),
            events in prop::collection::vec(0u16..5, 0..16),
        ) {
            let c = cover_of(&training);
            prop_assert_eq!(c.pieces(&events), fewest(&training, &events));
            // Anchored: pieces of the boundary-separated training sequences, around `events`.
            let mut joined = vec![BOUNDARY];
            for t in &training {
                joined.extend(t);
                joined.push(BOUNDARY);
            }
            let mut framed = vec![BOUNDARY];
            framed.extend(&events);
            framed.push(BOUNDARY);
            prop_assert_eq!(c.anchored_pieces(&events), fewest(&[joined], &framed));
        }
    }
}
