//! `chaperone eval` on the formats other than ADFA-LD, with explicit --train/--normal/--attack.

// Integration tests are their own crate: no test module, and they report to the terminal.
#![allow(clippy::tests_outside_test_module, clippy::disallowed_macros)]

mod common;

use std::path::PathBuf;

use common::chaperone;

use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../profiler/tests/fixtures/traces")
}

#[test]
fn strace_traces_evaluate_with_one_family_per_attack_path() {
    let ok = fixtures().join("strace/ok");
    let attack = ok.join("stderr.strace");
    let out = chaperone(&[
        "eval",
        "--format",
        "strace",
        "--train",
        ok.to_str().unwrap(),
        "--normal",
        ok.to_str().unwrap(),
        "--attack",
        attack.to_str().unwrap(),
        "--detector",
        "all",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6, "one line per detector");
    for r in &lines {
        let families = r["families"].as_object().unwrap();
        assert_eq!(families.keys().collect::<Vec<_>>(), ["stderr"], "{r}");
        assert!(r["train_events"].as_u64().unwrap() > 0, "{r}");
        let auc = r["auc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&auc), "{r}");
    }
}

/// Each of --train, --normal and --attack takes several paths, as the synopsis writes them
/// (`--train PATH...`, a shell glob): before 2026-12-07 only one, and the rest was taken for
/// the ADFA-LD directory argument.
#[test]
fn each_set_takes_several_paths() {
    let ok = fixtures().join("strace/ok");
    let path = |name: &str| ok.join(name).to_str().unwrap().to_owned();
    let (a, b, c) = (
        path("stderr.strace"),
        path("fork-o.strace"),
        path("unix-seconds.strace"),
    );
    let out = chaperone(&[
        "eval", "--format", "strace", "--train", &a, &b, &c, "--normal", &a, &b, &c, "--attack",
        &b, &c, "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let families: Vec<&String> = report["families"].as_object().unwrap().keys().collect();
    assert_eq!(families, ["fork-o", "unix-seconds"], "{report}");
}

/// P2 takes its calibration and test sets from normal traces at positions 1 and 2 mod 3: with
/// two normal traces the test set is empty, and the error asks for three (it said two).
#[test]
fn p2_with_two_normal_traces_asks_for_three() {
    let ok = fixtures().join("strace/ok");
    let path = |name: &str| ok.join(name).to_str().unwrap().to_owned();
    // Files of one process each: two normal traces.
    let (a, b) = (path("unix-seconds.strace"), path("nested/trace.4321"));
    let out = chaperone(&[
        "eval",
        "--format",
        "strace",
        "--train",
        &a,
        "--normal",
        &a,
        &b,
        "--attack",
        &b,
        "--protocol",
        "p2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("give at least three normal traces"),
        "{stderr}"
    );
}

#[test]
fn unm_traces_take_an_architecture() {
    let ok = fixtures().join("unm/ok");
    let out = chaperone(&[
        "eval",
        "--format",
        "unm",
        "--arch",
        "i386",
        "--train",
        ok.to_str().unwrap(),
        "--normal",
        ok.to_str().unwrap(),
        "--attack",
        ok.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("DETECTOR"), "{table}");
    assert!(table.contains("ngram"), "{table}");
}

#[test]
fn a_malformed_trace_names_file_and_line() {
    let bad = fixtures().join("sysdig/malformed/bad-direction.sc");
    let ok = fixtures().join("sysdig/ok");
    let out = chaperone(&[
        "eval",
        "--format",
        "sysdig",
        "--train",
        bad.to_str().unwrap(),
        "--normal",
        ok.to_str().unwrap(),
        "--attack",
        ok.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad-direction.sc:"), "{err}");
}

#[test]
fn traced_only_drops_what_the_supervisor_never_sees() {
    let ok = fixtures().join("strace/ok");
    let ok = ok.to_str().unwrap();
    let args = |extra: &'static [&'static str]| {
        let mut a = vec![
            "eval", "--format", "strace", "--train", ok, "--normal", ok, "--attack", ok, "--json",
        ];
        a.extend_from_slice(extra);
        a
    };
    let train_events = |extra: &'static [&'static str]| {
        let out = chaperone(&args(extra));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["detector"], "ngram", "{report}");
        report["train_events"].as_u64().unwrap()
    };
    let all = train_events(&[]);
    let traced = train_events(&["--traced-only", "--hot-coverage", "0"]);
    let tiered = train_events(&["--traced-only"]);
    let most = train_events(&["--traced-only", "--hot-coverage", "1"]);
    assert!(
        all > traced,
        "never-notified syscalls dropped: {all} > {traced}"
    );
    assert!(traced > tiered, "the hot set dropped: {traced} > {tiered}");
    assert!(tiered >= most, "{tiered} >= {most}");
    let out = chaperone(&args(&["--traced-only", "--hot-coverage", "1.5"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in [0, 1]"));
}

/// Arguments that do not go together are a usage error, exit 2, naming what is wrong (until
/// 2026-12-07 they exited 1, as a failure).
#[test]
fn eval_arguments_that_do_not_go_together_exit_2() {
    for (args, says) in [
        (
            &["eval", "--format", "adfa"][..],
            "needs the ADFA-LD directory",
        ),
        (
            &["eval", "--format", "adfa", "/tmp", "--train", "t"],
            "not used with --format adfa",
        ),
        (
            &["eval", "--format", "strace", "/tmp"],
            "only used with --format adfa",
        ),
        (
            &[
                "eval", "--format", "strace", "--train", "t", "--normal", "n",
            ],
            "needs at least one --attack path",
        ),
        // A negative rate is read as a value, and refused as one.
        (
            &["eval", "--format", "adfa", "/tmp", "--far", "-0.1"],
            "-0.1 is not in (0, 1)",
        ),
    ] {
        let out = chaperone(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
