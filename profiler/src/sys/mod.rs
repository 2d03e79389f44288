//! Every kernel interface the supervisor uses that needs `unsafe`, one file per interface
//! (STYLE.md point 4). Each file exposes `pub(crate)` safe wrappers returning `OwnedFd` or typed
//! structs; the rest of the crate is `#![deny(unsafe_code)]`.
//!
//! - [`seccomp`]: a small classic-BPF builder and `seccomp(2)` install with a notify listener.
//! - [`notify`]: `SECCOMP_IOCTL_NOTIF_{RECV,SEND,ID_VALID,SET_FLAGS}` and waiting on the fd.
//! - [`pidfd`]: `pidfd_open(2)` and `pidfd_send_signal(2)`.
//! - [`scm`]: receiving file descriptors over a Unix socket (`SCM_RIGHTS`) as `OwnedFd`s.
//! - [`child`]: a forked child that installs a notify filter and runs a fixed syscall script.
//! - [`abi`]: whether the kernel runs x32 syscalls (probed in a forked child).
//! - [`clock`]: the coarse monotonic clock, read on every event.

pub(crate) mod abi;
pub(crate) mod child;
pub(crate) mod clock;
pub(crate) mod notify;
pub mod pidfd;
pub(crate) mod scm;
pub(crate) mod seccomp;
pub(crate) mod wake;

use nix::errno::Errno;

/// Errors of the kernel interfaces.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    /// `prctl(PR_SET_NO_NEW_PRIVS)` failed.
    #[error("cannot set no_new_privs")]
    NoNewPrivs {
        /// The kernel's error.
        source: Errno,
    },
    /// `seccomp(SECCOMP_SET_MODE_FILTER)` failed.
    #[error("cannot install a seccomp filter of {len} instructions")]
    InstallFilter {
        /// Instructions in the program.
        len: usize,
        /// The kernel's error.
        source: Errno,
    },
    /// The BPF program is empty or longer than the kernel accepts.
    #[error("a seccomp program has {len} instructions (1 to {max} allowed)")]
    ProgramSize {
        /// Instructions in the program.
        len: usize,
        /// The kernel's limit.
        max: usize,
    },
    /// A seccomp notify ioctl failed.
    #[error("seccomp notify {op} failed")]
    Notify {
        /// Which ioctl.
        op: &'static str,
        /// The kernel's error.
        source: Errno,
    },
    /// Waiting for the notify fd failed.
    #[error("poll on the notify fd failed")]
    Poll {
        /// The kernel's error.
        source: Errno,
    },
    /// A pidfd call failed.
    #[error("{op} for pid {pid} failed")]
    Pidfd {
        /// Which call.
        op: &'static str,
        /// The target.
        pid: u32,
        /// The kernel's error.
        source: Errno,
    },
    /// Receiving a message with file descriptors failed.
    #[error("recvmsg on a unix socket failed")]
    RecvMsg {
        /// The kernel's error.
        source: Errno,
    },
    /// Starting the hang-up watcher failed.
    #[error("cannot start the hang-up watcher")]
    Watcher {
        /// The error.
        source: Errno,
    },
    /// Installing or sending the wake-up signal failed.
    #[error("{op} for the wake-up signal failed")]
    Signal {
        /// Which call.
        op: &'static str,
        /// The error.
        source: Errno,
    },
    /// Forking or talking to the traced child failed.
    #[error("traced child: {op} failed")]
    Child {
        /// What was being done.
        op: &'static str,
        /// The kernel's error.
        source: Errno,
    },
}

/// `Result` with the kernel interfaces' error.
pub type Result<T> = std::result::Result<T, SysError>;
