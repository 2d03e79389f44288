//! Alerts and responses: what the shim does when a container's supervisor flags a syscall.
//!
//! An alert is one JSON object per line in the alert log, in Falco's output format (`time`,
//! `rule`, `priority`, `output`, `output_fields`, plus `source`, `tags` and `hostname`), so that
//! Falcosidekick and what sits behind it take chaperone's alerts unchanged. Its priority ranks
//! it: the sensitivity of the syscalls involved (seccomp-gen's risk table) and whether the call
//! was never seen at all. Its explanation lists the least likely transitions of the window.
//! With `alerts_webhook` set, each alert written is also POSTed there (`webhook`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chaperone_config::{rfc3339, Action, Mode};
use chaperone_profiler::model::NgramScorer;
use chaperone_profiler::pidfd;
use chaperone_profiler::supervisor::{
    explain, kill_pid, ActionError, Deviation, RateLimit, Responder, Verdict,
};
use chaperone_profiler::syscalls::{name_of, Sym};
use chaperone_seccomp_gen::risk::{risk_of, Risk};
use serde_json::{json, Value};
use tracing::warn;

use crate::error::chain;
use crate::learn::Pauser;
use crate::plan::Plan;

/// The rule name of a syscall never seen while learning.
pub const RULE_NOVEL: &str = "chaperone: syscall never seen while learning";
/// The rule name of an improbable sequence of known syscalls.
pub const RULE_SEQUENCE: &str = "chaperone: unusual syscall sequence";
/// Transitions an alert's explanation lists.
const EXPLAIN_TOP: usize = 3;
/// How long the supervisor waits for the task service to freeze a container.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Alerts per container per second at most; the rest are counted in the next one.
const ALERT_INTERVAL: Duration = Duration::from_secs(1);

/// The verdict for a deviation in `mode` with `action`.
pub fn verdict(mode: Mode, action: Action) -> Verdict {
    match (mode, action) {
        (Mode::Enforce, Action::Deny) => Verdict::Deny {
            errno: nix::libc::EPERM,
        },
        (Mode::Enforce, Action::Pause) => Verdict::PauseContainer,
        (Mode::Enforce, Action::Kill) => Verdict::KillContainer,
        _ => Verdict::Continue,
    }
}

/// The name of a syscall for people.
fn display(sym: Option<Sym>, nr: i32) -> String {
    sym.and_then(name_of)
        .map_or_else(|| format!("syscall_{nr}"), str::to_owned)
}

/// The Falco priority of a deviation: critical for high-risk syscalls, error for medium ones,
/// warning for another never-seen call, notice for an unusual order of known calls.
pub fn priority(d: &Deviation) -> &'static str {
    let risk = d.sym.and_then(name_of).map_or(Risk::Low, risk_of);
    match (risk, d.novel) {
        (Risk::High, _) => "Critical",
        (Risk::Medium, _) => "Error",
        (Risk::Low, true) => "Warning",
        (Risk::Low, false) => "Notice",
    }
}

/// One alert, as a Falco output object.
#[allow(clippy::too_many_arguments)]
pub fn alert_json(
    plan: &Plan,
    pid: u32,
    d: &Deviation,
    verdict: Verdict,
    scorer: Option<&NgramScorer>,
    suppressed: u64,
    now: SystemTime,
) -> Value {
    let syscall = display(d.sym, d.nr);
    let window: Vec<String> = d
        .recent
        .to_vec()
        .into_iter()
        .map(|s| display(Some(s), -1))
        .collect();
    let explanation: Vec<Value> = scorer
        .map(|scorer| explain(scorer, &d.recent.to_vec(), EXPLAIN_TOP))
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            json!({
                "from": t.from.map(|s| display(Some(s), -1)),
                "to": display(Some(t.to), -1),
                "probability": t.probability,
                "never_seen": t.novel,
            })
        })
        .collect();
    let rule = if d.novel { RULE_NOVEL } else { RULE_SEQUENCE };
    let priority = priority(d);
    let action = action_name(verdict);
    let time = rfc3339(now);
    let alert_id = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&time, &plan.id, d.tid, d.nr).hash(&mut h);
        format!("{:016x}", h.finish())
    };
    let pod = plan.workload.as_ref().map_or_else(String::new, |w| {
        format!(
            " k8s.ns={} k8s.pod={} container.name={}",
            w.namespace, w.pod, w.container
        )
    });
    let output = format!(
        "{clock}: {priority} {rule} (syscall={syscall} container={id}{pod} profile={key} \
         pid={pid} tid={tid} score={score:.2} threshold={threshold:.2} mode={mode} \
         action={action})",
        clock = &time[11..time.len().min(29)],
        id = plan.id,
        key = plan.key,
        tid = d.tid,
        score = d.score,
        threshold = d.threshold,
        mode = plan.mode,
    );
    let mut alert = json!({
        "time": time,
        "rule": rule,
        "priority": priority,
        "source": "syscall",
        "tags": ["chaperone", "anomaly", "syscall"],
        "hostname": hostname(),
        "output": output,
        "output_fields": {
            "chaperone.alert_id": alert_id,
            "container.id": plan.id,
            "container.image.repository": plan.image.as_deref().unwrap_or(&plan.key),
            "proc.pid": pid,
            "thread.tid": d.tid,
            "evt.type": syscall,
            "syscall.nr": d.nr,
            "chaperone.profile": plan.key,
            "chaperone.mode": plan.mode.as_str(),
            "chaperone.action": action,
            "chaperone.novel": d.novel,
            "chaperone.score": d.score,
            "chaperone.threshold": d.threshold,
            "chaperone.window": window,
            "chaperone.explanation": explanation,
            "chaperone.suppressed": suppressed,
        }
    });
    // Falco's Kubernetes fields, when CRI named the pod.
    if let (Some(w), Some(fields)) = (&plan.workload, alert["output_fields"].as_object_mut()) {
        fields.insert("k8s.ns.name".into(), w.namespace.clone().into());
        fields.insert("k8s.pod.name".into(), w.pod.clone().into());
        fields.insert("container.name".into(), w.container.clone().into());
    }
    alert
}

fn action_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Continue => "alert",
        Verdict::Deny { .. } => "deny",
        Verdict::KillProcess => "kill-process",
        Verdict::PauseContainer => "pause",
        Verdict::KillContainer => "kill",
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// Appends alerts to the alert log, one line each.
#[derive(Debug, Clone)]
pub struct AlertLog {
    path: PathBuf,
}

impl AlertLog {
    /// The log at `path` (created with its directory on the first alert).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
        }
    }

    /// Appends one alert as one line (one `write`, so lines of concurrent shims do not mix).
    pub fn append(&self, alert: &Value) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut line = serde_json::to_vec(alert)?;
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&self.path)?;
        file.write_all(&line)
    }
}

/// The shim's [`Responder`] for one container: writes alerts and takes the actions.
#[derive(Debug)]
pub struct ShimResponder {
    plan: Arc<Plan>,
    pauser: Option<Pauser>,
    /// The traced process (the container's init, or an exec process): an alert's `proc.pid`
    /// when the deviating thread is already gone.
    pid: u32,
    /// The container's init, which "kill container" kills.
    init: u32,
    scorer: Option<Arc<NgramScorer>>,
    /// Set once any supervisor of the container has killed it (see [`Self::sharing_kill`]).
    killed: Arc<AtomicBool>,
    log: AlertLog,
    limit: RateLimit,
    /// Deviations seen.
    pub deviations: u64,
}

impl ShimResponder {
    /// A responder for process `pid` of the container of `plan` whose init is `init` (the
    /// same pid unless `pid` is an exec process); `pauser` pauses it.
    pub fn new(
        plan: Arc<Plan>,
        pauser: Option<Pauser>,
        pid: u32,
        init: u32,
        scorer: Option<Arc<NgramScorer>>,
    ) -> Self {
        let log = AlertLog::new(plan.alerts_path());
        Self {
            plan,
            pauser,
            pid,
            init,
            scorer,
            killed: Arc::default(),
            log,
            limit: RateLimit::new(ALERT_INTERVAL),
            deviations: 0,
        }
    }

    /// Shares `killed` with the container's other supervisors: a kill by any of them makes
    /// the others deny what they receive unscored (before 2026-12-07 an exec process's kill
    /// left the init's supervisor scoring and letting through until the pid namespace died).
    #[must_use]
    pub fn sharing_kill(mut self, killed: Arc<AtomicBool>) -> Self {
        self.killed = killed;
        self
    }
}

impl Responder for ShimResponder {
    fn on_deviation(&mut self, d: &Deviation) -> Verdict {
        self.deviations += 1;
        let verdict = verdict(self.plan.mode, self.plan.action);
        // Alert-only floods are rate-limited (the next alert counts what was held back); an
        // alert whose verdict acts on the container is always written, and does not count as
        // held back (until 2026-12-07 it did: the first after a second said it had suppressed
        // alerts that had all been written).
        let allowed = match verdict {
            Verdict::Continue => self.limit.check(),
            _ => Some(0),
        };
        if let Some(suppressed) = allowed {
            // Falco's `proc.pid` is the process that made the call: the deviating thread's
            // (until 2026-12-07 it was always the traced process, a forked child's parent).
            let pid = pidfd::thread_group(d.tid)
                .ok()
                .flatten()
                .unwrap_or(self.pid);
            let alert = alert_json(
                &self.plan,
                pid,
                d,
                verdict,
                self.scorer.as_deref(),
                suppressed,
                SystemTime::now(),
            );
            if let Err(e) = self.log.append(&alert) {
                warn!(path = %self.log.path.display(), error = chain(&e), "cannot write an alert");
            }
            if let Some(url) = &self.plan.config.alerts_webhook {
                crate::webhook::post(url, &alert);
            }
            warn!(container = %self.plan.id, alert = %alert["output"].as_str().unwrap_or_default(), "deviation");
        }
        verdict
    }

    fn pause_container(&mut self, _d: &Deviation) -> Result<(), ActionError> {
        const ACTION: &str = "pause container";
        let Some(pauser) = &self.pauser else {
            return Err(ActionError::Unsupported { action: ACTION });
        };
        let (reply, answer) = std::sync::mpsc::channel();
        let failed = |e: String| ActionError::Failed {
            action: ACTION,
            source: e.into(),
        };
        pauser
            .send((self.plan.id.clone(), reply))
            .map_err(|_| failed("the shim's task service is gone".into()))?;
        match answer.recv_timeout(PAUSE_TIMEOUT) {
            Ok(result) => result.map_err(failed),
            Err(_) => Err(failed("no answer from the task service".into())),
        }
    }

    fn kill_container(&mut self, _d: &Deviation) -> Result<(), ActionError> {
        // The container's init is the first process of its pid namespace: killing it makes the
        // kernel kill every other process of the namespace, an exec process's too. A container
        // in its pod's pid namespace has no namespace of its own: the rest of it is killed when
        // the shim reaps init (`runc kill --all`, task/exits.rs).
        kill_pid(self.init)
            .map(|_| self.killed.store(true, Ordering::Relaxed))
            .map_err(|e| ActionError::Failed {
                action: "kill container",
                source: Box::new(e),
            })
    }

    fn container_killed(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaperone_config::Config;
    use chaperone_profiler::store::Workload;
    use chaperone_profiler::supervisor::Recent;
    use chaperone_profiler::syscalls::sym_of;
    use std::time::UNIX_EPOCH;

    fn deviation(name: &str, novel: bool) -> Deviation {
        let mut recent = Recent::default();
        for n in ["read", "write", name] {
            recent.push(sym_of(n).unwrap());
        }
        Deviation {
            tid: 12,
            arch: None,
            nr: 42,
            sym: sym_of(name),
            args: [0; 6],
            novel,
            score: 3.5,
            threshold: 1.25,
            recent,
        }
    }

    #[test]
    fn a_kill_by_one_supervisor_is_seen_by_the_container_s_others() {
        let tmp = tempfile::tempdir().unwrap();
        let config = Arc::new(Config {
            alerts_path: tmp.path().join("alerts.jsonl"),
            ..Config::default()
        });
        let plan = Arc::new(Plan {
            action: Action::Kill,
            ..Plan::fixed("c1", "web", Mode::Enforce, config)
        });
        // The container's init: a process of this test's own, waiting on its stdin.
        let mut init = std::process::Command::new("cat")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = init.id();
        let killed = Arc::new(AtomicBool::new(false));
        let mut exec = ShimResponder::new(Arc::clone(&plan), None, pid + 1, pid, None)
            .sharing_kill(Arc::clone(&killed));
        let of_init =
            ShimResponder::new(plan, None, pid, pid, None).sharing_kill(Arc::clone(&killed));
        assert!(!of_init.container_killed());
        exec.kill_container(&deviation("connect", true)).unwrap();
        assert!(exec.container_killed() && of_init.container_killed());
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(init.wait().unwrap().signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn verdicts_follow_mode_and_action() {
        assert_eq!(verdict(Mode::Monitor, Action::Kill), Verdict::Continue);
        assert_eq!(verdict(Mode::Enforce, Action::Alert), Verdict::Continue);
        assert_eq!(
            verdict(Mode::Enforce, Action::Deny),
            Verdict::Deny {
                errno: nix::libc::EPERM
            }
        );
        assert_eq!(
            verdict(Mode::Enforce, Action::Pause),
            Verdict::PauseContainer
        );
        assert_eq!(verdict(Mode::Enforce, Action::Kill), Verdict::KillContainer);
    }

    #[test]
    fn priorities_rank_risk_then_novelty() {
        assert_eq!(priority(&deviation("execve", false)), "Critical");
        assert_eq!(priority(&deviation("connect", true)), "Error");
        assert_eq!(priority(&deviation("getcwd", true)), "Warning");
        assert_eq!(priority(&deviation("getcwd", false)), "Notice");
    }

    #[test]
    fn a_flood_of_alerts_is_limited_unless_the_verdict_acts() {
        let tmp = tempfile::tempdir().unwrap();
        let config = Arc::new(Config {
            alerts_path: tmp.path().join("alerts.jsonl"),
            ..Config::default()
        });
        let lines = || -> Vec<Value> {
            std::fs::read_to_string(&config.alerts_path)
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        let responder = |mode, action| {
            let plan = Plan {
                mode,
                action,
                ..Plan::fixed("c1", "web", mode, Arc::clone(&config))
            };
            ShimResponder::new(Arc::new(plan), None, 7, 7, None)
        };
        let d = deviation("connect", true);

        // Monitor: the first alert is written, the rest of the interval's are counted, and
        // the first alert after the interval carries that count.
        let mut monitor = responder(Mode::Monitor, Action::Alert);
        monitor.limit = RateLimit::new(Duration::from_millis(50));
        assert_eq!(monitor.on_deviation(&d), Verdict::Continue);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut calls = 1_u64;
        while lines().len() < 2 {
            assert!(std::time::Instant::now() < deadline, "no second alert");
            assert_eq!(monitor.on_deviation(&d), Verdict::Continue);
            calls += 1;
        }
        let written = lines();
        assert_eq!(written.len(), 2);
        assert_eq!(written[0]["output_fields"]["chaperone.suppressed"], 0);
        assert_eq!(
            written[1]["output_fields"]["chaperone.suppressed"],
            calls - 2,
            "every call between the two written alerts was counted"
        );
        assert_eq!(monitor.deviations, calls);

        // Enforce with an acting verdict: every alert is written, within one interval too,
        // and none counts as suppressed, after the interval either.
        let mut enforce = responder(Mode::Enforce, Action::Kill);
        enforce.limit = RateLimit::new(Duration::from_millis(50));
        for _ in 0..5 {
            assert_eq!(enforce.on_deviation(&d), Verdict::KillContainer);
        }
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(enforce.on_deviation(&d), Verdict::KillContainer);
        let written = lines();
        assert_eq!(written.len(), 2 + 6);
        assert!(written[2..]
            .iter()
            .all(|a| a["output_fields"]["chaperone.action"] == "kill"
                && a["output_fields"]["chaperone.suppressed"] == 0));
    }

    #[test]
    fn alerts_are_falco_output_lines() {
        let mut config = Config::default();
        let tmp = tempfile::tempdir().unwrap();
        config.alerts_path = tmp.path().join("log/alerts.jsonl");
        let plan = Plan {
            mode: Mode::Enforce,
            action: Action::Kill,
            ..Plan::fixed("c1", "web", Mode::Enforce, Arc::new(config))
        };
        let at = UNIX_EPOCH + Duration::new(1_764_000_000, 5);
        let alert = alert_json(
            &plan,
            7,
            &deviation("connect", true),
            Verdict::KillContainer,
            None,
            2,
            at,
        );
        assert_eq!(alert["time"], "2025-11-24T16:00:00.000000005Z");
        assert_eq!(alert["rule"], RULE_NOVEL);
        assert_eq!(alert["priority"], "Error");
        let fields = &alert["output_fields"];
        assert_eq!(fields["container.id"], "c1");
        assert_eq!(fields["evt.type"], "connect");
        assert_eq!(fields["chaperone.action"], "kill");
        assert_eq!(
            fields["chaperone.window"],
            json!(["read", "write", "connect"])
        );
        assert_eq!(fields["chaperone.suppressed"], 2);
        assert_eq!(fields["chaperone.alert_id"].as_str().unwrap().len(), 16);
        let output = alert["output"].as_str().unwrap();
        assert!(output.starts_with("16:00:00.000000005: Error"), "{output}");
        assert!(output.contains("syscall=connect container=c1"), "{output}");

        let log = AlertLog::new(plan.alerts_path());
        log.append(&alert).unwrap();
        log.append(&alert).unwrap();
        let text = std::fs::read_to_string(plan.alerts_path()).unwrap();
        assert_eq!(text.lines().count(), 2);
        let back: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(back, alert);
        assert!(
            fields.get("k8s.pod.name").is_none(),
            "no pod, no pod fields"
        );
    }

    #[test]
    fn alerts_name_the_pod_when_cri_does() {
        let plan = Plan {
            workload: Some(Workload {
                namespace: "shop".into(),
                pod: "web-7d4b9".into(),
                container: "nginx".into(),
            }),
            ..Plan::fixed("c1", "web", Mode::Monitor, Arc::new(Config::default()))
        };
        let d = deviation("execve", false);
        let alert = alert_json(&plan, 7, &d, Verdict::Continue, None, 0, UNIX_EPOCH);
        let fields = &alert["output_fields"];
        assert_eq!(fields["k8s.ns.name"], "shop");
        assert_eq!(fields["k8s.pod.name"], "web-7d4b9");
        assert_eq!(fields["container.name"], "nginx");
        let output = alert["output"].as_str().unwrap();
        assert!(
            output.contains("container=c1 k8s.ns=shop k8s.pod=web-7d4b9 container.name=nginx"),
            "{output}"
        );
    }
}
