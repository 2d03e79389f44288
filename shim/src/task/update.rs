//! Update: new resource limits for a running container (`runc update`), as the kubelet's
//! in-place resize and `ctr task update` send them: an OCI `LinuxResources` in JSON.

use containerd_shim::api::{Empty, Status, UpdateTaskRequest};
use oci_spec::runtime::LinuxResources;
use tracing::info;

use super::{init_ready, json_payload, TaskService};
use crate::error::Result;
use crate::runc::failure;

impl TaskService {
    pub(super) async fn update_task(&self, req: UpdateTaskRequest) -> Result<Empty> {
        let resources = resources_of(&req)?;
        let mut containers = self.containers.lock().await;
        let container = init_ready(
            &mut containers,
            &req.id,
            &[Status::CREATED, Status::RUNNING, Status::PAUSED],
            "update",
        )?;
        container
            .runc
            .update(&req.id, &resources)
            .await
            .map_err(|e| failure(&container.bundle, "update", &req.id, &e))?;
        info!(container = %req.id, "resources updated");
        Ok(Empty::new())
    }
}

/// The request's resources: JSON of the runtime spec's `LinuxResources`.
fn resources_of(req: &UpdateTaskRequest) -> Result<LinuxResources> {
    json_payload(
        req.resources.as_ref(),
        "update without resources",
        "OCI LinuxResources",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::protobuf::well_known_types::any::Any;

    fn request(value: &[u8]) -> UpdateTaskRequest {
        UpdateTaskRequest {
            id: "c".into(),
            resources: Some(Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
                value: value.to_vec(),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn resources_are_read_from_json_and_garbage_is_an_error() {
        let r = resources_of(&request(
            br#"{"memory":{"limit":33554432},"pids":{"limit":64}}"#,
        ))
        .unwrap();
        assert_eq!(
            r.memory().as_ref().and_then(|m| m.limit()),
            Some(33_554_432)
        );
        assert_eq!(r.pids().as_ref().map(|p| p.limit()), Some(64));
        resources_of(&request(b"{not json")).unwrap_err();
        resources_of(&request(b"")).unwrap_err();
        resources_of(&UpdateTaskRequest::default()).unwrap_err();
    }
}
