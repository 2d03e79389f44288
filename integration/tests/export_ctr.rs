//! A learned profile shipped as an ordinary seccomp profile: the demo's web server is learned,
//! its profile exported in Docker's format, and the server then runs under that profile alone
//! (chaperone off, plain runc): its workload works, a syscall it never made fails with EPERM, and
//! the profile allows far fewer syscalls than containerd's default (Docker's) profile, measured on
//! the same machine. Needs root, containerd, runc and a static busybox.

// Integration tests are their own crate: no test module, and they report to the terminal.
#![allow(clippy::tests_outside_test_module, clippy::disallowed_macros)]

use std::collections::BTreeSet;
use std::time::Duration;

use chaperone_integration::containerd::{setup, wait_for, Cleanup, Containerd, CHAPERONE};
use chaperone_integration::demo::{self, Options, Server, IMAGE, PROFILE};
use chaperone_profiler::store::Store;
use chaperone_profiler::syscalls::Arch;
use chaperone_seccomp_gen::docker::export_docker;
use chaperone_seccomp_gen::{export_oci, Allowlist, DefaultAction, ExportOptions};
use serde_json::Value;

/// Distinct syscall names an OCI/Docker profile's allow rules name.
fn allowed(seccomp: &Value) -> BTreeSet<String> {
    seccomp["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
        .flat_map(|r| r["names"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect()
}

/// The seccomp profile containerd gives a container with `--seccomp` (its default, Docker's):
/// read from the bundle of a container started with it.
fn containerd_default(ctrd: &Containerd) -> Value {
    let id = format!("default-profile-{}", std::process::id());
    let _cleanup = Cleanup(ctrd, id.clone());
    ctrd.ctr_ok(&[
        "run",
        "-d",
        "--seccomp",
        "--runtime",
        CHAPERONE,
        "--annotation",
        "chaperone.io/mode=off",
        IMAGE,
        &id,
        "sleep",
        "60",
    ])
    .unwrap();
    let config = ctrd
        .state_dir()
        .join("io.containerd.runtime.v2.task")
        .join(ctrd.namespace())
        .join(&id)
        .join("config.json");
    let spec: Value = serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
    spec["linux"]["seccomp"].clone()
}

#[test]
fn the_exported_profile_runs_the_workload_and_denies_the_rest() {
    let Some(ctrd) = setup() else { return };
    let opts = Options {
        port: 18_182,
        max_learn_runs: 60,
        ..Options::default()
    };
    demo::prepare(&ctrd).unwrap();
    demo::learn(&ctrd, &opts).unwrap_or_else(|e| panic!("{}", ctrd.explain(format!("{e:#}"))));

    let counts = Store::open(&ctrd.db_path())
        .unwrap()
        .load(PROFILE)
        .unwrap()
        .unwrap()
        .counts;
    let options = ExportOptions {
        arches: vec![Arch::native().unwrap_or(Arch::X86_64)],
        default_action: DefaultAction::Errno,
        base: None,
    };
    let oci = export_oci(&Allowlist::from_counts(&counts), &options).unwrap();
    let docker = export_docker(&oci);
    let exported: Value = serde_json::from_str(&docker).unwrap();
    let profile_file = ctrd.dir().join("demo-web.json");
    std::fs::write(&profile_file, &docker).unwrap();

    let ours = allowed(&exported);
    let theirs = allowed(&containerd_default(&ctrd));
    let ratio = ours.len() as f64 / theirs.len() as f64;
    eprintln!(
        "exported profile allows {} syscalls, containerd's default {}: {:.0} %",
        ours.len(),
        theirs.len(),
        ratio * 100.0
    );
    assert!(
        theirs.len() > 250,
        "containerd's default profile looks wrong: {}",
        theirs.len()
    );
    assert!(
        ratio <= 0.40,
        "target: at most 40 % of the default profile's syscalls"
    );

    // The server under the exported profile alone (chaperone off): the workload works.
    let profile = profile_file.to_str().unwrap();
    let flags = [
        "--annotation",
        "chaperone.io/mode=off",
        "--seccomp",
        "--seccomp-profile",
        profile,
    ];
    let server = Server::start(&ctrd, "web-exported", opts.port, &flags)
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(format!("{e:#}"))));
    demo::benign_traffic(opts.port)
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(format!("{e:#}"))));
    assert_eq!(ctrd.task_status("web-exported").as_deref(), Some("RUNNING"));
    server.stop().unwrap();

    // A syscall the workload never made fails with EPERM.
    let id = format!("exported-mkdir-{}", std::process::id());
    let _cleanup = Cleanup(&ctrd, id.clone());
    let mut args = vec!["run", "--rm", "--runtime", CHAPERONE];
    args.extend_from_slice(&flags);
    args.extend([IMAGE, id.as_str(), "mkdir", "/tmp/new"]);
    let out = ctrd.ctr(&args).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
    wait_for("the container to go", Duration::from_secs(10), || {
        ctrd.task_status(&id).is_none().then_some(())
    })
    .unwrap();
}
