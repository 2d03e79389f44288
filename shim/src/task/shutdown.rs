//! Shutdown: the shim exits once it serves no container (or at once with `now`).

use containerd_shim::api::{Empty, ShutdownRequest};
use tracing::info;

use super::TaskService;
use crate::error::Result;

impl TaskService {
    pub(super) async fn shutdown_shim(&self, req: ShutdownRequest) -> Result<Empty> {
        let containers = self.containers.lock().await;
        if req.now || containers.is_empty() {
            info!(now = req.now, "shim shutting down");
            self.exit.signal();
        }
        Ok(Empty::new())
    }
}
