//! The shim's only `unsafe` code, as safe wrappers (the rest of the crate denies it):
//! registering owned descriptors with tokio's reactor and setting a terminal's window size.
//! (Descriptors received over a socket come from the profiler's `supervisor::receive_fds`.)

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

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
