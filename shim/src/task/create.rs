//! Create: options, bundle rewriting, rootfs mounts, stdio FIFOs, `runc create`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cgroups_rs::fs::Cgroup;
use chaperone_config::Mode;
use containerd_shim::api::{CreateTaskRequest, CreateTaskResponse, Options};
use containerd_shim::mount::umount_recursive;
use containerd_shim::protos::events::task::{TaskCreate, TaskIO};
use containerd_shim::protos::protobuf::Message;
use containerd_shim::util::{mount_rootfs, write_options, write_runtime};
use runc::io::{Io, NullIo};
use runc::options::{CreateOpts, DeleteOpts};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::TaskService;
use crate::bundle;
use crate::cgroup;
use crate::console::{Console, ConsoleSocket};
use crate::container::{Container, Process, Stdio};
use crate::error::{Result, ShimError};
use crate::events::Event;
use crate::image::{ContainerImage, ImageError};
use crate::oom;
use crate::plan::{image_lookup_failed, load_config, needs_image, Plan};
use crate::runc::{failure, is_gone, RuncConfig, INIT_PID_FILE};
use crate::stdio::{self, BinaryLog, FifoIo, FileLog, HeldFifos, Target};

impl TaskService {
    /// What containerd's stores say of container `id`'s image, when its profile depends on it
    /// ([`needs_image`]). What a failed lookup does depends on the fail mode
    /// ([`image_lookup_failed`]).
    async fn image_of(
        &self,
        id: &str,
        spec: &serde_json::Value,
    ) -> std::result::Result<Option<ContainerImage>, ImageError> {
        if !needs_image(spec) {
            return Ok(None);
        }
        self.images.of_container(id).await
    }

    /// Creates the container; `abandoned` says whether the request's caller is gone (see
    /// `Task::create`): then nothing is left of it, and it is not kept.
    pub(super) async fn create_task(
        &self,
        req: CreateTaskRequest,
        abandoned: impl Fn() -> bool,
    ) -> Result<CreateTaskResponse> {
        if !req.checkpoint.is_empty() {
            return Err(ShimError::Unimplemented {
                what: "restoring from a checkpoint",
            });
        }
        let already_exists = |containers: &HashMap<String, Container>| {
            if containers.contains_key(&req.id) {
                return Err(ShimError::AlreadyExists {
                    what: "container",
                    id: req.id.clone(),
                });
            }
            Ok(())
        };
        already_exists(&*self.containers.lock().await)?;
        let bundle = PathBuf::from(&req.bundle);
        let began = std::time::Instant::now();
        // Read once: the lookup, the plan and the pid namespace check all use the original.
        // The lookup may wait for containerd up to its timeout, so it runs before the
        // containers lock, which also holds back the exit reaper and every other request.
        let spec = bundle::read_config(&bundle)?;
        let shared_pid_ns = shares_pid_namespace(&spec);
        let (image, lookup_failed) = match self.image_of(&req.id, &spec).await {
            Ok(image) => (image, None),
            Err(e) => (None, Some(e)),
        };
        let looked_up = began.elapsed();
        let mut containers = self.containers.lock().await;
        already_exists(&containers)?;
        let CreateOptions {
            runc: mut options,
            config_path,
        } = options_of(&req)?;
        if !options.systemd_cgroup && systemd_cgroups_path(&spec) {
            // CRI sends runc's options only to runtimes named `io.containerd.runc.*`, so under
            // `io.containerd.chaperone.v2` nothing says `SystemdCgroup`; but a cgroups path of
            // systemd's form, which CRI writes for a kubelet with the systemd cgroup driver, is
            // meaningless to runc's cgroupfs driver (it would make a directory of that name, out
            // of the pod's slice).
            info!(container = %req.id, "the cgroups path is a systemd unit: runc uses systemd's cgroup driver");
            options.systemd_cgroup = true;
        }
        write_options(&bundle, &options)
            .await
            .map_err(|source| ShimError::Shim {
                op: "write the runc options into the bundle",
                source,
            })?;
        write_runtime(&bundle, &options.binary_name)
            .await
            .map_err(|source| ShimError::Shim {
                op: "write the runtime name into the bundle",
                source,
            })?;

        let runc_config = RuncConfig::new(&options, &self.namespace);
        let learner = Arc::clone(&self.learner);
        let id = req.id.clone();
        let dir = bundle.clone();
        let plan = tokio::task::spawn_blocking(move || {
            let config = Arc::new(load_config(config_path.as_deref())?);
            if let Some(error) = lookup_failed {
                image_lookup_failed(&id, error, &config)?;
            }
            let prepared = bundle::prepare(
                &dir,
                spec,
                &id,
                |spec| Plan::resolve(spec, &id, config, image.as_ref()),
                || learner.socket(),
            );
            // The store's rows, the recorded runs and the JSON are freed by now.
            crate::sys::release_free_heap();
            prepared
        })
        .await
        .map_err(|_| ShimError::InvalidRequest {
            reason: "bundle preparation panicked",
        })??;
        let mode = plan.mode;
        // Before anything is registered or mounted: a failure here leaves nothing to undo.
        let runc = runc_config.client(&bundle)?;
        if abandoned() {
            return Err(abandon(&req.id));
        }
        if mode != Mode::Off {
            self.learner.register(plan.clone());
        }

        let planned = began.elapsed();
        let mounted_rootfs = match mount_all(&req, &bundle).await {
            Ok(m) => m,
            Err(e) => {
                self.learner.forget(&req.id);
                return Err(e);
            }
        };
        let stdio = Stdio {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let mut init = Process::new(&req.id, stdio.clone());
        let runc_began = std::time::Instant::now();
        let created = create_init(
            &runc,
            &bundle,
            (&req.id, &self.namespace),
            &mut init,
            &options,
        )
        .await;
        let pid = match created {
            Ok(pid) => pid,
            Err(e) => {
                self.unmount_and_forget(&req.id, mounted_rootfs.as_deref());
                return Err(e);
            }
        };
        init.pid = pid;
        let (cgroup, oom_watch) = watch_cgroup(&req.id, pid, &self.events).await;
        if crate::learn::fault_injected(SLOW_CREATE_FAULT_ENV, &req.id) {
            tokio::time::sleep(SLOW_CREATE_DELAY).await;
        }
        if abandoned() {
            // As Delete undoes a container: runc's (and its init), the mounts, the learner's.
            let deleted = runc
                .delete(&req.id, Some(&DeleteOpts::new().force(true)))
                .await;
            // containerd's own clean-up (the shim binary's `delete`) may have been first.
            match &deleted {
                Err(e) if !is_gone(e) => {
                    warn!(container = %req.id, error = %failure(&bundle, "delete", &req.id, e).chain(), "cannot delete the abandoned container");
                }
                _ => {}
            }
            if let Some(watch) = oom_watch {
                watch.abort();
            }
            self.unmount_and_forget(&req.id, mounted_rootfs.as_deref());
            return Err(abandon(&req.id));
        }
        info!(
            container = %req.id,
            pid,
            %mode,
            profile = %plan.key,
            action = %plan.action,
            image_ms = looked_up.as_secs_f64() * 1e3,
            plan_ms = planned.as_secs_f64() * 1e3,
            runc_create_ms = runc_began.elapsed().as_secs_f64() * 1e3,
            total_ms = began.elapsed().as_secs_f64() * 1e3,
            "container created"
        );

        let event = TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: Some(TaskIO {
                stdin: stdio.stdin.clone(),
                stdout: stdio.stdout.clone(),
                stderr: stdio.stderr.clone(),
                terminal: stdio.terminal,
                ..Default::default()
            })
            .into(),
            checkpoint: req.checkpoint.clone(),
            pid: init.pid_u32(),
            ..Default::default()
        };
        let response = CreateTaskResponse {
            pid: init.pid_u32(),
            ..Default::default()
        };
        containers.insert(
            req.id.clone(),
            Container {
                id: req.id.clone(),
                bundle,
                runc,
                mode,
                shared_pid_ns,
                mounted_rootfs,
                init,
                execs: Default::default(),
                cgroup,
                oom_watch,
            },
        );
        // Queued under the lock: an exit of init cannot be published before it.
        self.publish(event).await;
        drop(containers);
        Ok(response)
    }
}

impl TaskService {
    /// Undoes a Create's mounts (`rootfs`, when it mounted any) and the learner's registration
    /// of container `id`, once runc's container is gone or was never made.
    fn unmount_and_forget(&self, id: &str, rootfs: Option<&Path>) {
        if let Some(rootfs) = rootfs {
            let _ = umount_recursive(rootfs.to_str(), 0);
        }
        self.learner.forget(id);
    }
}

/// Debug builds only, for tests: a Create of a container whose id contains this variable's
/// value waits [`SLOW_CREATE_DELAY`] after `runc create`, as one on a loaded node may.
pub const SLOW_CREATE_FAULT_ENV: &str = "CHAPERONE_TEST_SLOW_CREATE";
/// How long such a Create waits.
pub const SLOW_CREATE_DELAY: std::time::Duration = std::time::Duration::from_secs(5);

/// The error of a Create whose caller went, logged here: nobody else will see it.
fn abandon(id: &str) -> ShimError {
    let e = ShimError::Abandoned { id: id.to_owned() };
    warn!(container = %id, "{e}; nothing of it is kept");
    e
}

/// The protobuf type of runc's `Options` in a create request.
const RUNC_OPTIONS_TYPE: &str = "containerd.runc.v1.Options";
/// The protobuf type of the generic options CRI sends runtimes that are not runc-style.
const CRI_OPTIONS_TYPE: &str = "runtimeoptions.v1.Options";
/// Whether the spec's `linux.cgroupsPath` has the form runc's systemd cgroup driver takes and
/// its cgroupfs driver cannot: `slice:prefix:name`, the slice empty or a `.slice` unit, as CRI
/// writes it (`kubepods-burstable-pod<uid>.slice:cri-containerd:<id>`) for a kubelet whose
/// cgroup driver is systemd. A path of directories never has it.
fn systemd_cgroups_path(spec: &serde_json::Value) -> bool {
    let Some(path) = spec["linux"]["cgroupsPath"].as_str() else {
        return false;
    };
    let parts: Vec<&str> = path.split(':').collect();
    matches!(
        parts.as_slice(),
        [slice, _, name]
            if !slice.contains('/')
                && (slice.is_empty() || slice.ends_with(".slice"))
                && !name.is_empty()
    )
}

/// `config_path`'s field number in CRI's `runtimeoptions.v1.Options`.
const CRI_CONFIG_PATH_FIELD: u32 = 2;

/// What a create request's options ask of the shim.
#[derive(Debug, Default)]
struct CreateOptions {
    /// runc's `Options` (containerd sends them for runtimes named `io.containerd.runc.*`);
    /// defaults otherwise.
    runc: Options,
    /// chaperone's config file, from the `ConfigPath` CRI passes for a runtime handler whose
    /// `options` name one.
    config_path: Option<PathBuf>,
}

fn options_of(req: &CreateTaskRequest) -> Result<CreateOptions> {
    let Some(any) = req.options.as_ref().filter(|a| !a.value.is_empty()) else {
        return Ok(CreateOptions::default());
    };
    if any.type_url.ends_with(CRI_OPTIONS_TYPE) {
        return Ok(CreateOptions {
            runc: Options::default(),
            config_path: cri_config_path(&any.value)?,
        });
    }
    if !any.type_url.is_empty() && !any.type_url.ends_with(RUNC_OPTIONS_TYPE) {
        tracing::warn!(type_url = %any.type_url, "create options of another type are ignored");
        return Ok(CreateOptions::default());
    }
    let runc = Options::parse_from_bytes(&any.value).map_err(|source| ShimError::Protobuf {
        what: "the runc options of the create request",
        source,
    })?;
    Ok(CreateOptions {
        runc,
        config_path: None,
    })
}

/// The `config_path` of CRI's `runtimeoptions.v1.Options` (its other fields are skipped, so
/// newer containerd versions' additions do no harm). Empty means none.
fn cri_config_path(bytes: &[u8]) -> Result<Option<PathBuf>> {
    use containerd_shim::protos::protobuf::rt::WireType;
    use containerd_shim::protos::protobuf::CodedInputStream;
    let malformed = |source| ShimError::Protobuf {
        what: "the CRI runtime options of the create request",
        source,
    };
    let mut input = CodedInputStream::from_bytes(bytes);
    let mut path = None;
    while let Some(tag) = input.read_raw_tag_or_eof().map_err(malformed)? {
        let wire = WireType::new(tag & 7).ok_or_else(|| ShimError::InvalidRequest {
            reason: "the CRI runtime options have a field of an unknown wire type",
        })?;
        if tag >> 3 == CRI_CONFIG_PATH_FIELD && wire == WireType::LengthDelimited {
            path = Some(input.read_string().map_err(malformed)?);
        } else {
            input.skip_field(wire).map_err(malformed)?;
        }
    }
    Ok(path.filter(|p| !p.is_empty()).map(PathBuf::from))
}

/// Mounts the request's rootfs mounts on `bundle/rootfs`; `None` when there are none (the
/// bundle then brings its own rootfs).
async fn mount_all(req: &CreateTaskRequest, bundle: &Path) -> Result<Option<PathBuf>> {
    if req.rootfs.is_empty() {
        return Ok(None);
    }
    let rootfs = bundle.join("rootfs");
    containerd_shim::util::mkdir(&rootfs, 0o711)
        .await
        .map_err(|source| ShimError::Shim {
            op: "create the rootfs directory",
            source,
        })?;
    for m in &req.rootfs {
        if let Err(source) = mount_rootfs(m, &rootfs).await {
            let _ = umount_recursive(rootfs.to_str(), 0);
            return Err(ShimError::Shim {
                op: "mount the rootfs",
                source,
            });
        }
    }
    Ok(Some(rootfs))
}

/// The stdio runc gives a process, the file or binary log to start once runc has run (see
/// [`crate::stdio`]), and the shim's own ends of containerd's FIFOs.
pub(super) struct ProcessIo {
    pub(super) io: Arc<dyn Io>,
    pub(super) log: Option<Log>,
    pub(super) held: HeldFifos,
}

/// A process's log, when its stdout is a `file://` or `binary://` URI.
pub(super) enum Log {
    File(FileLog),
    Binary(BinaryLog),
}

impl ProcessIo {
    /// Starts the log's copies or hands over its logging binary, if the process has a log
    /// (its exit then waits for them), and hands over the shim's ends of the FIFOs.
    pub(super) fn started(self, process: &mut Process) {
        process.held_fifos = self.held;
        match self.log {
            None => {}
            Some(Log::File(log)) => process.drained = Some(log.start()),
            Some(Log::Binary(log)) => {
                let (drained, logger) = log.start();
                process.drained = Some(drained);
                process.logger = Some(logger);
            }
        }
    }
}

/// The stdio runc gives a process: containerd's FIFOs (with the shim's own ends of them, see
/// [`HeldFifos`]), pipes into a `file://` log or a `binary://` logging binary (started now,
/// for the process `id` of `namespace`), or /dev/null when none is connected or the process
/// has a terminal (the shim copies between it and the FIFOs).
pub(super) async fn io_of(
    stdio: &Stdio,
    bundle: &Path,
    process: (&str, &str),
) -> Result<ProcessIo> {
    let target = stdio::target(&stdio.stdout)?;
    if target != Target::Fifo {
        if stdio.terminal {
            return Err(ShimError::Unimplemented {
                what: "a terminal together with a file:// or binary:// log",
            });
        }
        if !stdio.stdin.is_empty() {
            return Err(ShimError::Unimplemented {
                what: "stdin together with a file:// or binary:// log",
            });
        }
    }
    match target {
        Target::Fifo => {}
        Target::File(path) => {
            let log = FileLog::open(&path)?;
            return Ok(ProcessIo {
                io: log.io(),
                log: Some(Log::File(log)),
                held: HeldFifos::default(),
            });
        }
        Target::Binary { path, args } => {
            let log = BinaryLog::open(&path, &args, process).await?;
            return Ok(ProcessIo {
                io: log.io(),
                log: Some(Log::Binary(log)),
                held: HeldFifos::default(),
            });
        }
    }
    if stdio.terminal
        || (stdio.stdin.is_empty() && stdio.stdout.is_empty() && stdio.stderr.is_empty())
    {
        let null = NullIo::new().map_err(|source| ShimError::Io {
            op: "open /dev/null for",
            path: bundle.to_owned(),
            source,
        })?;
        // A terminal's copy holds its stdout FIFO itself.
        return Ok(ProcessIo {
            io: Arc::new(null),
            log: None,
            held: HeldFifos::open(&stdio.stdin, ["", ""])?,
        });
    }
    // Before runc opens them, so that its opening the outputs for writing does not wait.
    let held = HeldFifos::open(&stdio.stdin, [&stdio.stdout, &stdio.stderr])?;
    Ok(ProcessIo {
        io: FifoIo::io(&stdio.stdin, &stdio.stdout, &stdio.stderr),
        log: None,
        held,
    })
}

/// For a process with a terminal: the socket runc is to send it on.
pub(super) fn console_socket(stdio: &Stdio) -> Result<Option<ConsoleSocket>> {
    stdio.terminal.then(ConsoleSocket::new).transpose()
}

/// Connects the terminal runc sent on `socket` (if the process has one) to its FIFOs.
pub(super) async fn attach(socket: Option<ConsoleSocket>, process: &mut Process) -> Result<()> {
    let Some(socket) = socket else {
        return Ok(());
    };
    let master = socket.receive().await?;
    let (console, drained) = Console::start(master, &process.stdio)?;
    process.console = Some(console);
    process.drained = Some(drained);
    Ok(())
}

/// `runc create` with the FIFOs as the init's stdio, or with a terminal connected to them;
/// returns the init pid. A container whose terminal cannot be connected is deleted again.
async fn create_init(
    runc: &runc::Runc,
    bundle: &Path,
    (id, namespace): (&str, &str),
    init: &mut Process,
    options: &Options,
) -> Result<i32> {
    let stdio = &init.stdio;
    let console = console_socket(stdio)?;
    let io = io_of(stdio, bundle, (id, namespace)).await?;
    let pid_file = bundle.join(INIT_PID_FILE);
    let mut opts = CreateOpts::new()
        .pid_file(&pid_file)
        .no_pivot(options.no_pivot_root)
        .no_new_keyring(options.no_new_keyring);
    opts.console_socket = console.as_ref().map(ConsoleSocket::path);
    opts.io = Some(Arc::clone(&io.io));
    runc.create(id, bundle, Some(&opts))
        .await
        .map_err(|e| failure(bundle, "create", id, &e))?;
    io.started(init);
    // From here a failure deletes the container runc made, so nothing is left of it.
    let created = async {
        let pid = read_pid(&pid_file).await?;
        attach(console, init).await?;
        Ok(pid)
    }
    .await;
    if created.is_err() {
        let _ = runc.delete(id, Some(&DeleteOpts::new().force(true))).await;
    }
    created
}

/// The init pid runc wrote to `pid_file`.
async fn read_pid(pid_file: &Path) -> Result<i32> {
    let text = tokio::fs::read_to_string(pid_file)
        .await
        .map_err(|source| ShimError::Io {
            op: "read",
            path: pid_file.to_owned(),
            source,
        })?;
    text.trim().parse().map_err(|_| ShimError::InvalidRequest {
        reason: "runc wrote an invalid init pid",
    })
}

/// Whether the container joins an existing pid namespace or the host's (it then has no pid
/// namespace of its own to take its processes down when init exits).
fn shares_pid_namespace(config: &serde_json::Value) -> bool {
    let Some(namespaces) = config
        .pointer("/linux/namespaces")
        .and_then(|n| n.as_array())
    else {
        return true;
    };
    !namespaces.iter().any(|ns| {
        ns["type"] == "pid"
            && ns
                .get("path")
                .and_then(|p| p.as_str())
                .is_none_or(str::is_empty)
    })
}

/// Container `id`'s cgroup, found from its init `pid`, and the task that publishes its OOM
/// events to `events`. Either may be missing: that is logged, and only Stats (NotFound) and
/// TaskOOM lack them; the container runs.
async fn watch_cgroup(
    id: &str,
    pid: i32,
    events: &mpsc::UnboundedSender<Event>,
) -> (Option<Cgroup>, Option<JoinHandle<()>>) {
    let found = tokio::task::spawn_blocking(move || {
        let cgroup = cgroup::of_process(pid)?;
        let oom = oom::open(&cgroup);
        Ok::<_, ShimError>((cgroup, oom))
    })
    .await;
    let (cgroup, oom) = match found {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            warn!(container = %id, error = %e.chain(), "cannot find the container's cgroup; it has no Stats or OOM events");
            return (None, None);
        }
        Err(_) => return (None, None),
    };
    let watch = oom.and_then(|source| oom::watch(source, id.to_owned(), events.clone()));
    match watch {
        Ok(task) => (Some(cgroup), Some(task)),
        Err(e) => {
            warn!(container = %id, error = %e.chain(), "cannot watch the container's memory cgroup; it has no OOM events");
            (Some(cgroup), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_private_pid_namespace_is_not_shared() {
        assert!(shares_pid_namespace(&json!({})));
        assert!(!shares_pid_namespace(
            &json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}})
        ));
        assert!(shares_pid_namespace(
            &json!({"linux": {"namespaces": [{"type": "pid", "path": "/proc/1/ns/pid"}]}})
        ));
        assert!(shares_pid_namespace(
            &json!({"linux": {"namespaces": [{"type": "mount"}]}})
        ));
    }

    #[test]
    fn a_cgroups_path_of_systemd_s_form_is_recognised() {
        let path = |p: &str| json!({"linux": {"cgroupsPath": p}});
        for systemd in [
            "kubepods-besteffort-pod1b2c.slice:cri-containerd:0123abcd",
            "system.slice:docker:abc",
            ":cri-containerd:abc",
        ] {
            assert!(systemd_cgroups_path(&path(systemd)), "{systemd}");
        }
        for cgroupfs in [
            "/kubepods/besteffort/pod1b2c/0123abcd",
            "/default/c1",
            "c1",
            "kubepods.slice/x.slice:cri-containerd:abc",
            "a.slice:cri-containerd:",
            "a.slice:b:c:d",
            "notaslice:cri-containerd:abc",
            "",
        ] {
            assert!(!systemd_cgroups_path(&path(cgroupfs)), "{cgroupfs}");
        }
        assert!(!systemd_cgroups_path(&json!({"linux": {}})));
        assert!(!systemd_cgroups_path(&json!({})));
    }

    /// A container whose cgroup cannot be found runs without one: no OOM watch, and Stats
    /// answers NotFound. A process that exists has its cgroup found.
    #[tokio::test]
    async fn a_cgroup_that_cannot_be_found_leaves_the_container_without_stats() {
        use containerd_shim::protos::ttrpc;
        let (events, _received) = mpsc::unbounded_channel();
        // No process has this pid: pid_max is at most 2^22.
        let (cgroup, oom) = watch_cgroup("c1", i32::MAX, &events).await;
        assert!(cgroup.is_none() && oom.is_none());
        let stats = ttrpc::Error::from(ShimError::NoCgroup { id: "c1".into() });
        let ttrpc::Error::RpcStatus(status) = stats else {
            panic!("not a status: {stats:?}");
        };
        assert_eq!(status.code(), ttrpc::Code::NOT_FOUND);

        let own = i32::try_from(std::process::id()).unwrap();
        let (cgroup, oom) = watch_cgroup("self", own, &events).await;
        assert!(cgroup.is_some(), "the test's own cgroup is found");
        if let Some(watch) = oom {
            watch.abort();
        }
    }

    /// A create request whose options are `value` of type `type_url`.
    fn request(type_url: &str, value: Vec<u8>) -> CreateTaskRequest {
        use containerd_shim::protos::protobuf::well_known_types::any::Any;
        CreateTaskRequest {
            options: Some(Any {
                type_url: type_url.to_owned(),
                value,
                ..Default::default()
            })
            .into(),
            ..Default::default()
        }
    }

    /// CRI's `runtimeoptions.v1.Options` as containerd 1.7 encodes it, plus a field from
    /// the future.
    fn cri_options(config_path: &str) -> Vec<u8> {
        use containerd_shim::protos::protobuf::CodedOutputStream;
        let mut bytes = Vec::new();
        let mut out = CodedOutputStream::vec(&mut bytes);
        out.write_string(1, "io.containerd.chaperone.v1.Options")
            .unwrap();
        out.write_string(2, config_path).unwrap();
        out.write_bytes(3, b"ConfigPath = \"x\"").unwrap();
        out.write_uint64(9, 42).unwrap();
        out.flush().unwrap();
        drop(out);
        bytes
    }

    /// A terminal or stdin cannot go with a file or binary log: Unimplemented, before anything
    /// is opened or started.
    #[tokio::test]
    async fn a_file_or_binary_log_takes_no_terminal_and_no_stdin() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("out.log");
        let logger = tmp.path().join("logger");
        let uris = [
            format!("file://{}", log.display()),
            format!("binary://{}", logger.display()),
        ];
        for uri in &uris {
            for (terminal, stdin, says) in [
                (true, "", "a terminal together with"),
                (false, "/run/fifo/stdin", "stdin together with"),
            ] {
                let stdio = Stdio {
                    stdin: stdin.into(),
                    stdout: uri.clone(),
                    stderr: uri.clone(),
                    terminal,
                };
                let Err(err) = io_of(&stdio, tmp.path(), ("ns", "c1")).await else {
                    panic!("{uri} with terminal {terminal}, stdin {stdin:?} was accepted");
                };
                assert!(
                    matches!(err, ShimError::Unimplemented { .. })
                        && err.to_string().contains(says),
                    "{uri}: {err}"
                );
            }
        }
        assert!(!log.exists(), "the log file was opened");
    }

    #[test]
    fn cri_runtime_options_name_the_config_file() {
        let req = request(
            "type.googleapis.com/runtimeoptions.v1.Options",
            cri_options("/etc/chaperone/strict.toml"),
        );
        let options = options_of(&req).unwrap();
        assert_eq!(
            options.config_path.as_deref(),
            Some(Path::new("/etc/chaperone/strict.toml"))
        );
        assert_eq!(options.runc, Options::default());
        let empty = request("runtimeoptions.v1.Options", cri_options(""));
        assert_eq!(options_of(&empty).unwrap().config_path, None);
    }

    #[test]
    fn runc_options_are_read_and_garbage_is_an_error() {
        let runc = Options {
            root: "/run/other".into(),
            ..Default::default()
        };
        let req = request("containerd.runc.v1.Options", runc.write_to_bytes().unwrap());
        let options = options_of(&req).unwrap();
        assert_eq!(
            (options.runc.root.as_str(), options.config_path),
            ("/run/other", None)
        );
        let garbage = request("runtimeoptions.v1.Options", vec![0x12, 0xff, 0x01]);
        let err = options_of(&garbage).unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot decode or encode the CRI runtime options of the create request"),
            "{err}"
        );
        let other = request("example.v1.Options", vec![1, 2, 3]);
        assert_eq!(options_of(&other).unwrap().runc, Options::default());
    }
}
