//! Kill: a signal to the init process (or, with `all`, to every process of the container), or
//! to an exec process.

use containerd_shim::api::{Empty, KillRequest, Status};
use runc::options::KillOpts;

use super::{not_found, TaskService};
use crate::error::{Result, ShimError};
use crate::runc::{failure, is_gone};
use crate::sys;

const SIGKILL: u32 = 9;

impl TaskService {
    pub(super) async fn kill_task(&self, req: KillRequest) -> Result<Empty> {
        let containers = self.containers.lock().await;
        let container = containers.get(&req.id).ok_or_else(|| not_found(&req.id))?;
        if !req.exec_id.is_empty() {
            // An exec process is signalled directly, as runc-v2 does.
            let process = container.process(&req.exec_id)?;
            // Not started yet: a precondition, as runc-v2 answers ("process not created"),
            // not a process that finished.
            process.require(
                &[Status::RUNNING, Status::PAUSED, Status::STOPPED],
                "kill",
                &req.exec_id,
            )?;
            if process.status() == Status::STOPPED || process.reaped.is_some() {
                return Err(ShimError::ProcessFinished {
                    id: req.exec_id.clone(),
                });
            }
            return match sys::send_signal(process.pid, signal_number(req.signal)?) {
                Ok(()) => Ok(Empty::new()),
                Err(nix::errno::Errno::ESRCH) => Err(ShimError::ProcessFinished {
                    id: req.exec_id.clone(),
                }),
                Err(nix::errno::Errno::EINVAL) => Err(not_a_signal()),
                Err(e) => Err(ShimError::Sys {
                    op: "signal the exec process",
                    source: e,
                }),
            };
        }
        if container.init.status() == Status::STOPPED && !req.all {
            return Err(ShimError::ProcessFinished { id: req.id.clone() });
        }
        // runc's `kill --all` freezes the cgroup, signals every process and thaws it: a paused
        // container (containerd's Pause, or chaperone's pause verdict holding a deviation)
        // would run on while its task says paused, and could no longer be paused or resumed.
        // Its processes are signalled where they are instead, and get the signal when resumed.
        // SIGKILL still goes through runc, which thaws them so that they die.
        if req.all && container.init.status() == Status::PAUSED && req.signal != SIGKILL {
            let pids = container
                .runc
                .ps(&req.id)
                .await
                .map_err(|e| failure(&container.bundle, "ps", &req.id, &e))?;
            let signal = signal_number(req.signal)?;
            // Frozen, a process cannot exit, so its pid is not reused meanwhile.
            for pid in pids.into_iter().filter_map(|p| i32::try_from(p).ok()) {
                match sys::send_signal(pid, signal) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                    Err(nix::errno::Errno::EINVAL) => return Err(not_a_signal()),
                    Err(e) => {
                        return Err(ShimError::Sys {
                            op: "signal a process of the paused container",
                            source: e,
                        })
                    }
                }
            }
            return Ok(Empty::new());
        }
        let opts = KillOpts::new().all(req.all);
        match container.runc.kill(&req.id, req.signal, Some(&opts)).await {
            Ok(()) => Ok(Empty::new()),
            Err(e) if is_gone(&e) => Err(ShimError::ProcessFinished { id: req.id.clone() }),
            Err(e) => Err(failure(&container.bundle, "kill", &req.id, &e)),
        }
    }
}

fn not_a_signal() -> ShimError {
    ShimError::InvalidRequest {
        reason: "not a signal number",
    }
}

fn signal_number(signal: u32) -> Result<i32> {
    i32::try_from(signal).map_err(|_| not_a_signal())
}
