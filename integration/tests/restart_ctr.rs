//! A process stopped while it sleeps (SIGSTOP, a debugger attaching) resumes its sleep through
//! `restart_syscall`: the kernel makes the thread enter that syscall when it continues, so no
//! program calls it and no profile learns it. Before 2026-12-02 an enforced container was killed
//! for it (a never-seen syscall) and an exported profile failed the sleep with EPERM. A
//! container under an enforced chaperone profile, and one under an exported profile alone, must
//! sleep through `ctr task pause`/`resume` (the cgroup freezer, which since Linux 6.1 holds a
//! sleeper where it sleeps) and `ctr task kill -s SIGSTOP`/`SIGCONT` as under runc, and so must
//! a busybox shell waiting in `wait4` for its sleeping child, and the demo's web server waiting
//! in `accept` (a syscall interrupted by a stop restarts as itself and is notified again).
//! Needs root, containerd, runc, a static busybox and a C compiler (scripts/test.sh installs
//! them); x86_64 only (the probe is written in x86_64 syscalls).

// Integration tests are their own crate: no test module, and they report to the terminal.
#![allow(clippy::tests_outside_test_module, clippy::disallowed_macros)]
#![cfg(target_arch = "x86_64")]

use std::process::{Child, Stdio};
use std::time::Duration;

use chaperone_integration::compile_static;
use chaperone_integration::containerd::{
    setup, wait_for, Cleanup, Containerd, BUSYBOX_IMAGE, CHAPERONE,
};
use chaperone_integration::demo::{self, Options, Server};
use chaperone_profiler::model::NgramCounts;
use chaperone_profiler::store::Store;
use chaperone_profiler::syscalls::{sym_of, Arch};
use chaperone_seccomp_gen::docker::export_docker;
use chaperone_seccomp_gen::{export_oci, Allowlist, DefaultAction, ExportOptions};

const IMAGE: &str = "docker.io/library/chaperone-nap:itest";

/// A program without libc that sleeps `NAPS` times 200 ms with `nanosleep` and exits 0, or
/// exits with the errno of the first `nanosleep` that fails (1 for EPERM).
const NAP_C: &str = r#"
static long sys(long nr, long a, long b) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(nr), "D"(a), "S"(b) : "rcx", "r11", "memory");
    return r;
}
struct timespec { long sec, nsec; };
/* Static: _start is entered with the stack aligned for no call, so no stack locals. */
static struct timespec nap = {0, 200000000};
void _start(void) {
    for (int i = 0; i < NAPS; i++) {
        long r = sys(35, (long)&nap, 0); /* nanosleep */
        if (r < 0) sys(231, -r, 0); /* exit_group(errno) */
    }
    sys(231, 0, 0);
    for (;;) {}
}
"#;

/// The image with `/bin/nap2` (0.4 s, to learn) and `/bin/napmany` (12 s, to stop: three
/// rounds of [`stop_and_pause`] fit in it on a loaded machine; until 2026-12-07 it slept 4 s,
/// and a slow round could meet its end).
fn import(ctrd: &Containerd) {
    let short = compile_static(ctrd.dir(), "nap2", NAP_C, &["-DNAPS=2"]);
    let long = compile_static(ctrd.dir(), "napmany", NAP_C, &["-DNAPS=60"]);
    ctrd.import_image(
        IMAGE,
        &[("bin/nap2", &short, 0o755), ("bin/napmany", &long, 0o755)],
    )
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
}

/// A `ctr run` killed and reaped when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `ctr run --rm --runtime chaperone FLAGS IMAGE ID CMD...`, started.
fn start(ctrd: &Containerd, id: &str, flags: &[String], image: &str, cmd: &[&str]) -> Reaped {
    let child = ctrd
        .ctr_command(&["run", "--rm", "--runtime", CHAPERONE])
        .args(flags)
        .arg(image)
        .arg(id)
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ctr starts");
    Reaped(child)
}

/// Runs `cmd` in `image` three times into profile `key`, learning (monitor and enforce need
/// the held-out runs 2 and 3).
fn learn(ctrd: &Containerd, key: &str, image: &str, cmd: &[&str]) {
    for n in 1..=3 {
        let id = format!("{key}-learn{n}");
        let _cleanup = Cleanup(ctrd, id.clone());
        let flags = [format!("--annotation=chaperone.io/profile={key}")];
        let mut run = start(ctrd, &id, &flags, image, cmd);
        let status = wait_for("a learning run", Duration::from_secs(30), || {
            run.0.try_wait().ok().flatten()
        })
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
        assert!(
            status.success(),
            "{}",
            ctrd.explain("a learning run failed")
        );
    }
}

/// `ctr run` flags enforcing profile `key` with the `kill` action.
fn enforced(key: &str) -> Vec<String> {
    [
        format!("chaperone.io/profile={key}"),
        "chaperone.io/mode=enforce".to_owned(),
        "chaperone.io/action=kill".to_owned(),
    ]
    .map(|a| format!("--annotation={a}"))
    .to_vec()
}

/// One round on task `id`: a pause and resume (the cgroup freezer; since Linux 6.1 it holds a
/// sleeper where it sleeps), then SIGSTOP and SIGCONT (to every process with `all`), which
/// interrupt a sleep and restart it.
fn stop_and_pause(ctrd: &Containerd, id: &str, all: bool) {
    let to = if all { &["-a"][..] } else { &[] };
    let stop = [&["task", "kill"][..], to, &["-s", "SIGSTOP", id]].concat();
    let cont = [&["task", "kill"][..], to, &["-s", "SIGCONT", id]].concat();
    for args in [
        &["task", "pause", id][..],
        &["task", "resume", id],
        &stop,
        &cont,
    ] {
        ctrd.ctr_ok(args)
            .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    }
}

/// Three rounds of [`stop_and_pause`] while the task `id` of `run` sleeps, each once the task
/// runs. Then the exit code, or the earlier one of a task that failed meanwhile. A task that
/// ends well before its third round has not been tested: that fails here.
fn stop_three_times(ctrd: &Containerd, id: &str, run: &mut Reaped, all: bool) -> Option<i32> {
    for round in 0..3 {
        let running = wait_for("the task to run", Duration::from_secs(20), || {
            if let Ok(Some(status)) = run.0.try_wait() {
                return Some(Some(status.code()));
            }
            (ctrd.task_status(id).as_deref() == Some("RUNNING")).then_some(None)
        });
        match running.unwrap_or_else(|e| panic!("{}", ctrd.explain(e))) {
            None => {}
            Some(Some(0)) => panic!(
                "{}",
                ctrd.explain(format!("the task ended after {round} of 3 rounds"))
            ),
            Some(code) => return code,
        }
        stop_and_pause(ctrd, id, all);
    }
    let status = wait_for("the container to exit", Duration::from_secs(30), || {
        run.0.try_wait().ok().flatten()
    });
    status
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)))
        .code()
}

/// The n-gram counts learned into profile `key`.
fn learned(ctrd: &Containerd, key: &str) -> NgramCounts {
    Store::open(&ctrd.db_path())
        .unwrap()
        .load(key)
        .unwrap()
        .unwrap_or_else(|| panic!("{}", ctrd.explain("no profile learned")))
        .counts
}

fn alerts_of(ctrd: &Containerd, id: &str) -> Vec<serde_json::Value> {
    ctrd.alerts()
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)))
        .into_iter()
        .filter(|a| a["output_fields"]["container.id"] == id)
        .collect()
}

/// Fails unless the enforced task `id` exited 0 without an alert.
fn expect_clean_exit(ctrd: &Containerd, id: &str, code: Option<i32>) {
    let alerts = alerts_of(ctrd, id);
    // Explained only on failure: `explain` keeps containerd's log in a file.
    let explained = || ctrd.explain(format!("alerts: {alerts:?}"));
    assert_eq!(code, Some(0), "{}", explained());
    assert!(alerts.is_empty(), "{}", explained());
}

#[test]
fn an_enforced_container_sleeps_through_a_pause_and_a_stop() {
    let Some(ctrd) = setup() else { return };
    import(&ctrd);
    let key = format!("nap-{}", std::process::id());
    learn(&ctrd, &key, IMAGE, &["/bin/nap2"]);
    let id = format!("{key}-enforced");
    let _cleanup = Cleanup(&ctrd, id.clone());
    let mut run = start(&ctrd, &id, &enforced(&key), IMAGE, &["/bin/napmany"]);
    let code = stop_three_times(&ctrd, &id, &mut run, false);
    expect_clean_exit(&ctrd, &id, code);
}

#[test]
fn an_exported_profile_lets_a_container_sleep_through_a_pause_and_a_stop() {
    let Some(ctrd) = setup() else { return };
    import(&ctrd);
    let key = format!("napx-{}", std::process::id());
    learn(&ctrd, &key, IMAGE, &["/bin/nap2"]);
    let counts = learned(&ctrd, &key);
    let options = ExportOptions {
        arches: vec![Arch::X86_64],
        default_action: DefaultAction::Errno,
        base: None,
    };
    let oci = export_oci(&Allowlist::from_counts(&counts), &options).unwrap();
    let profile = ctrd.dir().join("nap.json");
    std::fs::write(&profile, export_docker(&oci)).unwrap();
    let flags = [
        "--annotation=chaperone.io/mode=off".to_owned(),
        "--seccomp".to_owned(),
        format!("--seccomp-profile={}", profile.display()),
    ];
    let id = format!("{key}-exported");
    let _cleanup = Cleanup(&ctrd, id.clone());
    let mut run = start(&ctrd, &id, &flags, IMAGE, &["/bin/napmany"]);
    let code = stop_three_times(&ctrd, &id, &mut run, false);
    assert_eq!(
        code,
        Some(0),
        "{}",
        ctrd.explain("exit 1 is EPERM from a nanosleep resumed after SIGCONT")
    );
}

/// A busybox shell waiting in `wait4` for a sleeping child, both stopped (`kill -a`) and
/// continued, and paused and resumed, three times: the wait restarts as the same syscall and
/// the sleep through `restart_syscall`, and the enforced container runs to its end unalerted.
#[test]
fn an_enforced_shell_and_its_sleeping_child_go_on_after_stops_and_pauses() {
    let Some(ctrd) = setup() else { return };
    let key = format!("shwait-{}", std::process::id());
    let script = |secs: &str| format!("sleep {secs}; cat /etc/hostname > /dev/null; echo done");
    learn(&ctrd, &key, BUSYBOX_IMAGE, &["sh", "-c", &script("0.5")]);
    let id = format!("{key}-enforced");
    let _cleanup = Cleanup(&ctrd, id.clone());
    let mut run = start(
        &ctrd,
        &id,
        &enforced(&key),
        BUSYBOX_IMAGE,
        &["sh", "-c", &script("12")],
    );
    let code = stop_three_times(&ctrd, &id, &mut run, true);
    expect_clean_exit(&ctrd, &id, code);
}

/// The demo's web server, learned with every syscall traced until its policy promotes the
/// profile to enforce (action `kill`), waits in `accept` for its next client while it is paused
/// and resumed, and stopped and continued, eight times: a pause or a stop interrupts the
/// `accept`, which restarts as the same syscall and reaches the supervisor again (ADR 0021).
/// The server must go on serving the benign traffic, unalerted. Eight rounds, not three: while
/// a repeat that deviated no window yet was still scored, three rounds failed once in CI, and
/// eight failed one run in five, at the `setsockopt` after the next `accept`.
#[test]
fn an_enforced_web_server_serves_after_stops_and_pauses() {
    let Some(ctrd) = setup() else { return };
    let opts = Options {
        port: 18_183,
        ..Options::default()
    };
    demo::prepare(&ctrd).unwrap_or_else(|e| panic!("{}", ctrd.explain(format!("{e:#}"))));
    // No hot set: every syscall the server learned is traced, `accept` among them (by default
    // it is hot, allowed in the kernel, and its restart never reaches the supervisor).
    ctrd.set_chaperone_config(&format!("{}hot_coverage = 0.0\n", demo::CONFIG))
        .unwrap();
    demo::learn(&ctrd, &opts).unwrap_or_else(|e| panic!("{}", ctrd.explain(format!("{e:#}"))));
    // The premise: the server's accept was learned, and is traced.
    let counts = learned(&ctrd, demo::PROFILE);
    let accepts = ["accept", "accept4"].map(|n| sym_of(n).expect("a known syscall"));
    assert!(
        counts.unigrams().any(|(s, _)| accepts.contains(&s)),
        "{}",
        ctrd.explain("the server never learned accept")
    );
    let id = format!("web-stopped-{}", std::process::id());
    let server = Server::start(&ctrd, &id, opts.port, &[])
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(format!("{e:#}"))));
    let before = demo::benign_traffic(opts.port);
    for _ in 0..8 {
        stop_and_pause(&ctrd, &id, false);
    }
    let after = demo::benign_traffic(opts.port);
    let running = ctrd.task_status(&id);
    let alerts = alerts_of(&ctrd, &id);
    let explained = || {
        ctrd.explain(format!(
            "before the stops: {before:?}; after: {after:?}; task {running:?}; alerts: {alerts:?}"
        ))
    };
    assert!(before.is_ok() && after.is_ok(), "{}", explained());
    assert_eq!(running.as_deref(), Some("RUNNING"), "{}", explained());
    assert!(alerts.is_empty(), "{}", explained());
    server
        .stop()
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(format!("{e:#}"))));
}
