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
    /// Handles one event; `Some` when it deviates from the profile. The supervisor may call
    /// it on a copy of the thread's state and drop the copy, so a mode that returns `Some`
    /// must change nothing but `thread` (a possible restart is dropped unscored: ADR 0021).
    fn on_event(&mut self, thread: &mut Self::Thread, event: &Event) -> Option<Deviation>;
    /// Handles an exact repeat of the call `thread` was last let through with: the program's
    /// own repeat, or the kernel's restart of that call after a signal (ADR 0021). Returns
    /// `true` when it is read as the restart: let through, neither learned nor scored, and
    /// `thread` unchanged. The default reads it as the restart exactly when, read as a repeat,
    /// it would deviate.
    fn on_repeat(&mut self, thread: &mut Self::Thread, event: &Event) -> bool {
        let mut tried = *thread;
        if self.on_event(&mut tried, event).is_some() {
            return true;
        }
        *thread = tried;
        false
    }
    /// A thread ended (it called `exit`/`exit_group`, or the supervisor finished).
    fn end_thread(&mut self, _thread: &Self::Thread) {}
}

/// Learn mode: counts every thread's n-grams and, given the profile as it was before this run
/// (the reference), scores each thread against it. Those scores are held-out data: the highest
/// window score of each thread is kept to calibrate the image's detection threshold.
#[derive(Debug, Clone)]
pub struct Learn {
    counts: NgramCounts,
    unknown: u64,
    reference: Option<Arc<NgramScorer>>,
    maxima: Vec<f32>,
    recording: Recording,
}

/// What a learning run has learned, taken apart for the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Learned {
    /// The n-gram counts.
    pub counts: NgramCounts,
    /// The held-out maxima of the threads that ended (empty without a reference).
    pub maxima: Vec<f32>,
    /// The recorded threads, each its syscalls in order (empty unless recording).
    pub threads: Vec<Piece>,
}

/// One recorded thread's syscalls in order: the whole thread, or, when a flush took what was
/// recorded while the thread was live, the part since then (`continues`). A continuation is
/// learned without the start-of-thread context ([`NgramCounts::learn_continuation`]): until
/// 2026-12-07 every piece was learned as a thread of its own, and the tiered filter's model of
/// a long-running container took the middle of its threads for ways threads begin.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Piece {
    /// The syscalls.
    pub syms: Vec<Sym>,
    /// The thread made syscalls before these that are in an earlier piece (or were not
    /// recorded).
    pub continues: bool,
}

impl Piece {
    /// A whole thread.
    pub fn whole(syms: Vec<Sym>) -> Self {
        Self {
            syms,
            continues: false,
        }
    }

    /// The part of a thread after an earlier piece.
    pub fn continuation(syms: Vec<Sym>) -> Self {
        Self {
            syms,
            continues: true,
        }
    }

    /// Learns it into `counts`, as a thread or a continuation; returns how many grams were new.
    pub fn learn_into(&self, counts: &mut NgramCounts) -> u64 {
        if self.continues {
            counts.learn_continuation(&self.syms)
        } else {
            counts.learn_sequence(&self.syms)
        }
    }

    /// The state its first syscall is scored in by `scorer`: a thread's start, or for a
    /// continuation the empty context.
    pub fn start(&self, scorer: &NgramScorer) -> u32 {
        if self.continues {
            scorer.root()
        } else {
            scorer.start()
        }
    }
}

impl From<Vec<Sym>> for Piece {
    fn from(syms: Vec<Sym>) -> Self {
        Self::whole(syms)
    }
}

/// Events one learning run records, at most (4 bytes each); the run still counts every event
/// after that, it only stops recording.
pub const MAX_RECORDED_EVENTS: usize = 1 << 20;
/// The thread number of a thread that is not recorded.
const UNRECORDED: u16 = u16::MAX;

/// The events of a run in order, each packed as its thread's number (high 16 bits) and its
/// syscall (low 16 bits). The buffer is reserved once up front: the kernel backs it with
/// pages only as events fill it, and no event allocates. Without a buffer nothing is recorded.
#[derive(Debug, Clone, Default)]
struct Recording {
    events: Vec<u32>,
    threads: u16,
    /// Bit `n`: thread number `n` was renumbered, so its piece continues an earlier one
    /// (allocated with the buffer, 8 KiB).
    continued: Vec<u64>,
    /// Bumped by each [`Recording::take_threads`], which numbers threads from 0 again: a live
    /// thread numbered in an earlier epoch takes a new number at its next event. (Until
    /// 2026-12-07 numbers ran on across flushes, and a run stopped recording for good after
    /// 65,535 threads.)
    epoch: u32,
}

impl Recording {
    /// Thread `no`, numbered in `epoch`, as numbered now (renumbered in a new epoch).
    #[inline]
    fn current(&mut self, no: &mut u16, epoch: &mut u32) -> u16 {
        if *epoch != self.epoch {
            *epoch = self.epoch;
            *no = self.new_thread();
            if let Some(word) = self.continued.get_mut(usize::from(*no) / 64) {
                *word |= 1 << (*no % 64);
            }
        }
        *no
    }

    fn new_thread(&mut self) -> u16 {
        if self.events.capacity() == 0 || self.threads == UNRECORDED {
            return UNRECORDED;
        }
        self.threads += 1;
        self.threads - 1
    }

    #[inline]
    fn push(&mut self, thread: u16, sym: Sym) {
        if thread != UNRECORDED && self.events.len() < self.events.capacity() {
            self.events.push((u32::from(thread) << 16) | u32::from(sym));
        }
    }

    fn into_threads(mut self) -> Vec<Piece> {
        self.take_threads()
    }

    /// The threads recorded so far, each its syscalls in order; recording goes on (a live
    /// thread's later syscalls start a new piece, a continuation) in the same buffer.
    fn take_threads(&mut self) -> Vec<Piece> {
        let mut threads: Vec<Piece> = (0..self.threads)
            .map(|n| Piece {
                syms: Vec::new(),
                continues: self
                    .continued
                    .get(usize::from(n) / 64)
                    .is_some_and(|w| w & (1 << (n % 64)) != 0),
            })
            .collect();
        for e in self.events.drain(..) {
            // Both halves were packed from u16 values.
            let (t, sym) = ((e >> 16) as usize, (e & 0xFFFF) as Sym);
            if let Some(thread) = threads.get_mut(t) {
                thread.syms.push(sym);
            }
        }
        threads.retain(|t| !t.syms.is_empty());
        self.continued.fill(0);
        self.threads = 0;
        self.epoch = self.epoch.wrapping_add(1);
        threads
    }
}

/// Per-thread state of learning: the counting context and, with a reference, its scoring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnThread {
    context: ThreadContext,
    no: u16,
    /// The recording epoch `no` was given in.
    epoch: u32,
    state: u32,
    window: Window,
    max: f32,
}

/// Threads whose held-out maxima one run keeps (allocated up front: no allocation per event).
pub const MAX_CALIBRATION_THREADS: usize = 4096;

impl Learn {
    /// A learner adding to `counts` (for instance a fresh `NgramCounts::new(order)`).
    pub fn new(counts: NgramCounts) -> Self {
        Self {
            counts,
            unknown: 0,
            reference: None,
            maxima: Vec::new(),
            recording: Recording::default(),
        }
    }

    /// A learner that also scores every thread against `reference` (the image's profile before
    /// this run) and keeps each thread's highest window score, up to
    /// [`MAX_CALIBRATION_THREADS`] threads.
    pub fn with_reference(counts: NgramCounts, reference: Arc<NgramScorer>) -> Self {
        Self {
            counts,
            unknown: 0,
            reference: Some(reference),
            maxima: Vec::with_capacity(MAX_CALIBRATION_THREADS),
            recording: Recording::default(),
        }
    }

    /// Also records each thread's syscalls (up to [`MAX_RECORDED_EVENTS`] events in all), so
    /// the store can train the tiered filter's projected model from them.
    #[must_use]
    pub fn recording(mut self) -> Self {
        self.recording = Recording {
            events: Vec::with_capacity(MAX_RECORDED_EVENTS),
            continued: vec![0; (usize::from(UNRECORDED) + 1) / 64],
            ..Recording::default()
        };
        self
    }

    /// What has been learned.
    pub fn counts(&self) -> &NgramCounts {
        &self.counts
    }

    /// The learned counts, the held-out maxima of the threads that ended and the recorded
    /// threads.
    pub fn into_parts(self) -> Learned {
        Learned {
            counts: self.counts,
            maxima: self.maxima,
            threads: self.recording.into_threads(),
        }
    }

    /// What has been learned so far, taken out (the store merges it while the run goes on):
    /// the counts, the held-out maxima of the threads that ended, and the recorded threads,
    /// a live thread's syscalls so far as one piece. Learning continues from empty tables;
    /// the live threads keep their contexts, so no n-gram is lost or counted twice.
    pub fn take(&mut self) -> Learned {
        let maxima = Vec::with_capacity(self.maxima.capacity());
        Learned {
            counts: self.counts.take(),
            maxima: std::mem::replace(&mut self.maxima, maxima),
            threads: self.recording.take_threads(),
        }
    }

    /// The learned counts, to merge into the image's profile.
    pub fn into_counts(self) -> NgramCounts {
        self.counts
    }

    /// Events whose syscall number or ABI had no symbol (not learned).
    pub fn unknown(&self) -> u64 {
        self.unknown
    }

    fn thread(&self, context: ThreadContext, no: u16) -> LearnThread {
        LearnThread {
            context,
            no,
            epoch: self.recording.epoch,
            state: self.reference.as_ref().map_or(0, |r| r.start()),
            window: Window::default(),
            max: 0.0,
        }
    }
}

impl Mode for Learn {
    type Thread = LearnThread;

    fn begin_thread(&mut self) -> LearnThread {
        let context = self.counts.begin_thread();
        let no = self.recording.new_thread();
        self.thread(context, no)
    }

    fn empty_thread(&self) -> LearnThread {
        self.thread(ThreadContext::new(self.counts.order()), UNRECORDED)
    }

    #[inline]
    fn on_event(&mut self, thread: &mut LearnThread, event: &Event) -> Option<Deviation> {
        match event.sym {
            Some(sym) => {
                self.counts.observe(&mut thread.context, sym);
                let no = self.recording.current(&mut thread.no, &mut thread.epoch);
                self.recording.push(no, sym);
                if let Some(reference) = &self.reference {
                    let surprisal = reference.step(&mut thread.state, sym).surprisal;
                    thread.max = thread.max.max(thread.window.push(surprisal));
                }
            }
            None => self.unknown += 1,
        }
        None
    }

    fn end_thread(&mut self, thread: &LearnThread) {
        if self.reference.is_some()
            && !thread.window.is_empty()
            && self.maxima.len() < MAX_CALIBRATION_THREADS
        {
            self.maxima.push(thread.max);
        }
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

/// The last [`WINDOW`] syscalls of a thread (for alerts and their explanation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recent {
    ring: [Sym; WINDOW],
    pos: u8,
    len: u8,
}

impl Default for Recent {
    fn default() -> Self {
        Self {
            ring: [0; WINDOW],
            pos: 0,
            len: 0,
        }
    }
}

impl Recent {
    /// Appends one syscall, dropping the oldest once full.
    #[inline]
    pub fn push(&mut self, sym: Sym) {
        let pos = usize::from(self.pos);
        self.ring[pos] = sym;
        self.pos = u8::try_from((pos + 1) % WINDOW).unwrap_or(0);
        self.len = self.len.saturating_add(1).min(WINDOW_U8);
    }

    /// The syscalls, oldest first.
    pub fn to_vec(&self) -> Vec<Sym> {
        let len = usize::from(self.len);
        let start = (usize::from(self.pos) + WINDOW - len) % WINDOW;
        (0..len).map(|i| self.ring[(start + i) % WINDOW]).collect()
    }
}

/// Per-thread state of detection: the scorer's automaton state, the window, the recent calls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectThread {
    state: u32,
    window: Window,
    recent: Recent,
}

/// One transition of a flagged window and how likely the profile found it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    /// The syscall before (`None`: the first of the window).
    pub from: Option<Sym>,
    /// The syscall.
    pub to: Sym,
    /// `P(to | the calls before it in the window)` under the profile.
    pub probability: f64,
    /// `to` was never seen at all while learning.
    pub novel: bool,
}

/// The `top` least likely transitions of `window` (oldest first) under `scorer`, least likely
/// first: the explanation an alert carries. Off the hot path (called on deviations only).
pub fn explain(scorer: &NgramScorer, window: &[Sym], top: usize) -> Vec<Transition> {
    let mut state = scorer.start();
    let mut out: Vec<Transition> = window
        .iter()
        .enumerate()
        .map(|(i, &sym)| {
            let step = scorer.step(&mut state, sym);
            Transition {
                from: i.checked_sub(1).map(|j| window[j]),
                to: sym,
                probability: f64::from(-step.surprisal).exp(),
                novel: step.novel,
            }
        })
        .collect();
    out.sort_by(|a, b| a.probability.total_cmp(&b.probability));
    out.truncate(top);
    out
}

/// A thread's highest window score under `scorer`, as [`Detect`] computes it: a calibration
/// point.
pub fn max_window(scorer: &NgramScorer, thread: &[Sym]) -> f64 {
    max_window_from(scorer, scorer.start(), thread)
}

/// [`max_window`] of syscalls scored from `state` on (such as [`Piece::start`]).
pub fn max_window_from(scorer: &NgramScorer, mut state: u32, thread: &[Sym]) -> f64 {
    let mut window = Window::default();
    thread
        .iter()
        .map(|&s| f64::from(window.push(scorer.step(&mut state, s).surprisal)))
        .fold(0.0, f64::max)
}

/// The window threshold of a calibrated one (`stats::calibrate`): at least one millinat (0
/// would alarm on everything) and at most `f32::MAX`. A threshold past `f32`'s range (a fitted
/// tail for an absurdly small target, ADR 0023) alarms on no window, and the container runs.
pub fn window_threshold(calibrated: f64) -> f32 {
    // Saturation is the intent: `as` rounds a finite f64 past f32's range to infinity.
    #[allow(clippy::cast_possible_truncation)]
    let t = calibrated as f32;
    t.clamp(1e-3, f32::MAX)
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
    /// threshold is the `1 - far` quantile of those maxima (`stats::calibrate`: past their
    /// tail when `far` is below one in their number).
    pub fn calibrate(scorer: Arc<NgramScorer>, normal: &[&[Sym]], far: f64) -> Result<Self> {
        let maxima: Vec<f64> = normal.iter().map(|seq| max_window(&scorer, seq)).collect();
        let threshold = stats::calibrate(&maxima, far).ok_or(SupervisorError::Config {
            reason: "calibration needs at least one normal thread",
        })?;
        Self::new(scorer, window_threshold(threshold))
    }

    /// The window threshold.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// The scorer (to explain deviations).
    pub fn scorer(&self) -> &Arc<NgramScorer> {
        &self.scorer
    }

    /// Moves `thread` on by the syscall `sym` (one with a name), for an event and a repeat alike:
    /// whether the profile never saw `sym`, its surprisal, and the window's score after it.
    #[inline]
    fn advance(&self, thread: &mut DetectThread, sym: Sym) -> (bool, f32, f32) {
        thread.recent.push(sym);
        let step = self.scorer.step(&mut thread.state, sym);
        let score = thread.window.push(step.surprisal);
        (step.novel, step.surprisal, score)
    }
}

impl Mode for Detect {
    type Thread = DetectThread;

    fn begin_thread(&mut self) -> DetectThread {
        // Detection counts nothing per thread: a new thread starts from the empty state.
        self.empty_thread()
    }

    fn empty_thread(&self) -> DetectThread {
        DetectThread {
            state: self.scorer.start(),
            window: Window::default(),
            recent: Recent::default(),
        }
    }

    #[inline]
    fn on_event(&mut self, thread: &mut DetectThread, event: &Event) -> Option<Deviation> {
        let (novel, score) = match event.sym {
            Some(sym) => {
                let (novel, _, score) = self.advance(thread, sym);
                (novel, score)
            }
            None => {
                thread.state = self.scorer.start();
                (true, thread.window.push(self.scorer.unseen_surprisal()))
            }
        };
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
            recent: thread.recent,
        })
    }

    /// A repeat is read as the program's when the profile expects it: a syscall learned, no
    /// more surprising than the threshold (the mean a window may reach), and not deviating.
    /// Anything else is read as the restart. A surprising repeat that deviates no window yet
    /// would still add its surprisal to the window and move the thread to a context the
    /// profile rarely saw, so a later ordinary call could deviate for it: a server stopped and
    /// continued in `accept` a few times was killed at its next `setsockopt`.
    #[inline]
    fn on_repeat(&mut self, thread: &mut DetectThread, event: &Event) -> bool {
        let Some(sym) = event.sym else { return true };
        let mut tried = *thread;
        let (novel, surprisal, score) = self.advance(&mut tried, sym);
        if novel || surprisal > self.threshold || score > self.threshold {
            return true;
        }
        *thread = tried;
        false
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

    fn wholes(threads: &[&[Sym]]) -> Vec<Piece> {
        threads.iter().map(|t| Piece::whole(t.to_vec())).collect()
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
        let recent = dev.recent.to_vec();
        assert_eq!(recent.len(), 31, "30 normal calls, then the novel one");
        assert_eq!(recent[29..], [3, 9]);
        let why = explain(d.scorer(), &recent, 2);
        assert_eq!(why.len(), 2);
        assert_eq!((why[0].from, why[0].to, why[0].novel), (Some(3), 9, true));
        assert!(why[0].probability < why[1].probability);
        assert!(d.on_event(&mut t, &event(None)).expect("unknown").novel);
        let mut t = d.begin_thread();
        let odd = (0..WINDOW)
            .filter_map(|i| d.on_event(&mut t, &event(Some([3, 3, 2, 2, 1, 1][i % 6]))))
            .next()
            .expect("a scrambled order deviates");
        assert!(!odd.novel && odd.score > odd.threshold);
    }

    #[test]
    fn window_thresholds_stay_in_the_range_detect_accepts() {
        assert_eq!(window_threshold(0.0), 1e-3);
        assert_eq!(window_threshold(-1.0), 1e-3);
        assert_eq!(window_threshold(0.5), 0.5);
        // A fitted tail past f32's range (ADR 0023): no window alarms, the container runs.
        for huge in [1e39, 1e300, f64::INFINITY] {
            assert_eq!(window_threshold(huge), f32::MAX);
        }
        // Heavy-tailed maxima (100 / i) and a tiny target, which the config accepts (any above 0).
        let heavy: Vec<f64> = (1..=100).map(|i| 100.0 / f64::from(i)).collect();
        let fitted = stats::calibrate(&heavy, 1e-300).unwrap();
        assert!(fitted > f64::from(f32::MAX), "{fitted}");
        assert_eq!(window_threshold(fitted), f32::MAX);
        let scorer = Arc::new(
            NgramScorer::new(&NgramCounts::new(2).unwrap(), Smoothing::default()).unwrap(),
        );
        assert_eq!(
            Detect::new(scorer, window_threshold(f64::MAX))
                .unwrap()
                .threshold(),
            f32::MAX
        );

        // At that threshold a scrambled order deviates no window; a never-learned syscall
        // still deviates.
        let mut d = Detect::new(Arc::clone(detect().scorer()), f32::MAX).unwrap();
        let mut t = d.begin_thread();
        for i in 0..4 * WINDOW {
            let s = [3, 3, 2, 2, 1, 1][i % 6];
            assert!(d.on_event(&mut t, &event(Some(s))).is_none(), "event {i}");
        }
        let dev = d.on_event(&mut t, &event(Some(9))).expect("never learned");
        assert!(dev.novel);
    }

    /// A repeat the profile expects moves the thread on; a surprising one is the restart even
    /// when its window stays below the threshold, and leaves the thread as it was.
    #[test]
    fn only_an_expected_repeat_moves_the_thread_on() {
        let mut counts = NgramCounts::new(3).unwrap();
        counts.learn_sequence(&[1, 1, 2, 3].repeat(200));
        let scorer = Arc::new(NgramScorer::new(&counts, Smoothing::default()).unwrap());
        let mut d = Detect::new(scorer, 1.0).unwrap();
        let mut t = d.begin_thread();
        for s in [1, 1, 2, 3, 1] {
            assert!(d.on_event(&mut t, &event(Some(s))).is_none());
        }
        let before = t;
        assert!(!d.on_repeat(&mut t, &event(Some(1))), "`1 1` was learned");
        assert_ne!(t, before, "and moves the thread on");

        for s in [2, 3] {
            assert!(d.on_event(&mut t, &event(Some(s))).is_none());
        }
        let mut read_as_repeat = t;
        let surprise = d.on_event(&mut read_as_repeat, &event(Some(3)));
        assert!(surprise.is_none(), "`3 3` alone deviates no window");
        let before = t;
        assert!(
            d.on_repeat(&mut t, &event(Some(3))),
            "but it was never learned"
        );
        assert_eq!(t, before);
        assert!(
            d.on_repeat(&mut t, &event(None)),
            "nor was an unknown syscall"
        );
        assert_eq!(t, before);
    }

    #[test]
    fn a_recording_learner_keeps_each_threads_syscalls_in_order() {
        let mut l = Learn::new(NgramCounts::new(2).unwrap()).recording();
        let mut threads = [l.begin_thread(), l.begin_thread(), l.begin_thread()];
        for (t, s) in [(0, 1), (1, 5), (0, 2), (1, 6), (0, 3)] {
            assert!(l.on_event(&mut threads[t], &event(Some(s))).is_none());
        }
        let learned = l.into_parts();
        assert_eq!(learned.threads, wholes(&[&[1, 2, 3], &[5, 6]]));
        assert_eq!(learned.counts.events(), 5);
        let mut plain = Learn::new(NgramCounts::new(2).unwrap());
        let mut t = plain.begin_thread();
        let _ = plain.on_event(&mut t, &event(Some(1)));
        assert!(plain.into_parts().threads.is_empty(), "not recording");
    }

    #[test]
    fn taking_what_was_learned_midway_loses_and_repeats_nothing() {
        let events = [(0, 1), (1, 5), (0, 2), (1, 6), (0, 3), (1, 7), (0, 4)];
        let mut whole = Learn::new(NgramCounts::new(3).unwrap()).recording();
        let mut split = Learn::new(NgramCounts::new(3).unwrap()).recording();
        let mut wt = [whole.begin_thread(), whole.begin_thread()];
        let mut st = [split.begin_thread(), split.begin_thread()];
        let mut first = None;
        for (i, (t, s)) in events.into_iter().enumerate() {
            let _ = whole.on_event(&mut wt[t], &event(Some(s)));
            let _ = split.on_event(&mut st[t], &event(Some(s)));
            if i == 3 {
                first = Some(split.take());
            }
        }
        let first = first.unwrap();
        assert_eq!(first.threads, wholes(&[&[1, 2], &[5, 6]]));
        assert_eq!(first.counts.events(), 4);
        let rest = split.into_parts();
        let continuations = |t: &[&[Sym]]| -> Vec<Piece> {
            t.iter().map(|s| Piece::continuation(s.to_vec())).collect()
        };
        assert_eq!(rest.threads, continuations(&[&[3, 4], &[7]]));
        let mut merged = first.counts;
        merged.merge(&rest.counts).unwrap();
        assert_eq!(merged, whole.into_parts().counts);
    }

    /// Each flush numbers threads afresh: a run of more than 65,535 threads records the ones
    /// after its next flush, and a live thread keeps being recorded under its new number. Until
    /// 2026-12-07 numbers ran on, and recording stopped for good at the 65,536th thread.
    #[test]
    fn recording_numbers_threads_afresh_after_each_flush() {
        let mut l = Learn::new(NgramCounts::new(2).unwrap()).recording();
        let mut live = l.begin_thread();
        let _ = l.on_event(&mut live, &event(Some(1)));
        for _ in 0..70_000 {
            let mut t = l.begin_thread();
            let _ = l.on_event(&mut t, &event(Some(2)));
        }
        let first = l.take();
        assert_eq!(first.threads.len(), usize::from(UNRECORDED));
        assert_eq!(first.counts.events(), 70_001);
        let mut new = l.begin_thread();
        let _ = l.on_event(&mut new, &event(Some(3)));
        let _ = l.on_event(&mut live, &event(Some(4)));
        let rest = l.into_parts();
        assert_eq!(
            rest.threads,
            vec![Piece::whole(vec![3]), Piece::continuation(vec![4])]
        );
    }

    #[test]
    fn learning_against_a_reference_keeps_held_out_maxima() {
        let d = detect();
        let mut l = Learn::with_reference(NgramCounts::new(3).unwrap(), Arc::clone(&d.scorer));
        let mut normal = l.begin_thread();
        for _ in 0..20 {
            for s in [1, 2, 3] {
                assert!(l.on_event(&mut normal, &event(Some(s))).is_none());
            }
        }
        let mut odd = l.begin_thread();
        for s in [3, 3, 2, 2, 1, 1].repeat(10) {
            assert!(l.on_event(&mut odd, &event(Some(s))).is_none());
        }
        let idle = l.begin_thread();
        l.end_thread(&normal);
        l.end_thread(&odd);
        l.end_thread(&idle);
        let Learned { counts, maxima, .. } = l.into_parts();
        assert_eq!(counts.events(), 120);
        assert_eq!(maxima.len(), 2, "a thread without events has no maximum");
        assert!(
            maxima[0] <= d.threshold(),
            "{maxima:?} vs {}",
            d.threshold()
        );
        assert!(maxima[1] > d.threshold(), "{maxima:?} vs {}", d.threshold());
        let plain = Learn::new(NgramCounts::new(3).unwrap());
        assert!(plain.into_parts().maxima.is_empty());
    }
}
