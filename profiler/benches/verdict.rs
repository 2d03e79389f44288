//! Verdict latency: `cargo bench -p chaperone-profiler --bench verdict [-- --json]`
//! (or `scripts/bench.sh`).
//!
//! How long a deviating syscall takes from the moment it is notified to the supervisor until
//! the verdict has been carried out, with the supervisor in detect mode (a model learned on
//! getppid only, so getpid is never-learned and deviates on every call):
//!
//! - deny: the supervisor answers the held getpid with EPERM (`Verdict::Deny`). Timed in the
//!   traced child, one syscall at a time, from entry to return. In the same children and under
//!   the same supervisor, the learned getppid (no deviation, answered "continue") is timed the
//!   same way, interleaved with the denied calls, as the baseline.
//! - kill: a fresh child per sample calls getpid once; the supervisor kills it, either with
//!   `Verdict::KillProcess` (pidfd SIGKILL in the supervisor) or with `Verdict::KillContainer`
//!   through a responder that calls [`kill_pid`] on the child. Timed from when the supervisor
//!   receives the notification to when this process has reaped the child (`waitpid`).
//!   Its baseline, the kill floor, is timed the same way in the same loop: the same child held
//!   in the same call by a bare RECV loop (no supervisor, no model), which kills it with a plain
//!   `kill(SIGKILL)` as soon as the call is notified. What the floor leaves out is what the
//!   supervisor adds: scoring, the verdict and the pidfd.
//!
//! Targets (from the issue): deny p99 <= 1 ms, kill p99 <= 50 ms. They are reported, not
//! enforced: the program fails only when a run does not behave as set up (a checked assertion).
//! Each is printed with its ratio to its baseline: deny p99 / continue p99, kill p99 / kill
//! floor p99.
//!
//! The first deviation of each child takes about twice as long as the next ones (cold paths in
//! the supervisor and the kernel); it is one sample in `PAIRS`, so it shows in deny's p99 and
//! not in its p50. In production a deviation is rare and always that cold one, so the deny
//! target is checked on every sample. The p99 ratio leaves each child's first timed call of
//! each kind out of both sides: continue has no cold call to match deny's (its first calls are
//! the warm-up), and without that deny's p99 would be its cold calls against continue's warm
//! ones.

// A report program: its output is the point (no per-event path here).
#![allow(clippy::disallowed_macros)]

use std::sync::Arc;
use std::thread;
use std::time::Instant;

use chaperone_profiler::model::{NgramCounts, NgramScorer, Smoothing};
use chaperone_profiler::supervisor::{
    kill_pid, ActionError, ChildEnd, Delivery, Detect, Deviation, Filter, Fixed, KernelNotifier,
    Notifier, Op, Received, Responder, Stats, StatsSnapshot, Supervisor, SupervisorConfig,
    TracedChild, Verdict, Wait, MAX_OPS,
};
use chaperone_profiler::syscalls::sym_of;

/// Learned calls each child makes before the timed ones (first-touch costs stay out).
const WARM: u64 = 20;
/// Timed (continue, deny) pairs per child: the script holds `MAX_OPS` steps, one of them the
/// warm-up and one the final check that a denied call returns EPERM.
const PAIRS: usize = (MAX_OPS - 2) / 2;
/// Children for the deny measurement: `DENY_CHILDREN * PAIRS` samples of each kind.
const DENY_CHILDREN: usize = 334;
/// Fresh children per kill variant.
const KILL_CHILDREN: usize = 500;
/// Targets from the issue, in milliseconds.
const DENY_P99_TARGET_MS: f64 = 1.0;
const KILL_P99_TARGET_MS: f64 = 50.0;

/// The learned syscall (answered "continue") and the never-learned one (a deviation).
const LEARNED: i64 = libc::SYS_getppid;
const DEVIANT: i64 = libc::SYS_getpid;
const TRACED: [&str; 2] = ["getppid", "getpid"];

fn detector() -> Detect {
    let getppid = sym_of("getppid").expect("getppid");
    let mut counts = NgramCounts::new(chaperone_config::DEFAULT_ORDER).expect("order");
    counts.learn_sequence(&vec![getppid; 1000]);
    let scorer = Arc::new(NgramScorer::new(&counts, Smoothing::default()).expect("scorer"));
    Detect::new(scorer, 5.0).expect("detect")
}

fn once(nr: i64) -> Op {
    Op::Repeat { nr, times: 1 }
}

/// Whether step `i` of a deny child's pairs (0-based over the timed steps) is the deviant
/// call. Odd children start their pairs with the deviant call, even ones with the learned one.
fn is_deviant(child: usize, i: usize) -> bool {
    (i + child) % 2 == 1
}

/// Nanoseconds per call, in the child: continued learned calls and denied deviant calls, all
/// of them and (`*_warm`) without each child's first timed call of the kind.
#[derive(Debug, Default)]
struct DenySamples {
    continued: Vec<f64>,
    denied: Vec<f64>,
    continued_warm: Vec<f64>,
    denied_warm: Vec<f64>,
}

/// One child: warm-up, `PAIRS` interleaved single timed calls, a final deviant call whose
/// return value is checked.
fn deny_child(index: usize, detect: &Detect, out: &mut DenySamples) {
    let filter = Filter::notify_names(&TRACED).expect("filter");
    let mut script = vec![Op::Repeat {
        nr: LEARNED,
        times: WARM,
    }];
    script.extend((0..2 * PAIRS).map(|i| {
        once(if is_deviant(index, i) {
            DEVIANT
        } else {
            LEARNED
        })
    }));
    script.push(Op::Syscall {
        nr: DEVIANT,
        args: [0; 6],
    });
    let mut child = TracedChild::spawn(&filter, &script).expect("spawn child");
    let notifier =
        KernelNotifier::new(child.take_listener().expect("fd"), Wait::default()).expect("fd");
    let detect = detect.clone();
    let sup = thread::spawn(move || {
        let stats = Arc::new(Stats::default());
        let responder = Fixed::new(Verdict::Deny { errno: libc::EPERM });
        let mut s = Supervisor::new(
            notifier,
            detect,
            responder,
            SupervisorConfig::default(),
            stats,
        )
        .expect("supervisor");
        s.run().expect("run");
        s.stats().snapshot()
    });
    child.start().expect("start");
    let (end, results) = child.wait().expect("wait");
    let stats = sup.join().expect("supervisor thread");
    assert_eq!(end, ChildEnd::Exited(0), "deny child");
    assert_eq!(results.len(), script.len(), "one result per step");
    assert_eq!(
        results[script.len() - 1],
        -i64::from(libc::EPERM),
        "the deviant call is denied with EPERM"
    );
    let deviant = PAIRS as u64 + 1;
    assert_eq!(
        (stats.deviations, stats.novel, stats.denied),
        (deviant, deviant, deviant),
        "every deviant call and only those deviate: {stats:?}"
    );
    assert_eq!(stats.continued, WARM + PAIRS as u64, "{stats:?}");
    let (mut first_denied, mut first_continued) = (true, true);
    for (i, &ns) in results[1..=2 * PAIRS].iter().enumerate() {
        assert!(ns > 0, "elapsed time of step {i}: {ns}");
        let ns = ns as f64;
        if is_deviant(index, i) {
            out.denied.push(ns);
            if !std::mem::take(&mut first_denied) {
                out.denied_warm.push(ns);
            }
        } else {
            out.continued.push(ns);
            if !std::mem::take(&mut first_continued) {
                out.continued_warm.push(ns);
            }
        }
    }
}

/// A kernel notifier that notes when the deviant syscall's notification is received.
#[derive(Debug)]
struct Timed {
    inner: KernelNotifier,
    notified: Option<Instant>,
}

impl Notifier for Timed {
    fn recv(&mut self) -> chaperone_profiler::supervisor::Result<Received> {
        let received = self.inner.recv()?;
        if let Received::Event(n) = &received {
            if i64::from(n.nr) == DEVIANT && self.notified.is_none() {
                self.notified = Some(Instant::now());
            }
        }
        Ok(received)
    }

    fn send(
        &mut self,
        id: u64,
        answer: chaperone_profiler::supervisor::Answer,
    ) -> chaperone_profiler::supervisor::Result<Delivery> {
        self.inner.send(id, answer)
    }

    fn id_valid(&mut self, id: u64) -> bool {
        self.inner.id_valid(id)
    }

    fn kill_process(&mut self, tid: u32, id: u64) -> chaperone_profiler::supervisor::Result<bool> {
        self.inner.kill_process(tid, id)
    }

    fn thread_alive(&mut self, tid: u32) -> bool {
        self.inner.thread_alive(tid)
    }
}

/// A responder that kills "the container" (here: the traced child) with [`kill_pid`].
#[derive(Debug)]
struct KillChild {
    pid: u32,
}

impl Responder for KillChild {
    fn on_deviation(&mut self, _deviation: &Deviation) -> Verdict {
        Verdict::KillContainer
    }

    fn kill_container(&mut self, _deviation: &Deviation) -> Result<(), ActionError> {
        match kill_pid(self.pid) {
            Ok(_) => Ok(()),
            Err(e) => Err(ActionError::Failed {
                action: "kill container",
                source: Box::new(e),
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    /// `Verdict::KillProcess`: the supervisor's own pidfd SIGKILL.
    Process,
    /// `Verdict::KillContainer` with [`KillChild`].
    Container,
    /// The baseline: a bare RECV loop continues the learned calls and `kill(SIGKILL)`s the
    /// child at its deviant call.
    Floor,
}

/// The kill floor's loop: answers the learned calls, kills the child at the deviant call's
/// notification; returns when it was received.
fn bare_kill(notifier: &mut Timed, pid: u32) -> Option<Instant> {
    loop {
        match notifier.recv().expect("recv") {
            Received::Event(n) if i64::from(n.nr) == DEVIANT => {
                let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid"));
                nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill");
                return notifier.notified;
            }
            Received::Event(n) => {
                notifier
                    .send(n.id, chaperone_profiler::supervisor::Answer::Continue)
                    .expect("send");
            }
            Received::Gone => {}
            Received::Closed => return None,
        }
    }
}

/// One fresh child killed at its first deviant call; returns ms from notification to reaping.
fn kill_child(kind: Kill, detect: &Detect) -> f64 {
    let filter = Filter::notify_names(&TRACED).expect("filter");
    let script = [
        Op::Repeat {
            nr: LEARNED,
            times: WARM,
        },
        Op::Syscall {
            nr: DEVIANT,
            args: [0; 6],
        },
        // Never reached.
        Op::Syscall {
            nr: LEARNED,
            args: [0; 6],
        },
    ];
    let mut child = TracedChild::spawn(&filter, &script).expect("spawn child");
    let pid = child.pid();
    let mut notifier = Timed {
        inner: KernelNotifier::new(child.take_listener().expect("fd"), Wait::default())
            .expect("fd"),
        notified: None,
    };
    let detect = detect.clone();
    let sup = thread::spawn(move || -> (Option<Instant>, StatsSnapshot) {
        let stats = Arc::new(Stats::default());
        let config = SupervisorConfig::default();
        match kind {
            Kill::Process => {
                let responder = Fixed::new(Verdict::KillProcess);
                let mut s = Supervisor::new(notifier, detect, responder, config, stats)
                    .expect("supervisor");
                s.run().expect("run");
                (s.notifier().notified, s.stats().snapshot())
            }
            Kill::Container => {
                let responder = KillChild { pid };
                let mut s = Supervisor::new(notifier, detect, responder, config, stats)
                    .expect("supervisor");
                s.run().expect("run");
                (s.notifier().notified, s.stats().snapshot())
            }
            Kill::Floor => (bare_kill(&mut notifier, pid), StatsSnapshot::default()),
        }
    });
    child.start().expect("start");
    let (end, results) = child.wait().expect("wait");
    let reaped = Instant::now();
    let (notified, stats) = sup.join().expect("supervisor thread");
    assert_eq!(end, ChildEnd::Signaled(libc::SIGKILL), "kill child");
    assert!(results.is_empty(), "killed before reporting: {results:?}");
    // The floor has no supervisor and no counters: the signal and the empty results above are
    // its check.
    if kind != Kill::Floor {
        let killed = if kind == Kill::Process {
            stats.killed
        } else {
            stats.container_kills
        };
        assert_eq!(
            (killed, stats.deviations, stats.action_failures),
            (1, 1, 0),
            "{stats:?}"
        );
        assert_eq!(stats.events, WARM + 1, "nothing ran after the deviant call");
    }
    let notified = notified.expect("the deviant call was notified");
    reaped.duration_since(notified).as_secs_f64() * 1e3
}

/// Nearest-rank percentile (`pct` in 1..=100) of ascending `sorted`.
fn percentile(sorted: &[f64], pct: usize) -> f64 {
    let rank = (sorted.len() * pct).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// (p50, p99) of `v`.
fn p50_p99(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (percentile(&v, 50), percentile(&v, 99))
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let detect = detector();
    let started = Instant::now();

    // One throw-away child of each kind: first-use costs (thread stacks, page faults).
    deny_child(0, &detect, &mut DenySamples::default());
    kill_child(Kill::Process, &detect);
    kill_child(Kill::Container, &detect);
    kill_child(Kill::Floor, &detect);

    let mut deny = DenySamples::default();
    for i in 0..DENY_CHILDREN {
        deny_child(i, &detect, &mut deny);
    }
    let samples = deny.denied.len();
    let to_ms = |v: Vec<f64>| v.into_iter().map(|ns| ns / 1e6).collect::<Vec<f64>>();
    let (deny_p50, deny_p99) = p50_p99(to_ms(deny.denied));
    let (cont_p50, cont_p99) = p50_p99(to_ms(deny.continued));
    let warm_samples = deny.denied_warm.len();
    let (deny_warm_p50, deny_warm_p99) = p50_p99(to_ms(deny.denied_warm));
    let (cont_warm_p50, cont_warm_p99) = p50_p99(to_ms(deny.continued_warm));

    // Rotate the kill variants and their floor so that noise hits all three alike.
    let kinds = [Kill::Floor, Kill::Process, Kill::Container];
    let mut kills: [Vec<f64>; 3] = Default::default();
    for i in 0..KILL_CHILDREN {
        for k in 0..kinds.len() {
            let j = (i + k) % kinds.len();
            kills[j].push(kill_child(kinds[j], &detect));
        }
    }
    let [floor, kill_process, kill_container] = kills;
    let (floor_p50, floor_p99) = p50_p99(floor);
    let (kill_p50, kill_p99) = p50_p99(kill_process);
    let (kc_p50, kc_p99) = p50_p99(kill_container);
    let ratio = deny_p50 / cont_p50;
    let ratio_p99 = deny_warm_p99 / cont_warm_p99;
    let kill_ratio = kill_p99 / floor_p99;
    let kc_ratio = kc_p99 / floor_p99;
    let deny_ok = deny_p99 <= DENY_P99_TARGET_MS;
    let kill_ok = kill_p99 <= KILL_P99_TARGET_MS;

    if json {
        println!(
            "{{\"deny_p50_ms\":{deny_p50:.6},\"deny_p99_ms\":{deny_p99:.6},\
             \"continue_p50_ms\":{cont_p50:.6},\"continue_p99_ms\":{cont_p99:.6},\
             \"deny_vs_continue\":{ratio:.3},\"kill_p50_ms\":{kill_p50:.6},\
             \"kill_p99_ms\":{kill_p99:.6},\"deny_warm_p99_ms\":{deny_warm_p99:.6},\
             \"continue_warm_p99_ms\":{cont_warm_p99:.6},\"deny_vs_continue_p99\":{ratio_p99:.3},\
             \"kill_container_p50_ms\":{kc_p50:.6},\"kill_container_p99_ms\":{kc_p99:.6},\
             \"kill_floor_p50_ms\":{floor_p50:.6},\"kill_floor_p99_ms\":{floor_p99:.6},\
             \"kill_vs_floor\":{kill_ratio:.3},\"kill_container_vs_floor\":{kc_ratio:.3}}}"
        );
        return;
    }
    let row = |label: String, p50: f64, p99: f64| println!("{label:<50} {p50:>9.4} {p99:>9.4}");
    println!(
        "{:<50} {:>9} {:>9}",
        "verdict latency, detect mode (ms)", "p50", "p99"
    );
    row(
        format!("deny: EPERM, syscall time in the child ({samples})"),
        deny_p50,
        deny_p99,
    );
    row(
        format!("continue: learned call, same children ({samples})"),
        cont_p50,
        cont_p99,
    );
    row(
        format!("deny, each child's first left out ({warm_samples})"),
        deny_warm_p50,
        deny_warm_p99,
    );
    row(
        format!("continue, each child's first left out ({warm_samples})"),
        cont_warm_p50,
        cont_warm_p99,
    );
    row(
        format!("kill floor: kill(SIGKILL), bare RECV ({KILL_CHILDREN})"),
        floor_p50,
        floor_p99,
    );
    row(
        format!("kill process: notified -> reaped ({KILL_CHILDREN})"),
        kill_p50,
        kill_p99,
    );
    row(
        format!("kill container (kill_pid): same ({KILL_CHILDREN})"),
        kc_p50,
        kc_p99,
    );
    println!(
        "deny/continue (p50) = {ratio:.2}x; deny/continue (p99, each child's first call of \
         each kind left out) = {ratio_p99:.2}x"
    );
    println!(
        "kill process/floor (p99) = {kill_ratio:.2}x; kill container/floor (p99) = {kc_ratio:.2}x"
    );
    println!(
        "targets: deny p99 <= {DENY_P99_TARGET_MS} ms: {}; kill p99 <= {KILL_P99_TARGET_MS} ms: {}",
        met(deny_ok),
        met(kill_ok)
    );
    println!("({:.1} s)", started.elapsed().as_secs_f64());
}
