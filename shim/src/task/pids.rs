//! Pids: the container's processes (`runc ps`), an exec process's with its exec id.

use containerd_shim::api::{PidsRequest, PidsResponse};
use containerd_shim::protos::api::ProcessInfo;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::shim::oci::ProcessDetails;

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
                info: container
                    .execs
                    .values()
                    .find(|p| usize::try_from(p.pid).is_ok_and(|p| p == pid))
                    .and_then(|p| details(&p.id))
                    .into(),
                ..Default::default()
            })
            .collect();
        Ok(PidsResponse {
            processes,
            ..Default::default()
        })
    }
}

/// An exec process's details as runc-v2 gives them (`ctr task ps` shows the exec id).
fn details(exec_id: &str) -> Option<Any> {
    let details = ProcessDetails {
        exec_id: exec_id.to_owned(),
        ..Default::default()
    };
    Some(Any {
        type_url: "containerd.runc.v1.ProcessDetails".to_owned(),
        value: details.write_to_bytes().ok()?,
        ..Default::default()
    })
}
