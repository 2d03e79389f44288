//! Running the real `chaperone` binary, shared by the CLI's test crates.

// Each test crate uses the part it needs.
#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs `chaperone args...`. The machine's own config never leaks in: `CHAPERONE_CONFIG` names
/// an empty file, so every setting is the default unless a flag says otherwise.
pub fn chaperone(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chaperone"))
        .args(args)
        .env("CHAPERONE_CONFIG", "/dev/null")
        .output()
        .expect("chaperone runs")
}

/// Runs `chaperone args...`, fails the test unless it succeeds, and returns its standard output.
pub fn ok(args: &[&str]) -> String {
    let out = chaperone(args);
    assert!(
        out.status.success(),
        "chaperone {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The exit status of `chaperone args...`.
pub fn code(args: &[&str]) -> Option<i32> {
    chaperone(args).status.code()
}
