//! `chaperone-bench-throughput`: a syscall-heavy loop and an http server under load, in
//! containers under runc-v2, chaperone learn and chaperone enforce (see `scripts/bench.sh`).

// A command-line program prints.
#![allow(clippy::disallowed_macros)]

use std::path::PathBuf;
use std::process::ExitCode;

use chaperone_integration::cli;
use chaperone_integration::containerd::{self, Containerd};
use chaperone_integration::say;
use chaperone_integration::throughput::{self, Options, Setup};

/// The throughput enforce mode must keep, against runc-v2.
const TARGET: f64 = 0.95;

const USAGE: &str = "\
Usage: chaperone-bench-throughput --bin-dir DIR [--rounds N] [--learn-runs N]
                                  [--iterations N] [--requests N] [--clients N]
                                  [--port N] [--log FILE] [--json]

Starts a private containerd (info log level) whose chaperone runtime is
DIR/containerd-shim-chaperone-v2, builds a busybox image and measures two workloads, a
fresh container per measurement:
  loop   a shell loop of builtins (file write, read, test, chdir, kill -0; about 20
         syscalls an iteration, no exec), timed inside the container
  http   busybox httpd (a process per connection) serving a 4 KiB page to N clients in
         this process, HTTP/1.0, timed from the first request to the last answer
         (after 100 untimed requests)
under three setups, interleaved round by round with the order rotating:
  runc-v2  io.containerd.runc.v2 (containerd's Go shim): the baseline
  learn    chaperone, mode learn (every syscall notified)
  enforce  chaperone, mode enforce, action alert (the tiered filter)
after untimed learning runs of each workload. Figures are medians over the rounds; ratios
are throughput against runc-v2 (1.0 as fast; target for enforce >= 0.95 on both).

  --bin-dir DIR      where containerd-shim-chaperone-v2 is installed (required)
  --rounds N         timed rounds (default 5)
  --learn-runs N     untimed learning runs of each workload first (default 3)
  --iterations N     loop iterations per measurement (default 10000)
  --requests N       http requests per measurement (default 10000)
  --clients N        concurrent http clients (default 4)
  --port N           the http server's port on 127.0.0.1 (default 18282)
  --log FILE         copy containerd's log (with the shims' lines) to FILE at the end
  --json             print one JSON object instead of the table:
                     {\"enforce_vs_runc\",\"enforce_vs_runc_loop\",\"enforce_vs_runc_http\",
                      \"learn_vs_runc\",\"learn_vs_runc_loop\",\"learn_vs_runc_http\",
                      \"enforce_alerts\",\"rounds\",\"loop_iterations\",\"http_requests\",
                      \"runc_v2_loop_s\",\"runc_v2_http_rps\",\"learn_loop_s\",...}
                     (*_vs_runc is the lower of the loop and http ratios)
  --help             this text

Needs root, containerd, ctr, runc, containerd-shim-runc-v2 and a static busybox at
/bin/busybox. Progress goes to stderr.

It fails rather than report a figure of something else: when the port is in use before an
http server starts, when a server is not running after its load, or when an enforce
container did not get the tiered filter (the shim logs it; a profile whose model cannot be
trained has every syscall traced instead).

Exit codes: 0 the benchmark ran (whether or not the target was met); 1 it failed;
2 bad arguments; 141 its standard output was closed; 128 + N ended by signal N (SIGINT,
SIGTERM, SIGHUP). Either way its containerd and containers are removed first.";

struct Args {
    bin_dir: PathBuf,
    opts: Options,
    log: Option<PathBuf>,
    json: bool,
}

/// The settings, or `None` when only help was asked for.
fn parse() -> Result<Option<Args>, String> {
    let mut opts = Options::default();
    let (mut bin_dir, mut log, mut json) = (None, None, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                return Ok(None);
            }
            "--json" => {
                json = true;
                continue;
            }
            _ => {}
        }
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|e| format!("{arg} {value}: {e}"))
        };
        let positive = || {
            number().and_then(|n| {
                if n == 0 {
                    Err(format!("{arg} must be positive"))
                } else {
                    Ok(n)
                }
            })
        };
        match arg.as_str() {
            "--bin-dir" => bin_dir = Some(PathBuf::from(&value)),
            "--log" => log = Some(PathBuf::from(&value)),
            "--rounds" => opts.rounds = positive()?,
            "--learn-runs" => opts.learn_runs = positive()?,
            "--iterations" => {
                opts.iterations = u32::try_from(positive()?).map_err(|e| format!("{arg}: {e}"))?;
            }
            "--requests" => opts.requests = positive()?,
            "--clients" => opts.clients = positive()?,
            "--port" => opts.port = value.parse().map_err(|e| format!("--port {value}: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if opts.requests < opts.clients {
        return Err("--requests must be at least --clients".to_owned());
    }
    Ok(Some(Args {
        bin_dir: cli::bin_dir(bin_dir)?,
        opts,
        log,
        json,
    }))
}

fn main() -> ExitCode {
    cli::main("chaperone-bench-throughput", USAGE, parse, |args| {
        let signals = containerd::watch_signals()?;
        let ctrd = Containerd::start_logging(&args.bin_dir, "info")?;
        ctrd.teardown()
            .on_signals("chaperone-bench-throughput", signals)?;
        let report = throughput::run(&ctrd, &args.opts, |line| eprintln!("throughput: {line}"))?;
        if let Some(path) = &args.log {
            std::fs::write(path, ctrd.log())?;
        }
        if args.json {
            say!("{}", report.to_json())?;
        } else {
            say!("{}", report.table().trim_end_matches('\n'))?;
            let enforce = report.ratio(Setup::Enforce);
            say!(
                "enforce throughput {enforce:.3}x runc-v2 (target >= {TARGET}: {}); learn {:.3}x; {} alert(s) under enforce",
                if enforce >= TARGET { "met" } else { "NOT met" },
                report.ratio(Setup::Learn),
                report.enforce_alerts
            )?;
        }
        Ok(ExitCode::SUCCESS)
    })
}
