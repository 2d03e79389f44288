//! The throughput benchmark runs end to end on a small scale: every setup measured, enforce
//! running the tiered filter, no false alarm on the workloads it learned. The figures
//! themselves come from `scripts/bench.sh` (noisy machines make timed tests flaky).

// Integration tests are their own crate: no test module, and they report to the terminal.
#![allow(clippy::tests_outside_test_module, clippy::disallowed_macros)]

use chaperone_integration::containerd::setup;
use chaperone_integration::throughput::{self, Options, Setup};

#[test]
fn the_benchmark_measures_every_setup() {
    let Some(ctrd) = setup() else { return };
    let opts = Options {
        rounds: 1,
        learn_runs: 2,
        iterations: 1_000,
        requests: 40,
        clients: 2,
        port: 18_283,
    };
    let report = throughput::run(&ctrd, &opts, |line| eprintln!("{line}"))
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(format!("{e:#}"))));
    for (setup, s) in Setup::ALL.iter().zip(&report.samples) {
        assert_eq!(s.loop_seconds.len(), 1, "{setup:?}");
        assert!(s.http_rps[0] > 0.0, "{setup:?}: {s:?}");
    }
    let json = report.to_json();
    for key in [
        "enforce_vs_runc",
        "learn_vs_runc",
        "enforce_vs_runc_loop",
        "enforce_vs_runc_http",
    ] {
        assert!(
            json[key].as_f64().is_some_and(f64::is_finite),
            "{key}: {json}"
        );
    }
    assert_eq!(
        report.enforce_alerts,
        0,
        "false alarms: {:?}",
        ctrd.alerts()
    );
    let log = ctrd.log();
    assert!(
        log.contains("tiered filter") && log.contains("profile=\"bench-loop\""),
        "enforce did not run the tiered filter:\n{log}"
    );
}
