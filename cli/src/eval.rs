//! `chaperone eval`: detection quality on recorded traces.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use chaperone_config::DEFAULT_HOT_COVERAGE;
use chaperone_profiler::detector::Kind;
use chaperone_profiler::eval::{evaluate, EvalSet, Protocol, Report};
use chaperone_profiler::model::NgramCounts;
use chaperone_profiler::syscalls::Arch;
use chaperone_profiler::tiers::{hot_set, untraced};
use chaperone_profiler::trace::{self, Format, Trace};

use crate::out::{report_skipped, usage};

/// Arguments of `chaperone eval`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Protocol p1 (default): train on the training traces; sort the normal traces by name; choose \
the threshold on those at odd positions (1, 3, 5, ...), measure the false-alarm rate (FAR) on \
those at even positions and the detection rate (DR) on every attack trace. ROC AUC compares \
attacks with all normal traces (ties count half). Protocol p2 also trains on normal traces with \
i % 3 == 0, calibrates on i % 3 == 1 and measures FAR on i % 3 == 2.

Detectors (higher scores are more anomalous): ngram, the smoothed order-8 back-off model the \
shim runs, mean surprisal per syscall; sets, cover's score, but a trace whose syscall set is \
farther (Jaccard) from every training trace's set than all but the --far share of the \
calibration traces ranks above all the others; cover, the fewest pieces of training sequences a \
trace is made of, its start and end counted, per syscall; hmm, a 16-state hidden Markov model, mean \
surprisal; markov, a first-order chain (baseline); stide, the share of 6-grams never seen in \
training (baseline).

With --format adfa, DIR holds Training_Data_Master/, Validation_Data_Master/ and \
Attack_Data_Master/<Family>_<N>/. Other formats take --train, --normal and --attack paths \
(files or directories); each --attack path is one attack family, named after its last \
component without a trailing _N.

Exit status: 0 on success, 1 when the traces cannot be read or evaluated, 2 on bad usage.")]
pub struct EvalArgs {
    /// Trace format: adfa, unm, sysdig or strace.
    #[arg(long, value_parser = parse_format)]
    format: Format,
    /// ADFA-LD directory (only with --format adfa).
    dir: Option<PathBuf>,
    /// Normal traces to learn from (not with adfa).
    #[arg(long, value_name = "PATH", num_args = 1..)]
    train: Vec<PathBuf>,
    /// Held-back normal traces for the threshold and the false-alarm rate (not with adfa).
    #[arg(long, value_name = "PATH", num_args = 1..)]
    normal: Vec<PathBuf>,
    /// Attack traces, one family per path (not with adfa).
    #[arg(long, value_name = "PATH", num_args = 1..)]
    attack: Vec<PathBuf>,
    /// Target false-alarm rate the threshold is calibrated to (below one in the calibration
    /// traces, the threshold extrapolates their scores' tail: docs/adr/0023).
    #[arg(long, default_value_t = 0.05, value_parser = parse_far, allow_negative_numbers = true)]
    far: f64,
    /// Detector to evaluate: ngram, sets, cover, hmm, markov, stide, or all.
    #[arg(long, default_value = "ngram", value_parser = parse_detectors)]
    detector: DetectorChoice,
    /// Split protocol: p1 or p2.
    #[arg(long, default_value = "p1", value_parser = parse_protocol)]
    protocol: Protocol,
    /// Syscall numbering of the unm format, and of the calls strace printed by number
    /// (`syscall_0x1c4`): x86_64, i386 or aarch64 (adfa is always i386).
    #[arg(long, default_value = "x86_64", value_parser = parse_arch)]
    arch: Arch,
    /// Drop the syscalls the live supervisor never traces from every trace first: those never
    /// notified (write, futex, mmap, rt_sigreturn..., see docs/adr/0008) and the hot set the
    /// tiered filter runs in the kernel (see --hot-coverage). Detection as the shim sees
    /// containers in monitor and enforce mode.
    #[arg(long)]
    traced_only: bool,
    /// With --traced-only: the share of the training events the hot set covers, as
    /// `[filter] hot_coverage` in the shim's config (0 keeps every syscall but the never-notified).
    #[arg(long, default_value_t = DEFAULT_HOT_COVERAGE, value_parser = parse_coverage, value_name = "SHARE", requires = "traced_only")]
    hot_coverage: f64,
    /// Print one JSON object per detector on its own line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone)]
struct DetectorChoice(Vec<Kind>);

fn parse_detectors(s: &str) -> Result<DetectorChoice, String> {
    if s == "all" {
        return Ok(DetectorChoice(Kind::ALL.to_vec()));
    }
    s.parse::<Kind>()
        .map(|k| DetectorChoice(vec![k]))
        .map_err(|e| format!("{e}, all"))
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn parse_arch(s: &str) -> Result<Arch, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    s.parse()
}

fn parse_far(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not in (0, 1)"))
    }
}

fn parse_coverage(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not in [0, 1]"))
    }
}

/// Progress lines on stderr, only when it is a terminal.
struct Progress {
    on: bool,
    started: Instant,
}

impl Progress {
    fn new() -> Self {
        Self {
            on: std::io::stderr().is_terminal(),
            started: Instant::now(),
        }
    }

    fn say(&self, what: &str) {
        if self.on {
            eprintln!("[{:6.2}s] {what}", self.started.elapsed().as_secs_f64());
        }
    }
}

/// The attack family of an `--attack` path: its last component without extension and run number.
fn family_of(path: &Path) -> String {
    let name = path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    trace::family_of(&name).to_owned()
}

fn read_all(format: Format, paths: &[PathBuf], arch: Arch) -> Result<Vec<Trace>> {
    let mut out = Vec::new();
    for p in paths {
        let parsed = trace::read_traces_with_skipped(format, p, arch)
            .with_context(|| format!("reading {}", p.display()))?;
        report_skipped(p, &parsed.skipped);
        out.extend(parsed.traces);
    }
    Ok(out)
}

fn load(args: &EvalArgs) -> Result<EvalSet> {
    if args.format == Format::Adfa {
        let Some(dir) = &args.dir else {
            usage!("--format adfa needs the ADFA-LD directory as an argument");
        };
        if !(args.train.is_empty() && args.normal.is_empty() && args.attack.is_empty()) {
            usage!("--train, --normal and --attack are not used with --format adfa");
        }
        return Ok(EvalSet::from(trace::read_adfa(dir)?));
    }
    if args.dir.is_some() {
        usage!("a directory argument is only used with --format adfa; give --train, --normal and --attack");
    }
    for (flag, list) in [
        ("--train", &args.train),
        ("--normal", &args.normal),
        ("--attack", &args.attack),
    ] {
        if list.is_empty() {
            usage!("--format {} needs at least one {flag} path", args.format);
        }
    }
    let mut normal = read_all(args.format, &args.normal, args.arch)?;
    normal.sort_by(|a, b| a.source.cmp(&b.source));
    let mut attacks = Vec::new();
    for p in &args.attack {
        let family = family_of(p);
        for t in read_all(args.format, std::slice::from_ref(p), args.arch)? {
            attacks.push((family.clone(), t));
        }
    }
    Ok(EvalSet {
        training: read_all(args.format, &args.train, args.arch)?,
        normal,
        attacks,
    })
}

/// Runs `chaperone eval`.
pub fn run(args: &EvalArgs) -> Result<()> {
    let progress = Progress::new();
    progress.say("reading traces");
    let mut set = load(args)?;
    if args.traced_only {
        let mut counts = NgramCounts::new(1)?;
        for t in &set.training {
            counts.learn_sequence(&t.events);
        }
        let hot = hot_set(&counts, args.hot_coverage, &BTreeSet::new());
        let untraced = untraced(&hot);
        let dropped = set.retain(|s| !untraced.contains(&s));
        progress.say(&format!(
            "--traced-only: dropped {dropped} events of {} syscalls chaperone does not trace ({} hot at coverage {})",
            untraced.len(),
            hot.len(),
            args.hot_coverage
        ));
    }
    progress.say(&format!(
        "read {} training, {} normal and {} attack traces",
        set.training.len(),
        set.normal.len(),
        set.attacks.len()
    ));
    let mut out = std::io::stdout().lock();
    let mut reports = Vec::new();
    for &kind in &args.detector.0 {
        progress.say(&format!("training and scoring {kind}"));
        let report = evaluate(kind, &set, args.protocol, args.far)
            .with_context(|| format!("evaluating the {kind} detector"))?;
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&report)?)?;
        }
        reports.push(report);
    }
    if !args.json {
        print_table(&mut out, &reports, args.far)?;
    }
    Ok(())
}

fn print_table(out: &mut impl Write, reports: &[Report], far: f64) -> Result<()> {
    writeln!(
        out,
        "{:<10} {:<8} {:>6} {:>10} {:>6} {:>6} {:>12} {:>12} {:>8}",
        "DETECTOR",
        "PROTOCOL",
        "AUC",
        "THRESHOLD",
        "FAR",
        "DR",
        "TRAIN EVENTS",
        "EVAL EVENTS",
        "SECONDS"
    )?;
    for r in reports {
        writeln!(
            out,
            "{:<10} {:<8} {:>6.3} {:>10.4} {:>6.3} {:>6.3} {:>12} {:>12} {:>8.2}",
            r.detector,
            r.protocol,
            r.auc,
            r.threshold,
            r.far,
            r.dr,
            r.train_events,
            r.eval_events,
            r.seconds
        )?;
    }
    writeln!(
        out,
        "\nDetection rate per attack family (threshold for FAR {far}):"
    )?;
    for r in reports {
        let families: Vec<String> = r
            .families
            .iter()
            .map(|(f, dr)| format!("{f} {dr:.2}"))
            .collect();
        writeln!(out, "  {:<10} {}", r.detector, families.join("  "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_drop_the_run_number() {
        assert_eq!(family_of(Path::new("/x/Hydra_FTP_10")), "Hydra_FTP");
        assert_eq!(family_of(Path::new("/x/attack.sc")), "attack");
        assert_eq!(family_of(Path::new("/x/web_shell_2.strace")), "web_shell");
        assert_eq!(family_of(Path::new("_3")), "_3");
    }

    #[test]
    fn far_must_be_a_rate() {
        assert_eq!(parse_far("0.05"), Ok(0.05));
        for bad in ["0", "1", "-0.1", "x"] {
            let err = parse_far(bad).unwrap_err();
            assert!(err.contains(bad) || err.contains("not"), "{bad}: {err}");
        }
    }

    #[test]
    fn detector_all_expands() {
        assert_eq!(parse_detectors("all").unwrap().0, Kind::ALL.to_vec());
        let err = parse_detectors("lstm").unwrap_err();
        assert!(err.ends_with(", all"), "{err}");
    }
}
