//! The listener protocol (runc → `listenerPath`): valid messages hand out the notify fd,
//! malformed ones are refused, and no fd leaks either way.

// An integration-test crate is test code as a whole; it has no #[cfg(test)] module to be in.
#![allow(clippy::tests_outside_test_module)]

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::Duration;

use chaperone_profiler::supervisor::listener::{handle, Listener, ListenerConfig, ListenerError};
use chaperone_profiler::supervisor::{ChildEnd, Filter, Op, TracedChild};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

/// Tests that count this process's fds must not overlap with other tests opening fds.
static FD_COUNTING: Mutex<()> = Mutex::new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn state_json(fds: &[&str], pid: i32) -> String {
    let names: Vec<String> = fds.iter().map(|f| format!("\"{f}\"")).collect();
    format!(
        r#"{{"ociVersion":"1.0.2","fds":[{}],"pid":{pid},"metadata":"image=busybox",
        "state":{{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":{pid},"bundle":"/b"}}}}"#,
        names.join(",")
    )
}

/// A real seccomp listener fd (from a traced child that is killed when the guard drops).
fn seccomp_fd() -> (TracedChild, OwnedFd) {
    let filter = Filter::notify_names(&["getppid"]).unwrap();
    let mut child = TracedChild::spawn(&filter, &[]).unwrap();
    let fd = child.take_listener().unwrap();
    (child, fd)
}

fn send(sock: &UnixStream, data: &[u8], fds: &[RawFd]) {
    let iov = [IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None).unwrap();
}

fn config() -> ListenerConfig {
    ListenerConfig {
        max_message: 4096,
        read_timeout: Duration::from_millis(200),
        peer_uid: nix::unistd::getuid().as_raw(),
    }
}

/// Sends `data` with `fds` over a fresh socketpair (the client end stays open, as runc's may)
/// and handles it.
fn exchange(data: &[u8], fds: &[RawFd], config: &ListenerConfig) -> Result<i32, ListenerError> {
    let (client, server) = UnixStream::pair().unwrap();
    send(&client, data, fds);
    let accepted = handle(server, config)?;
    assert_eq!(accepted.state.metadata().as_deref(), Some("image=busybox"));
    Ok(*accepted.state.pid())
}

#[test]
fn valid_message_hands_out_the_notify_fd() {
    let _guard = FD_COUNTING.lock().unwrap_or_else(|e| e.into_inner());
    let (_child, fd) = seccomp_fd();
    let json = state_json(&["seccompFd"], 4242);
    assert_eq!(
        exchange(json.as_bytes(), &[fd.as_raw_fd()], &config()).unwrap(),
        4242
    );

    // Split in two writes: the message is complete only once it parses.
    let (client, server) = UnixStream::pair().unwrap();
    let (head, tail) = json.as_bytes().split_at(20);
    send(&client, head, &[fd.as_raw_fd()]);
    send(&client, tail, &[]);
    let accepted = handle(server, &config()).unwrap();
    assert_eq!(accepted.state.fds(), &["seccompFd".to_owned()]);
}

#[test]
fn malformed_messages_are_dropped_without_leaking_fds() {
    let _guard = FD_COUNTING.lock().unwrap_or_else(|e| e.into_inner());
    let (child, fd) = seccomp_fd();
    let null = std::fs::File::open("/dev/null").unwrap();
    let good = state_json(&["seccompFd"], 4242);
    let cfg = config();
    let before = open_fds();

    let cases: Vec<(&str, Vec<u8>, Vec<RawFd>, ListenerConfig)> = vec![
        ("missing fd", good.clone().into_bytes(), vec![], cfg.clone()),
        (
            "extra fd",
            good.clone().into_bytes(),
            vec![fd.as_raw_fd(), null.as_raw_fd()],
            cfg.clone(),
        ),
        (
            "extra name",
            state_json(&["seccompFd", "other"], 1).into_bytes(),
            vec![fd.as_raw_fd(), null.as_raw_fd()],
            cfg.clone(),
        ),
        (
            "not a seccomp fd",
            good.clone().into_bytes(),
            vec![null.as_raw_fd()],
            cfg.clone(),
        ),
        (
            "bad json",
            b"{\"ociVersion\": [nope".to_vec(),
            vec![fd.as_raw_fd()],
            cfg.clone(),
        ),
        (
            "trailing garbage",
            format!("{good}}}").into_bytes(),
            vec![fd.as_raw_fd()],
            cfg.clone(),
        ),
        (
            "oversized",
            format!("{}{good}", " ".repeat(8192)).into_bytes(),
            vec![fd.as_raw_fd()],
            cfg.clone(),
        ),
        (
            "too many fds",
            good.clone().into_bytes(),
            vec![fd.as_raw_fd(); 20],
            cfg.clone(),
        ),
        (
            "no pid",
            state_json(&["seccompFd"], 0).into_bytes(),
            vec![fd.as_raw_fd()],
            cfg.clone(),
        ),
        (
            "incomplete then silence",
            good.as_bytes()[..30].to_vec(),
            vec![fd.as_raw_fd()],
            cfg.clone(),
        ),
        (
            "peer not the allowed uid",
            good.clone().into_bytes(),
            vec![fd.as_raw_fd()],
            ListenerConfig {
                peer_uid: 12345,
                ..cfg.clone()
            },
        ),
    ];
    for (what, data, fds, config) in &cases {
        let (client, server) = UnixStream::pair().unwrap();
        if data.len() > 4096 {
            // Larger than the socket buffer may take at once: send from a thread.
            let (data, fds) = (data.clone(), fds.clone());
            let c = client.try_clone().unwrap();
            std::thread::spawn(move || {
                let iov = [IoSlice::new(&data)];
                let cmsg = [ControlMessage::ScmRights(&fds)];
                let _ = sendmsg::<()>(c.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None);
            });
        } else {
            send(&client, data, fds);
        }
        let err = handle(server, config).expect_err(what);
        let ok = match *what {
            "missing fd" | "extra fd" | "extra name" | "too many fds" => {
                matches!(err, ListenerError::Fds { .. })
            }
            "not a seccomp fd" => matches!(err, ListenerError::NotSeccomp { .. }),
            "bad json" | "trailing garbage" => matches!(err, ListenerError::Json { .. }),
            "oversized" => matches!(err, ListenerError::Oversized { .. }),
            "no pid" => matches!(err, ListenerError::Pid { .. }),
            "incomplete then silence" => matches!(err, ListenerError::Timeout { .. }),
            _ => matches!(err, ListenerError::PeerUid { .. }),
        };
        assert!(ok, "{what}: {err:?}");
        drop(client);
    }
    // A refused seccomp listener is held by the thread that stops its filter's processes
    // until they are gone.
    kill(&child);
    fds_back_to(before);
}

/// SIGKILLs `child`'s process (its struct, and the fds it holds, stay).
fn kill(child: &TracedChild) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.pid()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
}

/// Waits (at most 10 s) until this process has `count` fds open.
fn fds_back_to(count: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while open_fds() != count {
        assert!(
            std::time::Instant::now() < deadline,
            "{} fds open, not {count}: a received fd was not closed",
            open_fds()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A refused connection's seccomp listener has the processes waiting on it stopped: runc init
/// waits in a notified `read` that nobody else would answer, and its `runc create` with it
/// (until 2026-12-07 they waited for ever, and the shim's Create with them).
#[test]
fn a_refused_connections_waiting_process_is_stopped() {
    let _guard = FD_COUNTING.lock().unwrap_or_else(|e| e.into_inner());
    let filter = Filter::notify_names(&["getppid"]).unwrap();
    let script = [Op::Syscall {
        nr: libc::SYS_getppid,
        args: [0; 6],
    }];
    let mut child = TracedChild::spawn(&filter, &script).unwrap();
    let fd = child.take_listener().unwrap();
    child.start().unwrap();
    exchange(b"{\"ociVersion\": [nope", &[fd.as_raw_fd()], &config()).unwrap_err();
    // Kept open, as runc init keeps its copy: with no listener left the kernel would fail the
    // call with ENOSYS instead.
    let _runc_inits_copy = fd;
    let (ended, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = ended.send(child.wait().map(|(end, _)| end));
    });
    let end = wait
        .recv_timeout(Duration::from_secs(20))
        .expect("the child still waits on its notification")
        .unwrap();
    assert_eq!(end, ChildEnd::Signaled(libc::SIGKILL));
}

#[test]
fn listener_socket_skips_bad_connections() {
    let _guard = FD_COUNTING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chaperone.sock");
    let listener = Listener::bind(&path, config()).unwrap();
    let (child, fd) = seccomp_fd();
    let before = open_fds();
    // A check that the socket is served (the shim's `delete` makes one): skipped, not counted.
    drop(UnixStream::connect(&path).unwrap());
    let bad = UnixStream::connect(&path).unwrap();
    send(&bad, b"not json", &[fd.as_raw_fd()]);
    drop(bad);
    let good = UnixStream::connect(&path).unwrap();
    send(
        &good,
        state_json(&["seccompFd"], 77).as_bytes(),
        &[fd.as_raw_fd()],
    );
    let accepted = listener.accept().unwrap();
    assert_eq!(*accepted.state.pid(), 77);
    let stats = listener.stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!((load(&stats.accepted), load(&stats.rejected)), (1, 1));
    drop(accepted);
    drop(good);
    kill(&child);
    fds_back_to(before);
    drop(listener);
    assert!(
        !path.exists(),
        "the socket file is removed with the listener"
    );
}

/// Set in the copy of this test binary that [`accept_retries_when_the_process_runs_out_of_fds`]
/// runs: lowering the fd limit must not reach the other tests' threads.
const OUT_OF_FDS_CHILD: &str = "CHAPERONE_TEST_OUT_OF_FDS_CHILD";

/// Runs the test `name` again in a child process of this binary with `OUT_OF_FDS_CHILD` set,
/// alone, and fails unless it passed there: what lowers the fd limit must not reach the other
/// tests' threads.
fn in_a_child_process(name: &str) {
    // The child's pipes are fds of this process too.
    let _guard = FD_COUNTING.lock().unwrap_or_else(|e| e.into_inner());
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(OUT_OF_FDS_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Lowers this process's fd limit to its lowest free fd, so that no new fd can be made;
/// returns the limits to restore.
fn no_fd_left() -> (u64, u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    // New fds take the lowest free number: a limit at it leaves none.
    let lowest_free = nix::unistd::dup(std::io::stdin()).unwrap();
    let limit = u64::try_from(lowest_free.as_raw_fd()).unwrap();
    drop(lowest_free);
    setrlimit(Resource::RLIMIT_NOFILE, limit, hard).unwrap();
    (soft, hard)
}

fn restore_fds((soft, hard): (u64, u64)) {
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, soft, hard).unwrap();
}

#[test]
fn accept_retries_when_the_process_runs_out_of_fds() {
    if std::env::var_os(OUT_OF_FDS_CHILD).is_some() {
        out_of_fds_child();
        return;
    }
    in_a_child_process("accept_retries_when_the_process_runs_out_of_fds");
}

/// A supervisor whose hang-up watcher cannot start (no fd for its copy of the listener, as no
/// thread would do) polls instead: the container is supervised, and its end is seen. Until
/// 2026-12-07 the notifier failed, which ended the container under either fail mode.
#[test]
fn a_notifier_without_its_watcher_polls_instead() {
    if std::env::var_os(OUT_OF_FDS_CHILD).is_none() {
        in_a_child_process("a_notifier_without_its_watcher_polls_instead");
        return;
    }
    use chaperone_profiler::supervisor::{Answer, KernelNotifier, Notifier, Received, Wait};
    let filter = Filter::notify_names(&["getppid"]).unwrap();
    let mut child = TracedChild::spawn(
        &filter,
        &[Op::Syscall {
            nr: libc::SYS_getppid,
            args: [0; 6],
        }],
    )
    .unwrap();
    let listener = child.take_listener().unwrap();
    let limits = no_fd_left();
    let made = KernelNotifier::new(listener, Wait::default());
    restore_fds(limits);
    let mut notifier = made.expect("a notifier that polls");
    child.start().unwrap();
    let Received::Event(event) = notifier.recv().unwrap() else {
        panic!("expected the getppid notification");
    };
    notifier.send(event.id, Answer::Continue).unwrap();
    child.wait().unwrap();
    assert_eq!(notifier.recv().unwrap(), Received::Closed);
}

/// With a connection waiting and no fd left for `accept`, the listener retries until one is
/// free again, then hands out the connection's notify fd.
fn out_of_fds_child() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Instant;

    let dir = tempfile::tempdir().unwrap();
    let listener = Arc::new(Listener::bind(&dir.path().join("chaperone.sock"), config()).unwrap());
    let (_child, fd) = seccomp_fd();
    let client = UnixStream::connect(listener.path()).unwrap();
    send(
        &client,
        state_json(&["seccompFd"], 78).as_bytes(),
        &[fd.as_raw_fd()],
    );
    let limits = no_fd_left();

    let (tx, rx) = std::sync::mpsc::channel();
    let accepting = Arc::clone(&listener);
    std::thread::spawn(move || tx.send(accepting.accept().map(|a| *a.state.pid())));
    let deadline = Instant::now() + Duration::from_secs(10);
    while listener.stats().accept_retries.load(Ordering::Relaxed) == 0 {
        if let Ok(result) = rx.try_recv() {
            panic!("accept returned while it had no fd: {result:?}");
        }
        assert!(Instant::now() < deadline, "accept never ran out of fds");
        std::thread::sleep(Duration::from_millis(5));
    }
    restore_fds(limits);
    let pid = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("accept returns once fds are free")
        .expect("the waiting connection is handed out");
    assert_eq!(pid, 78);
}

/// A peer that sends its message a byte at a time is refused once the read timeout has passed
/// for the whole message, not for each read (until 2026-12-07 it could hold the acceptor, and
/// every container behind it, as long as it kept sending).
#[test]
fn a_trickling_peer_is_refused_at_the_read_timeout() {
    let _guard = FD_COUNTING.lock().unwrap_or_else(|e| e.into_inner());
    let (client, server) = UnixStream::pair().unwrap();
    let trickle = std::thread::spawn(move || {
        // Whitespace keeps the JSON incomplete for ever.
        for _ in 0..40 {
            if send_some(&client, b" ").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let began = std::time::Instant::now();
    let err = handle(server, &config()).unwrap_err();
    assert!(matches!(err, ListenerError::Timeout { .. }), "{err:?}");
    // The timeout is 200 ms; by reads of 50 ms each it would run the whole 2 s.
    assert!(
        began.elapsed() < Duration::from_millis(1500),
        "{:?}",
        began.elapsed()
    );
    trickle.join().unwrap();
}

/// Like `send`, but a closed peer is an error rather than a panic.
fn send_some(sock: &UnixStream, data: &[u8]) -> nix::Result<usize> {
    let iov = [IoSlice::new(data)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &[], MsgFlags::empty(), None)
}
