//! `chaperone-demo`: the learn → enforce story on a private containerd (see `scripts/demo.sh`).

// A command-line program prints.
#![allow(clippy::disallowed_macros)]

use std::path::PathBuf;
use std::process::ExitCode;

use chaperone_integration::cli;
use chaperone_integration::containerd::{self, Containerd};
use chaperone_integration::demo::{self, Options, VariantOutcome};
use chaperone_integration::say;

const USAGE: &str = "\
Usage: chaperone-demo --bin-dir DIR [--port N] [--benign-runs N] [--attack-runs N]
                      [--max-learn-runs N] [--variation-runs N] [--hot-coverage F]

Starts a private containerd whose chaperone runtime is DIR/containerd-shim-chaperone-v2,
builds a web-server image with a command-injection bug, learns it until its profile is
promoted to enforce, then runs benign traffic and the attack, each in fresh containers.
Needs root, containerd, ctr, runc and a static busybox at /bin/busybox.

  --bin-dir DIR         where containerd-shim-chaperone-v2 is installed
  --port N              the web server's port on 127.0.0.1 (default 18080)
  --benign-runs N       benign reruns under enforce (default 1)
  --attack-runs N       attack runs under enforce, at least 1 (default 1)
  --max-learn-runs N    give up if learning has not converged after N runs, at least 1
                        (default 60)
  --variation-runs N    before the attack, run each of 9 benign traffic variants learning
                        never sent (reordered, other names and paths, HEAD, browser
                        headers, a slow client, concurrent clients, longer) and each of 8
                        commands injected through the bug (cat, id, ls, wget, shell
                        builtins, ...) N times under enforce with the action alert, and
                        report false alarms and detections; the first benign variant is the
                        learned traffic itself (default 0: none)
  --hot-coverage F      enforce with this [filter] hot_coverage, 0 to 1 (default: chaperone's,
                        0.99); 0 traces every learned syscall, none runs in the kernel unseen

Exit codes: 0 the story held (benign runs silent, attacks stopped); 1 it did not, or a
step failed; 2 bad arguments; 141 its standard output was closed (| head); 128 + N ended by
signal N (SIGINT, SIGTERM, SIGHUP). Either way its containerd and containers are removed
first. The variants' false alarms and detections are reported, and do not change the exit
code: they measure the detector, the story is the demo's own traffic.";

/// The settings, or `None` when only help was asked for.
fn parse() -> Result<Option<(PathBuf, Options)>, String> {
    let mut opts = Options::default();
    let mut bin_dir = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|e| format!("{arg} {value}: {e}"))
        };
        match arg.as_str() {
            "--bin-dir" => bin_dir = Some(PathBuf::from(&value)),
            "--port" => opts.port = value.parse().map_err(|e| format!("--port {value}: {e}"))?,
            "--benign-runs" => opts.benign_runs = number()?,
            "--attack-runs" => opts.attack_runs = at_least_one(&arg, number()?)?,
            "--max-learn-runs" => opts.max_learn_runs = at_least_one(&arg, number()?)?,
            "--variation-runs" => opts.variation_runs = number()?,
            "--hot-coverage" => {
                let f: f64 = value
                    .parse()
                    .map_err(|e| format!("--hot-coverage {value}: {e}"))?;
                if !(0.0..=1.0).contains(&f) {
                    return Err(format!("--hot-coverage {value}: not in [0, 1]"));
                }
                opts.hot_coverage = Some(f);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Some((cli::bin_dir(bin_dir)?, opts)))
}

/// `n`, or an error when it is 0: the demo needs at least one attack and one learning run.
fn at_least_one(arg: &str, n: usize) -> Result<usize, String> {
    if n == 0 {
        return Err(format!("{arg} 0: the demo needs at least one"));
    }
    Ok(n)
}

/// Runs, runs with an alert, and alerts, over every variant of `outcomes`.
fn totals(outcomes: &[VariantOutcome]) -> (usize, usize, usize) {
    outcomes
        .iter()
        .fold((0, 0, 0), |(runs, alerted, alerts), v| {
            (runs + v.runs, alerted + v.alerted, alerts + v.alerts)
        })
}

fn main() -> ExitCode {
    cli::main("chaperone-demo", USAGE, parse, |(bin_dir, opts)| {
        // Watched before containerd starts: a signal meanwhile waits for the teardown.
        let signals = containerd::watch_signals()?;
        let ctrd = Containerd::start(&bin_dir)?;
        ctrd.teardown().on_signals("chaperone-demo", signals)?;
        say!(
            "==> a private containerd is running in {}",
            ctrd.dir().display()
        )?;
        let outcome = demo::run(&ctrd, &opts)?;
        say!(
            "\n==> {} learning runs ({} events); benign runs silent: {}/{}; attacks stopped: {}/{}",
            outcome.learn_runs,
            outcome.events,
            outcome.benign_silent.0,
            outcome.benign_silent.1,
            outcome.attacks_stopped.0,
            outcome.attacks_stopped.1
        )?;
        if !outcome.variations.is_empty() {
            let (runs, alerted, alerts) = totals(&outcome.variations);
            say!(
                "==> benign variation: {alerted} of {runs} runs raised a false alarm ({alerts} alerts) over {} variants",
                outcome.variations.len()
            )?;
            let (runs, alerted, _) = totals(&outcome.attack_variations);
            say!(
                "==> attack variation: {alerted} of {runs} runs detected over {} injected commands",
                outcome.attack_variations.len()
            )?;
        }
        if outcome.held() {
            say!("==> the story held: learned, benign traffic silent, the attack stopped")?;
            Ok(ExitCode::SUCCESS)
        } else {
            say!("==> the story did NOT hold")?;
            Ok(ExitCode::FAILURE)
        }
    })
}
