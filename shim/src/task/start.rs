//! Start: `runc start` of the init process (exec processes: `exec.rs`).

use containerd_shim::api::{StartRequest, StartResponse, Status};
use containerd_shim::protos::events::task::TaskStart;
use tracing::info;

use super::{init_ready, TaskService};
use crate::error::Result;
use crate::runc::failure;

impl TaskService {
    pub(super) async fn start_task(&self, req: StartRequest) -> Result<StartResponse> {
        if !req.exec_id.is_empty() {
            let pid = self.start_exec(&req.id, &req.exec_id).await?;
            return Ok(StartResponse {
                pid,
                ..Default::default()
            });
        }
        // The lock is held across `runc start` so that the exit reaper, which takes it too,
        // publishes a fast container's TaskExit after its TaskStart.
        let mut containers = self.containers.lock().await;
        let container = init_ready(&mut containers, &req.id, &[Status::CREATED], "start")?;
        container
            .runc
            .start(&req.id)
            .await
            .map_err(|e| failure(&container.bundle, "start", &req.id, &e))?;
        container.init.set_running();
        let pid = container.init.pid_u32();
        info!(container = %req.id, pid, "container started");
        self.publish(TaskStart {
            container_id: req.id.clone(),
            pid,
            ..Default::default()
        })
        .await;
        drop(containers);
        Ok(StartResponse {
            pid,
            ..Default::default()
        })
    }
}
