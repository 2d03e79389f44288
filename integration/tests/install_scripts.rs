//! The set-up scripts' own handling, with a stand-in `cargo` first on `PATH` (so nothing is
//! built): `scripts/install.sh` installs what cargo built where cargo puts it
//! (`CARGO_TARGET_DIR`), into a prefix relative to where it is run, and fails a failed build
//! with exit 1; `scripts/demo.sh` refuses a bad option with exit 2 before it installs,
//! builds or runs anything. The packages they check must be installed already (they are
//! wherever this workspace builds); the real build and install run in CI's fresh clone and
//! in `demo.rs`.

// Integration tests are their own crate: no test module.
#![allow(clippy::tests_outside_test_module)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

const BINARIES: [&str; 3] = [
    "chaperone",
    "containerd-shim-chaperone-v2",
    "containerd-shim-runc-v2-chaperone",
];

/// A stand-in for cargo: it logs its arguments to `calls`, answers `metadata` with the target
/// directory `CARGO_TARGET_DIR` names, and for `build` and `rustc` writes a file per binary
/// into its `release` directory, or fails with 101 when `CARGO_STUB_FAIL` is set.
struct Stub {
    dir: TempDir,
}

impl Stub {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let names = BINARIES.join(" ");
        let script = format!(
            r#"#!/bin/sh
printf '%s\n' "$*" >> "{calls}"
case "$1" in
    metadata) printf '{{"target_directory":"%s"}}\n' "$CARGO_TARGET_DIR" ;;
    build|rustc)
        [ -z "$CARGO_STUB_FAIL" ] || exit 101
        mkdir -p "$CARGO_TARGET_DIR/release"
        for b in {names}; do echo "built $b" > "$CARGO_TARGET_DIR/release/$b"; done ;;
esac
"#,
            calls = dir.path().join("calls").display()
        );
        let cargo = bin.join("cargo");
        std::fs::write(&cargo, script).unwrap();
        std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }

    fn target(&self) -> PathBuf {
        self.dir.path().join("elsewhere")
    }

    /// `bash SCRIPT ARGS` run in `cwd` with the stub first on `PATH`.
    fn run(&self, script: &str, args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("bash")
            .arg(repository().join("scripts").join(script))
            .args(args)
            .current_dir(cwd)
            .env("PATH", path)
            .env("CARGO_TARGET_DIR", self.target())
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default()
    }
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Before 2026-12-07 install.sh copied `./target/release` whatever cargo's target directory
/// was (missing files, or stale ones installed without a word), and a relative prefix was
/// taken from the repository.
#[test]
fn install_sh_installs_from_cargo_s_target_directory_into_a_relative_prefix() {
    let stub = Stub::new();
    let cwd = tempfile::tempdir().unwrap();
    let out = stub.run("install.sh", &["--prefix", "out"], cwd.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    for bin in BINARIES {
        let installed = cwd.path().join("out/bin").join(bin);
        let content = std::fs::read_to_string(&installed)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", installed.display(), text(&out)));
        assert_eq!(content, format!("built {bin}\n"));
        let mode = std::fs::metadata(&installed).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{bin}");
    }
    assert!(stub
        .calls()
        .contains("build --release --locked -p chaperone"));
}

#[test]
fn install_sh_fails_with_1_when_the_build_fails() {
    let stub = Stub::new();
    let cwd = tempfile::tempdir().unwrap();
    let out = stub.run(
        "install.sh",
        &["--prefix", "out"],
        cwd.path(),
        &[("CARGO_STUB_FAIL", "1")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("building chaperone failed"),
        "{}",
        text(&out)
    );
    assert!(!cwd.path().join("out").exists());
}

/// A prefix that cannot be installed into fails before the build (minutes), not after it
/// (until 2026-12-07), and makes nothing.
#[test]
fn install_sh_refuses_a_prefix_it_cannot_write_before_building() {
    let stub = Stub::new();
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("a-file"), "").unwrap();
    let out = stub.run("install.sh", &["--prefix", "a-file/sub"], cwd.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot install into"),
        "{}",
        text(&out)
    );
    assert!(!stub.calls().contains("build"), "{}", stub.calls());
}

/// Before 2026-12-07 demo.sh passed its demo options on unchecked, and `--port abc` failed
/// only after the packages, the build and the install.
#[test]
fn demo_sh_refuses_a_bad_option_before_anything_else() {
    let stub = Stub::new();
    let cwd = tempfile::tempdir().unwrap();
    for bad in [
        &["--port", "abc"][..],
        &["--port", "70000"],
        &["--port", "0"],
        &["--attack-runs", "99999999999999999999"],
        &["--attack-runs", "0"],
        &["--max-learn-runs", "00"],
        &["--hot-coverage", "1.5"],
        &["--benign-runs"],
        &["--no-such-option"],
        &["--prefix", ""],
    ] {
        // A prefix of the test's own first: were the check to let one through, nothing of
        // the machine's would be replaced.
        let mut args = vec!["--prefix", "out"];
        args.extend_from_slice(bad);
        let out = stub.run("demo.sh", &args, cwd.path(), &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("demo.sh --help"),
            "{args:?}: {}",
            text(&out)
        );
    }
    assert_eq!(stub.calls(), "", "cargo was run");
}
