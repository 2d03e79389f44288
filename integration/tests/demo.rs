//! The demo's story as a test: learned until promoted, benign traffic silent, the attack
//! stopped before the secret leaves. Needs root, containerd, runc and a static busybox.

// Integration tests are their own crate: no test module, and they report to the terminal.
#![allow(clippy::tests_outside_test_module, clippy::disallowed_macros)]

use chaperone_integration::containerd::{
    cli_binary, output_within, setup, signal, Containerd, CTR_DEADLINE,
};
use chaperone_integration::demo::{self, Options, Variant, VariantOutcome};
use nix::sys::signal::Signal;

#[test]
fn the_demo_story_holds() {
    let Some(ctrd) = setup() else { return };
    let opts = Options {
        // Not the demo's default port, so a demo running on the machine does not interfere.
        port: 18_181,
        max_learn_runs: 60,
        benign_runs: 2,
        attack_runs: 2,
        variation_runs: 1,
        hot_coverage: None,
    };
    let outcome =
        demo::run(&ctrd, &opts).unwrap_or_else(|e| panic!("{}", ctrd.explain(format!("{e:#}"))));
    assert!(outcome.held(), "{}", ctrd.explain(format!("{outcome:?}")));
    // Each benign traffic variant and each injected command ran once, and under the action
    // `alert` none stopped the server or went unanswered, whatever it raised: its alerts are a
    // measurement. The benign control is the learned traffic itself, as silent as the benign
    // runs; the first command is the demo's own attack, detected as the story's is.
    ran_each_once(&ctrd, &outcome.variations, demo::VARIANTS);
    ran_each_once(&ctrd, &outcome.attack_variations, demo::ATTACK_VARIANTS);
    assert_eq!(
        outcome.variations[0].alerts, 0,
        "{:?}",
        outcome.variations[0]
    );
    assert_eq!(
        outcome.attack_variations[0].alerted,
        1,
        "{}",
        ctrd.explain(format!("{:?}", outcome.attack_variations[0]))
    );
    let alert = outcome.alert.expect("the attack alerted");
    assert_eq!(alert["output_fields"]["chaperone.action"], "kill");
    assert_eq!(alert["output_fields"]["chaperone.profile"], demo::PROFILE);
    // Enforce ran the tiered filter: hot syscalls in the kernel, a model of the rest.
    let log = ctrd.log();
    assert!(
        log.contains("tiered filter"),
        "no tiered filter in the log:\n{log}"
    );
    // `chaperone profile show` gives the threshold the attack's alert carried: enforce learns
    // nothing, so the store is as the attack's Create read it. The demo's per-thread target is
    // below one in its recorded threads, so that threshold is the fitted tail's (ADR 0023).
    let show = |json: bool| {
        let cli = cli_binary().expect("the chaperone binary next to the shim");
        let mut command = std::process::Command::new(cli);
        command
            .args(["profile", "show", demo::PROFILE, "--config"])
            .arg(ctrd.chaperone_config())
            .args(json.then_some("--json"));
        let out = output_within(&mut command, CTR_DEADLINE)
            .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let shown: serde_json::Value = serde_json::from_str(&show(true)).unwrap();
    assert_eq!(
        shown["tiered"]["threshold"], alert["output_fields"]["chaperone.threshold"],
        "{shown}"
    );
    let text = show(false);
    assert!(
        text.contains("held-out threads can show: extrapolated from their tail), calibrated on"),
        "{text}"
    );
}

/// Fails unless `ran` has one run of each of `variants`, in order, none of them broken.
fn ran_each_once(ctrd: &Containerd, ran: &[VariantOutcome], variants: &[Variant]) {
    let names: Vec<_> = ran.iter().map(|v| v.name).collect();
    let expected: Vec<_> = variants.iter().map(|v| v.name).collect();
    assert_eq!(names, expected);
    for v in ran {
        assert_eq!(
            (v.runs, v.broken),
            (1, 0),
            "{}",
            ctrd.explain(format!("{v:?}"))
        );
        assert_eq!(v.alerted > 0, v.alerts > 0, "{v:?}");
    }
}

/// Interrupted if an assertion fails before the test ends it, so that it removes its
/// containers and stops its containerd (its own process group, which a SIGKILL of the demo
/// would leave running, as it did until 2026-12-07); killed if it has not ended within a
/// minute.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = signal(self.0.id(), Signal::SIGINT);
            let ended = chaperone_integration::containerd::wait_for(
                "the demo to clean up",
                std::time::Duration::from_secs(60),
                || self.0.try_wait().ok().flatten(),
            );
            if ended.is_ok() {
                return;
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `chaperone-demo`, started on `port` and read until its first learning run is done:
/// containers have come and gone, the next is being started or running.
struct Started {
    demo: Reap,
    pid: u32,
    /// The private containerd's directory, as the demo printed it.
    dir: std::path::PathBuf,
    stderr: std::process::ChildStderr,
}

/// Starts the demo (`None`: a prerequisite is missing). With `close_stdout`, the demo's
/// standard output is closed once the first learning run is printed, as `| head` would.
fn start_demo(port: u16, close_stdout: bool) -> Option<Started> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    let bin_dir = chaperone_integration::containerd::prerequisites()?;
    let mut demo = Command::new(env!("CARGO_BIN_EXE_chaperone-demo"))
        .arg("--bin-dir")
        .arg(&bin_dir)
        .args(["--port", &port.to_string(), "--max-learn-runs", "200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chaperone-demo starts");
    let stdout = demo.stdout.take().expect("piped");
    let stderr = demo.stderr.take().expect("piped");
    let pid = demo.id();
    let demo = Reap(demo);

    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let learned = line.starts_with("    run  1:");
            if lines.send(line).is_err() || (learned && close_stdout) {
                break;
            }
        }
    });
    let mut dir = None;
    let mut printed = Vec::new();
    loop {
        let line = seen
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("no learning run printed ({e}): {printed:#?}"));
        if let Some(d) = line.strip_prefix("==> a private containerd is running in ") {
            dir = Some(std::path::PathBuf::from(d));
        }
        let learned = line.starts_with("    run  1:");
        printed.push(line);
        if learned {
            break;
        }
    }
    let dir = dir.unwrap_or_else(|| panic!("no containerd directory printed: {printed:#?}"));
    assert!(
        !demo_containerd(&dir).is_empty(),
        "no containerd of {}",
        dir.display()
    );
    Some(Started {
        demo,
        pid,
        dir,
        stderr,
    })
}

fn demo_containerd(dir: &std::path::Path) -> Vec<u32> {
    chaperone_integration::containerd::processes_with(&[
        "containerd",
        "--config",
        &dir.to_string_lossy(),
    ])
}

/// Waits for the demo to exit; its exit status and what it wrote on stderr.
fn exited(started: &mut Started) -> (std::process::ExitStatus, String) {
    let status = chaperone_integration::containerd::wait_for(
        "the demo to exit",
        std::time::Duration::from_secs(60),
        || started.demo.0.try_wait().ok().flatten(),
    )
    .expect("the demo exits");
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut started.stderr, &mut err);
    (status, err)
}

/// Nothing of the demo is left serving, mounted or running.
fn nothing_left(started: &Started, port: u16) {
    use chaperone_integration::containerd::{mounts_under, processes_with, RUNC_ROOT};

    let dir = &started.dir;
    let namespace = format!("chp-{}-0", started.pid);
    assert!(!dir.exists(), "{} is left", dir.display());
    assert!(
        mounts_under(dir).is_empty(),
        "mounts left under {}",
        dir.display()
    );
    let shims = processes_with(&["containerd-shim-chaperone-v2", "-namespace", &namespace]);
    assert!(shims.is_empty(), "shims left: {shims:?}");
    assert!(demo_containerd(dir).is_empty(), "containerd left");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the web server still listens on {port}"
    );
    let runc_state = std::path::Path::new(RUNC_ROOT).join(&namespace);
    assert!(!runc_state.exists(), "{} is left", runc_state.display());
}

/// Ctrl-C (or a supervisor's SIGTERM) mid-demo: the demo removes its containers and stops its
/// containerd before it exits 130, so nothing is left serving, mounted or running.
#[test]
fn an_interrupted_demo_leaves_nothing_behind() {
    const PORT: u16 = 18_183;
    let Some(mut started) = start_demo(PORT, false) else {
        return;
    };
    // The child spawned above, not yet waited for.
    signal(started.pid, Signal::SIGINT).unwrap();
    let (status, err) = exited(&mut started);
    assert_eq!(status.code(), Some(130), "{status}: {err}");
    assert!(err.contains("interrupted (signal 2)"), "{err}");
    nothing_left(&started, PORT);
}

/// `scripts/demo.sh | head`: once its output is closed the demo stops at its next line, cleans
/// up as when interrupted, and exits 141 without a word (it used to panic writing, which a
/// release build turns into an abort that left its containerd running).
#[test]
fn a_demo_whose_output_is_closed_stops_and_leaves_nothing_behind() {
    const PORT: u16 = 18_185;
    let Some(mut started) = start_demo(PORT, true) else {
        return;
    };
    let (status, err) = exited(&mut started);
    assert_eq!(status.code(), Some(141), "{status}: {err}");
    assert_eq!(err, "", "nothing said on stderr");
    nothing_left(&started, PORT);
}
