//! Delete: `runc delete`, unmount the rootfs, forget the container.

use std::sync::Arc;
use std::time::Duration;

use containerd_shim::api::{DeleteRequest, DeleteResponse, Status};
use containerd_shim::mount::umount_recursive;
use containerd_shim::protos::events::task::TaskDelete;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use runc::options::DeleteOpts;
use tracing::{info, warn};

use super::{init_ready, not_found, TaskService};
use crate::error::{chain, Result};
use crate::runc::{failure, is_gone};

/// The exit status reported for a container deleted before it exited (SIGKILL).
const KILLED: u32 = 128 + 9;
/// How long Delete waits for a container's supervisors to store what they learned.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

impl TaskService {
    /// Forgets an exec process that has not started or has exited; returns its exit.
    async fn delete_exec(&self, id: &str, exec_id: &str) -> Result<DeleteResponse> {
        let mut containers = self.containers.lock().await;
        let container = containers.get_mut(id).ok_or_else(|| not_found(id))?;
        container.process(exec_id)?.require(
            &[Status::CREATED, Status::STOPPED],
            "delete",
            exec_id,
        )?;
        let Some(process) = container.execs.remove(exec_id) else {
            return Err(not_found(exec_id));
        };
        let (exit_status, exited_at) = process
            .exit()
            .map_or((0, Timestamp::now()), |e| (e.status, e.at));
        Ok(DeleteResponse {
            pid: process.pid_u32(),
            exit_status,
            exited_at: Some(exited_at).into(),
            ..Default::default()
        })
    }

    pub(super) async fn delete_task(&self, req: DeleteRequest) -> Result<DeleteResponse> {
        if !req.exec_id.is_empty() {
            return self.delete_exec(&req.id, &req.exec_id).await;
        }
        let mut containers = self.containers.lock().await;
        let container = init_ready(
            &mut containers,
            &req.id,
            &[Status::CREATED, Status::STOPPED],
            "delete",
        )?;
        let opts = DeleteOpts::new().force(true);
        if let Err(e) = container.runc.delete(&req.id, Some(&opts)).await {
            if !is_gone(&e) {
                return Err(failure(&container.bundle, "delete", &req.id, &e));
            }
        }
        if let Some(rootfs) = &container.mounted_rootfs {
            if let Err(e) = umount_recursive(rootfs.to_str(), 0) {
                warn!(container = %req.id, error = chain(&e), "cannot unmount the rootfs");
            }
        }
        let Some(container) = containers.remove(&req.id) else {
            return Err(not_found(&req.id));
        };
        drop(containers);
        if let Some(watch) = &container.oom_watch {
            watch.abort();
        }
        // Learning is stored when the container's supervisors end: let them finish first, so
        // that what a container learned is in the store once its Delete returns.
        let learner = Arc::clone(&self.learner);
        let id = req.id.clone();
        let idle = tokio::task::spawn_blocking(move || learner.wait_idle(&id, FLUSH_TIMEOUT))
            .await
            .unwrap_or(false);
        if !idle {
            warn!(container = %req.id, "the container's supervisors are still running after delete");
        }
        self.learner.forget(&req.id);
        let (exit_status, exited_at) = container
            .init
            .exit()
            .map_or((KILLED, Timestamp::now()), |e| (e.status, e.at));
        let pid = container.init.pid_u32();
        info!(container = %req.id, pid, exit_status, "container deleted");
        self.publish(TaskDelete {
            container_id: req.id.clone(),
            pid,
            exit_status,
            exited_at: Some(exited_at.clone()).into(),
            // No process id: an empty one is init's (as runc-v2 sends it).
            ..Default::default()
        })
        .await;
        Ok(DeleteResponse {
            pid,
            exit_status,
            exited_at: Some(exited_at).into(),
            ..Default::default()
        })
    }
}
