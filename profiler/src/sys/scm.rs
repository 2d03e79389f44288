//! Receiving data and file descriptors (`SCM_RIGHTS`) from a Unix socket.
//!
//! Written against libc rather than `nix::sys::socket::recvmsg` because nix refuses to walk the
//! control messages of a message whose control data was truncated (`MSG_CTRUNC`), and the fds
//! the kernel did install must then still be owned and closed: a peer must not be able to make
//! us leak descriptors by sending too many.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

use super::{Result, SysError};

/// Most fds one message may carry before its control data is truncated.
pub(crate) const MAX_FDS: usize = 8;
/// Control buffer in u64 words: `CMSG_SPACE(MAX_FDS * sizeof(int))` = 16 + 32 bytes.
const CMSG_WORDS: usize = 2 + MAX_FDS / 2;

/// One received chunk.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// Bytes written to the buffer (0 at end of stream).
    pub(crate) len: usize,
    /// File descriptors that came with it, owned (closed on drop).
    pub(crate) fds: Vec<OwnedFd>,
    /// The sender attached more fds (or control data) than fit: some were dropped.
    pub(crate) ctrunc: bool,
}

/// One `recvmsg(2)` into `buf`, taking ownership of every fd received (`MSG_CMSG_CLOEXEC`).
/// EINTR is retried.
pub(crate) fn recv(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Chunk> {
    let mut control = [0u64; CMSG_WORDS];
    loop {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: `msghdr` is plain old data for which all-zero bytes are valid.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = std::ptr::addr_of_mut!(iov);
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: `msg` points at one iovec over `buf` and at `control`, all valid and writable
        // for the duration of the call.
        let rc = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if rc < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                source => return Err(SysError::RecvMsg { source }),
            }
        }
        let len = usize::try_from(rc).unwrap_or(0);
        let mut fds = Vec::new();
        // SAFETY: `msg` was filled in by a successful recvmsg; its control pointer and length
        // describe the part of `control` the kernel wrote.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cmsg.is_null() {
            // SAFETY: CMSG_FIRSTHDR/NXTHDR only return headers inside the written control data.
            let hdr = unsafe { &*cmsg };
            if hdr.cmsg_level == libc::SOL_SOCKET && hdr.cmsg_type == libc::SCM_RIGHTS {
                // SAFETY: CMSG_LEN(0) is a constant computation.
                let header = unsafe { libc::CMSG_LEN(0) } as usize;
                let count = hdr.cmsg_len.saturating_sub(header) / std::mem::size_of::<i32>();
                // SAFETY: the header is valid, so its data follows it.
                let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<i32>();
                for i in 0..count {
                    // SAFETY: `i < count` ints lie inside this message's data (which may be
                    // unaligned, hence read_unaligned).
                    let raw = unsafe { data.add(i).read_unaligned() };
                    if raw >= 0 {
                        // SAFETY: the kernel installed this fd for us just now; nobody else
                        // owns it.
                        fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                    }
                }
            }
            // SAFETY: `msg` and `cmsg` are valid as above.
            cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
        }
        return Ok(Chunk {
            len,
            fds,
            ctrunc: msg.msg_flags & libc::MSG_CTRUNC != 0,
        });
    }
}
