//! The demo's story as a test: learned until promoted, benign traffic silent, the attack
//! stopped before the secret leaves. Needs root, containerd, runc and a static busybox.

// Integration tests are their own crate: no test module, and they report to the terminal.
#![allow(clippy::tests_outside_test_module, clippy::disallowed_macros)]

use chaperone_integration::containerd::setup;
use chaperone_integration::demo::{self, Options};

#[test]
fn the_demo_story_holds() {
    let Some(ctrd) = setup() else { return };
    let opts = Options {
        // Not the demo's default port, so a demo running on the machine does not interfere.
        port: 18_181,
        max_learn_runs: 60,
        benign_runs: 2,
        attack_runs: 2,
    };
    let outcome = demo::run(&ctrd, &opts).unwrap_or_else(|e| panic!("{e:#}\nlog:\n{}", ctrd.log()));
    assert!(outcome.held(), "{outcome:?}\nlog:\n{}", ctrd.log());
    let alert = outcome.alert.expect("the attack alerted");
    assert_eq!(alert["output_fields"]["chaperone.action"], "kill");
    assert_eq!(alert["output_fields"]["chaperone.profile"], demo::PROFILE);
    // Enforce ran the tiered filter: hot syscalls in the kernel, a model of the rest.
    let log = ctrd.log();
    assert!(
        log.contains("tiered filter"),
        "no tiered filter in the log:\n{log}"
    );
}
