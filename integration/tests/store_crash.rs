//! Killed with SIGKILL in the middle of storing what a container learned: the store stays
//! consistent and keeps every merge that committed. First a writer process
//! (`chaperone-store-writer`) killed while it merges in a loop, then real shims under containerd
//! killed while they store their container's run.

// Integration tests are their own crate: no test module, and they report to the terminal.
#![allow(clippy::tests_outside_test_module, clippy::disallowed_macros)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

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
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until it has committed a few merges, then kill it wherever it is.
        loop {
            match lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line == "merged 3" => break,
                Ok(_) => {}
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("round {round}: the writer did not report 3 merges within 60 s ({e})");
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        // Everything it printed before dying is still in the pipe.
        let last = lines
            .try_iter()
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
        // The killed writer may have committed one merge it could not report (the earlier
        // rounds' are counted: `reported` is what was stored after them).
        assert!(
            (reported..=reported + 1).contains(&stored),
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

/// A real shim, killed with SIGKILL while it stores what its container learned: first while it
/// waits for the store's write lock (held here, so the kill lands inside the flush every time),
/// then three times as soon as it says it is storing (wherever in the write it then is). Every
/// time the store opens and passes its integrity check, the model and the totals agree, the
/// killed run is in whole or not at all, what was stored before is intact, containerd cleans up
/// after the dead shim, and the next container's run is stored.
#[test]
fn a_shim_killed_while_it_stores_loses_at_most_its_own_run() {
    use chaperone_integration::containerd::{
        mounted, processes_with, setup, wait_for, Cleanup, Containerd, BUSYBOX_IMAGE, CHAPERONE,
    };
    use chaperone_profiler::store::Profile;

    let Some(ctrd) = setup() else { return };
    let key = "shim-crash";
    let annotation = format!("chaperone.io/profile={key}");
    let id = |what: &str| format!("crash-{what}-{}", std::process::id());
    let load = |ctrd: &Containerd| -> Profile {
        let store = Store::open(&ctrd.db_path()).unwrap_or_else(|e| {
            panic!("{}", ctrd.explain(format!("the store does not open: {e}")))
        });
        let p = store
            .load(key)
            .unwrap()
            .unwrap_or_else(|| panic!("{}", ctrd.explain("the profile is gone")));
        assert_eq!(
            p.counts.events(),
            p.summary.events,
            "{}",
            ctrd.explain("the model and the totals disagree")
        );
        p
    };
    // `ctr run FLAG` of a container learning into the profile, running `script`.
    let run = |flag: &str, id: &str, script: &str| {
        ctrd.ctr_ok(&[
            "run",
            flag,
            "--runtime",
            CHAPERONE,
            "--annotation",
            &annotation,
            BUSYBOX_IMAGE,
            id,
            "sh",
            "-c",
            script,
        ])
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    };
    let run_to_completion = |id: &str| run("--rm", id, "ls / >/dev/null; echo learned");
    // Starts `id` detached, kills its process and returns once its shim says it is storing the
    // run, with the shim's pid.
    let start_storing = |id: &str, before: &dyn Fn()| -> u32 {
        run("-d", id, "ls / >/dev/null; exec sleep 1000");
        let shims = processes_with(&["containerd-shim-chaperone-v2", "-id", id]);
        assert_eq!(
            shims.len(),
            1,
            "{}",
            ctrd.explain(format!("shims: {shims:?}"))
        );
        before();
        ctrd.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", id])
            .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
        wait_for("the shim to store the run", Duration::from_secs(20), || {
            ctrd.log()
                .lines()
                .any(|l| l.contains("storing what the container learned") && l.contains(id))
                .then_some(())
        })
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
        shims[0]
    };
    let kill_9 = |id: &str, shim: u32| {
        // Gone with its files: until its last thread has exited it can still hold the
        // store's locks, and a reader then sees the store as it was before its last commit
        // (the commit shows once the next connection recovers the write-ahead log).
        ctrd.kill_shim(id, shim)
            .unwrap_or_else(|e| panic!("{}", ctrd.explain(format!("{e:#}"))));
    };
    // containerd cleans up after the dead shim: the task is no longer running and the
    // container goes with nothing mounted.
    let cleaned_up = |id: &str| {
        wait_for("the task to stop", Duration::from_secs(20), || {
            (ctrd.task_status(id).as_deref() != Some("RUNNING")).then_some(())
        })
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
        ctrd.remove(id);
        let listed = ctrd.ctr_ok(&["containers", "ls", "-q"]).unwrap();
        assert!(!listed.lines().any(|l| l == id), "{listed}");
        // containerd unmounts the dead shim's rootfs in its clean-up, which may still be under
        // way (seen in CI under load, 2026-12-07).
        wait_for(
            "the rootfs to be unmounted",
            Duration::from_secs(20),
            || (!mounted(id)).then_some(()),
        )
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(format!("{id} is still mounted: {e}"))));
    };

    run_to_completion(&id("first"));
    let first = load(&ctrd);
    assert_eq!(first.summary.containers, 1, "{:?}", first.summary);

    // Killed while it waits for the write lock: its run is lost, nothing else.
    let victim = id("waiting");
    let _cleanup = Cleanup(&ctrd, victim.clone());
    let lock = rusqlite::Connection::open(ctrd.db_path()).unwrap();
    let shim = start_storing(&victim, &|| lock.execute_batch("BEGIN IMMEDIATE").unwrap());
    kill_9(&victim, shim);
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    let after = load(&ctrd);
    assert_eq!(
        (after.summary.containers, after.summary.events),
        (first.summary.containers, first.summary.events),
        "the killed run is not stored"
    );
    cleaned_up(&victim);

    // Killed as soon as it says it is storing: its run is in whole or not at all.
    let mut stored = after.summary;
    for round in 1..=3 {
        let victim = id(&format!("racing{round}"));
        let _cleanup = Cleanup(&ctrd, victim.clone());
        let shim = start_storing(&victim, &|| {});
        kill_9(&victim, shim);
        let now = load(&ctrd).summary;
        let whole = now.containers == stored.containers + 1 && now.events > stored.events;
        let none = now.containers == stored.containers && now.events == stored.events;
        assert!(whole || none, "round {round}: {stored:?} then {now:?}");
        eprintln!(
            "round {round}: the killed shim's run is {}",
            if whole { "stored whole" } else { "not stored" }
        );
        cleaned_up(&victim);
        stored = now;
    }

    // The store takes the next run.
    run_to_completion(&id("next"));
    let next = load(&ctrd).summary;
    assert_eq!(next.containers, stored.containers + 1, "{next:?}");
    assert!(next.events > stored.events, "{next:?}");
}
