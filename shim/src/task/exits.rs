//! The exit reaper's consumer: matches each reaped pid to a container process, records its
//! exit, wakes its waiters and publishes TaskExit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use containerd_shim::monitor::{monitor_subscribe, Subject, Topic};
use containerd_shim::protos::events::task::TaskExit;
use runc::options::KillOpts;
use tokio::sync::{mpsc, oneshot, Mutex};
use tracing::{info, warn};

use super::{publish, Event};
use crate::console::DRAIN_TIMEOUT;
use crate::container::{Container, Process};
use crate::error::{Result, ShimError};

/// How long init's exit waits for the container's exec processes to be reaped (they die with
/// init's pid namespace, or are killed with what init left in a shared one).
const EXECS_TIMEOUT: Duration = Duration::from_secs(5);

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
            let reaped = containers
                .lock()
                .await
                .values_mut()
                .find_map(|c| reaped(c, pid, status));
            let Some(Reaped { drained, init }) = reaped else {
                record(&containers, &events, pid, status).await;
                continue;
            };
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
                    settle_execs(&containers, pid).await;
                }
                record(&containers, &events, pid, status).await;
            });
        }
    });
    Ok(())
}

/// What must happen before the exit of `pid` is told, when it is `container`'s process and
/// something must.
struct Reaped {
    /// Its output's drain.
    drained: Option<oneshot::Receiver<()>>,
    /// It is init, and its exit waits for [`settle_execs`].
    init: bool,
}

fn reaped(container: &mut Container, pid: i32, status: u32) -> Option<Reaped> {
    let is_init = container.init.pid == pid;
    let execs_first = is_init && (container.shared_pid_ns || container.has_live_execs());
    let process = container.live_process_mut(pid)?;
    let drained = process.drained.take();
    if drained.is_some() && !is_init {
        // Told with init's exit at the latest (see `record`).
        process.reaped = Some(status);
    }
    (drained.is_some() || execs_first).then_some(Reaped {
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
async fn settle_execs(containers: &Mutex<HashMap<String, Container>>, pid: i32) {
    if let Some(c) = containers
        .lock()
        .await
        .values()
        .find(|c| c.init.pid == pid && c.shared_pid_ns)
    {
        let opts = KillOpts::new().all(true);
        if let Err(e) = c.runc.kill(&c.id, 9, Some(&opts)).await {
            warn!(container = %c.id, error = %e, "cannot kill what init left");
        }
    }
    let deadline = tokio::time::Instant::now() + EXECS_TIMEOUT;
    loop {
        let live = containers
            .lock()
            .await
            .values()
            .find(|c| c.init.pid == pid)
            .is_some_and(Container::has_live_execs);
        if !live {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            warn!(
                pid,
                "exec processes outlived init; its exit is reported anyway"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Records the exit of the live process `pid`, wakes its waiters and publishes TaskExit. For
/// init, the exits of exec processes held while their output drains are told first.
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
        let id = container.id.clone();
        if container.init.pid == pid {
            for exec in container.execs.values_mut() {
                if let Some(held) = exec.reaped {
                    tell_exit(events, &id, exec, held).await;
                }
            }
        }
        if let Some(process) = container.live_process_mut(pid) {
            tell_exit(events, &id, process, status).await;
        }
        return;
    }
}

/// Records `process`'s exit and publishes it (nothing if it was recorded already).
async fn tell_exit(
    events: &mpsc::Sender<Event>,
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
