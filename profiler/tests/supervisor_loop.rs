//! The supervisor loop against a fake [`Notifier`]: every verdict, action and kernel outcome,
//! without a kernel.

// An integration-test crate is test code as a whole; it has no #[cfg(test)] module to be in.
#![allow(clippy::tests_outside_test_module)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chaperone_profiler::model::{NgramCounts, NgramScorer, Smoothing};
use chaperone_profiler::supervisor::{
    ActionError, Answer, Delivery, Detect, Deviation, Learn, Mode, Notification, Notifier,
    Progress, Received, Responder, Result, Stats, Supervisor, SupervisorConfig, SupervisorError,
    Verdict,
};
use chaperone_profiler::syscalls::{sym_of, Arch, Sym};

/// The kills and actions of a [`Fake`] and a [`Scripted`] sharing it, in the order taken.
type Journal = Arc<Mutex<Vec<&'static str>>>;

/// Plays back notifications and records answers and kills.
#[derive(Debug, Default)]
struct Fake {
    journal: Journal,
    queue: VecDeque<Received>,
    answers: Vec<(u64, Answer)>,
    gone_on_send: Vec<u64>,
    fail_on_send: Vec<u64>,
    kills: Vec<(u32, u64)>,
    dead: Vec<u32>,
    /// (tid, from, until): the thread is dead while the last notification received has an
    /// id in `from..until` (after it, a new thread has its tid).
    dead_between: Vec<(u32, u64, u64)>,
    /// The id of the last notification received.
    last: u64,
    /// Notification ids the fake waits this long before delivering (time passing in between).
    delay_before: Vec<(u64, std::time::Duration)>,
}

impl Notifier for Fake {
    fn recv(&mut self) -> Result<Received> {
        let received = self.queue.pop_front().unwrap_or(Received::Closed);
        if let Received::Event(n) = &received {
            self.last = n.id;
            if let Some(&(_, delay)) = self.delay_before.iter().find(|(id, _)| *id == n.id) {
                std::thread::sleep(delay);
            }
        }
        Ok(received)
    }
    fn send(&mut self, id: u64, answer: Answer) -> Result<Delivery> {
        if self.fail_on_send.contains(&id) {
            return Err(SupervisorError::Config {
                reason: "send failed (test)",
            });
        }
        self.answers.push((id, answer));
        Ok(if self.gone_on_send.contains(&id) {
            Delivery::Gone
        } else {
            Delivery::Done
        })
    }
    fn id_valid(&mut self, _id: u64) -> bool {
        true
    }
    fn kill_process(&mut self, tid: u32, id: u64) -> Result<bool> {
        self.kills.push((tid, id));
        self.journal.lock().unwrap().push("kill process");
        Ok(true)
    }
    fn thread_alive(&mut self, tid: u32) -> bool {
        let between =
            |&(t, from, until): &(u32, u64, u64)| t == tid && (from..until).contains(&self.last);
        !self.dead.contains(&tid) && !self.dead_between.iter().any(between)
    }
}

fn nr(name: &str) -> i32 {
    let n = Arch::X86_64.number(sym_of(name).unwrap()).unwrap();
    i32::try_from(n).unwrap()
}

/// Notification `id`: thread `tid` calls `name` from an instruction of its own (`id`), so no
/// two are one call restarted.
fn ev(id: u64, tid: u32, name: &str) -> Received {
    call(id, tid, name, id, 0)
}

/// Notification `id`: thread `tid` calls `name` with first argument `arg` from address `ip`.
fn call(id: u64, tid: u32, name: &str, ip: u64, arg: u64) -> Received {
    Received::Event(Notification {
        id,
        tid,
        nr: nr(name),
        arch: Arch::X86_64.audit_arch(),
        args: [arg, 0, 0, 0, 0, 0],
        ip,
    })
}

/// Answers deviations with a fixed verdict and records container actions.
#[derive(Debug)]
struct Scripted {
    journal: Journal,
    verdict: Verdict,
    fail_actions: bool,
    /// What `container_killed` says: another supervisor of the container killed it.
    killed_elsewhere: bool,
    actions: Vec<&'static str>,
}

impl Responder for Scripted {
    fn on_deviation(&mut self, _d: &Deviation) -> Verdict {
        self.verdict
    }
    fn pause_container(&mut self, _d: &Deviation) -> std::result::Result<(), ActionError> {
        self.act("pause")
    }
    fn kill_container(&mut self, _d: &Deviation) -> std::result::Result<(), ActionError> {
        self.act("kill")
    }
    fn container_killed(&self) -> bool {
        self.killed_elsewhere
    }
}

impl Scripted {
    fn new(verdict: Verdict) -> Self {
        Self {
            journal: Journal::default(),
            verdict,
            fail_actions: false,
            killed_elsewhere: false,
            actions: Vec::new(),
        }
    }
    fn act(&mut self, what: &'static str) -> std::result::Result<(), ActionError> {
        self.actions.push(what);
        self.journal.lock().unwrap().push(what);
        if self.fail_actions {
            return Err(ActionError::Failed {
                action: what,
                source: "runc said no".into(),
            });
        }
        Ok(())
    }
}

fn detect() -> Detect {
    let mut counts = NgramCounts::new(2).unwrap();
    counts.learn_sequence(&[sym_of("getppid").unwrap(); 64]);
    let scorer = Arc::new(NgramScorer::new(&counts, Smoothing::default()).unwrap());
    Detect::new(scorer, 3.0).unwrap()
}

/// A learning supervisor of order 2 over `fake` that lets every syscall through.
fn learner(fake: Fake) -> Supervisor<Fake, Learn, Scripted> {
    Supervisor::new(
        fake,
        Learn::new(NgramCounts::new(2).unwrap()),
        Scripted::new(Verdict::Continue),
        SupervisorConfig::default(),
        Arc::new(Stats::default()),
    )
    .unwrap()
}

fn run(fake: Fake, responder: Scripted) -> (Vec<(u64, Answer)>, Scripted, Arc<Stats>) {
    let (sup, stats) = run_with(fake, detect(), responder, SupervisorConfig::default());
    let answers = sup.notifier().answers.clone();
    let (_, responder) = sup.into_parts();
    (answers, responder, stats)
}

#[test]
fn every_verdict_maps_to_its_answer() {
    for (verdict, want) in [
        (Verdict::Continue, Answer::Continue),
        (
            Verdict::Deny {
                errno: libc::EACCES,
            },
            Answer::Errno(libc::EACCES),
        ),
        (Verdict::KillProcess, Answer::Errno(libc::EPERM)),
        (Verdict::PauseContainer, Answer::Errno(libc::EPERM)),
        (Verdict::KillContainer, Answer::Errno(libc::EPERM)),
    ] {
        let fake = Fake {
            queue: [ev(1, 10, "getppid"), ev(2, 10, "mount")].into(),
            ..Fake::default()
        };
        let journal = Arc::clone(&fake.journal);
        let mut responder = Scripted::new(verdict);
        responder.journal = Arc::clone(&journal);
        let stats = Arc::new(Stats::default());
        let mut sup = Supervisor::new(
            fake,
            detect(),
            responder,
            SupervisorConfig::default(),
            stats.clone(),
        )
        .unwrap();
        assert_eq!(sup.step().unwrap(), Progress::Handled);
        assert_eq!(sup.step().unwrap(), Progress::Handled);
        assert_eq!(sup.step().unwrap(), Progress::Closed);
        let s = stats.snapshot();
        assert_eq!((s.events, s.deviations, s.novel), (2, 1, 1), "{verdict:?}");
        assert_eq!(sup.notifier().answers, [(1, Answer::Continue), (2, want)]);
        let kills = &sup.notifier().kills;
        // A container kill takes the offending process too, as a process kill does: after the
        // container's, so that the process's parent (woken by its death) cannot run on first.
        let kills_process = matches!(verdict, Verdict::KillProcess | Verdict::KillContainer);
        assert_eq!(kills.len(), usize::from(kills_process), "{verdict:?}");
        if verdict == Verdict::KillContainer {
            assert_eq!(*journal.lock().unwrap(), ["kill", "kill process"]);
        }
        let (_, responder) = sup.into_parts();
        match verdict {
            Verdict::PauseContainer => assert_eq!(responder.actions, ["pause"]),
            Verdict::KillContainer => assert_eq!(responder.actions, ["kill"]),
            _ => assert!(responder.actions.is_empty()),
        }
    }
}

/// Once the container is killed, what its processes still ask is denied unscored: a child
/// forked before the deviation must not get its `execve` while the kill goes through. A kill
/// that failed leaves the supervisor scoring as before.
#[test]
fn after_a_container_kill_every_syscall_is_denied_unscored() {
    for fail in [false, true] {
        let fake = Fake {
            queue: [
                ev(1, 10, "getppid"),
                ev(2, 10, "mount"),
                ev(3, 11, "getppid"),
                ev(4, 11, "getppid"),
            ]
            .into(),
            ..Fake::default()
        };
        let mut responder = Scripted::new(Verdict::KillContainer);
        responder.fail_actions = fail;
        let (answers, responder, stats) = run(fake, responder);
        let later = if fail {
            Answer::Continue
        } else {
            Answer::Errno(libc::EPERM)
        };
        assert_eq!(
            answers,
            [
                (1, Answer::Continue),
                (2, Answer::Errno(libc::EPERM)),
                (3, later),
                (4, later)
            ],
            "kill failing: {fail}"
        );
        let s = stats.snapshot();
        assert_eq!((s.events, s.deviations), (4, 1), "kill failing: {fail}");
        assert_eq!(s.container_kills, u64::from(!fail));
        assert_eq!(responder.actions, ["kill"]);
    }
}

#[test]
fn answers_reach_the_notifier_in_order() {
    let fake = Fake {
        queue: [
            ev(1, 10, "getppid"),
            ev(2, 10, "mount"),
            Received::Gone,
            ev(3, 11, "getppid"),
        ]
        .into(),
        gone_on_send: vec![3],
        ..Fake::default()
    };
    let stats = Arc::new(Stats::default());
    let mut sup = Supervisor::new(
        fake,
        detect(),
        Scripted::new(Verdict::KillProcess),
        SupervisorConfig::default(),
        stats.clone(),
    )
    .unwrap();
    let mut progress = Vec::new();
    loop {
        let p = sup.step().unwrap();
        progress.push(p);
        if p == Progress::Closed {
            break;
        }
    }
    assert_eq!(
        progress,
        [
            Progress::Handled,
            Progress::Handled,
            Progress::Gone,
            Progress::Gone,
            Progress::Closed
        ]
    );
    let s = stats.snapshot();
    assert_eq!((s.events, s.gone, s.killed, s.denied), (3, 2, 1, 1));
    assert_eq!(s.threads_started, 2);
}

#[test]
fn failed_actions_deny_and_count() {
    let fake = Fake {
        queue: [ev(1, 10, "mount")].into(),
        ..Fake::default()
    };
    let mut responder = Scripted::new(Verdict::PauseContainer);
    responder.fail_actions = true;
    let (answers, responder, stats) = run(fake, responder);
    assert_eq!(answers, [(1, Answer::Errno(libc::EPERM))]);
    let s = stats.snapshot();
    assert_eq!(responder.actions, ["pause"]);
    assert_eq!((s.action_failures, s.paused, s.denied), (1, 0, 1));
}

#[test]
fn unknown_numbers_and_abis_are_counted_and_novel() {
    let odd = |id, nr, arch| {
        Received::Event(Notification {
            id,
            tid: 5,
            nr,
            arch,
            args: [0; 6],
            ip: id,
        })
    };
    let fake = Fake {
        queue: [
            odd(1, 9999, Arch::X86_64.audit_arch()),
            odd(2, 39, 0x1234),
            odd(3, -1, Arch::X86_64.audit_arch()),
        ]
        .into(),
        ..Fake::default()
    };
    let (_, _, stats) = run(fake, Scripted::new(Verdict::Continue));
    let s = stats.snapshot();
    assert_eq!((s.unknown, s.novel, s.continued), (3, 3, 3));

    // Learn mode counts nothing for them.
    let fake = Fake {
        queue: [odd(1, 9999, Arch::X86_64.audit_arch()), ev(2, 5, "getppid")].into(),
        ..Fake::default()
    };
    let mut sup = learner(fake);
    sup.run().unwrap();
    assert_eq!(sup.mode().unknown(), 1);
    assert_eq!(sup.mode().counts().events(), 1);
}

#[test]
fn dead_threads_are_swept_when_the_table_fills() {
    let mut queue = VecDeque::new();
    for tid in 0..100u32 {
        queue.push_back(ev(u64::from(tid), 1000 + tid, "getppid"));
    }
    let fake = Fake {
        queue,
        dead: (1000..1090).collect(),
        ..Fake::default()
    };
    let stats = Arc::new(Stats::default());
    let config = SupervisorConfig {
        max_threads: 8,
        ..Default::default()
    };
    let mut sup = Supervisor::new(
        fake,
        detect(),
        Scripted::new(Verdict::Continue),
        config,
        stats.clone(),
    )
    .unwrap();
    sup.run().unwrap();
    let s = stats.snapshot();
    assert!(s.threads_live <= 8);
    assert_eq!(s.threads_started, 100);
    assert_eq!(
        s.threads_started,
        s.threads_live + s.threads_reclaimed + s.threads_evicted
    );
    assert!(s.threads_reclaimed >= 80, "{s:?}");
}

#[test]
fn bad_config_is_an_error() {
    for config in [
        SupervisorConfig {
            max_threads: 0,
            ..Default::default()
        },
        SupervisorConfig {
            deny_errno: 0,
            ..Default::default()
        },
    ] {
        let made = Supervisor::new(
            Fake::default(),
            detect(),
            Scripted::new(Verdict::Continue),
            config,
            Arc::new(Stats::default()),
        );
        assert!(matches!(made, Err(SupervisorError::Config { .. })));
    }
}

#[test]
fn the_syscall_held_across_a_pause_is_denied_when_it_repeats_after_the_thaw() {
    // Freezing interrupts the kernel's wait: the first answer finds the notification gone, and
    // the thawed thread makes the same call again. It is denied once, without a second pause.
    let fake = Fake {
        queue: [
            ev(1, 7, "getppid"),
            ev(2, 7, "mkdir"),
            ev(3, 7, "mkdir"),
            ev(4, 7, "getppid"),
        ]
        .into(),
        gone_on_send: vec![2],
        ..Fake::default()
    };
    let (answers, responder, stats) = run(fake, Scripted::new(Verdict::PauseContainer));
    assert_eq!(responder.actions, ["pause"]);
    assert_eq!(
        answers,
        [
            (1, Answer::Continue),
            (2, Answer::Errno(libc::EPERM)),
            (3, Answer::Errno(libc::EPERM)),
            (4, Answer::Continue),
        ]
    );
    assert_eq!(stats.snapshot().deviations, 1);
}

/// Once another supervisor of the container (an exec process's) has killed it, this one
/// denies everything it receives unscored, the calls the profile knows too.
#[test]
fn a_container_killed_by_another_supervisor_gets_every_call_denied() {
    let fake = Fake {
        queue: [ev(1, 7, "getppid"), ev(2, 7, "mkdir"), ev(3, 8, "getppid")].into(),
        ..Fake::default()
    };
    let responder = Scripted {
        killed_elsewhere: true,
        ..Scripted::new(Verdict::KillContainer)
    };
    let (answers, responder, stats) = run(fake, responder);
    let denied = Answer::Errno(libc::EPERM);
    assert_eq!(answers, [(1, denied), (2, denied), (3, denied)]);
    assert!(responder.actions.is_empty());
    assert_eq!(stats.snapshot().deviations, 0);
}

/// Two threads held when the container is frozen: thread 7's `mkdir` pauses it, and thread
/// 8's, queued meanwhile, is interrupted by the freeze and after the thaw pauses it again
/// (it was never scored). Each restart is then denied unscored: before 2026-12-07 only the
/// last pausing call was remembered, so thread 7's restart paused the container a third time,
/// and so on after every resume.
#[test]
fn the_syscalls_of_two_threads_held_across_pauses_are_each_denied_on_their_restart() {
    let fake = Fake {
        queue: [
            ev(1, 7, "getppid"),
            ev(2, 8, "getppid"),
            ev(3, 7, "mkdir"),
            ev(4, 8, "mkdir"),
            ev(5, 7, "mkdir"),
            ev(6, 8, "mkdir"),
            ev(7, 7, "getppid"),
            ev(8, 8, "getppid"),
        ]
        .into(),
        gone_on_send: vec![3, 4],
        ..Fake::default()
    };
    let (answers, responder, stats) = run(fake, Scripted::new(Verdict::PauseContainer));
    assert_eq!(responder.actions, ["pause", "pause"]);
    let denied = Answer::Errno(libc::EPERM);
    assert_eq!(
        answers,
        [
            (1, Answer::Continue),
            (2, Answer::Continue),
            (3, denied),
            (4, denied),
            (5, denied),
            (6, denied),
            (7, Answer::Continue),
            (8, Answer::Continue),
        ]
    );
    assert_eq!(stats.snapshot().deviations, 2);
}

/// A thread held across a pause whose next call is another one has moved on: a later call
/// like the held one is its own, and is scored.
#[test]
fn a_held_call_is_forgotten_once_its_thread_makes_another() {
    let fake = Fake {
        queue: [
            ev(1, 7, "getppid"),
            ev(2, 7, "mkdir"),
            ev(3, 7, "getppid"),
            ev(4, 7, "mkdir"),
        ]
        .into(),
        gone_on_send: vec![2],
        ..Fake::default()
    };
    let (_, responder, stats) = run(fake, Scripted::new(Verdict::PauseContainer));
    assert_eq!(responder.actions, ["pause", "pause"]);
    assert_eq!(stats.snapshot().deviations, 2);
}

/// When the pausing denial reaches its call (the freeze did not interrupt the wait), no
/// restart follows: the thread's next such call, after the thaw, is scored as any other.
#[test]
fn a_pausing_denial_delivered_leaves_the_next_call_to_be_scored() {
    let fake = Fake {
        queue: [ev(1, 7, "getppid"), ev(2, 7, "mkdir"), ev(3, 7, "mkdir")].into(),
        ..Fake::default()
    };
    let (answers, responder, stats) = run(fake, Scripted::new(Verdict::PauseContainer));
    assert_eq!(responder.actions, ["pause", "pause"]);
    assert_eq!(
        answers,
        [
            (1, Answer::Continue),
            (2, Answer::Errno(libc::EPERM)),
            (3, Answer::Errno(libc::EPERM)),
        ]
    );
    assert_eq!(stats.snapshot().deviations, 2);
}

#[test]
fn the_runtime_prelude_before_execve_is_not_learned() {
    let fake = Fake {
        queue: [
            ev(1, 5, "futex"),
            ev(2, 6, "futex"),
            ev(3, 5, "close"),
            ev(4, 5, "execve"),
            ev(5, 6, "futex"),
            ev(6, 5, "brk"),
            ev(7, 5, "exit_group"),
        ]
        .into(),
        ..Fake::default()
    };
    let stats = Arc::new(Stats::default());
    let config = SupervisorConfig {
        skip_until_exec: true,
        ..SupervisorConfig::default()
    };
    let mode = Learn::new(NgramCounts::new(2).unwrap());
    let mut sup = Supervisor::new(
        fake,
        mode,
        Scripted::new(Verdict::Continue),
        config,
        stats.clone(),
    )
    .unwrap();
    sup.run().unwrap();
    assert!(sup
        .notifier()
        .answers
        .iter()
        .all(|(_, a)| *a == Answer::Continue));
    let (learn, _) = sup.into_parts();
    // execve, brk, exit_group of the thread that executed the container; nothing else.
    assert_eq!(learn.counts().events(), 3);
    assert_eq!(stats.snapshot().prelude, 4);
}

#[test]
fn a_ticking_run_hands_over_what_it_learned_and_loses_nothing() {
    let mut queue = VecDeque::new();
    for id in 0..10u64 {
        queue.push_back(ev(id, 7, if id % 2 == 0 { "getppid" } else { "getpid" }));
    }
    let fake = Fake {
        queue,
        ..Fake::default()
    };
    let mut sup = learner(fake);
    // A zero interval ticks after every answered event.
    let mut taken = Vec::new();
    sup.run_ticking(std::time::Duration::ZERO, |learn| {
        taken.push(learn.take().counts)
    })
    .unwrap();
    assert_eq!(taken.len(), 10);
    assert!(taken.iter().all(|c| c.events() == 1), "one event per tick");
    assert_eq!(sup.notifier().answers.len(), 10, "every syscall answered");
    let mut merged = NgramCounts::new(2).unwrap();
    for c in &taken {
        merged.merge(c).unwrap();
    }
    merged.merge(sup.mode().counts()).unwrap();
    let mut whole = NgramCounts::new(2).unwrap();
    let syms: Vec<_> = (0..10)
        .map(|i| sym_of(if i % 2 == 0 { "getppid" } else { "getpid" }).unwrap())
        .collect();
    whole.learn_sequence(&syms);
    assert_eq!(merged, whole);
}

#[test]
fn a_failed_answer_leaves_its_notification_held_for_a_fallback() {
    let mut fake = Fake::default();
    fake.queue
        .extend([ev(1, 10, "getppid"), ev(2, 10, "getppid")]);
    fake.fail_on_send = vec![2];
    let mut sup = learner(fake);
    assert_eq!(sup.held(), None);
    assert_eq!(sup.step().unwrap(), Progress::Handled);
    assert_eq!(sup.held(), None, "answered");
    sup.step().unwrap_err();
    assert_eq!(sup.held(), Some(2), "its thread still waits for an answer");
}

/// A blocking call that a signal interrupts is restarted by the kernel and notified again, the
/// same call from the same instruction. Read as the program's own repeat it would deviate
/// (`wait4` never followed `wait4` while learning), so it is taken as the restart: let through,
/// neither scored nor moving the thread on. The same syscall with other arguments, or a repeat
/// of a call that was denied, is scored as ever.
#[test]
fn a_call_repeated_as_it_was_let_through_is_a_restart_not_a_deviation() {
    let mut counts = NgramCounts::new(2).unwrap();
    let (getppid, wait4) = (sym_of("getppid").unwrap(), sym_of("wait4").unwrap());
    let learned: Vec<Sym> = [getppid, wait4].repeat(5000);
    counts.learn_sequence(&learned);
    let scorer = Arc::new(NgramScorer::new(&counts, Smoothing::default()).unwrap());
    let fake = Fake {
        queue: [
            call(1, 10, "getppid", 100, 0),
            call(2, 10, "wait4", 200, 7),
            call(3, 10, "wait4", 200, 7),
            call(4, 10, "getppid", 100, 0),
            call(5, 10, "wait4", 200, 7),
            call(6, 10, "wait4", 200, 8),
            call(7, 10, "wait4", 200, 8),
        ]
        .into(),
        ..Fake::default()
    };
    let stats = Arc::new(Stats::default());
    let deny = Verdict::Deny {
        errno: libc::EACCES,
    };
    let mut sup = Supervisor::new(
        fake,
        Detect::new(scorer, 0.1).unwrap(),
        Scripted::new(deny),
        SupervisorConfig::default(),
        stats.clone(),
    )
    .unwrap();
    sup.run().unwrap();
    let denied = Answer::Errno(libc::EACCES);
    let want: Vec<(u64, Answer)> = (1..=5)
        .map(|id| (id, Answer::Continue))
        .chain([(6, denied), (7, denied)])
        .collect();
    let s = stats.snapshot();
    assert_eq!(sup.notifier().answers, want);
    assert_eq!((s.events, s.restarts, s.deviations), (7, 1, 2));
}

/// A call stopped and continued again and again, each time restarted: every repeat is one the
/// profile never saw, though none fills a window. Read as the program's own repeats (as they
/// were until 2026-12-03: no restarts here) they pile their surprisal into the window and move
/// the thread to a context never learned, where a later ordinary call can deviate (the web
/// server of `restart_ctr.rs`, at its `setsockopt`). Each is taken as the restart, so the
/// thread goes on where it was.
#[test]
fn restarts_that_deviate_no_window_yet_are_still_restarts() {
    let mut counts = NgramCounts::new(3).unwrap();
    let (getppid, wait4) = (sym_of("getppid").unwrap(), sym_of("wait4").unwrap());
    counts.learn_sequence(&[getppid, wait4].repeat(5000));
    let scorer = Arc::new(NgramScorer::new(&counts, Smoothing::default()).unwrap());
    let mut queue: Vec<Received> = (1..=10)
        .map(|id| {
            call(
                id,
                10,
                if id % 2 == 0 { "wait4" } else { "getppid" },
                100,
                0,
            )
        })
        .collect();
    queue.extend((11..=16).map(|id| call(id, 10, "wait4", 100, 0)));
    queue.push(call(17, 10, "getppid", 100, 0));
    let repeat = {
        let mut state = scorer.start();
        for &s in &[getppid, wait4] {
            scorer.step(&mut state, s);
        }
        scorer.step(&mut state, wait4).surprisal
    };
    // Above the threshold per event, far below it over a window of 32.
    let threshold = repeat / 4.0;
    let fake = Fake {
        queue: queue.into(),
        ..Fake::default()
    };
    let stats = Arc::new(Stats::default());
    let mut sup = Supervisor::new(
        fake,
        Detect::new(scorer, threshold).unwrap(),
        Scripted::new(Verdict::Deny {
            errno: libc::EACCES,
        }),
        SupervisorConfig::default(),
        stats.clone(),
    )
    .unwrap();
    sup.run().unwrap();
    let s = stats.snapshot();
    assert!(
        sup.notifier()
            .answers
            .iter()
            .all(|&(_, a)| a == Answer::Continue),
        "{:?}",
        sup.notifier().answers
    );
    assert_eq!((s.events, s.restarts, s.deviations), (17, 6, 0));
}

/// A scorer that learned `getppid wait4` over and over and `getppid getppid` once, the
/// surprisal of that rare pair, and a threshold that four of them in a window pass and three
/// do not.
fn rare_pair() -> (Arc<NgramScorer>, f32) {
    let mut counts = NgramCounts::new(2).unwrap();
    let (getppid, wait4) = (sym_of("getppid").unwrap(), sym_of("wait4").unwrap());
    let mut learned: Vec<Sym> = [getppid, wait4].repeat(5000);
    learned.extend([getppid, getppid]);
    counts.learn_sequence(&learned);
    let scorer = Arc::new(NgramScorer::new(&counts, Smoothing::default()).unwrap());
    let rare = {
        let mut state = scorer.start();
        scorer.step(&mut state, getppid);
        scorer.step(&mut state, getppid)
    };
    assert!(!rare.novel);
    (scorer, rare.surprisal * 3.5 / 32.0)
}

/// A sequence deviation that is denied does not happen: the thread's state stays as it was
/// before the call, so the program's retry of it, and the kernel's restart of it after a
/// signal cut the answer short, deviate and are denied again (each counted and reported), and
/// an ordinary call after them is let through. Until 2026-12-07 the deviation reset the
/// thread's window whatever its answer, and the retry went through.
#[test]
fn a_denied_sequence_deviation_is_denied_again_when_retried_or_restarted() {
    let (scorer, threshold) = rare_pair();
    // ids 1-5: `getppid` from different places, the fifth the fourth rare pair in a row.
    let mut queue: Vec<Received> = (1..=5).map(|id| call(id, 10, "getppid", id, 0)).collect();
    // The retry from the same place, then a retry whose answer finds it interrupted (Gone),
    // then the kernel's restart of that call, then an ordinary `wait4`.
    queue.extend([
        call(6, 10, "getppid", 5, 0),
        call(7, 10, "getppid", 5, 0),
        call(8, 10, "getppid", 5, 0),
        call(9, 10, "wait4", 9, 0),
    ]);
    let fake = Fake {
        queue: queue.into(),
        gone_on_send: vec![7],
        ..Fake::default()
    };
    let (sup, stats) = run_with(
        fake,
        Detect::new(scorer, threshold).unwrap(),
        Scripted::new(Verdict::Deny { errno: libc::EPERM }),
        SupervisorConfig::default(),
    );
    let denied = Answer::Errno(libc::EPERM);
    let want: Vec<(u64, Answer)> = (1..=4)
        .map(|id| (id, Answer::Continue))
        .chain([(5, denied), (6, denied), (7, denied), (8, denied)])
        .chain([(9, Answer::Continue)])
        .collect();
    assert_eq!(sup.notifier().answers, want);
    let s = stats.snapshot();
    assert_eq!((s.events, s.deviations, s.restarts), (9, 4, 0));
}

/// Runs a supervisor of `mode` over `fake`'s queue to its end, answering deviations with
/// `responder`; returns it and its counters.
fn run_with<M: Mode, R: Responder>(
    fake: Fake,
    mode: M,
    responder: R,
    config: SupervisorConfig,
) -> (Supervisor<Fake, M, R>, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let mut sup = Supervisor::new(fake, mode, responder, config, stats.clone()).unwrap();
    sup.run().unwrap();
    (sup, stats)
}

/// Records the recent calls of each deviation, and pauses.
#[derive(Debug, Default)]
struct Recorder {
    recents: Vec<Vec<Sym>>,
    pauses: u32,
    verdict: Option<Verdict>,
}

impl Responder for Recorder {
    fn on_deviation(&mut self, d: &Deviation) -> Verdict {
        self.recents.push(d.recent.to_vec());
        self.verdict.unwrap_or(Verdict::Continue)
    }
    fn pause_container(&mut self, _d: &Deviation) -> std::result::Result<(), ActionError> {
        self.pauses += 1;
        Ok(())
    }
}

/// Sweeping before every event, so that a thread's death is seen at the next one.
fn sweeping() -> SupervisorConfig {
    SupervisorConfig {
        sweep_period: std::time::Duration::ZERO,
        ..SupervisorConfig::default()
    }
}

/// Thread 7 dies without a notified exit (killed by a signal, or a sibling of an
/// `exit_group`), and a new process gets tid 7 later: it starts as a new thread, scored from
/// the start with none of the dead one's calls. Until 2026-12-07 the dead thread's entry
/// stayed until the table filled, and the new process carried on its state.
#[test]
fn a_thread_that_died_unnotified_is_swept_before_its_tid_returns() {
    let fake = Fake {
        queue: [
            ev(1, 7, "getppid"),
            ev(2, 7, "getppid"),
            ev(3, 7, "getppid"),
            ev(4, 8, "getppid"),
            ev(5, 7, "mkdir"),
        ]
        .into(),
        dead_between: vec![(7, 4, 5)],
        ..Fake::default()
    };
    let (sup, stats) = run_with(fake, detect(), Recorder::default(), sweeping());
    let (_, recorder) = sup.into_parts();
    let s = stats.snapshot();
    assert_eq!(s.threads_started, 3, "{s:?}");
    assert_eq!(s.threads_reclaimed, 1, "{s:?}");
    assert_eq!(recorder.recents, vec![vec![sym_of("mkdir").unwrap()]]);
}

/// Learning: a swept thread ends as one that exited (its piece is recorded), and the new
/// thread with its tid is learned apart from it.
#[test]
fn a_swept_thread_is_learned_as_ended() {
    let fake = Fake {
        queue: [
            ev(1, 7, "getppid"),
            ev(2, 7, "getuid"),
            ev(3, 8, "getppid"),
            ev(4, 7, "getpid"),
        ]
        .into(),
        dead_between: vec![(7, 3, 4)],
        ..Fake::default()
    };
    let (sup, _) = run_with(
        fake,
        Learn::new(NgramCounts::new(2).unwrap()).recording(),
        Scripted::new(Verdict::Continue),
        sweeping(),
    );
    let learned = sup.into_parts().0.into_parts();
    assert_eq!(learned.counts.threads(), 3);
    let mut lengths: Vec<usize> = learned.threads.iter().map(|p| p.syms.len()).collect();
    lengths.sort_unstable();
    assert_eq!(lengths, [1, 1, 2]);
}

/// The pausing call's restart after the thaw is denied unscored; when that denial finds the
/// call gone (a signal cut its wait short again), its next restart is still that call, denied
/// unscored, not a second pause. Until 2026-12-07 it was scored and paused again.
#[test]
fn a_paused_restart_cut_short_again_does_not_pause_again() {
    let fake = Fake {
        queue: [
            call(1, 7, "getppid", 50, 0),
            call(2, 7, "mkdir", 100, 0),
            call(3, 7, "mkdir", 100, 0),
            call(4, 7, "mkdir", 100, 0),
        ]
        .into(),
        gone_on_send: vec![2, 3],
        ..Fake::default()
    };
    let recorder = Recorder {
        verdict: Some(Verdict::PauseContainer),
        ..Recorder::default()
    };
    let (sup, stats) = run_with(fake, detect(), recorder, SupervisorConfig::default());
    let answers = sup.notifier().answers.clone();
    let (_, recorder) = sup.into_parts();
    assert_eq!(recorder.pauses, 1, "{answers:?}");
    assert_eq!(stats.snapshot().deviations, 1);
    assert!(answers[1..]
        .iter()
        .all(|(_, a)| matches!(a, Answer::Errno(_))));
}

/// An `exit_group` whose wait a signal cut short is called again: the same thread's, not the
/// start of a new one. Until 2026-12-07 the first removed the thread, and the profile learned
/// a thread that starts with `exit_group`.
#[test]
fn an_exit_cut_short_is_the_same_threads() {
    let fake = Fake {
        queue: [
            call(1, 7, "getppid", 50, 0),
            call(2, 7, "exit_group", 60, 0),
            call(3, 7, "exit_group", 60, 0),
        ]
        .into(),
        gone_on_send: vec![2],
        ..Fake::default()
    };
    let (sup, stats) = run_with(
        fake,
        Learn::new(NgramCounts::new(2).unwrap()).recording(),
        Scripted::new(Verdict::Continue),
        SupervisorConfig::default(),
    );
    let learned = sup.into_parts().0.into_parts();
    assert_eq!(learned.counts.threads(), 1);
    assert_eq!(stats.snapshot().threads_started, 1);
    assert_eq!(stats.snapshot().threads_reclaimed, 1);
}

/// A call scored while another supervisor of the container killed it is denied, though its
/// own verdict let it through. Until 2026-12-07 only calls received after the kill were.
#[test]
fn a_call_scored_during_a_kill_elsewhere_is_denied() {
    #[derive(Debug)]
    struct KilledWhileScoring(std::cell::Cell<bool>);
    impl Responder for KilledWhileScoring {
        fn on_deviation(&mut self, _d: &Deviation) -> Verdict {
            // Another supervisor kills the container while this one decides.
            self.0.set(true);
            Verdict::Continue
        }
        fn container_killed(&self) -> bool {
            self.0.get()
        }
    }
    let fake = Fake {
        queue: [ev(1, 7, "mkdir")].into(),
        ..Fake::default()
    };
    let (sup, _) = run_with(
        fake,
        detect(),
        KilledWhileScoring(std::cell::Cell::new(false)),
        SupervisorConfig::default(),
    );
    assert!(matches!(
        sup.notifier().answers.as_slice(),
        [(1, Answer::Errno(_))]
    ));
}

/// With a sweep period, the first event after it has passed sweeps, whatever that event is and
/// however few came before (until 2026-12-07 the time was looked at only every 4096 events).
#[test]
fn the_first_event_after_the_sweep_period_sweeps() {
    let fake = Fake {
        queue: [ev(1, 7, "getppid"), ev(2, 8, "getppid"), ev(3, 7, "mkdir")].into(),
        dead_between: vec![(7, 2, 3)],
        delay_before: vec![(2, std::time::Duration::from_millis(120))],
        ..Fake::default()
    };
    let stats = Arc::new(Stats::default());
    let config = SupervisorConfig {
        sweep_period: std::time::Duration::from_millis(50),
        ..SupervisorConfig::default()
    };
    let mut sup =
        Supervisor::new(fake, detect(), Recorder::default(), config, stats.clone()).unwrap();
    sup.run().unwrap();
    let (_, recorder) = sup.into_parts();
    let s = stats.snapshot();
    assert_eq!((s.threads_started, s.threads_reclaimed), (3, 1), "{s:?}");
    assert_eq!(recorder.recents, vec![vec![sym_of("mkdir").unwrap()]]);
}

/// A full table's entries that make room (evicted live threads, or dead ones swept) end as
/// threads that exited: learning keeps every call they made. Until 2026-12-07 only the
/// periodic sweep ended them, and an evicted thread's calls were lost.
#[test]
fn threads_that_make_room_are_learned() {
    let mut queue = VecDeque::new();
    let mut id = 0;
    for _round in 0..3 {
        for tid in 1..=5u32 {
            for name in ["getppid", "getuid"] {
                id += 1;
                queue.push_back(ev(id, tid, name));
            }
        }
    }
    let fake = Fake {
        queue,
        ..Fake::default()
    };
    let config = SupervisorConfig {
        max_threads: 4,
        ..SupervisorConfig::default()
    };
    let (sup, stats) = run_with(
        fake,
        Learn::new(NgramCounts::new(2).unwrap()).recording(),
        Scripted::new(Verdict::Continue),
        config,
    );
    let s = stats.snapshot();
    let learned = sup.into_parts().0.into_parts();
    assert!(s.threads_evicted > 0, "{s:?}");
    let recorded: usize = learned.threads.iter().map(|p| p.syms.len()).sum();
    assert_eq!(recorded, 30, "every call of every thread is recorded");
}

/// A thread whose call paused the container, evicted from a full table by other threads'
/// calls after the thaw (it was stopped, so the least recently active), still has that call
/// denied unscored on its restart: one pause, not two.
#[test]
fn an_evicted_paused_thread_keeps_its_held_call() {
    let mut queue = VecDeque::from([call(1, 7, "getppid", 50, 0), call(2, 7, "mkdir", 100, 0)]);
    for (i, tid) in (8..=11u32).enumerate() {
        let id = 3 + u64::try_from(i).unwrap();
        queue.push_back(call(id, tid, "getppid", 50, 0));
    }
    queue.push_back(call(10, 7, "mkdir", 100, 0));
    let fake = Fake {
        queue,
        gone_on_send: vec![2],
        ..Fake::default()
    };
    let recorder = Recorder {
        verdict: Some(Verdict::PauseContainer),
        ..Recorder::default()
    };
    let config = SupervisorConfig {
        max_threads: 4,
        ..SupervisorConfig::default()
    };
    let (sup, stats) = run_with(fake, detect(), recorder, config);
    let answers = sup.notifier().answers.clone();
    let (_, recorder) = sup.into_parts();
    assert!(stats.snapshot().threads_evicted > 0);
    assert_eq!(recorder.pauses, 1, "{answers:?}");
    assert!(matches!(answers.last(), Some((10, Answer::Errno(_)))));
}
