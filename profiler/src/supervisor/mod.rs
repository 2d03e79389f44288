//! The live half of the profiler: one supervisor per container notify fd.
//!
//! ```text
//! Notifier::recv ─▶ Event (tid, arch, nr, sym, scalar args)
//!       │                 │
//!       │       ThreadTable: per-tid Mode::Thread state (bounded: exits, sweeps, LRU)
//!       │                 │
//!       │       Mode::on_event: learn (NgramCounts) or detect (NgramScorer + window)
//!       │                 │ deviation?
//!       │       Responder::on_deviation ─▶ Verdict (continue, deny, kill, pause, kill all)
//!       ▼                 ▼
//! Notifier::send(answer)  (the offending syscall is held until the verdict)
//! ```
//!
//! - [`Notifier`] is the seam over the kernel (youki's `Syscall` trait): [`KernelNotifier`]
//!   drives a real listener, tests drive the loop with a fake.
//! - [`Supervisor`] is the loop. Per event it does no allocation (learning allocates only when
//!   a never-seen gram enters the counts), takes no lock, and logs nothing: it bumps the
//!   [`Stats`] counters, and the rare error paths log through [`RateLimit`].
//! - [`Learn`] and [`Detect`] are the two [`Mode`]s; [`Responder`] is what the shim implements
//!   to choose the answer to a deviation.
//! - [`TracedChild`] forks a child under a notify filter running a fixed syscall script: for
//!   tests and benchmarks.
//! - [`listener`] receives notify fds from runc (`linux.seccomp.listenerPath`).
//! - [`filter`] builds the OCI `LinuxSeccomp` of learn mode.
//!
//! Placement: see [`Wait`] for why the listener is put in `SYNC_WAKE_UP` mode and the
//! supervisor blocks (in `RECV` by default, a hang-up watcher thread waking it when the last
//! traced task is gone; or in `poll`) instead of spinning.

#![deny(clippy::disallowed_macros)]

mod child;
pub mod filter;
mod hangup;
pub mod listener;
mod mode;
mod notifier;
mod ratelimit;
mod respond;
mod run;
mod stats;
mod threads;

use crate::model::ModelError;

pub use crate::sys::child::{Op, MAX_OPS};
pub use crate::sys::SysError;
pub use child::{ChildEnd, Filter, TracedChild};
pub use mode::{
    explain, max_window, max_window_from, window_threshold, Detect, DetectThread, Event, Learn,
    LearnThread, Learned, Mode, Piece, Recent, Transition, Window, MAX_CALIBRATION_THREADS,
    MAX_RECORDED_EVENTS, WINDOW,
};
pub use notifier::{Answer, Delivery, KernelNotifier, Notification, Notifier, Received, Wait};
pub use ratelimit::RateLimit;
pub use respond::{kill_pid, ActionError, Deviation, Fixed, Responder, Verdict};
pub use run::{Progress, Supervisor, SupervisorConfig, ThreadEntry, DEFAULT_SWEEP_PERIOD};
pub use stats::{Stats, StatsSnapshot};
pub use threads::ThreadTable;

/// Receives one message on a Unix socket into `buf`: its length, and the descriptors that came
/// with it, each owned (closed on drop, including when the sender attached more than fit).
/// The listener takes runc's notify fds this way; others that are sent descriptors (the shim's
/// console socket) use it too.
pub fn receive_fds(
    socket: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
) -> std::result::Result<(usize, Vec<std::os::fd::OwnedFd>), SysError> {
    let chunk = crate::sys::scm::recv(socket, buf)?;
    Ok((chunk.len, chunk.fds))
}

/// Errors of the supervisor.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A kernel interface failed.
    #[error("kernel interface failed")]
    Sys {
        /// What failed.
        #[from]
        source: SysError,
    },
    /// The model could not be built or calibrated.
    #[error("model setup failed")]
    Model {
        /// What failed.
        #[from]
        source: ModelError,
    },
    /// A configuration value is out of range.
    #[error("invalid supervisor configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: &'static str,
    },
    /// The running kernel has no syscall table chaperone knows.
    #[error("unsupported architecture")]
    Arch,
}

/// `Result` with the supervisor's error.
pub type Result<T> = std::result::Result<T, SupervisorError>;
