//! The shim's only `unsafe` code, as safe wrappers (the rest of the crate denies it):
//! registering owned descriptors with tokio's reactor, owning a descriptor received over a
//! socket, and setting a terminal's window size.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::cmsg_space;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
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

/// Receives one message on `socket` and owns the first descriptor it carried
/// (`MSG_CMSG_CLOEXEC`); any others are closed. `None` when none came.
pub fn receive_fd(socket: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    let mut data = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut data)];
    let mut space = cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<UnixAddr>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            for fd in raw {
                // SAFETY: the kernel installed this descriptor for us just now; nothing else
                // owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok(fds.into_iter().next())
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
    fn a_descriptor_sent_over_a_socket_is_received_and_owned() {
        use nix::sys::socket::{
            sendmsg, socketpair, AddressFamily, ControlMessage, SockFlag, SockType,
        };
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        let fds = [file.as_raw_fd()];
        let iov = [std::io::IoSlice::new(b"/dev/ptmx")];
        sendmsg::<UnixAddr>(
            a.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let got = receive_fd(b.as_fd()).unwrap().unwrap();
        assert_ne!(got.as_raw_fd(), file.as_raw_fd());
        // A message without descriptors gives none.
        nix::unistd::write(&a, b"x").unwrap();
        assert!(receive_fd(b.as_fd()).unwrap().is_none());
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
