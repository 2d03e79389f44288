//! The supervisor against the real kernel: a forked child installs a notify filter (with
//! `no_new_privs`, no root needed) and runs a fixed script of raw syscalls; the test supervises
//! it. Children are killed and reaped on drop, so a failing test leaves nothing behind.

// An integration-test crate is test code as a whole; it has no #[cfg(test)] module to be in.
#![allow(clippy::tests_outside_test_module)]

use std::os::fd::OwnedFd;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use chaperone_profiler::model::{gram_symbols, NgramCounts, NgramScorer, Smoothing};
use chaperone_profiler::supervisor::{
    ChildEnd, Detect, Deviation, Event, Filter, Fixed, KernelNotifier, Learn, Mode, Notifier,
    Received, Responder, Stats, StatsSnapshot, Supervisor, SupervisorConfig, TracedChild, Verdict,
    Wait,
};
use chaperone_profiler::syscalls::{sym_of, Sym};

/// Longest a supervised script may take before the test fails (and kills the child).
const DEADLINE: Duration = Duration::from_secs(120);

fn sym(name: &str) -> Sym {
    sym_of(name).expect("known syscall")
}

fn call(nr: i64) -> chaperone_profiler::supervisor::Op {
    chaperone_profiler::supervisor::Op::Syscall { nr, args: [0; 6] }
}

/// Learn mode that also records every (tid, sym) in order, to check the stream exactly.
#[derive(Debug)]
struct Recording {
    learn: Learn,
    seen: Vec<(u32, Option<Sym>)>,
}

impl Mode for Recording {
    type Thread = <Learn as Mode>::Thread;
    fn begin_thread(&mut self) -> Self::Thread {
        self.learn.begin_thread()
    }
    fn empty_thread(&self) -> Self::Thread {
        self.learn.empty_thread()
    }
    fn on_event(&mut self, t: &mut Self::Thread, e: &Event) -> Option<Deviation> {
        self.seen.push((e.tid, e.sym));
        self.learn.on_event(t, e)
    }
}

/// Runs a supervisor over the child's listener on its own thread, starts the child and waits for
/// both (with a deadline). Returns the child's end, its results, the mode, the responder and
/// the counters.
fn supervise<M, R>(
    child: TracedChild,
    mode: M,
    responder: R,
    config: SupervisorConfig,
) -> (ChildEnd, Vec<i64>, M, R, StatsSnapshot)
where
    M: Mode + Send + 'static,
    M::Thread: Send,
    R: Responder + Send + 'static,
{
    supervise_with(child, mode, responder, config, Wait::default())
}

/// [`supervise`] with a chosen way of waiting for notifications.
fn supervise_with<M, R>(
    mut child: TracedChild,
    mode: M,
    responder: R,
    config: SupervisorConfig,
    wait: Wait,
) -> (ChildEnd, Vec<i64>, M, R, StatsSnapshot)
where
    M: Mode + Send + 'static,
    M::Thread: Send,
    R: Responder + Send + 'static,
{
    let listener = child.take_listener().expect("listener");
    let notifier = KernelNotifier::new(listener, wait).expect("notifier");
    let stats = Arc::new(Stats::default());
    let mut sup =
        Supervisor::new(notifier, mode, responder, config, stats.clone()).expect("supervisor");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let result = sup.run();
        let _ = tx.send((result, sup.into_parts()));
    });
    child.start().expect("start child");
    let (end, results) = child.wait().expect("wait child");
    // The child has exited: the listener hangs up and the loop ends.
    let (result, (mode, responder)) = rx.recv_timeout(DEADLINE).expect("supervisor ends");
    result.expect("supervisor loop");
    (end, results, mode, responder, stats.snapshot())
}

#[test]
fn learn_records_the_exact_sequence() {
    learn_exact_sequence(Wait::default());
}

#[test]
fn learn_records_the_exact_sequence_polling_before_recv() {
    learn_exact_sequence(Wait {
        block_in_recv: false,
        ..Wait::default()
    });
}

/// Learns a fixed script under `wait` (blocking in RECV with the hang-up watcher, or polling
/// first): the same exact sequence, and the loop ends when the child exits either way.
fn learn_exact_sequence(wait: Wait) {
    let filter = Filter::notify_names(&["getppid", "getuid", "getgid", "uname"]).unwrap();
    let script = [
        call(libc::SYS_getppid),
        call(libc::SYS_getuid),
        call(libc::SYS_getgid),
        call(libc::SYS_uname),
        call(libc::SYS_getppid),
        call(libc::SYS_getuid),
        // Not in the filter: runs untraced.
        call(libc::SYS_getpid),
    ];
    let child = TracedChild::spawn(&filter, &script).unwrap();
    let pid = child.pid();
    let mode = Recording {
        learn: Learn::new(NgramCounts::new(3).unwrap()),
        seen: Vec::new(),
    };
    let (end, results, mode, _, stats) = supervise_with(
        child,
        mode,
        Fixed::new(Verdict::Continue),
        Default::default(),
        wait,
    );

    assert_eq!(end, ChildEnd::Exited(0));
    let want: Vec<(u32, Option<Sym>)> =
        ["getppid", "getuid", "getgid", "uname", "getppid", "getuid"]
            .iter()
            .map(|n| (pid, Some(sym(n))))
            .collect();
    assert_eq!(mode.seen, want);
    // Continued syscalls really ran: getppid is us, uname(NULL) faults in the kernel.
    assert_eq!(results[0], i64::from(std::process::id()));
    assert_eq!(results[1], i64::from(nix::unistd::getuid().as_raw()));
    assert_eq!(results[3], -i64::from(libc::EFAULT));
    assert_eq!(results[6], i64::from(pid));

    let counts = mode.learn.counts();
    assert_eq!((counts.events(), counts.threads()), (6, 1));
    let trigram = [sym("getppid"), sym("getuid"), sym("getgid")];
    let found: Vec<_> = counts
        .iter()
        .filter(|&(g, _)| gram_symbols(g) == trigram)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "the trigram getppid getuid getgid was counted"
    );
    assert_eq!(stats.events, 6);
    assert_eq!(stats.continued, 6);
    assert_eq!((stats.denied, stats.deviations, stats.unknown), (0, 0, 0));
}

/// A scorer trained on getppid-only threads and a detector calibrated on them.
fn getppid_detector() -> Detect {
    let mut counts = NgramCounts::new(3).unwrap();
    let normal: Vec<Vec<Sym>> = (0..20).map(|_| vec![sym("getppid"); 8]).collect();
    for s in &normal {
        counts.learn_sequence(s);
    }
    let scorer = Arc::new(NgramScorer::new(&counts, Smoothing::default()).unwrap());
    let refs: Vec<&[Sym]> = normal.iter().map(Vec::as_slice).collect();
    Detect::calibrate(scorer, &refs, 0.05).unwrap()
}

#[test]
fn deny_returns_the_chosen_errno() {
    let filter = Filter::notify_names(&["getppid", "getuid"]).unwrap();
    let script = [
        call(libc::SYS_getppid),
        call(libc::SYS_getppid),
        call(libc::SYS_getuid),
    ];
    let child = TracedChild::spawn(&filter, &script).unwrap();
    let (end, results, _, responder, stats) = supervise(
        child,
        getppid_detector(),
        Fixed::new(Verdict::Deny {
            errno: libc::EACCES,
        }),
        Default::default(),
    );
    assert_eq!(end, ChildEnd::Exited(0));
    assert_eq!(
        results[0],
        i64::from(std::process::id()),
        "learned: continued"
    );
    assert_eq!(
        results[2],
        -i64::from(libc::EACCES),
        "never learned: denied"
    );
    assert_eq!(responder.seen, 1);
    assert_eq!((stats.deviations, stats.novel, stats.denied), (1, 1, 1));
}

#[test]
fn kill_ends_the_child() {
    let filter = Filter::notify_names(&["getppid", "getuid"]).unwrap();
    let script = [
        call(libc::SYS_getppid),
        call(libc::SYS_getuid),
        call(libc::SYS_getppid),
    ];
    let child = TracedChild::spawn(&filter, &script).unwrap();
    let (end, results, _, _, stats) = supervise(
        child,
        getppid_detector(),
        Fixed::new(Verdict::KillProcess),
        Default::default(),
    );
    assert_eq!(end, ChildEnd::Signaled(libc::SIGKILL));
    assert!(results.is_empty(), "killed before reporting: {results:?}");
    assert_eq!(stats.killed, 1);
    assert_eq!(stats.events, 2, "nothing after the offending getuid ran");
}

#[test]
fn ten_thousand_short_processes_keep_state_bounded() {
    let filter = Filter::notify_names(&["getppid"]).unwrap();
    let script = [chaperone_profiler::supervisor::Op::ShortChildren {
        count: 10_000,
        nr: libc::SYS_getppid,
    }];
    let child = TracedChild::spawn(&filter, &script).unwrap();
    let config = SupervisorConfig {
        max_threads: 64,
        ..Default::default()
    };
    let (end, results, learn, _, stats) = supervise(
        child,
        Learn::new(NgramCounts::new(3).unwrap()),
        Fixed::new(Verdict::Continue),
        config,
    );
    assert_eq!(end, ChildEnd::Exited(0));
    assert_eq!(results, vec![10_000]);
    assert_eq!(stats.events, 10_000);
    assert_eq!(stats.threads_started, 10_000);
    assert!(stats.threads_live <= 64, "{stats:?}");
    assert_eq!(
        stats.threads_reclaimed + stats.threads_live,
        10_000,
        "every dead process's state was reclaimed, none evicted: {stats:?}"
    );
    assert_eq!(stats.threads_evicted, 0);
    assert_eq!(learn.counts().threads(), 10_000);
}

#[test]
fn exit_frees_thread_state_at_once() {
    let filter = Filter::notify_names(&["getppid", "exit_group"]).unwrap();
    let script = [chaperone_profiler::supervisor::Op::ShortChildren {
        count: 100,
        nr: libc::SYS_getppid,
    }];
    let child = TracedChild::spawn(&filter, &script).unwrap();
    let (end, _, _, _, stats) = supervise(
        child,
        Learn::new(NgramCounts::new(2).unwrap()),
        Fixed::new(Verdict::Continue),
        Default::default(),
    );
    assert_eq!(end, ChildEnd::Exited(0));
    // 100 children (getppid + exit_group each) and the parent's own exit_group.
    assert_eq!(stats.events, 201);
    assert_eq!(stats.threads_started, 101);
    assert_eq!(stats.threads_reclaimed, 101);
    assert_eq!(stats.threads_live, 0);
}

/// Polls `cond` until it holds (or fails the test at the deadline).
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn answer_to_a_killed_thread_is_gone_not_an_error() {
    let filter = Filter::notify_names(&["getppid"]).unwrap();
    let mut child = TracedChild::spawn(&filter, &[call(libc::SYS_getppid)]).unwrap();
    let listener: OwnedFd = child.take_listener().unwrap();
    let mut n = KernelNotifier::new(listener, Wait::default()).unwrap();
    child.start().unwrap();
    let Received::Event(ev) = n.recv().unwrap() else {
        panic!("expected the getppid notification");
    };
    assert!(n.id_valid(ev.id));
    assert!(n.thread_alive(ev.tid));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.pid()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_until("the notification to be withdrawn", || !n.id_valid(ev.id));
    assert_eq!(
        n.send(ev.id, chaperone_profiler::supervisor::Answer::Continue)
            .unwrap(),
        chaperone_profiler::supervisor::Delivery::Gone
    );
    let (end, _) = child.wait().unwrap();
    assert_eq!(end, ChildEnd::Signaled(libc::SIGKILL));
    assert_eq!(n.recv().unwrap(), Received::Closed);
}

#[test]
fn sync_wake_up_is_detected() {
    let filter = Filter::notify_names(&["getppid"]).unwrap();
    let mut child = TracedChild::spawn(&filter, &[]).unwrap();
    let n = KernelNotifier::new(child.take_listener().unwrap(), Wait::default()).unwrap();
    let release = nix::sys::utsname::uname().unwrap();
    let release = release.release().to_string_lossy().into_owned();
    let mut parts = release
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    assert_eq!(n.sync_wake_up(), version >= (6, 6), "kernel {release}");
    let off = Wait {
        sync_wake_up: false,
        ..Wait::default()
    };
    let mut child2 = TracedChild::spawn(&filter, &[]).unwrap();
    let n2 = KernelNotifier::new(child2.take_listener().unwrap(), off).unwrap();
    assert!(!n2.sync_wake_up());
}
