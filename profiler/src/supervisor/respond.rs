//! Choosing the answer to a deviation: the [`Responder`] the shim implements.

use super::mode::Recent;
use crate::sys::pidfd;
use crate::syscalls::{Arch, Sym};

/// A syscall that left the profile. Its thread is held in the kernel until the verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deviation {
    /// The thread (supervisor's pid namespace).
    pub tid: u32,
    /// The ABI of the call.
    pub arch: Option<Arch>,
    /// The raw syscall number.
    pub nr: i32,
    /// The syscall, if known.
    pub sym: Option<Sym>,
    /// Raw arguments (only scalars are meaningful; pointers are not followed).
    pub args: [u64; 6],
    /// The syscall was never seen while learning (or has no symbol at all).
    pub novel: bool,
    /// The window score when it was flagged (mean nats per event).
    pub score: f32,
    /// The threshold it was compared to.
    pub threshold: f32,
    /// The thread's last syscalls, this one last.
    pub recent: Recent,
}

/// SIGKILLs process `pid` through a pidfd (no pid-reuse race once it is open); `false` when it
/// had already exited. Killing a container's init kills its whole pid namespace.
pub fn kill_pid(pid: u32) -> Result<bool, crate::sys::SysError> {
    let fd = match pidfd::open(pid, false) {
        Ok(fd) => fd,
        Err(crate::sys::SysError::Pidfd {
            source: nix::errno::Errno::ESRCH,
            ..
        }) => return Ok(false),
        Err(e) => return Err(e),
    };
    pidfd::send_signal(
        std::os::fd::AsFd::as_fd(&fd),
        pid,
        nix::sys::signal::Signal::SIGKILL,
    )
}

/// How the supervisor ends a deviation.
///
/// Except for `Continue`, the offending syscall never runs: it is answered with an errno (EPERM
/// unless chosen) after the action is taken. For `PauseContainer` that is deliberate: answering
/// "continue" would let the syscall run before the frozen thread stops in user space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let the syscall run (alert-only, monitor mode).
    Continue,
    /// Fail the syscall with `errno`; the process goes on.
    Deny {
        /// The errno the syscall returns.
        errno: i32,
    },
    /// SIGKILL the offending process (through a pidfd, free of pid-reuse races).
    KillProcess,
    /// Freeze the whole container ([`Responder::pause_container`]).
    PauseContainer,
    /// Kill the whole container ([`Responder::kill_container`]), then the offending process
    /// through a pidfd as for [`Verdict::KillProcess`], both while its syscall is held.
    KillContainer,
}

/// A container action that could not be taken. The supervisor then denies the syscall.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// This responder cannot take the action.
    #[error("{action} is not supported by this responder")]
    Unsupported {
        /// The action.
        action: &'static str,
    },
    /// The action was tried and failed.
    #[error("{action} failed")]
    Failed {
        /// The action.
        action: &'static str,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Chooses verdicts and takes container-wide actions (implemented by the shim).
///
/// Called on the supervisor's thread with the offending syscall held: it may block (runc pause
/// takes milliseconds) but everything the container does through traced syscalls waits for it.
pub trait Responder {
    /// The verdict for one deviation.
    fn on_deviation(&mut self, deviation: &Deviation) -> Verdict;

    /// Freezes the container; returns when it is frozen.
    fn pause_container(&mut self, _deviation: &Deviation) -> Result<(), ActionError> {
        Err(ActionError::Unsupported {
            action: "pause container",
        })
    }

    /// Kills every process of the container.
    fn kill_container(&mut self, _deviation: &Deviation) -> Result<(), ActionError> {
        Err(ActionError::Unsupported {
            action: "kill container",
        })
    }

    /// Whether another supervisor of the same container (an exec process's, or its init's)
    /// has killed it: what this one receives is then denied unscored, as after its own kill.
    fn container_killed(&self) -> bool {
        false
    }
}

/// A responder that gives the same verdict to every deviation (and counts them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    /// The verdict.
    pub verdict: Verdict,
    /// Deviations seen.
    pub seen: u64,
}

impl Fixed {
    /// Always `verdict`.
    pub fn new(verdict: Verdict) -> Self {
        Self { verdict, seen: 0 }
    }
}

impl Responder for Fixed {
    fn on_deviation(&mut self, _deviation: &Deviation) -> Verdict {
        self.seen += 1;
        self.verdict
    }
}
