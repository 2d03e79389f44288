//! `pidfd_open(2)` and `pidfd_send_signal(2)`: signalling a process without pid-reuse races.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::{Result, SysError};

/// `PIDFD_THREAD` (Linux 6.9): the pid may be any thread, not only a thread-group leader.
const PIDFD_THREAD: u32 = 0o200; // O_EXCL on the generic and x86 ABIs

/// Opens a pidfd for `pid` (a process, or with `thread` any thread id).
pub fn open(pid: u32, thread: bool) -> Result<OwnedFd> {
    let flags = if thread { PIDFD_THREAD } else { 0 };
    let Ok(raw_pid) = libc::pid_t::try_from(pid) else {
        return Err(SysError::Pidfd {
            op: "pidfd_open",
            pid,
            source: Errno::ESRCH,
        });
    };
    // SAFETY: integer arguments only.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, flags) };
    if rc < 0 {
        return Err(SysError::Pidfd {
            op: "pidfd_open",
            pid,
            source: Errno::last(),
        });
    }
    let Ok(fd) = i32::try_from(rc) else {
        return Err(SysError::Pidfd {
            op: "pidfd_open",
            pid,
            source: Errno::EBADF,
        });
    };
    // SAFETY: a successful pidfd_open returns a new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends `signal` to the process behind `pidfd` (for a thread pidfd, SIGKILL still ends the
/// whole thread group). ESRCH (already gone) is reported as `Ok(false)`.
pub fn send_signal(pidfd: BorrowedFd<'_>, pid: u32, signal: Signal) -> Result<bool> {
    // SAFETY: integer arguments and a null siginfo (the kernel fills in the default one).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    match Errno::last() {
        Errno::ESRCH => Ok(false),
        source => Err(SysError::Pidfd {
            op: "pidfd_send_signal",
            pid,
            source,
        }),
    }
}
