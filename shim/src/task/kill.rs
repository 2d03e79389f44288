//! Kill: a signal to the init process (or, with `all`, to every process of the container), or
//! to an exec process.

use containerd_shim::api::{Empty, KillRequest, Status};
use runc::options::KillOpts;

use super::{not_found, TaskService};
use crate::error::{Result, ShimError};
use crate::runc::{failure, is_gone};
use crate::sys;

impl TaskService {
    pub(super) async fn kill_task(&self, req: KillRequest) -> Result<Empty> {
        let containers = self.containers.lock().await;
        let container = containers.get(&req.id).ok_or_else(|| not_found(&req.id))?;
        if !req.exec_id.is_empty() {
            // An exec process is signalled directly, as runc-v2 does.
            let process = container.process(&req.exec_id)?;
            if process.status() != Status::RUNNING && process.status() != Status::PAUSED {
                return Err(ShimError::ProcessFinished {
                    id: req.exec_id.clone(),
                });
            }
            let not_a_signal = || ShimError::InvalidRequest {
                reason: "not a signal number",
            };
            let signal = i32::try_from(req.signal).map_err(|_| not_a_signal())?;
            return match sys::send_signal(process.pid, signal) {
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
        let opts = KillOpts::new().all(req.all);
        match container.runc.kill(&req.id, req.signal, Some(&opts)).await {
            Ok(()) => Ok(Empty::new()),
            Err(e) if is_gone(&e) => Err(ShimError::ProcessFinished { id: req.id.clone() }),
            Err(e) => Err(failure(&container.bundle, "kill", &req.id, &e)),
        }
    }
}
