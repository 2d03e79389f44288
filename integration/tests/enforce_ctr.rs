//! Learn → enforce end to end under a real (private) containerd: containers of one profile are
//! learned into the SQLite store, then a benign rerun passes in silence and a deviating one is
//! answered as configured (kill, deny, alert only; kill takes the whole container when an exec
//! process deviates). Also: concurrent learning loses no count, a running container's learning
//! reaches the store periodically, and an unusable store follows the fail mode. Needs root,
//! containerd, runc and a static busybox (scripts/test.sh installs them).

// Integration tests are their own crate: no test module, and they report to the terminal.
#![allow(clippy::tests_outside_test_module, clippy::disallowed_macros)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use chaperone_integration::containerd::{
    cli_binary, output_within, setup, wait_for, Cleanup, Containerd, BUSYBOX_IMAGE, CHAPERONE,
    CTR_DEADLINE,
};
use chaperone_profiler::store::{Store, Summary};
use serde_json::Value;

/// What every container of the test profiles does while learning.
const BENIGN: &str = "i=0; while [ $i -lt 5 ]; do echo $i > /tmp/f; cat /tmp/f > /dev/null; \
                      i=$((i+1)); done; ls / > /dev/null; echo done";
/// Containers learned before enforcing.
const LEARN_RUNS: usize = 3;

/// A webhook receiver on 127.0.0.1: answers every POST with 200 and passes its JSON body on.
fn webhook_receiver() -> (u16, Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = reader
                .into_inner()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            if let Ok(alert) = serde_json::from_slice(&body) {
                if tx.send(alert).is_err() {
                    return;
                }
            }
        }
    });
    (port, rx)
}

/// Runs `sh -c script` to completion under chaperone with `annotations`; returns the output
/// (stdout and stderr together, through a file log: [`Containerd::ctr_run_logged`]).
fn run(
    ctrd: &Containerd,
    id: &str,
    annotations: &[(&str, &str)],
    extra: &[&str],
    script: &str,
) -> std::process::Output {
    let _cleanup = Cleanup(ctrd, id.to_owned());
    let mut args: Vec<String> = vec!["--runtime".into(), CHAPERONE.into(), "--rm".into()];
    for (k, v) in annotations {
        args.push("--annotation".into());
        args.push(format!("{k}={v}"));
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.extend([
        BUSYBOX_IMAGE.into(),
        id.into(),
        "sh".into(),
        "-c".into(),
        script.into(),
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ctrd.ctr_run_logged(&refs).expect("ctr runs")
}

fn text(out: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Fails unless the container exited with `code` (showing its output and containerd's log).
fn expect_exit(ctrd: &Containerd, out: &std::process::Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", ctrd.explain(text(out)));
}

/// Fails unless the container printed `what`.
fn expect_stdout(out: &std::process::Output, what: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(what), "{}", text(out));
}

fn summary(ctrd: &Containerd, key: &str) -> Summary {
    Store::open(&ctrd.db_path())
        .expect("the store opens")
        .summary(key)
        .expect("the store reads")
        .unwrap_or_else(|| panic!("{}", ctrd.explain(format!("no profile {key}"))))
}

/// Learns `LEARN_RUNS` benign containers into profile `key`; checks the store after each.
fn learn(ctrd: &Containerd, key: &str) {
    learn_script(ctrd, key, BENIGN);
}

/// [`learn`] with containers that run `sh -c script`.
fn learn_script(ctrd: &Containerd, key: &str, script: &str) {
    for n in 1..=LEARN_RUNS {
        let id = format!("{key}-learn{n}");
        let out = run(ctrd, &id, &[("chaperone.io/profile", key)], &[], script);
        expect_exit(ctrd, &out, 0);
        // Delete waits for the supervisors to store, so the count is there when ctr returns.
        let s = summary(ctrd, key);
        assert_eq!(s.containers, n as u64, "{s:?}");
        assert!(s.events > 50, "{s:?}");
    }
    let s = summary(ctrd, key);
    assert!(
        s.calibration > 0,
        "held-out maxima from runs 2 and 3: {s:?}"
    );
}

fn alerts_of(ctrd: &Containerd, id: &str) -> Vec<Value> {
    ctrd.alerts()
        .expect("the alert log parses")
        .into_iter()
        .filter(|a| a["output_fields"]["container.id"] == id)
        .collect()
}

fn enforce(key: &str, action: &'static str) -> Vec<(&'static str, String)> {
    vec![
        ("chaperone.io/profile", key.to_owned()),
        ("chaperone.io/mode", "enforce".to_owned()),
        ("chaperone.io/action", action.to_owned()),
    ]
}

/// Starts `sh -c script` detached as container `id`, enforcing profile `key` with `action`.
fn start_enforced(
    ctrd: &Containerd,
    key: &str,
    action: &'static str,
    extra: &[&str],
    id: &str,
    script: &str,
) {
    let annotations: Vec<String> = enforce(key, action)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut args = vec!["run", "-d", "--runtime", CHAPERONE];
    args.extend_from_slice(extra);
    for a in &annotations {
        args.extend(["--annotation", a.as_str()]);
    }
    args.extend([BUSYBOX_IMAGE, id, "sh", "-c", script]);
    ctrd.ctr_ok(&args)
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
}

fn pairs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, s)| (*k, s.as_str())).collect()
}

#[test]
fn a_learned_profile_kills_the_deviating_container_and_passes_the_benign_one() {
    let Some(ctrd) = setup() else { return };
    let key = format!("kill-{}", std::process::id());
    learn(&ctrd, &key);
    let annotations = enforce(&key, "kill");

    let benign = format!("{key}-benign");
    let out = run(&ctrd, &benign, &pairs(&annotations), &[], BENIGN);
    expect_exit(&ctrd, &out, 0);
    expect_stdout(&out, "done");
    assert_eq!(
        alerts_of(&ctrd, &benign),
        Vec::<Value>::new(),
        "a benign rerun is silent"
    );

    let attack = format!("{key}-attack");
    let script = format!("{BENIGN}; nc 127.0.0.1 9 </dev/null; echo survived");
    let out = run(&ctrd, &attack, &pairs(&annotations), &[], &script);
    expect_exit(&ctrd, &out, 137);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("survived"),
        "{}",
        text(&out)
    );
    let alerts = alerts_of(&ctrd, &attack);
    assert!(
        !alerts.is_empty(),
        "{}",
        ctrd.explain("an alert for the attack")
    );
    let first = &alerts[0];
    eprintln!("{}", first["output"]);
    assert_eq!(first["output_fields"]["chaperone.action"], "kill");
    assert_eq!(first["output_fields"]["chaperone.profile"], key.as_str());
    assert!(
        first["priority"].is_string() && first["time"].is_string() && first["rule"].is_string()
    );
    let window = first["output_fields"]["chaperone.window"]
        .as_array()
        .unwrap();
    assert!(!window.is_empty());
}

/// The alert log cannot take the alert (here a directory stands where it should be): the
/// verdict is carried out all the same, containerd's log has the failure and the alert, and
/// the webhook still gets it.
#[test]
fn an_alert_log_that_cannot_be_written_does_not_stop_the_verdict() {
    let Some(ctrd) = setup() else { return };
    let key = format!("nolog-{}", std::process::id());
    learn(&ctrd, &key);
    let (port, posted) = webhook_receiver();
    ctrd.set_chaperone_config(&format!(
        "alerts_webhook = \"http://127.0.0.1:{port}/falco\"\n"
    ))
    .unwrap();
    std::fs::create_dir_all(ctrd.alerts_path()).unwrap();

    let attack = format!("{key}-attack");
    let script = format!("{BENIGN}; nc 127.0.0.1 9 </dev/null; echo survived");
    let out = run(&ctrd, &attack, &pairs(&enforce(&key, "kill")), &[], &script);
    expect_exit(&ctrd, &out, 137);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("survived"),
        "{}",
        text(&out)
    );
    let log = ctrd.log();
    let said = |what: &str| log.lines().any(|l| l.contains(what) && l.contains(&attack));
    assert!(
        log.contains("cannot write an alert") && said("deviation"),
        "{}",
        ctrd.explain("the failed write and the alert in the log")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match posted.recv_timeout(left) {
            Ok(a) if a["output_fields"]["container.id"] == attack.as_str() => {
                assert_eq!(a["output_fields"]["chaperone.action"], "kill", "{a}");
                break;
            }
            Ok(_) => {}
            Err(_) => panic!("{}", ctrd.explain("the webhook got no alert")),
        }
    }
}

#[test]
fn deny_fails_only_the_offending_syscall_and_monitor_only_alerts() {
    let Some(ctrd) = setup() else { return };
    let key = format!("deny-{}", std::process::id());
    learn(&ctrd, &key);
    let (out_dir, mount) = ctrd.out_dir("out");
    let script = format!("{BENIGN}; mkdir /out/made && echo made || echo denied; echo after");

    // Alerts also go to a webhook.
    let (port, posted) = webhook_receiver();
    ctrd.set_chaperone_config(&format!(
        "alerts_webhook = \"http://127.0.0.1:{port}/falco\"\n"
    ))
    .unwrap();
    let denied = format!("{key}-deny");
    let out = run(
        &ctrd,
        &denied,
        &pairs(&enforce(&key, "deny")),
        &["--mount", &mount],
        &script,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    expect_exit(&ctrd, &out, 0);
    assert!(
        stdout.contains("denied") && stdout.contains("after"),
        "{}",
        text(&out)
    );
    assert!(!out_dir.join("made").exists(), "the denied mkdir never ran");
    let alerts = alerts_of(&ctrd, &denied);
    let types: Vec<&str> = alerts
        .iter()
        .filter_map(|a| a["output_fields"]["evt.type"].as_str())
        .collect();
    assert!(
        types.iter().any(|t| t.starts_with("mkdir")),
        "{}",
        ctrd.explain(format!("the mkdir is what was flagged: {types:?}"))
    );
    assert!(alerts
        .iter()
        .all(|a| a["output_fields"]["chaperone.action"] == "deny"));
    // The webhook got the same alert objects as the log, without being waited for.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut received = Vec::new();
    while received.len() < alerts.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match posted.recv_timeout(left) {
            Ok(a) if a["output_fields"]["container.id"] == denied.as_str() => received.push(a),
            Ok(_) => {}
            Err(_) => panic!(
                "{}",
                ctrd.explain(format!(
                    "the webhook got {} of {} alerts",
                    received.len(),
                    alerts.len()
                ))
            ),
        }
    }
    assert_eq!(received, alerts);

    let monitored = format!("{key}-monitor");
    let mut annotations = enforce(&key, "kill");
    annotations[1].1 = "monitor".into();
    let out = run(
        &ctrd,
        &monitored,
        &pairs(&annotations),
        &["--mount", &mount],
        &script,
    );
    expect_exit(&ctrd, &out, 0);
    expect_stdout(&out, "made");
    assert!(
        out_dir.join("made").exists(),
        "monitor mode never interferes"
    );
    let alerts = alerts_of(&ctrd, &monitored);
    assert!(
        !alerts.is_empty(),
        "{}",
        ctrd.explain("monitor mode alerts")
    );
    assert!(alerts
        .iter()
        .all(|a| a["output_fields"]["chaperone.action"] == "alert"));
}

#[test]
fn concurrent_learning_loses_no_count() {
    let Some(ctrd) = setup() else { return };
    let key = format!("many-{}", std::process::id());
    const CONTAINERS: usize = 20;
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..CONTAINERS)
            .map(|n| {
                let (ctrd, key) = (&ctrd, &key);
                scope.spawn(move || {
                    let id = format!("{key}-{n}");
                    run(ctrd, &id, &[("chaperone.io/profile", key)], &[], BENIGN)
                })
            })
            .collect();
        for r in runs {
            let out = r.join().unwrap();
            expect_exit(&ctrd, &out, 0);
        }
    });
    // Each supervisor logs what it learned; the store must hold exactly their sum.
    for n in 0..CONTAINERS {
        ctrd.wait_deleted_logged(&format!("{key}-{n}"))
            .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    }
    let s = summary(&ctrd, &key);
    assert_eq!(s.containers, CONTAINERS as u64, "{s:?}");
    assert_eq!(
        s.events,
        logged_events(&ctrd, &key),
        "stored vs logged events\n{s:?}"
    );
}

/// The events the shims logged as merged into profile `key` (every merge logs its own).
fn logged_events(ctrd: &Containerd, key: &str) -> u64 {
    ctrd.log()
        .lines()
        .filter(|l| l.contains("learned the container's syscalls") && l.contains(key))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.trim_matches('"').strip_prefix("events="))
                .and_then(|n| {
                    n.trim_matches(|c: char| !c.is_ascii_digit())
                        .parse::<u64>()
                        .ok()
                })
        })
        .sum()
}

#[test]
fn a_running_container_s_learning_reaches_the_store_periodically() {
    let Some(ctrd) = setup() else { return };
    ctrd.set_chaperone_config("learn_flush_seconds = 1\n")
        .unwrap();
    let key = format!("flush-{}", std::process::id());
    let id = format!("{key}-c");
    let _cleanup = Cleanup(&ctrd, id.clone());
    ctrd.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        CHAPERONE,
        "--annotation",
        &format!("chaperone.io/profile={key}"),
        BUSYBOX_IMAGE,
        &id,
        "sh",
        "-c",
        "while true; do cat /etc/hostname > /dev/null; sleep 1; done",
    ])
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));

    // While it runs, its counts arrive without a container counted (that is the exit's).
    let store = Store::open(&ctrd.db_path()).expect("the store opens");
    let early = wait_for("a periodic merge", Duration::from_secs(30), || {
        store.summary(&key).ok().flatten().filter(|s| s.events > 0)
    })
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    assert_eq!(early.containers, 0, "{early:?}");
    assert_eq!(ctrd.task_status(&id).as_deref(), Some("RUNNING"));
    wait_for("a second periodic merge", Duration::from_secs(30), || {
        store
            .summary(&key)
            .ok()
            .flatten()
            .filter(|s| s.events > early.events)
    })
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));

    // At exit the rest arrives, with the container: nothing lost, nothing counted twice.
    ctrd.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", &id])
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    wait_for("the task to stop", Duration::from_secs(30), || {
        (ctrd.task_status(&id).as_deref() == Some("STOPPED")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    ctrd.ctr_ok(&["tasks", "delete", &id])
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    let last = summary(&ctrd, &key);
    assert_eq!(last.containers, 1, "{last:?}");
    assert!(last.events > early.events, "{last:?}");
    // The recorded runs name their container, and the shell's thread, live across the
    // flushes, is whole in the first run and a continuation in the later ones.
    let runs = Store::open(&ctrd.db_path()).unwrap().runs(&key).unwrap();
    assert!(runs.len() >= 2, "{} runs", runs.len());
    assert!(runs
        .iter()
        .all(|r| r.container.as_deref() == Some(id.as_str())));
    assert!(
        runs[0].threads.iter().all(|t| !t.continues),
        "{:?}",
        runs[0]
    );
    assert!(
        runs[1..]
            .iter()
            .any(|r| r.threads.iter().any(|t| t.continues)),
        "no continuation recorded"
    );
    ctrd.wait_deleted_logged(&id)
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    let log = ctrd.log();
    assert!(
        log.contains("when=periodic"),
        "{}",
        ctrd.explain("no periodic merge logged")
    );
    assert_eq!(
        last.events,
        logged_events(&ctrd, &key),
        "stored vs logged events\n{last:?}"
    );
}

#[test]
fn an_unusable_store_follows_the_fail_mode() {
    let Some(ctrd) = setup() else { return };
    std::fs::write(ctrd.db_path(), vec![0x5a_u8; 8192]).unwrap();
    let id = format!("corrupt-{}", std::process::id());
    let out = run(&ctrd, &id, &[], &[], "echo hi");
    assert_ne!(
        out.status.code(),
        Some(0),
        "fail_mode closed refuses the container"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("corrupt") && stderr.contains("profiles.db"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read(ctrd.db_path()).unwrap(),
        vec![0x5a_u8; 8192],
        "nothing is overwritten"
    );

    ctrd.set_chaperone_config("fail_mode = \"open\"\n").unwrap();
    let out = run(&ctrd, &format!("{id}-open"), &[], &[], "echo hi");
    expect_exit(&ctrd, &out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("hi"));
    assert!(
        ctrd.log().contains("container runs untraced"),
        "{}",
        ctrd.explain("no \"container runs untraced\" in the log")
    );
    assert!(Path::new(&ctrd.db_path()).exists());
}

/// Puts a directory where the store `db` was (and removes its WAL files): opening it then
/// fails, also for root, whom permission bits would not stop.
fn make_unwritable(db: &Path) -> Result<(), String> {
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", db.display());
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("{file}: {e}"))
            }
            _ => {}
        }
    }
    std::fs::create_dir(db).map_err(|e| format!("{}: {e}", db.display()))
}

/// A store that cannot be written when a container's learning is stored: the failure is
/// logged with the event count, the container's own run is untouched (its output and exit
/// code), and only that run's counts are lost: once the store is usable again, the next
/// container learns into it.
#[test]
fn a_store_unwritable_at_the_flush_loses_that_run_only() {
    let Some(ctrd) = setup() else { return };
    let key = format!("unwritable-{}", std::process::id());
    let id = format!("{key}-1");
    // The container ends when the test creates /gate/go, after it has broken the store.
    let gate = ctrd.dir().join("gate-unwritable");
    std::fs::create_dir_all(&gate).unwrap();
    let mount = format!(
        "type=bind,src={},dst=/gate,options=rbind:rw",
        gate.display()
    );
    let out = std::thread::scope(|scope| {
        let running = scope.spawn(|| {
            run(
                &ctrd,
                &id,
                &[("chaperone.io/profile", &key)],
                &["--mount", &mount],
                "while [ ! -e /gate/go ]; do sleep 0.1; done; echo done",
            )
        });
        // Create reads the store: it is broken only once the container runs.
        let broken = wait_for("the container to run", Duration::from_secs(30), || {
            (ctrd.task_status(&id).as_deref() == Some("RUNNING")).then_some(())
        })
        .map_err(|e| e.to_string())
        .and_then(|()| make_unwritable(&ctrd.db_path()));
        // Let the container end in any case, so the thread ends.
        std::fs::write(gate.join("go"), b"").unwrap();
        let out = running.join().unwrap();
        broken.unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
        out
    });
    expect_exit(&ctrd, &out, 0);
    expect_stdout(&out, "done");
    let logged = ctrd.wait_logged(&id, "cannot store what the container learned");
    assert!(
        logged,
        "{}",
        ctrd.explain("the lost flush is not in the log")
    );

    std::fs::remove_dir(ctrd.db_path()).unwrap();
    let next = format!("{key}-2");
    let out = run(&ctrd, &next, &[("chaperone.io/profile", &key)], &[], BENIGN);
    expect_exit(&ctrd, &out, 0);
    let s = summary(&ctrd, &key);
    assert_eq!(
        s.containers, 1,
        "only the run after the repair is stored: {s:?}"
    );
    assert!(s.events > 50, "{s:?}");
}

#[test]
fn pause_freezes_the_container_until_it_is_resumed() {
    let Some(ctrd) = setup() else { return };
    let key = format!("pause-{}", std::process::id());
    learn(&ctrd, &key);
    let (out_dir, mount) = ctrd.out_dir("out-pause");
    let script = format!(
        "{BENIGN}; mkdir /out/made && echo made > /out/result || echo denied > /out/result"
    );
    let id = format!("{key}-attack");
    let _cleanup = Cleanup(&ctrd, id.clone());
    start_enforced(&ctrd, &key, "pause", &["--mount", &mount], &id, &script);

    wait_for("the task to be paused", Duration::from_secs(20), || {
        (ctrd.task_status(&id).as_deref() == Some("PAUSED")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    assert!(!out_dir.join("made").exists() && !out_dir.join("result").exists());
    let alerts = alerts_of(&ctrd, &id);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["output_fields"]["chaperone.action"], "pause");

    // Thawed by chaperone's own command, which asks the shim as containerd would.
    let out = resume(&ctrd, &id);
    assert!(out.status.success(), "{}", ctrd.explain(text(&out)));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("resumed {id}")
    );
    // A second resume is refused: the task is no longer paused.
    let again = resume(&ctrd, &id);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    wait_for("the task to finish", Duration::from_secs(20), || {
        (ctrd.task_status(&id).as_deref() == Some("STOPPED")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    let result = std::fs::read_to_string(out_dir.join("result")).unwrap_or_default();
    assert_eq!(
        result.trim(),
        "denied",
        "the held mkdir failed after the thaw; {}",
        ctrd.explain(format!("alerts: {:?}", alerts_of(&ctrd, &id)))
    );
    assert!(!out_dir.join("made").exists());
}

/// `chaperone resume ID` against the test's containerd.
fn resume(ctrd: &Containerd, id: &str) -> std::process::Output {
    let cli = cli_binary().expect("the chaperone binary next to the shim");
    output_within(
        std::process::Command::new(cli)
            .args(["resume", "--state"])
            .arg(ctrd.state_dir())
            .args(["--namespace", ctrd.namespace(), id]),
        CTR_DEADLINE,
    )
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)))
}

/// Two processes deviate at once: each pauses the container at most once, and their calls,
/// held across the pause, are denied when the thaw restarts them. Before 2026-12-07 only the
/// last pausing call was remembered, and every resume paused the container again on a
/// `mkdir` restart (still paused after 12 resumes). Each alert names the process that
/// deviated. Only the `mkdir`s are counted: the shell's own `wait` may deviate too, by its
/// timing, and a call a program retries for ever when denied pauses the container after
/// every resume (ADR 0021's "denied again"), so the container is killed, not waited for.
#[test]
fn two_deviating_processes_pause_once_each_and_the_resumes_hold() {
    let Some(ctrd) = setup() else { return };
    let key = format!("pause2-{}", std::process::id());
    learn_script(&ctrd, &key, &format!("{BENIGN}; (true) & (true) & wait"));
    let (out_dir, mount) = ctrd.out_dir("out-pause2");
    let script = format!(
        "{BENIGN}; (mkdir /out/a || echo a > /out/denied-a) & \
         (mkdir /out/b || echo b > /out/denied-b) & wait"
    );
    let id = format!("{key}-attack");
    let _cleanup = Cleanup(&ctrd, id.clone());
    start_enforced(&ctrd, &key, "pause", &["--mount", &mount], &id, &script);

    let both_denied = || out_dir.join("denied-a").exists() && out_dir.join("denied-b").exists();
    let mkdir_alerts = || -> Vec<Value> {
        alerts_of(&ctrd, &id)
            .into_iter()
            .filter(|a| a["output_fields"]["evt.type"] == "mkdir")
            .collect()
    };
    let mut resumes = 0;
    loop {
        let paused = wait_for(
            "a pause, or both mkdirs denied",
            Duration::from_secs(20),
            || {
                let status = ctrd.task_status(&id);
                if status.as_deref() == Some("PAUSED") {
                    Some(true)
                } else {
                    (both_denied() || status.as_deref() == Some("STOPPED")).then_some(false)
                }
            },
        )
        .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
        if !paused || both_denied() {
            break;
        }
        assert!(
            resumes < 6 && mkdir_alerts().len() <= 2,
            "{}",
            ctrd.explain(format!(
                "still pausing after {resumes} resumes; alerts: {:?}",
                alerts_of(&ctrd, &id)
            ))
        );
        let out = resume(&ctrd, &id);
        assert!(out.status.success(), "{}", ctrd.explain(text(&out)));
        resumes += 1;
    }
    let alerts = mkdir_alerts();
    assert!(
        (1..=2).contains(&alerts.len()),
        "{} mkdir alerts after {resumes} resumes: {alerts:?}",
        alerts.len()
    );
    assert!(both_denied(), "{alerts:?}");
    // Each `mkdir` runs in a subshell of its own, single-threaded: the alert's process is
    // that subshell (Falco's `proc.pid`), not the container's init.
    for a in &alerts {
        let f = &a["output_fields"];
        assert_eq!(f["proc.pid"], f["thread.tid"], "{a}");
        assert_eq!(f["chaperone.action"], "pause", "{a}");
    }
    assert!(!out_dir.join("a").exists() && !out_dir.join("b").exists());
}

#[test]
fn profiles_are_keyed_by_the_image_digest_cri_gives() {
    let Some(ctrd) = setup() else { return };
    // A pod's image pinned by digest, as the kubelet passes it on.
    let digest = format!("sha256:{:064x}", u128::from(std::process::id()));
    let name = format!("registry.example/app@{digest}");
    let id = format!("digest-{}", std::process::id());
    let out = run(
        &ctrd,
        &id,
        &[("io.kubernetes.cri.image-name", &name)],
        &[],
        BENIGN,
    );
    expect_exit(&ctrd, &out, 0);
    let s = summary(&ctrd, &digest);
    assert_eq!(s.containers, 1, "{s:?}");
    let store = Store::open(&ctrd.db_path()).unwrap();
    assert!(
        store.summary(&name).unwrap().is_none(),
        "the image name is not the key when a digest is given"
    );
}

/// `kill` is the container's, whichever of its processes deviates: an exec process that
/// deviates takes the container's init, and with it the whole container, down.
#[test]
fn an_exec_process_that_deviates_kills_its_whole_container() {
    let Some(ctrd) = setup() else { return };
    let key = format!("exec-kill-{}", std::process::id());
    // The container's init only sleeps: learned from short sleeps, the long one is benign.
    for n in 1..=LEARN_RUNS {
        let out = run(
            &ctrd,
            &format!("{key}-learn{n}"),
            &[("chaperone.io/profile", &key)],
            &[],
            "exec sleep 0.01",
        );
        expect_exit(&ctrd, &out, 0);
    }
    let s = summary(&ctrd, &key);
    assert!(
        s.containers == LEARN_RUNS as u64 && s.calibration > 0,
        "{s:?}"
    );

    let id = format!("{key}-attack");
    let _cleanup = Cleanup(&ctrd, id.clone());
    start_enforced(&ctrd, &key, "kill", &[], &id, "exec sleep 1000");
    wait_for("the task to run", Duration::from_secs(20), || {
        (ctrd.task_status(&id).as_deref() == Some("RUNNING")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));

    // The profile never saw a socket: the exec process is answered with kill.
    let out = ctrd
        .ctr(&[
            "tasks",
            "exec",
            "--exec-id",
            "probe",
            &id,
            "nc",
            "127.0.0.1",
            "9",
        ])
        .expect("ctr runs");
    // Killed (SIGKILL: 137), not failed: nc to a closed port exits 1 on its own.
    assert_eq!(out.status.code(), Some(137), "{}", ctrd.explain(text(&out)));
    wait_for("the whole task to stop", Duration::from_secs(20), || {
        (ctrd.task_status(&id).as_deref() == Some("STOPPED")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{}", ctrd.explain(e)));
    let alerts = alerts_of(&ctrd, &id);
    assert!(
        alerts
            .iter()
            .any(|a| a["output_fields"]["chaperone.action"] == "kill"),
        "{}",
        ctrd.explain(format!("a kill alert: {alerts:?}"))
    );
}
