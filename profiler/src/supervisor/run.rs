//! The notify loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::notifier::{Answer, Delivery, Notification, Notifier, Received};
use super::ratelimit::RateLimit;
use super::respond::{Deviation, Responder, Verdict};
use super::stats::{self, bump, Stats};
use super::threads::ThreadTable;
use super::{Event, Mode, Result, SupervisorError};
use crate::syscalls::{sym_of, Arch, Sym};

/// Settings of one supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// Most threads with state at once (the table grows with the threads tracked, up to about
    /// `max_threads * 4/3 * size_of(state)`, 240 bytes per slot in detect mode).
    pub max_threads: usize,
    /// The errno of a denied syscall when an action does not say (EPERM).
    pub deny_errno: i32,
    /// Let everything before the first `execve` pass unrecorded. runc installs the filter in
    /// `runc init`, a Go program, a little before it executes the container's process: those
    /// syscalls (and their Go runtime threads, preempted by signals at random points) are the
    /// runtime's, not the container's, and their order changes from run to run.
    pub skip_until_exec: bool,
    /// How often, at most, the thread table is swept for dead threads while events come (see
    /// [`DEFAULT_SWEEP_PERIOD`]); zero sweeps before every event (for tests).
    pub sweep_period: Duration,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            max_threads: 1024,
            deny_errno: libc::EPERM,
            skip_until_exec: false,
            sweep_period: DEFAULT_SWEEP_PERIOD,
        }
    }
}

/// How often, at most, the supervisor sweeps its thread table for dead threads (while events
/// come). Threads often die unnotified: the other threads of a process that calls
/// `exit_group` or `execve`, a process killed by a signal, every thread when `exit_group` is
/// in the kernel's tier. A dead thread's entry would otherwise wait for the table to fill, and
/// a new thread given its tid once the host's pids wrap would carry on its state (until
/// 2026-12-07). Swept threads end as threads that exited do.
pub const DEFAULT_SWEEP_PERIOD: Duration = Duration::from_secs(1);

/// Threads of the runtime prelude remembered, to ignore their last calls after the `execve`.
const PRELUDE_TIDS: usize = 64;
/// Events after the `execve` during which prelude threads are still ignored (they die with the
/// `execve`; afterwards their tids may be reused by the container).
const PRELUDE_TAIL: u64 = 1_000;

/// The runtime prelude: what came before the container's first `execve`.
#[derive(Debug, Clone, Copy)]
struct Prelude {
    /// Still before the `execve`.
    active: bool,
    /// The tids seen before it (except the one that called `execve`).
    tids: [u32; PRELUDE_TIDS],
    len: usize,
    /// Events since the `execve`.
    since: u64,
}

impl Prelude {
    fn new(active: bool) -> Self {
        Self {
            active,
            tids: [0; PRELUDE_TIDS],
            len: 0,
            since: 0,
        }
    }

    /// Whether an event of `tid` (calling `sym`) belongs to the runtime, not the container.
    #[inline]
    fn skips(&mut self, tid: u32, sym: Option<Sym>, exec: [Option<Sym>; 2]) -> bool {
        if self.active {
            if sym.is_some() && exec.contains(&sym) {
                self.active = false;
                self.forget(tid);
                return false;
            }
            if !self.tids[..self.len].contains(&tid) && self.len < PRELUDE_TIDS {
                self.tids[self.len] = tid;
                self.len += 1;
            }
            return true;
        }
        if self.len == 0 {
            return false;
        }
        self.since += 1;
        if self.since > PRELUDE_TAIL {
            self.len = 0;
            return false;
        }
        self.tids[..self.len].contains(&tid)
    }

    fn forget(&mut self, tid: u32) {
        if let Some(i) = self.tids[..self.len].iter().position(|&t| t == tid) {
            self.tids[i] = self.tids[self.len - 1];
            self.len -= 1;
        }
    }
}

/// What one [`Supervisor::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// An event was handled and answered.
    Handled,
    /// A notification vanished (its thread was killed or interrupted).
    Gone,
    /// The filter has no users left: the supervisor is done.
    Closed,
}

/// A thread's entry in the supervisor's table: the mode's state and the call the thread was
/// last let through with.
#[derive(Debug, Clone, Copy)]
pub struct ThreadEntry<T> {
    /// The mode's state of the thread.
    pub mode: T,
    /// [`call_key`] of the thread's last notification answered "continue".
    last: Option<u64>,
}

/// One call as the kernel reports it: number, ABI, instruction pointer and arguments. A
/// blocking syscall that a signal interrupts (a stop, a handler, a debugger) is restarted by
/// the kernel as the same call from the same instruction, and notified again; a program that
/// makes the same call twice in a row looks the same. A hash: a collision costs one event's
/// scoring (2^-64).
fn call_key(n: &Notification) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    (n.nr, n.arch, n.ip, n.args).hash(&mut h);
    h.finish()
}

/// The syscalls held across a pause, one per thread (see `Supervisor::paused_on`). A thread
/// that died held would keep its entry; the oldest entries go past [`PausedCalls::MAX`].
#[derive(Debug, Default)]
struct PausedCalls(Vec<(u32, i32)>);

impl PausedCalls {
    /// More threads than this deviating at once is past any container's pausing.
    const MAX: usize = 64;

    /// Records that thread `tid` was held in syscall `nr` when its container was paused.
    fn insert(&mut self, tid: u32, nr: i32) {
        self.take(tid);
        if self.0.len() == Self::MAX {
            self.0.remove(0);
        }
        self.0.push((tid, nr));
    }

    /// Forgets thread `tid`'s entry, returning its syscall.
    fn take(&mut self, tid: u32) -> Option<i32> {
        let i = self.0.iter().position(|&(t, _)| t == tid)?;
        Some(self.0.remove(i).1)
    }
}

/// One container's supervisor: owns the notifier, the mode (with its model) and the responder.
/// Nothing in it is shared with another container's supervisor except the read-only scorer.
#[derive(Debug)]
pub struct Supervisor<N: Notifier, M: Mode, R: Responder> {
    notifier: N,
    mode: M,
    responder: R,
    threads: ThreadTable<ThreadEntry<M::Thread>>,
    stats: Arc<Stats>,
    log: RateLimit,
    clock: u64,
    /// When the supervisor's last sweep of its thread table was (on [`crate::sys::clock::coarse_now`]'s clock),
    /// and how often one comes.
    swept: Duration,
    sweep_period: Duration,
    deny_errno: i32,
    exit: Option<Sym>,
    exit_group: Option<Sym>,
    /// The syscalls held while their container was frozen, as (tid, nr): the deviating one
    /// that paused it, and those of other threads that paused it again after a thaw. Freezing
    /// interrupts the kernel's wait, so each is notified again when the container is thawed;
    /// that repeat is denied without being scored again (else the same deviation would pause
    /// again, and with two such threads every thaw would pause the container anew). An entry
    /// goes with its thread's next notification, whatever it is.
    paused_on: PausedCalls,
    /// The container was killed: until its processes are gone, every syscall they still make
    /// is denied without being scored, so none goes on running meanwhile (a process forked
    /// just before the deviation would otherwise have its `execve` let through). A kill by
    /// another supervisor of the container comes through [`Responder::container_killed`].
    container_killed: bool,
    prelude: Prelude,
    exec: [Option<Sym>; 2],
    /// The notification received and not answered yet (see [`Supervisor::held`]).
    held: Option<u64>,
}

impl<N: Notifier, M: Mode, R: Responder> Supervisor<N, M, R> {
    /// A supervisor; counters go to `stats` (share the `Arc` to read them elsewhere).
    pub fn new(
        notifier: N,
        mode: M,
        responder: R,
        config: SupervisorConfig,
        stats: Arc<Stats>,
    ) -> Result<Self> {
        if config.max_threads == 0 || config.max_threads > 1 << 20 {
            return Err(SupervisorError::Config {
                reason: "max_threads must be between 1 and 1048576",
            });
        }
        if !(1..=4095).contains(&config.deny_errno) {
            return Err(SupervisorError::Config {
                reason: "deny_errno must be between 1 and 4095",
            });
        }
        let filler = ThreadEntry {
            mode: mode.empty_thread(),
            last: None,
        };
        Ok(Self {
            notifier,
            mode,
            responder,
            threads: ThreadTable::new(config.max_threads, filler),
            stats,
            log: RateLimit::new(Duration::from_secs(10)),
            clock: 0,
            swept: crate::sys::clock::coarse_now(),
            sweep_period: config.sweep_period,
            deny_errno: config.deny_errno,
            exit: sym_of("exit"),
            exit_group: sym_of("exit_group"),
            paused_on: PausedCalls::default(),
            container_killed: false,
            held: None,
            prelude: Prelude::new(config.skip_until_exec),
            exec: [sym_of("execve"), sym_of("execveat")],
        })
    }

    /// Handles events until the filter has no users left.
    pub fn run(&mut self) -> Result<()> {
        while self.step()? != Progress::Closed {}
        Ok(())
    }

    /// [`Supervisor::run`], also calling `tick` with the mode once `every` has passed since
    /// the last call (or the start). The time is checked as events are answered, so `tick`
    /// never holds up a syscall, and a container that makes none gets no tick.
    pub fn run_ticking(&mut self, every: Duration, mut tick: impl FnMut(&mut M)) -> Result<()> {
        let mut last = Instant::now();
        while self.step()? != Progress::Closed {
            if last.elapsed() >= every {
                tick(&mut self.mode);
                last = Instant::now();
            }
        }
        Ok(())
    }

    /// Receives, decides and answers one notification.
    pub fn step(&mut self) -> Result<Progress> {
        let n = match self.notifier.recv()? {
            Received::Closed => return Ok(Progress::Closed),
            Received::Gone => {
                bump(&self.stats.gone);
                return Ok(Progress::Gone);
            }
            Received::Event(n) => n,
        };
        self.held = Some(n.id);
        bump(&self.stats.events);
        self.clock += 1;
        // Before anything else about the event: whatever it turns out to be, the time is
        // looked at (until 2026-12-07 only every 4096th event did, which a container making
        // few notified calls, as under the tiered filter, seldom reached).
        if self.sweep_period.is_zero()
            || crate::sys::clock::coarse_now().saturating_sub(self.swept) >= self.sweep_period
        {
            self.sweep();
        }
        if self.paused_on.take(n.tid) == Some(n.nr) {
            tracing::debug!(
                tid = n.tid,
                nr = n.nr,
                "supervisor: the syscall held across the pause is denied on its restart"
            );
            let progress = self.answer(n.id, Answer::Errno(self.deny_errno))?;
            // A signal cut this wait short too: the call comes back once more, and is the
            // same held call (until 2026-12-07 that one was scored, and paused again).
            if progress == Progress::Gone {
                self.paused_on.insert(n.tid, n.nr);
            }
            return Ok(progress);
        }
        if self.container_killed || self.responder.container_killed() {
            return self.answer(n.id, Answer::Errno(self.deny_errno));
        }
        let arch = Arch::from_audit_arch(n.arch);
        let sym = match (arch, u32::try_from(n.nr)) {
            (Some(arch), Ok(nr)) => arch.sym(nr),
            _ => None,
        };
        if self.prelude.skips(n.tid, sym, self.exec) {
            bump(&self.stats.prelude);
            return self.answer(n.id, Answer::Continue);
        }
        if sym.is_none() {
            bump(&self.stats.unknown);
        }
        let event = Event {
            id: n.id,
            tid: n.tid,
            arch,
            nr: n.nr,
            sym,
            args: n.args,
        };

        let Self {
            notifier,
            mode,
            threads,
            paused_on,
            stats,
            ..
        } = self;
        if threads.full_for(n.tid) {
            // The entries that make room end as threads that exited (they are learned). A
            // thread evicted alive keeps its call held across a pause: that call's restart is
            // still to be denied unscored (a review of 2026-12-07 found it scored and pausing
            // the container again, once more busy threads than the table holds pushed the
            // stopped thread out).
            let (reclaimed, evicted) = threads.make_room(
                |tid| notifier.thread_alive(tid),
                |tid, ended, dead| {
                    mode.end_thread(&ended.mode);
                    if dead {
                        paused_on.take(tid);
                    }
                },
            );
            stats::add(&stats.threads_reclaimed, u64::from(reclaimed));
            stats::add(&stats.threads_evicted, u64::from(evicted));
        }
        // Room is made above, where what goes can end: the entry itself never makes any.
        let (slot, made) = threads.entry(
            n.tid,
            self.clock,
            |_| true,
            || ThreadEntry {
                mode: mode.begin_thread(),
                last: None,
            },
        );
        let call = call_key(&n);
        let before = slot.mode;
        let deviation = if slot.last == Some(call) {
            // The same call again is either the program's repeat or the kernel's restart of
            // the call let through before; the mode decides which (ADR 0021). Either way it
            // is let through.
            if mode.on_repeat(&mut slot.mode, &event) {
                bump(&self.stats.restarts);
            }
            None
        } else {
            mode.on_event(&mut slot.mode, &event)
        };
        // Kept for a call let through; a deviation's answer is known below.
        slot.last = deviation.is_none().then_some(call);
        if made.inserted {
            bump(&self.stats.threads_started);
        }

        let answer = match deviation {
            None => Answer::Continue,
            Some(d) => {
                let answer = self.respond(&d, n.id);
                if let Some(slot) = self.threads.get_mut(n.tid) {
                    if answer == Answer::Continue {
                        slot.last = Some(call);
                    } else {
                        // The call does not run: the thread's state goes back to what it was
                        // before it, so that the same call in the same place deviates again
                        // however often it comes (the program retrying it, or the kernel
                        // restarting it after a signal). Reset, the window would have let the
                        // retry through.
                        slot.mode = before;
                    }
                }
                answer
            }
        };
        // Another supervisor of the container may have killed it while this call was scored:
        // it is not let through then (checked as late as can be).
        let answer = if answer == Answer::Continue
            && (self.container_killed || self.responder.container_killed())
        {
            Answer::Errno(self.deny_errno)
        } else {
            answer
        };
        let progress = self.answer(n.id, answer)?;
        // The thread ends only with its exit let through and delivered: one a signal cut short
        // (Gone) is called again, and is the same thread's (until 2026-12-07 it began a new one,
        // learned as a thread starting with its exit).
        let exits = sym.is_some() && (sym == self.exit || sym == self.exit_group);
        if exits && answer == Answer::Continue && progress == Progress::Handled {
            if let Some(&ended) = self.threads.get(n.tid) {
                self.mode.end_thread(&ended.mode);
                self.threads.remove(n.tid);
                bump(&self.stats.threads_reclaimed);
            }
        }
        stats::set(&self.stats.threads_live, self.threads.len() as u64);
        // A pausing denial that reached its call: no restart of it will come, so the next
        // such call of the thread is its own, to be scored (until 2026-12-07 it was denied).
        if progress == Progress::Handled {
            self.paused_on.take(n.tid);
        }
        Ok(progress)
    }

    /// Ends the tracked threads that are gone (see [`DEFAULT_SWEEP_PERIOD`]).
    fn sweep(&mut self) {
        self.swept = crate::sys::clock::coarse_now();
        let Self {
            notifier,
            mode,
            threads,
            paused_on,
            ..
        } = self;
        // A dead thread's held call is forgotten with it: a new thread given its tid is not
        // the one the pause held.
        let freed = threads.sweep(
            |tid| notifier.thread_alive(tid),
            |tid, ended| {
                mode.end_thread(&ended.mode);
                paused_on.take(tid);
            },
        );
        stats::add(&self.stats.threads_reclaimed, u64::from(freed));
    }

    fn answer(&mut self, id: u64, answer: Answer) -> Result<Progress> {
        match answer {
            Answer::Continue => bump(&self.stats.continued),
            Answer::Errno(_) => bump(&self.stats.denied),
        }
        let delivery = self.notifier.send(id, answer)?;
        self.held = None;
        match delivery {
            Delivery::Done => Ok(Progress::Handled),
            Delivery::Gone => {
                bump(&self.stats.gone);
                Ok(Progress::Gone)
            }
        }
    }

    /// Takes the responder's verdict and any action; returns the answer for the held syscall.
    fn respond(&mut self, d: &Deviation, id: u64) -> Answer {
        bump(&self.stats.deviations);
        if d.novel {
            bump(&self.stats.novel);
        }
        let deny = Answer::Errno(self.deny_errno);
        match self.responder.on_deviation(d) {
            Verdict::Continue => Answer::Continue,
            Verdict::Deny { errno } => Answer::Errno(errno.clamp(1, 4095)),
            Verdict::KillProcess => {
                self.kill_process(d, id);
                deny
            }
            Verdict::PauseContainer => {
                match self.responder.pause_container(d) {
                    Ok(()) => {
                        bump(&self.stats.paused);
                        self.paused_on.insert(d.tid, d.nr);
                    }
                    Err(e) => self.action_failed("pause container", d, &e),
                }
                deny
            }
            Verdict::KillContainer => {
                // The container first, then the offending process, both while its syscall is
                // held. The rest of the container dies only once the kernel has torn the pid
                // namespace down, which on a busy node takes milliseconds in which the process
                // could go on with the attack; so it is killed too, before it is answered. Not
                // the other way round: killing the process wakes its parent, which can preempt
                // this thread and run on (in a container whose init is that parent, to a
                // normal exit) before the container's kill is sent.
                match self.responder.kill_container(d) {
                    Ok(()) => {
                        bump(&self.stats.container_kills);
                        self.container_killed = true;
                    }
                    Err(e) => self.action_failed("kill container", d, &e),
                }
                self.kill_process(d, id);
                deny
            }
        }
    }

    /// SIGKILLs the process of the deviating thread, held in notification `id`.
    fn kill_process(&mut self, d: &Deviation, id: u64) {
        match self.notifier.kill_process(d.tid, id) {
            Ok(true) => bump(&self.stats.killed),
            // Already gone: nothing left to kill.
            Ok(false) => {}
            Err(e) => self.action_failed("kill process", d, &e),
        }
    }

    fn action_failed(&self, action: &str, d: &Deviation, error: &dyn std::error::Error) {
        bump(&self.stats.action_failures);
        if let Some(suppressed) = self.log.check() {
            tracing::warn!(
                action,
                tid = d.tid,
                nr = d.nr,
                error = %error,
                suppressed,
                "supervisor: action failed, the syscall is denied instead"
            );
        }
    }

    /// The id of the notification received and not answered: between a receive and its
    /// answer, and after an answer that failed (the error [`Supervisor::step`] returned). Its
    /// thread waits in the kernel until someone answers it on the listener, or it dies.
    pub fn held(&self) -> Option<u64> {
        self.held
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The notifier.
    pub fn notifier(&self) -> &N {
        &self.notifier
    }

    /// The mode (for instance the learned counts so far).
    pub fn mode(&self) -> &M {
        &self.mode
    }

    /// The per-thread table.
    pub fn threads(&self) -> &ThreadTable<ThreadEntry<M::Thread>> {
        &self.threads
    }

    /// The responder.
    pub fn responder(&self) -> &R {
        &self.responder
    }

    /// Ends the supervisor, returning the mode (learned counts) and the responder. Threads
    /// still tracked end here ([`Mode::end_thread`]).
    pub fn into_parts(mut self) -> (M, R) {
        for thread in self.threads.states() {
            self.mode.end_thread(&thread.mode);
        }
        (self.mode, self.responder)
    }
}
