//! [`TracedChild`]: a forked child under a notify filter running a fixed syscall script.
//!
//! For tests and benchmarks without root (the child sets `no_new_privs`). The script is data
//! ([`Op`]s) so that the child runs no Rust code that could allocate or lock after the fork.

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::{Result, SupervisorError};
use crate::sys::child::{self, Op};
use crate::sys::seccomp::BpfProgram;
use crate::syscalls::{sym_of, Arch};

/// A seccomp filter that notifies a chosen set of syscalls and allows everything else.
#[derive(Debug, Clone)]
pub struct Filter {
    prog: BpfProgram,
}

impl Filter {
    /// Notifies syscall numbers `nrs` of `arch`.
    pub fn notify(arch: Arch, nrs: &[u32]) -> Self {
        Self {
            prog: BpfProgram::notify(arch.audit_arch(), nrs),
        }
    }

    /// Notifies the named syscalls of the native architecture.
    pub fn notify_names(names: &[&str]) -> Result<Self> {
        let arch = Arch::native().ok_or(SupervisorError::Arch)?;
        let nrs = names
            .iter()
            .map(|n| {
                sym_of(n)
                    .and_then(|s| arch.number(s))
                    .ok_or(SupervisorError::Config {
                        reason: "a syscall name is unknown on this architecture",
                    })
            })
            .collect::<Result<Vec<u32>>>()?;
        Ok(Self::notify(arch, &nrs))
    }
}

/// How a traced child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEnd {
    /// It exited with this code (0: the script ran to its end).
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
}

/// A forked child under a notify filter. Dropping it kills and reaps the child.
#[derive(Debug)]
pub struct TracedChild {
    pid: Pid,
    sock: OwnedFd,
    listener: Option<OwnedFd>,
    reaped: bool,
}

impl TracedChild {
    /// Forks a child that installs `filter`, hands its listener over and waits for
    /// [`TracedChild::start`] before running `ops` (at most [`super::MAX_OPS`]).
    pub fn spawn(filter: &Filter, ops: &[Op]) -> Result<Self> {
        Self::spawn_on(filter, ops, None)
    }

    /// [`TracedChild::spawn`], with the child pinned to `cpu` when given.
    pub fn spawn_on(filter: &Filter, ops: &[Op], cpu: Option<usize>) -> Result<Self> {
        let s = child::spawn(&filter.prog, ops, cpu)?;
        Ok(Self {
            pid: s.pid,
            sock: s.sock,
            listener: Some(s.listener),
            reaped: false,
        })
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid.as_raw().unsigned_abs()
    }

    /// The notify listener (once).
    pub fn take_listener(&mut self) -> Option<OwnedFd> {
        self.listener.take()
    }

    /// Lets the child run its script.
    pub fn start(&self) -> Result<()> {
        Ok(child::go(self.sock.as_fd())?)
    }

    /// Waits for the child; returns how it ended and one result per script step it finished
    /// (return value or `-errno`, elapsed ns, or count; see [`Op`]).
    pub fn wait(mut self) -> Result<(ChildEnd, Vec<i64>)> {
        let (status, results) = child::finish(self.pid, self.sock.as_fd())?;
        self.reaped = true;
        let end = match status {
            WaitStatus::Exited(_, code) => ChildEnd::Exited(code),
            WaitStatus::Signaled(_, sig, _) => ChildEnd::Signaled(sig as i32),
            _ => ChildEnd::Exited(-1),
        };
        Ok((end, results))
    }
}

impl Drop for TracedChild {
    fn drop(&mut self) {
        if !self.reaped {
            child::kill_and_reap(self.pid);
        }
    }
}
