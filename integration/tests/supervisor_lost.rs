//! A container whose supervisor is lost is never left running with its traced syscalls failing
//! (ENOSYS): with the shim killed (a panic aborts the shim the same way), containerd takes the
//! container down; with a supervisor that fails inside a live shim, `fail_mode` decides:
//! closed stops the container, open lets it run untraced; a supervisor thread that cannot be
//! started stops its container in either mode.

// Integration tests and benches are their own crates: their tests have no test module, and
// they report to the terminal.
#![allow(clippy::tests_outside_test_module, clippy::disallowed_macros)]

use std::time::Duration;

use chaperone_integration::containerd::{
    dead, processes_with, setup, setup_env, signal, wait_for, Cleanup, Containerd, Events,
    BUSYBOX_IMAGE, CHAPERONE,
};
use chaperone_shim::learn::{FAULT_ENV, SPAWN_FAULT_ENV, SPAWN_ONCE_FAULT_ENV};
use nix::sys::signal::Signal;

fn task_pid(ctrd: &Containerd, id: &str) -> u32 {
    ctrd.task_pid(id).unwrap_or_else(|| {
        panic!(
            "{}",
            ctrd.explain(format!("no pid for {id} in ctr tasks ls"))
        )
    })
}

/// Runs a sleeping container `id` under chaperone: the pids of its init and of its shim.
fn run_sleeping(ctrd: &Containerd, id: &str) -> (u32, u32) {
    ctrd.run_sleeping(CHAPERONE, id)
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    let pid = task_pid(ctrd, id);
    let shims = processes_with(&["containerd-shim-chaperone-v2", "-id", id]);
    assert_eq!(
        shims.len(),
        1,
        "{}",
        ctrd.explain(format!("shims: {shims:?}"))
    );
    (pid, shims[0])
}

#[test]
fn a_killed_shim_takes_its_container_down_with_it() {
    let Some(ctrd) = setup() else { return };
    // Whatever the fail mode: "open" keeps a container running when its supervisor fails
    // inside a live shim, but no one is left to answer it once the shim is gone.
    for fail_mode in ["closed", "open"] {
        ctrd.set_chaperone_config(&format!("fail_mode = \"{fail_mode}\"\n"))
            .unwrap();
        let id = format!("shim-killed-{fail_mode}-{}", std::process::id());
        let _cleanup = Cleanup(&ctrd, id.clone());
        let events = Events::subscribe(&ctrd, &id)
            .unwrap_or_else(|e| panic!("{}", ctrd.explain(format!("{e:#}"))));
        let (pid, shim) = run_sleeping(&ctrd, &id);
        assert!(!dead(pid), "the container runs before the shim is killed");

        ctrd.kill_shim(&id, shim)
            .unwrap_or_else(|e| panic!("{}", ctrd.explain(format!("{e:#}"))));

        // containerd sees its shim gone and runs the shim's delete action (runc delete
        // --force): the container's process is killed, not left sleeping under a closed
        // notify fd.
        wait_for(
            "the container's process to die",
            Duration::from_secs(30),
            || dead(pid).then_some(()),
        )
        .unwrap_or_else(|e| panic!("{fail_mode}: {}", ctrd.explain(e)));
        wait_for("the task to stop", Duration::from_secs(30), || {
            (ctrd.task_status(&id).as_deref() != Some("RUNNING")).then_some(())
        })
        .unwrap_or_else(|e| panic!("{fail_mode}: {}", ctrd.explain(e)));
        // containerd reports the exit of a task whose shim died as killed.
        let exit = events
            .init_exit(&id, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{fail_mode}: {}", ctrd.explain(format!("{e:#}"))));
        assert!(exit.contains(r#""exit_status":137"#), "{fail_mode}: {exit}");
    }
}

/// SIGTERM to a shim (`pkill containerd-shim`, a service manager stopping a unit) is logged
/// and ignored: the container's supervisor runs in the shim, so ending it would end the
/// container's tracing. The container runs on, and its task is still served: an exec runs
/// (traced, in learn mode) and the task stops when asked.
#[test]
fn a_shim_ignores_sigterm_and_keeps_serving_its_container() {
    let Some(ctrd) = setup() else { return };
    let id = format!("shim-termed-{}", std::process::id());
    let _cleanup = Cleanup(&ctrd, id.clone());
    let (pid, shim) = run_sleeping(&ctrd, &id);

    signal(shim, Signal::SIGTERM).unwrap();
    wait_for(
        "the shim to log the SIGTERM it ignores",
        Duration::from_secs(10),
        || ctrd.log().contains("SIGTERM ignored").then_some(()),
    )
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    assert!(!dead(shim), "the shim ended on SIGTERM");
    assert!(
        !dead(pid),
        "the container ended with the SIGTERM to its shim"
    );

    let out = ctrd
        .ctr_ok(&[
            "tasks",
            "exec",
            "--exec-id",
            "after-term",
            &id,
            "echo",
            "served",
        ])
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    assert!(out.contains("served"), "{out}");
    ctrd.ctr_ok(&["tasks", "kill", "--signal", "SIGKILL", &id])
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    wait_for("the task to stop", Duration::from_secs(30), || {
        (ctrd.task_status(&id).as_deref() == Some("STOPPED")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    assert!(!dead(shim), "the shim serves until its task is deleted");
}

/// A containerd whose shims fail the supervisor of every container with `failing` in its id,
/// cannot start one for a container with `threadless` in its id, and start one only at the
/// second attempt for a container with `retried` in its id.
fn failing_containerd() -> Option<Containerd> {
    setup_env(&[
        (FAULT_ENV, "failing"),
        (SPAWN_FAULT_ENV, "threadless"),
        (SPAWN_ONCE_FAULT_ENV, "retried"),
    ])
}

fn run(ctrd: &Containerd, id: &str) -> std::process::Output {
    ctrd.ctr_run_logged(&[
        "--rm",
        "--runtime",
        CHAPERONE,
        BUSYBOX_IMAGE,
        id,
        "sh",
        "-c",
        "ls / >/dev/null; echo ran",
    ])
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)))
}

/// Runs the script in `id` and checks that it ran to its end.
fn run_to_its_end(ctrd: &Containerd, id: &str) {
    let out = run(ctrd, id);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ran"),
        "{}",
        ctrd.explain(format!("ctr run: {out:?}"))
    );
}

/// Whether the log has the line, waiting for it ([`Containerd::wait_logged`]).
fn logged(ctrd: &Containerd, id: &str, message: &str) -> bool {
    ctrd.wait_logged(id, message)
}

/// Whether the log lacks the line once every line of `id`'s shim is in ([`Containerd::wait_deleted_logged`]).
fn never_logged(ctrd: &Containerd, id: &str, message: &str) -> bool {
    ctrd.wait_deleted_logged(id)
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    times_logged(ctrd, id, message) == 0
}

/// How many lines of containerd's log (the shims' included) name `id` and say `message`.
fn times_logged(ctrd: &Containerd, id: &str, message: &str) -> usize {
    ctrd.log()
        .lines()
        .filter(|l| l.contains(message) && l.contains(id))
        .count()
}

#[test]
fn a_failed_supervisor_stops_its_container_when_fail_mode_is_closed() {
    let Some(ctrd) = failing_containerd() else {
        return;
    };
    let id = format!("failing-closed-{}", std::process::id());
    let _cleanup = Cleanup(&ctrd, id.clone());
    let out = run(&ctrd, &id);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The supervisor fails once the container's program runs (after its execve): the
    // container is killed there, before the script's first command.
    assert_eq!(
        out.status.code(),
        Some(128 + 9),
        "{}",
        ctrd.explain(format!("ctr run: {out:?}"))
    );
    assert!(!stdout.contains("ran"), "{stdout}");
    assert!(
        logged(
            &ctrd,
            &id,
            "fail_mode is closed, so the container is stopped"
        ),
        "{}",
        ctrd.explain("no fail-closed message in the log")
    );

    // A container the fault does not name is traced as usual beside it.
    let healthy = format!("healthy-{}", std::process::id());
    let _cleanup_healthy = Cleanup(&ctrd, healthy.clone());
    run_to_its_end(&ctrd, &healthy);
    assert!(
        logged(&ctrd, &healthy, "storing what the container learned"),
        "{}",
        ctrd.explain("the healthy container was not learned")
    );
}

#[test]
fn a_failed_supervisor_lets_its_container_run_untraced_when_fail_mode_is_open() {
    let Some(ctrd) = failing_containerd() else {
        return;
    };
    ctrd.set_chaperone_config("fail_mode = \"open\"\n").unwrap();
    let id = format!("failing-open-{}", std::process::id());
    let _cleanup = Cleanup(&ctrd, id.clone());
    run_to_its_end(&ctrd, &id);
    assert!(
        logged(
            &ctrd,
            &id,
            "fail_mode is open, so the container's syscalls are allowed"
        ),
        "{}",
        ctrd.explain("no fail-open message in the log")
    );
    assert!(
        never_logged(&ctrd, &id, "storing what the container learned"),
        "{}",
        ctrd.explain("an untraced run was learned")
    );
}

#[test]
fn a_container_whose_supervisor_thread_cannot_start_is_stopped_whatever_the_fail_mode() {
    let Some(ctrd) = failing_containerd() else {
        return;
    };
    // Even "open" cannot let it run: the shim's notify fd went with the thread that never
    // started, and runc init, which keeps its own copy until runc's go-ahead arrives, waits for
    // that go-ahead in a notified `read` that nobody answers (ADR 0016): left alone, `ctr run`
    // hangs.
    ctrd.set_chaperone_config("fail_mode = \"open\"\n").unwrap();
    let id = format!("threadless-{}", std::process::id());
    let _cleanup = Cleanup(&ctrd, id.clone());
    let out = run(&ctrd, &id);
    assert!(
        !out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("ran"),
        "{}",
        ctrd.explain(format!("ctr run: {out:?}"))
    );
    assert!(
        logged(
            &ctrd,
            &id,
            "cannot start a supervisor thread; stopping the container"
        ),
        "{}",
        ctrd.explain("no message for the thread that could not start")
    );
    let retries = times_logged(&ctrd, &id, "cannot start a supervisor thread; trying again");
    assert_eq!(
        retries,
        3,
        "{}",
        ctrd.explain("three retries before the stop")
    );
    assert_ne!(
        ctrd.task_status(&id).as_deref(),
        Some("RUNNING"),
        "{}",
        ctrd.explain("the container is left running")
    );

    // The shim goes on: the next container gets its supervisor.
    let healthy = format!("healthy-after-{}", std::process::id());
    let _cleanup_healthy = Cleanup(&ctrd, healthy.clone());
    run_to_its_end(&ctrd, &healthy);
}

#[test]
fn a_supervisor_thread_that_starts_at_a_retry_serves_its_container() {
    let Some(ctrd) = failing_containerd() else {
        return;
    };
    let id = format!("retried-{}", std::process::id());
    let _cleanup = Cleanup(&ctrd, id.clone());
    run_to_its_end(&ctrd, &id);
    assert!(
        logged(&ctrd, &id, "cannot start a supervisor thread; trying again"),
        "{}",
        ctrd.explain("no message for the failed first attempt")
    );
    assert!(
        never_logged(&ctrd, &id, "stopping the container"),
        "{}",
        ctrd.explain("the container was stopped although the retry started its supervisor")
    );
    assert!(
        logged(&ctrd, &id, "storing what the container learned"),
        "{}",
        ctrd.explain("the container was not learned")
    );
}
