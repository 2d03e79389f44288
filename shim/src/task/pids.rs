//! Pids: the container's processes (`runc ps`).

use containerd_shim::api::{PidsRequest, PidsResponse};
use containerd_shim::protos::api::ProcessInfo;

use super::{not_found, TaskService};
use crate::error::Result;
use crate::runc::failure;

impl TaskService {
    pub(super) async fn task_pids(&self, req: PidsRequest) -> Result<PidsResponse> {
        let containers = self.containers.lock().await;
        let container = containers.get(&req.id).ok_or_else(|| not_found(&req.id))?;
        let pids = container
            .runc
            .ps(&req.id)
            .await
            .map_err(|e| failure(&container.bundle, "ps", &req.id, &e))?;
        let processes = pids
            .into_iter()
            .map(|pid| ProcessInfo {
                pid: u32::try_from(pid).unwrap_or_default(),
                ..Default::default()
            })
            .collect();
        Ok(PidsResponse {
            processes,
            ..Default::default()
        })
    }
}
