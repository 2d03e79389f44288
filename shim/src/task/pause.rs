//! Pause and Resume: `runc pause`/`runc resume` (the cgroup freezer), for containerd and for
//! the supervisor's `pause` action, which asks through [`PauseRequest`]s.

use std::collections::HashMap;
use std::sync::Arc;

use containerd_shim::api::{Empty, PauseRequest as Pause, ResumeRequest, Status};
use containerd_shim::protos::events::task::{TaskPaused, TaskResumed};
use tokio::sync::{mpsc, Mutex};
use tracing::{info, warn};

use super::{init_ready, publish, Event, TaskService};
use crate::container::Container;
use crate::error::Result;
use crate::learn::PauseRequest;
use crate::runc::failure;

impl TaskService {
    pub(super) async fn pause_task(&self, req: Pause) -> Result<Empty> {
        info!(container = %req.id, "pause requested by containerd");
        pause(&self.containers, &self.events, &req.id).await?;
        Ok(Empty::new())
    }

    pub(super) async fn resume_task(&self, req: ResumeRequest) -> Result<Empty> {
        let mut containers = self.containers.lock().await;
        let container = init_ready(&mut containers, &req.id, &[Status::PAUSED], "resume")?;
        container
            .runc
            .resume(&req.id)
            .await
            .map_err(|e| failure(&container.bundle, "resume", &req.id, &e))?;
        container.init.set_running();
        drop(containers);
        info!(container = %req.id, "container resumed");
        self.publish(TaskResumed {
            container_id: req.id,
            ..Default::default()
        })
        .await;
        Ok(Empty::new())
    }
}

/// Freezes container `id` and publishes TaskPaused.
async fn pause(
    containers: &Mutex<HashMap<String, Container>>,
    events: &mpsc::UnboundedSender<Event>,
    id: &str,
) -> Result<()> {
    let mut containers = containers.lock().await;
    let container = init_ready(&mut containers, id, &[Status::RUNNING], "pause")?;
    container
        .runc
        .pause(id)
        .await
        .map_err(|e| failure(&container.bundle, "pause", id, &e))?;
    container.init.set_paused();
    drop(containers);
    info!(container = %id, "container paused");
    publish(
        events,
        TaskPaused {
            container_id: id.to_owned(),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}

/// Serves the supervisors' pause requests until the shim ends.
pub async fn serve_pauses(
    containers: Arc<Mutex<HashMap<String, Container>>>,
    events: mpsc::UnboundedSender<Event>,
    mut requests: mpsc::UnboundedReceiver<PauseRequest>,
) {
    while let Some((id, reply)) = requests.recv().await {
        info!(container = %id, "pause requested by the supervisor");
        let result = pause(&containers, &events, &id)
            .await
            .map_err(|e| e.chain());
        if let Err(e) = &result {
            warn!(container = %id, error = %e, "the pause action failed");
        }
        // The supervisor may have given up waiting; nothing to do then.
        let _ = reply.send(result);
    }
}
