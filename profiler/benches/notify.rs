//! Cost of a traced syscall: `cargo bench -p chaperone-profiler --bench notify [-- --json]`
//! (or `scripts/bench-notify.sh`).
//!
//! A forked child calls getppid in a tight loop (timed in the child) while this process answers:
//! untraced (getppid allowed in-kernel), the kernel floor (a bare RECV + SEND(CONTINUE) loop),
//! the floor with the supervisor's poll, the supervisor in learn and in detect mode, each with
//! and without `SYNC_WAKE_UP`, plus pinned placements for reference, and the notifications per
//! second one supervisor sustains with two busy processes.
//!
//! The configurations run round-robin: each of `RUNS` rounds runs every configuration once,
//! starting one configuration later than the round before. A figure is the median of its
//! rounds; a ratio is the median of its per-round ratios, so that both sides of it were
//! measured seconds apart rather than minutes (the host sets the floor: on this VM it has been
//! 4.8 us one day and 2.1 us another, and it can move within a run as well).

// A report program: its output is the point (no per-event path here).
#![allow(clippy::disallowed_macros)]

use std::sync::Arc;
use std::thread;

use chaperone_profiler::model::{NgramCounts, NgramScorer, Smoothing};
use chaperone_profiler::supervisor::{
    Answer, Detect, Filter, Fixed, KernelNotifier, Learn, Notifier, Op, Received, Stats,
    Supervisor, SupervisorConfig, TracedChild, Verdict, Wait,
};
use chaperone_profiler::syscalls::sym_of;
use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;

const WARM: u64 = 2_000;
const TIMES: u64 = 20_000;
/// Rounds: each configuration runs once per round.
const RUNS: usize = 7;
/// Target from the issue: the supervisor's cost per traced syscall, learn and detect mode,
/// against the kernel floor (the same run's bare RECV + SEND loop).
const RATIO_TARGET: f64 = 1.2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Untraced,
    FloorRaw,
    FloorPoll,
    Learn,
    Detect,
}

#[derive(Debug, Clone, Copy)]
struct Setup {
    kind: Kind,
    sync: bool,
    /// Pin the child and the supervisor: (child cpu, supervisor cpu).
    pin: Option<(usize, usize)>,
    /// Busy processes (1: latency; 2: throughput).
    ways: u32,
    /// Non-blocking polls before blocking.
    spin: u32,
    /// Block in RECV with the hang-up watcher (the default) instead of polling first.
    block: bool,
}

fn pin_me(cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu).expect("cpu index");
    sched_setaffinity(Pid::from_raw(0), &set).expect("sched_setaffinity");
}

fn detector() -> Detect {
    let getppid = sym_of("getppid").expect("getppid");
    let mut counts = NgramCounts::new(chaperone_config::DEFAULT_ORDER).expect("order");
    counts.learn_sequence(&vec![getppid; 1000]);
    let scorer = Arc::new(NgramScorer::new(&counts, Smoothing::default()).expect("scorer"));
    Detect::new(scorer, 5.0).expect("detect")
}

/// Runs one configuration; returns ns per syscall (ways = 1) or notifications/s (ways > 1).
fn run(setup: Setup) -> f64 {
    let traced = if setup.kind == Kind::Untraced {
        "getuid"
    } else {
        "getppid"
    };
    let filter = Filter::notify_names(&[traced]).expect("filter");
    let nr = libc::SYS_getppid;
    let script = [
        Op::Repeat { nr, times: WARM },
        Op::Parallel {
            ways: setup.ways,
            nr,
            times: TIMES,
        },
    ];
    let mut child =
        TracedChild::spawn_on(&filter, &script, setup.pin.map(|p| p.0)).expect("spawn child");
    let wait = Wait {
        sync_wake_up: setup.sync,
        block_in_recv: setup.block && setup.kind != Kind::FloorPoll,
        spin_polls: setup.spin,
    };
    let mut notifier = KernelNotifier::new(child.take_listener().expect("fd"), wait).expect("fd");
    let expected = WARM + TIMES * u64::from(setup.ways);
    let pin = setup.pin.map(|p| p.1);
    let kind = setup.kind;
    let sup = thread::spawn(move || {
        if let Some(cpu) = pin {
            pin_me(cpu);
        }
        let stats = Arc::new(Stats::default());
        let config = SupervisorConfig::default();
        match kind {
            Kind::Untraced => {}
            Kind::FloorRaw => {
                for _ in 0..expected {
                    if let Received::Event(n) = notifier.recv_blocking().expect("recv") {
                        notifier.send(n.id, Answer::Continue).expect("send");
                    }
                }
            }
            Kind::FloorPoll => loop {
                match notifier.recv().expect("recv") {
                    Received::Closed => break,
                    Received::Gone => {}
                    Received::Event(n) => {
                        notifier.send(n.id, Answer::Continue).expect("send");
                    }
                }
            },
            Kind::Learn => {
                let learn =
                    Learn::new(NgramCounts::new(chaperone_config::DEFAULT_ORDER).expect("order"));
                let responder = Fixed::new(Verdict::Continue);
                let mut s =
                    Supervisor::new(notifier, learn, responder, config, stats).expect("supervisor");
                s.run().expect("run");
            }
            Kind::Detect => {
                let responder = Fixed::new(Verdict::Continue);
                let mut s = Supervisor::new(notifier, detector(), responder, config, stats)
                    .expect("supervisor");
                s.run().expect("run");
                assert_eq!(s.stats().snapshot().deviations, 0, "a clean run");
            }
        }
    });
    child.start().expect("start");
    let (end, results) = child.wait().expect("wait");
    sup.join().expect("supervisor thread");
    assert_eq!(
        end,
        chaperone_profiler::supervisor::ChildEnd::Exited(0),
        "child"
    );
    let elapsed = results[1] as f64;
    if setup.ways > 1 {
        (TIMES * u64::from(setup.ways)) as f64 / elapsed * 1e9
    } else {
        elapsed / TIMES as f64
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs each of `setups` once per round for `RUNS` rounds, round `r` starting at setup `r`
/// (modulo their number); returns each setup's figures in round order.
fn round_robin(setups: &[Setup]) -> Vec<Vec<f64>> {
    let mut figures = vec![Vec::with_capacity(RUNS); setups.len()];
    for round in 0..RUNS {
        for k in 0..setups.len() {
            let i = (round + k) % setups.len();
            figures[i].push(run(setups[i]));
        }
    }
    figures
}

/// The median over rounds of `num[r] / den[r]`.
fn ratio(num: &[f64], den: &[f64]) -> f64 {
    median(num.iter().zip(den).map(|(n, d)| n / d).collect())
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    // Whether the kernel has SYNC_WAKE_UP (6.6+): probe it on a throw-away listener.
    let sync_available = {
        let filter = Filter::notify_names(&["getppid"]).expect("filter");
        let mut c = TracedChild::spawn(&filter, &[]).expect("probe child");
        KernelNotifier::new(c.take_listener().expect("fd"), Wait::default())
            .expect("probe")
            .sync_wake_up()
    };
    let one = |kind, sync| Setup {
        kind,
        sync,
        pin: None,
        ways: 1,
        spin: 0,
        block: true,
    };
    let mut rows: Vec<(&str, Setup)> = Vec::new();
    let mut add = |name: &'static str, setup: Setup| {
        rows.push((name, setup));
        rows.len() - 1
    };
    let untraced = add("untraced (filter installed)", one(Kind::Untraced, false));
    let floor = add("floor: RECV+SEND, sync wake-up", one(Kind::FloorRaw, true));
    add("floor: RECV+SEND, no sync", one(Kind::FloorRaw, false));
    let floor_poll = add("floor: poll+RECV+SEND, sync", one(Kind::FloorPoll, true));
    add(
        "floor: poll+RECV+SEND, no sync",
        one(Kind::FloorPoll, false),
    );
    let learn = add("supervisor learn, sync", one(Kind::Learn, true));
    add("supervisor learn, no sync", one(Kind::Learn, false));
    let detect = add("supervisor detect, sync", one(Kind::Detect, true));
    add("supervisor detect, no sync", one(Kind::Detect, false));
    let polled = |kind| Setup {
        block: false,
        ..one(kind, true)
    };
    add(
        "supervisor learn, poll before RECV, sync",
        polled(Kind::Learn),
    );
    add(
        "supervisor detect, poll before RECV, sync",
        polled(Kind::Detect),
    );
    if cpus >= 2 {
        let pinned = |same: bool| Setup {
            pin: Some((0, if same { 0 } else { 1 })),
            ..one(Kind::Learn, false)
        };
        add("learn, no sync, pinned same cpu", pinned(true));
        add("learn, no sync, pinned other cpus", pinned(false));
    }
    add(
        "learn, spin 2000 polls, no sync",
        Setup {
            spin: 2000,
            block: false,
            ..one(Kind::Learn, false)
        },
    );
    let two = |sync| Setup {
        ways: 2,
        ..one(Kind::Learn, sync)
    };
    let notifs = add("learn, 2 busy processes, sync", two(true));
    add("learn, 2 busy processes, no sync", two(false));

    let setups: Vec<Setup> = rows.iter().map(|r| r.1).collect();
    let figures = round_robin(&setups);
    let medians: Vec<f64> = figures.iter().map(|f| median(f.clone())).collect();
    if !json {
        for ((name, setup), v) in rows.iter().zip(&medians) {
            let unit = if setup.ways > 1 {
                "notifs/s"
            } else {
                "ns/call"
            };
            println!("{name:<44} {v:>12.0} {unit}");
        }
    }
    let learn_ratio = ratio(&figures[learn], &figures[floor]);
    let detect_ratio = ratio(&figures[detect], &figures[floor]);
    let floor_vs_untraced = ratio(&figures[floor], &figures[untraced]);
    let learn_vs_untraced = ratio(&figures[learn], &figures[untraced]);
    let target_met = learn_ratio <= RATIO_TARGET && detect_ratio <= RATIO_TARGET;
    let (untraced, floor, floor_poll, learn, detect, notifs) = (
        medians[untraced],
        medians[floor],
        medians[floor_poll],
        medians[learn],
        medians[detect],
        medians[notifs],
    );

    if json {
        println!(
            "{{\"untraced_ns\":{untraced:.1},\"floor_ns\":{floor:.1},\"floor_poll_ns\":{floor_poll:.1},\
             \"learn_ns\":{learn:.1},\"detect_ns\":{detect:.1},\"learn_ratio\":{learn_ratio:.3},\
             \"detect_ratio\":{detect_ratio:.3},\"floor_vs_untraced\":{floor_vs_untraced:.1},\
             \"learn_vs_untraced\":{learn_vs_untraced:.1},\"notifs_per_s\":{notifs:.0},\
             \"sync_wake_up\":{sync_available},\"rounds\":{RUNS},\"target_met\":{target_met}}}"
        );
    } else {
        println!(
            "learn/floor = {learn_ratio:.2}x, detect/floor = {detect_ratio:.2}x, \
             floor/untraced = {floor_vs_untraced:.1}x, learn/untraced = {learn_vs_untraced:.1}x \
             (medians of {RUNS} interleaved rounds' ratios), sync_wake_up available: \
             {sync_available}"
        );
        println!(
            "target: learn/floor and detect/floor <= {RATIO_TARGET}: {}",
            if target_met { "met" } else { "NOT met" }
        );
    }
}
