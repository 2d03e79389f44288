//! The throughput benchmark (`chaperone-bench-throughput`, run by `scripts/bench.sh`): how much
//! slower a syscall-heavy container runs under chaperone than under containerd's stock runc
//! shim, measured in the same run on the same private containerd.
//!
//! Two workloads, each in a fresh container per measurement:
//! - **loop**: a busybox shell loop of builtins (no `exec`), each iteration writing, reading
//!   and testing a file, changing directory and signalling itself: some 20 syscalls an
//!   iteration, timed inside the container from `/proc/uptime` (10 ms resolution);
//! - **http**: busybox `httpd` (a process per connection) serving a 4 KiB page to a load
//!   generator in this process (several clients, HTTP/1.0, a connection per request), timed
//!   from the first request to the last answer after 100 untimed ones.
//!
//! Three configurations, interleaved round by round with the order rotating: `runc-v2`
//! (`io.containerd.runc.v2`), `learn` and `enforce` (chaperone, action `alert`, so a false alarm
//! costs an alert, not the run). Untimed learning runs come first so that enforce has a profile
//! with calibration data and recorded runs to build its tiered filter from. The figure of a
//! configuration is the median over the rounds; the ratios are throughput against runc-v2's
//! (1.0: as fast, 0.5: half as fast).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::containerd::{wait_for, Cleanup, Containerd, CHAPERONE, RUNC_V2};
use crate::demo;

/// The benchmark's image: static busybox, the loop script and the web root.
pub const IMAGE: &str = "chaperone.bench/throughput:1";
/// The profile of the loop workload.
pub const LOOP_PROFILE: &str = "bench-loop";
/// The profile of the http workload.
pub const HTTP_PROFILE: &str = "bench-http";

/// `sh /bench/loop.sh N`: N iterations, then `elapsed START END` (seconds since boot).
const LOOP_SCRIPT: &str = r#"#!/bin/sh
# A syscall-heavy loop of shell builtins: no exec, so the syscalls are what is measured.
n="$1"
read start _ < /proc/uptime
i=0
while [ "$i" -lt "$n" ]; do
    echo "line $i" > /tmp/f
    read v < /tmp/f
    [ -e /tmp/f ]
    cd /tmp
    cd /
    kill -0 $$
    i=$((i + 1))
done
read end _ < /proc/uptime
echo "elapsed $start $end"
"#;

/// Requests sent before an http measurement starts.
const WARM_UP_REQUESTS: usize = 100;

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Timed rounds (each runs every configuration of both workloads once).
    pub rounds: usize,
    /// Untimed learning runs of each workload before the rounds.
    pub learn_runs: usize,
    /// Iterations of the loop workload.
    pub iterations: u32,
    /// Requests of one http measurement.
    pub requests: usize,
    /// Concurrent http clients.
    pub clients: usize,
    /// The http server's port on 127.0.0.1 (host network).
    pub port: u16,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            rounds: 5,
            learn_runs: 3,
            iterations: 10_000,
            requests: 10_000,
            clients: 4,
            port: 18_282,
        }
    }
}

/// A configuration measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// containerd's stock runc shim: the baseline.
    RuncV2,
    /// chaperone in learn mode: every syscall notified and learned.
    Learn,
    /// chaperone in enforce mode with action alert: the tiered filter.
    Enforce,
}

impl Setup {
    /// Every configuration, in the order of the first round.
    pub const ALL: [Self; 3] = [Self::RuncV2, Self::Learn, Self::Enforce];

    /// Its name in the table and in container ids.
    pub fn name(self) -> &'static str {
        match self {
            Self::RuncV2 => "runc-v2",
            Self::Learn => "learn",
            Self::Enforce => "enforce",
        }
    }

    /// The `ctr run` flags selecting it for containers of `profile`.
    fn flags(self, profile: &str) -> Vec<String> {
        let chaperone = |mode: &str| {
            vec![
                "--runtime".to_owned(),
                CHAPERONE.to_owned(),
                "--annotation".to_owned(),
                format!("chaperone.io/profile={profile}"),
                "--annotation".to_owned(),
                format!("chaperone.io/mode={mode}"),
                "--annotation".to_owned(),
                "chaperone.io/action=alert".to_owned(),
            ]
        };
        match self {
            Self::RuncV2 => vec!["--runtime".to_owned(), RUNC_V2.to_owned()],
            Self::Learn => chaperone("learn"),
            Self::Enforce => chaperone("enforce"),
        }
    }
}

/// What one configuration measured: loop seconds and http requests per second, one per round.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// Seconds of the loop workload.
    pub loop_seconds: Vec<f64>,
    /// Requests per second of the http workload.
    pub http_rps: Vec<f64>,
}

/// The benchmark's result.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Per configuration, in [`Setup::ALL`] order.
    pub samples: [Samples; 3],
    /// Alerts raised by the enforce containers (false alarms: the workloads are what was
    /// learned).
    pub enforce_alerts: usize,
    /// The settings.
    pub rounds: usize,
    /// Loop iterations and http requests per measurement.
    pub iterations: u32,
    /// Requests per http measurement.
    pub requests: usize,
}

/// The median (mean of the middle two for an even count); NaN for none.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

impl Report {
    fn of(&self, setup: Setup) -> &Samples {
        &self.samples[Setup::ALL.iter().position(|&s| s == setup).unwrap_or(0)]
    }

    /// Loop throughput of `setup` against runc-v2 (runc-v2's median time over its own).
    pub fn loop_ratio(&self, setup: Setup) -> f64 {
        median(&self.of(Setup::RuncV2).loop_seconds) / median(&self.of(setup).loop_seconds)
    }

    /// Http throughput of `setup` against runc-v2 (median requests per second over runc-v2's).
    pub fn http_ratio(&self, setup: Setup) -> f64 {
        median(&self.of(setup).http_rps) / median(&self.of(Setup::RuncV2).http_rps)
    }

    /// The lower of the two ratios of `setup`: the figure the target applies to.
    pub fn ratio(&self, setup: Setup) -> f64 {
        self.loop_ratio(setup).min(self.http_ratio(setup))
    }

    /// The figures as one JSON object.
    pub fn to_json(&self) -> Value {
        let mut o = json!({
            "enforce_vs_runc": self.ratio(Setup::Enforce),
            "enforce_vs_runc_loop": self.loop_ratio(Setup::Enforce),
            "enforce_vs_runc_http": self.http_ratio(Setup::Enforce),
            "learn_vs_runc": self.ratio(Setup::Learn),
            "learn_vs_runc_loop": self.loop_ratio(Setup::Learn),
            "learn_vs_runc_http": self.http_ratio(Setup::Learn),
            "enforce_alerts": self.enforce_alerts,
            "rounds": self.rounds,
            "loop_iterations": self.iterations,
            "http_requests": self.requests,
        });
        for setup in Setup::ALL {
            let key = setup.name().replace('-', "_");
            o[format!("{key}_loop_s")] = json!(median(&self.of(setup).loop_seconds));
            o[format!("{key}_http_rps")] = json!(median(&self.of(setup).http_rps));
        }
        o
    }

    /// The table.
    pub fn table(&self) -> String {
        let mut t = format!(
            "{:<9} {:>10} {:>10} {:>12} {:>10}\n",
            "SETUP", "LOOP S", "LOOP RATIO", "HTTP REQ/S", "HTTP RATIO"
        );
        for setup in Setup::ALL {
            let s = self.of(setup);
            t.push_str(&format!(
                "{:<9} {:>10.3} {:>9.3}x {:>12.0} {:>9.3}x\n",
                setup.name(),
                median(&s.loop_seconds),
                self.loop_ratio(setup),
                median(&s.http_rps),
                self.http_ratio(setup)
            ));
        }
        t
    }
}

/// Builds and imports the benchmark's image.
pub fn prepare(ctrd: &Containerd) -> Result<()> {
    let page = format!(
        "<html><body><pre>{}</pre></body></html>\n",
        "chaperone throughput benchmark page\n".repeat(112)
    );
    ctrd.import_image(
        IMAGE,
        &[
            ("bench/loop.sh", LOOP_SCRIPT.as_bytes(), 0o755),
            ("www/index.html", page.as_bytes(), 0o644),
        ],
    )
}

/// Runs the benchmark on `ctrd`; `progress` gets a line per step.
pub fn run(ctrd: &Containerd, opts: &Options, mut progress: impl FnMut(&str)) -> Result<Report> {
    if opts.rounds == 0 || opts.clients == 0 || opts.requests < opts.clients {
        bail!("rounds and clients must be positive, and requests at least clients");
    }
    prepare(ctrd)?;
    for run in 1..=opts.learn_runs {
        progress(&format!("learning run {run}/{}", opts.learn_runs));
        let id = format!("tp-prelearn-{run}");
        loop_once(ctrd, Setup::Learn, &format!("{id}-loop"), opts)?;
        http_once(ctrd, Setup::Learn, &format!("{id}-http"), opts)?;
    }
    let mut report = Report {
        rounds: opts.rounds,
        iterations: opts.iterations,
        requests: opts.requests,
        ..Report::default()
    };
    for round in 0..opts.rounds {
        for k in 0..Setup::ALL.len() {
            let i = (round + k) % Setup::ALL.len();
            let setup = Setup::ALL[i];
            let id = format!("tp-{}-{round}", setup.name());
            let seconds = loop_once(ctrd, setup, &format!("{id}-loop"), opts)?;
            let rps = http_once(ctrd, setup, &format!("{id}-http"), opts)?;
            progress(&format!(
                "round {}/{}: {:<8} loop {seconds:.2} s, http {rps:.0} req/s",
                round + 1,
                opts.rounds,
                setup.name()
            ));
            report.samples[i].loop_seconds.push(seconds);
            report.samples[i].http_rps.push(rps);
        }
    }
    for profile in [LOOP_PROFILE, HTTP_PROFILE] {
        require_tiered(ctrd, profile, opts.rounds)?;
    }
    report.enforce_alerts = ctrd
        .alerts()?
        .iter()
        .filter(|a| {
            a["output_fields"]["container.id"]
                .as_str()
                .is_some_and(|id| id.starts_with("tp-enforce-"))
        })
        .count();
    Ok(report)
}

/// What the shim logs when an enforced container gets the tiered filter.
const TIERED_LINE: &str = "tiered filter: the hot syscalls run in the kernel";

/// Fails unless the shim logged the tiered filter for `profile` at least `runs` times (once
/// per enforce container). One whose model cannot be trained from the recorded runs has every
/// syscall traced instead, and the enforce row would measure that.
fn require_tiered(ctrd: &Containerd, profile: &str, runs: usize) -> Result<()> {
    let tiered = || tiered_lines(&ctrd.log(), profile);
    // The shims' lines reach containerd's log as it copies them.
    if wait_for(
        "the tiered filter's log lines",
        Duration::from_secs(30),
        || (tiered() >= runs).then_some(()),
    )
    .is_err()
    {
        bail!(
            "{} of {runs} enforce containers of profile {profile} had the tiered filter (see \
             containerd's log): the enforce row would not measure it",
            tiered()
        );
    }
    Ok(())
}

/// The lines of `log` that say a container of `profile` got the tiered filter.
fn tiered_lines(log: &str, profile: &str) -> usize {
    // The field as the shim's text log writes a string, quoted or not.
    let fields = [
        format!("profile={profile}"),
        format!("profile=\"{profile}\""),
    ];
    let names_profile = |line: &str| {
        line.split_whitespace()
            .any(|w| fields.iter().any(|f| w == f))
    };
    log.lines()
        .filter(|l| l.contains(TIERED_LINE) && names_profile(l))
        .count()
}

/// Runs the loop workload in container `id` under `setup`; returns its seconds.
fn loop_once(ctrd: &Containerd, setup: Setup, id: &str, opts: &Options) -> Result<f64> {
    let _cleanup = Cleanup(ctrd, id.to_owned());
    let profile = setup.flags(LOOP_PROFILE);
    let n = opts.iterations.to_string();
    let mut args: Vec<&str> = vec!["run", "--rm"];
    args.extend(profile.iter().map(String::as_str));
    args.extend([IMAGE, id, "sh", "/bench/loop.sh", &n]);
    let out = ctrd.ctr_ok(&args)?;
    parse_elapsed(&out).with_context(|| format!("the loop in {id} printed {out:?}"))
}

/// The seconds of a loop script's `elapsed START END` line.
pub fn parse_elapsed(out: &str) -> Option<f64> {
    let line = out.lines().find_map(|l| l.strip_prefix("elapsed "))?;
    let mut it = line.split_whitespace().map(str::parse::<f64>);
    let (start, end) = (it.next()?.ok()?, it.next()?.ok()?);
    (end >= start).then_some(end - start)
}

/// Serves the http workload from container `id` under `setup`; returns requests per second.
fn http_once(ctrd: &Containerd, setup: Setup, id: &str, opts: &Options) -> Result<f64> {
    let _cleanup = Cleanup(ctrd, id.to_owned());
    // Another server on the port (an earlier round's that outlived its clean-up, or anyone's)
    // would answer the load, and this container's httpd would exit unseen.
    if std::net::TcpStream::connect(("127.0.0.1", opts.port)).is_ok() {
        bail!(
            "port {} is in use before {id} starts: another server would answer the load",
            opts.port
        );
    }
    let listen = format!("127.0.0.1:{}", opts.port);
    let flags = setup.flags(HTTP_PROFILE);
    let mut args: Vec<&str> = vec!["run", "-d", "--net-host"];
    args.extend(flags.iter().map(String::as_str));
    args.extend([IMAGE, id, "httpd", "-f", "-p", &listen, "-h", "/www"]);
    ctrd.ctr_ok(&args)?;
    wait_for("the http server to answer", Duration::from_secs(15), || {
        get(opts.port).ok()
    })?;
    // Untimed warm-up: the server's first connections and the page in the page cache.
    for _ in 0..WARM_UP_REQUESTS {
        get(opts.port)?;
    }
    let per_client = opts.requests / opts.clients;
    let started = Instant::now();
    let answered = std::thread::scope(|s| {
        let clients: Vec<_> = (0..opts.clients)
            .map(|_| {
                s.spawn(|| -> Result<usize> {
                    for _ in 0..per_client {
                        get(opts.port)?;
                    }
                    Ok(per_client)
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|c| c.join().map_err(|_| anyhow::anyhow!("a client panicked"))?)
            .sum::<Result<usize>>()
    })
    .with_context(|| format!("load on {id}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let status = ctrd.task_status(id);
    if status.as_deref() != Some("RUNNING") {
        bail!("the http server {id} is {status:?} after the load, not RUNNING: who answered?");
    }
    #[allow(clippy::cast_precision_loss)] // request counts are small
    Ok(answered as f64 / seconds)
}

/// One `GET /index.html`; an error unless the whole page came back with status 200.
fn get(port: u16) -> Result<()> {
    let body = demo::get(port, "/index.html")?;
    if !body.starts_with("HTTP/1.0 200") && !body.starts_with("HTTP/1.1 200") {
        bail!(
            "not a 200 answer: {:?}",
            body.chars().take(80).collect::<String>()
        );
    }
    if !body.ends_with("</html>\n") {
        bail!("a truncated page ({} bytes)", body.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_elapsed_lines() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(parse_elapsed("x\nelapsed 10.50 12.00\n"), Some(1.5));
        assert_eq!(parse_elapsed("elapsed 12.00 10.50"), None);
        assert_eq!(parse_elapsed("elapsed soon"), None);
        assert_eq!(parse_elapsed(""), None);
    }

    #[test]
    fn tiered_filter_lines_are_counted_per_profile() {
        let log = format!(
            "INFO {TIERED_LINE}, the model scores the rest profile=bench-loop hot=30\n\
             INFO {TIERED_LINE}, the model scores the rest profile=\"bench-http\" hot=31\n\
             INFO {TIERED_LINE}, the model scores the rest profile=bench-loop2 hot=30\n\
             INFO no recorded runs to train the tiered filter's model on profile=bench-loop\n"
        );
        assert_eq!(tiered_lines(&log, LOOP_PROFILE), 1);
        assert_eq!(tiered_lines(&log, HTTP_PROFILE), 1);
        assert_eq!(tiered_lines(&log, "bench"), 0);
    }

    #[test]
    fn ratios_are_throughput_against_runc() {
        let s = |l: f64, h: f64| Samples {
            loop_seconds: vec![l],
            http_rps: vec![h],
        };
        let r = Report {
            samples: [s(1.0, 1000.0), s(4.0, 250.0), s(1.25, 900.0)],
            ..Report::default()
        };
        assert_eq!(r.loop_ratio(Setup::Enforce), 0.8);
        assert_eq!(r.http_ratio(Setup::Enforce), 0.9);
        assert_eq!(r.ratio(Setup::Enforce), 0.8);
        assert_eq!(r.ratio(Setup::Learn), 0.25);
        let j = r.to_json();
        assert_eq!(j["enforce_vs_runc"], 0.8);
        assert_eq!(j["runc_v2_http_rps"], 1000.0);
        assert!(r.table().contains("enforce"));
    }
}
