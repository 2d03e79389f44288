//! The compiled n-gram scorer: a back-off automaton over the learned contexts.
//!
//! Probabilities are the hierarchical Dirichlet (interpolated) estimate
//!
//! ```text
//! P(w | c) = (n(c, w) + a(c) * P(w | c')) / (n(c) + a(c)),   a(c) = alpha + beta * types(c)
//! ```
//!
//! where `c'` is `c` without its oldest syscall and the base of the recursion is uniform over the
//! learned alphabet plus one "never seen" symbol. The prior `Dir(a(c) * P(. | c'))` is a
//! Dirichlet whose mean is the shorter context's prediction; `beta > 0` gives Witten-Bell-like
//! smoothing. For `w` never seen after `c`, `P(w | c)` is the back-off weight `a / (n + a)` times
//! `P(w | c')`, so scoring walks at most `order` nodes and usually one.
//!
//! A state is the longest learned context that is a suffix of the thread's history: one `u32`.

use serde::{Deserialize, Serialize};

use super::key::{self, Gram, BOS};
use super::{ModelError, NgramCounts, Result};
use crate::syscalls::Sym;

/// Smoothing strength: the Dirichlet concentration is `alpha + beta * types(context)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Smoothing {
    /// Constant part of the concentration (> 0 unless `beta > 0`).
    pub alpha: f64,
    /// Part proportional to the number of distinct syscalls seen after the context.
    pub beta: f64,
}

/// The default smoothing: chosen with the default order (8) on normal data only, as the lowest
/// held-out surprisal of ADFA-LD's calibration traces (`examples/select_smoothing.rs`).
impl Default for Smoothing {
    fn default() -> Self {
        Self {
            alpha: 100.0,
            beta: 0.0,
        }
    }
}

impl Smoothing {
    fn validate(self) -> Result<()> {
        if !(self.alpha.is_finite() && self.beta.is_finite()) {
            return Err(ModelError::Smoothing {
                reason: "alpha and beta must be finite",
            });
        }
        if self.alpha < 0.0 || self.beta < 0.0 || self.alpha + self.beta <= 0.0 {
            return Err(ModelError::Smoothing {
                reason: "alpha and beta must be non-negative and not both zero",
            });
        }
        Ok(())
    }
}

/// The result of scoring one syscall.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// `-ln P(syscall | history)`, in nats.
    pub surprisal: f32,
    /// The syscall was never seen while learning.
    pub novel: bool,
}

/// A compiled, immutable scorer built from [`NgramCounts`].
#[derive(Debug, Clone)]
pub struct NgramScorer {
    order: usize,
    /// Per node: `-ln(a / (n + a))`, the cost of backing off to the parent.
    backoff: Vec<f32>,
    /// Per node: the node of the context one syscall shorter (root: itself).
    parent: Vec<u32>,
    /// Per node: its transitions are `first[i]..first[i + 1]`.
    first: Vec<u32>,
    /// Per transition, sorted by symbol within a node.
    sym: Vec<Sym>,
    /// Per transition: the state after it.
    next: Vec<u32>,
    /// Per transition: `-ln P(sym | node)`.
    cost: Vec<f32>,
    /// Surprisal of a syscall never seen while learning.
    unseen: f32,
    start: u32,
}

const ROOT: u32 = 0;
/// No node (a transition whose gram is not a context).
const NONE: u32 = u32::MAX;

impl NgramScorer {
    /// Compiles counts with the given smoothing.
    ///
    /// The grams are sorted once. A packed gram's value orders grams by length, then by context,
    /// then by newest syscall, so each context's transitions come out contiguous and sorted by
    /// syscall, the contexts come out in node order (shorter first, so parents first), and a
    /// transition's gram is itself the context it leads to when that is a context at all. Learned
    /// counts hold every gram's suffix, so a node's back-off parent and a transition's next state
    /// are read off the parent's transition on the same syscall (as suffix links are found in an
    /// Aho-Corasick automaton): no lookup by key. Counts without that shape, which learning never
    /// makes and `codec::decode` refuses, fall back to a binary search over the contexts.
    pub fn new(counts: &NgramCounts, smoothing: Smoothing) -> Result<Self> {
        smoothing.validate()?;
        let order = counts.order();
        let mut grams: Vec<(Gram, u64)> = counts
            .iter()
            .filter(|&(g, _)| key::last(g).is_some())
            .collect();
        grams.sort_unstable_by_key(|&(g, _)| g);
        let transitions = grams.len();

        // Nodes: the root (the empty context), then every distinct context in ascending order.
        let mut contexts: Vec<Gram> = vec![0];
        let mut first: Vec<u32> = vec![0];
        for (t, &(g, _)) in grams.iter().enumerate() {
            let c = key::context(g);
            if contexts.last() != Some(&c) {
                contexts.push(c);
                first.push(index(t));
            }
        }
        first.push(index(transitions));
        let nodes = contexts.len();

        // One merge of the two sorted lists: the node each transition's gram is (if a context),
        // and each such node's trie parent (the node that transition leaves).
        let mut child = vec![NONE; transitions];
        let mut trie_parent = vec![NONE; nodes];
        let mut j = 1;
        for i in 0..nodes {
            for t in span(&first, i) {
                let g = grams[t].0;
                while j < nodes && contexts[j] < g {
                    j += 1;
                }
                if j < nodes && contexts[j] == g {
                    child[t] = index(j);
                    trie_parent[j] = index(i);
                }
            }
        }

        let mut s = Self {
            order,
            backoff: Vec::new(),
            parent: Vec::with_capacity(nodes),
            first,
            sym: grams.iter().filter_map(|&(g, _)| key::last(g)).collect(),
            next: vec![ROOT; transitions],
            cost: Vec::new(),
            unseen: 0.0,
            start: ROOT,
        };
        let alphabet = span(&s.first, 0).len();
        let base = -(1.0 / (alphabet as f64 + 1.0)).ln();
        let mut cost64: Vec<f64> = vec![0.0; transitions];
        let mut backoff64: Vec<f64> = Vec::with_capacity(nodes);
        for (i, &ctx) in contexts.iter().enumerate() {
            let parent = if key::len(ctx) <= 1 {
                ROOT
            } else {
                s.suffix_node(&contexts, &child, &trie_parent, i)
            };
            s.parent.push(parent);
            // Only when the parent is the context one syscall shorter (always, in learned
            // counts) are its transitions the ones this node's back off to.
            let exact = i == 0 || contexts[parent as usize] == key::suffix(ctx);
            let range = span(&s.first, i);
            let total: u64 = grams[range.clone()].iter().map(|&(_, c)| c).sum();
            let a = smoothing.alpha + smoothing.beta * range.len() as f64;
            let denom = total as f64 + a;
            for t in range {
                let sym = s.sym[t];
                let (lower, shorter) = if i == 0 {
                    (base, ROOT)
                } else if let Some(u) = s.find(parent, sym).filter(|_| exact) {
                    (cost64[u], s.next[u])
                } else {
                    (
                        s.cost_from(parent, sym, &cost64, &backoff64, base),
                        longest_context(&contexts, key::push(ctx, sym, order - 1)),
                    )
                };
                cost64[t] = -((grams[t].1 as f64 + a * (-lower).exp()) / denom).ln();
                // A transition whose gram is a context leads there; any other where the same
                // syscall leads from the parent.
                s.next[t] = if child[t] == NONE { shorter } else { child[t] };
            }
            backoff64.push(-(a / denom).ln());
        }
        s.unseen = narrow(backoff64[ROOT as usize] + base);
        s.cost = cost64.into_iter().map(narrow).collect();
        s.backoff = backoff64.into_iter().map(narrow).collect();
        s.start = contexts
            .binary_search(&key::truncate(key::lane(BOS), order - 1))
            .map_or(ROOT, index);
        Ok(s)
    }

    /// The back-off parent of node `i` (a context of two or more syscalls): the node of its
    /// suffix one syscall shorter, found as the parent's transition on the newest syscall from
    /// the back-off parent of its trie parent; the longest suffix that is a node otherwise.
    fn suffix_node(&self, contexts: &[Gram], child: &[u32], trie_parent: &[u32], i: usize) -> u32 {
        let ctx = contexts[i];
        let suffix = key::suffix(ctx);
        let up = trie_parent[i];
        if up != NONE {
            let from = self.parent[up as usize];
            let hit = key::last(ctx)
                .and_then(|sym| self.find(from, sym))
                .map(|u| child[u])
                .filter(|&n| n != NONE && contexts[n as usize] == suffix);
            if let Some(n) = hit {
                return n;
            }
        }
        longest_context(contexts, suffix)
    }

    /// Cost of `sym` from `node` during compilation (f64, over the finished lower nodes).
    fn cost_from(&self, mut node: u32, sym: Sym, cost: &[f64], backoff: &[f64], base: f64) -> f64 {
        let mut acc = 0.0;
        loop {
            if let Some(t) = self.find(node, sym) {
                return acc + cost[t];
            }
            acc += backoff[node as usize];
            if node == ROOT {
                return acc + base;
            }
            node = self.parent[node as usize];
        }
    }

    #[inline]
    fn find(&self, node: u32, sym: Sym) -> Option<usize> {
        let range = span(&self.first, node as usize);
        let lo = range.start;
        let slice = &self.sym[range];
        if slice.len() <= 8 {
            slice.iter().position(|&s| s == sym).map(|p| lo + p)
        } else {
            slice.binary_search(&sym).ok().map(|p| lo + p)
        }
    }

    /// The state of a thread that has made no syscall yet.
    pub fn start(&self) -> u32 {
        self.start
    }

    /// The state of a thread whose earlier syscalls are not known: the empty context.
    pub fn root(&self) -> u32 {
        ROOT
    }

    /// The model order the counts were learned with.
    pub fn order(&self) -> usize {
        self.order
    }

    /// Number of contexts (states) in the automaton.
    pub fn states(&self) -> usize {
        self.parent.len()
    }

    /// Surprisal of a syscall the model never saw, from the empty context (the least it costs).
    pub fn unseen_surprisal(&self) -> f32 {
        self.unseen
    }

    /// Scores one syscall of a thread in `state` and advances the state. No allocation.
    #[inline]
    pub fn step(&self, state: &mut u32, sym: Sym) -> Step {
        let mut node = *state;
        let mut acc = 0.0f32;
        loop {
            if let Some(t) = self.find(node, sym) {
                *state = self.next[t];
                return Step {
                    surprisal: acc + self.cost[t],
                    novel: false,
                };
            }
            if node == ROOT {
                *state = ROOT;
                return Step {
                    surprisal: acc + self.unseen,
                    novel: true,
                };
            }
            acc += self.backoff[node as usize];
            node = self.parent[node as usize];
        }
    }

    /// `-ln P(sym | context)` for a context given oldest first (for explanations and tests).
    pub fn surprisal_after(&self, context: &[Sym], sym: Sym) -> f32 {
        let mut state = self.start;
        for &s in context {
            self.step(&mut state, s);
        }
        self.step(&mut state, sym).surprisal
    }
}

/// Surprisals are stored as `f32`: they are small positive numbers and the scorer adds a few.
#[allow(clippy::cast_possible_truncation)]
fn narrow(x: f64) -> f32 {
    x as f32
}

/// The node of the longest suffix of `gram` that is a context (`contexts` sorted); the empty
/// context (the root) always is one.
fn longest_context(contexts: &[Gram], mut gram: Gram) -> u32 {
    loop {
        if let Ok(n) = contexts.binary_search(&gram) {
            return index(n);
        }
        if gram == 0 {
            return ROOT;
        }
        gram = key::suffix(gram);
    }
}

/// The transitions of node `i`.
#[inline]
fn span(first: &[u32], i: usize) -> std::ops::Range<usize> {
    first[i] as usize..first[i + 1] as usize
}

/// Node and transition indices fit `u32`: a model has far fewer than 4 G grams.
fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustc_hash::FxHashMap;

    fn model(order: usize, seqs: &[&[Sym]]) -> NgramCounts {
        let mut m = NgramCounts::new(order).unwrap();
        for s in seqs {
            m.learn_sequence(s);
        }
        m
    }

    /// Direct (uncompiled) evaluation of the recursive formula, for checking the automaton.
    fn reference(m: &NgramCounts, sm: Smoothing, history: &[Sym], sym: Sym) -> f64 {
        let v = m.alphabet().len() as f64;
        let mut ctx: Vec<Sym> = std::iter::once(BOS)
            .chain(history.iter().copied())
            .collect();
        let keep = ctx.len().saturating_sub(m.order() - 1);
        ctx.drain(..keep);
        fn p(m: &NgramCounts, sm: Smoothing, ctx: &[Sym], sym: Sym, v: f64) -> f64 {
            let lower = if ctx.is_empty() {
                1.0 / (v + 1.0)
            } else {
                p(m, sm, &ctx[1..], sym, v)
            };
            let prefix = key::pack(ctx);
            let followers: Vec<u64> = m
                .iter()
                .filter(|&(g, _)| key::len(g) == ctx.len() + 1 && key::context(g) == prefix)
                .map(|(_, c)| c)
                .collect();
            if followers.is_empty() {
                return lower;
            }
            let total: u64 = followers.iter().sum();
            let a = sm.alpha + sm.beta * followers.len() as f64;
            let mut full = ctx.to_vec();
            full.push(sym);
            (m.count(key::pack(&full)) as f64 + a * lower) / (total as f64 + a)
        }
        -p(m, sm, &ctx, sym, v).ln()
    }

    /// The node a history should leave a thread in: the longest suffix of the start marker and
    /// the history (at most `order - 1` syscalls) that some gram has as its context.
    fn expected_state(m: &NgramCounts, history: &[Sym]) -> u32 {
        let mut contexts: Vec<Gram> = m.iter().map(|(g, _)| key::context(g)).collect();
        contexts.push(0);
        contexts.sort_unstable();
        contexts.dedup();
        let full: Vec<Sym> = std::iter::once(BOS)
            .chain(history.iter().copied())
            .collect();
        let keep = full.len().min(m.order() - 1);
        (0..=keep)
            .rev()
            .find_map(|n| {
                contexts
                    .binary_search(&key::pack(&full[full.len() - n..]))
                    .ok()
            })
            .map_or(ROOT, index)
    }

    proptest::proptest! {
        #[test]
        fn automaton_matches_the_formula_on_any_counts(
            order in 1usize..=8,
            seqs in proptest::collection::vec(proptest::collection::vec(0u16..6, 0..30), 0..6),
            stream in proptest::collection::vec(0u16..8, 0..40),
            alpha in 0.05f64..200.0,
            beta in 0.0f64..3.0,
        ) {
            let seqs: Vec<&[Sym]> = seqs.iter().map(Vec::as_slice).collect();
            let m = model(order, &seqs);
            let sm = Smoothing { alpha, beta };
            let s = NgramScorer::new(&m, sm).unwrap();
            let mut state = s.start();
            proptest::prop_assert_eq!(state, expected_state(&m, &[]));
            for i in 0..stream.len() {
                let got = f64::from(s.step(&mut state, stream[i]).surprisal);
                let want = reference(&m, sm, &stream[..i], stream[i]);
                proptest::prop_assert!((got - want).abs() < 1e-3 * want.max(1.0), "event {}: {} vs {}", i, got, want);
                proptest::prop_assert_eq!(state, expected_state(&m, &stream[..=i]), "event {}", i);
            }
        }
    }

    #[test]
    fn counts_missing_a_suffix_compile_without_panicking() {
        // Learning never makes such counts and codec::decode rejects them; compiled anyway,
        // a context whose suffix is missing backs off to its longest suffix that is one.
        let m = model(3, &[&[1, 2, 3, 1, 2, 3]]);
        let mut grams: FxHashMap<Gram, u64> = m.iter().collect();
        grams.remove(&key::pack(&[2, 3]));
        grams.remove(&key::pack(&[2]));
        let forged = NgramCounts::from_parts(3, grams, m.events(), m.threads()).unwrap();
        let scorer = NgramScorer::new(&forged, Smoothing::default()).unwrap();
        let s = scorer.surprisal_after(&[1, 2], 3);
        assert!(s.is_finite() && s > 0.0, "{s}");
    }

    #[test]
    fn automaton_matches_the_formula() {
        let m = model(3, &[&[1, 2, 3, 1, 2, 4, 1, 2, 3], &[2, 3, 3, 1]]);
        let sm = Smoothing {
            alpha: 0.7,
            beta: 0.3,
        };
        let s = NgramScorer::new(&m, sm).unwrap();
        let stream: [Sym; 9] = [1, 2, 3, 3, 9, 1, 2, 4, 2];
        let mut state = s.start();
        for i in 0..stream.len() {
            let got = s.step(&mut state, stream[i]).surprisal;
            let want = reference(&m, sm, &stream[..i], stream[i]);
            assert!(
                (f64::from(got) - want).abs() < 1e-4,
                "event {i}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn probabilities_sum_to_one() {
        let m = model(4, &[&[1, 2, 3, 1, 2, 4, 1, 5], &[5, 5, 1, 2]]);
        let s = NgramScorer::new(&m, Smoothing::default()).unwrap();
        for history in [&[][..], &[1, 2], &[5, 5, 1], &[9, 9]] {
            let known: f64 = m
                .alphabet()
                .iter()
                .map(|&w| f64::from(-s.surprisal_after(history, w)).exp())
                .sum();
            // The one never-seen symbol class takes the rest.
            let unseen = f64::from(-s.surprisal_after(history, 77)).exp();
            assert!(
                (known + unseen - 1.0).abs() < 1e-4,
                "{history:?}: {known} + {unseen}"
            );
        }
    }

    #[test]
    fn unseen_and_novel() {
        let m = model(2, &[&[1, 2, 1, 2]]);
        let s = NgramScorer::new(&m, Smoothing::default()).unwrap();
        let mut st = s.start();
        assert!(!s.step(&mut st, 1).novel);
        let step = s.step(&mut st, 42);
        assert!(step.novel);
        assert!(
            step.surprisal > s.unseen_surprisal(),
            "backing off from [1] costs more"
        );
        let mut root = 0;
        assert_eq!(s.step(&mut root, 42).surprisal, s.unseen_surprisal());
        let typical = s.surprisal_after(&[1], 2);
        let odd = s.surprisal_after(&[1], 1);
        assert!(typical < odd, "{typical} < {odd}");
    }

    #[test]
    fn bad_smoothing_is_an_error() {
        let m = model(2, &[&[1]]);
        for (alpha, beta) in [(0.0, 0.0), (-1.0, 1.0), (f64::NAN, 1.0)] {
            let err = NgramScorer::new(&m, Smoothing { alpha, beta }).unwrap_err();
            assert!(matches!(err, ModelError::Smoothing { .. }), "{err:?}");
        }
    }

    #[test]
    fn empty_model_scores_uniformly() {
        let m = NgramCounts::new(3).unwrap();
        let s = NgramScorer::new(&m, Smoothing::default()).unwrap();
        let mut st = s.start();
        assert!(s.step(&mut st, 5).novel);
    }
}
