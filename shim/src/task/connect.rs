//! Connect: the shim's pid and the task's pid.

use containerd_shim::api::{ConnectRequest, ConnectResponse};

use super::TaskService;
use crate::error::Result;

impl TaskService {
    pub(super) async fn connect_task(&self, req: ConnectRequest) -> Result<ConnectResponse> {
        let containers = self.containers.lock().await;
        let task_pid = containers.get(&req.id).map_or(0, |c| c.init.pid_u32());
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            ..Default::default()
        })
    }
}
