//! Task events to containerd, in order, over its ttrpc events service.
//!
//! Each event goes as an `Any` whose type URL is written out here (`containerd.events.TaskExit`,
//! what containerd's typeurl registry expects). containerd-shim's publisher takes it from the
//! message's protobuf descriptor instead, and the first descriptor of containerd's event protos
//! builds the reflection tables of everything they import (`descriptor.proto` included) and
//! keeps them: 351 kB of heap in every shim for one type name (docs/adr/0014).
//!
//! Delivery: one event at a time, in the order queued (containerd wants a task's exit before
//! its delete), each try bounded by [`FORWARD_TIMEOUT`]; a failed try is retried after 1, 2, 3...
//! seconds, reconnecting when the connection is gone, and the event is dropped (and logged)
//! after [`ATTEMPTS`] tries. An exiting shim first publishes what is queued, for at most 5 s as
//! runc-v2 does ([`Forwarder::finish`]): containerd's Shutdown follows its Delete at once, and
//! the TaskDelete that Delete queued would otherwise go with the process.

use std::time::Duration;

use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::shim::event::Envelope;
use containerd_shim::protos::shim::events::ForwardRequest;
use containerd_shim::protos::shim_async::{Client, EventsClient};
use containerd_shim::protos::ttrpc;
use containerd_shim::protos::ttrpc::context::with_duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::error::chain;

/// How long one try to hand an event to containerd may take.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// Tries per event before it is dropped.
pub const ATTEMPTS: u64 = 6;

/// An event queued for containerd: its topic and the encoded message.
pub type Event = (&'static str, Any);

/// A task event the shim publishes: its topic and its type URL.
pub trait TaskEvent: Message {
    /// The topic containerd files it under (`/tasks/exit`).
    const TOPIC: &'static str;
    /// The type URL of its `Any` (`containerd.events.TaskExit`).
    const TYPE_URL: &'static str;
}

macro_rules! task_events {
    ($($event:ident => $topic:literal),* $(,)?) => {
        $(impl TaskEvent for $event {
            const TOPIC: &'static str = $topic;
            const TYPE_URL: &'static str = concat!("containerd.events.", stringify!($event));
        })*
    };
}

task_events! {
    TaskCreate => "/tasks/create",
    TaskStart => "/tasks/start",
    TaskExecAdded => "/tasks/exec-added",
    TaskExecStarted => "/tasks/exec-started",
    TaskPaused => "/tasks/paused",
    TaskResumed => "/tasks/resumed",
    TaskExit => "/tasks/exit",
    TaskDelete => "/tasks/delete",
    TaskOOM => "/tasks/oom",
}

/// `event` as the queue carries it; `None` (logged) if it cannot be encoded.
pub fn encode<E: TaskEvent>(event: &E) -> Option<Event> {
    match event.write_to_bytes() {
        Ok(value) => Some((
            E::TOPIC,
            Any {
                type_url: E::TYPE_URL.to_owned(),
                value,
                ..Default::default()
            },
        )),
        Err(e) => {
            warn!(
                topic = E::TOPIC,
                error = chain(&e),
                "cannot encode an event"
            );
            None
        }
    }
}

/// The envelope containerd's events service takes for `event` in `namespace`.
fn envelope(topic: &str, namespace: &str, event: Any) -> ForwardRequest {
    let mut envelope = Envelope::new();
    envelope.set_topic(topic.to_owned());
    envelope.set_namespace(namespace.to_owned());
    if let Ok(now) = containerd_shim::util::timestamp() {
        envelope.set_timestamp(now);
    }
    envelope.set_event(event);
    let mut request = ForwardRequest::new();
    request.set_envelope(envelope);
    request
}

/// containerd's ttrpc address as the client takes it (`unix://` and a path).
fn ttrpc_address(address: &str) -> String {
    format!(
        "unix://{}",
        address.strip_prefix("unix://").unwrap_or(address)
    )
}

/// The task publishing the queued events, and how to end it.
#[derive(Debug)]
pub struct Forwarder {
    task: JoinHandle<()>,
    finish: oneshot::Sender<()>,
}

impl Forwarder {
    /// Starts publishing what `rx` queues to containerd's events service at `address` (its
    /// ttrpc socket), in `namespace`.
    pub fn start(address: String, namespace: String, rx: mpsc::UnboundedReceiver<Event>) -> Self {
        let (finish, finishing) = oneshot::channel();
        let sink = Containerd {
            address: ttrpc_address(&address),
            namespace,
            client: None,
        };
        let task = tokio::spawn(forward(rx, finishing, sink));
        Self { task, finish }
    }

    /// At the shim's exit: publishes what is queued by now (nothing later) and ends, waiting
    /// at most `within` (runc-v2 waits 5 s for its publisher). Without this the last events,
    /// the TaskDelete of the Delete containerd sends just before Shutdown among them, could be
    /// lost with the process.
    pub async fn finish(self, within: Duration) {
        let _ = self.finish.send(());
        if tokio::time::timeout(within, self.task).await.is_err() {
            warn!(
                waited_s = within.as_secs(),
                "events still queued at exit were dropped"
            );
        }
    }
}

/// Where [`forward`] hands the events.
trait Sink {
    /// Publishes one event (or gives up on it, saying so).
    async fn publish(&mut self, event: Event);
}

/// Hands each event `rx` queues to `sink`, in order, until every sender is gone or `finish`
/// fires; then what is queued already is still handed over, and nothing more is taken.
async fn forward(
    mut rx: mpsc::UnboundedReceiver<Event>,
    mut finish: oneshot::Receiver<()>,
    mut sink: impl Sink,
) {
    let mut finishing = false;
    loop {
        let next = tokio::select! {
            next = rx.recv() => next,
            _ = &mut finish, if !finishing => {
                finishing = true;
                rx.close();
                continue;
            }
        };
        let Some(event) = next else {
            return;
        };
        sink.publish(event).await;
    }
}

/// containerd's events service.
struct Containerd {
    address: String,
    namespace: String,
    client: Option<EventsClient>,
}

impl Sink for Containerd {
    /// Tries up to [`ATTEMPTS`] times, (re)connecting as needed.
    async fn publish(&mut self, (topic, event): Event) {
        let request = envelope(topic, &self.namespace, event);
        for attempt in 1..=ATTEMPTS {
            if self.client.is_none() {
                match Client::connect(&self.address).await {
                    Ok(c) => self.client = Some(EventsClient::new(c)),
                    Err(e) => {
                        warn!(
                            topic,
                            attempt,
                            error = chain(&e),
                            "cannot connect to containerd's events service"
                        )
                    }
                }
            }
            if let Some(c) = self.client.as_ref() {
                match c.forward(with_duration(FORWARD_TIMEOUT), &request).await {
                    Ok(_) => {
                        info!(topic, "event published");
                        return;
                    }
                    Err(e) => {
                        warn!(
                            topic,
                            attempt,
                            error = chain(&e),
                            "cannot publish an event to containerd"
                        );
                        // Only an answer from containerd says the connection works. A restarted
                        // containerd leaves the old one failing with other errors ("channel
                        // closed"): until 2026-12-07 it was kept, and every later event of the
                        // shim was dropped.
                        if !matches!(e, ttrpc::Error::RpcStatus(_)) {
                            self.client = None;
                        }
                    }
                }
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(Duration::from_secs(attempt)).await;
            }
        }
        warn!(
            topic,
            attempts = ATTEMPTS,
            "event dropped: containerd did not take it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::protobuf::MessageFull;

    /// The topics it was handed.
    struct Recorded(std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>);

    impl Sink for Recorded {
        async fn publish(&mut self, (topic, _): Event) {
            self.0.lock().unwrap().push(topic);
        }
    }

    /// At exit, what is queued is published though senders are still alive, and then the
    /// queue takes nothing more.
    #[tokio::test]
    async fn finishing_publishes_what_is_queued_and_takes_nothing_more() {
        let (tx, rx) = mpsc::unbounded_channel();
        let (finish, finishing) = oneshot::channel();
        let exit = encode(&TaskExit::default()).unwrap();
        let delete = encode(&TaskDelete::default()).unwrap();
        tx.send(exit.clone()).unwrap();
        tx.send(delete).unwrap();
        finish.send(()).unwrap();
        let seen = std::sync::Arc::default();
        let forwarding = tokio::spawn(forward(
            rx,
            finishing,
            Recorded(std::sync::Arc::clone(&seen)),
        ));
        tokio::time::timeout(Duration::from_secs(10), forwarding)
            .await
            .expect("it ends though a sender is alive")
            .unwrap();
        assert_eq!(*seen.lock().unwrap(), ["/tasks/exit", "/tasks/delete"]);
        assert!(tx.send(exit).is_err(), "the queue is closed");
    }

    #[test]
    fn type_urls_and_topics_are_containerds() {
        // The descriptor is what containerd-shim's publisher reads; here only the test pays.
        assert_eq!(TaskExit::TYPE_URL, TaskExit::descriptor().full_name());
        assert_eq!(TaskOOM::TYPE_URL, TaskOOM::descriptor().full_name());
        assert_eq!(
            TaskExecStarted::TYPE_URL,
            TaskExecStarted::descriptor().full_name()
        );
        use containerd_shim::protos::topics;
        assert_eq!(TaskCreate::TOPIC, topics::TASK_CREATE_EVENT_TOPIC);
        assert_eq!(TaskStart::TOPIC, topics::TASK_START_EVENT_TOPIC);
        assert_eq!(TaskExecAdded::TOPIC, topics::TASK_EXEC_ADDED_EVENT_TOPIC);
        assert_eq!(
            TaskExecStarted::TOPIC,
            topics::TASK_EXEC_STARTED_EVENT_TOPIC
        );
        assert_eq!(TaskPaused::TOPIC, topics::TASK_PAUSED_EVENT_TOPIC);
        assert_eq!(TaskResumed::TOPIC, topics::TASK_RESUMED_EVENT_TOPIC);
        assert_eq!(TaskExit::TOPIC, topics::TASK_EXIT_EVENT_TOPIC);
        assert_eq!(TaskDelete::TOPIC, topics::TASK_DELETE_EVENT_TOPIC);
        assert_eq!(TaskOOM::TOPIC, topics::TASK_OOM_EVENT_TOPIC);
    }

    #[test]
    fn an_event_round_trips_through_its_envelope() {
        let exit = TaskExit {
            container_id: "c1".into(),
            pid: 42,
            exit_status: 7,
            ..Default::default()
        };
        let (topic, any) = encode(&exit).unwrap();
        assert_eq!(topic, "/tasks/exit");
        let request = envelope(topic, "k8s.io", any);
        let envelope = request.envelope();
        assert_eq!(envelope.topic(), "/tasks/exit");
        assert_eq!(envelope.namespace(), "k8s.io");
        assert!(envelope.timestamp.seconds > 0);
        assert_eq!(envelope.event().type_url, "containerd.events.TaskExit");
        let back = TaskExit::parse_from_bytes(&envelope.event().value).unwrap();
        assert_eq!(back, exit);
    }

    /// An events service that records what it is given.
    struct Recorder(tokio::sync::Mutex<Vec<(String, String, String, String)>>);

    #[async_trait::async_trait]
    impl containerd_shim::protos::shim_async::Events for Recorder {
        async fn forward(
            &self,
            _ctx: &ttrpc::r#async::TtrpcContext,
            req: ForwardRequest,
        ) -> ttrpc::Result<containerd_shim::protos::api::Empty> {
            let e = req.envelope();
            let id = TaskCreate::parse_from_bytes(&e.event().value)
                .map(|c| c.container_id)
                .unwrap_or_default();
            self.0.lock().await.push((
                e.topic().to_owned(),
                e.namespace().to_owned(),
                e.event().type_url.clone(),
                id,
            ));
            Ok(containerd_shim::protos::api::Empty::default())
        }
    }

    /// Serves `recorder` on `path`; the server stops when dropped.
    async fn serve(
        path: &std::path::Path,
        recorder: std::sync::Arc<Recorder>,
    ) -> ttrpc::r#async::Server {
        use containerd_shim::protos::ttrpc::asynchronous::transport::Listener;
        let listener =
            Listener::try_from(std::os::unix::net::UnixListener::bind(path).unwrap()).unwrap();
        let mut server = ttrpc::r#async::Server::new()
            .add_listener(listener)
            .register_service(containerd_shim::protos::shim_async::create_events(recorder));
        server.start().await.unwrap();
        server
    }

    #[tokio::test]
    async fn events_reach_containerd_in_order_once_it_listens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sock");
        let (tx, rx) = mpsc::unbounded_channel();
        for id in ["a", "b", "c"] {
            let create = TaskCreate {
                container_id: id.into(),
                ..Default::default()
            };
            tx.send(encode(&create).unwrap()).unwrap();
        }
        let oom = TaskOOM {
            container_id: "a".into(),
            ..Default::default()
        };
        tx.send(encode(&oom).unwrap()).unwrap();
        drop(tx);
        // Nobody listens yet: the first try fails and is retried a second later.
        let forwarder = Forwarder::start(path.to_str().unwrap().to_owned(), "ns1".into(), rx);
        tokio::task::yield_now().await;
        let recorder = std::sync::Arc::new(Recorder(tokio::sync::Mutex::default()));
        let mut server = serve(&path, std::sync::Arc::clone(&recorder)).await;
        tokio::time::timeout(Duration::from_secs(20), forwarder.task)
            .await
            .expect("the forwarder ends once its queue is closed and drained")
            .unwrap();
        let got = recorder.0.lock().await.clone();
        let want: Vec<_> = [
            ("/tasks/create", "containerd.events.TaskCreate", "a"),
            ("/tasks/create", "containerd.events.TaskCreate", "b"),
            ("/tasks/create", "containerd.events.TaskCreate", "c"),
            // TaskOOM's field 1 is its container id too.
            ("/tasks/oom", "containerd.events.TaskOOM", "a"),
        ]
        .iter()
        .map(|(t, u, id)| {
            (
                t.to_string(),
                "ns1".to_string(),
                u.to_string(),
                id.to_string(),
            )
        })
        .collect();
        assert_eq!(got, want);
        server.shutdown().await.unwrap();
    }

    /// containerd restarts between two events: the forwarder connects to the new one and
    /// publishes what comes after, instead of failing on the old connection for good.
    #[tokio::test]
    async fn events_after_containerd_restarted_reach_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sock");
        let (tx, rx) = mpsc::unbounded_channel();
        let create = |id: &str| {
            encode(&TaskCreate {
                container_id: id.into(),
                ..Default::default()
            })
            .unwrap()
        };
        let first = std::sync::Arc::new(Recorder(tokio::sync::Mutex::default()));
        let mut server = serve(&path, std::sync::Arc::clone(&first)).await;
        let forwarder = Forwarder::start(path.to_str().unwrap().to_owned(), "ns1".into(), rx);
        tx.send(create("before")).unwrap();
        tokio::time::timeout(Duration::from_secs(20), async {
            while first.0.lock().await.is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the first containerd gets the first event");
        server.shutdown().await.unwrap();
        drop(server);
        std::fs::remove_file(&path).unwrap();
        let second = std::sync::Arc::new(Recorder(tokio::sync::Mutex::default()));
        let mut server = serve(&path, std::sync::Arc::clone(&second)).await;
        tx.send(create("after")).unwrap();
        tx.send(create("later")).unwrap();
        drop(tx);
        tokio::time::timeout(Duration::from_secs(60), forwarder.task)
            .await
            .expect("the forwarder ends once its queue is drained")
            .unwrap();
        let ids: Vec<String> = second.0.lock().await.iter().map(|e| e.3.clone()).collect();
        assert_eq!(ids, ["after", "later"]);
        server.shutdown().await.unwrap();
    }

    #[test]
    fn the_address_gets_the_scheme_the_client_needs() {
        assert_eq!(
            ttrpc_address("/run/containerd/containerd.sock.ttrpc"),
            "unix:///run/containerd/containerd.sock.ttrpc"
        );
        assert_eq!(ttrpc_address("unix:///run/c.sock"), "unix:///run/c.sock");
    }
}
