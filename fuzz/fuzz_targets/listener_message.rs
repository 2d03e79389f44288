//! What runc sends on the seccomp listener socket (its state JSON, with the notify fd as
//! SCM_RIGHTS): any bytes, in any chunks, with or without an fd that is not a seccomp notify
//! fd, are refused with a `ListenerError`; never a panic, never an accepted container.
#![no_main]

use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use chaperone_profiler::supervisor::listener::{handle, ListenerConfig};
use libfuzzer_sys::fuzz_target;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

fuzz_target!(|data: &[u8]| {
    let Some((&how, message)) = data.split_first() else {
        return;
    };
    let (ours, theirs) = UnixStream::pair().expect("a socket pair");
    let null = std::fs::File::open("/dev/null").expect("/dev/null");
    let fds = [null.as_raw_fd()];
    // The low bit: attach an fd to the first chunk; the rest: how many chunks (1-128).
    let chunks = usize::from(how >> 1) + 1;
    let size = message.len().div_ceil(chunks).max(1);
    for (i, chunk) in message.chunks(size).enumerate() {
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let cmsgs: &[ControlMessage] = if i == 0 && how & 1 == 1 { &cmsg } else { &[] };
        if sendmsg::<()>(
            theirs.as_raw_fd(),
            &[IoSlice::new(chunk)],
            cmsgs,
            MsgFlags::empty(),
            None,
        )
        .is_err()
        {
            break;
        }
    }
    drop(theirs);
    let config = ListenerConfig {
        max_message: 4096,
        read_timeout: Duration::from_millis(200),
        peer_uid: nix::unistd::getuid().as_raw(),
    };
    assert!(
        handle(ours, &config).is_err(),
        "a message without a seccomp notify fd was accepted"
    );
});
