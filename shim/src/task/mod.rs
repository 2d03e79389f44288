//! The containerd Task service: one file per verb.
//!
//! Each verb is a method of [`TaskService`] returning the shim's `Result`; the `Task` trait
//! implementation at the bottom is the only place errors become ttrpc errors.

mod connect;
mod create;
mod delete;
mod exec;
mod exits;
mod kill;
mod pause;
mod pids;
mod resize;
mod shutdown;
mod start;
mod state;
mod stats;
mod update;
mod wait;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim::api::{
    CheckpointTaskRequest, CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest,
    CreateTaskResponse, DeleteRequest, DeleteResponse, Empty, ExecProcessRequest, KillRequest,
    PauseRequest, PidsRequest, PidsResponse, ResizePtyRequest, ResumeRequest, ShutdownRequest,
    StartRequest, StartResponse, StateRequest, StateResponse, StatsRequest, StatsResponse, Status,
    UpdateTaskRequest, WaitRequest, WaitResponse,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::ttrpc;
use containerd_shim::{ExitSignal, Task, TtrpcContext};
use tokio::sync::{mpsc, Mutex};
use tracing::debug;

use crate::container::Container;
use crate::error::{chain, Result, ShimError};
use crate::events::TaskEvent;
use crate::image::Images;
use crate::learn::Learner;

pub use create::SLOW_CREATE_FAULT_ENV;
pub use exits::reap_exits;

pub use crate::events::Event;

/// The Task service of one shim (one pod or one container). Its clones share everything.
#[derive(Clone)]
pub struct TaskService {
    namespace: String,
    containers: Arc<Mutex<HashMap<String, Container>>>,
    events: mpsc::UnboundedSender<Event>,
    exit: Arc<ExitSignal>,
    learner: Arc<Learner>,
    images: Arc<Images>,
    /// Creates under way (counted from their start, before they first take the lock), and
    /// whether a Shutdown came meanwhile: see `shutdown_shim`.
    creating: shutdown::Creating,
}

impl std::fmt::Debug for TaskService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskService")
            .field("namespace", &self.namespace)
            .field("learner", &self.learner)
            .field("images", &self.images)
            .finish_non_exhaustive()
    }
}

impl TaskService {
    /// A service for `namespace` sending events to `events`; Shutdown signals `exit`.
    pub fn new(
        namespace: &str,
        events: mpsc::UnboundedSender<Event>,
        exit: Arc<ExitSignal>,
        learner: Arc<Learner>,
        images: Images,
    ) -> Self {
        let images = Arc::new(images);
        let warm = Arc::clone(&images);
        tokio::spawn(async move {
            if let Err(e) = warm.connect().await {
                debug!(
                    error = chain(&e),
                    "not connected to containerd's image store yet"
                );
            }
        });
        let containers: Arc<Mutex<HashMap<String, Container>>> = Arc::default();
        let (pauses, requests) = tokio::sync::mpsc::unbounded_channel();
        learner.set_pauser(pauses);
        tokio::spawn(pause::serve_pauses(
            Arc::clone(&containers),
            events.clone(),
            requests,
        ));
        Self {
            namespace: namespace.to_owned(),
            containers,
            events,
            exit,
            learner,
            images,
            creating: shutdown::Creating::default(),
        }
    }

    /// The containers, shared with the exit reaper.
    pub fn containers(&self) -> Arc<Mutex<HashMap<String, Container>>> {
        Arc::clone(&self.containers)
    }

    async fn publish(&self, event: impl TaskEvent) {
        publish(&self.events, event).await;
    }
}

/// Queues `event` for containerd (the forwarder publishes in order). It never waits: callers
/// hold the containers' lock, and a queue bounded in size made every request of the shim wait
/// while containerd did not take events (until 2026-12-07). The queue holds what the shim's
/// own calls and its containers' exits make, which stop when containerd is gone.
pub async fn publish(events: &mpsc::UnboundedSender<Event>, event: impl TaskEvent) {
    let Some(queued) = crate::events::encode(&event) else {
        return;
    };
    let topic = queued.0;
    if events.send(queued).is_err() {
        tracing::warn!(topic, "event dropped: the forwarder is gone");
    }
}

/// A request's JSON payload (`Any` whose value is JSON of an OCI type, whatever its type URL
/// says: containerd's typeurl registers OCI types under their Go package path). `missing` is
/// the error for an absent or empty one, `what` names the type in a parse error.
fn json_payload<T: serde::de::DeserializeOwned>(
    payload: Option<&Any>,
    missing: &'static str,
    what: &'static str,
) -> Result<T> {
    let any = payload
        .filter(|a| !a.value.is_empty())
        .ok_or(ShimError::InvalidRequest { reason: missing })?;
    serde_json::from_slice(&any.value).map_err(|source| ShimError::RequestJson { what, source })
}

fn unimplemented<T>(what: &'static str) -> ttrpc::Result<T> {
    Err(ShimError::Unimplemented { what }.into())
}

fn not_found(id: &str) -> ShimError {
    ShimError::NotFound { id: id.to_owned() }
}

/// Container `id`, once its init process is in one of the `allowed` states for `op`: not
/// found, then the precondition, are the errors containerd gets.
fn init_ready<'a>(
    containers: &'a mut HashMap<String, Container>,
    id: &str,
    allowed: &[Status],
    op: &'static str,
) -> Result<&'a mut Container> {
    let container = containers.get_mut(id).ok_or_else(|| not_found(id))?;
    container.init.require(allowed, op, id)?;
    Ok(container)
}

/// The one place a request's error becomes containerd's: it is logged first (containerd does
/// not log what a shim answers, so a failed Create would otherwise leave no trace in its log).
/// Answers containerd asks for routinely (a process not found, not running) are debug lines.
fn to_ttrpc<T>(verb: &'static str, r: Result<T>) -> ttrpc::Result<T> {
    r.map_err(|e| {
        let code = e.code();
        if matches!(
            code,
            ttrpc::Code::NOT_FOUND | ttrpc::Code::FAILED_PRECONDITION | ttrpc::Code::UNIMPLEMENTED
        ) {
            tracing::debug!(request = verb, code = ?code, error = %e.chain(), "request refused");
        } else {
            tracing::warn!(request = verb, code = ?code, error = %e.chain(), "request failed");
        }
        e.into()
    })
}

#[async_trait]
impl Task for TaskService {
    async fn create(
        &self,
        _ctx: &TtrpcContext,
        req: CreateTaskRequest,
    ) -> ttrpc::Result<CreateTaskResponse> {
        let under_way = self.create_began();
        // The Create runs to its end in a task of its own. ttrpc drops a request where it
        // waits once its deadline passes or its connection goes, and a Create dropped halfway
        // left what it had set up (until 2026-12-07: the learner's registration, the rootfs
        // mounts, a runc container with its init). One whose caller is gone by then undoes it.
        let (answer, answered) = tokio::sync::oneshot::channel();
        let service = self.clone();
        tokio::spawn(async move {
            let _under_way = under_way;
            let created = service.create_task(req, || answer.is_closed()).await;
            if let Err(Ok(response)) = answer.send(created) {
                // The caller went after the last look: the container stays, and containerd's
                // clean-up of the failed Create deletes it (a Delete like any other).
                tracing::warn!(pid = response.pid, "a Create's caller went once it was done; containerd's clean-up deletes the container");
            }
        });
        let created = answered.await.unwrap_or(Err(ShimError::InvalidRequest {
            reason: "the create task ended without an answer",
        }));
        to_ttrpc("create", created)
    }

    async fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> ttrpc::Result<StartResponse> {
        to_ttrpc("start", self.start_task(req).await)
    }

    async fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> ttrpc::Result<StateResponse> {
        to_ttrpc("state", self.task_state(req).await)
    }

    async fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> ttrpc::Result<WaitResponse> {
        to_ttrpc("wait", self.wait_task(req).await)
    }

    async fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> ttrpc::Result<Empty> {
        to_ttrpc("kill", self.kill_task(req).await)
    }

    async fn delete(
        &self,
        _ctx: &TtrpcContext,
        req: DeleteRequest,
    ) -> ttrpc::Result<DeleteResponse> {
        to_ttrpc("delete", self.delete_task(req).await)
    }

    async fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> ttrpc::Result<PidsResponse> {
        to_ttrpc("pids", self.task_pids(req).await)
    }

    async fn connect(
        &self,
        _ctx: &TtrpcContext,
        req: ConnectRequest,
    ) -> ttrpc::Result<ConnectResponse> {
        to_ttrpc("connect", self.connect_task(req).await)
    }

    async fn shutdown(&self, _ctx: &TtrpcContext, req: ShutdownRequest) -> ttrpc::Result<Empty> {
        to_ttrpc("shutdown", self.shutdown_shim(req).await)
    }

    async fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> ttrpc::Result<Empty> {
        to_ttrpc("exec", self.exec_process(req).await)
    }

    async fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> ttrpc::Result<Empty> {
        to_ttrpc("resize_pty", self.resize_pty(req).await)
    }

    async fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> ttrpc::Result<Empty> {
        // The shim's writer of stdin goes: once containerd's is closed too, the process (or
        // its terminal's copy, which then hangs the terminal up) reads the end of stdin.
        let mut containers = self.containers.lock().await;
        let container = containers
            .get_mut(&req.id)
            .ok_or_else(|| not_found(&req.id))?;
        let process = container.process_mut(&req.exec_id)?;
        if req.stdin {
            process.held_fifos.close_stdin();
        }
        Ok(Empty::new())
    }

    async fn pause(&self, _ctx: &TtrpcContext, req: PauseRequest) -> ttrpc::Result<Empty> {
        to_ttrpc("pause", self.pause_task(req).await)
    }

    async fn resume(&self, _ctx: &TtrpcContext, req: ResumeRequest) -> ttrpc::Result<Empty> {
        to_ttrpc("resume", self.resume_task(req).await)
    }

    async fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> ttrpc::Result<Empty> {
        to_ttrpc("update", self.update_task(req).await)
    }

    async fn stats(&self, _ctx: &TtrpcContext, req: StatsRequest) -> ttrpc::Result<StatsResponse> {
        to_ttrpc("stats", self.task_stats(req).await)
    }

    async fn checkpoint(
        &self,
        _ctx: &TtrpcContext,
        _req: CheckpointTaskRequest,
    ) -> ttrpc::Result<Empty> {
        unimplemented("checkpoint (a traced container cannot be checkpointed)")
    }
}
