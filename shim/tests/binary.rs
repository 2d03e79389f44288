//! The shim binary's command line, without containerd. (Having this test also makes
//! `cargo test --workspace` build the binary that the integration tests hand to containerd.)

#![allow(clippy::tests_outside_test_module)]

use std::process::Command;

const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-chaperone-v2");

#[test]
fn version_names_the_runtime() {
    let out = Command::new(SHIM).arg("-v").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("io.containerd.chaperone.v2"), "{text}");
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
}

#[test]
fn an_unknown_action_fails_with_a_clear_message() {
    let out = Command::new(SHIM)
        .args(["-namespace", "default", "-id", "x", "frobnicate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("unknown action"), "{text}");
}
