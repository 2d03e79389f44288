//! The exit reaper's consumer: matches each reaped pid to a container process, records its
//! exit, wakes its waiters and publishes TaskExit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use containerd_shim::api::Status;
use containerd_shim::monitor::{monitor_subscribe, Subject, Topic};
use containerd_shim::protos::events::task::TaskExit;
use runc::options::KillOpts;
use tokio::sync::{mpsc, oneshot, Mutex};
use tracing::{info, warn};

use super::{publish, Event};
use crate::console::DRAIN_TIMEOUT;
use crate::container::{Container, Process};
use crate::error::{chain, Result, ShimError};

/// How long init's exit waits for the container's exec processes to be reaped (they die with
/// init's pid namespace, or are killed with what init left in a shared one).
const EXECS_TIMEOUT: Duration = Duration::from_secs(5);

/// Subscribes to the reaper's exits and handles them on a task until the reaper is gone.
pub async fn reap_exits(
    containers: Arc<Mutex<HashMap<String, Container>>>,
    events: mpsc::UnboundedSender<Event>,
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
            let reaped = containers
                .lock()
                .await
                .values_mut()
                .find_map(|c| reaped(c, pid, status));
            // Not a container's process (runc's own commands learn their exits elsewhere).
            let Some(Reaped {
                process,
                drained,
                init,
            }) = reaped
            else {
                continue;
            };
            if drained.is_none() && !init {
                record(&containers, &events, &process, status).await;
                continue;
            }
            let containers = Arc::clone(&containers);
            let events = events.clone();
            tokio::spawn(async move {
                // A terminal's or a log file's output is drained, or a logging binary has
                // exited, before the exit is told, so that the client has it all when it
                // learns the process exited.
                if let Some(drained) = drained {
                    if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
                        warn!(
                            pid,
                            "the output (terminal, log file or logging binary) did not drain; the exit is reported anyway"
                        );
                    }
                }
                if init {
                    settle_execs(&containers, &process.0).await;
                }
                record(&containers, &events, &process, status).await;
            });
        }
    });
    Ok(())
}

/// A process reaped: which one, and what must happen before its exit is told.
struct Reaped {
    /// Its container's id, its exec id (empty for init) and its pid: the exit is recorded on
    /// this process, not on whatever has its pid by then (a pid can be reused while an exit
    /// waits), nor on a process of the same ids made since (a container deleted and created
    /// again under its id).
    process: (String, String, i32),
    /// Its output's drain.
    drained: Option<oneshot::Receiver<()>>,
    /// It is init, and its exit waits for [`settle_execs`].
    init: bool,
}

/// The reaped `pid`, when it is a live process of `container`.
fn reaped(container: &mut Container, pid: i32, status: u32) -> Option<Reaped> {
    let is_init = container.init.pid == pid && container.init.status() != Status::STOPPED;
    let execs_first = is_init && (container.shared_pid_ns || container.has_live_execs());
    let container_id = container.id.clone();
    let process = container.live_process_mut(pid)?;
    let drained = process.drained.take();
    if drained.is_some() && !is_init {
        // Told with init's exit at the latest (see `record`).
        process.reaped = Some(status);
    }
    let exec_id = if is_init {
        String::new()
    } else {
        process.id.clone()
    };
    Some(Reaped {
        process: (container_id, exec_id, pid),
        drained,
        init: execs_first,
    })
}

/// Before init's exit (`pid`) is told: with a shared pid namespace, kills what init left
/// (nothing else takes it down; as under runc-v2 it goes before the exit is recorded, so a
/// waiter woken by the exit finds init's children gone), then waits, at most
/// [`EXECS_TIMEOUT`], until every running exec process of the container is reaped. Init's
/// exit is the container's last (containerd deletes the task on it): until 2026-12-07 the exit
/// of an exec that died with init could come after it, or be lost with the deleted container.
async fn settle_execs(containers: &Mutex<HashMap<String, Container>>, id: &str) {
    if let Some(c) = containers.lock().await.get(id).filter(|c| c.shared_pid_ns) {
        let opts = KillOpts::new().all(true);
        if let Err(e) = c.runc.kill(&c.id, 9, Some(&opts)).await {
            warn!(container = %c.id, error = chain(&e), "cannot kill what init left");
        }
    }
    let deadline = tokio::time::Instant::now() + EXECS_TIMEOUT;
    loop {
        let live = containers
            .lock()
            .await
            .get(id)
            .is_some_and(Container::has_live_execs);
        if !live {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            warn!(
                container = id,
                "exec processes outlived init; its exit is reported anyway"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Records the exit of `process` (container id, exec id: empty for init), wakes its waiters and
/// publishes TaskExit (nothing if it is gone or recorded already). For init, the exits of exec
/// processes held while their output drains are told first.
async fn record(
    containers: &Mutex<HashMap<String, Container>>,
    events: &mpsc::UnboundedSender<Event>,
    (id, exec_id, pid): &(String, String, i32),
    status: u32,
) {
    let mut containers = containers.lock().await;
    let Some(container) = containers.get_mut(id) else {
        return;
    };
    if container.process(exec_id).map_or(true, |p| p.pid != *pid) {
        return;
    }
    if exec_id.is_empty() {
        for exec in container.execs.values_mut() {
            if let Some(held) = exec.reaped {
                tell_exit(events, id, exec, held).await;
            }
        }
    }
    if let Ok(process) = container.process_mut(exec_id) {
        tell_exit(events, id, process, status).await;
    }
}

/// Records `process`'s exit and publishes it (nothing if it was recorded already).
async fn tell_exit(
    events: &mpsc::UnboundedSender<Event>,
    container: &str,
    process: &mut Process,
    status: u32,
) {
    let Some(recorded) = process.set_exited(status) else {
        return;
    };
    let (id, pid) = (process.id.clone(), process.pid);
    info!(container, process = %id, pid, status, "process exited");
    publish(
        events,
        TaskExit {
            container_id: container.to_owned(),
            id,
            pid: process.pid_u32(),
            exit_status: recorded.status,
            exited_at: Some(recorded.at).into(),
            ..Default::default()
        },
    )
    .await;
}
