//! Shutdown: the shim exits once it serves no container (or at once with `now`). A Create
//! under way counts as a container: until 2026-12-07 a Shutdown while a Create waited for the
//! image lookup (outside the containers' lock) ended the shim under it. Such a Shutdown takes
//! effect when the last Create under way ends with no container left.

use containerd_shim::api::{Empty, ShutdownRequest};
use tracing::info;

use super::TaskService;
use crate::error::Result;

impl TaskService {
    pub(super) async fn shutdown_shim(&self, req: ShutdownRequest) -> Result<Empty> {
        if req.now {
            info!(now = true, "shim shutting down");
            self.exit.signal();
            return Ok(Empty::new());
        }
        self.shutdown_if_idle().await;
        Ok(Empty::new())
    }

    /// A Create begins (before it first takes the containers' lock).
    pub(super) fn create_began(&self) {
        self.creating_mut().0 += 1;
    }

    /// A Create ended, made its container or not: the last one does a Shutdown that came
    /// meanwhile.
    pub(super) async fn create_ended(&self) {
        let shutdown_wanted = {
            let mut creating = self.creating_mut();
            creating.0 = creating.0.saturating_sub(1);
            creating.0 == 0 && creating.1
        };
        if shutdown_wanted {
            self.shutdown_if_idle().await;
        }
    }

    /// Exits if no container is left and no Create is under way; with one under way, leaves
    /// the Shutdown to the last one's end.
    async fn shutdown_if_idle(&self) {
        let containers = self.containers.lock().await;
        let mut creating = self.creating_mut();
        if creating.0 > 0 {
            creating.1 = true;
            return;
        }
        creating.1 = false;
        if containers.is_empty() {
            info!(now = false, "shim shutting down");
            self.exit.signal();
        }
    }

    fn creating_mut(&self) -> std::sync::MutexGuard<'_, (usize, bool)> {
        self.creating
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use containerd_shim::asynchronous::ExitSignal;

    use super::*;
    use crate::image::Images;
    use crate::learn::Learner;

    /// Whether `exit` was signalled (a signalled one is ready at its first poll).
    async fn signalled(exit: &ExitSignal) -> bool {
        tokio::time::timeout(Duration::ZERO, exit.wait())
            .await
            .is_ok()
    }

    /// A Shutdown while a Create is under way waits for it: the shim exits when the last one
    /// ends with no container left.
    #[tokio::test]
    async fn a_shutdown_during_a_create_takes_effect_when_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let exit = Arc::new(ExitSignal::default());
        let (events, _queued) = tokio::sync::mpsc::unbounded_channel();
        let service = TaskService::new(
            "ns",
            events,
            Arc::clone(&exit),
            Arc::new(Learner::new(dir.path().join("state"))),
            Images::new(dir.path().join("none.sock").to_str().unwrap(), "ns"),
        );
        service.create_began();
        service.create_began();
        service
            .shutdown_shim(ShutdownRequest::default())
            .await
            .unwrap();
        assert!(!signalled(&exit).await, "the shim exited under a Create");
        service.create_ended().await;
        assert!(
            !signalled(&exit).await,
            "the shim exited under the other Create"
        );
        // The last Create ends (here having made no container): then the Shutdown is done.
        service.create_ended().await;
        assert!(signalled(&exit).await);
    }
}
