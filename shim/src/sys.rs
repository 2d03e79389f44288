//! The shim's only `unsafe` code, as safe wrappers (the rest of the crate denies it):
//! registering owned descriptors with tokio's reactor, setting a terminal's window size and
//! tuning glibc's allocator. (Descriptors received over a socket come from the profiler's
//! `supervisor::receive_fds`.)

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// Registers `inner` with the runtime's reactor. The bound asks that `inner` owns its
/// descriptor (it converts into an `OwnedFd`), which is what tokio needs to be sound.
pub fn async_fd<T>(inner: T) -> io::Result<AsyncFd<T>>
where
    T: AsRawFd,
    OwnedFd: From<T>,
{
    // SAFETY: `inner` owns the descriptor it returns (it converts into an OwnedFd), returns
    // the same one on every call, and keeps it open until the AsyncFd drops or returns it.
    unsafe { AsyncFd::register(inner) }.map_err(io::Error::from)
}

nix::ioctl_write_ptr_bad!(set_winsize, libc::TIOCSWINSZ, nix::pty::Winsize);

/// Sets the window size of the terminal `fd` (a pty master or slave).
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let size = nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one Winsize from the pointer, which is valid for the call; a
    // descriptor that is not a terminal fails with ENOTTY.
    unsafe { set_winsize(fd.as_raw_fd(), &size) }?;
    Ok(())
}

/// Makes every thread allocate from glibc's main arena. By default glibc gives each thread
/// that allocates an arena of its own (up to 8 per core), and each keeps the pages it once
/// used, in a shim of a dozen threads (tokio's, the blocking pool's, one per supervisor). With
/// `release_free_heap` and the profiler's growing thread tables it took the shim's anonymous
/// memory from 1.7 to 0.9 MB (its own share was not measured apart). The supervisors do not
/// allocate per syscall, so the one arena's lock is not on their path. Call it before any
/// thread starts.
pub fn one_malloc_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; it has no pointer arguments, and it
    // runs before the process starts a thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Returns the heap's free pages to the kernel (glibc keeps freed memory for reuse). Called
/// after the work that allocates the most and then frees it (Create's plan, a flush).
pub fn release_free_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim walks the allocator's own free lists under its lock; it takes no
    // pointer from us and may be called from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Sends signal number `signal` to process `pid`: any number kill(2) takes, the real-time
/// signals (`SIGRTMIN+3`, systemd's stop signal) and 0 included, as runc-v2 passes them on.
pub fn send_signal(pid: i32, signal: i32) -> nix::Result<()> {
    // SAFETY: kill(2) takes two integers; a number that is no signal fails with EINVAL.
    let rc = unsafe { libc::kill(pid, signal) };
    nix::errno::Errno::result(rc).map(drop)
}

/// The bytes waiting in the pipe or FIFO `fd` (FIONREAD), for tests that watch one fill.
#[cfg(test)]
pub fn queued_bytes(fd: BorrowedFd<'_>) -> io::Result<usize> {
    nix::ioctl_read_bad!(fionread, libc::FIONREAD, libc::c_int);
    let mut bytes: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into `bytes`, valid for the call; a descriptor it does
    // not apply to fails with ENOTTY.
    unsafe { fionread(fd.as_raw_fd(), &mut bytes) }?;
    usize::try_from(bytes).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn any_signal_number_is_sent() {
        use std::os::unix::process::ExitStatusExt;
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        send_signal(pid, 0).unwrap();
        assert_eq!(send_signal(pid, 99), Err(nix::errno::Errno::EINVAL));
        let rt = libc::SIGRTMIN() + 3;
        send_signal(pid, rt).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(rt));
    }

    #[test]
    fn a_window_size_needs_a_terminal() {
        let file = std::fs::File::open("/dev/null").unwrap();
        set_window_size(file.as_fd(), 24, 80).unwrap_err();
        let pty = nix::pty::openpty(None, None).unwrap();
        set_window_size(pty.master.as_fd(), 33, 77).unwrap();
        nix::ioctl_read_bad!(get_winsize, libc::TIOCGWINSZ, nix::pty::Winsize);
        let mut size = nix::pty::Winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one Winsize into `size`, valid for the call.
        unsafe { get_winsize(pty.slave.as_raw_fd(), &mut size) }.unwrap();
        assert_eq!((size.ws_row, size.ws_col), (33, 77));
    }
}
