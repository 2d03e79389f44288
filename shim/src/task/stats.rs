//! Stats: the container's cgroup metrics (v1 or v2, as the host has), which `ctr task
//! metrics`, the kubelet's `/stats/summary` and cAdvisor read through containerd.

use containerd_shim::api::{StatsRequest, StatsResponse};

use super::{not_found, TaskService};
use crate::cgroup;
use crate::error::{Result, ShimError};

impl TaskService {
    pub(super) async fn task_stats(&self, req: StatsRequest) -> Result<StatsResponse> {
        let group = {
            let containers = self.containers.lock().await;
            let container = containers.get(&req.id).ok_or_else(|| not_found(&req.id))?;
            container
                .cgroup
                .clone()
                .ok_or_else(|| ShimError::NoCgroup { id: req.id.clone() })?
        };
        let stats = tokio::task::spawn_blocking(move || cgroup::metrics(&group))
            .await
            .map_err(|_| ShimError::InvalidRequest {
                reason: "reading the cgroup metrics panicked",
            })??;
        Ok(StatsResponse {
            stats: Some(stats).into(),
            ..Default::default()
        })
    }
}
