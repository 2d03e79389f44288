//! `chaperone eval` on the real ADFA-LD data: the release claims of the README, checked.

// Integration tests and benches are their own crates: their tests have no test module, and
// they report to the terminal.
#![allow(clippy::tests_outside_test_module, clippy::disallowed_macros)]

mod common;

use std::path::{Path, PathBuf};

use common::chaperone;

use serde_json::Value;

fn dataset() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/adfa-ld");
    if dir.is_dir() {
        return Some(dir);
    }
    let ci = matches!(std::env::var("CI").as_deref(), Ok("true" | "1"));
    assert!(!ci, "dataset missing under CI: {}", dir.display());
    eprintln!("SKIPPED: dataset missing: {}", dir.display());
    None
}

/// `chaperone eval --format adfa DIR ARGS... --json`, one report per line.
fn eval(dir: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["eval", "--format", "adfa", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    all.push("--json");
    let out = chaperone(&all);
    assert!(
        out.status.success(),
        "chaperone eval {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn field(r: &Value, name: &str) -> f64 {
    r[name]
        .as_f64()
        .unwrap_or_else(|| panic!("{name} missing in {r}"))
}

#[test]
fn best_detector_beats_the_stide_floor_on_p1() {
    let Some(dir) = dataset() else { return };
    let reports = eval(&dir, &["--detector", "all"]);
    assert!(reports.len() >= 5, "{reports:?}");
    let stide = reports.iter().find(|r| r["detector"] == "stide").unwrap();
    let best = reports
        .iter()
        .max_by(|a, b| field(a, "auc").total_cmp(&field(b, "auc")))
        .unwrap();
    eprintln!("stide: {stide}\nbest: {best}");
    for r in &reports {
        assert!(field(r, "far") <= 0.06, "{r}");
        assert_eq!(r["train_events"], 308_077, "{r}");
        let families = r["families"].as_object().unwrap();
        assert_eq!(families.len(), 4, "{r}");
    }
    // The floor on this split (issue and dataset README): STIDE AUC 0.83 / DR 0.25. The best
    // detector must beat it on both, and beat this run's own STIDE.
    assert!(
        field(stide, "auc") > 0.80 && field(stide, "auc") < 0.85,
        "{stide}"
    );
    assert!(field(best, "auc") > 0.83, "best AUC {best}");
    assert!(
        field(best, "auc") > field(stide, "auc"),
        "best AUC {best} vs {stide}"
    );
    let best_dr = reports.iter().map(|r| field(r, "dr")).fold(0.0, f64::max);
    assert!(
        best_dr > 0.25 && best_dr > field(stide, "dr"),
        "best DR {best_dr}"
    );
    // Regression guards at the measured figures (README: ngram 0.833 / 0.313, cover 0.845 / 0.308).
    let ngram = reports.iter().find(|r| r["detector"] == "ngram").unwrap();
    assert!(
        field(ngram, "auc") >= 0.83 && field(ngram, "dr") >= 0.30,
        "{ngram}"
    );
    let cover = reports.iter().find(|r| r["detector"] == "cover").unwrap();
    assert!(
        field(cover, "auc") >= 0.84 && field(cover, "dr") >= 0.30,
        "{cover}"
    );
    // `sets` (README: 0.862 / 0.411) is the best on AUC and meets the P1 DR target.
    let sets = reports.iter().find(|r| r["detector"] == "sets").unwrap();
    assert_eq!(best["detector"], "sets", "{best}");
    assert!(
        field(sets, "auc") >= 0.86 && field(sets, "dr") >= 0.40 && field(sets, "far") <= 0.05,
        "{sets}"
    );
}

#[test]
fn p2_learning_from_more_normal_data_helps() {
    let Some(dir) = dataset() else { return };
    let p1 = eval(&dir, &[]);
    let p2 = eval(&dir, &["--protocol", "p2"]);
    let (p1, p2) = (&p1[0], &p2[0]);
    eprintln!("p1: {p1}\np2: {p2}");
    assert_eq!(p2["protocol"], "p2");
    assert!(field(p2, "train_events") > field(p1, "train_events"));
    // Measured 0.872 (the goal is 0.90, not reached yet; see the profiler README).
    assert!(field(p2, "auc") >= 0.87, "{p2}");
    assert!(field(p2, "auc") > field(p1, "auc") + 0.02, "{p1} vs {p2}");
    // Sequence covering gains more from the extra data (measured 0.895).
    let cover = eval(&dir, &["--protocol", "p2", "--detector", "cover"]);
    let cover = &cover[0];
    eprintln!("cover p2: {cover}");
    assert_eq!(cover["detector"], "cover");
    assert!(
        field(cover, "auc") >= 0.89 && field(cover, "auc") > field(p2, "auc"),
        "{cover}"
    );
    // `sets` keeps `cover`'s order below its cut and its DR above it (measured 0.897 / 0.411).
    let sets = eval(&dir, &["--protocol", "p2", "--detector", "sets"]);
    let sets = &sets[0];
    eprintln!("sets p2: {sets}");
    assert!(
        field(sets, "auc") >= 0.89 && field(sets, "dr") >= 0.40,
        "{sets}"
    );
}

#[test]
fn bad_inputs_are_clear_errors() {
    let out = chaperone(&["eval", "--format", "adfa", "/nonexistent/adfa"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/adfa"), "{err}");

    let out = chaperone(&["eval", "--format", "adfa", "x", "--detector", "lstm"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown detector"));

    let out = chaperone(&["eval", "--format", "strace", "--train", "x"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a missing --normal is bad usage"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--normal"));
}
