//! `chaperone learn`, `profile export` and `diff`, run as the real binary on the fixtures of
//! `seccomp-gen/tests/fixtures/`.

// Integration tests are their own crates: their tests have no test module.
#![allow(clippy::tests_outside_test_module)]

mod common;

use std::path::{Path, PathBuf};

use common::{chaperone, code, ok};

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../seccomp-gen/tests/fixtures")
        .join(name)
}

fn learn(dir: &Path, trace: &str, name: &str) -> String {
    let out = dir.join(name);
    let out = out.to_str().unwrap().to_owned();
    let from = fixture(trace);
    ok(&[
        "learn",
        "--from",
        from.to_str().unwrap(),
        "--format",
        "strace",
        "-o",
        &out,
    ]);
    out
}

fn allowed(p: &LinuxSeccomp) -> Vec<String> {
    p.syscalls()
        .iter()
        .flatten()
        .filter(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none())
        .flat_map(|r| r.names().clone())
        .collect()
}

/// `chaperone profile export --profile PROFILE --format oci` and `extra`, parsed.
/// `chaperone profile export --profile PROFILE --format oci -o`, the output still to add.
fn export_to_args(profile: &str) -> [&str; 7] {
    [
        "profile",
        "export",
        "--profile",
        profile,
        "--format",
        "oci",
        "-o",
    ]
}

/// Runs `chaperone profile export --profile PROFILE --format oci -o OUT`.
fn export_to(profile: &str, out: &str) -> std::process::Output {
    chaperone(&[&export_to_args(profile)[..], &[out]].concat())
}

fn export_oci(profile: &str, extra: &[&str]) -> LinuxSeccomp {
    let mut args = vec!["profile", "export", "--profile", profile, "--format", "oci"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(&args)).unwrap()
}

/// An architecture given twice is exported once (`dedup` took out only neighbours).
#[test]
fn an_architecture_given_twice_is_exported_once() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = learn(dir.path(), "webserver-v1.strace", "v1.profile");
    let oci = export_oci(&v1, &["--arch", "x86_64,aarch64,x86_64"]);
    let arches = oci.architectures().clone().unwrap_or_default();
    let mut unique = arches.clone();
    unique.sort_by_key(|a| format!("{a:?}"));
    unique.dedup();
    assert_eq!(arches.len(), unique.len(), "{arches:?}");
}

#[test]
fn learn_then_export_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = learn(dir.path(), "webserver-v1.strace", "v1.profile");

    let oci = export_oci(&v1, &[]);
    assert_eq!(oci.default_action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(oci.default_errno_ret(), Some(1));
    let names = allowed(&oci);
    for n in [
        "accept4",
        "sendfile",
        "epoll_wait",
        "epoll_pwait",
        "execve",
        "futex",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} allowed");
    }
    assert!(!names.iter().any(|x| x == "ptrace"));

    let out = dir.path().join("docker.json");
    ok(&[
        "profile",
        "export",
        "--profile",
        &v1,
        "--format",
        "docker",
        "--arch",
        "x86_64",
        "--default-action",
        "kill",
        "-o",
        out.to_str().unwrap(),
    ]);
    let docker: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(docker["defaultAction"], "SCMP_ACT_KILL_PROCESS");
    assert_eq!(docker["archMap"][0]["architecture"], "SCMP_ARCH_X86_64");
    assert!(docker["syscalls"][0]["names"].is_array());

    let spo = ok(&[
        "profile",
        "export",
        "--profile",
        &v1,
        "--format",
        "spo",
        "--name",
        "web",
        "--default-action",
        "log",
    ]);
    assert!(spo.contains("kind: SeccompProfile\n"));
    assert!(spo.contains("apiVersion: security-profiles-operator.x-k8s.io/v1beta1\n"));
    assert!(spo.contains("  name: web\n"));
    assert!(spo.contains("  defaultAction: SCMP_ACT_LOG\n"));
}

#[test]
fn merge_keeps_the_bases_denials() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = learn(dir.path(), "webserver-v2.strace", "v2.profile");
    let base = fixture("docker-base.json");
    let oci = export_oci(&v2, &["--merge", base.to_str().unwrap()]);
    let names = allowed(&oci);
    assert!(names.iter().any(|n| n == "read"));
    // v2 learned ptrace, but the base allows it only with CAP_SYS_ADMIN: denied.
    assert!(!names.iter().any(|n| n == "ptrace"));
    // v2 learned clone; the base allows it only without namespace flags: kept conditional.
    let clone = oci
        .syscalls()
        .iter()
        .flatten()
        .find(|r| r.names().iter().any(|n| n == "clone"))
        .expect("a clone rule");
    assert!(clone.args().is_some());
}

#[test]
fn diff_reports_and_gates() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = learn(dir.path(), "webserver-v1.strace", "v1.profile");
    let v2 = learn(dir.path(), "webserver-v2.strace", "v2.profile");

    let same = chaperone(&["diff", &v1, &v1, "--fail-on", "any"]);
    assert_eq!(same.status.code(), Some(0));

    let json = chaperone(&["diff", &v1, &v2, "--json"]);
    assert_eq!(json.status.code(), Some(0), "no --fail-on: never fails");
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    let changes = v["changes"].as_array().unwrap();
    let find = |kind: &str, name: &str| {
        changes
            .iter()
            .find(|c| c["kind"] == kind && c["syscalls"][0] == name)
            .cloned()
    };
    assert_eq!(find("new-syscall", "ptrace").unwrap()["risk"], "high");
    assert_eq!(find("new-syscall", "clone").unwrap()["risk"], "medium");
    assert_eq!(
        find("new-transition", "execve").unwrap()["syscalls"][1],
        "ptrace"
    );
    assert_eq!(v["failed"], false);

    for policy in ["new-syscalls", "risky", "any"] {
        let out = chaperone(&["diff", &v1, &v2, "--fail-on", policy]);
        assert_eq!(out.status.code(), Some(3), "{policy}");
    }
    // v2 -> v1 only removes: nothing new, nothing risky.
    assert_eq!(code(&["diff", &v2, &v1, "--fail-on", "risky"]), Some(0));
    assert_eq!(code(&["diff", &v2, &v1, "--fail-on", "any"]), Some(3));
}

#[test]
fn learn_extends_a_profile() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = learn(dir.path(), "webserver-v1.strace", "p.profile");
    let from = fixture("webserver-v2.strace");
    ok(&[
        "learn",
        "--from",
        from.to_str().unwrap(),
        "--format",
        "strace",
        "--merge-into",
        &v1,
        "-o",
        &v1,
    ]);
    let v2 = learn(dir.path(), "webserver-v2.strace", "v2.profile");
    // v1 + v2 has everything v2 has.
    assert_eq!(
        code(&["diff", &v1, &v2, "--fail-on", "new-syscalls"]),
        Some(0)
    );
}

#[test]
fn errors_and_usage() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = learn(dir.path(), "webserver-v1.strace", "v1.profile");
    let missing = chaperone(&[
        "profile",
        "export",
        "--profile",
        "/nonexistent",
        "--format",
        "oci",
    ]);
    assert_eq!(missing.status.code(), Some(1));
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, b"not a model").unwrap();
    let bad = chaperone(&["diff", &v1, garbage.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    for args in [
        &["profile", "export", "--profile", &v1, "--format", "yaml"][..],
        &[
            "profile",
            "export",
            "--profile",
            &v1,
            "--format",
            "oci",
            "--arch",
            "mips",
        ],
        &[
            "profile",
            "export",
            "--profile",
            &v1,
            "--format",
            "oci",
            "--default-action",
            "allow",
        ],
        &["diff", &v1, &v1, "--fail-on", "sometimes"],
    ] {
        assert_eq!(chaperone(args).status.code(), Some(2), "{args:?}");
    }
    let help = ok(&["diff", "--help"]);
    assert!(help.contains("3 policy failure"));
    let bad_name = chaperone(&[
        "profile",
        "export",
        "--profile",
        &v1,
        "--format",
        "spo",
        "--name",
        "Bad_Name",
    ]);
    assert_eq!(bad_name.status.code(), Some(1));
}

/// `-o` replaces its file whole, through a new file renamed over it: the old one keeps its
/// place until the new one is complete, keeps its permissions, and a link is written through.
#[test]
fn output_files_are_replaced_whole_or_left_alone() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let v1 = learn(dir.path(), "webserver-v1.strace", "v1.profile");
    let args = export_to_args(&v1);
    let export = |out: &Path| export_to(&v1, out.to_str().unwrap());
    let leftovers = || -> Vec<String> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    };

    let json = dir.path().join("web.json");
    std::fs::write(&json, "old").unwrap();
    std::fs::set_permissions(&json, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(export(&json).status.success());
    let text = std::fs::read_to_string(&json).unwrap();
    serde_json::from_str::<LinuxSeccomp>(&text).expect("the whole new profile");
    let mode = std::fs::metadata(&json).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);

    let link = dir.path().join("current.json");
    std::os::unix::fs::symlink(&json, &link).unwrap();
    std::fs::write(&json, "old").unwrap();
    assert!(export(&link).status.success());
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    serde_json::from_str::<LinuxSeccomp>(&std::fs::read_to_string(&json).unwrap())
        .expect("written through the link");

    // A link to a file not there yet creates it.
    let dangling = dir.path().join("next.json");
    std::os::unix::fs::symlink(dir.path().join("made.json"), &dangling).unwrap();
    assert!(export(&dangling).status.success());
    serde_json::from_str::<LinuxSeccomp>(
        &std::fs::read_to_string(dir.path().join("made.json")).unwrap(),
    )
    .expect("made through the link");

    // Killed in the middle of the write (by SIGXFSZ, past a 512-byte file size limit): the old
    // file is as it was. Writing in place, the kill left the first 512 bytes of the new one.
    std::fs::write(&json, "old").unwrap();
    let killed = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -f 1 && exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_chaperone"))
        .args(args)
        .arg(&json)
        .env("CHAPERONE_CONFIG", "/dev/null")
        .output()
        .unwrap();
    assert!(!killed.status.success(), "{killed:?}");
    assert_eq!(std::fs::read_to_string(&json).unwrap(), "old");
    for temp in leftovers() {
        std::fs::remove_file(dir.path().join(temp)).unwrap();
    }

    // A write that cannot finish (here: a directory where the file would go) fails, and
    // leaves what was there and nothing else.
    let taken = dir.path().join("taken.json");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("inside"), "kept").unwrap();
    let out = export(&taken);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write"));
    assert_eq!(
        std::fs::read_to_string(taken.join("inside")).unwrap(),
        "kept"
    );
    assert_eq!(leftovers(), Vec::<String>::new());
}

/// What `-o` names that is not a regular file is written to, never replaced: a named pipe
/// (its reader gets the profile), a device (as root: a null device made here). `-o -` is
/// standard output. Until 2026-12-07 the rename replaced each with a file (`-o /dev/null` as
/// root replaced the machine's `/dev/null`).
#[test]
#[allow(clippy::disallowed_macros)] // says that the device case is left out
fn output_that_is_no_regular_file_is_written_to_not_replaced() {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;

    let dir = tempfile::tempdir().unwrap();
    let v1 = learn(dir.path(), "webserver-v1.strace", "v1.profile");
    let export = |out: &str| export_to(&v1, out);
    let stdout = export("-");
    assert!(stdout.status.success());
    let want = String::from_utf8(stdout.stdout).unwrap();
    serde_json::from_str::<LinuxSeccomp>(&want).expect("the profile on standard output");

    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            std::fs::File::open(fifo)
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            text
        })
    };
    assert!(export(fifo.to_str().unwrap()).status.success());
    assert_eq!(reader.join().unwrap(), want);
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());

    // /proc/self belongs to the process's effective user.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    if root {
        let null = dir.path().join("null");
        let made = std::process::Command::new("mknod")
            .args(["-m", "666"])
            .arg(&null)
            .args(["c", "1", "3"])
            .status()
            .unwrap();
        assert!(made.success());
        assert!(export(null.to_str().unwrap()).status.success());
        assert!(std::fs::metadata(&null)
            .unwrap()
            .file_type()
            .is_char_device());
    } else {
        eprintln!("not root: the device case is left out (CI runs it as root)");
    }
}

/// A call name no table has (misspelt, or newer) is left out and said on stderr, with the
/// count: before 2026-12-07 it was dropped unsaid, and missing from the exported allow-list.
#[test]
fn learn_says_what_it_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("one.strace");
    std::fs::write(
        &trace,
        "100 opne(\"/etc/passwd\", O_RDONLY) = 3\n100 read(3, \"\", 1) = 0\n",
    )
    .unwrap();
    let out = chaperone(&[
        "learn",
        "--from",
        trace.to_str().unwrap(),
        "--format",
        "strace",
        "-o",
        dir.path().join("one.profile").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("left out 1 events that are no syscall chaperone knows: opne (1)"),
        "{stderr}"
    );
}

/// `learn --image` reads its traces before it opens the store: traces without a syscall fail
/// with no store made (until 2026-12-07 an empty 57 kB store was left behind), and an empty or
/// multi-line profile name is refused as bad usage.
#[test]
fn learn_into_a_store_checks_before_it_makes_one() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("none.strace");
    std::fs::write(&trace, "+++ exited with 0 +++\n").unwrap();
    let db = dir.path().join("profiles.db");
    let learn = |image: &str| {
        chaperone(&[
            "learn",
            "--from",
            trace.to_str().unwrap(),
            "--format",
            "strace",
            "--image",
            image,
            "--db",
            db.to_str().unwrap(),
        ])
    };
    let out = learn("web");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no syscalls in the traces"));
    assert!(!db.exists(), "no store made");
    for bad in ["", "two\nlines"] {
        let out = learn(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!db.exists());
    }
}

/// An option that would do nothing where it is given is refused as bad usage (exit 2), not
/// ignored: until 2026-12-07 `eval --hot-coverage` without `--traced-only`, `export --name`
/// with a format other than spo, and `alerts --json allow ID` ran as if it were not there.
#[test]
fn options_that_would_do_nothing_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = learn(dir.path(), "webserver-v1.strace", "v1.profile");
    let log = dir.path().join("alerts.jsonl");
    std::fs::write(&log, "").unwrap();
    let log = log.to_str().unwrap();
    for args in [
        &["eval", "--format", "adfa", "/tmp", "--hot-coverage", "0.5"][..],
        &[
            "profile",
            "export",
            "--profile",
            &v1,
            "--format",
            "oci",
            "--name",
            "web",
        ],
        &["alerts", "--file", log, "--json", "allow", "abc"],
        &["alerts", "--file", log, "--follow", "allow", "abc"],
    ] {
        let out = chaperone(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `--db` never names a store SQLite would not keep: an empty one is bad usage, and a relative
/// one is a file in the working directory, `:memory:` included (until 2026-12-07 SQLite kept
/// that one in memory, and `learn --image` exited 0 having stored nothing). A config file's
/// `db_path` must be absolute (the config crate's tests).
#[test]
fn the_store_named_with_db_is_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let from = fixture("webserver-v1.strace");
    let learn = |db: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_chaperone"))
            .args(["learn", "--format", "strace", "--image", "web", "--from"])
            .arg(&from)
            .args(["--db", db])
            .current_dir(dir.path())
            .env("CHAPERONE_CONFIG", "/dev/null")
            .output()
            .unwrap()
    };
    let out = learn("");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--db"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    for name in [":memory:", "profiles.db"] {
        let out = learn(name);
        assert!(out.status.success(), "{name}: {out:?}");
        let db = dir.path().join(name);
        assert!(db.is_file(), "{name}: the store is {}", db.display());
        let list = ok(&["profile", "list", "--db", db.to_str().unwrap()]);
        assert!(list.contains("web"), "{list}");
    }
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "db_path = \"\"\n").unwrap();
    let out = chaperone(&["profile", "list", "--config", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("config.toml") && err.contains("db_path"),
        "{err}"
    );
}

/// A profile learned by a newer chaperone can hold syscalls this build's alphabet lacks (ADR
/// 0025). Its export is refused naming them, rather than left without them (until 2026-12-07
/// they were dropped unsaid: the container would have been denied them); `diff` rates such a
/// new syscall high, so that `--fail-on risky` catches it.
#[test]
fn syscalls_this_build_does_not_know_are_not_dropped() {
    use chaperone_profiler::model::{codec, NgramCounts};
    use chaperone_profiler::syscalls::{name_of, sym_of};
    let dir = tempfile::tempdir().unwrap();
    let unknown = (0..u16::MAX).find(|&s| name_of(s).is_none()).unwrap();
    let read = sym_of("read").unwrap();
    let write = |name: &str, syms: &[u16]| {
        let mut counts = NgramCounts::new(3).unwrap();
        counts.learn_sequence(syms);
        let path = dir.path().join(name);
        std::fs::write(&path, codec::encode(&counts)).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let old = write("old.profile", &[read, read]);
    let new = write("new.profile", &[read, unknown, read]);
    let out = chaperone(&["profile", "export", "--profile", &new, "--format", "oci"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&unknown.to_string()), "{err}");
    assert!(out.stdout.is_empty());
    let out = chaperone(&["diff", &old, &new, "--fail-on", "risky"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("new syscall     high"), "{text}");
}

/// A profile with nothing learned (a learning container that made no traced syscall, a file
/// with no events) is not exported: its export would allow only what runc itself needs, and a
/// container under it could not run (until 2026-12-07 it was written, exit 0). `learn` refuses
/// traces without a syscall, and the shim takes such a profile as none, alike.
#[test]
fn a_profile_with_nothing_learned_is_not_exported() {
    use chaperone_profiler::model::{codec, NgramCounts};
    use chaperone_profiler::store::{Learning, Store};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("empty.profile");
    std::fs::write(&file, codec::encode(&NgramCounts::new(4).unwrap())).unwrap();
    let db = dir.path().join("profiles.db");
    let learning = Learning {
        counts: NgramCounts::new(4).unwrap(),
        containers: 1,
        maxima: Vec::new(),
        threads: Vec::new(),
        container: None,
        workload: None,
    };
    Store::open(&db)
        .unwrap()
        .merge("web", &learning, None)
        .unwrap();
    let out_file = dir.path().join("out.json");
    for source in [
        vec!["--profile", file.to_str().unwrap()],
        vec!["web", "--db", db.to_str().unwrap()],
    ] {
        let mut args = vec!["profile", "export", "--format", "docker", "-o"];
        args.push(out_file.to_str().unwrap());
        args.extend(&source);
        let out = chaperone(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{source:?}: {err}");
        assert!(err.contains("nothing learned"), "{source:?}: {err}");
        assert!(!out_file.exists(), "{source:?}: nothing written");
    }
}
