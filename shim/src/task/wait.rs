//! Wait: blocks until the process exits (without holding the containers' lock).

use containerd_shim::api::{WaitRequest, WaitResponse};

use super::{not_found, TaskService};
use crate::error::{Result, ShimError};

impl TaskService {
    pub(super) async fn wait_task(&self, req: WaitRequest) -> Result<WaitResponse> {
        let mut exit = {
            let containers = self.containers.lock().await;
            let container = containers.get(&req.id).ok_or_else(|| not_found(&req.id))?;
            container.process(&req.exec_id)?.exit_watch()
        };
        let exit = exit
            .wait_for(Option::is_some)
            .await
            .map_err(|_| ShimError::NotFound { id: req.id.clone() })?
            .clone()
            .ok_or_else(|| not_found(&req.id))?;
        Ok(WaitResponse {
            exit_status: exit.status,
            exited_at: Some(exit.at).into(),
            ..Default::default()
        })
    }
}
