//! Incremental, exactly mergeable n-gram counts.

use chaperone_config::MAX_ORDER;
use rustc_hash::FxHashMap;

use super::key::{self, Gram, BOS};
use super::{ModelError, Result};
use crate::syscalls::Sym;

/// The last `order - 1` syscalls of one thread (starting with the start-of-thread marker).
///
/// Sixteen bytes per thread whatever the order: this is all the per-thread state learning needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadContext {
    ctx: Gram,
}

impl ThreadContext {
    /// The context of a thread that has made no syscall yet, for a model of `order`.
    pub fn new(order: usize) -> Self {
        Self {
            ctx: key::truncate(key::lane(BOS), order.saturating_sub(1)),
        }
    }
}

/// Counts of every n-gram of length 1 to `order` seen in the learned threads.
///
/// A thread's first syscall is counted after the start-of-thread marker [`BOS`], so the model
/// also learns how threads begin. `a.merge(&b)` equals learning `a`'s and `b`'s threads in one
/// learner, exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NgramCounts {
    order: usize,
    grams: FxHashMap<Gram, u64>,
    events: u64,
    threads: u64,
}

impl NgramCounts {
    /// An empty learner counting grams of up to `order` syscalls.
    pub fn new(order: usize) -> Result<Self> {
        if !(1..=MAX_ORDER).contains(&order) {
            return Err(ModelError::Order {
                order,
                max: MAX_ORDER,
            });
        }
        Ok(Self {
            order,
            grams: FxHashMap::default(),
            events: 0,
            threads: 0,
        })
    }

    /// The counts so far, leaving this learner empty (same order). Threads begun before go on
    /// counting here from their contexts: `taken.merge(&rest)` equals never having taken.
    pub fn take(&mut self) -> Self {
        Self {
            order: self.order,
            grams: std::mem::take(&mut self.grams),
            events: std::mem::take(&mut self.events),
            threads: std::mem::take(&mut self.threads),
        }
    }

    /// The longest gram counted.
    pub fn order(&self) -> usize {
        self.order
    }

    /// Syscalls learned.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Threads learned.
    pub fn threads(&self) -> u64 {
        self.threads
    }

    /// Distinct grams (of every length) seen.
    pub fn distinct(&self) -> usize {
        self.grams.len()
    }

    /// The count of one gram (0 if never seen).
    pub fn count(&self, gram: Gram) -> u64 {
        self.grams.get(&gram).copied().unwrap_or(0)
    }

    /// Every gram with its count, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (Gram, u64)> + '_ {
        self.grams.iter().map(|(&g, &c)| (g, c))
    }

    /// Starts a new thread: returns its context and counts the thread.
    pub fn begin_thread(&mut self) -> ThreadContext {
        self.threads += 1;
        ThreadContext::new(self.order)
    }

    /// Counts one syscall of a thread; returns how many grams were new (convergence tracking).
    #[inline]
    pub fn observe(&mut self, ctx: &mut ThreadContext, sym: Sym) -> u32 {
        let mut new = 0;
        let sym_lane = key::lane(sym);
        for k in 1..=self.order {
            let c = key::truncate(ctx.ctx, k - 1);
            if key::len(c) < k - 1 {
                break;
            }
            let slot = self.grams.entry((c << 16) | sym_lane).or_insert(0);
            if *slot == 0 {
                new += 1;
            }
            *slot += 1;
        }
        self.events += 1;
        ctx.ctx = key::push(ctx.ctx, sym, self.order - 1);
        new
    }

    /// Learns one whole thread; returns how many grams were new.
    pub fn learn_sequence(&mut self, syms: &[Sym]) -> u64 {
        let ctx = self.begin_thread();
        self.learn_from(ctx, syms)
    }

    /// Learns the rest of a thread whose earlier syscalls are not known (a piece cut from a
    /// live thread): its first syscall is counted with no context, not after [`BOS`], and no
    /// thread is counted. Returns how many grams were new.
    pub fn learn_continuation(&mut self, syms: &[Sym]) -> u64 {
        self.learn_from(ThreadContext { ctx: 0 }, syms)
    }

    fn learn_from(&mut self, mut ctx: ThreadContext, syms: &[Sym]) -> u64 {
        syms.iter()
            .map(|&s| u64::from(self.observe(&mut ctx, s)))
            .sum()
    }

    /// Adds another learner's counts to these. Sums saturate: learning cannot come near
    /// `u64::MAX`, but a damaged store's counts can, and a wrapped count written back would
    /// turn a huge count into a tiny one.
    pub fn merge(&mut self, other: &Self) -> Result<()> {
        if other.order != self.order {
            return Err(ModelError::MergeOrder {
                ours: self.order,
                theirs: other.order,
            });
        }
        self.grams.reserve(other.grams.len());
        for (&g, &c) in &other.grams {
            let count = self.grams.entry(g).or_insert(0);
            *count = count.saturating_add(c);
        }
        self.events = self.events.saturating_add(other.events);
        self.threads = self.threads.saturating_add(other.threads);
        Ok(())
    }

    /// Each syscall seen with how often (the unigram counts), in no particular order.
    pub fn unigrams(&self) -> impl Iterator<Item = (Sym, u64)> + '_ {
        self.grams
            .iter()
            .filter(|&(&g, _)| key::len(g) == 1)
            .filter_map(|(&g, &c)| Some((key::last(g)?, c)))
    }

    /// The distinct syscalls seen (unigrams), sorted.
    pub fn alphabet(&self) -> Vec<Sym> {
        let mut syms: Vec<Sym> = self.unigrams().map(|(s, _)| s).collect();
        syms.sort_unstable();
        syms
    }

    /// Rebuilds a learner from its parts (used by the codec).
    pub(crate) fn from_parts(
        order: usize,
        grams: FxHashMap<Gram, u64>,
        events: u64,
        threads: u64,
    ) -> Result<Self> {
        let mut counts = Self::new(order)?;
        counts.grams = grams;
        counts.events = events;
        counts.threads = threads;
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::key::pack;

    #[test]
    fn merging_counts_near_the_limit_saturates() {
        let mut huge = NgramCounts::new(2).unwrap();
        huge.learn_sequence(&[1, 2]);
        for count in huge.grams.values_mut() {
            *count = u64::MAX - 1;
        }
        (huge.events, huge.threads) = (u64::MAX, u64::MAX);
        let before: Vec<Gram> = huge.grams.keys().copied().collect();
        let mut more = NgramCounts::new(2).unwrap();
        more.learn_sequence(&[1, 2, 1, 2]);
        huge.merge(&more).unwrap();
        for g in before {
            assert_eq!(huge.grams[&g], u64::MAX, "{g:x}: {:?}", huge.grams);
        }
        assert_eq!((huge.events, huge.threads), (u64::MAX, u64::MAX));
    }

    #[test]
    fn a_continuation_learns_no_thread_start() {
        let mut whole = NgramCounts::new(3).unwrap();
        whole.learn_sequence(&[1, 2, 3, 4]);
        let mut cut = NgramCounts::new(3).unwrap();
        cut.learn_sequence(&[1, 2]);
        assert_eq!(
            cut.learn_continuation(&[3, 4]),
            3,
            "[3], [4] and [3, 4] are new"
        );
        assert_eq!((cut.threads(), cut.events()), (1, 4));
        assert_eq!(cut.count(pack(&[BOS, 3])), 0);
        // Only the grams across the cut are missing; nothing is counted that the whole lacks.
        let missing: Vec<Vec<Sym>> = whole
            .iter()
            .filter(|&(g, c)| cut.count(g) != c)
            .map(|(g, _)| key::symbols(g))
            .collect();
        assert_eq!(missing.len(), 3, "{missing:?}");
        assert!(missing.iter().all(|g| g.windows(2).any(|w| w == [2, 3])));
        assert!(cut.iter().all(|(g, c)| whole.count(g) >= c));
    }

    #[test]
    fn counts_every_length_with_start_marker() {
        let mut m = NgramCounts::new(3).unwrap();
        assert_eq!(m.learn_sequence(&[1, 2, 1, 2]), 8);
        assert_eq!(m.count(pack(&[1])), 2);
        assert_eq!(m.count(pack(&[BOS, 1])), 1);
        assert_eq!(m.count(pack(&[1, 2])), 2);
        assert_eq!(m.count(pack(&[BOS, 1, 2])), 1);
        assert_eq!(
            m.count(pack(&[BOS, 1, 2, 1])),
            0,
            "order 3 counts three symbols at most"
        );
        assert_eq!(m.count(pack(&[1, 2, 1])), 1);
        assert_eq!(m.count(pack(&[2, 1, 2])), 1);
        assert_eq!(m.events(), 4);
        assert_eq!(m.threads(), 1);
        assert_eq!(m.alphabet(), vec![1, 2]);
    }

    #[test]
    fn order_one_counts_unigrams_only() {
        let mut m = NgramCounts::new(1).unwrap();
        m.learn_sequence(&[5, 5, 6]);
        assert_eq!(m.distinct(), 2);
        assert_eq!(m.count(pack(&[5])), 2);
    }

    #[test]
    fn bad_order_is_an_error() {
        assert!(matches!(NgramCounts::new(0), Err(ModelError::Order { .. })));
        assert!(matches!(NgramCounts::new(9), Err(ModelError::Order { .. })));
        let mut a = NgramCounts::new(2).unwrap();
        let b = NgramCounts::new(3).unwrap();
        assert!(matches!(a.merge(&b), Err(ModelError::MergeOrder { .. })));
    }
}
