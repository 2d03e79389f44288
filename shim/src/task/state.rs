//! State: a process's status, pid, stdio and exit.

use containerd_shim::api::{StateRequest, StateResponse, Status};

use super::{not_found, TaskService};
use crate::error::Result;

impl TaskService {
    pub(super) async fn task_state(&self, req: StateRequest) -> Result<StateResponse> {
        let containers = self.containers.lock().await;
        let container = containers.get(&req.id).ok_or_else(|| not_found(&req.id))?;
        let process = container.process(&req.exec_id)?;
        let exit = process.exit();
        // An exec process of a frozen container is paused too (runc-v2 reports the
        // container's state for its running execs).
        let status = match (process.status(), container.init.status()) {
            (Status::RUNNING, paused @ (Status::PAUSED | Status::PAUSING))
                if !req.exec_id.is_empty() =>
            {
                paused
            }
            (status, _) => status,
        };
        Ok(StateResponse {
            id: process.id.clone(),
            bundle: container.bundle.display().to_string(),
            pid: process.pid_u32(),
            status: status.into(),
            stdin: process.stdio.stdin.clone(),
            stdout: process.stdio.stdout.clone(),
            stderr: process.stdio.stderr.clone(),
            terminal: process.stdio.terminal,
            exit_status: exit.as_ref().map_or(0, |e| e.status),
            exited_at: exit.map(|e| e.at).into(),
            exec_id: req.exec_id,
            ..Default::default()
        })
    }
}
