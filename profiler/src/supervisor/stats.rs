//! Supervisor counters: the only per-event "logging".

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! stats {
    ($($(#[$doc:meta])* $field:ident),+ $(,)?) => {
        /// Counters of one supervisor, readable from other threads (relaxed atomics; the
        /// supervisor is the only writer, so a bump is a plain load and store).
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[$doc])* pub $field: AtomicU64,)+
        }

        /// A copy of [`Stats`] at one moment.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct StatsSnapshot {
            $($(#[$doc])* pub $field: u64,)+
        }

        impl Stats {
            /// Reads every counter.
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot { $($field: self.$field.load(Ordering::Relaxed),)+ }
            }
        }
    };
}

stats!(
    /// Notifications received.
    events,
    /// Answered "continue".
    continued,
    /// Answered with an errno.
    denied,
    /// Notifications whose thread was gone before the receive or the answer.
    gone,
    /// Events with no symbol (unknown ABI or number).
    unknown,
    /// Events of the runtime before the container's first `execve` (not learned or scored).
    prelude,
    /// Repeats of a thread's previous call, taken as its restart after a signal because
    /// scoring them would have been a deviation (not learned or scored; ADR 0021).
    restarts,
    /// Deviations reported to the responder.
    deviations,
    /// Deviations that were never-learned syscalls.
    novel,
    /// Processes killed.
    killed,
    /// Container pauses done.
    paused,
    /// Container kills done.
    container_kills,
    /// Actions that failed (the syscall was denied instead).
    action_failures,
    /// Threads given fresh state.
    threads_started,
    /// Thread states freed because the thread exited.
    threads_reclaimed,
    /// Thread states evicted while their thread may live (table full).
    threads_evicted,
    /// Thread states held now.
    threads_live,
);

/// Adds one to a counter that only this thread writes.
#[inline]
pub(crate) fn bump(c: &AtomicU64) {
    add(c, 1);
}

/// Adds `n` to a counter that only this thread writes (no locked read-modify-write).
#[inline]
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Sets a gauge.
#[inline]
pub(crate) fn set(c: &AtomicU64, v: u64) {
    c.store(v, Ordering::Relaxed);
}
