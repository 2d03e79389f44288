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

/// Opens a pidfd for the process thread `tid` belongs to (its thread group, through
/// `/proc/TID/status`'s `Tgid`): what kernels before 6.9, which take no thread ids, can open
/// for a thread that is not its process's leader. A thread that is gone is ESRCH; any other
/// failure to read its status (out of fds, say) is that error, not "gone".
pub fn open_process_of(tid: u32) -> Result<OwnedFd> {
    let error = |source| SysError::Pidfd {
        op: "find the thread group of",
        pid: tid,
        source,
    };
    let tgid = thread_group(tid)
        .map_err(error)?
        .ok_or(error(Errno::ESRCH))?;
    open(tgid, false)
}

/// The process (thread group) thread `tid` belongs to, from `/proc/TID/status`'s `Tgid`;
/// `None` when the thread is gone (its directory is missing, or its status has no `Tgid`
/// once it is reaped).
pub fn thread_group(tid: u32) -> std::result::Result<Option<u32>, Errno> {
    let status = match std::fs::read_to_string(format!("/proc/{tid}/status")) {
        Ok(status) => status,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => return Ok(None),
        Err(e) => return Err(e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)),
    };
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok()))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The pid a pidfd refers to, from its fdinfo.
    fn pid_of(fd: &OwnedFd) -> u32 {
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()));
        info.unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Pid:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn a_thread_that_is_not_its_leader_gives_its_process() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            tx.send(nix::unistd::gettid().as_raw()).unwrap();
            let _ = wait.recv();
        });
        let tid = u32::try_from(rx.recv().unwrap()).unwrap();
        assert_ne!(tid, std::process::id());
        let fd = open_process_of(tid).unwrap();
        assert_eq!(pid_of(&fd), std::process::id());
        drop(done);
        thread.join().unwrap();
        let gone = open_process_of(tid).unwrap_err();
        assert!(
            matches!(
                gone,
                SysError::Pidfd {
                    source: Errno::ESRCH,
                    ..
                }
            ),
            "{gone}"
        );
    }
}
