//! `chaperone profile list|show|mode|reset|export IMAGE` and `chaperone alerts [allow]`, run as
//! the real binary on a store and an alert log made in a temp dir.

// Integration tests are their own crates: their tests have no test module.
#![allow(clippy::tests_outside_test_module)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{chaperone, ok};

use chaperone_profiler::model::NgramCounts;
use chaperone_profiler::store::{Learning, Store, Workload};
use chaperone_profiler::syscalls::sym_of;
use chaperone_profiler::tiers::{hot_set, train_projected};
use serde_json::{json, Value};

fn syms(names: &[&str]) -> Vec<u16> {
    names.iter().map(|n| sym_of(n).unwrap()).collect()
}

fn learned_store(dir: &Path) -> String {
    let db = dir.join("profiles.db");
    let store = Store::open(&db).unwrap();
    for (maxima, pod) in [(vec![], None), (vec![0.8_f32], Some("web-1"))] {
        let mut counts = NgramCounts::new(4).unwrap();
        counts.learn_sequence(&syms(&["openat", "read", "close", "write", "exit_group"]));
        store
            .merge(
                "web",
                &Learning {
                    counts,
                    containers: 1,
                    maxima,
                    threads: Vec::new(),
                    container: None,
                    workload: pod.map(|pod| Workload {
                        namespace: "shop".into(),
                        pod: pod.into(),
                        container: "nginx".into(),
                    }),
                },
                None,
            )
            .unwrap();
    }
    db.to_str().unwrap().to_owned()
}

#[test]
fn profile_commands_list_show_mode_export_and_reset() {
    let tmp = tempfile::tempdir().unwrap();
    let db = learned_store(tmp.path());

    let list = ok(&["profile", "list", "--db", &db]);
    assert!(list.starts_with("PROFILE"), "{list}");
    assert!(list.lines().nth(1).unwrap().starts_with("web "), "{list}");

    let show: Value =
        serde_json::from_str(&ok(&["profile", "show", "web", "--json", "--db", &db])).unwrap();
    assert_eq!(show["containers"], 2);
    assert_eq!(show["events"], 10);
    assert_eq!(show["mode"], Value::Null);
    assert!((show["threshold"].as_f64().unwrap() - 0.8).abs() < 1e-6);
    assert_eq!(show["workloads"][0]["pod"], "web-1");
    assert_eq!(show["workloads"][0]["runs"], 1);
    let text = ok(&["profile", "show", "web", "--db", &db]);
    assert!(text.contains("  shop/web-1/nginx  1"), "{text}");
    assert!(
        text.contains(
            "rate 0.05; below what 1 held-out thread(s) can show, too few to extrapolate"
        ),
        "{text}"
    );
    assert!(
        text.contains("learned threshold:  0.800 nats/event"),
        "{text}"
    );
    // Nothing recorded: monitor and enforce would trace everything under the learned threshold.
    assert_eq!(show["tiered"], Value::Null);
    assert!(
        text.contains("tiered threshold:   - (no recorded runs"),
        "{text}"
    );

    ok(&["profile", "mode", "web", "enforce", "--db", &db]);
    let show: Value =
        serde_json::from_str(&ok(&["profile", "show", "web", "--json", "--db", &db])).unwrap();
    assert_eq!(show["mode"], "enforce");
    // A usage error, like every unknown name on the command line.
    let bad = chaperone(&["profile", "mode", "web", "enforcing", "--db", &db]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("expected one of: off, learn, monitor, enforce, default"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    ok(&["profile", "mode", "web", "default", "--db", &db]);
    let show: Value =
        serde_json::from_str(&ok(&["profile", "show", "web", "--json", "--db", &db])).unwrap();
    assert_eq!(
        show["mode"],
        Value::Null,
        "default clears the profile's own mode"
    );
    ok(&["profile", "mode", "web", "enforce", "--db", &db]);

    let oci: Value = serde_json::from_str(&ok(&[
        "profile", "export", "web", "--format", "oci", "--db", &db,
    ]))
    .unwrap();
    let allowed = oci["syscalls"].to_string();
    assert!(
        allowed.contains("\"openat\"") && allowed.contains("\"exit_group\""),
        "{allowed}"
    );

    ok(&["profile", "reset", "web", "--db", &db]);
    let gone = chaperone(&["profile", "show", "web", "--db", &db]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no profile \"web\""));

    let missing = tmp.path().join("none.db");
    let out = chaperone(&["profile", "list", "--db", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no profile store"));
    assert!(!missing.exists(), "reading never creates a store");
}

/// Profile `web` of the store at `db`, as it is now.
fn load_web(db: &str) -> chaperone_profiler::store::Profile {
    Store::open(Path::new(db))
        .unwrap()
        .load("web")
        .unwrap()
        .unwrap()
}

/// A store whose profile `web` learned three containers and kept their threads (what the
/// shim learns: no never-notified syscall such as `write` or `mmap`).
fn recorded_store(dir: &Path) -> String {
    let db = dir.join("profiles.db");
    let store = Store::open(&db).unwrap();
    let thread = |extra: &str| {
        let mut names = ["read", "writev"].repeat(40);
        names.extend(["openat", extra, "close"]);
        syms(&names)
    };
    for (i, extra) in ["fstat", "lseek", "fstat"].into_iter().enumerate() {
        let threads = vec![thread(extra), thread("brk"), syms(&["openat", "close"])];
        let mut counts = NgramCounts::new(4).unwrap();
        for t in &threads {
            counts.learn_sequence(t);
        }
        let learning = Learning {
            counts,
            containers: 1,
            maxima: vec![[0.5, 0.6, 0.7][i]],
            threads: threads.into_iter().map(Into::into).collect(),
            container: None,
            workload: None,
        };
        store.merge("web", &learning, None).unwrap();
    }
    db.to_str().unwrap().to_owned()
}

#[test]
fn profile_show_gives_the_tiered_filters_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let db = recorded_store(tmp.path());
    // What the shim's Create builds from the same store at the default config.
    let store = Store::open(Path::new(&db)).unwrap();
    let counts = store.model("web").unwrap().unwrap();
    let hot = hot_set(&counts, 0.99, &BTreeSet::new());
    let runs = store.runs("web").unwrap();
    let want = train_projected(&counts, &runs, &hot, 0.05)
        .unwrap()
        .unwrap();
    assert!(!hot.is_empty() && want.calibration > 0);

    let show: Value =
        serde_json::from_str(&ok(&["profile", "show", "web", "--json", "--db", &db])).unwrap();
    let tiered = &show["tiered"];
    assert_eq!(tiered["hot_syscalls"], hot.len(), "{show}");
    assert_eq!(tiered["hot_coverage"], 0.99, "{show}");
    assert_eq!(tiered["calibration_threads"], want.calibration, "{show}");
    assert_eq!(tiered["threshold"], f64::from(want.threshold), "{show}");
    let text = ok(&["profile", "show", "web", "--db", &db]);
    let line = format!(
        "tiered threshold:   {:.3} nats/event (target false-alarm rate 0.05",
        want.threshold
    );
    assert!(text.contains(&line), "{text}");
    let threads = format!("calibrated on {} recorded threads", want.calibration);
    assert!(text.contains(&threads), "{text}");

    // A model learning cannot make: everything else is still shown, then the error, exit 1.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("UPDATE profiles SET model = x'00'", [])
        .unwrap();
    let out = chaperone(&["profile", "show", "web", "--db", &db]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("containers learned: 3"), "{stdout}");
    assert!(
        stdout.contains("tiered threshold:   - (the model cannot be used"),
        "{stdout}"
    );
    assert!(stderr.contains("\"web\""), "{stderr}");
}

/// A calibration or workload row that cannot be read: `profile show` still shows everything
/// else, marks what it could not read, then reports the error and exits 1 (in JSON too).
#[test]
fn profile_show_shows_what_it_can_read_around_a_damaged_row() {
    let tmp = tempfile::tempdir().unwrap();
    let db = learned_store(tmp.path());
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "INSERT INTO calibration (key, score) VALUES ('web', 'not a number')",
        [],
    )
    .unwrap();
    // A pod name that is not text (SQLite keeps what it is given).
    conn.execute(
        "INSERT INTO workloads (key, namespace, pod, container, runs, last, run)
         VALUES ('web', 'shop', x'ff', 'c', 1, 0, 1)",
        [],
    )
    .unwrap();
    drop(conn);
    let out = chaperone(&["profile", "show", "web", "--db", &db]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    for line in [
        "containers learned: 2",
        "learned threshold:  - (its data cannot be read: see the error below)",
        "learned from:       - (cannot be read: see the error below)",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    assert!(stderr.contains("read calibration data"), "{stderr}");

    let out = chaperone(&["profile", "show", "web", "--json", "--db", &db]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["containers"], 2, "{v}");
    assert!(v["threshold"]["error"].is_string(), "{v}");
    assert!(v["workloads"]["error"].is_string(), "{v}");
}

/// A profile whose mode this build does not know (written by hand here; a newer build's
/// mode name alike), and one whose figures cannot be read: `profile list` lists every profile,
/// marks what it cannot read (`?`; in JSON an `{"error": ...}`), then reports the first error
/// and exits 1, as `show` does; `show` of the first prints what it can, and of a sound one
/// works (until 2026-12-07 `list` printed nothing, and `show` nothing of that profile).
#[test]
fn profile_list_lists_every_profile_and_marks_what_it_cannot_read() {
    let tmp = tempfile::tempdir().unwrap();
    let db = learned_store(tmp.path());
    let store = Store::open(Path::new(&db)).unwrap();
    let mut counts = NgramCounts::new(4).unwrap();
    counts.learn_sequence(&syms(&["read", "write"]));
    for key in ["api", "zeta"] {
        let learning = Learning {
            counts: counts.clone(),
            containers: 1,
            maxima: Vec::new(),
            threads: Vec::new(),
            container: None,
            workload: None,
        };
        store.merge(key, &learning, None).unwrap();
    }
    drop(store);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "UPDATE profiles SET mode = 'Enforce' WHERE key = 'web';
             UPDATE profiles SET events = 'many' WHERE key = 'zeta';",
        )
        .unwrap();

    let out = chaperone(&["profile", "list", "--db", &db]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    assert_eq!(rows[0][..3], ["api", "default", "1"], "{stdout}");
    assert_eq!(rows[1][..3], ["web", "?", "2"], "{stdout}");
    assert_eq!(rows[2], ["zeta", "?", "?", "?", "?", "?"], "{stdout}");
    assert!(
        stderr.contains("2 of 3 profiles cannot be read whole")
            && stderr.contains(r#"unknown mode "Enforce""#),
        "{stderr}"
    );

    let out = chaperone(&["profile", "list", "--json", "--db", &db]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["mode"], Value::Null, "{lines:?}");
    assert_eq!(lines[1]["containers"], 2, "{lines:?}");
    assert!(lines[1]["mode"]["error"].is_string(), "{lines:?}");
    assert_eq!(lines[2]["profile"], "zeta", "{lines:?}");
    assert!(lines[2]["error"].is_string(), "{lines:?}");

    let out = chaperone(&["profile", "show", "web", "--db", &db]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    for line in [
        "mode:               - (cannot be read: see the error below)",
        "containers learned: 2",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    assert!(stderr.contains(r#"unknown mode "Enforce""#), "{stderr}");
    let out = chaperone(&["profile", "show", "web", "--json", "--db", &db]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["mode"]["error"].is_string(), "{v}");
    ok(&["profile", "show", "api", "--db", &db]);
}

#[test]
fn alerts_are_listed_filtered_and_allowed_into_the_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let db = learned_store(tmp.path());
    let log = tmp.path().join("alerts.jsonl");
    let alert = |id: &str, container: &str| {
        json!({
            "time": "2026-11-24T10:00:00.000000000Z", "rule": "chaperone: syscall never seen while learning",
            "priority": "Error", "output": "...",
            "output_fields": {
                "chaperone.alert_id": id, "container.id": container, "chaperone.profile": "web",
                "evt.type": "connect", "chaperone.action": "kill", "chaperone.score": 1.5,
                "chaperone.window": ["openat", "read", "socket", "connect"],
            }
        })
        .to_string()
    };
    // Two malformed lines, one of them not even UTF-8: each is skipped with a warning.
    let mut text = format!("{}\nnot json\n", alert("aaaa", "c1")).into_bytes();
    let offsets = [alert("aaaa", "c1").len() + 1, text.len()];
    text.extend_from_slice(b"\xff\xfe{\"time\"\n");
    text.extend_from_slice(format!("{}\n", alert("bbbb", "c2")).as_bytes());
    std::fs::write(&log, text).unwrap();
    let log = log.to_str().unwrap();

    let listed = chaperone(&["alerts", "--file", log]);
    assert!(listed.status.success(), "{listed:?}");
    let table = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(table.lines().count(), 3, "header and two alerts: {table}");
    let warned = String::from_utf8_lossy(&listed.stderr);
    assert_eq!(
        warned.matches("skipping a malformed alert line").count(),
        2,
        "{warned}"
    );
    for offset in offsets {
        assert!(
            warned.contains(&format!("malformed alert line at byte {offset}\n")),
            "{warned}"
        );
    }
    assert!(table.contains("aaaa") && table.contains("connect") && table.contains("kill"));
    let only = ok(&["alerts", "--file", log, "--json", "--container", "c2"]);
    let v: Value = serde_json::from_str(only.trim()).unwrap();
    assert_eq!(v["output_fields"]["chaperone.alert_id"], "bbbb");

    let before = load_web(&db);
    let connect = sym_of("connect").unwrap();
    assert!(!before.counts.alphabet().contains(&connect));
    // The alert after the malformed lines: they are looked past.
    ok(&["alerts", "allow", "bbbb", "--file", log, "--db", &db]);
    let after = load_web(&db);
    assert!(
        after.counts.alphabet().contains(&connect),
        "the window joined the profile"
    );
    assert_eq!(after.summary.containers, before.summary.containers);
    // A window shorter than the supervisor's 32 is all its thread had made: learned as a
    // thread. (A full one is learned as a thread's rest: `a_full_alert_window_...`.)
    assert_eq!(after.counts.threads(), before.counts.threads() + 1);
    let runs = Store::open(Path::new(&db)).unwrap().runs("web").unwrap();
    assert!(runs.last().unwrap().threads.iter().all(|t| !t.continues));
    // The same alert again: nothing merged twice, exit 0, and said so.
    let again = chaperone(&["alerts", "allow", "bbbb", "--file", log, "--db", &db]);
    assert_eq!(again.status.code(), Some(0), "{again:?}");
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        said.contains("alert bbbb was allowed into profile web before (20")
            && said.contains("nothing to do"),
        "{said}"
    );
    let still = load_web(&db);
    assert_eq!(still.counts, after.counts);
    assert_eq!(still.summary.events, after.summary.events);

    let out = chaperone(&["alerts", "allow", "zzzz", "--file", log, "--db", &db]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no alert zzzz"));

    // A directory where the log should be: named, and no table printed.
    let dir = tmp.path().to_str().unwrap();
    let out = chaperone(&["alerts", "--file", dir]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(dir) && stderr.contains("a directory"),
        "{stderr}"
    );

    // A log named with --file that is not there is an error (a typo), not "no alerts".
    let typo = tmp.path().join("alerst.jsonl");
    let out = chaperone(&["alerts", "--file", typo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("alerst.jsonl"));
}

/// A full window (32 syscalls) is the end of a thread, not its start: `allow` learns it as
/// the rest of one (no thread counted, no start-of-thread n-gram), and so does the tiered
/// model's recorded run.
#[test]
fn a_full_alert_window_is_learned_as_the_rest_of_a_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let db = learned_store(tmp.path());
    let log = tmp.path().join("alerts.jsonl");
    let window: Vec<&str> = ["read", "poll", "connect", "write"].repeat(8);
    let line = json!({"output_fields": {
        "chaperone.alert_id": "full", "chaperone.profile": "web", "chaperone.window": window,
    }});
    std::fs::write(&log, format!("{line}\n")).unwrap();
    let before = load_web(&db);
    ok(&[
        "alerts",
        "allow",
        "full",
        "--file",
        log.to_str().unwrap(),
        "--db",
        &db,
    ]);
    let after = load_web(&db);
    assert_eq!(after.counts.threads(), before.counts.threads());
    assert_eq!(after.counts.events(), before.counts.events() + 32);
    let runs = Store::open(Path::new(&db)).unwrap().runs("web").unwrap();
    assert!(runs.last().unwrap().threads.iter().all(|t| t.continues));
}

/// An alert that `allow` cannot use (no profile, no window, no syscall chaperone knows in its
/// window) is an error naming the alert, the log and what is missing; the profile is left
/// as it was.
#[test]
fn an_unusable_alert_is_an_error_naming_it_and_its_log() {
    let tmp = tempfile::tempdir().unwrap();
    let db = learned_store(tmp.path());
    let log = tmp.path().join("alerts.jsonl");
    let lines = [
        json!({"output_fields": {"chaperone.alert_id": "nokey", "chaperone.window": ["read"]}}),
        json!({"output_fields": {"chaperone.alert_id": "nowin", "chaperone.profile": "web"}}),
        json!({"output_fields": {"chaperone.alert_id": "unknown", "chaperone.profile": "web",
            "chaperone.window": ["no_such_syscall", 7]}}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&log, text).unwrap();
    let log = log.to_str().unwrap();
    let before = load_web(&db);
    for (id, missing) in [
        ("nokey", "names no profile (chaperone.profile)"),
        ("nowin", "has no syscall window (chaperone.window)"),
        ("unknown", "has no known syscalls in its window"),
    ] {
        let out = chaperone(&["alerts", "allow", id, "--file", log, "--db", &db]);
        assert_eq!(out.status.code(), Some(1), "{id}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("alert {id} in {log} {missing}")),
            "{stderr}"
        );
    }
    let after = load_web(&db);
    assert_eq!(after.counts, before.counts);
    assert_eq!(after.summary.events, before.summary.events);
}

/// A store that is not one (garbage, or an empty file: until 2026-12-07 that read as schema
/// 0, and a writing command made a new store over it): every command that reads it exits 1
/// with the file and `move it aside`, and none writes to it.
#[test]
fn a_corrupt_store_is_an_error_and_left_as_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("profiles.db");
    for garbage in [vec![0x5a_u8; 8192], Vec::new()] {
        std::fs::write(&db, &garbage).unwrap();
        // Written a while ago: a younger empty file may be a store an older build is still
        // making, which is waited for.
        std::fs::File::options()
            .write(true)
            .open(&db)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60))
            .unwrap();
        let db = db.to_str().unwrap();
        for args in [
            &["profile", "list"][..],
            &["profile", "show", "web"],
            &["profile", "mode", "web", "enforce"],
            &["profile", "reset", "web"],
        ] {
            let mut args = args.to_vec();
            args.extend(["--db", db]);
            let out = chaperone(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            assert!(
                stderr.contains(db)
                    && stderr.contains("corrupt")
                    && stderr.contains("move it aside"),
                "{args:?}: {stderr}"
            );
            assert_eq!(std::fs::read(db).unwrap(), garbage, "{args:?} wrote to it");
        }
    }
}

/// A store whose newest change is only in its `-wal` (its writer killed before the
/// checkpoint), with a damaged page: `profile list` says to move it aside with its `-wal` and
/// `-shm`. Moved without them, `list` and `learn --image` say the `-wal` was left behind, and
/// no store is made beside it (until 2026-12-07 `learn` made one, and SQLite deleted the
/// `-wal`, with that change).
#[test]
fn a_store_moved_without_its_wal_is_not_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let live = learned_store(tmp.path());
    let dir = tmp.path().join("node");
    std::fs::create_dir(&dir).unwrap();
    let (root, page): (i64, i64) = {
        let conn = rusqlite::Connection::open(&live).unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute("UPDATE profiles SET mode = 'enforce'", [])
            .unwrap();
        for suffix in ["", "-wal"] {
            std::fs::copy(
                format!("{live}{suffix}"),
                dir.join(format!("profiles.db{suffix}")),
            )
            .unwrap();
        }
        conn.query_row(
            "SELECT rootpage, (SELECT page_size FROM pragma_page_size)
             FROM sqlite_master WHERE name = 'traces'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let db = dir.join("profiles.db");
    let (wal, aside) = (dir.join("profiles.db-wal"), dir.join("aside.db"));
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    // Damage the recorded runs' root page, as a bad disk might.
    let mut bytes = std::fs::read(&db).unwrap();
    let at = usize::try_from((root - 1) * page).unwrap();
    bytes[at..at + 8].fill(0xff);
    std::fs::write(&db, &bytes).unwrap();
    let db_s = db.to_str().unwrap();

    let out = chaperone(&["profile", "list", "--db", db_s]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("corrupt"), "{stderr}");
    assert!(
        stderr.contains(&format!("{db_s}-wal")) && stderr.contains(&format!("{db_s}-shm")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    std::fs::rename(&db, &aside).unwrap();
    let held = std::fs::read(&wal).unwrap();
    let trace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../seccomp-gen/tests/fixtures/webserver-v1.strace");
    let trace = trace.to_str().unwrap();
    for args in [
        &["profile", "list"][..],
        &[
            "learn", "--format", "strace", "--from", trace, "--image", "web",
        ],
    ] {
        let mut args = args.to_vec();
        args.extend(["--db", db_s]);
        let out = chaperone(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("moved or lost without it"), "{stderr}");
        assert!(!db.exists(), "{args:?} made a store");
        assert_eq!(
            std::fs::read(&wal).unwrap(),
            held,
            "{args:?}: the -wal is kept"
        );
    }
    // Moved as the message says, the change is there.
    std::fs::rename(&wal, dir.join("aside.db-wal")).unwrap();
    let mode: String = rusqlite::Connection::open(&aside)
        .unwrap()
        .query_row("SELECT mode FROM profiles", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "enforce");
}

/// A store this user may not write: every writing command names why (the file, its `-shm`,
/// or its directory, where SQLite makes the `-wal` and `-shm`), where until 2026-12-07 it gave
/// SQLite's "attempt to write a readonly database" of whichever step failed first (`read the
/// schema version failed`). Root may write anything, so as root the commands run as nobody
/// (uid 65534), who may not write what root made; another user runs them as itself.
#[test]
fn writing_a_store_this_user_may_not_write_names_why() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = std::fs::metadata(tmp.path()).unwrap().uid() == 0;
    let dir = tmp.path().join("store");
    std::fs::create_dir(&dir).unwrap();
    let db = learned_store(&dir);
    let (shm, new) = (format!("{db}-shm"), format!("{}/new.db", dir.display()));
    let chmod = |path: &str, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    chmod(tmp.path().to_str().unwrap(), 0o755);
    let run = |args: &[&str], db: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chaperone"));
        cmd.args(args)
            .args(["--db", db])
            .env("CHAPERONE_CONFIG", "/dev/null");
        if root {
            cmd.uid(65_534).gid(65_534);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("cannot write the profile store"),
            "{args:?}: {stderr}"
        );
        stderr
    };
    let dir_s = dir.to_str().unwrap();
    chmod(dir_s, 0o555);
    chmod(&db, 0o444);
    for args in [
        &["profile", "mode", "web", "enforce"][..],
        &["profile", "reset", "web"],
    ] {
        let stderr = run(args, &db);
        assert!(stderr.contains(&format!("may not write {db};")), "{stderr}");
    }
    chmod(&db, 0o666);
    let stderr = run(&["profile", "mode", "web", "enforce"], &db);
    assert!(
        stderr.contains(&format!("may not write its directory {dir_s},")),
        "{stderr}"
    );
    let trace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../seccomp-gen/tests/fixtures/webserver-v1.strace");
    let learn = [
        "learn",
        "--format",
        "strace",
        "--from",
        trace.to_str().unwrap(),
        "--image",
        "web",
    ];
    let stderr = run(&learn, &new);
    assert!(
        stderr.contains(&format!("may not write its directory {dir_s},")),
        "{stderr}"
    );
    // A shim holds the store open, so its `-wal` and `-shm` are there; the `-shm` is not
    // this user's to write.
    chmod(dir_s, 0o755);
    let shim = rusqlite::Connection::open(&db).unwrap();
    let _: i64 = shim
        .query_row("SELECT COUNT(*) FROM profiles", [], |r| r.get(0))
        .unwrap();
    chmod(dir_s, 0o555);
    chmod(&format!("{db}-wal"), 0o666);
    chmod(&shm, 0o444);
    let stderr = run(&["profile", "mode", "web", "enforce"], &db);
    assert!(
        stderr.contains(&format!("may not write {shm};")),
        "{stderr}"
    );
    chmod(dir_s, 0o755);
    chmod(&shm, 0o644);
    drop(shim);
    assert_eq!(load_web(&db).summary.mode, None, "nothing was written");
}

/// A writing command finding the store locked by another writer (a shim merging) waits for it,
/// up to the store's busy timeout (30 s), rather than failing at once: here the lock is held
/// for half a second, and the command then succeeds.
#[test]
fn a_writing_command_waits_for_another_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let db = learned_store(tmp.path());
    let shim = rusqlite::Connection::open(&db).unwrap();
    shim.execute_batch("BEGIN IMMEDIATE").unwrap();
    let held = std::time::Duration::from_millis(500);
    let start = std::time::Instant::now();
    let release = std::thread::spawn(move || {
        std::thread::sleep(held);
        shim.execute_batch("COMMIT").unwrap();
    });
    ok(&["profile", "mode", "web", "enforce", "--db", &db]);
    assert!(start.elapsed() >= held, "{:?}", start.elapsed());
    release.join().unwrap();
    assert_eq!(
        load_web(&db).summary.mode,
        Some(chaperone_config::Mode::Enforce)
    );
}

#[test]
fn learn_into_the_store_merges_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("p.db");
    let db = db.to_str().unwrap();
    let trace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../seccomp-gen/tests/fixtures/webserver-v1.strace");
    let trace = trace.to_str().unwrap();
    let learn = [
        "learn", "--format", "strace", "--from", trace, "--image", "web", "--db", db,
    ];
    ok(&learn);
    let one: Value =
        serde_json::from_str(&ok(&["profile", "show", "web", "--json", "--db", db])).unwrap();
    ok(&learn);
    let two: Value =
        serde_json::from_str(&ok(&["profile", "show", "web", "--json", "--db", db])).unwrap();
    assert_eq!(two["containers"], 2);
    assert_eq!(
        two["events"].as_u64().unwrap(),
        2 * one["events"].as_u64().unwrap()
    );
    assert_eq!(
        two["ngrams"], one["ngrams"],
        "the same traces add no n-gram"
    );
    let neither = chaperone(&["learn", "--format", "strace", "--from", trace]);
    assert_eq!(neither.status.code(), Some(2), "-o or --image is required");
}

/// A profile `learn --image` makes has the config's model order, as the shim's learning has:
/// one at another order would refuse every merge of the shim's (until 2026-12-07 it was 8
/// whatever the config said). An existing profile keeps its own.
#[test]
fn learn_makes_a_profile_of_the_configs_order() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("p.db");
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "db_path = {:?}\n[model]\norder = 4\n",
            db.display().to_string()
        ),
    )
    .unwrap();
    let trace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../seccomp-gen/tests/fixtures/webserver-v1.strace");
    let learn = |image: &str| {
        ok(&[
            "learn",
            "--format",
            "strace",
            "--from",
            trace.to_str().unwrap(),
            "--image",
            image,
            "--config",
            config.to_str().unwrap(),
        ]);
    };
    learn("web");
    let store = Store::open(&db).unwrap();
    assert_eq!(store.model("web").unwrap().unwrap().order(), 4);
    // The shim's learning, at the config's order, merges into it.
    let mut shim = NgramCounts::new(4).unwrap();
    shim.learn_sequence(&syms(&["read", "write"]));
    let learning = Learning {
        counts: shim,
        containers: 1,
        maxima: Vec::new(),
        threads: Vec::new(),
        container: None,
        workload: None,
    };
    store.merge("web", &learning, None).unwrap();
    drop(store);
    learn("web");
    let store = Store::open(&db).unwrap();
    assert_eq!(store.model("web").unwrap().unwrap().order(), 4);
}

/// `chaperone alerts | head -1`: the reader takes a line and goes away. chaperone then ends
/// quietly with 141, as a program SIGPIPE kills, instead of panicking in a print.
#[test]
fn alerts_end_quietly_when_their_reader_goes_away() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("alerts.jsonl");
    // Far more than a pipe holds (64 KiB), so chaperone is still writing when the reader goes.
    let line = json!({
        "time": "2026-11-24T10:00:00.000000000Z", "priority": "Notice", "rule": "r",
        "output": "...", "output_fields": { "container.id": "c", "evt.type": "read" },
    })
    .to_string();
    std::fs::write(&log, format!("{line}\n").repeat(20_000)).unwrap();
    for json in [false, true] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chaperone"))
            .args(["alerts", "--file"])
            .arg(&log)
            .args(json.then_some("--json"))
            .env("CHAPERONE_CONFIG", "/dev/null")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chaperone runs");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        // The reader is dropped here: the pipe has no reader left.
        let out = child.wait_with_output().unwrap();
        assert!(!first.is_empty(), "a first line came");
        assert_eq!(out.status.code(), Some(141), "json {json}: {out:?}");
        assert!(
            out.stderr.is_empty(),
            "nothing said: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `chaperone alerts --follow` follows the log by name, as `tail -F` does: through a
/// truncation in place and a rotation by rename, with nothing of the old file left unread.
#[test]
fn following_alerts_survives_truncation_and_rotation() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    /// Kills the follower however the test ends.
    struct Follower(Child);
    impl Drop for Follower {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("alerts.jsonl");
    let line = |id: &str| {
        let alert = json!({
            "time": "2026-11-24T10:00:00.000000000Z", "priority": "Notice", "rule": "r",
            "output": "...", "output_fields": { "chaperone.alert_id": id, "container.id": "c" },
        });
        format!("{alert}\n")
    };
    let append = |path: &Path, id: &str| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(line(id).as_bytes()).unwrap();
    };
    append(&log, "a1");

    let mut follower = Follower(
        Command::new(env!("CARGO_BIN_EXE_chaperone"))
            .args(["alerts", "--follow", "--json", "--file"])
            .arg(&log)
            .env("CHAPERONE_CONFIG", "/dev/null")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chaperone runs"),
    );
    let (tx, rx) = mpsc::channel();
    let stdout = BufReader::new(follower.0.stdout.take().unwrap());
    std::thread::spawn(move || {
        for l in stdout.lines().map_while(Result::ok) {
            let v: Value = serde_json::from_str(&l).unwrap();
            let id = v["output_fields"]["chaperone.alert_id"]
                .as_str()
                .unwrap()
                .to_owned();
            if tx.send(id).is_err() {
                return;
            }
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the follower prints the next alert")
    };
    assert_eq!(next(), "a1");
    append(&log, "a2");
    assert_eq!(next(), "a2");

    // copytruncate: the same file, emptied, then written again.
    std::fs::write(&log, line("t1")).unwrap();
    assert_eq!(next(), "t1");

    // Rotation by rename: a last line in the old file, then the new file.
    append(&log, "r1");
    std::fs::rename(&log, tmp.path().join("alerts.jsonl.1")).unwrap();
    append(&log, "n1");
    assert_eq!(next(), "r1");
    assert_eq!(next(), "n1");
    append(&log, "n2");
    assert_eq!(next(), "n2");

    let _ = follower.0.kill();
    let mut stderr = String::new();
    follower
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("was truncated"), "{stderr}");
    assert!(stderr.contains("was replaced"), "{stderr}");
}

/// `profile list` sizes its columns to their widest value: a 71-character digest key keeps
/// every row's columns in line (until 2026-12-07 it overran a fixed 32-character column), and a
/// newline in a key is escaped, not a second line.
#[test]
fn profile_list_columns_fit_their_widest_value() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("profiles.db");
    let store = Store::open(&db).unwrap();
    let digest = format!("sha256:{}", "ab".repeat(32));
    for key in [digest.as_str(), "web", "two\nlines"] {
        let mut counts = NgramCounts::new(4).unwrap();
        counts.learn_sequence(&syms(&["openat", "read", "close"]));
        let learning = Learning {
            counts,
            containers: 1,
            maxima: Vec::new(),
            threads: Vec::new(),
            container: None,
            workload: None,
        };
        store.merge(key, &learning, None).unwrap();
    }
    drop(store);
    let text = ok(&["profile", "list", "--db", db.to_str().unwrap()]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines.iter().any(|l| l.starts_with("two\\nlines ")),
        "{text}"
    );
    // Every column starts where the header's does, and every row is as long.
    let mode = lines[0].find("MODE").unwrap();
    for line in &lines[1..] {
        assert_eq!(line.find("default"), Some(mode), "{text}");
        assert_eq!(line.len(), lines[0].len(), "{text}");
    }
}

/// `CONTAINERD_NAMESPACE=` (set, empty) counts as unset, as for ctr: `resume` looks in the
/// `default` namespace (until 2026-12-07 it refused the empty name with exit 2).
#[test]
fn an_empty_containerd_namespace_is_the_default_one() {
    let state = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chaperone"))
        .args(["resume", "abcd", "--state"])
        .arg(state.path())
        .env("CHAPERONE_CONFIG", "/dev/null")
        .env("CONTAINERD_NAMESPACE", "")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no task \"abcd\" in namespace \"default\""),
        "{stderr}"
    );
}
