//! The exit reaper's consumer: matches each reaped pid to a container process, records its
//! exit, wakes its waiters and publishes TaskExit.

use std::collections::HashMap;
use std::sync::Arc;

use containerd_shim::monitor::{monitor_subscribe, Subject, Topic};
use containerd_shim::protos::events::task::TaskExit;
use runc::options::KillOpts;
use tokio::sync::{mpsc, Mutex};
use tracing::{info, warn};

use super::{publish, Event};
use crate::console::DRAIN_TIMEOUT;
use crate::container::Container;
use crate::error::{Result, ShimError};

/// Subscribes to the reaper's exits and handles them on a task until the reaper is gone.
pub async fn reap_exits(
    containers: Arc<Mutex<HashMap<String, Container>>>,
    events: mpsc::Sender<Event>,
) -> Result<()> {
    let mut exits = monitor_subscribe(Topic::Pid)
        .await
        .map_err(|source| ShimError::Shim {
            op: "subscribe to process exits",
            source,
        })?;
    tokio::spawn(async move {
        while let Some(exit) = exits.rx.recv().await {
            let Subject::Pid(pid) = exit.subject else {
                continue;
            };
            let status = u32::try_from(exit.exit_code).unwrap_or_default();
            let drained = containers
                .lock()
                .await
                .values_mut()
                .find_map(|c| c.live_process_mut(pid).and_then(|p| p.drained.take()));
            let Some(drained) = drained else {
                record(&containers, &events, pid, status).await;
                continue;
            };
            // A terminal's or a log file's output is drained, or a logging binary has exited,
            // before the exit is told, so that the client has it all when it learns the process
            // exited.
            let containers = Arc::clone(&containers);
            let events = events.clone();
            tokio::spawn(async move {
                if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
                    warn!(
                        pid,
                        "the output (terminal, log file or logging binary) did not drain; the exit is reported anyway"
                    );
                }
                record(&containers, &events, pid, status).await;
            });
        }
    });
    Ok(())
}

/// Records the exit of the live process `pid`, wakes its waiters and publishes TaskExit.
async fn record(
    containers: &Mutex<HashMap<String, Container>>,
    events: &mpsc::Sender<Event>,
    pid: i32,
    status: u32,
) {
    let mut containers = containers.lock().await;
    for container in containers.values_mut() {
        if container.live_process_mut(pid).is_none() {
            continue;
        }
        if container.init.pid == pid && container.shared_pid_ns {
            // Nothing else takes down what init leaves behind. As under runc-v2 it goes before
            // the exit is recorded: a waiter woken by the exit finds init's children gone.
            let opts = KillOpts::new().all(true);
            if let Err(e) = container.runc.kill(&container.id, 9, Some(&opts)).await {
                warn!(container = %container.id, error = %e, "cannot kill what init left");
            }
        }
        let Some(process) = container.live_process_mut(pid) else {
            return;
        };
        let Some(recorded) = process.set_exited(status) else {
            return;
        };
        let id = process.id.clone();
        info!(container = %container.id, process = %id, pid, status, "process exited");
        publish(
            events,
            TaskExit {
                container_id: container.id.clone(),
                id,
                pid: u32::try_from(pid).unwrap_or_default(),
                exit_status: recorded.status,
                exited_at: Some(recorded.at).into(),
                ..Default::default()
            },
        )
        .await;
        return;
    }
}
