//! Shutdown: the shim exits once it serves no container (or at once with `now`). A Create
//! under way counts as a container: until 2026-12-07 a Shutdown while a Create waited for the
//! image lookup (outside the containers' lock) ended the shim under it. Such a Shutdown takes
//! effect when the last Create under way ends with no container left.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use containerd_shim::api::{Empty, ShutdownRequest};
use containerd_shim::ExitSignal;
use tracing::info;

use super::TaskService;
use crate::container::Container;
use crate::error::Result;

/// Creates under way, and whether a Shutdown came meanwhile.
pub(super) type Creating = Arc<Mutex<(usize, bool)>>;

impl TaskService {
    pub(super) async fn shutdown_shim(&self, req: ShutdownRequest) -> Result<Empty> {
        if req.now {
            info!(now = true, "shim shutting down");
            self.exit.signal();
            return Ok(Empty::new());
        }
        shutdown_if_idle(&self.containers, &self.creating, &self.exit).await;
        Ok(Empty::new())
    }

    /// A Create begins (before it first takes the containers' lock); it ends when the
    /// returned guard drops, whether the Create returned or was dropped (a request whose
    /// deadline passed, or whose connection went, is dropped where it waits).
    pub(super) fn create_began(&self) -> CreateUnderWay {
        counted(&self.creating).0 += 1;
        CreateUnderWay {
            containers: Arc::clone(&self.containers),
            creating: Arc::clone(&self.creating),
            exit: Arc::clone(&self.exit),
        }
    }
}

/// A Create under way ([`TaskService::create_began`]); the last one to end does a Shutdown
/// that came meanwhile.
pub(super) struct CreateUnderWay {
    containers: Arc<tokio::sync::Mutex<HashMap<String, Container>>>,
    creating: Creating,
    exit: Arc<ExitSignal>,
}

impl Drop for CreateUnderWay {
    fn drop(&mut self) {
        let shutdown_wanted = {
            let mut creating = counted(&self.creating);
            creating.0 = creating.0.saturating_sub(1);
            creating.0 == 0 && creating.1
        };
        if shutdown_wanted {
            let (containers, creating, exit) = (
                Arc::clone(&self.containers),
                Arc::clone(&self.creating),
                Arc::clone(&self.exit),
            );
            tokio::spawn(async move { shutdown_if_idle(&containers, &creating, &exit).await });
        }
    }
}

/// Exits if no container is left and no Create is under way; with one under way, leaves the
/// Shutdown to the last one's end.
async fn shutdown_if_idle(
    containers: &tokio::sync::Mutex<HashMap<String, Container>>,
    creating: &Creating,
    exit: &ExitSignal,
) {
    let containers = containers.lock().await;
    let mut creating = counted(creating);
    if creating.0 > 0 {
        creating.1 = true;
        return;
    }
    creating.1 = false;
    if containers.is_empty() {
        info!(now = false, "shim shutting down");
        exit.signal();
    }
}

fn counted(creating: &Creating) -> MutexGuard<'_, (usize, bool)> {
    creating.lock().unwrap_or_else(PoisonError::into_inner)
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
        let first = service.create_began();
        let second = service.create_began();
        service
            .shutdown_shim(ShutdownRequest::default())
            .await
            .unwrap();
        assert!(!signalled(&exit).await, "the shim exited under a Create");
        drop(first);
        tokio::task::yield_now().await;
        assert!(
            !signalled(&exit).await,
            "the shim exited under the other Create"
        );
        // The last Create ends, here dropped where it waited (its deadline passed): then the
        // Shutdown is done.
        let cancelled = tokio::time::timeout(Duration::from_millis(1), async move {
            let _under_way = second;
            std::future::pending::<()>().await;
        });
        assert!(cancelled.await.is_err());
        tokio::time::timeout(Duration::from_secs(10), exit.wait())
            .await
            .expect("the shim exits once the last Create is gone");
    }
}
