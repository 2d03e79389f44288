#![doc = include_str!("../README.md")]
// Test support reports skipped prerequisites on stderr.
#![allow(clippy::disallowed_macros)]

use std::path::PathBuf;

pub mod cli;
pub mod containerd;
pub mod cri;
pub mod demo;
pub mod runc;
pub mod throughput;

/// Two tests of one check, `$check(runtime)`: `$chaperone` under chaperone's shim and
/// `$runc_v2` under containerd's stock runc-v2 shim, the behaviour it must match.
#[macro_export]
macro_rules! under_both_shims {
    ($check:ident: $chaperone:ident, $runc_v2:ident) => {
        #[test]
        fn $chaperone() {
            $check($crate::containerd::CHAPERONE);
        }

        #[test]
        fn $runc_v2() {
            $check($crate::containerd::RUNC_V2);
        }
    };
}

/// True when running under CI (`CI=true` or `CI=1`): a missing prerequisite is then a failure.
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true" | "1"))
}

/// The shared datasets folder (`../shared/datasets` next to the repository).
pub fn datasets_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets")
}

/// Reports a prerequisite that is missing: a panic under CI, a loud skip line otherwise.
/// Returns `false` so callers can write `if !require(..) { return; }`.
pub fn require(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    assert!(!in_ci(), "prerequisite missing under CI: {what}");
    eprintln!("SKIPPED: prerequisite missing: {what} (set CI=true to make this a failure)");
    false
}

/// Compiles the C program `source` without libc (`cc -static -nostdlib`, with `flags` such as
/// `-DNAME=1`) into `dir/name`; its bytes, to put in an image. gcc is one of the build packages
/// scripts/lib/common.sh installs.
pub fn compile_static(dir: &std::path::Path, name: &str, source: &str, flags: &[&str]) -> Vec<u8> {
    let src = dir.join(format!("{name}.c"));
    let bin = dir.join(name);
    std::fs::write(&src, source).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    let out = std::process::Command::new("cc")
        .args(["-static", "-nostdlib", "-fno-stack-protector", "-O2"])
        .args(flags)
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
    std::fs::read(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()))
}
