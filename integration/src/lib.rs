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
