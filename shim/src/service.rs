//! The `Shim` side: starting the long-lived shim (one per pod, else per container), cleaning
//! up after a dead one, and building the Task service.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim::asynchronous::util::{read_options, read_pid_from_file, write_str_to_file};
use containerd_shim::mount::umount_recursive;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{spawn, Config, DeleteResponse, ExitSignal, Flags, Shim, StartOpts};
use runc::options::DeleteOpts;
use tokio::sync::mpsc;
use tracing::warn;

use crate::bundle;
use crate::error::chain;
use crate::events;
use crate::image::Images;
use crate::learn::{self, Learner};
use crate::runc::{RuncConfig, INIT_PID_FILE};
use crate::task::{reap_exits, TaskService};

/// The annotation grouping a pod's containers into one shim (as runc-v2 does).
pub const SANDBOX_ID_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";
/// containerd's own annotation grouping containers into one shim, before the sandbox id.
pub const GROUP_ANNOTATION: &str = "io.containerd.runc.v2.group";
/// The file in the bundle holding the shim's ttrpc address (containerd reads it too).
pub const ADDRESS_FILE: &str = "address";
/// How long an exiting shim waits for its queued events to be published (runc-v2: 5 s).
const EVENTS_AT_EXIT: std::time::Duration = std::time::Duration::from_secs(5);

/// One shim process.
pub struct Service {
    id: String,
    namespace: String,
    /// containerd's gRPC address (`-address`), for its image store.
    address: String,
    exit: Arc<ExitSignal>,
    learner: Arc<Learner>,
    /// The events' forwarder, once the Task service is made.
    forwarder: std::sync::Mutex<Option<events::Forwarder>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("id", &self.id)
            .field("namespace", &self.namespace)
            .field("address", &self.address)
            .field("learner", &self.learner)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// The shim's learner (its listener socket and state directory).
    pub fn learner(&self) -> &Arc<Learner> {
        &self.learner
    }

    /// At exit: publishes the events queued by now, waiting at most [`EVENTS_AT_EXIT`].
    pub async fn finish_events(&self) {
        let forwarder = self
            .forwarder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(forwarder) = forwarder {
            forwarder.finish(EVENTS_AT_EXIT).await;
        }
    }
}

/// The id the shim of a container is grouped by, as runc-v2 groups: containerd's group
/// annotation, else the pod's sandbox id, else the container's own.
pub fn grouping(config: &serde_json::Value, id: &str) -> String {
    [GROUP_ANNOTATION, SANDBOX_ID_ANNOTATION]
        .iter()
        .find_map(|a| bundle::annotation(config, a).filter(|s| !s.is_empty()))
        .unwrap_or(id)
        .to_owned()
}

#[async_trait]
impl Shim for Service {
    type T = TaskService;

    async fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        // The serving shim knows its socket; the delete action finds it in the bundle.
        let address = if args.socket.is_empty() {
            std::fs::read_to_string(ADDRESS_FILE).unwrap_or_default()
        } else {
            args.socket.clone()
        };
        Self {
            id: args.id.clone(),
            namespace: args.namespace.clone(),
            address: args.address.clone(),
            exit: Arc::new(ExitSignal::default()),
            learner: Arc::new(Learner::new(learn::state_dir(address.trim()))),
            forwarder: std::sync::Mutex::default(),
        }
    }

    async fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        let config = bundle::read_config(Path::new("."))
            .map_err(|e| containerd_shim::Error::InvalidArgument(e.chain()))?;
        let group = grouping(&config, &opts.id);
        let socket = opts.socket_address(&group);
        let address = match spawn(opts, &group, Vec::new()).await {
            Ok(address) => address,
            Err(e) => {
                // The server spawned is killed when it cannot be confined (its `shim_cgroup`),
                // and it may have bound its socket by then (runc-v2 binds it in `start` and
                // removes it on failure).
                crate::bootstrap::remove_unserved_socket(&socket).await;
                return Err(e);
            }
        };
        write_str_to_file(ADDRESS_FILE, &address).await?;
        Ok(address)
    }

    async fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        let bundle = std::env::current_dir().map_err(|err| containerd_shim::Error::IoError {
            context: "bundle directory".into(),
            err,
        })?;
        let options = read_options(&bundle).await.unwrap_or_default();
        match RuncConfig::new(&options, &self.namespace).client(&bundle) {
            Ok(runc) => {
                let opts = DeleteOpts::new().force(true);
                if let Err(e) = runc.delete(&self.id, Some(&opts)).await {
                    warn!(container = %self.id, error = chain(&e), "runc delete after a dead shim");
                }
            }
            Err(e) => warn!(container = %self.id, error = %e.chain(), "no runc client"),
        }
        if let Err(e) = umount_recursive(bundle.join("rootfs").to_str(), 0) {
            warn!(container = %self.id, error = chain(&e), "cannot unmount the rootfs");
        }
        if let Some(dir) = self.learner_dir() {
            learn::remove_stale(&dir);
        }
        let pid = read_pid_from_file(&bundle.join(INIT_PID_FILE))
            .await
            .unwrap_or_default();
        Ok(DeleteResponse {
            pid: u32::try_from(pid).unwrap_or_default(),
            exit_status: 128 + 9,
            exited_at: Some(Timestamp::now()).into(),
            ..Default::default()
        })
    }

    async fn wait(&mut self) {
        self.exit.wait().await;
    }

    async fn create_task_service(&self, publisher: RemotePublisher) -> TaskService {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = TaskService::new(
            &self.namespace,
            tx.clone(),
            Arc::clone(&self.exit),
            Arc::clone(&self.learner),
            Images::new(&self.address, &self.namespace),
        );
        if let Err(e) = reap_exits(task.containers(), tx).await {
            warn!(error = %e.chain(), "exits will not be reported");
        }
        // containerd-shim's publisher names each event's type from its protobuf descriptor,
        // which costs every shim hundreds of kilobytes of reflection tables: only its address
        // is used (crate::events).
        let forwarder =
            events::Forwarder::start(publisher.address.clone(), self.namespace.clone(), rx);
        *self
            .forwarder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(forwarder);
        task
    }
}

impl Service {
    fn learner_dir(&self) -> Option<std::path::PathBuf> {
        let address = std::fs::read_to_string(ADDRESS_FILE).ok()?;
        Some(learn::state_dir(address.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_share_a_shim_and_lone_containers_get_their_own() {
        let pod = json!({"annotations": {SANDBOX_ID_ANNOTATION: "sandbox1"}});
        assert_eq!(grouping(&pod, "c1"), "sandbox1");
        assert_eq!(grouping(&json!({}), "c1"), "c1");
        let empty = json!({"annotations": {SANDBOX_ID_ANNOTATION: ""}});
        assert_eq!(grouping(&empty, "c1"), "c1");
        // containerd's group annotation comes first, as under runc-v2.
        let grouped = json!({"annotations": {
            SANDBOX_ID_ANNOTATION: "sandbox1", GROUP_ANNOTATION: "group1"
        }});
        assert_eq!(grouping(&grouped, "c1"), "group1");
    }
}
