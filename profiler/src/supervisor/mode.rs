//! What the supervisor does with each event: learn it, or score it.

use std::sync::Arc;

use super::respond::Deviation;
use super::{Result, SupervisorError};
use crate::detector::stats;
use crate::model::{NgramCounts, NgramScorer, ThreadContext};
use crate::syscalls::{Arch, Sym};

/// One traced syscall, decoded. Built from the notification only (never from process memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Notification cookie.
    pub id: u64,
    /// Thread id (supervisor's pid namespace).
    pub tid: u32,
    /// The ABI of the call, if chaperone has its table.
    pub arch: Option<Arch>,
    /// The raw syscall number.
    pub nr: i32,
    /// The syscall in chaperone's alphabet (`None`: unknown number or ABI).
    pub sym: Option<Sym>,
    /// Raw arguments (scalars only may be used).
    pub args: [u64; 6],
}

/// A per-event policy with per-thread state.
pub trait Mode {
    /// Per-thread state: small and `Copy`, kept in a fixed table.
    type Thread: Copy;
    /// The state of a thread the supervisor has not seen before.
    fn begin_thread(&mut self) -> Self::Thread;
    /// Any valid state, without counting a thread (fills the table's empty slots).
    fn empty_thread(&self) -> Self::Thread;
    /// Handles one event; `Some` when it deviates from the profile.
    fn on_event(&mut self, thread: &mut Self::Thread, event: &Event) -> Option<Deviation>;
}

/// Learn mode: counts every thread's n-grams.
#[derive(Debug, Clone)]
pub struct Learn {
    counts: NgramCounts,
    unknown: u64,
}

impl Learn {
    /// A learner adding to `counts` (for instance a fresh `NgramCounts::new(order)`).
    pub fn new(counts: NgramCounts) -> Self {
        Self { counts, unknown: 0 }
    }

    /// What has been learned.
    pub fn counts(&self) -> &NgramCounts {
        &self.counts
    }

    /// The learned counts, to merge into the image's profile.
    pub fn into_counts(self) -> NgramCounts {
        self.counts
    }

    /// Events whose syscall number or ABI had no symbol (not learned).
    pub fn unknown(&self) -> u64 {
        self.unknown
    }
}

impl Mode for Learn {
    type Thread = ThreadContext;

    fn begin_thread(&mut self) -> ThreadContext {
        self.counts.begin_thread()
    }

    fn empty_thread(&self) -> ThreadContext {
        ThreadContext::new(self.counts.order())
    }

    #[inline]
    fn on_event(&mut self, thread: &mut ThreadContext, event: &Event) -> Option<Deviation> {
        match event.sym {
            Some(sym) => {
                self.counts.observe(thread, sym);
            }
            None => self.unknown += 1,
        }
        None
    }
}

/// Events in the detection window.
pub const WINDOW: usize = WINDOW_U8 as usize;
const WINDOW_U8: u8 = 32;

/// The last [`WINDOW`] surprisals of a thread in a ring buffer (no allocation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    ring: [f32; WINDOW],
    pos: u8,
    len: u8,
    sum: f32,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            ring: [0.0; WINDOW],
            pos: 0,
            len: 0,
            sum: 0.0,
        }
    }
}

impl Window {
    /// Adds one surprisal; returns the window score: the sum over the last [`WINDOW`] events
    /// divided by [`WINDOW`] (a thread with fewer events counts the missing ones as 0, so a
    /// short thread alarms only when its surprisal mass alone would fill a window).
    #[inline]
    pub fn push(&mut self, surprisal: f32) -> f32 {
        let pos = usize::from(self.pos);
        self.sum += surprisal - self.ring[pos];
        self.ring[pos] = surprisal;
        let next = (pos + 1) % WINDOW;
        if next == 0 {
            // Once per lap, recompute the sum exactly so float error cannot build up.
            self.sum = self.ring.iter().sum();
        }
        // Both fit in u8: WINDOW is 32.
        self.pos = u8::try_from(next).unwrap_or(0);
        self.len = self.len.saturating_add(1).min(WINDOW_U8);
        self.score()
    }

    /// The current score (mean surprisal over the window, in nats).
    #[inline]
    pub fn score(&self) -> f32 {
        self.sum / WINDOW as f32
    }

    /// Events in the window.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Per-thread state of detection: the scorer's automaton state and the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectThread {
    state: u32,
    window: Window,
}

/// Detect mode: scores each event and flags never-learned syscalls and windows whose mean
/// surprisal exceeds a calibrated threshold.
#[derive(Debug, Clone)]
pub struct Detect {
    scorer: Arc<NgramScorer>,
    threshold: f32,
}

impl Detect {
    /// A detector with a window threshold (mean nats per event).
    pub fn new(scorer: Arc<NgramScorer>, threshold: f32) -> Result<Self> {
        if !(threshold.is_finite() && threshold > 0.0) {
            return Err(SupervisorError::Config {
                reason: "the window threshold must be a positive number",
            });
        }
        Ok(Self { scorer, threshold })
    }

    /// Calibrates the threshold on held-back normal threads to a per-thread false-alarm rate
    /// `far`: a thread alarms when its highest window score passes the threshold, so the
    /// threshold is the `1 - far` quantile of those maxima.
    pub fn calibrate(scorer: Arc<NgramScorer>, normal: &[&[Sym]], far: f64) -> Result<Self> {
        let maxima: Vec<f64> = normal
            .iter()
            .map(|seq| {
                let mut state = scorer.start();
                let mut window = Window::default();
                seq.iter()
                    .map(|&s| f64::from(window.push(scorer.step(&mut state, s).surprisal)))
                    .fold(0.0, f64::max)
            })
            .collect();
        let threshold = stats::calibrate(&maxima, far).ok_or(SupervisorError::Config {
            reason: "calibration needs at least one normal thread",
        })?;
        // A threshold of 0 would alarm on everything; keep a floor of one millinat.
        #[allow(clippy::cast_possible_truncation)] // nats per event are small numbers
        Self::new(scorer, (threshold as f32).max(1e-3))
    }

    /// The window threshold.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }
}

impl Mode for Detect {
    type Thread = DetectThread;

    fn begin_thread(&mut self) -> DetectThread {
        DetectThread {
            state: self.scorer.start(),
            window: Window::default(),
        }
    }

    fn empty_thread(&self) -> DetectThread {
        DetectThread {
            state: self.scorer.start(),
            window: Window::default(),
        }
    }

    #[inline]
    fn on_event(&mut self, thread: &mut DetectThread, event: &Event) -> Option<Deviation> {
        let (novel, surprisal) = match event.sym {
            Some(sym) => {
                let step = self.scorer.step(&mut thread.state, sym);
                (step.novel, step.surprisal)
            }
            None => {
                thread.state = self.scorer.start();
                (true, self.scorer.unseen_surprisal())
            }
        };
        let score = thread.window.push(surprisal);
        if !novel && score <= self.threshold {
            return None;
        }
        // Report once per window: a deviation that is let through starts a fresh window.
        thread.window = Window::default();
        Some(Deviation {
            tid: event.tid,
            arch: event.arch,
            nr: event.nr,
            sym: event.sym,
            args: event.args,
            novel,
            score,
            threshold: self.threshold,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Smoothing;

    #[test]
    fn window_mean_is_exact_over_laps() {
        let mut w = Window::default();
        for i in 0..(WINDOW * 5 + 3) {
            w.push((i % 7) as f32 * 0.1);
        }
        let want: f32 = (WINDOW * 4 + 3..WINDOW * 5 + 3)
            .map(|i| (i % 7) as f32 * 0.1)
            .sum::<f32>()
            / WINDOW as f32;
        assert!((w.score() - want).abs() < 1e-5);
        assert_eq!(w.len(), WINDOW);
    }

    fn detect() -> Detect {
        let mut counts = NgramCounts::new(3).unwrap();
        for _ in 0..50 {
            counts.learn_sequence(&[1, 2, 3, 1, 2, 3, 1, 2, 3]);
        }
        let scorer = Arc::new(NgramScorer::new(&counts, Smoothing::default()).unwrap());
        // Calibration threads as long as the window at least, as in real use.
        let normal: Vec<Vec<Sym>> = (0..20).map(|_| [1, 2, 3].repeat(20)).collect();
        let refs: Vec<&[Sym]> = normal.iter().map(Vec::as_slice).collect();
        Detect::calibrate(scorer, &refs, 0.05).unwrap()
    }

    fn event(sym: Option<Sym>) -> Event {
        Event {
            id: 1,
            tid: 7,
            arch: Some(Arch::X86_64),
            nr: 0,
            sym,
            args: [0; 6],
        }
    }

    #[test]
    fn normal_passes_novel_and_odd_deviate() {
        let mut d = detect();
        let mut t = d.begin_thread();
        for _ in 0..10 {
            for s in [1, 2, 3] {
                assert!(d.on_event(&mut t, &event(Some(s))).is_none());
            }
        }
        let dev = d.on_event(&mut t, &event(Some(9))).expect("never learned");
        assert!(dev.novel);
        assert!(d.on_event(&mut t, &event(None)).expect("unknown").novel);
        let mut t = d.begin_thread();
        let odd = (0..WINDOW)
            .filter_map(|i| d.on_event(&mut t, &event(Some([3, 3, 2, 2, 1, 1][i % 6]))))
            .next()
            .expect("a scrambled order deviates");
        assert!(!odd.novel && odd.score > odd.threshold);
    }
}
