//! What the shim knows about its containers and their processes.

use std::collections::HashMap;
use std::path::PathBuf;

use cgroups_rs::fs::Cgroup;
use chaperone_config::Mode;
use containerd_shim::api::Status;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use runc::Runc;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::console::Console;
use crate::error::{Result, ShimError};
use crate::stdio::{HeldFifos, Logger};

/// How a process ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Exit {
    /// Exit code, or 128 + signal.
    pub status: u32,
    /// When the shim reaped it.
    pub at: Timestamp,
}

/// The stdio containerd gave a process (FIFO paths; empty when not connected).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stdio {
    /// stdin FIFO.
    pub stdin: String,
    /// stdout FIFO.
    pub stdout: String,
    /// stderr FIFO.
    pub stderr: String,
    /// Whether a terminal was asked for.
    pub terminal: bool,
}

/// A container's init process or an exec process.
#[derive(Debug)]
pub struct Process {
    /// The container id for init, the exec id otherwise.
    pub id: String,
    /// Its host pid (0 until created).
    pub pid: i32,
    /// Its stdio.
    pub stdio: Stdio,
    /// An exec process's OCI process spec, from Exec until Start.
    pub spec: Option<Box<oci_spec::runtime::Process>>,
    /// Its terminal, if it has one.
    pub console: Option<Console>,
    /// Fires when its terminal's or log file's output has drained, or its logging binary has
    /// exited; its exit waits for that.
    pub drained: Option<oneshot::Receiver<()>>,
    /// Its logging binary (a `binary://` stdout), ended when the process is deleted.
    pub logger: Option<Logger>,
    /// The shim's own ends of its FIFOs, closed when the process is deleted (stdin's at
    /// CloseIO).
    pub held_fifos: HeldFifos,
    /// The exit status of a process reaped while its output drains (see `drained`), held
    /// until its exit is told.
    pub reaped: Option<u32>,
    status: Status,
    exit: watch::Sender<Option<Exit>>,
}

impl Process {
    /// A process that has not been created yet.
    pub fn new(id: &str, stdio: Stdio) -> Self {
        Self {
            id: id.to_owned(),
            pid: 0,
            stdio,
            spec: None,
            console: None,
            drained: None,
            logger: None,
            held_fifos: HeldFifos::default(),
            reaped: None,
            status: Status::CREATED,
            exit: watch::channel(None).0,
        }
    }

    /// Its status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Fails with `FailedPrecondition` (request `op` on process `id`) unless its status is one
    /// of `allowed`.
    pub fn require(&self, allowed: &[Status], op: &'static str, id: &str) -> Result<()> {
        if allowed.contains(&self.status) {
            return Ok(());
        }
        Err(ShimError::FailedPrecondition {
            op,
            id: id.to_owned(),
            state: status_name(self.status),
        })
    }

    /// Marks it running, unless it already exited (a fast process can exit before `runc start`
    /// returns, and its exit must win).
    pub fn set_running(&mut self) {
        if self.status != Status::STOPPED {
            self.status = Status::RUNNING;
        }
    }

    /// Marks it paused (frozen), if it is running.
    pub fn set_paused(&mut self) {
        if self.status == Status::RUNNING {
            self.status = Status::PAUSED;
        }
    }

    /// Records its exit and wakes every waiter; a second exit is ignored.
    pub fn set_exited(&mut self, status: u32) -> Option<Exit> {
        if self.status == Status::STOPPED {
            return None;
        }
        self.status = Status::STOPPED;
        self.reaped = None;
        let exit = Exit {
            status,
            at: Timestamp::now(),
        };
        self.exit.send_replace(Some(exit.clone()));
        Some(exit)
    }

    /// Its exit, if it exited.
    pub fn exit(&self) -> Option<Exit> {
        self.exit.borrow().clone()
    }

    /// A receiver that sees the exit.
    pub fn exit_watch(&self) -> watch::Receiver<Option<Exit>> {
        self.exit.subscribe()
    }

    /// Its pid as containerd's messages carry it.
    pub fn pid_u32(&self) -> u32 {
        u32::try_from(self.pid).unwrap_or_default()
    }
}

/// The name of a status for messages.
pub fn status_name(status: Status) -> &'static str {
    match status {
        Status::UNKNOWN => "unknown",
        Status::CREATED => "created",
        Status::RUNNING => "running",
        Status::STOPPED => "stopped",
        Status::PAUSED => "paused",
        Status::PAUSING => "pausing",
    }
}

/// One container (task) of this shim.
#[derive(Debug)]
pub struct Container {
    /// The container id.
    pub id: String,
    /// Its bundle directory.
    pub bundle: PathBuf,
    /// The runc client for it.
    pub runc: Runc,
    /// Its chaperone mode.
    pub mode: Mode,
    /// Whether it shares the pid namespace of another process (then the shim kills what is
    /// left when init exits, as runc-v2 does).
    pub shared_pid_ns: bool,
    /// The rootfs the shim mounted (to unmount on delete), if any.
    pub mounted_rootfs: Option<PathBuf>,
    /// Its init process.
    pub init: Process,
    /// Its exec processes by exec id.
    pub execs: HashMap<String, Process>,
    /// Its cgroup, found when it was created (`None` if it could not be).
    pub cgroup: Option<Cgroup>,
    /// The task publishing its OOM events, aborted on Delete.
    pub oom_watch: Option<JoinHandle<()>>,
}

impl Container {
    /// The init process for an empty exec id, else the exec process.
    pub fn process(&self, exec_id: &str) -> Result<&Process> {
        if exec_id.is_empty() {
            return Ok(&self.init);
        }
        self.execs
            .get(exec_id)
            .ok_or_else(|| ShimError::ProcessNotFound {
                id: self.id.clone(),
                exec_id: exec_id.to_owned(),
            })
    }

    /// [`Container::process`], mutable.
    pub fn process_mut(&mut self, exec_id: &str) -> Result<&mut Process> {
        if exec_id.is_empty() {
            return Ok(&mut self.init);
        }
        let id = &self.id;
        self.execs
            .get_mut(exec_id)
            .ok_or_else(|| ShimError::ProcessNotFound {
                id: id.clone(),
                exec_id: exec_id.to_owned(),
            })
    }

    /// Whether an exec process it started is still running (not reaped yet).
    pub fn has_live_execs(&self) -> bool {
        self.execs.values().any(|p| {
            p.pid > 0
                && p.reaped.is_none()
                && matches!(p.status(), Status::RUNNING | Status::PAUSED)
        })
    }

    /// The process with this host pid that has not exited yet (nor been reaped: one whose exit
    /// is held while its output drains has left its pid to whatever is given it next).
    pub fn live_process_mut(&mut self, pid: i32) -> Option<&mut Process> {
        if pid <= 0 {
            return None;
        }
        std::iter::once(&mut self.init)
            .chain(self.execs.values_mut())
            .find(|p| p.pid == pid && p.status() != Status::STOPPED && p.reaped.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_wakes_waiters_once_and_wins_over_a_late_start() {
        let mut p = Process::new("c", Stdio::default());
        let mut rx = p.exit_watch();
        assert!(p.exit().is_none());
        assert_eq!(p.set_exited(3).map(|e| e.status), Some(3));
        assert!(p.set_exited(9).is_none());
        p.set_running();
        assert_eq!(p.status(), Status::STOPPED);
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().as_ref().map(|e| e.status), Some(3));
    }
}
