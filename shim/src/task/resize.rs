//! ResizePty: the new size of a process's terminal (`ctr run -t` and `kubectl exec -it` send
//! it when the user's window changes). A process without a terminal ignores it, as under
//! runc-v2.

use containerd_shim::api::{Empty, ResizePtyRequest};

use super::{not_found, TaskService};
use crate::error::Result;

impl TaskService {
    pub(super) async fn resize_pty(&self, req: ResizePtyRequest) -> Result<Empty> {
        let containers = self.containers.lock().await;
        let container = containers.get(&req.id).ok_or_else(|| not_found(&req.id))?;
        if let Some(console) = &container.process(&req.exec_id)?.console {
            console.resize(req.width, req.height)?;
        }
        Ok(Empty::new())
    }
}
