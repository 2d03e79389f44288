//! A process stopped while it sleeps (SIGSTOP, a debugger attaching) resumes its sleep through
//! `restart_syscall`: the kernel makes the thread enter that syscall when it continues, so no
//! program calls it and no profile learns it. Before 2026-12-02 an enforced container was killed
//! for it (a never-seen syscall) and an exported profile failed the sleep with EPERM. A
//! container under an enforced chaperone profile, and one under an exported profile alone, must
//! sleep through `ctr task pause`/`resume` (the cgroup freezer, which since Linux 6.1 holds a
//! sleeper where it sleeps) and `ctr task kill -s SIGSTOP`/`SIGCONT` as under runc, and so must
//! a busybox shell waiting in `wait4` for its sleeping child. Needs root, containerd, runc, a
//! static busybox and a C compiler (scripts/test.sh installs them); x86_64 only (the probe is
//! written in x86_64 syscalls).

// Integration tests are their own crate: no test module, and they report to the terminal.
#![allow(clippy::tests_outside_test_module, clippy::disallowed_macros)]
#![cfg(target_arch = "x86_64")]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chaperone_integration::containerd::{
    setup, wait_for, Cleanup, Containerd, BUSYBOX_IMAGE, CHAPERONE,
};
use chaperone_profiler::store::Store;
use chaperone_profiler::syscalls::Arch;
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

/// Compiles [`NAP_C`] with `naps` naps into `dir`.
fn nap_program(dir: &Path, naps: u32) -> Vec<u8> {
    let src = dir.join("nap.c");
    let bin = dir.join(format!("nap{naps}"));
    std::fs::write(&src, NAP_C).unwrap();
    let out = Command::new("cc")
        .args(["-static", "-nostdlib", "-fno-stack-protector", "-O2"])
        .arg(format!("-DNAPS={naps}"))
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("cc runs (gcc is one of the build packages)");
    assert!(
        out.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&bin).unwrap()
}

/// The image with `/bin/nap2` (0.4 s, to learn) and `/bin/nap20` (4 s, to pause).
fn import(ctrd: &Containerd) {
    let short = nap_program(ctrd.dir(), 2);
    let long = nap_program(ctrd.dir(), 20);
    ctrd.import_image(
        IMAGE,
        &[("bin/nap2", &short, 0o755), ("bin/nap20", &long, 0o755)],
    )
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
}

/// `ctr run --rm` of `/bin/nap20` as `id` with `flags`, three times paused and resumed, and
/// stopped and continued, while it sleeps; its exit code.
fn nap_through_pauses(ctrd: &Containerd, id: &str, flags: &[&str]) -> Option<i32> {
    let _cleanup = Cleanup(ctrd, id.to_owned());
    let mut child = Command::new("ctr")
        .arg("-a")
        .arg(ctrd.socket())
        .args([
            "-n",
            ctrd.namespace(),
            "run",
            "--rm",
            "--runtime",
            CHAPERONE,
        ])
        .args(flags)
        .args([IMAGE, id, "/bin/nap20"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ctr starts");
    for _ in 0..3 {
        // Running again, or already exited (then the exit code tells why).
        let running = wait_for("the task to run", Duration::from_secs(20), || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Some(status.code()));
            }
            (ctrd.task_status(id).as_deref() == Some("RUNNING")).then_some(None)
        });
        match running {
            Ok(None) => {}
            Ok(Some(code)) => return code,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{}", ctrd.explain(e))
            }
        }
        // A pause (the cgroup freezer) and a stop: since Linux 6.1 a frozen sleeper is held
        // where it sleeps, but SIGSTOP interrupts the sleep, which SIGCONT restarts.
        for args in [
            &["task", "pause", id][..],
            &["task", "resume", id],
            &["task", "kill", "-s", "SIGSTOP", id],
            &["task", "kill", "-s", "SIGCONT", id],
        ] {
            ctrd.ctr_ok(args)
                .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
        }
    }
    let status = wait_for("the container to exit", Duration::from_secs(30), || {
        child.try_wait().ok().flatten()
    });
    let status = status.unwrap_or_else(|e| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{}", ctrd.explain(e))
    });
    status.code()
}

/// Learns `/bin/nap2` three times into profile `key` (monitor and enforce need the held-out
/// runs 2 and 3).
fn learn(ctrd: &Containerd, key: &str) {
    for n in 1..=3 {
        let id = format!("{key}-learn{n}");
        let _cleanup = Cleanup(ctrd, id.clone());
        let annotation = format!("chaperone.io/profile={key}");
        let out = ctrd
            .ctr(&[
                "run",
                "--rm",
                "--runtime",
                CHAPERONE,
                "--annotation",
                &annotation,
                IMAGE,
                &id,
                "/bin/nap2",
            ])
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            ctrd.explain("a learning run failed")
        );
    }
}

#[test]
fn an_enforced_container_sleeps_through_a_pause_and_a_stop() {
    let Some(ctrd) = setup() else { return };
    import(&ctrd);
    let key = format!("nap-{}", std::process::id());
    learn(&ctrd, &key);
    let id = format!("{key}-enforced");
    let annotations = [
        format!("chaperone.io/profile={key}"),
        "chaperone.io/mode=enforce".to_owned(),
        "chaperone.io/action=kill".to_owned(),
    ];
    let flags: Vec<&str> = annotations
        .iter()
        .flat_map(|a| ["--annotation", a.as_str()])
        .collect();
    let code = nap_through_pauses(&ctrd, &id, &flags);
    let alerts = alerts_of(&ctrd, &id);
    assert_eq!(
        code,
        Some(0),
        "{}",
        ctrd.explain(format!("alerts: {alerts:?}"))
    );
    assert!(
        alerts.is_empty(),
        "{}",
        ctrd.explain(format!("alerts: {alerts:?}"))
    );
}

#[test]
fn an_exported_profile_lets_a_container_sleep_through_a_pause_and_a_stop() {
    let Some(ctrd) = setup() else { return };
    import(&ctrd);
    let key = format!("napx-{}", std::process::id());
    learn(&ctrd, &key);
    let counts = Store::open(&ctrd.db_path())
        .unwrap()
        .load(&key)
        .unwrap()
        .unwrap_or_else(|| panic!("{}", ctrd.explain("no profile learned")))
        .counts;
    let options = ExportOptions {
        arches: vec![Arch::X86_64],
        default_action: DefaultAction::Errno,
        base: None,
    };
    let oci = export_oci(&Allowlist::from_counts(&counts), &options).unwrap();
    let profile = ctrd.dir().join("nap.json");
    std::fs::write(&profile, export_docker(&oci)).unwrap();
    let flags = [
        "--annotation",
        "chaperone.io/mode=off",
        "--seccomp",
        "--seccomp-profile",
        profile.to_str().unwrap(),
    ];
    let code = nap_through_pauses(&ctrd, &format!("{key}-exported"), &flags);
    assert_eq!(
        code,
        Some(0),
        "{}",
        ctrd.explain("exit 1 is EPERM from a nanosleep resumed after SIGCONT")
    );
}

/// A busybox shell waiting in `wait4` for a sleeping child, both stopped (`kill -a`) and
/// continued, then paused and resumed, three times: the wait restarts as the same syscall and
/// the sleep through `restart_syscall`, and the enforced container runs to its end unalerted.
#[test]
fn an_enforced_shell_and_its_sleeping_child_go_on_after_stops_and_pauses() {
    let Some(ctrd) = setup() else { return };
    let key = format!("shwait-{}", std::process::id());
    let annotation = format!("chaperone.io/profile={key}");
    let script = |secs: &str| format!("sleep {secs}; cat /etc/hostname > /dev/null; echo done");
    for n in 1..=3 {
        let id = format!("{key}-learn{n}");
        let _cleanup = Cleanup(&ctrd, id.clone());
        let args = [
            "run",
            "--rm",
            "--runtime",
            CHAPERONE,
            "--annotation",
            &annotation,
        ];
        let out = ctrd
            .ctr(&[&args[..], &[BUSYBOX_IMAGE, &id, "sh", "-c", &script("0.5")]].concat())
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            ctrd.explain("a learning run failed")
        );
    }
    let id = format!("{key}-enforced");
    let _cleanup = Cleanup(&ctrd, id.clone());
    let mut child = Command::new("ctr")
        .arg("-a")
        .arg(ctrd.socket())
        .args([
            "-n",
            ctrd.namespace(),
            "run",
            "--rm",
            "--runtime",
            CHAPERONE,
        ])
        .args(["--annotation", &annotation])
        .args(["--annotation", "chaperone.io/mode=enforce"])
        .args(["--annotation", "chaperone.io/action=kill"])
        .args([BUSYBOX_IMAGE, &id, "sh", "-c", &script("4")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ctr starts");
    let reaped = Reaped(&mut child);
    wait_for("the task to run", Duration::from_secs(20), || {
        (ctrd.task_status(&id).as_deref() == Some("RUNNING")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    for _ in 0..3 {
        for args in [
            &["task", "kill", "-a", "-s", "SIGSTOP", &id][..],
            &["task", "kill", "-a", "-s", "SIGCONT", &id],
            &["task", "pause", &id],
            &["task", "resume", &id],
        ] {
            ctrd.ctr_ok(args)
                .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
        }
    }
    let status = wait_for("the container to exit", Duration::from_secs(30), || {
        reaped.0.try_wait().ok().flatten()
    })
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    let alerts = alerts_of(&ctrd, &id);
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        ctrd.explain(format!("alerts: {alerts:?}"))
    );
    assert!(
        alerts.is_empty(),
        "{}",
        ctrd.explain(format!("alerts: {alerts:?}"))
    );
}

/// A `ctr` child killed and reaped when the test ends, however it ends.
struct Reaped<'a>(&'a mut std::process::Child);

impl Drop for Reaped<'_> {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn alerts_of(ctrd: &Containerd, id: &str) -> Vec<serde_json::Value> {
    ctrd.alerts()
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)))
        .into_iter()
        .filter(|a| a["output_fields"]["container.id"] == id)
        .collect()
}
