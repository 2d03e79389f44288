//! A real container under runc, its seccomp notify fd sent to chaperone's supervisor through
//! `linux.seccomp.listenerPath`: the supervisor learns what the container did, and the container
//! exits normally. Needs root, runc and a static busybox (scripts/test.sh installs them).

// Integration tests are their own crate: no test module, and they report to the terminal.
#![allow(clippy::tests_outside_test_module, clippy::disallowed_macros)]

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use chaperone_integration::require;
use chaperone_integration::runc::{self, Bundle, Container};
use chaperone_profiler::model::{pack_symbols, NgramCounts};
use chaperone_profiler::supervisor::filter::learn_filter;
use chaperone_profiler::supervisor::listener::{Listener, ListenerConfig};
use chaperone_profiler::supervisor::{
    Fixed, KernelNotifier, Learn, Stats, Supervisor, SupervisorConfig, Verdict, Wait,
};
use chaperone_profiler::syscalls::sym_of;

fn prerequisites() -> bool {
    require(runc::is_root(), "root (runc needs it)")
        && require(runc::have_runc(), "runc (apt-get install runc)")
        && require(
            runc::have_static_busybox(),
            "a static busybox at /bin/busybox (apt-get install busybox-static)",
        )
}

#[test]
fn runc_sends_the_notify_fd_and_the_supervisor_learns_the_container() {
    if !prerequisites() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("chaperone.sock");
    let listener = Listener::bind(&socket, ListenerConfig::default()).unwrap();

    let mut bundle = Bundle::new(
        tmp.path(),
        &[
            "/bin/sh",
            "-c",
            "echo learned > /tmp/out && cat /tmp/out /etc/secret && uname -a",
        ],
    )
    .unwrap();
    let filter = learn_filter(None, &socket, Some("itest")).unwrap();
    bundle.config["linux"]["seccomp"] = serde_json::to_value(&filter).unwrap();
    bundle.write_config().unwrap();

    // The supervisor thread: accept runc's connection, learn until the filter has no users.
    let (done_tx, done_rx) = mpsc::channel();
    let supervisor = std::thread::spawn(move || {
        let result = (|| -> anyhow::Result<(NgramCounts, String)> {
            let accepted = listener.accept()?;
            let metadata = accepted.state.metadata().clone().unwrap_or_default();
            let notifier = KernelNotifier::new(accepted.seccomp_fd, Wait::default())?;
            let mode = Learn::new(NgramCounts::new(chaperone_config::DEFAULT_ORDER)?);
            let mut sup = Supervisor::new(
                notifier,
                mode,
                Fixed::new(Verdict::Continue),
                SupervisorConfig::default(),
                Arc::new(Stats::default()),
            )?;
            sup.run()?;
            let (mode, _) = sup.into_parts();
            Ok((mode.into_counts(), metadata))
        })();
        let _ = done_tx.send(result);
    });

    let container = Container::new(&tmp.path().join("runc-root"), "chaperone-itest-learn");
    let out = container.run(&bundle).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "container failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("learned\ns3cr3t\nLinux"), "{stdout}");

    // The filter's last user is gone once the container exited, so the supervisor ends.
    let (counts, metadata) = done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("supervisor ends when the container exits")
        .expect("supervisor ran");
    supervisor.join().unwrap();
    assert_eq!(metadata, "itest");
    let seen = |name: &str| counts.count(pack_symbols(&[sym_of(name).unwrap()]));
    eprintln!(
        "learned {} syscalls, {} distinct grams, alphabet {:?}",
        counts.events(),
        counts.distinct(),
        counts
            .alphabet()
            .iter()
            .filter_map(|&s| chaperone_profiler::syscalls::name_of(s))
            .collect::<Vec<_>>()
    );
    // runc execs the container's process under the filter; busybox sh forks each applet
    // (clone, wait4), which opens files and copies them out with sendfile, then exits.
    assert!(seen("execve") >= 1, "execve not learned");
    assert!(
        seen("clone") + seen("clone3") + seen("fork") >= 1,
        "forks not learned"
    );
    assert!(seen("wait4") >= 1, "waits not learned");
    assert!(seen("openat") + seen("open") >= 2, "file opens not learned");
    assert!(seen("read") >= 1, "reads not learned");
    assert!(seen("sendfile") >= 1, "cat's sendfile not learned");
    assert!(seen("uname") >= 1, "uname not learned");
    assert!(seen("exit_group") >= 1, "exit not learned");
    assert_eq!(
        seen("write"),
        0,
        "write is never notified (runc refuses it)"
    );
    assert!(counts.events() > 20);
}
