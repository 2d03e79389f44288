//! `chaperone-bench-cri`: pod start latency through containerd's CRI plugin under the
//! `chaperone` runtime handler against the `runc` one (see `scripts/bench.sh`).

// A command-line program prints.
#![allow(clippy::disallowed_macros)]

use std::path::PathBuf;
use std::process::ExitCode;

use chaperone_integration::cli;
use chaperone_integration::containerd::{self, BUSYBOX_IMAGE};
use chaperone_integration::cri::{bench_pod_start, CriContainerd};
use chaperone_integration::say;

/// The most chaperone's pod start may take against runc's.
const TARGET: f64 = 1.10;

const USAGE: &str = "\
Usage: chaperone-bench-cri --bin-dir DIR [--rounds N] [--warm-up N] [--mode MODE]
                           [--seccomp runtime-default|unconfined] [--unnamed enosys|allow]
                           [--log FILE] [--json]

Starts a private containerd (info log level) with its CRI plugin, the runc runtime handler
and chaperone's (deploy/containerd-runtime.toml; the node's mode: learn unless --mode), builds a
pause and a busybox image, and times pod starts as the kubelet drives them: RunPodSandbox
(host network), then CreateContainer and StartContainer of two containers, from the first
request to the last reply. Each pod is removed (untimed) before the next; the handlers
alternate round by round. The figure of a handler is its median; the ratio is chaperone's
over runc's (target <= 1.10).

  --bin-dir DIR   where containerd-shim-chaperone-v2 is installed (required)
  --rounds N      timed pods per handler (default 20)
  --warm-up N     untimed pods per handler first (default 2)
  --mode MODE     chaperone's node-wide mode: learn (default; every syscall of the
                  containers is traced), enforce (action alert; the tiered filter, after
                  untimed learning pods, as many as --warm-up but at least 4, and one
                  untimed enforce pod) or off (the shim without tracing)
  --seccomp P     the containers' own seccomp profile: unconfined (default, the kubelet's
                  default) or runtime-default (containerd's default profile, as the Pod
                  Security Standards' restricted level requires); runc pays for compiling
                  it too, chaperone intersects it with its own filter
  --unnamed U     set chaperone's [filter] unnamed: enosys (the config's default; with an
                  unconfined container every syscall name gets a rule) or allow
                  (docs/adr/0026); without it the config does not name it
  --log FILE      copy containerd's log (with the shims' lines, which give each
                  container's plan_ms, runc_create_ms and total_ms) to FILE at the end
  --json          print one JSON object instead of the table:
                  {\"pod_start_runc_ms\",\"pod_start_chaperone_ms\",\"pod_start_vs_runc\",
                   \"pod_start_rounds\",\"pod_start_mode\",\"pod_start_seccomp\",
                   \"pod_start_unnamed\",
                   \"pod_start_steps_ms\":{\"runc\":{\"sandbox\",\"create\",\"start\"},
                                         \"chaperone\":{...}}}
  --help          this text

Needs root, containerd, ctr, runc, containerd-shim-runc-v2 and a static busybox at
/bin/busybox. Progress goes to stderr.

Exit codes: 0 the benchmark ran (whether or not the target was met); 1 it failed;
2 bad arguments; 141 its standard output was closed; 128 + N ended by signal N (SIGINT,
SIGTERM, SIGHUP). Either way its containerd and containers are removed first.";

struct Args {
    bin_dir: PathBuf,
    rounds: usize,
    warm_up: usize,
    mode: String,
    log: Option<PathBuf>,
    runtime_default: bool,
    unnamed: Option<&'static str>,
    json: bool,
}

/// The settings, or `None` when only help was asked for.
fn parse() -> Result<Option<Args>, String> {
    let (mut bin_dir, mut rounds, mut warm_up, mut json) = (None, 20, 2, false);
    let mut mode = "learn".to_owned();
    let mut log = None;
    let mut runtime_default = false;
    let mut unnamed = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let count = |name: &str, v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{name} needs a number, got {v:?}"))
        };
        match arg.as_str() {
            "-h" | "--help" => {
                return Ok(None);
            }
            "--json" => json = true,
            "--bin-dir" => bin_dir = Some(PathBuf::from(value("--bin-dir")?)),
            "--rounds" => rounds = count("--rounds", value("--rounds")?)?,
            "--warm-up" => warm_up = count("--warm-up", value("--warm-up")?)?,
            "--seccomp" => match value("--seccomp")?.as_str() {
                "runtime-default" => runtime_default = true,
                "unconfined" => runtime_default = false,
                p => {
                    return Err(format!(
                        "--seccomp must be runtime-default or unconfined, got {p:?}"
                    ))
                }
            },
            "--unnamed" => match value("--unnamed")?.as_str() {
                "enosys" => unnamed = Some("enosys"),
                "allow" => unnamed = Some("allow"),
                u => return Err(format!("--unnamed must be enosys or allow, got {u:?}")),
            },
            "--log" => log = Some(PathBuf::from(value("--log")?)),
            "--mode" => match value("--mode")?.as_str() {
                m @ ("learn" | "enforce" | "off") => mode = m.to_owned(),
                m => return Err(format!("--mode must be learn, enforce or off, got {m:?}")),
            },
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    if rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    Ok(Some(Args {
        bin_dir: cli::bin_dir(bin_dir)?,
        rounds,
        warm_up,
        mode,
        log,
        runtime_default,
        unnamed,
        json,
    }))
}

fn main() -> ExitCode {
    cli::main("chaperone-bench-cri", USAGE, parse, |args| {
        run(&args).map(|()| ExitCode::SUCCESS)
    })
}

fn run(args: &Args) -> anyhow::Result<()> {
    eprintln!("starting containerd with the CRI plugin and building the images");
    let signals = containerd::watch_signals()?;
    let mut cri = CriContainerd::start(&args.bin_dir, "info", &[BUSYBOX_IMAGE])?;
    cri.containerd
        .teardown()
        .on_signals("chaperone-bench-cri", signals)?;
    cri.runtime_default_seccomp = args.runtime_default;
    let mut warm_up = args.warm_up;
    let config = |top: &str| match args.unnamed {
        Some(u) => format!("{top}[filter]\nunnamed = \"{u}\"\n"),
        None => top.to_owned(),
    };
    let unnamed = args.unnamed.unwrap_or("default");
    if args.mode == "enforce" {
        // Enforce needs a learned profile with calibration data and recorded runs.
        let learning = warm_up.max(4);
        eprintln!("learning the image's profile from {learning} pods");
        cri.containerd
            .set_chaperone_config(&config("mode = \"learn\"\n"))?;
        bench_pod_start(&cri, BUSYBOX_IMAGE, learning, 0, |_| {})?;
        cri.containerd
            .set_chaperone_config(&config("mode = \"enforce\"\naction = \"alert\"\n"))?;
        warm_up = 1;
    } else {
        cri.containerd
            .set_chaperone_config(&config(&format!("mode = \"{}\"\n", args.mode)))?;
    }
    let report = bench_pod_start(&cri, BUSYBOX_IMAGE, args.rounds, warm_up, |line| {
        eprintln!("{line}")
    })?;
    if let Some(path) = &args.log {
        std::fs::write(path, cri.containerd.log())?;
    }
    let seccomp = if args.runtime_default {
        "runtime-default"
    } else {
        "unconfined"
    };
    if args.json {
        let mut json = report.to_json();
        json["pod_start_mode"] = args.mode.clone().into();
        json["pod_start_seccomp"] = seccomp.into();
        json["pod_start_unnamed"] = unnamed.into();
        say!("{json}")?;
        return Ok(());
    }
    let ratio = report.ratio();
    say!(
        "pod start through CRI (two containers, seccomp {seccomp}; chaperone's mode {}, \
         unnamed {}), medians of {} pods, ms:",
        args.mode,
        unnamed,
        args.rounds
    )?;
    say!("  handler       total  RunPodSandbox  CreateContainer  StartContainer")?;
    for (name, starts) in [("runc", &report.runc), ("chaperone", &report.chaperone)] {
        let [total, sandbox, create, start] = starts.medians_ms();
        say!("  {name:<10} {total:8.1}  {sandbox:13.1}  {create:15.1}  {start:14.1}")?;
    }
    say!(
        "  chaperone / runc = {ratio:.3} (target <= {TARGET:.2}: {})",
        if ratio <= TARGET { "met" } else { "NOT met" }
    )?;
    Ok(())
}
