//! The seccomp user-notification ioctls on a listener fd.
//!
//! - `RECV` blocks on a semaphore and does not see the listener's hang-up, so callers either
//!   wait with [`wait`] (poll) first, which reports a pending notification or the hang-up that
//!   comes when every task using the filter has exited, or block in [`recv_once`] while a
//!   watcher thread waits for the hang-up ([`wait_hangup`]) and interrupts them.
//! - `RECV` and `SEND` are restarted on EINTR, except [`recv_once`], which reports it so a
//!   supervisor blocked in `RECV` can be woken (see `wake.rs`). ENOENT means the notification is gone (the target
//!   was killed or interrupted by a signal between the kernel queueing it and our answer): it is
//!   an outcome ([`Recv::Gone`], [`Sent::Gone`]), not an error.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::{Result, SysError};

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6): wake the target on the answering CPU.
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// One notification, as `SECCOMP_IOCTL_NOTIF_RECV` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Notif {
    /// The cookie to answer with.
    pub(crate) id: u64,
    /// The thread id in the supervisor's pid namespace (0 if it is not visible there).
    pub(crate) pid: u32,
    /// The syscall number (architecture-specific).
    pub(crate) nr: i32,
    /// The `AUDIT_ARCH_*` value of the call.
    pub(crate) arch: u32,
    /// The syscall's arguments (scalars or pointers; pointers are never followed).
    pub(crate) args: [u64; 6],
    /// The address of the syscall instruction.
    pub(crate) ip: u64,
}

/// What the listener has to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ready {
    /// A notification is pending.
    Readable,
    /// No task uses the filter any more: no notification will ever come.
    HangUp,
    /// The timeout expired.
    Timeout,
}

/// The outcome of a receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recv {
    /// A notification to answer.
    Event(Notif),
    /// The pending notification went away before we took it.
    Gone,
    /// A signal interrupted the wait (only from [`recv_once`]).
    Interrupted,
}

/// The outcome of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// The kernel took the answer.
    Done,
    /// The target is gone (killed or interrupted): the answer had no one to go to.
    Gone,
}

/// How to answer a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Let the kernel run the syscall (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
    Continue,
    /// Fail the syscall with this (positive) errno without running it.
    Errno(i32),
}

/// Waits until the listener is readable or hung up; `timeout_ms < 0` waits forever, `0` polls.
/// EINTR is reported as [`Ready::Timeout`] so the caller's loop decides what to do.
pub(crate) fn wait(fd: BorrowedFd<'_>, timeout_ms: i32) -> Result<Ready> {
    let timeout = if timeout_ms < 0 {
        PollTimeout::NONE
    } else {
        PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::MAX)
    };
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    match poll(&mut fds, timeout) {
        Ok(0) | Err(Errno::EINTR) => Ok(Ready::Timeout),
        Ok(_) => {
            let revents = fds[0].revents().unwrap_or(PollFlags::empty());
            // A pending notification wins over a hang-up (it cannot really have both).
            if revents.contains(PollFlags::POLLIN) {
                Ok(Ready::Readable)
            } else if revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
                Ok(Ready::HangUp)
            } else {
                Ok(Ready::Timeout)
            }
        }
        Err(source) => Err(SysError::Poll { source }),
    }
}

/// `SECCOMP_IOCTL_NOTIF_RECV`: takes one notification (blocks if none is pending), restarting
/// when a signal interrupts it.
pub(crate) fn recv(fd: BorrowedFd<'_>) -> Result<Recv> {
    loop {
        match recv_once(fd)? {
            Recv::Interrupted => continue,
            other => return Ok(other),
        }
    }
}

/// `SECCOMP_IOCTL_NOTIF_RECV` once: a signal ends the wait with [`Recv::Interrupted`].
pub(crate) fn recv_once(fd: BorrowedFd<'_>) -> Result<Recv> {
    // The kernel requires a zeroed struct (EINVAL otherwise); zero it on every attempt.
    // SAFETY: `seccomp_notif` is plain old data for which all-zero bytes are valid.
    let mut raw: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: `raw` is a valid, writable `seccomp_notif` that outlives the call, which is
    // what this ioctl number expects.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            std::ptr::addr_of_mut!(raw),
        )
    };
    if rc == 0 {
        return Ok(Recv::Event(Notif {
            id: raw.id,
            pid: raw.pid,
            nr: raw.data.nr,
            arch: raw.data.arch,
            args: raw.data.args,
            ip: raw.data.instruction_pointer,
        }));
    }
    match Errno::last() {
        Errno::EINTR => Ok(Recv::Interrupted),
        Errno::ENOENT => Ok(Recv::Gone),
        source => Err(SysError::Notify { op: "recv", source }),
    }
}

/// Waits until the listener hangs up (no task uses the filter any more) or `stop` becomes
/// readable or hung up; returns `true` for the listener's hang-up. Pending notifications do
/// not wake this wait: it asks for no events on the listener, and the kernel wakes pollers
/// only for the events they asked for (hang-ups and errors always count).
pub(crate) fn wait_hangup(fd: BorrowedFd<'_>, stop: BorrowedFd<'_>) -> Result<bool> {
    loop {
        let mut fds = [
            PollFd::new(fd, PollFlags::empty()),
            PollFd::new(stop, PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {
                let hung = |p: &PollFd<'_>| {
                    p.revents()
                        .unwrap_or(PollFlags::empty())
                        .intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
                };
                if hung(&fds[0]) {
                    return Ok(true);
                }
                let stop_ready = fds[1].revents().unwrap_or(PollFlags::empty());
                if !stop_ready.is_empty() {
                    return Ok(false);
                }
            }
            Err(Errno::EINTR) => {}
            Err(source) => return Err(SysError::Poll { source }),
        }
    }
}

/// `SECCOMP_IOCTL_NOTIF_SEND`: answers notification `id`.
pub(crate) fn send(fd: BorrowedFd<'_>, id: u64, answer: Answer) -> Result<Sent> {
    let (error, flags) = match answer {
        Answer::Continue => (0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE),
        Answer::Errno(errno) => (-errno.abs(), 0),
    };
    let mut resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error,
        // The flag is 1; `c_ulong` is wider than the field only by convention.
        flags: u32::try_from(flags).unwrap_or(0),
    };
    // SAFETY: `resp` is a valid `seccomp_notif_resp` that outlives the call.
    let sent = ioctl_restarted(|| unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            std::ptr::addr_of_mut!(resp),
        )
    });
    match sent {
        Ok(()) => Ok(Sent::Done),
        Err(Errno::ENOENT) => Ok(Sent::Gone),
        Err(source) => Err(SysError::Notify { op: "send", source }),
    }
}

/// Calls `ioctl` (an `ioctl(2)` call returning its result) until a signal does not interrupt
/// it: SEND, ID_VALID and SET_FLAGS take the listener's lock interruptibly, and a signal (the
/// shim's SIGCHLD may land on any of its threads) is no answer.
fn ioctl_restarted(mut ioctl: impl FnMut() -> libc::c_int) -> std::result::Result<(), Errno> {
    loop {
        if ioctl() == 0 {
            return Ok(());
        }
        match Errno::last() {
            Errno::EINTR => {}
            errno => return Err(errno),
        }
    }
}

/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: whether notification `id` is still pending (its target alive
/// and still waiting). Check it after reading anything about the target and before acting on it.
/// An interrupted call is asked again, not taken for "gone" (until 2026-12-07 it was, and a
/// kill verdict was skipped).
pub(crate) fn id_valid(fd: BorrowedFd<'_>, id: u64) -> bool {
    let mut cookie = id;
    // SAFETY: the ioctl reads one u64 from a valid pointer that outlives the call.
    ioctl_restarted(|| unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            std::ptr::addr_of_mut!(cookie),
        )
    })
    .is_ok()
}

/// Sets `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` on the listener. Returns `false` when the kernel
/// does not know the flag (EINVAL: before 6.6), so callers fall back to ordinary wake-ups.
pub(crate) fn set_sync_wake_up(fd: impl AsFd) -> Result<bool> {
    // SAFETY: this ioctl takes its u64 argument by value (`flags`), not through a pointer.
    let set = ioctl_restarted(|| unsafe {
        libc::ioctl(
            fd.as_fd().as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
        )
    });
    match set {
        Ok(()) => Ok(true),
        Err(Errno::EINVAL) => Ok(false),
        Err(source) => Err(SysError::Notify {
            op: "set_flags",
            source,
        }),
    }
}
