//! A kill verdict that cannot open its pidfd (the supervisor out of file descriptors) is an
//! error, counted and logged as the action's failure, not "already gone". A test binary of its
//! own: it lowers the process's fd limit, which would fail other tests running beside it.

// An integration-test crate is test code as a whole; it has no #[cfg(test)] module to be in.
#![allow(clippy::tests_outside_test_module)]

use chaperone_profiler::supervisor::{
    Answer, ChildEnd, Filter, KernelNotifier, Notifier, Op, Received, TracedChild, Wait,
};

/// Sets the soft `RLIMIT_NOFILE` to `soft` (the hard one unchanged); returns the old limits.
fn set_soft_fd_limit(soft: u64) -> libc::rlimit {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to rlimit structs that outlive the calls.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
        let tight = libc::rlimit {
            rlim_cur: soft,
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &tight), 0);
    }
    old
}

#[test]
fn a_kill_without_a_free_fd_is_an_error_not_gone() {
    let filter = Filter::notify_names(&["getppid"]).unwrap();
    let script = [Op::Syscall {
        nr: libc::SYS_getppid,
        args: [0; 6],
    }];
    let mut child = TracedChild::spawn(&filter, &script).unwrap();
    let listener = child.take_listener().unwrap();
    let mut n = KernelNotifier::new(listener, Wait::default()).unwrap();
    child.start().unwrap();
    let Received::Event(ev) = n.recv().unwrap() else {
        panic!("expected the getppid notification");
    };
    // Every fd below the lowest free one is in use, so a limit equal to it leaves none.
    // SAFETY: dup of stdin and close of the fd it returned, which nothing else holds.
    let lowest = unsafe {
        let fd = libc::dup(0);
        assert!(fd >= 0);
        libc::close(fd);
        fd
    };
    let old = set_soft_fd_limit(u64::try_from(lowest).unwrap());
    let killed = n.kill_process(ev.tid, ev.id);
    // SAFETY: a valid pointer to the limits read before.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) }, 0);
    assert!(killed.is_err(), "{killed:?}");
    assert!(n.id_valid(ev.id), "the thread is alive and still held");
    n.send(ev.id, Answer::Continue).unwrap();
    let (end, _) = child.wait().unwrap();
    assert_eq!(end, ChildEnd::Exited(0));
}
