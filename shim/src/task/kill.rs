//! Kill: a signal to the init process (or, with `all`, to every process of the container).

use containerd_shim::api::{Empty, KillRequest, Status};
use runc::options::KillOpts;

use super::{not_found, TaskService};
use crate::error::{Result, ShimError};
use crate::runc::{failure, is_gone};

impl TaskService {
    pub(super) async fn kill_task(&self, req: KillRequest) -> Result<Empty> {
        if !req.exec_id.is_empty() {
            return Err(ShimError::Unimplemented { what: "exec" });
        }
        let containers = self.containers.lock().await;
        let container = containers.get(&req.id).ok_or_else(|| not_found(&req.id))?;
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
