//! A shim killed with SIGKILL in the middle of storing what a container learned: the store stays
//! consistent and keeps every merge that committed. The writer is a real process
//! (`chaperone-store-writer`) killed while it merges in a loop.

// Integration tests are their own crate: no test module, and they report to the terminal.
#![allow(clippy::tests_outside_test_module, clippy::disallowed_macros)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use chaperone_profiler::store::Store;

#[test]
fn kill_9_during_merges_leaves_a_consistent_store() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("profiles.db");
    // Merges the writers reported as committed, over all rounds.
    let mut reported = 0_u64;
    for round in 1..=3_u64 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chaperone-store-writer"))
            .arg(&db)
            .arg("img")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the writer starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Wait until it has committed a few merges, then kill it wherever it is.
        for line in lines.by_ref() {
            if line.unwrap() == "merged 3" {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Everything it printed before dying is still in the pipe.
        let last = lines
            .map_while(Result::ok)
            .filter_map(|l| {
                l.strip_prefix("merged ")
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .last()
            .unwrap_or(3);
        reported += last;
        let store = Store::open(&db).expect("the store opens and passes its integrity check");
        let p = store.load("img").unwrap().expect("the profile is there");
        let stored = p.summary.containers;
        eprintln!("round {round}: {stored} merges stored, {reported} reported as committed");
        // Each killed writer may have committed one merge it could not report.
        assert!(
            (reported..=reported + round).contains(&stored),
            "{stored} stored vs {reported} reported"
        );
        assert_eq!(
            p.counts.events(),
            stored * 200_000,
            "the model and the totals agree"
        );
        assert_eq!(p.summary.events, p.counts.events());
        reported = stored;
    }
}
