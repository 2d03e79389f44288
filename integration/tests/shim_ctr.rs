//! chaperone's shim under a real (private) containerd, driven with `ctr`: a container runs to
//! completion with its output and exit code, a detached one runs exec processes and is killed,
//! deleting leaves nothing behind on the host, what init leaves in the host's pid namespace is
//! killed before its exit is recorded, and (x86_64) a program's 32-bit `socketcall`, `ipc`
//! and `getuid32` calls are learned. Every test also runs against containerd's stock
//! `io.containerd.runc.v2` to check the test itself. Needs root, containerd, runc and a static
//! busybox (scripts/test.sh installs them).

// Integration tests are their own crate: no test module, and they report to the terminal.
#![allow(clippy::tests_outside_test_module, clippy::disallowed_macros)]

use std::path::Path;
use std::time::Duration;

use chaperone_integration::containerd::{
    self, killed, mounted, processes_with, setup, setup_env, wait_for, Cleanup, Containerd,
    Exchange, BUSYBOX_IMAGE, CHAPERONE, CHAPERONE_RUNC_ALIAS, RUNC_V2,
};
use chaperone_integration::under_both_shims;
use chaperone_profiler::store::Store;
use chaperone_shim::image::LOOKUP_FAULT_ENV;

/// A container id unique to this test run.
fn container_id(test: &str, runtime: &str) -> String {
    let short = match runtime {
        CHAPERONE => "chp",
        CHAPERONE_RUNC_ALIAS => "chpalias",
        _ => "runc",
    };
    format!("{test}-{short}-{}", std::process::id())
}

/// `ctr run --runtime RUNTIME --rm [EXTRA...] IMAGE ID CMD...`, attached: its output once the
/// container has exited and been deleted.
fn run_rm(
    ctrd: &Containerd,
    runtime: &str,
    extra: &[&str],
    image: &str,
    id: &str,
    cmd: &[&str],
) -> std::process::Output {
    let mut args = vec!["run", "--runtime", runtime, "--rm"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[image, id]);
    args.extend_from_slice(cmd);
    ctrd.ctr(&args).unwrap()
}

fn run_to_completion(runtime: &str) {
    let Some(ctrd) = setup() else { return };
    let id = container_id("run", runtime);
    let _cleanup = Cleanup(&ctrd, id.clone());
    // It exits once its output reached ctr: see Exchange.
    let out = ctrd
        .ctr_once_printed(
            &[
                "run",
                "--runtime",
                runtime,
                "--rm",
                BUSYBOX_IMAGE,
                &id,
                "sh",
                "-c",
                "echo hello from $(uname -s); echo oops >&2; read _; exit 3",
            ],
            Exchange {
                stdout: "hello from Linux",
                stderr: "oops",
                ..Exchange::default()
            },
        )
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        ctrd.explain(format!("exit code\nstdout: {stdout}\nstderr: {stderr}"))
    );
    assert!(stdout.contains("hello from Linux"), "stdout: {stdout}");
    assert!(stderr.contains("oops"), "stderr: {stderr}");
    assert_host_clean(&ctrd, &id, runtime);
    if runtime != RUNC_V2 {
        // The supervisor learned the container: its summary reaches containerd's log.
        let learned = wait_for(
            "the learned summary in the log",
            Duration::from_secs(10),
            || {
                let log = ctrd.log();
                log.lines()
                    .find(|l| l.contains("learned the container's syscalls") && l.contains(&id))
                    .map(str::to_owned)
            },
        )
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
        eprintln!("{learned}");
        let events: u64 = learned
            .split_whitespace()
            .find_map(|w| w.strip_prefix("events="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(events > 20, "too few events learned: {learned}");
    }
}

fn detached_run_and_kill(runtime: &str) {
    let Some(ctrd) = setup() else { return };
    let id = container_id("kill", runtime);
    let _cleanup = Cleanup(&ctrd, id.clone());
    ctrd.run_sleeping(runtime, &id)
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    wait_for("the task to run", Duration::from_secs(10), || {
        (ctrd.task_status(&id).as_deref() == Some("RUNNING")).then_some(())
    })
    .unwrap();
    let pids = ctrd.ctr_ok(&["tasks", "ps", &id]).unwrap();
    assert!(pids.lines().count() >= 2, "no process listed: {pids}");
    let listed = |ctrd: &Containerd| {
        ctrd.ctr_ok(&["tasks", "ps", &id])
            .map(|p| p.lines().count())
            .unwrap_or(0)
    };
    let before = listed(&ctrd);

    // An exec process runs to completion with its output and exit code. It exits once its
    // output reached ctr: see Exchange.
    let out = ctrd
        .ctr_once_printed(
            &[
                "tasks",
                "exec",
                "--exec-id",
                "e1",
                &id,
                "sh",
                "-c",
                "echo from exec in $(uname -s); echo err >&2; read _; exit 5",
            ],
            Exchange {
                stdout: "from exec in Linux",
                stderr: "err",
                ..Exchange::default()
            },
        )
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    // Only on failure: explain keeps the whole log in a file.
    let text = || {
        ctrd.explain(format!(
            "stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        ))
    };
    assert_eq!(out.status.code(), Some(5), "{}", text());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("from exec in Linux"),
        "{}",
        text()
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("err"),
        "{}",
        text()
    );
    // A detached one is listed, killed by its exec id, and reaped. The signal is a real-time
    // one (systemd's stop signal), which chaperone refused for an exec until 2026-12-07.
    ctrd.ctr_ok(&[
        "tasks",
        "exec",
        "-d",
        "--exec-id",
        "e2",
        &id,
        "sleep",
        "1000",
    ])
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    wait_for(
        "the exec process to be listed",
        Duration::from_secs(10),
        || (listed(&ctrd) == before + 1).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    ctrd.ctr_ok(&["tasks", "kill", "--exec-id", "e2", "-s", "SIGRTMIN+3", &id])
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    wait_for(
        "the exec process to be gone",
        Duration::from_secs(10),
        || (listed(&ctrd) == before).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    assert_eq!(
        ctrd.task_status(&id).as_deref(),
        Some("RUNNING"),
        "init lives on"
    );

    ctrd.ctr_ok(&["tasks", "kill", "--all", "-s", "SIGKILL", &id])
        .unwrap();
    wait_for("the task to stop", Duration::from_secs(10), || {
        (ctrd.task_status(&id).as_deref() == Some("STOPPED")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    ctrd.ctr_ok(&["tasks", "delete", &id]).unwrap();
    ctrd.ctr_ok(&["containers", "delete", &id]).unwrap();
    assert_host_clean(&ctrd, &id, runtime);
    if runtime != RUNC_V2 {
        // Delete waited for the supervisors: init's and the two exec processes' runs are in
        // the profile, counted as one container. Its key is the image's digest, which the
        // shim asked containerd for (ctr gives no annotation naming the image).
        let digest = ctrd.image_digest(BUSYBOX_IMAGE).unwrap();
        let s = Store::open(&ctrd.db_path())
            .unwrap()
            .summary(&digest)
            .unwrap()
            .unwrap_or_else(|| panic!("{}", ctrd.explain("nothing learned")));
        assert_eq!(s.containers, 1, "{s:?}");
        assert!(s.events > 0, "{s:?}");
    }
}

/// After delete: no runc state, no mount, no shim process, no listener socket.
fn assert_host_clean(ctrd: &Containerd, id: &str, runtime: &str) {
    let runc_state = Path::new(containerd::RUNC_ROOT)
        .join(ctrd.namespace())
        .join(id);
    wait_for("the shim to exit", Duration::from_secs(10), || {
        processes_with(&["containerd-shim", "-id", id])
            .is_empty()
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", processes_with(&["containerd-shim", id])));
    assert!(
        !runc_state.exists(),
        "runc state left: {}",
        runc_state.display()
    );
    assert!(!mounted(id), "a mount of {id} is left");
    if runtime != RUNC_V2 {
        let sockets = ctrd.run_dir().join("s");
        let left: Vec<_> = std::fs::read_dir(&sockets)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "shim state left: {left:?}");
    }
}

#[test]
fn chaperone_runs_a_container_to_completion_and_learns_it() {
    run_to_completion(CHAPERONE);
}

#[test]
fn the_runc_named_alias_takes_runc_options_and_learns_too() {
    // containerd's client sends runc's Options to runtimes named io.containerd.runc.*.
    run_to_completion(CHAPERONE_RUNC_ALIAS);
}

#[test]
fn runc_v2_runs_a_container_to_completion() {
    run_to_completion(RUNC_V2);
}

under_both_shims!(
    detached_run_and_kill:
    chaperone_execs_in_and_kills_a_detached_container_and_cleans_up,
    runc_v2_execs_in_and_kills_a_detached_container_and_cleans_up
);

/// The private containerd every test starts runs no CRI (no stream server on the host's
/// loopback, no watch of the host's CNI directory) and keeps its `opt` directory in its own.
/// Until 2026-12-07 the config disabled nothing (the key sat in its `[debug]` table).
#[test]
fn the_private_containerd_runs_no_cri_and_keeps_to_its_directory() {
    let Some(ctrd) = setup() else { return };
    let plugins = ctrd
        .ctr_ok(&["plugins", "ls"])
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    let cri: Vec<&str> = plugins
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("cri"))
        .collect();
    assert!(
        cri.iter().all(|l| !l.trim_end().ends_with(" ok")),
        "{plugins}"
    );
    let opt = plugins
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("opt"))
        .unwrap_or_else(|| panic!("no opt plugin\n{plugins}"));
    assert!(opt.trim_end().ends_with(" ok"), "{plugins}");
    assert!(ctrd.dir().join("opt/bin").is_dir(), "{plugins}");
}

#[test]
fn a_container_whose_image_was_removed_learns_under_the_image_name() {
    let Some(ctrd) = setup() else { return };
    let id = container_id("untagged", CHAPERONE);
    let _cleanup = Cleanup(&ctrd, id.clone());
    let name = format!("docker.io/library/chaperone-gone:{}", std::process::id());
    ctrd.ctr_ok(&["images", "tag", BUSYBOX_IMAGE, &name])
        .unwrap();
    ctrd.ctr_ok(&[
        "containers",
        "create",
        "--runtime",
        CHAPERONE,
        &name,
        &id,
        "true",
    ])
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    // The record still names the image, but the image store no longer has it: no digest.
    ctrd.ctr_ok(&["images", "rm", &name]).unwrap();
    // Attached, ctr waits for the exit and deletes the task.
    ctrd.ctr_ok(&["tasks", "start", &id])
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    let summary = wait_for("the run stored", Duration::from_secs(10), || {
        Store::open(&ctrd.db_path()).ok()?.summary(&name).ok()?
    })
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    assert_eq!(summary.containers, 1, "{summary:?}");
    // A missing image is not a failed lookup: nothing to warn about.
    assert!(
        !ctrd.log().contains("cannot look up the container's image"),
        "{}",
        ctrd.explain("a warning for a removed image")
    );
}

/// containerd cannot say which image a container runs (injected: its lookup times out), so
/// its profile, and whether it is enforced, are unknown. With the default `fail_mode =
/// "closed"` Create fails and says why; with `"open"` the container runs with a warning, keyed
/// by the image's name CRI gives, else (here: `ctr run` gives none) its command. Before
/// 2026-12-07 it always ran so, an enforced image unenforced.
#[test]
fn a_failed_image_lookup_follows_the_fail_mode() {
    let Some(ctrd) = setup_env(&[(LOOKUP_FAULT_ENV, "lookup-fails")]) else {
        return;
    };
    let run = |id: &str| {
        ctrd.ctr(&[
            "run",
            "--rm",
            "--runtime",
            CHAPERONE,
            BUSYBOX_IMAGE,
            id,
            "echo",
            "ran",
        ])
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)))
    };

    let refused = container_id("lookup-fails-closed", CHAPERONE);
    let _cleanup = Cleanup(&ctrd, refused.clone());
    let out = run(&refused);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("cannot look up the container's image"),
        "{}",
        ctrd.explain(format!("{out:?}"))
    );
    assert!(stderr.contains("fail_mode is closed"), "{stderr}");

    ctrd.set_chaperone_config("fail_mode = \"open\"\n").unwrap();
    let keyed_by_name = container_id("lookup-fails-open", CHAPERONE);
    let _cleanup = Cleanup(&ctrd, keyed_by_name.clone());
    let out = run(&keyed_by_name);
    assert!(out.status.success(), "{}", ctrd.explain(format!("{out:?}")));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ran");
    assert!(
        Store::open(&ctrd.db_path())
            .unwrap()
            .summary("exec:echo")
            .unwrap()
            .is_some(),
        "{}",
        ctrd.explain("no profile keyed by the container's command")
    );
    assert!(ctrd
        .log()
        .contains("fail_mode is open, so its profile is keyed by the image's name CRI gives"));
}

/// A container's own profile that allows by default, lists `personality` in an allow rule
/// (which runc skips: it is the default) and denies it for 32-bit personality (`linux32`
/// asks for PER_LINUX32, 8): that denial holds under chaperone as under runc-v2. Until
/// 2026-12-07 chaperone made the skipped allow rule a notify rule, which libseccomp let
/// replace the conditional denial, and `linux32` ran.
fn own_conditional_denial(runtime: &str) {
    let Some(ctrd) = setup() else { return };
    let profile = ctrd.dir().join("no-linux32.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
            "syscalls":[{"names":["personality","read"],"action":"SCMP_ACT_ALLOW"},
                        {"names":["personality"],"action":"SCMP_ACT_ERRNO","errnoRet":1,
                         "args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}"#,
    )
    .unwrap();
    let id = container_id("own-denial", runtime);
    let _cleanup = Cleanup(&ctrd, id.clone());
    let out = ctrd
        .ctr(&[
            "run",
            "--rm",
            "--runtime",
            runtime,
            "--seccomp",
            "--seccomp-profile",
            profile.to_str().unwrap(),
            BUSYBOX_IMAGE,
            &id,
            "sh",
            "-c",
            "linux32 true && echo ran || echo denied",
        ])
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    assert!(out.status.success(), "{}", ctrd.explain(format!("{out:?}")));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "denied",
        "{}",
        ctrd.explain(format!("{out:?}"))
    );
}

under_both_shims!(
    own_conditional_denial:
    chaperone_keeps_a_default_allow_profile_s_conditional_denial,
    runc_v2_keeps_a_default_allow_profile_s_conditional_denial
);

#[test]
fn chaperone_mode_annotation_turns_tracing_off_or_fails_create_clearly() {
    let Some(ctrd) = setup() else { return };
    let off = container_id("off", CHAPERONE);
    let _cleanup_off = Cleanup(&ctrd, off.clone());
    let out = ctrd
        .ctr_ok(&[
            "run",
            "--runtime",
            CHAPERONE,
            "--rm",
            "--annotation",
            "chaperone.io/mode=off",
            BUSYBOX_IMAGE,
            &off,
            "echo",
            "untraced",
        ])
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    assert!(out.contains("untraced"), "{out}");
    assert_host_clean(&ctrd, &off, CHAPERONE);
    ctrd.wait_deleted_logged(&off)
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    let log = ctrd.log();
    let created_off = log
        .lines()
        .any(|l| l.contains("container created") && l.contains(&off) && l.contains("mode=off"));
    assert!(created_off, "no mode=off create in the log:\n{log}");
    let traced = log
        .lines()
        .any(|l| l.contains("learned the container's syscalls") && l.contains(&off));
    assert!(!traced, "mode off was traced");

    let bad = container_id("bad", CHAPERONE);
    let _cleanup_bad = Cleanup(&ctrd, bad.clone());
    let stderr = create_fails(
        &ctrd,
        &["--annotation", "chaperone.io/mode=lurn"],
        &bad,
        &["true"],
    );
    assert!(
        stderr.contains("chaperone.io/mode=\"lurn\"") && stderr.contains("expected one of"),
        "unclear error: {stderr}"
    );
    // containerd logs nothing of a shim's refusal: the shim's own line is the node's trace.
    assert_failed_create_logged(&ctrd, "lurn");
}

/// `ctr run --rm` of busybox running `cmd` under chaperone with `extra` options, which must
/// fail: its stderr.
fn create_fails(ctrd: &Containerd, extra: &[&str], id: &str, cmd: &[&str]) -> String {
    let out = run_rm(ctrd, CHAPERONE, extra, BUSYBOX_IMAGE, id, cmd);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{extra:?} {cmd:?} ran: {stderr}");
    stderr
}

/// Fails unless containerd's log has the shim's line for a failed Create mentioning `what`.
fn assert_failed_create_logged(ctrd: &Containerd, what: &str) {
    // Waited for: containerd copies the shim's lines as they come.
    let logged = wait_for("the failed Create's line", Duration::from_secs(30), || {
        ctrd.log()
            .lines()
            .any(|l| {
                l.contains("request failed") && l.contains("request=\"create\"") && l.contains(what)
            })
            .then_some(())
    })
    .is_ok();
    assert!(
        logged,
        "{}",
        ctrd.explain(format!("the failed Create ({what}) is not in the log"))
    );
}

/// runc failing a request (here Create, for a command the image does not have): ctr gets
/// runc's reason, and the shim logs the failed request with its verb and the whole chain,
/// which containerd's own log does not keep.
#[test]
fn a_request_runc_fails_is_reported_and_logged_with_its_verb() {
    let Some(ctrd) = setup() else { return };
    let id = container_id("runcfails", CHAPERONE);
    let _cleanup = Cleanup(&ctrd, id.clone());
    let stderr = create_fails(&ctrd, &[], &id, &["/no/such/program"]);
    assert!(
        stderr.contains("/no/such/program"),
        "runc's reason: {stderr}"
    );
    assert_failed_create_logged(&ctrd, "/no/such/program");
    assert_host_clean(&ctrd, &id, CHAPERONE);
}

/// A malformed chaperone config fails Create, naming the file and what is wrong, and leaves
/// nothing behind; the shim reads the config at every Create, so fixing the file is enough.
#[test]
fn a_malformed_config_fails_create_clearly_until_it_is_fixed() {
    let Some(ctrd) = setup() else { return };
    let id = container_id("badconfig", CHAPERONE);
    let _cleanup = Cleanup(&ctrd, id.clone());
    let config = ctrd.chaperone_config();
    let cases = [
        ("mdoe = \"learn\"\n", "mdoe"),
        ("[model]\ntarget_far = 7.0\n", "model.target_far"),
        ("mode = learn\n", "mode = learn"),
    ];
    for (extra, named) in cases {
        ctrd.set_chaperone_config(extra).unwrap();
        let stderr = create_fails(&ctrd, &[], &id, &["true"]);
        assert!(
            stderr.contains(&config.display().to_string()) && stderr.contains(named),
            "{extra:?}: the error does not name the file and {named:?}: {stderr}"
        );
        assert_host_clean(&ctrd, &id, CHAPERONE);
        ctrd.remove(&id);
    }

    ctrd.set_chaperone_config("").unwrap();
    let out = run_rm(
        &ctrd,
        CHAPERONE,
        &[],
        BUSYBOX_IMAGE,
        &id,
        &["echo", "fixed"],
    );
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("fixed"),
        "{}",
        ctrd.explain(format!("after the fix: {out:?}"))
    );
}

/// A container whose own seccomp profile has a notify rule but no listener: runc refuses it
/// ("listenerPath is not set"), and chaperone refuses it at Create, naming the rule, instead of
/// taking the container's notifications as its own.
fn own_notify_rule_fails_create(runtime: &str) {
    let Some(ctrd) = setup() else { return };
    let id = container_id("ownnotify", runtime);
    let _cleanup = Cleanup(&ctrd, id.clone());
    let profile = ctrd.dir().join("notify-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    )
    .unwrap();
    let seccomp = format!("--seccomp-profile={}", profile.display());
    let out = run_rm(
        &ctrd,
        runtime,
        &["--seccomp", &seccomp],
        BUSYBOX_IMAGE,
        &id,
        &["true"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{}",
        ctrd.explain(format!("a notify rule without a listener ran: {stderr}"))
    );
    let expected = if runtime == RUNC_V2 {
        "listenerPath is not set"
    } else {
        "SCMP_ACT_NOTIFY rules (mkdir) but no listenerPath"
    };
    assert!(
        stderr.contains(expected),
        "{}",
        ctrd.explain(format!("unclear error: {stderr}"))
    );
    assert_host_clean(&ctrd, &id, runtime);
}

under_both_shims!(
    own_notify_rule_fails_create:
    chaperone_refuses_a_containers_own_notify_rule_without_a_listener,
    runc_v2_refuses_a_containers_own_notify_rule_without_a_listener
);

/// A program without libc for x86_64 that makes three 32-bit syscalls through `int 0x80`: the
/// multiplexers `socketcall` and `ipc` with an operation no name covers (both fail with
/// EINVAL, but the filter sees the syscall first) and `getuid32`, which only 32-bit x86 has;
/// then it exits 0.
#[cfg(target_arch = "x86_64")]
const INT80_C: &str = r#"
static long int80(long nr, long call) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(call), "c"(0) : "memory");
    return r;
}
void _start(void) {
    int80(102, 0x7fff); /* socketcall */
    int80(117, 0x7fff); /* ipc */
    int80(199, 0); /* getuid32 */
    __asm__ volatile("syscall" : : "a"(231), "D"(0)); /* exit_group(0) */
    for (;;) {}
}
"#;

/// A container's 32-bit `socketcall` and `ipc` calls are notified and learned, whatever
/// operation they name (before, only the operations of the socket and SysV IPC names were),
/// and so is a syscall only 32-bit x86 has (before, the filter's default allowed it unseen).
#[cfg(target_arch = "x86_64")]
fn thirty_two_bit_multiplexers(runtime: &str) {
    runs_and_learns(
        runtime,
        "int80",
        INT80_C,
        &["socketcall", "ipc", "getuid32"],
        "",
    );
}

/// Runs the C program `source` (built by `compile_static`) as the only program of an image
/// called `name`, under `runtime`; it must exit 0. Under chaperone its image's profile must
/// then hold each of `names`; `hint` is added to the message of one that it lacks.
#[cfg(target_arch = "x86_64")]
fn runs_and_learns(runtime: &str, name: &str, source: &str, names: &[&str], hint: &str) {
    use chaperone_profiler::syscalls::{name_of, sym_of};
    let Some(ctrd) = setup() else { return };
    let image = format!("docker.io/library/chaperone-{name}:itest");
    let program = chaperone_integration::compile_static(ctrd.dir(), name, source, &[]);
    let path = format!("bin/{name}");
    ctrd.import_image(&image, &[(&path, &program, 0o755)])
        .unwrap();
    let id = container_id(name, runtime);
    let _cleanup = Cleanup(&ctrd, id.clone());
    let out = run_rm(&ctrd, runtime, &[], &image, &id, &[&format!("/{path}")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        ctrd.explain(format!(
            "exit of the {name} program: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    );
    if runtime == RUNC_V2 {
        return;
    }
    let digest = ctrd.image_digest(&image).unwrap();
    let profile = wait_for("the run stored", Duration::from_secs(10), || {
        Store::open(&ctrd.db_path()).ok()?.load(&digest).ok()?
    })
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    let alphabet = profile.counts.alphabet();
    for want in names {
        let sym = sym_of(want).unwrap_or_else(|| panic!("{want} is not in the alphabet"));
        assert!(
            alphabet.contains(&sym),
            "{want} not learned{hint}; the profile has {:?}",
            alphabet
                .iter()
                .filter_map(|&s| name_of(s))
                .collect::<Vec<_>>()
        );
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn chaperone_learns_32_bit_multiplexers_whatever_their_operation_and_32_bit_only_syscalls() {
    thirty_two_bit_multiplexers(CHAPERONE);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn runc_v2_runs_the_32_bit_syscall_program() {
    thirty_two_bit_multiplexers(RUNC_V2);
}

/// A program without libc for x86_64 that makes two syscalls newer than Linux 6.1, whose
/// tables chaperone's alphabet stopped at before (ADR 0025): `fchmodat2` (Linux 6.6) on a path
/// that does not exist and `cachestat` (6.5) on a closed fd. Both fail (ENOENT and EBADF, or
/// ENOSYS on an older kernel), but the filter sees them first; then it exits 0. Built with
/// `-DSTATMOUNT`, it calls `statmount` (6.8) instead and exits with its errno.
#[cfg(target_arch = "x86_64")]
const NEWER_C: &str = r#"
static long sys4(long nr, long a, long b, long c, long d) {
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return r;
}
void _start(void) {
#ifdef STATMOUNT
    /* statmount(NULL, NULL, 0, 0): EFAULT where the kernel has it; exits with the errno */
    long r = sys4(457, 0, 0, 0, 0);
    sys4(231, r < 0 ? -r : 0, 0, 0, 0);
#else
    sys4(452, -100, (long)"/no-such-file", 0, 0); /* fchmodat2(AT_FDCWD, ...) */
    sys4(451, 999, 0, 0, 0); /* cachestat */
    sys4(231, 0, 0, 0, 0); /* exit_group(0) */
#endif
    for (;;) {}
}
"#;

/// A container's syscalls newer than Linux 6.1 are notified and learned by name. Before the
/// tables came from 6.1's headers, the filter did not name them, so where the container had
/// no profile of its own the default action let them run unseen in every mode: `fchmodat2`
/// did what `fchmodat` does, past enforcement. runc names them to the kernel through its
/// libseccomp, which must know them (Debian 12's 2.5.4-1+deb12u1 knows those up to 6.7's).
#[cfg(target_arch = "x86_64")]
fn syscalls_newer_than_6_1(runtime: &str) {
    runs_and_learns(
        runtime,
        "newer",
        NEWER_C,
        &["fchmodat2", "cachestat"],
        " (does runc's libseccomp know it? `scmp_sys_resolver NAME`)",
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn chaperone_learns_syscalls_newer_than_linux_6_1_by_name() {
    syscalls_newer_than_6_1(CHAPERONE);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn runc_v2_runs_the_newer_syscalls_program() {
    syscalls_newer_than_6_1(RUNC_V2);
}

/// A syscall the filter of a container without its own profile cannot name takes the filter's
/// default action, `[filter] unnamed` (ADR 0026). `statmount` (Linux 6.8) is one where runc's
/// libseccomp cannot resolve it (Debian 12's cannot), so runc skips the name: under the
/// default `unnamed = "enosys"` it fails with ENOSYS, as on a kernel without it; under
/// `unnamed = "allow"`, and under runc-v2, the kernel answers (EFAULT, for its NULL request).
/// Where the libseccomp knows it, the filter names it and chaperone lets it through, traced.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_syscall_the_filter_cannot_name_fails_with_enosys_unless_unnamed_is_allow() {
    const ENOSYS: i32 = 38;
    let Some(ctrd) = setup() else { return };
    let image = "docker.io/library/chaperone-statmount:itest";
    let program =
        chaperone_integration::compile_static(ctrd.dir(), "statmount", NEWER_C, &["-DSTATMOUNT"]);
    ctrd.import_image(image, &[("bin/statmount", &program, 0o755)])
        .unwrap();
    let exit_of = |runtime: &str, tag: &str| {
        let id = container_id(&format!("statmount-{tag}"), runtime);
        let _cleanup = Cleanup(&ctrd, id.clone());
        let out = run_rm(&ctrd, runtime, &[], image, &id, &["/bin/statmount"]);
        out.status
            .code()
            .unwrap_or_else(|| panic!("{}", ctrd.explain(format!("{tag}: {out:?}"))))
    };
    let kernel = exit_of(RUNC_V2, "runc");
    if !chaperone_integration::require(kernel != ENOSYS, "a kernel with statmount (Linux 6.8+)") {
        return;
    }
    let named = libseccomp::ScmpSyscall::from_name("statmount").is_ok();
    eprintln!("statmount: the kernel answers errno {kernel}; libseccomp names it: {named}");
    let enosys = exit_of(CHAPERONE, "enosys");
    let want = if named { kernel } else { ENOSYS };
    assert_eq!(
        enosys,
        want,
        "{}",
        ctrd.explain("unnamed = enosys (the default)")
    );
    ctrd.set_chaperone_config("[filter]\nunnamed = \"allow\"\n")
        .unwrap();
    let allowed = exit_of(CHAPERONE, "allow");
    assert_eq!(allowed, kernel, "{}", ctrd.explain("unnamed = allow"));
}

/// A container sharing the host's pid namespace has nobody to take its processes down when its
/// init exits; the shim kills what init left before it records the exit, so once the task is
/// seen stopped (and before it is deleted, which would kill them too), a background process of
/// the container is dead or dying.
fn init_exit_in_the_host_pid_namespace(runtime: &str) {
    let Some(ctrd) = setup() else { return };
    let id = container_id("hostpid", runtime);
    let _cleanup = Cleanup(&ctrd, id.clone());
    let (out_dir, mount) = ctrd.out_dir(&format!("out-{id}"));
    // This test's own pid namespace, the host's (pid 1's may not be readable here).
    let host = format!("pid:/proc/{}/ns/pid", std::process::id());
    ctrd.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        runtime,
        "--with-ns",
        &host,
        "--mount",
        &mount,
        BUSYBOX_IMAGE,
        &id,
        "sh",
        "-c",
        "sleep 1000 & echo $! > /out/pid",
    ])
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    wait_for("the task to stop", Duration::from_secs(20), || {
        (ctrd.task_status(&id).as_deref() == Some("STOPPED")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    let written = std::fs::read_to_string(out_dir.join("pid")).unwrap_or_default();
    let pid: u32 = written
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}", ctrd.explain(format!("no pid in {written:?}"))));
    assert!(
        killed(pid),
        "{}",
        ctrd.explain(format!(
            "the container's sleep ({pid}) outlived its recorded exit"
        ))
    );
}

under_both_shims!(
    init_exit_in_the_host_pid_namespace:
    chaperone_kills_what_init_leaves_in_the_host_pid_namespace_before_the_exit,
    runc_v2_kills_what_init_leaves_in_the_host_pid_namespace_before_the_exit
);

/// A container whose runc state is too large for the seccomp listener (its spec carries
/// 1.2 MiB of annotations, over the listener's 1 MiB; Kubernetes allows 256 KiB) fails to start
/// with the refusal in the shim's log, and its Create returns. Until 2026-12-07 a refused
/// connection left runc init waiting in its notified `read` for ever, and the Create with it
/// (holding the shim's containers), at the 64 KiB the listener then took.
#[test]
fn a_container_whose_state_the_listener_refuses_fails_instead_of_hanging() {
    let Some(ctrd) = setup() else { return };
    let id = container_id("bigstate", CHAPERONE);
    let _cleanup = Cleanup(&ctrd, id.clone());
    // Twelve annotations of 100 KiB each (one argument may hold at most 128 KiB).
    let annotations: Vec<String> = (0..12)
        .map(|i| format!("example.com/note{i}={}", "x".repeat(100 * 1024)))
        .collect();
    let mut args = vec!["run", "--rm", "--runtime", CHAPERONE];
    for a in &annotations {
        args.extend(["--annotation", a.as_str()]);
    }
    args.extend([BUSYBOX_IMAGE, id.as_str(), "true"]);
    let out = ctrd
        .ctr(&args)
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(format!("{e:#}"))));
    assert!(
        !out.status.success(),
        "{}",
        ctrd.explain(format!("it ran: {out:?}"))
    );
    assert!(
        ctrd.wait_logged("", "message larger than"),
        "{}",
        ctrd.explain("no refusal in the log")
    );
    assert_eq!(ctrd.task_status(&id), None, "{}", ctrd.explain(""));
}
