//! Running runc: a [`Spawner`] that learns its exit from the shim's reaper, and the runc client
//! configured from containerd's runc `Options`.
//!
//! The shim is a subreaper and its SIGCHLD handler reaps every child with `waitpid(-1)` (the
//! container's init is re-parented to it), so a runc command cannot be waited for with
//! `Child::wait`: the spawner subscribes to the reaper's exit events before spawning and waits
//! for its own pid there.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim::api::Options;
use containerd_shim::monitor::{monitor_subscribe, monitor_unsubscribe, Subject, Topic};
use runc::{Command, Runc, Spawner};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{Result, ShimError};

/// runc's state root when the options name none (containerd's runc-v2 default).
pub const DEFAULT_RUNC_ROOT: &str = "/run/containerd/runc";
/// The runc binary when the options name none (looked up on `PATH`).
pub const DEFAULT_RUNC: &str = "runc";
/// runc's JSON log in the bundle; its last error explains a failed command.
pub const LOG_FILE: &str = "log.json";
/// Where `runc create` writes the container's init pid, in the bundle.
pub const INIT_PID_FILE: &str = "init.pid";

/// Spawns runc and waits for the exit the shim's reaper reports.
#[derive(Debug, Default)]
pub struct ReaperSpawner;

#[async_trait]
impl Spawner for ReaperSpawner {
    async fn execute(&self, mut cmd: Command) -> runc::Result<(ExitStatus, u32, String, String)> {
        let mut exits = monitor_subscribe(Topic::Pid)
            .await
            .map_err(|e| runc::error::Error::Other(Box::new(e)))?;
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                let _ = monitor_unsubscribe(exits.id).await;
                return Err(runc::error::Error::ProcessSpawnFailed(e));
            }
        };
        let pid = child.id().unwrap_or_default();
        let wanted = i32::try_from(pid).unwrap_or_default();
        let wait = async {
            while let Some(exit) = exits.rx.recv().await {
                if matches!(exit.subject, Subject::Pid(p) if p == wanted) {
                    return exit.exit_code;
                }
            }
            // The reaper is gone: nothing will report the exit.
            -1
        };
        let (stdout, stderr, code) = tokio::join!(
            read_all(child.stdout.take()),
            read_all(child.stderr.take()),
            wait
        );
        let _ = monitor_unsubscribe(exits.id).await;
        // The reaper reports exit codes, and 128 + n for a signal n.
        let status = if (0..=255).contains(&code) {
            ExitStatus::from_raw(code << 8)
        } else {
            ExitStatus::from_raw(0x7f00)
        };
        Ok((status, pid, stdout, stderr))
    }
}

async fn read_all(stream: Option<impl AsyncRead + Unpin>) -> String {
    let mut out = Vec::new();
    if let Some(mut s) = stream {
        let _ = s.read_to_end(&mut out).await;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where runc runs from and keeps state, from containerd's runc `Options`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuncConfig {
    /// The runc binary.
    pub binary: PathBuf,
    /// runc's `--root` (the namespace is appended).
    pub root: PathBuf,
    /// runc's `--systemd-cgroup`.
    pub systemd_cgroup: bool,
}

impl RuncConfig {
    /// The configuration `options` ask for in `namespace`, defaults where they are empty.
    pub fn new(options: &Options, namespace: &str) -> Self {
        let binary = if options.binary_name.is_empty() {
            DEFAULT_RUNC
        } else {
            options.binary_name.as_str()
        };
        let root = if options.root.is_empty() {
            DEFAULT_RUNC_ROOT
        } else {
            options.root.as_str()
        };
        Self {
            binary: binary.into(),
            root: Path::new(root).join(namespace),
            systemd_cgroup: options.systemd_cgroup,
        }
    }

    /// A runc client logging as JSON into `bundle`.
    pub fn client(&self, bundle: &Path) -> Result<Runc> {
        let mut opts = runc::options::GlobalOpts::default()
            .command(&self.binary)
            .root(&self.root)
            .log(bundle.join(LOG_FILE))
            .log_json()
            .systemd_cgroup(self.systemd_cgroup);
        opts.custom_spawner(Arc::new(ReaperSpawner));
        opts.build().map_err(|e| ShimError::Runc {
            op: "setup",
            id: bundle.display().to_string(),
            detail: format!("{e} ({})", self.binary.display()),
        })
    }
}

/// The error of a failed runc command: runc's last logged error if there is one, else what the
/// command printed.
pub fn failure(bundle: &Path, op: &'static str, id: &str, error: &runc::error::Error) -> ShimError {
    let logged = std::fs::read_to_string(bundle.join(LOG_FILE))
        .ok()
        .and_then(|log| last_logged_error(&log));
    ShimError::Runc {
        op,
        id: id.to_owned(),
        detail: logged.unwrap_or_else(|| error.to_string().trim().to_owned()),
    }
}

/// The message of the last `"level":"error"` line of a runc JSON log.
fn last_logged_error(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["level"] == "error")
        .find_map(|v| v["msg"].as_str().map(|m| m.trim().to_owned()))
}

/// Whether a failed kill or delete says the container or process is already gone.
pub fn is_gone(error: &runc::error::Error) -> bool {
    let text = error.to_string().to_lowercase();
    [
        "not running",
        "already finished",
        "no such process",
        "does not exist",
        "not exist",
    ]
    .iter()
    .any(|s| text.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_choose_binary_and_root_per_namespace() {
        let c = RuncConfig::new(&Options::default(), "default");
        assert_eq!(c.binary, PathBuf::from("runc"));
        assert_eq!(c.root, PathBuf::from("/run/containerd/runc/default"));
        let o = Options {
            binary_name: "/opt/runc".into(),
            root: "/tmp/r".into(),
            ..Default::default()
        };
        let c = RuncConfig::new(&o, "k8s.io");
        assert_eq!(c.binary, PathBuf::from("/opt/runc"));
        assert_eq!(c.root, PathBuf::from("/tmp/r/k8s.io"));
    }

    #[test]
    fn the_last_logged_error_explains_a_failure() {
        let log = concat!(
            r#"{"level":"warning","msg":"w","time":"t"}"#,
            "\n",
            r#"{"level":"error","msg":"first","time":"t"}"#,
            "\nnot json\n",
            r#"{"level":"error","msg":"exec: \"nope\": not found ","time":"t"}"#,
            "\n"
        );
        assert_eq!(
            last_logged_error(log).as_deref(),
            Some("exec: \"nope\": not found")
        );
        assert_eq!(last_logged_error(""), None);
    }
}
